"""``ocpp-agent fleet``: the command's glue, its live view and its report.

The live view uses ``rich`` (the ``fleet`` extra) on a terminal; without it, or when
stdout is not a terminal, one plain line per interval. The report is text on stdout
and, with ``--report-json``, JSON (the dict of ``Fleet.report()``).
"""

import asyncio
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import time

log = logging.getLogger(__name__)

VIEW_INTERVAL_S = 1.0
_DURATION = re.compile(r"^\s*([0-9.]+)\s*(ms|s|m|min|h|d)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """``"10m"`` -> 600.0; a bare number is seconds."""
    m = _DURATION.match(text)
    if m is None:
        raise ValueError("bad duration %r (e.g. 90, 30s, 10m, 2h)" % text)
    return float(m.group(1)) * _UNIT_S[m.group(2) or "s"]


def _ms(v) -> str:
    return "-" if v is None else "%.1f" % v


def status_line(snap: dict, rate: float) -> str:
    lat = snap["latency_ms"]
    return ("%6.0f/%.0f s  stations %d/%d connected %d booted %d charging %d  %.0f msg/s  "
            "rtt p50/p95/p99 %s/%s/%s ms  callerrors %d  reconnects %d  sessions %d" % (
                snap["elapsed_s"], snap["duration_s"], snap["started"], snap["stations"], snap["connected"],
                snap["booted"], snap["charging"], rate, _ms(lat["p50"]), _ms(lat["p95"]), _ms(lat["p99"]),
                snap["callerrors"], snap["reconnects"], snap["sessions_completed"]))


class PlainView:
    def __init__(self, out=None) -> None:
        self.out = out or sys.stdout

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass

    def update(self, snap: dict, rate: float) -> None:
        print(status_line(snap, rate), file=self.out, flush=True)


class RichView:
    """A progress bar and a table of the live figures, redrawn in place."""

    def __init__(self) -> None:
        from rich.live import Live

        self.live = Live(refresh_per_second=4, transient=False)

    def __enter__(self):
        self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.live.__exit__(*exc)

    def update(self, snap: dict, rate: float) -> None:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        lat = snap["latency_ms"]
        bar = Table.grid(padding=(0, 1))  # a row of its own: the bar does not end its line
        bar.add_row(ProgressBar(total=snap["duration_s"], completed=min(snap["elapsed_s"], snap["duration_s"]),
                                width=40), "[bold]%.0f[/] / %.0f s" % (snap["elapsed_s"], snap["duration_s"]))
        self.live.update(Group(
            bar,
            "stations [bold]%d[/]/%d started · connected [bold]%d[/] · booted [bold]%d[/] · charging [bold]%d[/]"
            % (snap["started"], snap["stations"], snap["connected"], snap["booted"], snap["charging"]),
            "messages [bold]%.0f[/]/s · round trip p50 [bold]%s[/] p95 [bold]%s[/] p99 [bold]%s[/] ms"
            % (rate, _ms(lat["p50"]), _ms(lat["p95"]), _ms(lat["p99"])),
            "call errors [bold]%d[/] · reconnects [bold]%d[/] · sessions completed [bold]%d[/]"
            % (snap["callerrors"], snap["reconnects"], snap["sessions_completed"])))


def make_view(plain: bool = False):
    """rich on a terminal when installed, else plain lines."""
    if not plain and sys.stdout.isatty():
        try:
            return RichView()
        except ImportError:
            pass
    return PlainView()


async def watch(fleet, view, interval_s: float = VIEW_INTERVAL_S) -> None:
    """Update ``view`` every ``interval_s`` real seconds until the fleet is done."""
    last_frames, last_t = 0, time.monotonic()
    while not fleet.done.is_set():
        try:
            await asyncio.wait_for(fleet.done.wait(), interval_s)
        except asyncio.TimeoutError:
            pass
        snap = fleet.snapshot()
        now = time.monotonic()
        view.update(snap, (snap["frames"] - last_frames) / max(now - last_t, 1e-6))
        last_frames, last_t = snap["frames"], now


def format_report(r: dict) -> str:
    """The report as text: the fleet, per message type, sessions, energy, violations."""
    f = r["fleet"]
    lines = ["fleet report: %d stations, %s, seed %s, scenario %s, OCPP %s, %.0f s" % (
        f["stations"], f["csms"], f["seed"], f["scenario"], f["ocpp_version"], f["elapsed_s"]),
        "",
        "%-28s %7s %7s %7s %7s %7s %7s %9s %9s %9s" % (
            "CALL", "sent", "answer", "refused", "error", "invalid", "lost", "p50 ms", "p95 ms", "p99 ms")]
    rows = list(r["calls"].items()) + [("(all)", r["total"])]
    for action, c in rows:
        lat = c["latency_ms"]
        lines.append("%-28s %7d %7d %7d %7d %7d %7d %9s %9s %9s" % (
            action, c["sent"], c["answered"], c["rejected"], c["callerrors"], c["invalid"], c["unanswered"],
            _ms(lat["p50"]), _ms(lat["p95"]), _ms(lat["p99"])))
    v = r["violations"]
    lines += ["",
              "sessions completed %d, energy delivered %.1f Wh (%.2f kWh)" % (
                  r["sessions_completed"], r["energy_wh"], r["energy_wh"] / 1000.0),
              "frames sent %d, received %d; reconnects %d" % (r["frames"]["sent"], r["frames"]["received"],
                                                              r["reconnects"]),
              "events applied %s; skipped %d" % (
                  ", ".join("%s %d" % kv for kv in r["events"].items()) or "none", r["events_skipped"]),
              "requests from the backend: %s" % (
                  ", ".join("%s %d" % kv for kv in r["backend_requests"].items()) or "none"),
              "protocol violations from the backend: CALLERRORs received %s; schema-invalid replies %d" % (
                  ", ".join("%s %d" % kv for kv in v["callerrors_received"].items()) or "none",
                  v["invalid_replies"])]
    lines += ["  " + e for e in v["invalid_examples"]]
    if r["callerrors_sent"]:
        lines.append("frames from the backend the stations refused (CALLERRORs sent): %s" % ", ".join(
            "%s %d" % kv for kv in r["callerrors_sent"].items()))
    return "\n".join(lines)


def _raise_fd_limit() -> None:
    """Each station holds a socket and its journal: lift the soft limit to the hard one."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass


async def _run(fleet, view) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, fleet.done.set)
    watcher = None
    try:
        with view:
            await fleet.start()
            watcher = asyncio.create_task(watch(fleet, view))
            await fleet.done.wait()
            await watcher
    finally:
        if watcher is not None:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        await fleet.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def cmd_fleet(args) -> int:
    """Run ``ocpp-agent fleet`` (arguments from agent/app/cli.py)."""
    from agent.app.config import ConfigError
    from agent.app.fleet import Fleet
    from agent.app.scenario import DEFAULT, ScenarioError, load_scenario

    try:
        duration_s = parse_duration(args.duration)
        scenario = load_scenario(args.scenario) if args.scenario else DEFAULT
    except (ValueError, ScenarioError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    temporary = not args.data_dir
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="ocpp-fleet-")
    os.makedirs(data_dir, exist_ok=True)
    handler = (logging.FileHandler(os.path.join(data_dir, "fleet.log")) if not temporary
               else logging.StreamHandler(sys.stderr))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(getattr(logging, args.log_level) if not temporary else logging.ERROR)
    logging.getLogger("websockets").setLevel(max(logging.INFO, root.level))  # never the handshake headers
    _raise_fd_limit()
    try:
        fleet = Fleet(csms_url=args.csms, count=args.count, data_dir=data_dir, scenario=scenario, seed=args.seed,
                      id_prefix=args.id_prefix, ocpp_version=args.ocpp, duration_s=duration_s, ramp_per_s=args.ramp)
    except (ConfigError, ValueError) as e:  # ScenarioError is a ValueError
        print("error: %s" % e, file=sys.stderr)
        if temporary:
            shutil.rmtree(data_dir, ignore_errors=True)
        return 2
    print("fleet: %d stations (%s…) against %s for %.0f s, scenario %s, seed %s; data in %s%s" % (
        args.count, fleet.stations[0].id, args.csms, duration_s, scenario.name, args.seed, data_dir,
        " (removed at the end)" if temporary else ", log in fleet.log"), flush=True)
    try:
        asyncio.run(_run(fleet, make_view(plain=args.plain)))
        report = fleet.report()
        print(format_report(report))
        if args.report_json:
            with open(args.report_json, "w") as f:
                json.dump(report, f, indent=2)
                f.write("\n")
    finally:
        if temporary:
            shutil.rmtree(data_dir, ignore_errors=True)
    return 0

