"""The ``ocpp-agent`` command line."""

import argparse
import asyncio
import json
import logging
import os
import signal
import sys

from agent.app.cli_log import add_log_command
from agent.app.cli_update import add_update_commands
from agent.app.config import ConfigError, load_config

log = logging.getLogger("agent")

EXIT_CONFIG = 2


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level, logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Handshake headers (Basic auth) are logged by websockets at DEBUG: never show them.
    logging.getLogger("websockets").setLevel(max(logging.INFO, logging.getLogger().level))


async def _run(config, ends_service: bool = True) -> str | None:
    from agent.app.log_files import open_traffic_file

    traffic = open_traffic_file(config)  # data_dir/logs/ocpp-traffic.log (station.log_file_max_bytes)
    try:
        return await _run_agent(config, traffic, ends_service)
    finally:
        if traffic is not None:
            traffic.close()


async def _run_agent(config, traffic, ends_service: bool = True) -> str | None:
    from agent.app.log_files import add_agent_log_file
    from agent.app.runner import Agent
    from agent.app.systemd import Notifier, ping_while_healthy

    agent = Agent(config, traffic_log=traffic.record if traffic is not None else None)
    # Built: from here on the log goes to data_dir/logs/agent.log too, rotated (station.log_file_max_bytes,
    # log_files_kept). A configuration the agent refuses leaves data_dir untouched (stderr says why).
    add_agent_log_file(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, agent.stopped.set)
    await agent.start()
    log.info("agent %s running on board %s, central system %s", config.station["id"],
             config.station["board"], config.csms["url"])
    # Under systemd (Type=notify, WatchdogSec): ready now, pings while the station is healthy.
    notifier = Notifier()
    notifier.ready("station %s running, central system %s" % (config.station["id"], config.csms["url"]))
    pings = asyncio.create_task(ping_while_healthy(notifier, agent.station.hardware_alive))
    try:
        restart = await agent.wait()
    finally:
        if not restart and ends_service:  # not for a restart, nor a worker (its supervisor ends the service)
            notifier.stopping()
        pings.cancel()
        await agent.stop()
    return restart


def cmd_run(args) -> int:
    config = _load(args.config)
    _setup_logging(config.station["log_level"])
    if not args.worker:
        from agent.update.state import install_root_of

        root = install_root_of(sys.prefix)
        if root is not None:  # installed: run the active version under the supervisor (agent/update)
            return _supervise(root, args.config, config)
    try:
        restart = asyncio.run(_run(config, ends_service=not args.worker))
    except ConfigError as e:
        print("error: %s" % e, file=sys.stderr)
        return EXIT_CONFIG
    if restart and args.worker:  # the supervisor starts the next run (the new version after an update)
        from agent.update.supervisor import EXIT_RESTART, EXIT_UPDATE

        logging.shutdown()
        return EXIT_UPDATE if restart == "update" else EXIT_RESTART
    if restart:
        # Re-execute ourselves: works with or without a service manager.
        log.info("re-executing for %s reset", restart)
        logging.shutdown()  # the log file's last lines written
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, [sys.executable] + sys.orig_argv[1:])
    return 0


def _supervise(root_path: str, config_path: str, config) -> int:
    from agent.app.systemd import Notifier
    from agent.update.installer import InstallRoot
    from agent.update.state import FILE
    from agent.update.supervisor import Supervisor

    log.info("supervising the active version of %s", root_path)
    return Supervisor(InstallRoot(root_path), ["--config", os.path.abspath(config_path)],
                      os.path.join(config.data_dir, FILE), verify_timeout_s=config.update["verify_timeout_s"],
                      notifier=Notifier()).run()


def cmd_sim(args) -> int:
    from hal.sim_control import send_command

    config = _load(args.config, check_data_dir=False)
    path = os.path.join(config.data_dir, "sim.sock")
    try:
        reply = asyncio.run(send_command(path, args.command, args.args))
    except ConnectionError as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    if not reply.get("ok"):
        print("error: %s" % reply.get("error"), file=sys.stderr)
        return 1
    print(json.dumps(reply.get("result"), indent=2))
    return 0


def cmd_demo(args) -> int:
    # The demo needs the test central system of tools/: run it as its own program
    # (python -m tools.demo) so that the agent never imports tools.
    argv = [sys.executable, "-m", "tools.demo", "--speed", str(args.speed), "--ocpp", args.ocpp] + (
        ["--keep"] if args.keep else [])
    os.execv(sys.executable, argv)


def cmd_doctor(args) -> int:
    from agent.app.doctor import run_doctor

    config = _load(args.config, check_data_dir=False)
    logging.basicConfig(level=logging.CRITICAL)  # the table says it all; driver logs would repeat it
    return asyncio.run(run_doctor(config, timeout_s=args.timeout))


