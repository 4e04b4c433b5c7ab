"""Replay bench: how fast the agent delivers a backlog of queued transaction
messages after a reconnect, next to the loopback round trip measured in the
same run, and how many journal writes one charging hour costs.

    python -m tools.bench_replay --messages 2000
    python -m tools.bench_replay --messages 50 --json      # the smoke test

Everything runs in this one process on loopback 127.0.0.1: the central system
(``TestCentralSystem``, tools/csms.py, with the soak's counting handlers), the
agent (``agent.app.runner.Agent`` on the simulated board, ``VirtualClock``, a
temporary data_dir) and the baseline charge point, so both measurements pay
for the same central system on the same event loop.

1. Replay. The agent starts a transaction online (MeterValueSampleInterval 1);
   the central system stops; virtual time runs until N-1 MeterValues are
   queued; the EV is unplugged (StopTransaction queued): N messages in the
   journal. The central system starts again on the same port; the clock is
   timed from the first replayed message arriving at the central system to
   the agent's queue being empty (the last CALLRESULT processed). The replay
   is checked: N messages in order, once each, all with the transaction's id.
2. Round trip. A bare ``ocpp.v16.ChargePoint`` (plain library API, no agent
   code) connects to the same central system and sends N MeterValues with the
   agent's payload, one after the other, each awaiting its CALLRESULT. OCPP-J
   allows one outstanding CALL, so N / (time of N round trips) is the limit a
   replay can reach.
3. Journal writes per charging hour. Fresh agents, online: plug in, swipe,
   one virtual hour of charging, unplug; every message confirmed. Counted
   from before the swipe to the confirmed StopTransaction: ``journal.commits``
   (SQLite commits, each a write to the WAL) and ``journal.fsync_commits``
   (those made with synchronous=FULL: Start, Stop and their confirmations),
   for MeterValueSampleInterval 60 and 10. Sampled meter values are committed
   with synchronous=NORMAL: no fsync of their own (SQLite syncs the WAL at its
   checkpoints).

``agent.ocpp16.codec`` sets ``ocpp.messages.ASYNC_VALIDATION = False`` on import;
in this one process that holds for the baseline and the central system too.
This is a measurement: it exits 0 whatever the figures (1 if it could not
measure).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

HOST = "127.0.0.1"
TIMEOUT_S = 120.0


class BenchError(Exception):
    """The bench could not measure something."""


async def _until(predicate, timeout_s: float, what: str, clock=None, step_s: float = 1.0) -> None:
    """Wait in real time (advancing ``clock`` by ``step_s`` each round, if given) until ``predicate()``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise BenchError("%s: not within %.0f s" % (what, timeout_s))
        if clock is not None:
            await clock.advance(step_s)
        await asyncio.sleep(0.002)


class InProcessAgent:
    """An Agent on the simulated board with a VirtualClock, against ``cs``."""

    def __init__(self, workdir: str, name: str, cs, ocpp_keys: dict, journal_max_entries: int = 20000) -> None:
        from hal.runtime.clock import VirtualClock
        from agent.app.config import parse_config
        from agent.app.runner import Agent

        base = os.path.join(workdir, name)
        os.makedirs(base)
        data = {"station": {"id": name, "data_dir": os.path.join(base, "data"),
                            "journal_max_entries": journal_max_entries},
                "csms": {"url": cs.url, "reconnect_initial_s": 1.0, "reconnect_max_s": 5.0},
                "ocpp": dict({"WebSocketPingInterval": 0}, **ocpp_keys), "board": {}}
        self.clock = VirtualClock()
        self.agent = Agent(parse_config(os.path.join(base, "agent.toml"), data), clock=self.clock)
        self.name = name

    @property
    def online(self) -> bool:
        return self.agent.client.online

    async def start(self) -> None:
        await self.agent.start()
        await _until(lambda: self.online, 10, "%s boot" % self.name)

    async def stop(self) -> None:
        await self.agent.stop()

    async def start_transaction(self, ledger, tag: str) -> None:
        """Plug in and swipe; wait until StartTransaction is confirmed."""
        sim = self.agent.loaded.sim
        sim.plug(1)
        sim.swipe(tag)
        await _until(lambda: ledger.starts and not len(self.agent.station.outbox), 10, "StartTransaction")

    async def drained(self, timeout_s: float = 30) -> None:
        await asyncio.wait_for(self.agent.station.outbox.emptied.wait(), timeout_s)


