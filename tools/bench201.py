"""OCPP 2.0.1 bench: what the agent costs when it speaks 2.0.1, each figure next to a
baseline measured in the same run, all on loopback 127.0.0.1.

    python -m tools.bench201            # full run (about a minute), a table with explanations
    python -m tools.bench201 --quick    # a fast, coarse run (the smoke test uses it)
    python -m tools.bench201 --json     # machine-readable results on stdout

The process, /proc and central-system plumbing is tools/bench.py's (imported, not
copied): one ``TestCentralSystem`` serving ocpp2.0.1 and ocpp1.6 in the bench's
event loop, every charger a subprocess. Figures:

1. Idle RSS: the agent pinned to 2.0.1 (``csms.ocpp_version = "2.0.1"``), the same
   agent on 1.6, and the bare import of the dependencies (tools.bench's baseline
   process), all alive at the same moment, read after the same settle time.
2. Idle CPU of the same three processes over the same window.
3. CPU per TransactionEvent round trip: with a transaction running on the 2.0.1
   agent (EV plugged and badged over the simulated board's control socket), the
   central system sends TriggerMessage(TransactionEvent, EVSE 1) and waits for the
   TransactionEvent Updated and its answer, over and over; next to a stock
   ``ocpp.v201.ChargePoint`` (plain library API, ``python -m tools.bench201
   --stock-cp URL PAYLOAD``, defined at the end of this file) answering the same
   triggers with the agent's payload shape in its own process.

A measurement, not a test: it exits 0 whatever the figures are (1 only if it
could not measure).
"""

from __future__ import annotations

# Only light modules at the top (the stock charge point runs from this module and its
# RSS is reported): tools.bench itself imports nothing heavy at module level.
import asyncio
import json
import os
import sys
import time

from tools.bench import (BASELINE_IMPORTS, BOOT_TIMEOUT_S, CLK_TCK, HOST, ROUND_TRIP_TIMEOUT_S,
                         WARMUP_IMPORTS, Bench, BenchError, Processes, _fmt_ratio, _versions, bench_main, cpu_s,
                         read_line, rss_kib, run_stock_station, utc_stamp)

WARMUP_IMPORTS_201 = WARMUP_IMPORTS + ", ocpp.v201, agent.ocpp201.session, tools.bench201"
EVSE_ID = 1
TAG = "BENCH-TAG-1"
SIM_SOCKET = "sim.sock"


