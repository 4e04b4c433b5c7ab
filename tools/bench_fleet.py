"""Fleet bench: what one simulated station costs in an ``ocpp-agent fleet`` process
(issue 16 item 5), each figure next to a baseline measured in the same run, loopback only.

    python -m tools.bench_fleet                      # fleets of 10, 100 and 1,000 (about 10 min)
    python -m tools.bench_fleet --quick              # small fleets, short windows (coarse)
    python -m tools.bench_fleet --sizes 50,500 --window-s 30 --json
    python -m tools.bench_fleet --verify             # then run the estimated largest fleet too

Three kinds of process, the /proc and process plumbing tools/bench.py's:

- the central system, ``python -m tools.csms --port 0 --quiet`` (answers everything): its
  own process, so its CPU never counts as the fleet's (its CPU is shown, for context);
- the baseline, ``python -m tools.bench_fleet --worker baseline``: the agent and its
  dependencies imported, an event loop running, no station;
- one fleet process per size, ``--worker fleet``: the same imports, then a ``Fleet`` of N
  stations (1 connector, MeterValueSampleInterval / SampledDataCtrlr.TxUpdatedInterval 10 s)
  started on a ramp. Once every station is booted it measures an *idle* window (connected,
  no EV: the keep-alive cost), then plugs an EV into every connector and badges it (the
  stations one after the other over one meter interval, so their MeterValues come evenly
  spread), and once every station is charging measures a *charging* window (MeterValues
  every 10 s each).

Per size: memory per station = (fleet VmRSS after the charging window - baseline VmRSS) / N;
CPU per station-second = fleet utime+stime over a window / (N x window); the round trips
(p50/p95/p99) and messages per second are the fleet's own figures (agent/app/fleet_stats.py)
over the charging window. Stations per core = 1 / CPU per station-second while charging.
A measurement, not a test: it exits 0 whatever the figures are (1 if it could not measure).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

from tools.bench import CLK_TCK, HOST, BenchError, Processes, _versions, cpu_s, read_line, rss_kib

# The goals of issue 16 item 5.
TARGET_STATIONS_PER_CORE = 1000
TARGET_MIB_PER_STATION = 2.0
TARGET_P99_MS = 1000.0

SIZES = (10, 100, 1000)
QUICK_SIZES = (10, 50)
METER_INTERVAL_S = 10
TAG_PREFIX = "BENCH-"
READY_TIMEOUT_S = 60.0  # on top of the ramp: until every station is booted / charging
VERIFY_MAX_STATIONS = 5000

# What the fleet process has loaded before its first station, and the baseline process all along:
# the agent, its dependencies and the modules a running station imports on first use.
AGENT_IMPORTS = ("agent.app.fleet", "agent.app.fleet_view", "agent.app.runner", "agent.app.scenario",
                 "hal.sim", "ocpp.v16", "ocpp.v201", "ocpp.messages", "websockets.asyncio.client")


def _import_agent() -> None:
    import importlib

    for name in AGENT_IMPORTS:
        importlib.import_module(name)


# --------------------------------------------------------------------------- the fleet process

def _scenario(meter_interval_s: int):
    """No random events (the bench plugs the EVs itself); meter values every ``meter_interval_s``."""
    from agent.app.scenario import parse_scenario

    return parse_scenario("(bench)", {
        "scenario": {"name": "bench: an EV charging on every connector"},
        "ocpp": {"MeterValueSampleInterval": meter_interval_s},
        "ocpp201": {"SampledDataCtrlr.TxUpdatedInterval": meter_interval_s},
    })


class LoopWait:
    """Wall time the running event loop spends waiting in its selector: the rest is busy,
    running callbacks or blocked in a system call (an fsync), which CPU time alone misses."""

    def __init__(self) -> None:
        self.waiting_s = 0.0
        selector = getattr(asyncio.get_running_loop(), "_selector", None)  # asyncio's selector loop
        if selector is not None:
            select = selector.select

            def timed_select(timeout=None):
                t0 = time.perf_counter()
                try:
                    return select(timeout)
                finally:
                    self.waiting_s += time.perf_counter() - t0

            selector.select = timed_select


class GcPauses:
    """The garbage collector's pauses (all generations) since ``reset()``: they stop the loop."""

    def __init__(self) -> None:
        import gc

        self.reset()
        self._started_s = None
        gc.callbacks.append(self._on_gc)

    def reset(self) -> None:
        self.total_s = self.max_s = 0.0

    def _on_gc(self, phase: str, _info) -> None:
        if phase == "start":
            self._started_s = time.perf_counter()
        elif self._started_s is not None:
            pause_s, self._started_s = time.perf_counter() - self._started_s, None
            self.total_s += pause_s
            self.max_s = max(self.max_s, pause_s)


