"""``ocpp-agent update BUNDLE|URL``, ``ocpp-agent update --rollback`` and ``ocpp-agent
version``: the agent's own updates from a shell (docs/updates.md).

With the agent running, ``update`` hands the bundle to it (its control socket): the
same download, checks, wait for the transactions, install, restart on trial and
rollback as an update from the central system. With the agent stopped, the bundle is
installed and made active here; its first start is on trial all the same.
"""

import os
import sys
import tempfile
import time

from agent.update.state import FILE, begin_trial, install_root_of, running_version

EXIT_FAILED, EXIT_BAD_INPUT = 1, 2


def _err(message: str, code: int = EXIT_BAD_INPUT) -> int:
    print("error: %s" % message, file=sys.stderr)
    return code


def add_update_commands(sub) -> None:
    u = sub.add_parser("update", help="update the agent to a bundle (file or URL), or roll back")
    u.add_argument("--config", required=True)
    u.add_argument("bundle", nargs="?", help="a bundle file or an http(s)/ftp URL of one")
    u.add_argument("--rollback", action="store_true", help="make the previous version active again")
    u.set_defaults(func=cmd_update)
    v = sub.add_parser("version", help="the agent's version, and the installed ones")
    v.set_defaults(func=cmd_version)


def _root():
    from agent.update.installer import InstallRoot

    path = install_root_of(sys.prefix)
    return InstallRoot(path) if path is not None else None


def cmd_version(_args) -> int:
    print("ocpp-agent %s" % running_version())
    root = _root()
    if root is None:
        print("not an installed agent (no install root): updates need one, see docs/updates.md")
        return 0
    print("install root: %s" % root.path)
    for v in root.versions():
        mark = "current" if v["current"] else "previous" if v["previous"] else ""
        print("  %-12s %s" % (v["version"], mark))
    return 0


def cmd_update(args) -> int:
    from agent.app.cli_admin import _ask  # the control socket client: loaded for this command only
    from agent.app.config import ConfigError, load_config

    try:
        config = load_config(args.config, check_data_dir=False)
    except ConfigError as e:
        return _err(str(e))
    if not args.rollback and not args.bundle:
        return _err("give a bundle (file or URL), or --rollback")
    root = _root()
    if root is None:
        return _err("this agent does not run from an install root: nothing to update (docs/updates.md)")
    location = args.bundle
    if location and "://" not in location:
        location = os.path.abspath(location)
        if not os.path.isfile(location):
            return _err("no such file: %s" % location)
    reply = _ask(config, {"command": "update", "rollback": args.rollback, "location": location}, timeout_s=30)
    if reply is not None:
        if not reply.get("ok"):
            return _err(reply.get("error", "refused"), EXIT_FAILED)
        print(reply["result"]["message"])
        return 0
    # The agent is not running: do it here; its next start is the trial.
    if args.rollback:
        print("version %s is active again" % root.roll_back())
        return 0
    return _install_here(root, location, config)


def _install_here(root, location: str, config) -> int:
    from agent.update.bundle import BundleError
    from agent.update.installer import InstallError

    bundle = location
    if "://" in location:
        from agent.transfer.download import DownloadError, fetch

        bundle = os.path.join(tempfile.mkdtemp(prefix="ocpp-agent-update-"), "update.bundle")
        try:
            fetch(location, bundle)
        except DownloadError as e:
            return _err("download failed: %s" % e.reason, EXIT_FAILED)
    try:
        version = root.install(bundle)
    except (BundleError, InstallError) as e:
        return _err("not installed: %s" % e, EXIT_FAILED)
    now = time.time()
    # The deadline is set when the trial starts: at the agent's next start (agent/update/supervisor.py)
    begin_trial(os.path.join(config.data_dir, FILE), from_version=root.current_version() or "", to_version=version,
                now=now, deadline=None, needs_boot=False, protocol="cli")
    root.activate(version)
    print("version %s installed and active; its first start is on trial (healthy for %d s, else back to the "
          "previous version)" % (version, config.update["healthy_start_s"]))
    return 0
