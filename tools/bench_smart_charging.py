"""Cost of the smart-charging core (agent/core/smart_charging.py) at its limits:
MaxChargingProfilesInstalled profiles of ChargingScheduleMaxPeriods periods
each, installed through ``ChargingProfileStore`` (so every one is a valid
combination of purpose, connector and stack level), with boundaries that never
coincide, a mix of Recurring (Daily), Absolute and Relative kinds, A and W,
durations that let lower stack levels show through and validity windows.

    python -m tools.bench_smart_charging              # the default limits, a table
    python -m tools.bench_smart_charging --profiles 32 --periods 48 --json

Figures (µs, the median of several timed batches, on this machine's CPython):
``limit_at`` from compiled profiles (what the station does at a boundary)
and from raw entries (compiling each time), ``composite_schedule`` over one
hour and one day, with and without a running transaction (a valid TxProfile
hides the TxDefaultProfiles, so "without" is the heavier case), ``install`` of
one profile, and a whole-store compile (what ``load`` does at boot). A
measurement, not a test: it prints and exits 0.
"""

import argparse
import json
import statistics
import sys
import time

from agent.core import smart_charging
from agent.core.profile_store import ChargingProfileStore
from agent.core.smart_charging import (
    ABSOLUTE, ACCEPTED, DAILY, DEFAULT_MAX_PERIODS, DEFAULT_MAX_PROFILES, DEFAULT_MAX_STACK_LEVEL, RECURRING, RELATIVE,
    STATION_MAX, TX, TX_DEFAULT, compile_profile, composite_schedule, limit_at, new_profile,
)

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
TX_ID = 1
TX_START = T0 - 1800


def _profile(pid: int, purpose: str, stack: int, periods: int, index: int) -> dict:
    kind = (RECURRING, ABSOLUTE, RELATIVE)[index % 3]
    unit = "W" if index % 2 else "A"
    step = 86400 // periods
    shift = 97 * index % step  # distinct boundaries for every profile
    sched = []
    for k in range(periods):
        amps = 6 + (k * 7 + index * 5) % 27
        sched.append((0 if k == 0 else k * step + shift, float(amps * 690) if unit == "W" else float(amps),
                      1 if k % 4 == 1 else None))
    extra = {}
    if kind != RELATIVE:
        extra["start"] = T0 - 3600 + 61 * index
    if kind == RECURRING:
        extra["recurrency"] = DAILY
    if index % 4 == 3:
        extra["valid_from"] = T0 - 600 + 13 * index
        extra["valid_to"] = T0 + 20 * 3600 + 17 * index
    if index % 5 == 4:
        extra["min_rate"] = 6.0 if unit == "A" else 4140.0
    return new_profile(pid, purpose, stack, sched, kind=kind, rate_unit=unit,
                       duration_s=86400 - 2900 * stack,  # higher stacks end sooner: the lower ones show through
                       **extra)


def build_store(profiles: int, periods: int, max_stack_level: int = DEFAULT_MAX_STACK_LEVEL) -> ChargingProfileStore:
    """A full store: ``profiles`` profiles over station_max (EVSE 0),
    tx_default (EVSEs 0 and 1) and tx (EVSE 1, transaction 1)."""
    store = ChargingProfileStore(connector_count=2, max_stack_level=max_stack_level, max_periods=periods,
                                 max_profiles=profiles)
    slots = [(STATION_MAX, 0), (TX_DEFAULT, 0), (TX_DEFAULT, 1), (TX, 1)]
    next_stack = {s: 0 for s in slots}
    pid = 0
    while len(store) < profiles:
        progressed = False
        for slot in slots:
            if len(store) >= profiles or next_stack[slot] > max_stack_level:
                continue
            pid += 1
            purpose, connector = slot
            status = store.install(connector, _profile(pid, purpose, next_stack[slot], periods, pid), now=T0,
                                   transaction_id=TX_ID if purpose == TX else None)
            if status != ACCEPTED:
                raise RuntimeError("bench profile %d rejected: %s" % (pid, store.last_rejection))
            next_stack[slot] += 1
            progressed = True
        if not progressed:
            raise ValueError("%d profiles do not fit under ChargeProfileMaxStackLevel %d" % (
                profiles, max_stack_level))
    return store


def _time_us(fn, min_batch_s: float = 0.05, batches: int = 7) -> float:
    """Median µs per call of ``fn()`` over ``batches`` batches of >= min_batch_s."""
    n = 1
    while True:
        t = time.perf_counter()
        for _ in range(n):
            fn()
        if time.perf_counter() - t >= min_batch_s:
            break
        n *= 2
    runs = []
    for _ in range(batches):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - t) / n * 1e6)
    return statistics.median(runs)


