"""The diagnostics archive: what a backend gets when it asks a charger why it
misbehaves (OCPP 1.6 GetDiagnostics, GetLog DiagnosticsLog on 1.6 and 2.0.1;
docs/diagnostics.md). One .zip:

* ``README.txt``: the station, when the archive was made, the time window asked
  for, and what was left out to keep it within its size bound;
* ``status.json``: what the agent knows now, without touching the hardware: each
  connector's status, error codes, pilot state, offered current, contactor and last
  meter reading, the running transaction (its ids and start, not the id tag), the
  charger's status, the connection to the central system (``csms show``, no
  password), the certificates' summary, the transaction journal's statistics and
  the installed versions;
* ``doctor.txt``: the ``ocpp-agent doctor`` checks that do not touch the hardware:
  the central system's name lookup, TCP and TLS (no second websocket: the agent is
  connected, a second connection with its identity could make the central system
  drop the first; the live connection is a row of its own) and the secrets' file
  modes. The device probes are never run: they would take the hardware from the
  running agent;
* ``config/<file>``: the configuration file with every secret replaced by
  ``<hidden>`` (csms.password, status_page.password, any key named like a password,
  secret or token, and in [ocpp] / [ocpp201] like a key: AuthorizationKey,
  BasicAuthPassword), its layout and comments kept (tomlkit);
* ``logs/agent.log*`` and ``logs/ocpp-traffic.log*``: the log files of
  agent/app/log_files.py, the lines within the requested window (all without one);
  without traffic log files, the recent frames the agent holds in memory.

Then every member is scrubbed of every secret value the agent knows (the
configuration's, the central system passwords in use or kept to fall back to, the
1.6 AuthorizationKey, the 2.0.1 BasicAuthPassword, the network profiles'
passwords): a secret that reached a log line by accident leaves as ``<hidden>``.
The security log is not in it: it is a log type of its own (GetLog SecurityLog).

The archive holds at most ``max_bytes`` (20 MiB) of text before compression: when
the logs are longer, their oldest lines are left out first, the budget shared
fairly between the agent log and the traffic. The live facts are collected on the
event loop (they are small); reading the logs and compressing run in a worker
thread, so the charger goes on working meanwhile.

CPython-only (threads, zipfile, tomlkit).
"""

import asyncio
import json
import logging
import os
import threading

from agent.app.log_files import AGENT_LOG, TRAFFIC_LOG, line_time, log_files, logs_dir
from agent.core.isotime import format_datetime
from agent.update.state import FILE, read_state, running_version

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
HIDDEN = "<hidden>"
CSMS_PROBE_TIMEOUT_S = 5.0
SECRET_KEYS = (("csms", "password"), ("status_page", "password"))
SECRET_WORDS = ("password", "passwd", "secret", "token", "apikey", "api_key")
OCPP_SECRET_WORDS = SECRET_WORDS + ("key",)  # [ocpp] / [ocpp201]: AuthorizationKey, any ...Key
# data_dir files that hold secrets (agent/app/file_modes.py): their secret values are scrubbed
SECRET_DATA_FILES = ("endpoint.json", "network-profiles.json", "ocpp-config.json", "device-model.json",
                     "settings.json")
MIN_SCRUBBED = 4  # shorter values are not searched for: they would garble the text, not protect it
README_RESERVE = 8192  # bytes of the budget kept for README.txt


# ---------------------------------------------------------------------------- secrets

def is_secret_key(section: tuple, key: str) -> bool:
    """Whether configuration key ``key`` in table ``section`` (a tuple of names) holds a secret."""
    if (section[:1] + (key,)) in SECRET_KEYS:
        return True
    words = OCPP_SECRET_WORDS if section and section[0] in ("ocpp", "ocpp201") else SECRET_WORDS
    low = key.lower()
    return any(w in low for w in words)


def _mask_table(table, section: tuple) -> list:
    """Replace the secrets in a (tomlkit or plain) table in place; returns the values hidden."""
    hidden = []
    for key in list(table.keys()):
        value = table[key]
        if isinstance(value, dict):
            hidden.extend(_mask_table(value, section + (str(key),)))
        elif is_secret_key(section, str(key)) and value not in ("", None):  # an empty one stays: "none set"
            hidden.append(str(value))
            table[key] = HIDDEN
    return hidden