# --------------------------------------------------------------------------- 1. replay

async def replay(cs, port: int, workdir: str, n: int) -> dict:
    from tools.soak import Ledger

    ledger = Ledger("REPLAY")
    ledger.attach(cs)
    a = InProcessAgent(workdir, "REPLAY", cs, {"MeterValueSampleInterval": 1}, journal_max_entries=n + 100)
    await a.start()
    try:
        await a.start_transaction(ledger, "TAG-REPLAY")
        await cs.stop()
        await _until(lambda: not a.online, 10, "disconnect")
        outbox = a.agent.station.outbox
        t0 = time.monotonic()
        if n > 1:
            await a.clock.advance(n - 1 + 0.5)
        await _until(lambda: len(outbox) >= n - 1, 30, "queueing", clock=a.clock)
        a.agent.loaded.sim.unplug(1)
        await _until(lambda: len(outbox) >= n, 10, "StopTransaction queued", clock=a.clock, step_s=0)
        queue_s = time.monotonic() - t0
        queued = len(outbox)
        mark = len(ledger.messages)
        done_at = []

        async def watch():
            await outbox.emptied.wait()
            done_at.append(time.monotonic())

        watcher = asyncio.create_task(watch())
        try:
            await cs.start(HOST, port)
            await _until(lambda: a.online, 30, "reconnect", clock=a.clock)
            await asyncio.wait_for(watcher, TIMEOUT_S)
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        got = ledger.messages[mark:]
        elapsed = done_at[0] - got[0].t
        tid = next(iter(ledger.starts))
        ok = ([m.kind for m in got] == ["meter"] * (queued - 1) + ["stop"] and all(m.tid == tid for m in got)
              and len({m.ident for m in got}) == queued)
        sample = next((m.payload for m in got if m.kind == "meter"), None)
        return {"messages": queued, "elapsed_s": elapsed, "rate_per_s": queued / elapsed,
                "ms_per_message": 1000 * elapsed / queued, "queue_build_s": queue_s,
                "verified_in_order_once": ok, "sample_payload": sample}
    finally:
        await a.stop()


# --------------------------------------------------------------------------- 2. bare round trip

async def round_trip(cs, payload: dict, n: int, warmup: int = 20) -> dict:
    """A plain ``ocpp`` ChargePoint sends ``n`` MeterValues with ``payload`` one after the other."""
    from ocpp.v16 import ChargePoint, call
    from websockets.asyncio.client import connect

    from tools.soak import Ledger

    Ledger("BARE").attach(cs)  # the central system does the same work per message
    async with connect(cs.url + "/BARE", subprotocols=["ocpp1.6"], open_timeout=10) as ws:
        cp = ChargePoint("BARE", ws, response_timeout=10)
        reader = asyncio.create_task(cp.start())
        try:
            await cp.call(call.BootNotification(charge_point_model="bare", charge_point_vendor="ocpp"))

            def request():
                return call.MeterValues(connector_id=payload["connectorId"], meter_value=payload["meterValue"],
                                        transaction_id=payload.get("transactionId"))

            for _ in range(warmup):
                await cp.call(request())
            times = []
            t0 = time.monotonic()
            for _ in range(n):
                t = time.perf_counter()
                await cp.call(request(), suppress=False)
                times.append(time.perf_counter() - t)
            elapsed = time.monotonic() - t0
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
    return {"messages": n, "elapsed_s": elapsed, "rate_per_s": n / elapsed,
            "median_ms": 1000 * statistics.median(times), "mean_ms": 1000 * elapsed / n}


# --------------------------------------------------------------------------- 3. journal writes

async def journal_hour(cs, workdir: str, interval_s: int) -> dict:
    from tools.soak import Ledger

    name = "HOUR%d" % interval_s
    ledger = Ledger(name)
    ledger.attach(cs)
    a = InProcessAgent(workdir, name, cs, {"MeterValueSampleInterval": interval_s})
    await a.start()
    try:
        journal = a.agent.journal
        c0, f0 = journal.commits, journal.fsync_commits
        await a.start_transaction(ledger, "TAG-" + name)
        elapsed = 0
        while elapsed < 3600:  # time moves one sample at a time; each MeterValues is confirmed before the next
            await a.clock.advance(interval_s)
            elapsed += interval_s
            await a.drained()
        a.agent.loaded.sim.unplug(1)
        await _until(lambda: ledger.stopped_ids(), 10, "StopTransaction")
        await a.drained()
        await asyncio.sleep(0.01)
        meters = sum(1 for m in ledger.messages if m.kind == "meter")
        return {"interval_s": interval_s, "hours": 1.0, "meter_values": meters,
                "commits": journal.commits - c0, "fsync_commits": journal.fsync_commits - f0}
    finally:
        await a.stop()