def run(profiles: int = DEFAULT_MAX_PROFILES, periods: int = DEFAULT_MAX_PERIODS,
        max_stack_level: int = DEFAULT_MAX_STACK_LEVEL, quick: bool = False) -> dict:
    """Measure; returns the figures (µs) and the shape of the data."""
    batch = 0.01 if quick else 0.05
    store = build_store(profiles, periods, max_stack_level)
    compiled = store.profiles()
    entries = store.entries()
    times = [T0 + 3600 * k + 1234.5 for k in range(24)]
    state = {"i": 0}

    def at(profs, tx):
        state["i"] = (state["i"] + 1) % len(times)
        if tx:
            return limit_at(profs, 1, times[state["i"]], TX_START, TX_ID)
        return limit_at(profs, 1, times[state["i"]])

    def composite(duration, tx):
        if tx:
            return composite_schedule(compiled, 1, T0, duration, "A", local_limit_a=32.0, tx_start=TX_START,
                                      tx_id=TX_ID)
        return composite_schedule(compiled, 1, T0, duration, "A", local_limit_a=32.0)

    def install_one():
        s = ChargingProfileStore(connector_count=2, max_periods=periods)
        s.install(1, entries[2], now=T0)

    steps = {}
    real = smart_charging._evaluate
    for key, tx in (("with_tx", True), ("without_tx", False)):
        count = [0]

        def counting(*a, _count=count):
            _count[0] += 1
            return real(*a)

        smart_charging._evaluate = counting
        try:
            composite(86400, tx)
        finally:
            smart_charging._evaluate = real
        steps[key] = count[0]
    r = {
        "profiles": len(store), "periods_per_profile": periods, "composite_day_steps": steps,
        "composite_day_periods": {
            "with_tx": len(composite(86400, True)["periods"]),
            "without_tx": len(composite(86400, False)["periods"])},
        "limit_at_us": {
            "compiled_with_tx": _time_us(lambda: at(compiled, True), batch),
            "compiled_without_tx": _time_us(lambda: at(compiled, False), batch),
            "entries_with_tx": _time_us(lambda: at(entries, True), batch)},
        "composite_us": {
            "hour_with_tx": _time_us(lambda: composite(3600, True), batch),
            "hour_without_tx": _time_us(lambda: composite(3600, False), batch),
            "day_with_tx": _time_us(lambda: composite(86400, True), batch),
            "day_without_tx": _time_us(lambda: composite(86400, False), batch)},
        "install_us": _time_us(install_one, batch),
        "compile_all_us": _time_us(lambda: [compile_profile(e) for e in entries], batch),
    }
    return r


def _print(r: dict) -> None:
    print("smart charging core: %d profiles x %d periods (MaxChargingProfilesInstalled x "
          "ChargingScheduleMaxPeriods), CPython %s" % (r["profiles"], r["periods_per_profile"],
                                                      sys.version.split()[0]))
    rows = [
        ("limit_at, compiled profiles, transaction", r["limit_at_us"]["compiled_with_tx"]),
        ("limit_at, compiled profiles, no transaction", r["limit_at_us"]["compiled_without_tx"]),
        ("limit_at, raw entries (compiles every call)", r["limit_at_us"]["entries_with_tx"]),
        ("composite_schedule 1 h, transaction", r["composite_us"]["hour_with_tx"]),
        ("composite_schedule 1 h, no transaction", r["composite_us"]["hour_without_tx"]),
        ("composite_schedule 24 h, transaction (%d steps, %d periods)" % (
            r["composite_day_steps"]["with_tx"], r["composite_day_periods"]["with_tx"]),
         r["composite_us"]["day_with_tx"]),
        ("composite_schedule 24 h, no transaction (%d steps, %d periods)" % (
            r["composite_day_steps"]["without_tx"], r["composite_day_periods"]["without_tx"]),
         r["composite_us"]["day_without_tx"]),
        ("install one profile (validate + compile)", r["install_us"]),
        ("compile the whole store (load at boot)", r["compile_all_us"]),
    ]
    width = max(len(name) for name, _ in rows)
    for name, us in rows:
        print("  %-*s %10.1f µs" % (width, name, us))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.bench_smart_charging", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profiles", type=int, default=DEFAULT_MAX_PROFILES, help="MaxChargingProfilesInstalled")
    ap.add_argument("--periods", type=int, default=DEFAULT_MAX_PERIODS, help="ChargingScheduleMaxPeriods")
    ap.add_argument("--max-stack-level", type=int, default=DEFAULT_MAX_STACK_LEVEL, help="ChargeProfileMaxStackLevel")
    ap.add_argument("--quick", action="store_true", help="short timing batches")
    ap.add_argument("--json", action="store_true", help="machine-readable figures on stdout")
    args = ap.parse_args(argv)
    r = run(args.profiles, args.periods, args.max_stack_level, args.quick)
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        _print(r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
