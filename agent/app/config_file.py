"""Changing the configuration file: validated first, written atomically, comments kept.

``edit_config(path, {"csms.url": "wss://…"})`` applies changes to the TOML
file with ``tomlkit`` (comments, order and formatting stay as the owner wrote
them), validates the result exactly as the agent does at start
(``parse_config`` plus the ``[ocpp]`` and ``[board.*]`` tables), and only then
replaces the file atomically — mode 0600 when it holds a secret. A bad value
raises ``ConfigError`` ("file: key: problem") and leaves the file untouched.

CPython only (tomlkit), used by the CLI and by the running agent.
"""

import math
import os

import tomlkit
from tomlkit.exceptions import TOMLKitError

from agent.app.config import _SCHEMA as SCHEMA
from agent.app.config import Config, ConfigError, parse_config
from hal.runtime.storage import write_bytes_atomic

SECRET_KEYS = ("csms.password", "status_page.password")
HIDDEN = "(set, hidden)"


def check_key(path: str, dotted: str):
    """The schema entry of key ``dotted`` (None for ``ocpp.*`` and ``board.*.*``, whose
    values are free); ConfigError for a name the agent does not know."""
    parts = dotted.split(".")
    if len(parts) < 2 or not all(parts):
        raise ConfigError(path, dotted, "name a key as section.key, e.g. csms.url")
    section = parts[0]
    if section in SCHEMA:
        if len(parts) != 2:
            raise ConfigError(path, dotted, "unknown key")
        spec = SCHEMA[section].get(parts[1])
        if spec is None:
            raise ConfigError(path, dotted, "unknown key (known: %s)" % ", ".join(SCHEMA[section]))
        return spec
    if (section == "ocpp" and len(parts) == 2) or (section == "board" and len(parts) == 3):
        return None
    if section in ("ocpp", "board"):
        raise ConfigError(path, dotted, "name it as %s" % ("ocpp.KEY" if section == "ocpp" else "board.SECTION.KEY"))
    raise ConfigError(path, dotted, "unknown section (known: %s)" % ", ".join(list(SCHEMA) + ["ocpp", "board"]))


def parse_value(path: str, dotted: str, text: str):
    """The typed value of ``text`` for key ``dotted`` (as typed on a command line)."""
    spec = check_key(path, dotted)
    if spec is None:
        return _literal(text)
    typ = spec[0]
    if typ is str:
        return text
    if typ is bool:
        low = text.strip().lower()
        if low not in ("true", "false"):
            raise ConfigError(path, dotted, "must be true or false (got %r)" % text)
        return low == "true"
    try:
        value = int(text) if typ is int else float(text)
    except ValueError:
        raise ConfigError(path, dotted, "must be %s (got %r)" % (
            "an integer" if typ is int else "a number", text)) from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(path, dotted, "must be a finite number (got %r)" % text)
    return value


def flatten(path: str, data: dict) -> dict:
    """{dotted key: value} of a parsed TOML table such as the configuration file's, every key
    checked to be one the agent knows (``ocpp.KEY`` and ``board.SECTION.KEY`` as they come)."""
    out = {}
    for section, table in data.items():
        if not isinstance(table, dict):
            raise ConfigError(path, section, "expected a [%s] table" % section)
        for key, value in table.items():
            if section == "board":
                if not isinstance(value, dict):
                    raise ConfigError(path, "board." + key, "expected a [board.%s] table" % key)
                for sub, item in value.items():
                    out["board.%s.%s" % (key, sub)] = item
                    check_key(path, "board.%s.%s" % (key, sub))
                continue
            dotted = "%s.%s" % (section, key)
            check_key(path, dotted)
            out[dotted] = value
    return out


