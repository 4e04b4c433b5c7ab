"""The agent's configuration file (TOML) and its validation.

A bad configuration stops the agent before anything starts, with one message
that names the file, the key and the problem (``ConfigError``; the CLI exits
with status 2).
"""

import ipaddress
import os
import tomllib
import urllib.parse

from agent.link.endpoint import validate_csms_url
from agent.link.protocols import AUTO, version_problem
from agent.security.profiles import scheme_problem

DEFAULT_DATA_DIR = "/var/lib/ocpp-agent"

# section -> key -> (type, default); a default of ... marks a required key.
_SCHEMA: dict = {
    "station": {
        "id": (str, ...),
        "board": (str, "sim"),
        "data_dir": (str, DEFAULT_DATA_DIR),
        "vendor": (str, ""),
        "model": (str, ""),
        "serial_number": (str, ""),
        "firmware_version": (str, ""),  # "": the agent's own version (what an update changes)
        "log_level": (str, "INFO"),
        "journal_max_entries": (int, 20000),
        # data_dir/logs/agent.log and ocpp-traffic.log (agent/app/log_files.py): each rotated at this
        # size, with log_files_kept older files; 0 writes no log files
        "log_file_max_bytes": (int, 1048576),
        "log_files_kept": (int, 3),
    },
    "csms": {
        "url": (str, ...),
        "password": (str, ""),
        "ca_file": (str, ""),
        # 0: what the URL and password give (wss:// 2, ws:// 1 or 0); 3: TLS with the charger's certificate
        "security_profile": (int, 0),
        "connect_timeout_s": (float, 10.0),
        "response_timeout_s": (float, 30.0),
        "reconnect_initial_s": (float, 1.0),
        "reconnect_max_s": (float, 120.0),
        "fallback_timeout_s": (float, 300.0),
        "ocpp_version": (str, AUTO),  # "auto" or a version (agent/link/protocols.py)
    },
    "limits": {
        "max_current_a": (float, 0.0),
    },
    "update": {  # updating the agent itself (agent/update, docs/updates.md)
        "verify_timeout_s": (float, 300.0),  # a new version's time to get BootNotification Accepted
        "healthy_start_s": (float, 60.0),  # offline: how long it must run without dying
    },
    "status_page": {  # the local status and setup page (agent/app/status_page.py)
        "enabled": (bool, True),
        "host": (str, "127.0.0.1"),
        "port": (int, 8080),
        "password": (str, ""),
        "tls": (str, "auto"),  # "auto": HTTPS off loopback (agent/app/page_tls.py), "on", "off"
        "cert_file": (str, ""),  # the owner's certificate (chain) and key; none: the agent makes its own
        "key_file": (str, ""),
    },
}
_FREE_SECTIONS = ("ocpp", "ocpp201", "board")  # validated by their owners (config keys, board loader)
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
PAGE_TLS_MODES = ("auto", "on", "off")
# RFC 3986 unreserved characters plus '*' and '-' which OCPP identities use widely.
_ID_MAX = 48


class ConfigError(ValueError):
    """A configuration problem: ``str()`` names the file, the key and the problem."""

    def __init__(self, path: str, key: str, problem: str) -> None:
        self.path, self.key, self.problem = path, key, problem
        super().__init__("%s: %s: %s" % (path, key, problem) if key else "%s: %s" % (path, problem))


