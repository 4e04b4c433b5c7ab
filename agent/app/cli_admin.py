"""``ocpp-agent csms …`` and ``ocpp-agent config …``: the owner's settings, from a shell.

With the agent running, a change is sent to it over ``data_dir/control.sock``
and it validates, writes the configuration file and applies the change without
a restart (a new central system with rollback, see agent/link/switch.py). With the
agent stopped, the file is validated and written here, and the agent picks the
change up at its next start (a changed central system is then tried with the
same rollback).

Exit status: 0 done, 2 bad input or configuration (nothing changed), 1 other
failures (the agent did not answer).
"""

import asyncio
import functools
import json
import os
import sys
import time

from agent.app.config import ConfigError, load_config, validate_csms_url, validate_station_id
from agent.app.control import CONTROL_SOCKET_FILE
from agent.core.isotime import format_datetime
from agent.link import protocols
from agent.link.endpoint import EndpointSettings, EndpointState

# ``ocpp-agent run`` builds this module's parser too: what only these commands need
# (tomlkit through agent/app/config_file.py, sqlite3, the control socket's client) is
# imported in the functions that use it.

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
WAIT_POLL_S = 1.0


def _err(message: str, code: int = EXIT_BAD_INPUT) -> int:
    print("error: %s" % message, file=sys.stderr)
    return code


def _load(path: str):
    return load_config(path, check_data_dir=False)


def _with_config(command):
    """``command(args, config)`` as ``command(args)``: the configuration of ``args.config``
    loaded first (a bad one: its error, exit status 2)."""
    @functools.wraps(command)
    def run(args) -> int:
        try:
            config = _load(args.config)
        except ConfigError as e:
            return _err(str(e))
        return command(args, config)
    return run


def _ask(config, message: dict, timeout_s: float = 10.0):
    """The running agent's reply, or None when no agent serves this data_dir."""
    from hal.runtime.jsonline import request

    path = os.path.join(config.data_dir, CONTROL_SOCKET_FILE)
    if not os.path.exists(path):
        return None
    try:
        return asyncio.run(request(path, message, timeout_s))
    except ConnectionError:
        return None
    except TimeoutError as e:
        sys.exit(_err("%s; check with ocpp-agent csms show" % e, EXIT_FAILED))


def _print_notes(notes) -> None:
    for note in notes:
        print("note: %s" % note)


def _save_endpoint(path: str, new: EndpointSettings) -> None:
    """Write the central-system settings ``new`` to the configuration file at ``path``."""
    from agent.app.config_file import edit_config

    from agent.app.admin import endpoint_changes

    edit_config(path, endpoint_changes(new))


def _read_secret() -> str:
    data = sys.stdin.read()
    if data.endswith("\r\n"):
        data = data[:-2]
    elif data.endswith("\n"):
        data = data[:-1]
    return data


# ---------------------------------------------------------------------- csms show
def offline_show(config) -> dict:
    """What ``csms show`` can tell with the agent stopped: the file, the endpoint state, the journal."""
    from_file = EndpointSettings.from_config(config)
    state = EndpointState(EndpointState.path_in(config.data_dir))
    have_state = os.path.exists(state.path) and state.load()
    out = from_file.public()
    out.update(running=False, connection="agent not running", connected=False, online=False,
               registration=None, last_error="", pending=None, rollback=None, held=[], queued=None,
               fallback_timeout_s=config.csms["fallback_timeout_s"], last_boot=None, last_accepted=None)
    out.update(protocols.show(config.csms["ocpp_version"]))  # negotiated only by a running agent
    if have_state:
        out["last_accepted"] = state.last_accepted.public() if state.last_accepted else None
        out["last_boot"] = _iso(state.last_boot)
        if state.rollback:
            out["rollback"] = dict(state.rollback, at=_iso(state.rollback.get("at")))
        if state.config_seen is not None and state.config_seen != from_file:
            out["connection"] = ("agent not running; at its next start it moves from %s to these settings"
                                 % state.current.url)
        elif state.pending and state.last_accepted:
            out["pending"] = {"since": _iso(state.pending["since"]), "source": state.pending.get("source", ""),
                              "deadline": _iso(state.pending["since"] + config.csms["fallback_timeout_s"]),
                              "fallback_to": state.last_accepted.public(), "seconds_left": None}
    counts = _journal_counts(config.data_dir)
    if counts is not None:
        current = from_file.key if not have_state else state.current.key
        out["queued"] = counts.pop(current, 0) + counts.pop("", 0)
        for key, n in sorted(counts.items()):
            held = state.held.get(key) if have_state else None
            out["held"].append({"backend": key, "url": held.url if held else "", "messages": n,
                                "station_id": held.station_id if held else "", "connected": False,
                                "last_error": ""})
    return out