class _VersionAction(argparse.Action):
    """``--version``: the installed package's version (importlib.metadata), looked up only when asked."""

    def __init__(self, option_strings, dest, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        from agent.update.state import running_version

        print("ocpp-agent %s" % running_version())
        parser.exit()


def _load(path: str, check_data_dir: bool = True):
    try:
        return load_config(path, check_data_dir=check_data_dir)
    except ConfigError as e:
        print("error: %s" % e, file=sys.stderr)
        sys.exit(EXIT_CONFIG)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ocpp-agent", description="Open charger-side OCPP agent")
    p.add_argument("--version", action=_VersionAction, help="print the agent's version and exit")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run the agent")
    r.add_argument("--config", required=True, help="configuration file (TOML)")
    r.add_argument("--worker", action="store_true",
                   help="run the agent itself (the supervisor of an installed agent starts it so)")
    r.set_defaults(func=cmd_run)
    s = sub.add_parser("sim", help="control the simulated board of a running agent")
    s.add_argument("--config", required=True)
    s.add_argument("command", choices=["plug", "unplug", "swipe", "ev-full", "fault", "clear", "status"])
    s.add_argument("args", nargs="*")
    s.set_defaults(func=cmd_sim)
    d = sub.add_parser("demo", help="a full charging session against a local central system")
    d.add_argument("--speed", type=float, default=600.0, help="time compression of the simulated EV")
    d.add_argument("--keep", action="store_true", help="keep the demo's data directory")
    d.add_argument("--ocpp", choices=("1.6", "2.0.1"), default="1.6",
                   help="the OCPP version of the session (default 1.6; 2.0.1 is experimental)")
    d.set_defaults(func=cmd_demo)
    dr = sub.add_parser("doctor", help="probe the configured devices and the central system (agent stopped)")
    dr.add_argument("--config", required=True, help="configuration file (TOML)")
    dr.add_argument("--timeout", type=float, default=1.0, help="seconds to wait for each device answer")
    dr.set_defaults(func=cmd_doctor)
    _add_settings_commands(sub)
    _add_fleet_command(sub)
    add_log_command(sub)
    add_update_commands(sub)
    return p


def _add_fleet_command(sub) -> None:
    """``fleet``: simulated stations against a central system (agent/app/fleet_view.py, docs/fleet.md)."""
    def command(args) -> int:
        from agent.app.fleet_view import cmd_fleet

        return cmd_fleet(args)

    f = sub.add_parser("fleet", help="N simulated stations in one process against a central system (load tests)")
    f.add_argument("--csms", required=True, help="ws:// or wss:// URL of the central system, without the station id")
    f.add_argument("--count", type=int, default=10, help="number of stations (default 10)")
    f.add_argument("--id-prefix", default="CP", help="station ids are <prefix>001… (default CP)")
    f.add_argument("--scenario", help="scenario file (TOML, docs/fleet.md); default: a light built-in one")
    f.add_argument("--duration", default="10m", help="how long: 90, 30s, 10m, 2h (default 10m)")
    f.add_argument("--seed", default="0", help="the same seed gives the same events (default 0)")
    f.add_argument("--ocpp", choices=("auto", "1.6", "2.0.1"), default="auto", help="every station's csms.ocpp_version")
    f.add_argument("--data-dir", help="the stations' data in DIR/<id>, kept, log in DIR/fleet.log "
                                      "(default: a temporary directory, errors on stderr)")
    f.add_argument("--ramp", type=float, default=20.0, help="stations started per second (default 20)")
    f.add_argument("--report-json", help="also write the report as JSON to this file")
    f.add_argument("--plain", action="store_true", help="plain status lines instead of the live view")
    f.add_argument("--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                   help="level of DIR/fleet.log (with --data-dir)")
    f.set_defaults(func=command)


def _admin(name: str):
    """The command ``name`` of agent/app/cli_admin.py, imported when it runs (``run`` never loads it)."""
    def command(args) -> int:
        from agent.app import cli_admin

        return getattr(cli_admin, name)(args)

    return command


def _add_settings_commands(sub) -> None:
    """``csms show|set`` and ``config show|get|set`` (agent/app/cli_admin.py)."""
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument("--config", required=True, help="configuration file (TOML)")
    c = sub.add_parser("csms", help="show or change the central system (a running agent moves at once)")
    csub = c.add_subparsers(dest="csms_cmd", required=True)
    show = csub.add_parser("show", parents=[config], help="endpoint, connection, last boot, switch and rollback")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(func=_admin("cmd_csms_show"))
    cset = csub.add_parser("set", parents=[config], help="move to another central system (with rollback)")
    cset.add_argument("url", help="ws:// or wss:// URL of the central system, without the station id")
    cset.add_argument("--id", help="the station id to use there (default: keep)")
    cset.add_argument("--password-stdin", action="store_true",
                      help="read the HTTP Basic auth password from standard input (empty: none)")
    cset.add_argument("--ca-file", help="CA bundle for a wss:// server (\"\": the system's)")
    cset.add_argument("--wait", action="store_true", help="wait until the move is accepted or rolled back")
    cset.set_defaults(func=_admin("cmd_csms_set"))
    g = sub.add_parser("config", help="show, read or change configuration keys (section.key)")
    gsub = g.add_subparsers(dest="config_cmd", required=True)
    gsub.add_parser("show", parents=[config], help="every key with its value").set_defaults(
        func=_admin("cmd_config_show"))
    get = gsub.add_parser("get", parents=[config], help="one key's value")
    get.add_argument("key")
    get.set_defaults(func=_admin("cmd_config_get"))
    gset = gsub.add_parser("set", parents=[config], help="change a key (a running agent applies it)")
    gset.add_argument("key")
    gset.add_argument("value", help="the value; - reads it from standard input (required for passwords)")
    gset.set_defaults(func=_admin("cmd_config_set"))
    gimp = gsub.add_parser("import", parents=[config],
                           help="set every key of a TOML file at once (agent stopped; - reads standard input)")
    gimp.add_argument("file", help="a TOML file with the configuration file's sections, or - (standard input)")
    gimp.add_argument("--ignore-section", action="append", default=[], metavar="NAME",
                      help="a section of the file another program reads (the image's wifi, ssh)")
    gimp.set_defaults(func=_admin("cmd_config_import"))


def main(argv: list | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