class Config:
    """A validated configuration. Sections are dicts: ``cfg.station["id"]``."""

    def __init__(self, path: str, station: dict, csms: dict, limits: dict, ocpp: dict, board: dict,
                 status_page: dict | None = None, ocpp201: dict | None = None, update: dict | None = None) -> None:
        self.path = path
        self.station = station
        self.csms = csms
        self.limits = limits
        self.ocpp = ocpp
        self.ocpp201 = ocpp201 or {}  # initial 2.0.1 device model values, "Component.Variable[instance]" = value
        self.board = board
        self.update = update if update is not None else {k: default for k, (_t, default) in _SCHEMA["update"].items()}
        self.status_page = status_page if status_page is not None else {
            k: default for k, (_t, default) in _SCHEMA["status_page"].items()}

    @property
    def data_dir(self) -> str:
        return self.station["data_dir"]

    def connect_url(self) -> str:
        """The websocket URL: ``{csms.url}/{station.id}``, the id URL-encoded."""
        return self.csms["url"].rstrip("/") + "/" + urllib.parse.quote(self.station["id"], safe="")


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a name or address to bind) is only reachable from this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def validate_station_id(station_id: str) -> str:
    if not station_id:
        return "must not be empty"
    if len(station_id) > _ID_MAX:
        return "longer than %d characters" % _ID_MAX
    if station_id != station_id.strip() or any(ord(c) < 32 or ord(c) == 127 for c in station_id):
        # Inner spaces are fine (OCPP-J 1.6's own example is "RDAM 123"; it is URL-encoded).
        return "must not contain control characters or leading/trailing spaces"
    return ""


def _check_type(path: str, dotted: str, value, expected: type):
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
        raise ConfigError(path, dotted, "must be %s, not %s (%r)" % (
            {str: "a string", float: "a number", int: "an integer", bool: "true or false"}[expected],
            type(value).__name__, value))
    return value


def parse_config(path: str, data: dict, check_data_dir: bool = True) -> Config:
    """Validate the parsed TOML ``data`` read from ``path``."""
    for section in data:
        if section not in _SCHEMA and section not in _FREE_SECTIONS:
            raise ConfigError(path, section, "unknown section (known: %s)" % ", ".join(
                list(_SCHEMA) + list(_FREE_SECTIONS)))
    sections = {}
    for section, keys in _SCHEMA.items():
        raw = data.get(section, {})
        if not isinstance(raw, dict):
            raise ConfigError(path, section, "must be a table ([%s])" % section)
        out = {}
        for key in raw:
            if key not in keys:
                raise ConfigError(path, "%s.%s" % (section, key), "unknown key (known: %s)" % ", ".join(keys))
        for key, (typ, default) in keys.items():
            dotted = "%s.%s" % (section, key)
            if key in raw:
                out[key] = _check_type(path, dotted, raw[key], typ)
            elif default is ...:
                raise ConfigError(path, dotted, "required key is missing")
            else:
                out[key] = default
        sections[section] = out

    st, cs = sections["station"], sections["csms"]
    for dotted, problem in (("station.id", validate_station_id(st["id"])),
                            ("csms.url", validate_csms_url(cs["url"])),
                            ("csms.ocpp_version", version_problem(cs["ocpp_version"]))):
        if problem:
            raise ConfigError(path, dotted, problem)
    if cs["password"] and ":" in st["id"]:
        # HTTP Basic auth: the username is the station id and ':' separates it from the password.
        raise ConfigError(path, "station.id", "must not contain ':' when csms.password is set "
                          "(the id is the HTTP Basic auth username)")
    if st["log_level"].upper() not in _LOG_LEVELS:
        raise ConfigError(path, "station.log_level", "must be one of %s" % ", ".join(_LOG_LEVELS))
    st["log_level"] = st["log_level"].upper()
    for key in ("log_file_max_bytes", "log_files_kept"):
        if st[key] < 0:
            raise ConfigError(path, "station." + key, "must not be negative (log_file_max_bytes 0: no log files)")
    if cs["ca_file"] and not os.path.isfile(cs["ca_file"]):
        raise ConfigError(path, "csms.ca_file", "no such file: %s" % cs["ca_file"])
    if cs["ca_file"] and not cs["url"].startswith("wss://"):
        raise ConfigError(path, "csms.ca_file", "only used with a wss:// URL")
    if cs["security_profile"] not in (0, 1, 2, 3):
        raise ConfigError(path, "csms.security_profile", "must be 0 (from the URL), 1, 2 or 3")
    problem = scheme_problem(cs["url"], cs["security_profile"])
    if problem:
        raise ConfigError(path, "csms.security_profile", problem)
    for key in ("connect_timeout_s", "response_timeout_s", "reconnect_initial_s", "reconnect_max_s",
                "fallback_timeout_s"):
        if cs[key] <= 0:
            raise ConfigError(path, "csms." + key, "must be greater than 0")
    for key in ("verify_timeout_s", "healthy_start_s"):
        if sections["update"][key] <= 0:
            raise ConfigError(path, "update." + key, "must be greater than 0")
    if sections["limits"]["max_current_a"] < 0:
        raise ConfigError(path, "limits.max_current_a", "must not be negative (0 means no limit)")
    page = sections["status_page"]
    if not 0 <= page["port"] < 65536:
        raise ConfigError(path, "status_page.port", "must be 0..65535 (0 picks a free port)")
    if not page["host"]:
        raise ConfigError(path, "status_page.host", "must not be empty")
    if page["enabled"] and not is_loopback_host(page["host"]) and not page["password"]:
        raise ConfigError(path, "status_page.password", "required when status_page.host is not a loopback "
                          "address (got host %r): anyone on the network could move the charger" % page["host"])
    for key in ("cert_file", "key_file"):  # relative to the file, as data_dir: the agent's cwd may be /
        if page[key]:
            page[key] = os.path.join(os.path.dirname(os.path.abspath(path)), page[key])
    problem = _page_tls_problem(page)
    if problem:
        raise ConfigError(path, *problem)

    base = os.path.dirname(os.path.abspath(path))
    st["data_dir"] = os.path.join(base, st["data_dir"]) if not os.path.isabs(st["data_dir"]) else st["data_dir"]
    if check_data_dir:
        problem = _check_writable_dir(st["data_dir"])
        if problem:
            raise ConfigError(path, "station.data_dir", problem)

    ocpp = data.get("ocpp", {})
    ocpp201 = data.get("ocpp201", {})
    board = data.get("board", {})
    for name, table in (("ocpp", ocpp), ("ocpp201", ocpp201), ("board", board)):
        if not isinstance(table, dict):
            raise ConfigError(path, name, "must be a table ([%s])" % name)
    for sect, table in board.items():
        if not isinstance(table, dict):
            raise ConfigError(path, "board." + sect, "must be a table ([board.%s])" % sect)
    return Config(path, st, cs, sections["limits"], dict(ocpp), {k: dict(v) for k, v in board.items()},
                  status_page=page, ocpp201=dict(ocpp201), update=sections["update"])


