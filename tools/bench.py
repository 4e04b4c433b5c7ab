"""Resource bench: what the running agent costs, each figure next to a baseline
measured in the same run, all on loopback 127.0.0.1.

    python -m tools.bench            # full run (about 20 s), a table with explanations
    python -m tools.bench --quick    # a fast, coarse run (the smoke test uses it)
    python -m tools.bench --json     # machine-readable results on stdout

The bench starts a ``TestCentralSystem`` (tools/csms.py) in its own event loop
and runs every charger as a subprocess: the agent (``python -m agent.app.cli run``
on the simulated board, fresh temporary data directory), a bare process that
only imports the agent's dependencies (``import ocpp, websockets, pymodbus``),
and a stock ``ocpp.v16.ChargePoint`` written with the plain library API
(``python -m tools.bench --stock-cp URL PAYLOAD``, defined at the end of this
file). Memory and CPU are read from /proc/PID/status (VmRSS) and
/proc/PID/stat (utime + stime) of those processes, so the central system's own
work never counts. This is a measurement, not a test: it prints figures and
the targets, and exits 0 whatever they are (1 only if it could not measure).
"""

from __future__ import annotations

# Only light modules at the top: the stock charge point runs from this module too,
# and its RSS is reported; the bench's own modules are imported where used.
import asyncio
import json
import os
import signal
import sys
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# The targets of issue 11: RSS against the stock ocpp charge point (both after their
# MeterValues round trips), start-up against the bare import of the dependencies.
TARGET_RSS_VS_STOCK_RATIO = 1.1
TARGET_START_RATIO = 1.5
TARGET_IDLE_CPU_PCT = 0.5
TARGET_MV_CPU_RATIO = 1.0

BASELINE_IMPORTS = "import ocpp, websockets, pymodbus"
# ``--wait``: stay alive (blocked reading stdin, no CPU) until stdin closes.
BARE_SCRIPT = BASELINE_IMPORTS + """
import sys
print("ready", flush=True)
if "--wait" in sys.argv:
    sys.stdin.read()
"""

# Every module the measured processes import (lazy ones included), compiled once before measuring.
WARMUP_IMPORTS = ("import ocpp, websockets, pymodbus, ocpp.v16, websockets.asyncio.client, agent.app.cli, "
                  "agent.app.runner, agent.app.status_page, hal.sim, hal.sim_control, tools.bench")

STOP_TIMEOUT_S = 10.0
BOOT_TIMEOUT_S = 30.0
ROUND_TRIP_TIMEOUT_S = 10.0


class BenchError(Exception):
    """The bench could not measure something (a process failed, a timeout)."""


# --------------------------------------------------------------------------- /proc

def rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` in KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise BenchError("no VmRSS for pid %d" % pid)


def cpu_s(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads) in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rpartition(")")[2].split()
    # fields[0] is field 3 (state): utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


# --------------------------------------------------------------------------- processes

def _die_with_parent():
    """preexec_fn: SIGTERM the child when the bench dies, even by SIGKILL (Linux prctl)."""
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    PR_SET_PDEATHSIG = 1
    return lambda: prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Processes:
    """Every subprocess the bench starts; ``stop_all()`` ends them (SIGTERM, then SIGKILL)."""

    def __init__(self, workdir: str, bytecode_cache: bool) -> None:
        self.workdir = workdir
        self.procs: list = []
        self.env = dict(os.environ)
        for name in ("PYTHONPROFILEIMPORTTIME", "PYTHONTRACEMALLOC", "PYTHONDEVMODE", "PYTHONINSPECT"):
            self.env.pop(name, None)
        if bytecode_cache:
            # As on an installed charger: modules load from cached bytecode, never compiled at
            # start. The cache lives in the temporary directory; the warm-up fills it.
            self.env.pop("PYTHONDONTWRITEBYTECODE", None)
            self.env["PYTHONPYCACHEPREFIX"] = os.path.join(workdir, "pycache")
        self._logs = 0
        self._preexec = _die_with_parent()

    async def spawn(self, *args: str, stdin: bool = False, stdout: bool = False):
        """Start ``python *args`` in the project root; stdout piped if asked, else logged to a file."""
        self._logs += 1
        log_path = os.path.join(self.workdir, "proc-%d.log" % self._logs)
        log_file = open(log_path, "wb")
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, *args, cwd=ROOT, env=self.env,
                stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE if stdout else log_file, stderr=log_file,
                preexec_fn=self._preexec)
        finally:
            log_file.close()
        proc.log_path = log_path
        self.procs.append(proc)
        return proc

    def log_tail(self, proc, lines: int = 15) -> str:
        try:
            with open(proc.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    async def stop(self, proc) -> None:
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.close()
        if proc.returncode is None:
            try:
                proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
            except asyncio.TimeoutError:
                try:
                    proc.kill()
                except ProcessLookupError:
                    pass
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
        if proc in self.procs:
            self.procs.remove(proc)

    async def stop_all(self) -> None:
        for proc in list(self.procs):
            try:
                await self.stop(proc)
            except Exception:  # keep ending the others
                if proc.returncode is None:
                    try:
                        proc.kill()
                    except ProcessLookupError:
                        pass


async def read_line(proc, what: str, timeout_s: float) -> str:
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), timeout_s)
    except asyncio.TimeoutError:
        raise BenchError("%s: no output within %.0f s" % (what, timeout_s)) from None
    if not line:
        raise BenchError("%s exited (status %s) before answering" % (what, await _returncode(proc)))
    return line.decode().strip()


async def _returncode(proc):
    try:
        return await asyncio.wait_for(proc.wait(), 2)
    except asyncio.TimeoutError:
        return None


# --------------------------------------------------------------------------- the bench

def _is_meter_values_conf(message) -> bool:
    return message.action == "MeterValues.conf"


class Bench:
    def __init__(self, opts: argparse.Namespace, cs, procs: Processes) -> None:
        self.opts = opts
        self.cs = cs
        self.procs = procs
        self._agents = 0

    def progress(self, text: str) -> None:
        if not self.opts.json:
            print("  " + text, file=sys.stderr, flush=True)

    # ------------------------------------------------------------------ spawning
    def _agent_config(self, station_id: str) -> str:
        self._agents += 1
        base = os.path.join(self.procs.workdir, "agent-%d" % self._agents)
        os.makedirs(base)
        path = os.path.join(base, "agent.toml")
        with open(path, "w") as f:
            # The status page runs as on a charger (enabled), on a free port: a taken 8080 would
            # leave it out of the figures.
            f.write('[station]\nid = "%s"\ndata_dir = "%s"\n\n[csms]\nurl = "%s"\n\n[status_page]\nport = 0\n'
                    % (station_id, os.path.join(base, "data"), self.cs.url))
        return path

    async def start_agent(self, station_id: str):
        """Start an agent; return (process, station handle, seconds from spawn to BootNotification)."""
        config = self._agent_config(station_id)
        t0 = time.monotonic()
        proc = await self.procs.spawn("-m", "agent.app.cli", "run", "--config", config)
        try:
            deadline = t0 + BOOT_TIMEOUT_S
            station = await self._wait_or_exit(
                proc, self.cs.wait_for_station(station_id, timeout_s=BOOT_TIMEOUT_S), "agent connect")
            await self._wait_or_exit(
                proc, station.wait_for("BootNotification", timeout_s=max(0.1, deadline - time.monotonic())),
                "agent BootNotification")
            boot_s = time.monotonic() - t0
        except Exception:
            tail = self.procs.log_tail(proc)
            await self.procs.stop(proc)
            raise BenchError("the agent did not boot; its log ends:\n%s" % tail) from None
        return proc, station, boot_s

    async def _wait_or_exit(self, proc, awaitable, what: str):
        waiting = asyncio.ensure_future(awaitable)
        exited = asyncio.ensure_future(proc.wait())
        try:
            await asyncio.wait({waiting, exited}, return_when=asyncio.FIRST_COMPLETED)
            if not waiting.done():
                raise BenchError("%s: the process exited with status %s" % (what, proc.returncode))
            return waiting.result()
        finally:
            for task in (waiting, exited):
                task.cancel()
            await asyncio.gather(waiting, exited, return_exceptions=True)

    async def start_bare(self, wait: bool):
        """Start the bare import process; return (process, seconds from spawn to its 'ready' line)."""
        t0 = time.monotonic()
        proc = await self.procs.spawn("-c", BARE_SCRIPT, *(["--wait"] if wait else []), stdin=wait, stdout=True)
        line = await read_line(proc, "bare import process", BOOT_TIMEOUT_S)
        elapsed = time.monotonic() - t0
        if line != "ready":
            raise BenchError("bare import process printed %r:\n%s" % (line, self.procs.log_tail(proc)))
        return proc, elapsed

    # ------------------------------------------------------------------ 2. start-up time
    async def boot_times(self) -> dict:
        import statistics

        # Unmeasured runs first: compiled bytecode and the page cache are warm.
        warm = await self.procs.spawn("-c", WARMUP_IMPORTS)
        if await asyncio.wait_for(warm.wait(), BOOT_TIMEOUT_S) != 0:
            raise BenchError("warm-up imports failed:\n%s" % self.procs.log_tail(warm))
        await self.procs.stop(warm)
        proc, _ = await self.start_bare(wait=False)
        await self.procs.stop(proc)
        proc, _station, _ = await self.start_agent("BENCH-WARMUP")
        await self.procs.stop(proc)
        agent, bare, stock = [], [], []
        for i in range(self.opts.repeats):
            self.progress("start-up run %d/%d" % (i + 1, self.opts.repeats))
            proc, elapsed = await self.start_bare(wait=False)
            bare.append(elapsed)
            await self.procs.stop(proc)
            proc, _station, elapsed = await self.start_agent("BENCH-BOOT-%d" % (i + 1))
            agent.append(elapsed)
            await self.procs.stop(proc)
            t0 = time.monotonic()  # the library's own floor: a stock charge point booting
            proc, _station = await self._start_stock("BENCH-STOCK-BOOT-%d" % (i + 1), {"connectorId": 1,
                                                                                     "meterValue": []})
            stock.append(time.monotonic() - t0)
            await self.procs.stop(proc)
        agent_med, bare_med, stock_med = statistics.median(agent), statistics.median(bare), statistics.median(stock)
        return {"agent_s": agent_med, "baseline_s": bare_med, "ratio": agent_med / bare_med,
                "target_ratio": TARGET_START_RATIO, "target_met": agent_med / bare_med <= TARGET_START_RATIO,
                "agent_runs_s": agent, "baseline_runs_s": bare, "stock_cp_s": stock_med,
                "stock_cp_runs_s": stock}

    # ------------------------------------------------------------------ 1 + 3. idle RSS and CPU
    async def idle(self, agent_proc, station) -> dict:
        await station.wait_for("StatusNotification", lambda p: p.get("connectorId") == 1, timeout_s=BOOT_TIMEOUT_S)
        bare, _ = await self.start_bare(wait=True)
        self.progress("idle: settling %.0f s, then a %.0f s CPU window" % (self.opts.settle_s, self.opts.idle_s))
        await asyncio.sleep(self.opts.settle_s)
        agent_rss, bare_rss = rss_kib(agent_proc.pid), rss_kib(bare.pid)
        a0, b0, t0 = cpu_s(agent_proc.pid), cpu_s(bare.pid), time.monotonic()
        await asyncio.sleep(self.opts.idle_s)
        a1, b1, t1 = cpu_s(agent_proc.pid), cpu_s(bare.pid), time.monotonic()
        agent_rss_after, bare_rss_after = rss_kib(agent_proc.pid), rss_kib(bare.pid)
        await self.procs.stop(bare)
        window = t1 - t0
        return {
            "rss": {"agent_mib": agent_rss / 1024, "baseline_mib": bare_rss / 1024,
                    "ratio": agent_rss / bare_rss,
                    "agent_after_idle_mib": agent_rss_after / 1024,
                    "baseline_after_idle_mib": bare_rss_after / 1024},
            "idle_cpu": {"agent_pct": 100 * (a1 - a0) / window, "baseline_pct": 100 * (b1 - b0) / window,
                         "window_s": window, "agent_cpu_s": a1 - a0, "tick_s": 1 / CLK_TCK,
                         "target_pct": TARGET_IDLE_CPU_PCT},
        }

    # ------------------------------------------------------------------ 4. MeterValues CPU
    async def triggered_round_trips(self, proc, station, count: int) -> float:
        """CS sends TriggerMessage(MeterValues, connector 1) ``count`` times, one after the
        other, each waiting for the charger's MeterValues; return the charger's CPU seconds."""
        c0 = cpu_s(proc.pid)
        for _ in range(count):
            mark = len(station.messages)
            reply = await asyncio.wait_for(
                station.call("TriggerMessage", requestedMessage="MeterValues", connectorId=1), ROUND_TRIP_TIMEOUT_S)
            if reply.get("status") != "Accepted":
                raise BenchError("TriggerMessage(MeterValues) answered %r" % reply)
            await station.wait_for("MeterValues", timeout_s=ROUND_TRIP_TIMEOUT_S, start_index=mark)
            # Until the central system has sent the CALLRESULT (wait_for only sees frames from the charger).
            await station._wait(station.messages, _is_meter_values_conf, mark, ROUND_TRIP_TIMEOUT_S,
                                "MeterValues.conf")
        await asyncio.sleep(0.05)  # the charger reads the last CALLRESULT
        return cpu_s(proc.pid) - c0

    async def meter_values(self, agent_proc, agent_station) -> dict:
        from tools.csms import IN

        n, warm = self.opts.messages, self.opts.warmup
        self.progress("MeterValues: agent, %d triggered round trips (+%d warm-up)" % (n, warm))
        await self.triggered_round_trips(agent_proc, agent_station, warm)
        agent_cpu = await self.triggered_round_trips(agent_proc, agent_station, n)
        agent_rss = rss_kib(agent_proc.pid)
        sample = [m.payload for m in agent_station.messages if m.direction == IN and m.action == "MeterValues"][-1]

        self.progress("MeterValues: stock ocpp ChargePoint, %d triggered round trips and %d calls" % (n, n))
        stock, station = await self._start_stock("BENCH-STOCK", sample)
        await self.triggered_round_trips(stock, station, warm)
        stock_trig_cpu = await self.triggered_round_trips(stock, station, n)
        await self._stock_calls(stock, warm)
        c0 = cpu_s(stock.pid)
        await self._stock_calls(stock, n)
        stock_call_cpu = cpu_s(stock.pid) - c0
        stock_rss = rss_kib(stock.pid)
        await self.procs.stop(stock)

        self.progress("MeterValues: stock ocpp ChargePoint with ASYNC_VALIDATION off, %d triggered round trips" % n)
        stock_sync_cpu = await self.stock_sync_validation_cpu("BENCH-STOCK-SYNC", sample, warm, n)

        agent_ms, stock_ms = 1000 * agent_cpu / n, 1000 * stock_trig_cpu / n
        return {
            "messages": n, "payload": sample,
            "agent_ms": agent_ms, "stock_triggered_ms": stock_ms, "stock_call_ms": 1000 * stock_call_cpu / n,
            "stock_sync_validation_ms": 1000 * stock_sync_cpu / n,
            "ratio": agent_ms / stock_ms if stock_ms > 0 else None, "target_ratio": TARGET_MV_CPU_RATIO,
            "cpu_s": {"agent": agent_cpu, "stock_triggered": stock_trig_cpu, "stock_call": stock_call_cpu,
                      "stock_sync_validation": stock_sync_cpu},
            "agent_rss_mib": agent_rss / 1024, "stock_cp_rss_mib": stock_rss / 1024,
            "rss_ratio": agent_rss / stock_rss, "rss_target_ratio": TARGET_RSS_VS_STOCK_RATIO,
        }

    async def stock_sync_validation_cpu(self, station_id: str, sample: dict, warm: int, n: int) -> float:
        """CPU seconds of ``n`` triggered round trips (after ``warm``) of the stock charge point with
        the one setting the agent changes: schema validation in the calling task."""
        stock, station = await self._start_stock(station_id, sample, "--sync-validation")
        await self.triggered_round_trips(stock, station, warm)
        cpu = await self.triggered_round_trips(stock, station, n)
        await self.procs.stop(stock)
        return cpu

    async def _start_stock(self, station_id: str, sample: dict, *flags: str):
        stock = await self.procs.spawn("-m", "tools.bench", "--stock-cp", self.cs.url + "/" + station_id,
                                       json.dumps(sample), *flags, stdin=True, stdout=True)
        line = await read_line(stock, "stock charge point", BOOT_TIMEOUT_S)
        if line != "ready":
            raise BenchError("stock charge point printed %r:\n%s" % (line, self.procs.log_tail(stock)))
        return stock, await self.cs.wait_for_station(station_id, timeout_s=BOOT_TIMEOUT_S)

    async def _stock_calls(self, stock, count: int) -> None:
        stock.stdin.write(b"calls %d\n" % count)
        await stock.stdin.drain()
        line = await read_line(stock, "stock charge point", ROUND_TRIP_TIMEOUT_S + count * 0.5)
        if line != "done %d" % count:
            raise BenchError("stock charge point answered %r:\n%s" % (line, self.procs.log_tail(stock)))

    # ------------------------------------------------------------------ all
    async def run(self) -> dict:
        self.progress("start-up time: %d runs each" % self.opts.repeats)
        boot = await self.boot_times()
        self.progress("starting the agent for the idle and MeterValues figures")
        agent, station, _ = await self.start_agent("BENCH-AGENT")
        idle = await self.idle(agent, station)
        meter = await self.meter_values(agent, station)
        await self.procs.stop(agent)
        results = {"boot": boot, **idle, "meter_values": meter}
        # (start-up: boot["target_met"]; this set of keys is what tests/tools/test_bench.py pins)
        results["targets_met"] = {
            "rss_ratio": meter["rss_ratio"] <= TARGET_RSS_VS_STOCK_RATIO,
            "idle_cpu": idle["idle_cpu"]["agent_pct"] < TARGET_IDLE_CPU_PCT,
            "meter_values_cpu": meter["ratio"] is not None and meter["ratio"] <= TARGET_MV_CPU_RATIO,
        }
        return results


def _versions() -> dict:
    from importlib.metadata import version

    out = {"python": sys.version.split()[0]}
    for name in ("ocpp", "websockets", "pymodbus", "jsonschema"):
        try:
            out[name] = version(name)
        except Exception:
            out[name] = None
    return out


async def _bench(opts: argparse.Namespace) -> dict:
    import shutil
    import tempfile

    from tools.csms import TestCentralSystem

    workdir = tempfile.mkdtemp(prefix="ocpp-bench-")
    procs = Processes(workdir, opts.bytecode_cache)
    cs = TestCentralSystem(quiet=True, protocols=("ocpp1.6",))
    await cs.start(HOST, 0)
    try:
        results = await asyncio.wait_for(Bench(opts, cs, procs).run(), opts.timeout_s)
    finally:
        await procs.stop_all()
        await cs.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    settings = {k: getattr(opts, k) for k in ("quick", "repeats", "settle_s", "idle_s", "messages", "warmup",
                                              "bytecode_cache")}
    return {"settings": settings, "versions": _versions(), "clock_tick_s": 1 / CLK_TCK, **results}


# --------------------------------------------------------------------------- report

def _fmt_ratio(value) -> str:
    return "-" if value is None else "%.2fx" % value


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def render(r: dict) -> str:
    s, v = r["settings"], r["versions"]
    rss, boot, idle, mv, met = r["rss"], r["boot"], r["idle_cpu"], r["meter_values"], r["targets_met"]
    rows = [
        ("1 Idle RSS (VmRSS)", "%.1f MiB" % rss["agent_mib"], "%.1f MiB" % rss["baseline_mib"],
         _fmt_ratio(rss["ratio"]), "-"),
        ("  after MeterValues, vs stock CP", "%.1f MiB" % mv["agent_rss_mib"], "%.1f MiB" % mv["stock_cp_rss_mib"],
         _fmt_ratio(mv["rss_ratio"]), "<= %.1fx %s" % (TARGET_RSS_VS_STOCK_RATIO, _verdict(met["rss_ratio"]))),
        ("2 Start -> Boot/ready (median of %d)" % s["repeats"], "%.0f ms" % (1000 * boot["agent_s"]),
         "%.0f ms" % (1000 * boot["baseline_s"]), _fmt_ratio(boot["ratio"]),
         "<= %.1fx %s" % (TARGET_START_RATIO, _verdict(boot["target_met"]))),
        ("  vs stock CP (spawn -> Boot answered)", "", "%.0f ms" % (1000 * boot["stock_cp_s"]),
         _fmt_ratio(boot["agent_s"] / boot["stock_cp_s"]), ""),
        ("3 Idle CPU (%% of one core, %.0f s)" % idle["window_s"], "%.3f %%" % idle["agent_pct"],
         "%.3f %%" % idle["baseline_pct"], "-", "< %.1f %% %s" % (TARGET_IDLE_CPU_PCT, _verdict(met["idle_cpu"]))),
        ("4 CPU per MeterValues round trip", "%.3f ms" % mv["agent_ms"], "%.3f ms" % mv["stock_triggered_ms"],
         _fmt_ratio(mv["ratio"]), "<= %.1fx %s" % (TARGET_MV_CPU_RATIO, _verdict(met["meter_values_cpu"]))),
        ("  stock, ASYNC_VALIDATION off", "", "%.3f ms" % mv["stock_sync_validation_ms"],
         _fmt_ratio(mv["agent_ms"] / mv["stock_sync_validation_ms"] if mv["stock_sync_validation_ms"] else None), ""),
        ("  stock, MeterValues call only", "", "%.3f ms" % mv["stock_call_ms"], "", ""),
    ]
    widths = [max(len(str(row[i])) for row in rows + [_HEADER]) for i in range(5)]
    lines = ["ocpp-agent bench (%s) - Python %s, ocpp %s, websockets %s, pymodbus %s; loopback %s"
             % ("quick, coarse" if s["quick"] else "full", v["python"], v["ocpp"], v["websockets"],
                v["pymodbus"], HOST), ""]
    for row in [_HEADER] + rows:
        lines.append("  ".join(str(cell).ljust(widths[i]) if i == 0 else str(cell).rjust(widths[i])
                               for i, cell in enumerate(row)).rstrip())
    lines.append("")
    lines += [
        "What each figure is (agent = `python -m agent.app.cli run` on the simulated board, fresh data dir,",
        "status page on, connected to the bench's TestCentralSystem; baseline = `python -c \"%s\"`):"
        % BASELINE_IMPORTS,
        "1 VmRSS from /proc/PID/status, read %.0f s after the agent's first StatusNotification (boot" % s["settle_s"],
        "  done, idle), next to the bare import process alive at the same moment. After the %.0f s idle" % idle["window_s"],
        "  window: agent %.1f MiB, baseline %.1f MiB. Second row: VmRSS of the agent after the round trips"
        % (rss["agent_after_idle_mib"], rss["baseline_after_idle_mib"]),
        "  of figure 4, next to the stock ocpp.v16.ChargePoint process of figure 4 (library defaults) after",
        "  its own: the same library stack (ocpp.v16, jsonschema, websockets client) without the agent;",
        "  the memory target (issue 11) is on this row, the start-up one against the bare import.",
        "2 Wall time from spawning the process to the central system receiving its BootNotification",
        "  (Python start, imports, config, simulated board, websocket connect, first CALL), next to the",
        "  bare process's spawn-to-'ready' line printed right after its imports. Median of %d runs each"
        % s["repeats"],
        "  after one unmeasured warm-up; agent runs (ms): %s." % ", ".join(
            "%.0f" % (1000 * x) for x in boot["agent_runs_s"]),
        "  Second row: the stock charge point of figure 4 from spawn to its BootNotification answered (the",
        "  ocpp.v16 messages, jsonschema and the websockets client that any 1.6 charger loads): a floor.",
        "3 utime+stime from /proc/PID/stat over the idle window (connected, no heartbeat due, no EV),",
        "  as % of one core; the baseline is the bare process, blocked, over the same window.",
        "  Resolution: one clock tick = %.0f ms = %.2f %% of the window; agent used %.0f ms."
        % (1000 * r["clock_tick_s"], 100 * r["clock_tick_s"] / idle["window_s"], 1000 * idle["agent_cpu_s"]),
        "4 Charger-process CPU (utime+stime from /proc/PID/stat) per round trip, over %d round trips after"
        % mv["messages"],
        "  %d warm-up ones: the central system sends TriggerMessage(MeterValues, connectorId 1); the" % s["warmup"],
        "  charger answers it, sends MeterValues (same payload shape: %d sampled values) and reads the"
        % sum(len(m.get("sampledValue", [])) for m in mv["payload"]["meterValue"]),
        "  CALLRESULT; the next trigger goes after that. Agent: its real trigger path (station meter",
        "  read, sample building, OCPP call). Baseline: a stock ocpp.v16.ChargePoint (plain library API,",
        "  library defaults) in its own process answering the same triggers with the agent's payload.",
        "  'ASYNC_VALIDATION off': the same stock charge point with ocpp.messages.ASYNC_VALIDATION = False,",
        "  as the agent sets it (schema validation in the calling task, not a thread pool).",
        "  'call only': the stock charge point sending the same MeterValues by itself, no trigger",
        "  (one CALL + CALLRESULT per message) - a floor, not the comparison.",
        "Bytecode: %s." % ("warm cache for every process (PYTHONPYCACHEPREFIX in the bench's temporary"
                           " directory, filled by the warm-up), as on an installed charger" if s["bytecode_cache"]
                           else "as the environment has it (PYTHONDONTWRITEBYTECODE=%s)"
                           % os.environ.get("PYTHONDONTWRITEBYTECODE", "unset")),
        "Targets are goals, not assertions; CPU figures are only as good as the clock tick allows.",
    ]
    return "\n".join(lines)