def _journal_counts(data_dir: str):
    import sqlite3

    path = os.path.join(data_dir, "journal.sqlite")
    if not os.path.exists(path):
        return None
    try:
        db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
        try:
            cols = [r[1] for r in db.execute("PRAGMA table_info(msg)")]
            if "backend" in cols:
                rows = db.execute("SELECT backend, count(*) FROM msg GROUP BY backend").fetchall()
            else:
                rows = db.execute("SELECT '', count(*) FROM msg").fetchall()
        finally:
            db.close()
    except sqlite3.Error:
        return None
    return {k: n for k, n in rows}


def _iso(ts):
    return None if ts is None else format_datetime(ts)


def format_show(d: dict) -> str:
    lines = [
        "central system:   %s" % d["url"],
        "station id:       %s" % d["station_id"],
        "security profile: %s" % d["security_profile"],
        "password:         %s" % ("set" if d["password_set"] else "not set"),
    ]
    if d.get("ca_file"):
        lines.append("CA file:          %s" % d["ca_file"])
    certs = d.get("certificates")
    if certs:
        own = ("%s…, expires %s" % (certs["charger_certificate"][:16], certs["charger_certificate_expires"])
               if certs["charger_certificate"] else "none")
        lines.append("certificates:     %d CSMS/manufacturer roots installed; charger certificate: %s" % (
            certs["roots_installed"], own))
    lines.append("connection:       %s" % d["connection"])
    if "subprotocols_offered" in d:  # (an agent started before this version does not report it)
        lines.append("OCPP version:     %s" % protocols.describe(d, d.get("connected", False)))
    lines.append("last boot:        %s" % (d.get("last_boot") or "never accepted"))
    p = d.get("pending")
    if p:
        left = "" if p.get("seconds_left") is None else ", %d s left" % p["seconds_left"]
        lines.append("switch pending:   since %s (%s); back to %s at %s unless accepted%s" % (
            p["since"], p["source"], p["fallback_to"]["url"], p["deadline"], left))
    rb = d.get("rollback")
    if rb:
        lines.append("last rollback:    %s: %s did not work (%s); returned to %s%s" % (
            rb["at"], rb["from"]["url"], rb["reason"], rb["to"]["url"],
            "" if rb.get("reported") else " (not yet reported to the central system)"))
    if d.get("queued") is not None:
        lines.append("queued messages:  %d" % d["queued"])
    for h in d.get("held", []):
        lines.append("held for %s: %d messages%s" % (h["url"] or h["backend"], h["messages"],
                                                     " (delivering)" if h.get("connected") else ""))
    return "\n".join(lines)


@_with_config
def cmd_csms_show(args, config) -> int:
    reply = _ask(config, {"command": "csms-show"})
    if reply is not None and not reply.get("ok"):
        return _err(reply.get("error", "the agent refused"), EXIT_FAILED)
    data = reply["result"] if reply is not None else offline_show(config)
    print(json.dumps(data, indent=2) if args.json else format_show(data))
    return 0


# ---------------------------------------------------------------------- csms set
@_with_config
def cmd_csms_set(args, config) -> int:
    password = _read_secret() if args.password_stdin else None
    problem = validate_csms_url(args.url)
    if problem:
        return _err("%s: csms.url: %s" % (config.path, problem))
    if args.id is not None:
        problem = validate_station_id(args.id)
        if problem:
            return _err("%s: station.id: %s" % (config.path, problem))
    if args.ca_file:
        args.ca_file = os.path.abspath(args.ca_file)
    message = {"command": "csms-set", "url": args.url, "station_id": args.id, "password": password,
               "ca_file": args.ca_file}
    reply = _ask(config, message, timeout_s=15.0)
    if reply is not None:
        if not reply.get("ok"):
            return _err(reply.get("error", "the agent refused"))
        result = reply["result"]
        _print_notes(result.get("notes", []))
        print(result["message"])
        if args.wait:
            return _wait_for_outcome(config, args.url)
        return 0
    # No agent running: validate and write the file; the agent moves at its next start.
    from agent.app.admin import plan_endpoint

    new, notes = plan_endpoint(EndpointSettings.from_config(config), args.url, args.id, password, args.ca_file)
    try:
        _save_endpoint(config.path, new)
    except ConfigError as e:
        return _err(str(e))
    _print_notes(notes)
    print("saved to %s; the agent is not running: it moves to %s at its next start (back to the last "
          "accepted central system if this one does not accept it within %d s)"
          % (config.path, new.url, config.csms["fallback_timeout_s"]))
    return 0