class Bench201(Bench):
    """tools.bench's Bench (spawning, boot waits, the bare process) with agents of either version."""

    def __init__(self, opts, cs, procs: Processes) -> None:
        super().__init__(opts, cs, procs)
        self._version = "1.6"
        self.data_dirs: dict[str, str] = {}

    # ------------------------------------------------------------------ spawning
    def _agent_config(self, station_id: str) -> str:
        """tools.bench's agent configuration (status page on, on a free port) with
        ``csms.ocpp_version`` set to the version being started."""
        self._agents += 1
        base = os.path.join(self.procs.workdir, "agent-%d" % self._agents)
        os.makedirs(base)
        data_dir = self.data_dirs[station_id] = os.path.join(base, "data")
        path = os.path.join(base, "agent.toml")
        with open(path, "w") as f:
            f.write('[station]\nid = "%s"\ndata_dir = "%s"\n\n[csms]\nurl = "%s"\nocpp_version = "%s"\n\n'
                    '[status_page]\nport = 0\n' % (station_id, data_dir, self.cs.url, self._version))
        return path

    async def start_agent_version(self, station_id: str, version: str):
        self._version = version
        proc, station, _boot_s = await self.start_agent(station_id)
        if station.version != version:
            raise BenchError("%s speaks OCPP %s, not %s" % (station_id, station.version, version))
        return proc, station

    async def wait_idle(self, station, version: str) -> None:
        """Until the agent reported connector/EVSE 1 (its boot is done)."""
        if version == "2.0.1":
            await station.wait_for("StatusNotification", lambda p: p.get("evseId") == EVSE_ID,
                                   timeout_s=BOOT_TIMEOUT_S)
        else:
            await station.wait_for("StatusNotification", lambda p: p.get("connectorId") == 1,
                                   timeout_s=BOOT_TIMEOUT_S)

    async def sim(self, station_id: str, command: str, *args: str) -> dict:
        from hal.sim_control import send_command

        reply = await send_command(os.path.join(self.data_dirs[station_id], SIM_SOCKET), command, list(args))
        if not reply.get("ok"):
            raise BenchError("sim %s %s: %s" % (command, " ".join(args), reply.get("error")))
        return reply["result"]

    # ------------------------------------------------------------------ 1 + 2. idle RSS and CPU
    async def idle(self) -> tuple[dict, tuple]:
        await self.procs.stop(await self._warm_up())
        self.progress("idle: the agent on 2.0.1, on 1.6 and the bare import, side by side")
        a201, s201 = await self.start_agent_version("BENCH-201", "2.0.1")
        a16, s16 = await self.start_agent_version("BENCH-16", "1.6")
        await self.wait_idle(s201, "2.0.1")
        await self.wait_idle(s16, "1.6")
        bare, _ = await self.start_bare(wait=True)
        self.progress("idle: settling %.0f s, then a %.0f s CPU window" % (self.opts.settle_s, self.opts.idle_s))
        await asyncio.sleep(self.opts.settle_s)
        pids = {"agent_201": a201.pid, "agent_16": a16.pid, "baseline": bare.pid}
        rss = {k: rss_kib(pid) for k, pid in pids.items()}
        c0, t0 = {k: cpu_s(pid) for k, pid in pids.items()}, time.monotonic()
        await asyncio.sleep(self.opts.idle_s)
        c1, t1 = {k: cpu_s(pid) for k, pid in pids.items()}, time.monotonic()
        window = t1 - t0
        await self.procs.stop(bare)
        await self.procs.stop(a16)
        return {
            "rss": {"agent_201_mib": rss["agent_201"] / 1024, "agent_16_mib": rss["agent_16"] / 1024,
                    "baseline_mib": rss["baseline"] / 1024,
                    "ratio_201_vs_16": rss["agent_201"] / rss["agent_16"],
                    "ratio_201_vs_baseline": rss["agent_201"] / rss["baseline"],
                    "ratio_16_vs_baseline": rss["agent_16"] / rss["baseline"]},
            "idle_cpu": {"window_s": window, "tick_s": 1 / CLK_TCK,
                         **{"%s_pct" % k: 100 * (c1[k] - c0[k]) / window for k in pids},
                         "cpu_s": {k: c1[k] - c0[k] for k in pids}},
        }, (a201, s201)

    async def _warm_up(self):
        """Unmeasured: compile every module the measured processes import into the bytecode cache."""
        warm = await self.procs.spawn("-c", WARMUP_IMPORTS_201)
        if await asyncio.wait_for(warm.wait(), BOOT_TIMEOUT_S) != 0:
            raise BenchError("warm-up imports failed:\n%s" % self.procs.log_tail(warm))
        return warm

    # ------------------------------------------------------------------ 3. TransactionEvent CPU
    async def triggered_round_trips(self, proc, station, count: int) -> float:
        """CS sends TriggerMessage(TransactionEvent, EVSE 1) ``count`` times, one after the
        other, each waiting for the charger's TransactionEvent and the central system's
        answer to it; return the charger's CPU seconds."""
        from tools.csms import IN

        def triggered(message) -> bool:  # not a periodic or a state-change event
            return (message.direction == IN and message.action == "TransactionEvent"
                    and message.payload.get("eventType") == "Updated"
                    and message.payload.get("triggerReason") == "Trigger")

        c0 = cpu_s(proc.pid)
        for _ in range(count):
            mark = len(station.messages)
            reply = await asyncio.wait_for(
                station.call("TriggerMessage", requestedMessage="TransactionEvent", evse={"id": EVSE_ID}),
                ROUND_TRIP_TIMEOUT_S)
            if reply.get("status") != "Accepted":
                raise BenchError("TriggerMessage(TransactionEvent) answered %r" % reply)
            event = await station._wait(station.messages, triggered, mark, ROUND_TRIP_TIMEOUT_S,
                                        "triggered TransactionEvent")
            # Until the central system has answered it (wait_for only sees frames from the station).
            await station._wait(station.messages, lambda m: m.action == "TransactionEvent.conf",
                                station.messages.index(event, mark) + 1, ROUND_TRIP_TIMEOUT_S,
                                "TransactionEvent.conf")
        await asyncio.sleep(0.05)  # the charger reads the last CALLRESULT
        return cpu_s(proc.pid) - c0

    async def transaction_events(self, agent_proc, agent_station) -> dict:
        from tools.csms import IN

        n, warm = self.opts.messages, self.opts.warmup
        self.progress("TransactionEvent: EV plugs in and badges on the 2.0.1 agent")
        mark = len(agent_station.messages)
        await self.sim("BENCH-201", "plug", str(EVSE_ID))
        await self.sim("BENCH-201", "swipe", TAG)
        await agent_station.wait_for("TransactionEvent", lambda p: p["eventType"] == "Started",
                                     timeout_s=ROUND_TRIP_TIMEOUT_S, start_index=mark)
        await self._until_charging("BENCH-201")

        # The agent's own background while charging, no triggers: what a round trip's figure includes.
        await asyncio.sleep(self.opts.settle_s)
        c0, t0 = cpu_s(agent_proc.pid), time.monotonic()
        await asyncio.sleep(self.opts.idle_s)
        background = (cpu_s(agent_proc.pid) - c0) / (time.monotonic() - t0)

        self.progress("TransactionEvent: agent, %d triggered round trips (+%d warm-up)" % (n, warm))
        await self.triggered_round_trips(agent_proc, agent_station, warm)
        t0 = time.monotonic()
        agent_cpu = await self.triggered_round_trips(agent_proc, agent_station, n)
        agent_wall = time.monotonic() - t0
        agent_rss = rss_kib(agent_proc.pid)
        sample = [m.payload for m in agent_station.messages if m.direction == IN and m.action == "TransactionEvent"
                  and m.payload.get("triggerReason") == "Trigger"][-1]

        self.progress("TransactionEvent: stock ocpp.v201 ChargePoint, %d triggered round trips" % n)
        stock, station = await self._start_stock("BENCH-STOCK-201", sample)
        await self.triggered_round_trips(stock, station, warm)
        t0 = time.monotonic()
        stock_cpu = await self.triggered_round_trips(stock, station, n)
        stock_wall = time.monotonic() - t0
        stock_rss = rss_kib(stock.pid)
        await self.procs.stop(stock)

        self.progress("TransactionEvent: stock ChargePoint with ASYNC_VALIDATION off, %d triggered round trips" % n)
        stock_sync_cpu = await self.stock_sync_validation_cpu("BENCH-STOCK-201-SYNC", sample, warm, n)

        agent_ms, stock_ms, sync_ms = (1000 * x / n for x in (agent_cpu, stock_cpu, stock_sync_cpu))
        background_ms = 1000 * background * agent_wall / n
        return {
            "messages": n, "payload": sample,
            "agent_ms": agent_ms, "stock_triggered_ms": stock_ms, "stock_sync_validation_ms": sync_ms,
            "ratio": agent_ms / stock_ms if stock_ms > 0 else None,
            "ratio_vs_sync_validation": agent_ms / sync_ms if sync_ms > 0 else None,
            "agent_background_pct": 100 * background, "agent_background_ms": background_ms,
            "agent_wall_ms": 1000 * agent_wall / n, "stock_wall_ms": 1000 * stock_wall / n,
            "cpu_s": {"agent": agent_cpu, "stock_triggered": stock_cpu, "stock_sync_validation": stock_sync_cpu},
            "agent_rss_mib": agent_rss / 1024, "stock_cp_rss_mib": stock_rss / 1024,
            "rss_ratio": agent_rss / stock_rss,
        }

    async def _until_charging(self, station_id: str) -> None:
        deadline = time.monotonic() + ROUND_TRIP_TIMEOUT_S
        while not (await self.sim(station_id, "status"))["connectors"][0]["contactor_closed"]:
            if time.monotonic() > deadline:
                raise BenchError("%s: the contactor did not close after the badge" % station_id)
            await asyncio.sleep(0.05)

    async def _start_stock(self, station_id: str, sample: dict, *flags: str):
        stock = await self.procs.spawn("-m", "tools.bench201", "--stock-cp", self.cs.url + "/" + station_id,
                                       json.dumps(sample), *flags, stdin=True, stdout=True)
        line = await read_line(stock, "stock 2.0.1 charging station", BOOT_TIMEOUT_S)
        if line != "ready":
            raise BenchError("stock 2.0.1 charging station printed %r:\n%s" % (line, self.procs.log_tail(stock)))
        station = await self.cs.wait_for_station(station_id, timeout_s=BOOT_TIMEOUT_S)
        if station.version != "2.0.1":
            raise BenchError("the stock charging station speaks %s" % station.version)
        return stock, station

    # ------------------------------------------------------------------ all
    async def run(self) -> dict:
        idle, (agent, station) = await self.idle()
        events = await self.transaction_events(agent, station)
        await self.procs.stop(agent)
        return {**idle, "transaction_event": events}