def _mask_comment(line: str) -> str:
    """A whole-line comment naming a secret (``# password = "old"``) is kept as ``# <hidden>``."""
    stripped = line.lstrip()
    if stripped.startswith("#") and any(w in stripped.lower() for w in SECRET_WORDS):
        return line[:len(line) - len(stripped)] + "# " + HIDDEN
    return line


def hidden_config_text(text: str) -> str:
    """The TOML ``text`` with every secret value replaced by ``<hidden>``, layout kept."""
    import tomlkit

    doc = tomlkit.parse(text)
    _mask_table(doc, ())
    return "\n".join(_mask_comment(line) for line in tomlkit.dumps(doc).split("\n"))


def hidden_config(config) -> str:
    """The configuration file of ``config`` with its secrets hidden; rewritten from the
    values in use when the file cannot be read (or was never written: tests)."""
    try:
        with open(config.path, encoding="utf-8") as f:
            return hidden_config_text(f.read())
    except (OSError, ValueError) as e:  # tomlkit's parse errors are ValueErrors
        problem = getattr(e, "strerror", None) or str(e)
    import tomlkit

    data = {"station": dict(config.station), "csms": dict(config.csms), "limits": dict(config.limits),
            "status_page": dict(config.status_page), "ocpp": dict(config.ocpp),
            "ocpp201": dict(config.ocpp201), "board": {k: dict(v) for k, v in config.board.items()}}
    _mask_table(data, ())
    return "# %s could not be read (%s): the configuration in use, rewritten\n%s" % (
        config.path, problem, tomlkit.dumps(data))


def _collect_secrets(node, out: set, secret: bool = False, parent: str = "") -> None:
    """The string values in parsed JSON ``node`` that sit under a secret-named key
    (``password``, ``BasicAuthPassword``, ``apnPassword``, a VPN's ``key``…)."""
    from agent.link.traffic import SECRET_FIELDS, is_secret_name

    if isinstance(node, dict):
        if is_secret_name(node.get("key")) and isinstance(node.get("value"), str):
            out.add(node["value"])  # {"key": "AuthorizationKey", "value": ...}
        for key, value in node.items():
            named = is_secret_name(key) or key in SECRET_FIELDS or (parent == "vpn" and key == "key")
            _collect_secrets(value, out, secret or named, str(key))
    elif isinstance(node, list):
        for item in node:
            _collect_secrets(item, out, secret, parent)
    elif secret and isinstance(node, str):
        out.add(node)


def secret_values(config, endpoint=None) -> list:
    """Every secret value the agent knows, longest first (each is scrubbed from the archive)."""
    found: set = set()
    data = {"station": config.station, "csms": config.csms, "status_page": config.status_page,
            "ocpp": dict(config.ocpp), "ocpp201": dict(config.ocpp201), "board": config.board}
    for value in _mask_table(json.loads(json.dumps(data, default=str)), ()):
        found.add(value)
    if endpoint is not None:
        state = endpoint.state
        kept = [state.current, getattr(state, "last_accepted", None)] + list(getattr(state, "held", {}).values())
        for settings in kept:
            if settings is not None and getattr(settings, "password", ""):
                found.add(settings.password)
    for name in SECRET_DATA_FILES:
        try:
            with open(os.path.join(config.data_dir, name), encoding="utf-8") as f:
                _collect_secrets(json.load(f), found)
        except (OSError, ValueError):
            continue
    values = set()
    for value in found:
        if isinstance(value, str) and len(value) >= MIN_SCRUBBED and value != HIDDEN:
            values.add(value)
            from urllib.parse import quote

            values.add(quote(value, safe=""))  # as it would stand in a URL
    return sorted(values, key=len, reverse=True)


def scrub(text: str, secrets) -> str:
    for value in secrets:
        if value in text:
            text = text.replace(value, HIDDEN)
    return text


# ---------------------------------------------------------------------------- the logs

def select_lines(path: str, start: float | None, stop: float | None) -> list:
    """The lines of log file ``path`` within [start, stop]; a line without a time of its
    own (a traceback's) has its predecessor's."""
    out = []
    t = None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.endswith("\n"):
                line += "\n"
            if start is None and stop is None:
                out.append(line)
                continue
            stamp = line_time(line)
            if stamp is not None:
                t = stamp
            if start is not None and (t is None or t < start):
                continue
            if stop is not None and t is not None and t > stop:
                continue
            out.append(line)
    return out