def _cpu(pids: dict) -> dict:
    return {name: cpu_s(pid) for name, pid in pids.items()}


async def _wait_all(fleet, key: str, timeout_s: float) -> None:
    """Until every station is ``key`` (a FleetStation flag: booted, charging)."""
    deadline = time.monotonic() + timeout_s
    while True:
        count = sum(getattr(st, key) for st in fleet.stations if st.started)
        if count == fleet.count:
            return
        if time.monotonic() > deadline:
            raise BenchError("%d of %d stations %s after %.0f s" % (count, fleet.count, key, timeout_s))
        await asyncio.sleep(0.2)


async def _window(fleet, pids: dict, window_s: float, loop_wait: LoopWait, gc_pauses: GcPauses) -> dict:
    """Measure ``window_s``: CPU of every process in ``pids``, the fleet's loop, frames and round trips."""
    fleet.snapshot()  # discards the round trips so far
    frames0, cpu0, t0, wait0 = fleet.snapshot()["frames"], _cpu(pids), time.monotonic(), loop_wait.waiting_s
    gc_pauses.reset()
    await asyncio.sleep(window_s)
    snap, cpu1, t1, wait1 = fleet.snapshot(), _cpu(pids), time.monotonic(), loop_wait.waiting_s
    elapsed_s = t1 - t0
    return {"window_s": elapsed_s, "cpu_s": {k: cpu1[k] - cpu0[k] for k in pids},
            "loop_busy": max(0.0, 1 - (wait1 - wait0) / elapsed_s),
            "gc_pause_ms": {"total": 1000 * gc_pauses.total_s, "max": 1000 * gc_pauses.max_s},
            "frames": snap["frames"] - frames0, "frames_per_s": (snap["frames"] - frames0) / elapsed_s,
            "round_trips_per_s": snap["latency_ms"]["n"] / elapsed_s, "latency_ms": snap["latency_ms"],
            "charging": snap["charging"], "connected": snap["connected"]}


async def _plug_and_badge(fleet, spread_s: float) -> None:
    """An EV on every connector, badged one station after the other over ``spread_s``: the
    sessions' meter values then come evenly spread, not as one burst of N every interval."""
    from agent.app.scenario import Event

    t0_s = time.monotonic()
    for st in fleet.stations:
        delay_s = t0_s + spread_s * (st.index - 1) / fleet.count - time.monotonic()
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        now_s = fleet.elapsed_s
        fleet.apply(Event(now_s, st.index, "plug", (1, 0.0, 0.0)))  # 0 Wh needed: never full
        fleet.apply(Event(now_s, st.index, "swipe", (TAG_PREFIX + st.id,)))