_HEADER = ("Figure", "Agent", "Baseline", "Ratio", "Target")


# --------------------------------------------------------------------------- stock charge point

async def _stock_cp(url: str, payload_json: str) -> None:
    """A charge point written with the plain ``ocpp`` library API: boots, then answers
    TriggerMessage(MeterValues) and, on ``calls N`` from stdin, sends N MeterValues."""
    from ocpp.routing import after, on
    from ocpp.v16 import ChargePoint, call, call_result
    from ocpp.v16.enums import Action

    sample = json.loads(payload_json)

    def meter_values():
        stamp = utc_stamp()
        meter_value = [dict(mv, timestamp=stamp) for mv in sample["meterValue"]]
        return call.MeterValues(connector_id=sample["connectorId"], meter_value=meter_value,
                                transaction_id=sample.get("transactionId"))

    class StockChargePoint(ChargePoint):
        @on(Action.trigger_message)
        async def on_trigger_message(self, requested_message, connector_id=None):
            return call_result.TriggerMessage(status="Accepted")

        @after(Action.trigger_message)
        async def after_trigger_message(self, requested_message, connector_id=None):
            if requested_message == "MeterValues":
                await self.call(meter_values())

    async def serve(cp, stdin) -> None:
        while line := (await stdin.readline()).decode().split():
            if line[0] == "calls":
                for _ in range(int(line[1])):
                    await cp.call(meter_values())
                print("done %s" % line[1], flush=True)

    await run_stock_station(url, "ocpp1.6", StockChargePoint,
                            call.BootNotification(charge_point_model="stock", charge_point_vendor="ocpp"), serve)


