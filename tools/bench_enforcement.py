"""Smart charging enforcement delay: how fast a new limit reaches the EVSE
controller, on the simulated board, in real time, over loopback.

    python -m tools.bench_enforcement            # 100 profiles, 20 boundaries, a table
    python -m tools.bench_enforcement --quick    # a fast, coarse run (the smoke test uses it)
    python -m tools.bench_enforcement --json     # machine-readable figures on stdout

One process: the test central system (tools/csms.py) and an agent (the real
``Agent``, real ``Clock``, fresh temporary data directory, status page off) on
the simulated board, with a transaction charging on connector 1. The EVSE
controller is instrumented at the hal boundary: the simulated controller's
``set_current_limit`` records when it is called.

* **SetChargingProfile → controller**: from the frame's arrival at the agent
  (the adapter's first look at it, before parsing and schema validation) to
  ``set_current_limit`` with the new limit. Each request alternates the limit
  (10 A / 16 A), so each one changes the hardware. The round trip seen by the
  central system (request sent to .conf received) is reported beside it; it
  also includes the profile store's fsync'd write, which happens after the
  limit is applied.
* **Period boundary → controller**: a TxProfile whose periods change the
  limit every second (profile times have one-second resolution); the delay is
  the wall time of the ``set_current_limit`` call minus the boundary's epoch
  time. The station arms one timer per boundary (no polling).

The target for both is < 50 ms. Then the composite-schedule and ``limit_at``
cost at the store's limits (tools/bench_smart_charging). A measurement, not a
test: it prints and exits 0 (1 only if it could not measure).
"""

import argparse
import asyncio
import json
import math
import shutil
import statistics
import sys
import tempfile
import time

from hal.runtime.clock import Clock
from agent.app.config import parse_config
from agent.core.isotime import format_datetime
from agent.app.runner import Agent
from tools import bench_smart_charging
from tools.csms import TestCentralSystem

TARGET_MS = 50.0
TX_ID = 1
STATION_ID = "BENCH-SC"


class BenchError(Exception):
    """The bench could not measure something."""


def _summary(values_ms: list) -> dict:
    s = sorted(values_ms)
    return {"n": len(s), "median_ms": statistics.median(s), "p95_ms": s[min(len(s) - 1, math.ceil(0.95 * len(s)) - 1)],
            "max_ms": s[-1], "min_ms": s[0]}


def _tx_profile(pid: int, periods: list, start: float, duration: int | None = None) -> dict:
    sch = {"chargingRateUnit": "A", "startSchedule": format_datetime(start),
           "chargingSchedulePeriod": [{"startPeriod": s, "limit": a} for s, a in periods]}
    if duration is not None:
        sch["duration"] = duration
    return {"chargingProfileId": pid, "stackLevel": 0, "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Absolute", "transactionId": TX_ID, "chargingSchedule": sch}