async def run_fleet(opts) -> dict:
    """The ``--worker fleet`` process: build, ramp, idle window, charging window, stop."""
    import shutil
    import tempfile

    from agent.app.fleet import Fleet

    me, loop_wait, gc_pauses = os.getpid(), LoopWait(), GcPauses()
    pids = {"fleet": me, "baseline": opts.baseline_pid, "csms": opts.csms_pid}
    rss_before_kib = rss_kib(me)
    data_dir = tempfile.mkdtemp(prefix="ocpp-bench-fleet-")
    fleet = Fleet(csms_url=opts.url, count=opts.stations, data_dir=data_dir,
                  scenario=_scenario(opts.meter_interval_s), seed=0, id_prefix="BF", ocpp_version=opts.ocpp,
                  duration_s=1e9, ramp_per_s=opts.ramp)
    try:
        t0 = time.monotonic()
        await fleet.start()
        await _wait_all(fleet, "booted", opts.stations / opts.ramp + READY_TIMEOUT_S)
        ramp_s = time.monotonic() - t0
        await asyncio.sleep(opts.settle_s)
        idle = await _window(fleet, pids, opts.window_s, loop_wait, gc_pauses)
        await _plug_and_badge(fleet, opts.meter_interval_s)
        await _wait_all(fleet, "charging", READY_TIMEOUT_S)
        await asyncio.sleep(opts.settle_s)
        charging = await _window(fleet, pids, opts.window_s, loop_wait, gc_pauses)
        rss = {"fleet_kib": rss_kib(me), "fleet_before_stations_kib": rss_before_kib,
               "baseline_kib": rss_kib(opts.baseline_pid)}
    finally:
        await fleet.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    report = fleet.report()
    return {"stations": opts.stations, "ramp_s": ramp_s, "rss": rss, "idle": idle, "charging": charging,
            "version": {st.agent.connection.version for st in fleet.stations}.pop(),
            "calls": {a: c["sent"] for a, c in report["calls"].items()}, "total": report["total"]}


async def run_baseline() -> None:
    """The ``--worker baseline`` process: imports done, a loop running, until stdin closes."""
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    print("ready", flush=True)
    await stdin.read()


def worker_main(opts) -> int:
    import logging

    from agent.app.fleet_view import _raise_fd_limit

    logging.basicConfig(level=logging.ERROR)  # as `ocpp-agent fleet` without --data-dir
    _import_agent()
    if opts.worker == "baseline":
        asyncio.run(run_baseline())
        return 0
    _raise_fd_limit()
    if opts.profile:
        import cProfile

        with cProfile.Profile() as prof:
            result = asyncio.run(run_fleet(opts))
        prof.dump_stats(opts.profile)
    else:
        result = asyncio.run(run_fleet(opts))
    print(json.dumps(result), flush=True)
    return 0


# --------------------------------------------------------------------------- the bench

def figures(raw: dict) -> dict:
    """Per-station figures from one fleet process's measurements."""
    n, idle, charging, rss = raw["stations"], raw["idle"], raw["charging"], raw["rss"]

    def per_station_s(window: dict) -> float:
        return window["cpu_s"]["fleet"] / (n * window["window_s"])

    cpu_charging, cpu_idle = per_station_s(charging), per_station_s(idle)
    # One core runs 1 / CPU-per-station-second stations, and one event loop N / its busy share:
    # the fleet runs on one loop, so the smaller of the two.
    per_core_cpu = 1 / cpu_charging if cpu_charging > 0 else None
    per_core_loop = n / charging["loop_busy"] if charging["loop_busy"] > 0 else None
    bounds = [x for x in (per_core_cpu, per_core_loop) if x]
    return {
        "stations": n, "ocpp_version": raw["version"], "ramp_s": raw["ramp_s"],
        "mib_per_station": (rss["fleet_kib"] - rss["baseline_kib"]) / 1024 / n,
        "fleet_rss_mib": rss["fleet_kib"] / 1024, "baseline_rss_mib": rss["baseline_kib"] / 1024,
        "fleet_rss_before_stations_mib": rss["fleet_before_stations_kib"] / 1024,
        "cpu_ms_per_station_s": 1000 * cpu_charging, "idle_cpu_ms_per_station_s": 1000 * cpu_idle,
        "cpu_pct": 100 * charging["cpu_s"]["fleet"] / charging["window_s"],
        "idle_cpu_pct": 100 * idle["cpu_s"]["fleet"] / idle["window_s"],
        "baseline_cpu_pct": 100 * charging["cpu_s"]["baseline"] / charging["window_s"],
        "csms_cpu_pct": 100 * charging["cpu_s"]["csms"] / charging["window_s"],
        "gc_pause_ms": charging["gc_pause_ms"], "loop_busy_pct": 100 * charging["loop_busy"],
        "idle_loop_busy_pct": 100 * idle["loop_busy"],
        "stations_per_core": min(bounds) if bounds else None, "stations_per_core_cpu": per_core_cpu,
        "stations_per_loop": per_core_loop,
        "latency_ms": charging["latency_ms"], "frames_per_s": charging["frames_per_s"],
        "round_trips_per_s": charging["round_trips_per_s"], "idle_frames_per_s": idle["frames_per_s"],
        "window_s": charging["window_s"], "charging": charging["charging"],
        "calls": raw["calls"], "lost": raw["total"]["unanswered"], "callerrors": raw["total"]["callerrors"],
        "invalid": raw["total"]["invalid"],
    }