class _LogGroup:
    """One log's files in the archive, oldest first: [member name, lines, bytes]."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.files: list = []
        self.cut_lines = 0
        self.skipped_files = 0

    @property
    def size(self) -> int:
        return sum(f[2] for f in self.files)

    def gather(self, directory: str, start, stop, budget: int) -> None:
        """Read the newest files first, until ``budget`` bytes are held (older ones are not read)."""
        size = 0
        for path in reversed(log_files(directory, self.name)):
            if size >= budget:
                self.skipped_files += 1
                continue
            try:
                lines = select_lines(path, start, stop)
            except OSError as e:
                log.warning("diagnostics: cannot read %s: %s", path, e)
                continue
            nbytes = sum(len(line.encode("utf-8")) for line in lines)
            self.files.insert(0, ["logs/" + os.path.basename(path), lines, nbytes])
            size += nbytes

    def add_lines(self, member: str, lines: list) -> None:
        self.files.append([member, lines, sum(len(line.encode("utf-8")) for line in lines)])

    def cut_to(self, allowance: int) -> None:
        """Leave out the oldest lines until the group holds at most ``allowance`` bytes."""
        excess = self.size - allowance
        for f in self.files:
            if excess <= 0:
                break
            lines, dropped = f[1], 0
            while dropped < len(lines) and excess > 0:
                n = len(lines[dropped].encode("utf-8"))
                excess -= n
                f[2] -= n
                dropped += 1
            del lines[:dropped]
            self.cut_lines += dropped


def shares(sizes: list, budget: int) -> list:
    """Fair allowances for ``sizes`` within ``budget``: a small log keeps all it has, the
    rest is shared equally among the larger ones."""
    out = [0] * len(sizes)
    remaining = budget
    order = sorted(range(len(sizes)), key=lambda i: sizes[i])
    for n, i in enumerate(order):
        out[i] = min(sizes[i], remaining // (len(sizes) - n))
        remaining -= out[i]
    return out


# ---------------------------------------------------------------------------- the archive file

class _Guard:
    """Between the event loop and the worker thread: an archive whose request was canceled
    meanwhile is removed instead of being put in place (nothing would remove it later)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.canceled = False

    def cancel(self) -> None:
        with self.lock:
            self.canceled = True

    def commit(self, part: str, path: str) -> bool:
        with self.lock:
            if self.canceled:
                _remove(part)
                return False
            os.replace(part, path)
            return True