def utc_stamp() -> str:
    """Now as an OCPP timestamp with milliseconds (the stock charge points' own, not the agent's)."""
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (now.microsecond // 1000)


async def run_stock_station(url: str, subprotocol: str, station_class, boot, serve) -> None:
    """Connect a stock charge point (``station_class``, a library ChargePoint) to ``url``, boot
    with ``boot``, print "ready", then ``await serve(cp, stdin)`` (the bench's commands on
    standard input) and close."""
    from websockets.asyncio.client import connect

    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    async with connect(url, subprotocols=[subprotocol], open_timeout=10) as ws:
        cp = station_class(url.rpartition("/")[2], ws, response_timeout=10)
        reader = asyncio.create_task(cp.start())
        await cp.call(boot)
        print("ready", flush=True)
        await serve(cp, stdin)
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)


# --------------------------------------------------------------------------- command line

def bench_main(argv, prog: str, description: str, what: str, stock_cp, bench, render_results,
               repeats: bool = False) -> int:
    """The command line of a bench (tools/bench.py, tools/bench201.py): ``--stock-cp URL
    PAYLOAD [--sync-validation]`` runs this process as the stock charge point
    ``stock_cp(url, payload)``; otherwise the options, then ``bench(opts)`` printed by
    ``render_results`` (or as JSON). ``what``: the round trips measured, for the help."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--stock-cp"]:
        if "--sync-validation" in argv[3:]:
            import ocpp.messages

            ocpp.messages.ASYNC_VALIDATION = False
        asyncio.run(stock_cp(argv[1], argv[2]))
        return 0
    import argparse

    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--quick", action="store_true", help="fewer runs, shorter windows (coarse figures)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--idle-s", type=float, help="idle CPU window in seconds (default 10, quick 2)")
    p.add_argument("--settle-s", type=float, help="idle time before reading RSS (default 3, quick 1)")
    if repeats:
        p.add_argument("--repeats", type=int, help="start-up runs of each process (default 5, quick 2)")
    p.add_argument("--messages", type=int, help="%s round trips measured (default 500, quick 40)" % what)
    p.add_argument("--warmup", type=int, help="unmeasured round trips first (default 30, quick 10)")
    p.add_argument("--no-bytecode-cache", dest="bytecode_cache", action="store_false",
                   help="run the processes with the environment's bytecode settings as they are (by default"
                        " the bench gives them a warm bytecode cache in its temporary directory)")
    p.add_argument("--timeout-s", type=float, default=600.0, help="give up after this long (default 600)")
    opts = p.parse_args(argv)
    defaults = [("idle_s", 10.0, 2.0), ("settle_s", 3.0, 1.0), ("messages", 500, 40), ("warmup", 30, 10)]
    if repeats:
        defaults.append(("repeats", 5, 2))
    for name, full, quick in defaults:
        if getattr(opts, name) is None:
            setattr(opts, name, quick if opts.quick else full)
    if (opts.idle_s <= 0 or opts.settle_s < 0 or getattr(opts, "repeats", 1) < 1 or opts.messages < 1
            or opts.warmup < 0):
        p.error("windows must be positive and counts at least 1")
    if not opts.json:
        print("running %s (%s)..." % (prog, "quick" if opts.quick else "full"), file=sys.stderr, flush=True)
    try:
        results = asyncio.run(bench(opts))
    except (BenchError, asyncio.TimeoutError, TimeoutError) as e:
        print("bench failed: %s" % (e or "timed out after %.0f s" % opts.timeout_s), file=sys.stderr)
        return 1
    print(json.dumps(results, indent=2) if opts.json else render_results(results))
    return 0


def main(argv: list | None = None) -> int:
    return bench_main(argv, "python -m tools.bench", __doc__.splitlines()[0], "MeterValues", _stock_cp, _bench,
                      render, repeats=True)

if __name__ == "__main__":
    sys.exit(main())