def estimate(sizes: list) -> dict:
    """The largest fleet one core sustains, from the largest size whose p99 stayed under 1 s:
    the smaller of 1 / CPU per station-second and N / loop busy share (an extrapolation unless
    --verify ran it)."""
    good = [s for s in sizes if s["stations_per_core"] and (s["latency_ms"]["p99"] or 0) < TARGET_P99_MS]
    if not good:
        return {"stations_per_core": None, "from_stations": None}
    best = max(good, key=lambda s: s["stations"])
    return {"stations_per_core": int(best["stations_per_core"]), "from_stations": best["stations"]}


class FleetBench:
    def __init__(self, opts, procs: Processes) -> None:
        self.opts = opts
        self.procs = procs

    def progress(self, text: str) -> None:
        if not self.opts.json:
            print("  " + text, file=sys.stderr, flush=True)

    async def start_csms(self):
        proc = await self.procs.spawn("-m", "tools.csms", "--host", HOST, "--port", "0", "--quiet",
                                      stdin=True, stdout=True)
        line = await read_line(proc, "central system", 30)
        url = next((w for w in line.split() if w.startswith("ws://")), None)
        if url is None:
            raise BenchError("central system printed %r" % line)
        return proc, url.rpartition("/")[0]  # ws://host:port/ocpp/<station id> -> ws://host:port/ocpp

    async def start_baseline(self):
        # A first process compiles the modules into the bench's bytecode cache, unmeasured: compiling
        # leaves memory behind that the measured processes must not carry.
        warm = await self.procs.spawn("-c", "import tools.bench_fleet as b; b._import_agent()")
        if await asyncio.wait_for(warm.wait(), 120) != 0:
            raise BenchError("warm-up imports failed:\n%s" % self.procs.log_tail(warm))
        proc = await self.procs.spawn("-m", "tools.bench_fleet", "--worker", "baseline", stdin=True, stdout=True)
        if await read_line(proc, "baseline process", 60) != "ready":
            raise BenchError("baseline process failed:\n%s" % self.procs.log_tail(proc))
        return proc

    async def run_size(self, n: int, url: str, csms, baseline, profile: str | None = None) -> dict:
        o = self.opts
        self.progress("%d stations: ramp %.0f s, idle %.0f s, charging %.0f s"
                      % (n, n / o.ramp, o.window_s, o.window_s))
        args = ["-m", "tools.bench_fleet", "--worker", "fleet", "--url", url, "--stations", str(n),
                "--ramp", str(o.ramp), "--window-s", str(o.window_s), "--settle-s", str(o.settle_s),
                "--ocpp", o.ocpp, "--meter-interval-s", str(o.meter_interval_s),
                "--baseline-pid", str(baseline.pid), "--csms-pid", str(csms.pid)]
        proc = await self.procs.spawn(*args, *(["--profile", profile] if profile else []), stdout=True)
        budget_s = n / o.ramp + 2 * (READY_TIMEOUT_S + o.window_s + o.settle_s) + 60
        try:
            line = await read_line(proc, "fleet of %d" % n, budget_s)
            raw = json.loads(line)
        except (BenchError, ValueError):
            raise BenchError("fleet of %d failed; its log ends:\n%s" % (n, self.procs.log_tail(proc))) from None
        await self.procs.stop(proc)
        return figures(raw)

    async def run(self) -> dict:
        csms, url = await self.start_csms()
        baseline = await self.start_baseline()
        sizes = []
        for n in self.opts.sizes:
            profile = self.opts.profile if n == max(self.opts.sizes) else None
            sizes.append(await self.run_size(n, url, csms, baseline, profile))
        result = {"sizes": sizes, "estimate": estimate(sizes), "verify": None}
        per_core = result["estimate"]["stations_per_core"]
        if self.opts.verify and per_core:
            n = min(per_core, VERIFY_MAX_STATIONS)
            result["verify"] = await self.run_size(n, url, csms, baseline)
        return result