def build_archive(path: str, members: list, *, logs_directory: str, start: float | None = None,
                  stop: float | None = None, max_bytes: int = DEFAULT_MAX_BYTES, secrets=(), made_at: float,
                  station_id: str = "", recent_traffic: list | None = None, guard: _Guard | None = None) -> dict:
    """Write the archive to ``path``: ``members`` [(name, text)] then the log files of
    ``logs_directory`` (``recent_traffic``: lines standing in for a traffic log that has no
    files). Returns what it holds (also written to README.txt). Blocking: run in a thread."""
    import time
    import zipfile

    fixed = [(name, scrub(text, secrets).encode("utf-8")) for name, text in members]
    budget = max(0, max_bytes - README_RESERVE - sum(len(data) for _name, data in fixed))
    groups = []
    for name in (AGENT_LOG, TRAFFIC_LOG):
        group = _LogGroup(name)
        group.gather(logs_directory, start, stop, budget)
        if name == TRAFFIC_LOG and not group.files and recent_traffic:
            group.add_lines("logs/ocpp-traffic-recent.log", [line for line in recent_traffic
                                                             if _within(line_time(line), start, stop)])
        groups.append(group)
    for group, allowance in zip(groups, shares([g.size for g in groups], budget)):
        group.cut_to(allowance)

    summary = {"station": station_id, "made_at": format_datetime(made_at), "window": [
        format_datetime(start) if start is not None else None, format_datetime(stop) if stop is not None else None],
        "max_bytes": max_bytes, "logs": {g.name: {"files": [f[0] for f in g.files if f[1]], "lines_cut": g.cut_lines,
                                                   "older_files_left_out": g.skipped_files} for g in groups}}
    stamp = time.gmtime(made_at)[:6]
    part = path + ".part"
    try:
        with zipfile.ZipFile(part, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            def put(name: str, data: bytes) -> None:
                info = zipfile.ZipInfo(name, date_time=stamp if stamp[0] >= 1980 else (1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o600 << 16
                archive.writestr(info, data)

            put("README.txt", _readme(summary, [name for name, _d in fixed]).encode("utf-8"))
            for name, data in fixed:
                put(name, data)
            for group in groups:
                for member, lines, _n in group.files:
                    if lines:
                        put(member, scrub("".join(lines), secrets).encode("utf-8"))
        if guard is not None:
            guard.commit(part, path)
        else:
            os.replace(part, path)
    except BaseException:
        _remove(part)
        raise
    return summary


def _within(t, start, stop) -> bool:
    return (start is None or (t is not None and t >= start)) and (stop is None or t is None or t <= stop)


def _readme(summary: dict, names: list) -> str:
    window = summary["window"]
    lines = ["Diagnostics of charging station %s, made %s by ocpp-agent." % (summary["station"], summary["made_at"]),
             "",
             "Time window: %s" % ("%s to %s" % (window[0] or "the beginning", window[1] or "now")
                                  if window[0] or window[1] else "none (the whole logs)"),
             "Size bound: %d bytes of text; the oldest log lines are left out first." % summary["max_bytes"],
             "Every secret (passwords, keys, tokens) is replaced by %s." % HIDDEN, "", "Members:",
             "  README.txt  this text"]
    about = {"status.json": "what the agent knows now: connectors, charger, connection, journal, versions",
             "doctor.txt": "the doctor's checks that do not touch the hardware (central system, file modes)"}
    for name in names:
        lines.append("  %s  %s" % (name, about.get(name, "the configuration, secrets hidden"
                                                 if name.startswith("config/") else "")))
    for name, facts in summary["logs"].items():
        files = ", ".join(facts["files"]) or "none"
        lines.append("  %s: %s" % (name, files))
        if facts["lines_cut"] or facts["older_files_left_out"]:
            lines.append("    left out for size: the %d oldest lines%s" % (
                facts["lines_cut"], " and %d older files" % facts["older_files_left_out"]
                if facts["older_files_left_out"] else ""))
    return "\n".join(lines) + "\n"


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


# ---------------------------------------------------------------------------- live facts

def _reading(r) -> dict | None:
    if r is None:
        return None
    return {"energy_wh": r.energy_wh, "power_w": r.power_w,
            "current_a": list(r.current_a) if r.current_a else None,
            "voltage_v": list(r.voltage_v) if r.voltage_v else None, "frequency_hz": r.frequency_hz}


def hardware_status(station) -> dict:
    """What the station knows of its hardware now (no device is asked)."""
    connectors = []
    for c in station.connectors:
        status, error, info, vendor = station.status_of(c.id)
        tx = c.transaction
        connectors.append({
            "id": c.id, "status": status, "error_code": error, "info": info, "vendor_error_code": vendor,
            "availability": c.availability, "cp_state": c.evse.cp_state, "offered_current_a": c.offered_current_a,
            "contactor_closed": c.contactor_closed, "reserved": c.reserved, "last_reading": _reading(c.last_reading),
            "transaction": None if tx is None else {
                "id": tx.id, "central_system_id": tx.backend_id, "meter_start_wh": tx.meter_start_wh,
                "started": format_datetime(tx.start_time) if tx.start_time else None}})
    return {"charger": {"status": station.charger_status, "error_code": station.charger_error_code,
                        "availability": station.charger_availability, "reset_pending": station.reset_pending,
                        "boot_cause": getattr(station, "boot_cause", None)},
            "connectors": connectors}


def installed_versions(data_dir: str, extra=None) -> dict:
    """The running agent's version, Python and platform, the last update's state
    (data_dir/update.json) and what ``extra()`` adds (the update mechanism's list)."""
    import platform
    import sys

    out = {"running": running_version(), "python": sys.version.split()[0], "platform": platform.platform()}
    out["last_update"] = read_state(os.path.join(data_dir, FILE))
    if extra is not None:
        try:
            out["installed"] = extra()
        except Exception as e:  # the archive is made all the same
            out["installed"] = "not known: %r" % e
    return out


class DiagnosticsArchive:
    """The diagnostics source of a running agent (agent/app/runner.py): ``write(path,
    start, stop)`` is the LogService's ``write`` for log type "diagnostics".
    ``versions``: a callable listing the installed versions (the update mechanism's)."""

    def __init__(self, agent, *, max_bytes: int = DEFAULT_MAX_BYTES, csms_timeout_s: float = CSMS_PROBE_TIMEOUT_S,
                 probe_csms: bool = True, versions=None) -> None:
        self.agent = agent
        self.max_bytes = max_bytes
        self.csms_timeout_s = csms_timeout_s
        self.probe_csms = probe_csms
        self.versions = versions

    async def write(self, path: str, start: float | None, stop: float | None) -> None:
        agent = self.agent
        members = await self.members()
        traffic = ["%s %-3s %s\n" % (format_datetime(t, millis=True), d, text.replace("\n", " "))
                   for t, d, via, text in agent.traffic.recent(agent.traffic.max_frames) if not via] \
            if agent.traffic is not None else []
        guard = _Guard()
        try:
            await asyncio.to_thread(
                build_archive, path, members, logs_directory=logs_dir(agent.config.data_dir), start=start, stop=stop,
                max_bytes=self.max_bytes, secrets=secret_values(agent.config, agent.endpoint),
                made_at=agent.clock.time(), station_id=agent.config.station["id"], recent_traffic=traffic,
                guard=guard)
        except asyncio.CancelledError:
            guard.cancel()
            raise

    async def members(self) -> list:
        """[(name, text)] of the archive's members other than the logs."""
        agent = self.agent
        status = {"made_at": format_datetime(agent.clock.time()), "hardware": hardware_status(agent.station),
                  "connection": _quietly(agent.admin.csms_show if agent.admin is not None else agent.endpoint.show),
                  "journal": _quietly(agent.journal.statistics),
                  "versions": installed_versions(agent.config.data_dir, self.versions)}
        rows = await self.doctor_rows()
        from agent.app.doctor import format_table

        doctor = format_table(rows, "ocpp-agent doctor (from the running agent, no device probed): station %s"
                              % agent.config.station["id"])
        return [("status.json", json.dumps(status, indent=2, default=str) + "\n"), ("doctor.txt", doctor + "\n"),
                ("config/" + (os.path.basename(agent.config.path) or "agent.toml"), hidden_config(agent.config))]

    async def doctor_rows(self) -> list:
        """The doctor's rows that leave the hardware alone, and the live connection."""
        from agent.app.doctor import OK, WARN, Check, check_file_modes, probe_csms

        agent = self.agent
        endpoint = agent.endpoint.current
        rows = []
        if self.probe_csms:
            security = agent.security
            client_files = (security.certificate_files(endpoint.certificate or None)
                            if endpoint.level == 3 and security is not None else None)
            roots = security.csms_roots_pem() if security is not None else ""
            # In a thread with a loop of its own: the name lookup blocks.
            try:
                rows.extend(await asyncio.to_thread(asyncio.run, probe_csms(
                    endpoint.url, endpoint.station_id, endpoint.password, endpoint.ca_file, self.csms_timeout_s,
                    ocpp_version=agent.config.csms["ocpp_version"], roots_pem=roots, client_files=client_files,
                    websocket=False)))
            except Exception as e:  # a probe that breaks must not cost the archive
                rows.append(Check("csms probe", endpoint.url, WARN, "not run: %r" % e))
        shown = _quietly(agent.endpoint.show)
        online = isinstance(shown, dict) and shown.get("online")
        rows.append(Check("csms connection", endpoint.url, OK if online else WARN,
                          shown.get("connection", "") if isinstance(shown, dict) else str(shown)))
        rows.append(check_file_modes(agent.config))
        return rows


def _quietly(fn):
    try:
        return fn()
    except Exception as e:  # one fact missing must not cost the archive
        log.warning("diagnostics: %s failed: %r", getattr(fn, "__name__", fn), e)
        return {"error": repr(e)}