def _page_tls_problem(page: dict) -> tuple:
    """(key, problem) of the status page's TLS settings; () when they are fine."""
    if page["tls"] not in PAGE_TLS_MODES:
        return "status_page.tls", "must be one of %s (got %r)" % (", ".join(PAGE_TLS_MODES), page["tls"])
    if bool(page["cert_file"]) != bool(page["key_file"]):
        missing = "status_page.key_file" if page["cert_file"] else "status_page.cert_file"
        return missing, "give cert_file and key_file together, or neither (the agent then makes its own)"
    if not page["cert_file"] or not page["enabled"]:
        return ()
    if page["tls"] == "off":
        return "status_page.cert_file", 'not used with tls = "off"'
    for key in ("cert_file", "key_file"):
        if not os.path.isfile(page[key]):
            return "status_page." + key, "no such file: %s" % page[key]
    import ssl

    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(page["cert_file"], page["key_file"])
    except (ssl.SSLError, OSError) as e:
        return "status_page.cert_file", "cannot use %s with %s: %s" % (page["cert_file"], page["key_file"],
                                                                      getattr(e, "reason", None) or e)
    return ()


def _check_writable_dir(path: str) -> str:
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError as e:
        return "cannot create directory %s: %s" % (path, e.strerror or e)
    if not os.path.isdir(path):
        return "%s is not a directory" % path
    probe = os.path.join(path, ".write-test")
    try:
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        return "directory %s is not writable: %s" % (path, e.strerror or e)
    return ""


def load_config(path: str, check_data_dir: bool = True) -> Config:
    """Read and validate the configuration file at ``path``."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(path, "", "no such file") from None
    except PermissionError:
        raise ConfigError(path, "", "permission denied") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(path, "", "not valid TOML: %s" % e) from None
    return parse_config(path, data, check_data_dir=check_data_dir)