async def _bench(opts) -> dict:
    import shutil
    import tempfile

    workdir = tempfile.mkdtemp(prefix="ocpp-bench-fleet-")
    procs = Processes(workdir, bytecode_cache=True)
    try:
        results = await FleetBench(opts, procs).run()
    finally:
        await procs.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
    settings = {k: getattr(opts, k) for k in ("quick", "sizes", "window_s", "settle_s", "ramp", "ocpp",
                                              "meter_interval_s", "verify")}
    return {"settings": settings, "versions": _versions(), "cpus": os.cpu_count(), "clock_tick_s": 1 / CLK_TCK,
            "targets": {"stations_per_core": TARGET_STATIONS_PER_CORE, "mib_per_station": TARGET_MIB_PER_STATION,
                        "p99_ms": TARGET_P99_MS}, **results}


# --------------------------------------------------------------------------- report

def _num(value, fmt: str) -> str:
    return "-" if value is None else fmt % value


_COLUMNS = (  # header, figure key, format
    ("stations", "stations", "%d"), ("MiB/stn", "mib_per_station", "%.3f"),
    ("CPU ms/stn-s", "cpu_ms_per_station_s", "%.4f"), ("idle ms/stn-s", "idle_cpu_ms_per_station_s", "%.4f"),
    ("CPU %", "cpu_pct", "%.1f"), ("loop %", "loop_busy_pct", "%.1f"),
    ("stn/core", "stations_per_core", "%.0f"),
    ("p50 ms", ("latency_ms", "p50"), "%.1f"), ("p95 ms", ("latency_ms", "p95"), "%.1f"),
    ("p99 ms", ("latency_ms", "p99"), "%.1f"), ("msg/s", "frames_per_s", "%.1f"),
    ("RT/s", "round_trips_per_s", "%.1f"), ("csms %", "csms_cpu_pct", "%.1f"),
)


def _row(fig: dict) -> list:
    cells = []
    for _h, key, fmt in _COLUMNS:
        value = fig[key[0]][key[1]] if isinstance(key, tuple) else fig[key]
        cells.append(_num(value, fmt))
    return cells