# --------------------------------------------------------------------------- all

async def bench(n: int) -> dict:
    import logging

    from tools.csms import TestCentralSystem

    logging.getLogger("agent").setLevel(logging.CRITICAL)  # the outage is on purpose
    workdir = tempfile.mkdtemp(prefix="ocpp-replay-")
    cs = TestCentralSystem(quiet=True, protocols=("ocpp1.6",))
    await cs.start(HOST, 0)
    port = cs.port
    try:
        r = await asyncio.wait_for(replay(cs, port, workdir, n), TIMEOUT_S)
        if r["sample_payload"] is None:
            raise BenchError("no MeterValues replayed")
        rt = await asyncio.wait_for(round_trip(cs, r.pop("sample_payload"), n), TIMEOUT_S)
        hours = [await asyncio.wait_for(journal_hour(cs, workdir, s), TIMEOUT_S) for s in (60, 10)]
    finally:
        await cs.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    import ocpp.messages

    return {"replay": r, "round_trip": rt, "replay_vs_round_trip": r["rate_per_s"] / rt["rate_per_s"],
            "journal_per_charging_hour": hours, "versions": _versions(),
            "async_validation": ocpp.messages.ASYNC_VALIDATION}


def _versions() -> dict:
    from importlib.metadata import version

    out = {"python": sys.version.split()[0]}
    for name in ("ocpp", "websockets"):
        try:
            out[name] = version(name)
        except Exception:
            out[name] = None
    return out


def render(r: dict) -> str:
    rp, rt, v = r["replay"], r["round_trip"], r["versions"]
    lines = [
        "ocpp-agent replay bench - Python %s, ocpp %s, websockets %s; loopback %s, one process"
        % (v["python"], v["ocpp"], v["websockets"], HOST),
        "",
        "  replay after reconnect   %6d messages in %.3f s: %8.0f msg/s  (%.3f ms per message)%s"
        % (rp["messages"], rp["elapsed_s"], rp["rate_per_s"], rp["ms_per_message"],
           "" if rp["verified_in_order_once"] else "  NOT IN ORDER/ONCE"),
        "  loopback round trip      %6d CALL/CALLRESULT in %.3f s: %8.0f msg/s  (median %.3f ms, bare ocpp ChargePoint)"
        % (rt["messages"], rt["elapsed_s"], rt["rate_per_s"], rt["median_ms"]),
        "  replay / round-trip limit  %.0f %%" % (100 * r["replay_vs_round_trip"]),
        "",
        "  journal writes per charging hour (online; Start, 1 h, Stop, all confirmed):",
    ]
    for h in r["journal_per_charging_hour"]:
        lines.append("    MeterValueSampleInterval %3d s: %4d commits (%d MeterValues), %d of them fsync'd (FULL)"
                     % (h["interval_s"], h["commits"], h["meter_values"], h["fsync_commits"]))
    lines += [
        "",
        "Replay: %d MeterValues and the StopTransaction queued while the central system was away (built in"
        % (rp["messages"] - 1),
        "%.1f s of real time); timed from the first replayed message at the central system to the agent's"
        % rp["queue_build_s"],
        "queue empty. Round trip: a plain ocpp.v16.ChargePoint sending the same MeterValues payload, one",
        "CALL at a time, to the same central system in the same process (ASYNC_VALIDATION %s for all)."
        % r["async_validation"],
        "OCPP-J allows one outstanding CALL, so the round trip is the limit of any replay.",
    ]
    return "\n".join(lines)


def main(argv: list | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.bench_replay", description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=2000, help="transaction messages queued and replayed (default 2000)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    opts = p.parse_args(argv)
    if opts.messages < 2:
        p.error("--messages must be at least 2 (MeterValues and a StopTransaction)")
    try:
        result = asyncio.run(bench(opts.messages))
    except (BenchError, asyncio.TimeoutError) as e:
        print("replay bench failed: %s" % (e or "timed out"), file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2) if opts.json else render(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