async def _wait(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise BenchError("timed out waiting for %s" % what)
        await asyncio.sleep(0.005)


async def measure(profiles: int, boundaries: int) -> dict:
    data_dir = tempfile.mkdtemp(prefix="bench-enforcement-")
    cs = TestCentralSystem(quiet=True, protocols=("ocpp1.6",))
    await cs.start()
    arrivals: list = []  # perf_counter of each SetChargingProfile frame at the agent

    def on_frame(direction: str, text: str) -> None:
        if direction == "in" and '"SetChargingProfile"' in text:
            arrivals.append(time.perf_counter())

    config = parse_config(data_dir + "/agent.toml", {
        "station": {"id": STATION_ID, "data_dir": data_dir},
        "csms": {"url": cs.url}, "status_page": {"enabled": False},
        "ocpp": {"MeterValueSampleInterval": 0, "ChargingScheduleMaxPeriods": max(24, boundaries + 1)}})
    agent = Agent(config, clock=Clock(), traffic_log=on_frame)
    try:
        await agent.start()
        st = await cs.wait_for_station(STATION_ID, timeout_s=10)
        await st.wait_for("BootNotification")
        st.handlers["StartTransaction"] = lambda p: {"transactionId": TX_ID, "idTagInfo": {"status": "Accepted"}}
        sim = agent.loaded.sim
        station = agent.station
        sim.plug(1)
        assert await st.call("RemoteStartTransaction", connectorId=1, idTag="BENCH") == {"status": "Accepted"}
        await st.wait_for("StatusNotification", lambda p: p["connectorId"] == 1 and p["status"] == "Charging")
        await _wait(lambda: station.connector(1).transaction.backend_id == TX_ID, 5, "the transaction id")

        calls: list = []  # (perf_counter, wall time, amperes) of each set_current_limit
        evse = sim.connectors[0].evse
        real = evse.set_current_limit

        async def recording(current_a: float) -> None:
            calls.append((time.perf_counter(), time.time(), float(current_a)))
            await real(current_a)

        evse.set_current_limit = recording

        # 1. SetChargingProfile received -> controller.
        set_ms, round_trip_ms = [], []
        for i in range(profiles):
            limit_a = 10.0 if i % 2 == 0 else 16.0
            arrivals.clear()
            calls.clear()
            sent = time.perf_counter()
            reply = await st.call("SetChargingProfile", connectorId=1,
                                  csChargingProfiles=_tx_profile(1, [(0, limit_a)], time.time() - 1))
            done = time.perf_counter()
            if reply != {"status": "Accepted"} or len(arrivals) != 1:
                raise BenchError("SetChargingProfile %d: %r" % (i, reply))
            hits = [c for c in calls if c[2] == limit_a]
            if not hits:
                raise BenchError("SetChargingProfile %d: the controller never got %.0f A" % (i, limit_a))
            set_ms.append((hits[0][0] - arrivals[0]) * 1000)
            round_trip_ms.append((done - sent) * 1000)

        # 2. Period boundary -> controller: one TxProfile, a new limit every second.
        start = math.ceil(time.time() + 0.2)  # profile times are whole seconds
        periods = [(k, 10.0 if k % 2 == 0 else 16.0) for k in range(boundaries + 1)]
        if periods[0][1] == calls[-1][2]:
            periods = [(k, 16.0 if a == 10.0 else 10.0) for k, a in periods]
        calls.clear()
        reply = await st.call("SetChargingProfile", connectorId=1,
                              csChargingProfiles=_tx_profile(2, periods, start, duration=boundaries + 1))
        if reply != {"status": "Accepted"}:
            raise BenchError("boundary profile: %r" % reply)
        end = start + boundaries + 1
        await asyncio.sleep(max(0.0, end - time.time()) + 0.2)
        boundary_ms = []
        for k in range(1, boundaries + 1):
            at = start + k
            hits = [c for c in calls if at - 0.5 <= c[1] < at + 0.5 and c[2] == periods[k][1]]
            if not hits:
                raise BenchError("no new limit at the boundary %+d s" % k)
            boundary_ms.append((hits[0][1] - at) * 1000)
        early = [ms for ms in boundary_ms if ms < 0]
        if early:
            raise BenchError("limits applied before their boundary: %r ms" % early)
    finally:
        await agent.stop()
        await cs.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    return {"set_charging_profile": dict(_summary(set_ms), round_trip=_summary(round_trip_ms)),
            "period_boundary": _summary(boundary_ms)}


def run(quick: bool = False) -> dict:
    profiles, boundaries = (10, 2) if quick else (100, 20)
    r = asyncio.run(measure(profiles, boundaries))
    r["core"] = bench_smart_charging.run(quick=quick)
    r["target_ms"] = TARGET_MS
    r["targets_met"] = {"set_charging_profile": r["set_charging_profile"]["max_ms"] < TARGET_MS,
                        "period_boundary": r["period_boundary"]["max_ms"] < TARGET_MS}
    r["python"] = sys.version.split()[0]
    return r


def _print(r: dict) -> None:
    print("smart charging enforcement on the simulated board (real clock, loopback, CPython %s)" % r["python"])
    rows = [("SetChargingProfile received -> controller", r["set_charging_profile"]),
            ("  (central system round trip, incl. persisting)", r["set_charging_profile"]["round_trip"]),
            ("period boundary -> controller", r["period_boundary"])]
    width = max(len(name) for name, _ in rows)
    print("  %-*s %5s %9s %9s %9s" % (width, "", "n", "median", "p95", "max"))
    for name, s in rows:
        print("  %-*s %5d %6.2f ms %6.2f ms %6.2f ms" % (width, name, s["n"], s["median_ms"], s["p95_ms"],
                                                         s["max_ms"]))
    met = r["targets_met"]
    print("  target < %.0f ms: SetChargingProfile %s, period boundary %s" % (
        r["target_ms"], "met" if met["set_charging_profile"] else "MISSED",
        "met" if met["period_boundary"] else "MISSED"))
    print()
    bench_smart_charging._print(r["core"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.bench_enforcement", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="few samples, short timing batches")
    ap.add_argument("--json", action="store_true", help="machine-readable figures on stdout")
    args = ap.parse_args(argv)
    try:
        r = run(args.quick)
    except BenchError as e:
        print("bench_enforcement: %s" % e, file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        _print(r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