async def _bench(opts) -> dict:
    import shutil
    import tempfile

    from tools.csms import TestCentralSystem

    workdir = tempfile.mkdtemp(prefix="ocpp-bench201-")
    procs = Processes(workdir, opts.bytecode_cache)
    cs = TestCentralSystem(quiet=True)  # serves ocpp2.0.1 and ocpp1.6: each agent offers only its own
    await cs.start(HOST, 0)
    try:
        results = await asyncio.wait_for(Bench201(opts, cs, procs).run(), opts.timeout_s)
    finally:
        await procs.stop_all()
        await cs.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    settings = {k: getattr(opts, k) for k in ("quick", "settle_s", "idle_s", "messages", "warmup", "bytecode_cache")}
    return {"settings": settings, "versions": _versions(), "clock_tick_s": 1 / CLK_TCK, **results}


# --------------------------------------------------------------------------- report

_HEADER = ("Figure", "Agent 2.0.1", "Baseline", "Ratio")


def render(r: dict) -> str:
    s, v = r["settings"], r["versions"]
    rss, idle, te = r["rss"], r["idle_cpu"], r["transaction_event"]
    n_values = sum(len(m.get("sampledValue", [])) for m in te["payload"].get("meterValue", []))
    rows = [
        ("1 Idle RSS, vs the agent on 1.6", "%.1f MiB" % rss["agent_201_mib"], "%.1f MiB" % rss["agent_16_mib"],
         _fmt_ratio(rss["ratio_201_vs_16"])),
        ("  vs the bare import", "", "%.1f MiB" % rss["baseline_mib"], _fmt_ratio(rss["ratio_201_vs_baseline"])),
        ("  (the agent on 1.6 vs the bare import)", "", "", _fmt_ratio(rss["ratio_16_vs_baseline"])),
        ("  after the round trips of 3, vs stock CP", "%.1f MiB" % te["agent_rss_mib"],
         "%.1f MiB" % te["stock_cp_rss_mib"], _fmt_ratio(te["rss_ratio"])),
        ("2 Idle CPU (%% of one core, %.0f s), vs 1.6" % idle["window_s"], "%.3f %%" % idle["agent_201_pct"],
         "%.3f %%" % idle["agent_16_pct"], "-"),
        ("  bare import", "", "%.3f %%" % idle["baseline_pct"], "-"),
        ("3 CPU per TransactionEvent round trip", "%.3f ms" % te["agent_ms"], "%.3f ms" % te["stock_triggered_ms"],
         _fmt_ratio(te["ratio"])),
        ("  stock, ASYNC_VALIDATION off", "", "%.3f ms" % te["stock_sync_validation_ms"],
         _fmt_ratio(te["ratio_vs_sync_validation"])),
        ("  of which agent background (charging)", "%.3f ms" % te["agent_background_ms"], "", ""),
    ]
    widths = [max(len(str(row[i])) for row in rows + [_HEADER]) for i in range(4)]
    lines = ["ocpp-agent OCPP 2.0.1 bench (%s) - Python %s, ocpp %s, websockets %s; loopback %s"
             % ("quick, coarse" if s["quick"] else "full", v["python"], v["ocpp"], v["websockets"], HOST), ""]
    for row in [_HEADER] + rows:
        lines.append("  ".join(str(cell).ljust(widths[i]) if i == 0 else str(cell).rjust(widths[i])
                               for i, cell in enumerate(row)).rstrip())
    lines.append("")
    lines += [
        "What each figure is (agent = `python -m agent.app.cli run` on the simulated board, fresh data dir,",
        "status page on, the same configuration but csms.ocpp_version \"2.0.1\" or \"1.6\", connected to the",
        "bench's TestCentralSystem; bare import = `python -c \"%s\"`):" % BASELINE_IMPORTS,
        "1 VmRSS from /proc/PID/status of the three processes alive at the same moment, read %.0f s after"
        % s["settle_s"],
        "  both agents reported EVSE/connector 1 (boot done, idle, no EV). The agent on 2.0.1 loads",
        "  agent.ocpp201 and ocpp.v201 instead of agent.ocpp16 and ocpp.v16. Fourth row: the 2.0.1 agent",
        "  after the round trips of figure 3 (a transaction running), next to the stock ocpp.v201",
        "  ChargePoint process of figure 3 after its own (library defaults): the library stack alone.",
        "2 utime+stime from /proc/PID/stat over the same idle window, as %% of one core; one clock tick ="
        " %.0f ms." % (1000 * r["clock_tick_s"]),
        "  CPU used: 2.0.1 agent %.0f ms, 1.6 agent %.0f ms, bare %.0f ms." % tuple(
            1000 * idle["cpu_s"][k] for k in ("agent_201", "agent_16", "baseline")),
        "3 Charging-station CPU (utime+stime) per round trip over %d round trips after %d warm-up ones,"
        % (te["messages"], s["warmup"]),
        "  a transaction running (EV plugged and badged over the sim control socket, charging): the",
        "  central system sends TriggerMessage(TransactionEvent, evse 1); the station answers Accepted,",
        "  sends TransactionEvent Updated (triggerReason Trigger, %d sampled values) and reads the" % n_values,
        "  CALLRESULT; the next trigger goes after that. Agent: its real trigger path (station meter read,",
        "  seqNo kept in the journal, event building, OCPP call). Baseline: a stock ocpp.v201.ChargePoint",
        "  (plain library API, library defaults) in its own process answering the same triggers with the",
        "  agent's payload (timestamps refreshed, seqNo counted). 'ASYNC_VALIDATION off': the same stock",
        "  station with ocpp.messages.ASYNC_VALIDATION = False, as the agent sets it. 'background': the",
        "  agent's CPU while charging without triggers (%.3f %% of a core: board polling, sampling)," % (
            te["agent_background_pct"]),
        "  times the wall time of a round trip (agent %.2f ms, stock %.2f ms): included in the agent's figure."
        % (te["agent_wall_ms"], te["stock_wall_ms"]),
        "Bytecode: %s." % ("warm cache for every process (PYTHONPYCACHEPREFIX in the bench's temporary"
                           " directory, filled by the warm-up), as on an installed charger" if s["bytecode_cache"]
                           else "as the environment has it"),
        "No targets: issue 12 asks for the figures side by side; CPU figures are only as good as the clock tick.",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- stock charging station

async def _stock_cp(url: str, payload_json: str) -> None:
    """A 2.0.1 charging station written with the plain ``ocpp`` library API: boots, then
    answers TriggerMessage(TransactionEvent) with a TransactionEvent Updated shaped like ``payload``."""
    from ocpp.charge_point import camel_to_snake_case
    from ocpp.routing import after, on
    from ocpp.v201 import ChargePoint, call, call_result
    from ocpp.v201.enums import Action

    sample = json.loads(payload_json)
    seq_no = [sample["seqNo"]]

    def transaction_event():
        stamp = utc_stamp()
        seq_no[0] += 1
        payload = dict(sample, timestamp=stamp, seqNo=seq_no[0], triggerReason="Trigger", eventType="Updated",
                       meterValue=[dict(mv, timestamp=stamp) for mv in sample.get("meterValue", [])])
        return call.TransactionEvent(**camel_to_snake_case(payload))

    class StockChargingStation(ChargePoint):
        @on(Action.trigger_message)
        async def on_trigger_message(self, requested_message, evse=None, **_):
            return call_result.TriggerMessage(status="Accepted")

        @after(Action.trigger_message)
        async def after_trigger_message(self, requested_message, evse=None, **_):
            if requested_message == "TransactionEvent":
                await self.call(transaction_event())

    async def serve(_cp, stdin) -> None:
        await stdin.read()  # until the bench closes stdin

    await run_stock_station(url, "ocpp2.0.1", StockChargingStation,
                            call.BootNotification(charging_station={"model": "stock", "vendorName": "ocpp"},
                                                  reason="PowerUp"), serve)


# --------------------------------------------------------------------------- command line

def main(argv: list | None = None) -> int:
    return bench_main(argv, "python -m tools.bench201", __doc__.splitlines()[0], "TransactionEvent", _stock_cp,
                      _bench, render)

if __name__ == "__main__":
    sys.exit(main())