def render(r: dict) -> str:
    s, v, est = r["settings"], r["versions"], r["estimate"]
    figs = r["sizes"] + ([r["verify"]] if r["verify"] else [])
    rows = [[h for h, _k, _f in _COLUMNS]] + [_row(f) for f in figs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    lines = ["ocpp-agent fleet bench (%s) - Python %s, ocpp %s, websockets %s; %d CPUs; OCPP %s; loopback %s"
             % ("quick, coarse" if s["quick"] else "full", v["python"], v["ocpp"], v["websockets"], r["cpus"],
                figs[0]["ocpp_version"], HOST), ""]
    lines += ["  ".join(c.rjust(widths[i]) for i, c in enumerate(row)) for row in rows]
    base = r["sizes"][0]
    largest = max(r["sizes"], key=lambda f: f["stations"])
    per_core = est["stations_per_core"]
    lines += [
        "",
        "baseline (bare process, agent imported, no station): %.1f MiB, %.2f %% CPU; the fleet process before"
        % (base["baseline_rss_mib"], base["baseline_cpu_pct"]),
        "its first station: %.1f MiB. Windows %.0f s idle then %.0f s charging, after a ramp of %.0f stations/s."
        % (base["fleet_rss_before_stations_mib"], s["window_s"], s["window_s"], s["ramp"]),
        "largest fleet one core sustains with p99 < 1 s: about %s stations (stn/core of the"
        % _num(per_core, "%d"),
        "%s-station fleet%s); goal >= %d: %s" % (
            _num(est["from_stations"], "%d"),
            ", measured: p99 %s ms, %s %% CPU, loop %s %% busy" % (
                _num(r["verify"]["latency_ms"]["p99"], "%.1f"), _num(r["verify"]["cpu_pct"], "%.0f"),
                _num(r["verify"]["loop_busy_pct"], "%.0f")) if r["verify"] else
            ", extrapolated", TARGET_STATIONS_PER_CORE,
            "ok" if per_core and per_core >= TARGET_STATIONS_PER_CORE else "MISSED"),
        "garbage collector pauses while charging: %s" % ", ".join(
            "%d stations %.0f ms in all, longest %.0f ms" % (f["stations"], f["gc_pause_ms"]["total"],
                                                              f["gc_pause_ms"]["max"]) for f in figs),
        "memory per station at %d stations: %.3f MiB; goal < %.0f MiB: %s" % (
            largest["stations"], largest["mib_per_station"], TARGET_MIB_PER_STATION,
            "ok" if largest["mib_per_station"] < TARGET_MIB_PER_STATION else "MISSED"),
        "",
        "MiB/stn: (fleet VmRSS after the charging window - baseline VmRSS) / N. CPU ms/stn-s: fleet process",
        "utime+stime / (N x window) while every connector charges (MeterValues every %d s); idle: the same"
        % s["meter_interval_s"],
        "stations connected, no EV (keep-alive only). CPU %: of one core while charging. loop %: wall time",
        "the fleet's event loop is not waiting for I/O (callbacks, and system calls such as fsync that",
        "block it without using CPU). stn/core: the smaller of 1 / CPU per station-second and N / loop",
        "share. p50-p99: CALL -> answer round trips at the station's end (charging window).",
        "msg/s: frames in + out per second; RT/s: round trips per second; csms %: the central system's own",
        "process (not counted). Targets are goals, not assertions; clock tick %.0f ms." % (1000 * r["clock_tick_s"]),
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line

def _sizes(text: str) -> list:
    sizes = [int(x) for x in text.split(",") if x.strip()]
    if not sizes or min(sizes) < 1:
        raise ValueError(text)
    return sizes


def parse_args(argv):
    import argparse

    p = argparse.ArgumentParser(prog="python -m tools.bench_fleet", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="sizes %s, 12 s windows" % ",".join(map(str, QUICK_SIZES)))
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--sizes", type=_sizes, help="fleet sizes (default %s)" % ",".join(map(str, SIZES)))
    p.add_argument("--window-s", type=float, help="each measurement window (default 60, quick 12)")
    p.add_argument("--settle-s", type=float, help="wait before each window (default 3, quick 1)")
    p.add_argument("--ramp", type=float, default=50.0, help="stations started per second (default 50)")
    p.add_argument("--ocpp", default="1.6", choices=("1.6", "2.0.1"), help="the stations' version (default 1.6)")
    p.add_argument("--meter-interval-s", type=int, default=METER_INTERVAL_S,
                   help="MeterValues interval while charging (default %d)" % METER_INTERVAL_S)
    p.add_argument("--verify", action="store_true",
                   help="then run the estimated largest fleet (at most %d stations)" % VERIFY_MAX_STATIONS)
    p.add_argument("--profile", metavar="FILE", help="cProfile the largest fleet's process into FILE")
    # The processes this bench starts.
    p.add_argument("--worker", choices=("fleet", "baseline"), help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--stations", type=int, help=argparse.SUPPRESS)
    p.add_argument("--baseline-pid", type=int, help=argparse.SUPPRESS)
    p.add_argument("--csms-pid", type=int, help=argparse.SUPPRESS)
    opts = p.parse_args(argv)
    for name, full, quick in (("sizes", list(SIZES), list(QUICK_SIZES)), ("window_s", 60.0, 12.0),
                              ("settle_s", 3.0, 1.0)):
        if getattr(opts, name) is None:
            setattr(opts, name, quick if opts.quick else full)
    if opts.window_s <= 0 or opts.settle_s < 0 or opts.ramp <= 0 or opts.meter_interval_s < 1:
        p.error("windows and the ramp must be positive")
    if opts.profile:
        opts.profile = os.path.abspath(opts.profile)
    return opts


def main(argv: list | None = None) -> int:
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    if opts.worker:
        return worker_main(opts)
    if not opts.json:
        print("running python -m tools.bench_fleet (%s)..." % ("quick" if opts.quick else "full"),
              file=sys.stderr, flush=True)
    try:
        results = asyncio.run(_bench(opts))
    except (BenchError, asyncio.TimeoutError, TimeoutError) as e:
        print("bench failed: %s" % e, file=sys.stderr)
        return 1
    print(json.dumps(results, indent=2) if opts.json else render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