def _wait_for_outcome(config, url: str) -> int:
    """Poll the agent until the switch is accepted or rolled back."""
    deadline = time.monotonic() + config.csms["fallback_timeout_s"] + 60
    while time.monotonic() < deadline:
        time.sleep(WAIT_POLL_S)
        reply = _ask(config, {"command": "csms-show"})
        if reply is None or not reply.get("ok"):
            return _err("the agent stopped answering", EXIT_FAILED)
        d = reply["result"]
        if d["pending"] is None and d["online"]:
            if d["url"] == url:
                print("accepted by %s" % url)
                return 0
            rb = d.get("rollback") or {}
            return _err("rolled back to %s: %s" % (d["url"], rb.get("reason", "")), EXIT_FAILED)
    return _err("no outcome in time; see `ocpp-agent csms show`", EXIT_FAILED)


# ---------------------------------------------------------------------- config
@_with_config
def cmd_config_show(args, config) -> int:
    from agent.app.config_file import all_values, format_value

    for key, value in all_values(config):
        print("%s = %s" % (key, format_value(value)))
    return 0


@_with_config
def cmd_config_get(args, config) -> int:
    from agent.app.config_file import format_value, parse_value, value_of

    try:
        value = value_of(config, args.key)
    except KeyError:
        try:
            parse_value(config.path, args.key, "")
        except ConfigError as e:
            return _err(str(e))
        return _err("%s: %s: not set" % (config.path, args.key))
    print(value if isinstance(value, str) else format_value(value))
    return 0


@_with_config
def cmd_config_set(args, config) -> int:
    from agent.app.config_file import SECRET_KEYS, edit_config, parse_value

    value_text = args.value
    if args.key in SECRET_KEYS:
        if value_text != "-":
            return _err("%s: give a secret on standard input, not on the command line: "
                        "ocpp-agent config set %s - < file" % (args.key, args.key))
        value_text = _read_secret()
    try:
        value = parse_value(config.path, args.key, value_text)
    except ConfigError as e:
        return _err(str(e))
    reply = _ask(config, {"command": "config-set", "key": args.key, "value": value_text}, timeout_s=15.0)
    if reply is not None:
        if not reply.get("ok"):
            return _err(reply.get("error", "the agent refused"))
        result = reply["result"]
        _print_notes(result.get("notes", []))
        print("%s; applied %s" % (result["message"], result["applied"]))
        return 0
    try:
        if args.key in ("csms.url", "station.id", "csms.password", "csms.ca_file"):
            from agent.app.admin import ENDPOINT_KEYS, plan_endpoint

            new, notes = plan_endpoint(EndpointSettings.from_config(config),
                                       **{"url": None, ENDPOINT_KEYS[args.key]: value})
            _print_notes(notes)
            _save_endpoint(config.path, new)
        else:
            edit_config(config.path, {args.key: value})
    except ConfigError as e:
        return _err(str(e))
    print("%s set in %s; the agent is not running: applied at its next start" % (args.key, config.path))
    return 0


def cmd_config_import(args) -> int:
    """Every key of a TOML file (the configuration file's sections) written in one validated,
    atomic edit: how the image's first boot applies the owner's file from the boot partition
    (docs/raspberry-pi.md). The target may lack required keys the import brings (the
    package's file has no station id or URL yet). Central-system keys follow ``csms set``'s
    rules. With the agent running: refused (``config set`` applies keys to it one by one)."""
    import tomllib

    from agent.app.admin import ENDPOINT_KEYS, endpoint_changes, plan_endpoint
    from agent.app.config_file import SECRET_KEYS, edit_config, flatten

    source = "standard input" if args.file == "-" else args.file
    try:
        if args.file == "-":
            text = sys.stdin.read()
        else:
            with open(args.file, encoding="utf-8") as f:
                text = f.read()
        data = tomllib.loads(text)
        changes = flatten(source, {k: v for k, v in data.items() if k not in args.ignore_section})
    except OSError as e:
        return _err("%s: %s" % (source, e.strerror or e))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        return _err("%s: not valid TOML: %s" % (source, e))
    except ConfigError as e:
        return _err(str(e))
    if not changes:
        return _err("%s: no keys to import" % source)
    try:
        current = _load(args.config)
    except ConfigError:
        current = None  # incomplete: the import must complete it (checked below)
    if current is not None:
        if _ask(current, {"command": "csms-show"}) is not None:
            return _err("the agent is running: stop it first (sudo systemctl stop ocpp-agent), "
                        "or change keys one by one with ocpp-agent config set")
        given = {field: changes[key] for key, field in ENDPOINT_KEYS.items() if key in changes}
        if given:
            new, notes = plan_endpoint(EndpointSettings.from_config(current), given.pop("url", None), **given)
            _print_notes(notes)
            changes.update(endpoint_changes(new))
    try:
        edit_config(args.config, changes)
    except ConfigError as e:
        return _err(str(e))
    print("imported into %s: %s" % (args.config, ", ".join(
        key + (" (hidden)" if key in SECRET_KEYS else "") for key in sorted(changes) if changes[key] is not None)))
    return 0