def _literal(text: str):
    """true/false, an integer, a number, or else the text itself."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for conv in (int, float):
        try:
            value = conv(text)
        except ValueError:
            continue
        if not isinstance(value, float) or math.isfinite(value):
            return value
    return text


def read_document(path: str):
    """The file as a tomlkit document (comments kept)."""
    try:
        with open(path, encoding="utf-8") as f:
            return tomlkit.parse(f.read())
    except FileNotFoundError:
        raise ConfigError(path, "", "no such file") from None
    except PermissionError:
        raise ConfigError(path, "", "permission denied") from None
    except (TOMLKitError, UnicodeDecodeError) as e:
        raise ConfigError(path, "", "not valid TOML: %s" % e) from None


def _set(doc, dotted: str, value) -> None:
    parts = dotted.split(".")
    table = doc
    for name in parts[:-1]:
        if name not in table:
            table[name] = tomlkit.table()
        table = table[name]
        if not isinstance(table, dict):
            raise ValueError("%s is not a table" % name)
    if value is None:
        if parts[-1] in table:
            del table[parts[-1]]
    else:
        table[parts[-1]] = value


def validate(path: str, data: dict, check_data_dir: bool = False) -> Config:
    """Everything the agent checks at start: the schema, the board and the OCPP keys."""
    cfg = parse_config(path, data, check_data_dir=check_data_dir)
    from hal.runtime.clock import Clock
    from boards import load_board, read_definition
    from hal.errors import HalConfigurationError

    try:
        definition = read_definition(cfg.station["board"], cfg.board)
        load_board(cfg.station["board"], cfg.board, None, Clock())  # builds, no I/O: checks every parameter
    except HalConfigurationError as e:
        raise ConfigError(path, "station.board" if not cfg.board else "board", str(e)) from None
    from agent.ocpp16.config_keys import FEATURE_PROFILES, ConfigurationStore, InvalidKeyValue, core_keys

    connectors = definition["evse"].get("connectors", 1)
    try:
        ConfigurationStore(core_keys(connectors if isinstance(connectors, int) else 1, FEATURE_PROFILES), None,
                           initial=cfg.ocpp)
    except KeyError as e:
        raise ConfigError(path, "ocpp.%s" % e.args[0], "unknown OCPP configuration key") from None
    except InvalidKeyValue as e:
        raise ConfigError(path, "ocpp.%s" % e.name, e.problem) from None
    return cfg


def holds_secret(cfg: Config) -> bool:
    return bool(cfg.csms["password"] or cfg.status_page["password"])


def edit_config(path: str, changes: dict, check_data_dir: bool = False) -> Config:
    """Apply ``changes`` ({dotted key: value, or None to remove it}) to the file at
    ``path``; returns the new, validated Config. Raises ConfigError (nothing written)."""
    doc = read_document(path)
    for dotted, value in changes.items():
        try:
            _set(doc, dotted, value)
        except (ValueError, TypeError, TOMLKitError) as e:
            raise ConfigError(path, dotted, "cannot set: %s" % e) from None
    cfg = validate(path, doc.unwrap(), check_data_dir=check_data_dir)
    try:
        mode = os.stat(path).st_mode & 0o777
    except OSError:
        mode = 0o600
    if holds_secret(cfg):
        mode = 0o600
    text = tomlkit.dumps(doc)
    if text and not text.endswith("\n"):
        text += "\n"
    try:
        write_bytes_atomic(path, text.encode("utf-8"), mode)
    except OSError as e:
        raise ConfigError(path, "", "cannot write: %s" % (e.strerror or e)) from None
    return cfg


def value_of(cfg: Config, dotted: str):
    """The effective value of a key (defaults included); secrets hidden."""
    parts = dotted.split(".")
    if dotted in SECRET_KEYS:
        section = getattr(cfg, parts[0])
        return HIDDEN if section[parts[1]] else ""
    if parts[0] in SCHEMA and len(parts) == 2:
        section = getattr(cfg, parts[0])
        if parts[1] in section:
            return section[parts[1]]
    elif parts[0] == "ocpp" and len(parts) == 2 and parts[1] in cfg.ocpp:
        return cfg.ocpp[parts[1]]
    elif parts[0] == "board" and len(parts) == 3 and parts[2] in cfg.board.get(parts[1], {}):
        return cfg.board[parts[1]][parts[2]]
    raise KeyError(dotted)


def all_values(cfg: Config) -> list:
    """[(dotted key, value)] of every key, defaults included, secrets hidden."""
    out = []
    for section, keys in SCHEMA.items():
        for key in keys:
            out.append(("%s.%s" % (section, key), value_of(cfg, "%s.%s" % (section, key))))
    for key in sorted(cfg.ocpp):
        out.append(("ocpp." + key, cfg.ocpp[key]))
    for section in sorted(cfg.board):
        for key in sorted(cfg.board[section]):
            out.append(("board.%s.%s" % (section, key), cfg.board[section][key]))
    return out


def format_value(value) -> str:
    if value == HIDDEN:
        return value
    return tomlkit.item(value).as_string() if not isinstance(value, list) else str(value)
