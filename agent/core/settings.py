"""The station's settings: neutral names and types, persisted, with change listeners.

The core reads typed values by neutral names (``settings.get("sample_interval_s")``).
Each protocol adapter binds its own names to them: OCPP 1.6 configuration keys
(agent/ocpp16/config_keys.py), 2.0.1 device-model variables. Values set over a
protocol or by the agent are persisted in ``data_dir/settings.json`` (mode 0600);
values from the configuration file are the starting point and are not written.

Portable core: no I/O library (hal/runtime/storage.py writes the file).
"""

import logging

from agent.core.smart_charging import DEFAULT_MAX_PERIODS, DEFAULT_MAX_PROFILES, DEFAULT_MAX_STACK_LEVEL
from hal.runtime.storage import read_json, write_json_atomic

log = logging.getLogger(__name__)

BOOL, INT, LIST, TEXT = "bool", "int", "list", "text"

SETTINGS_FILE = "settings.json"
MEASURANDS = ("Energy.Active.Import.Register", "Power.Active.Import", "Current.Import", "Voltage",
              "Frequency", "Current.Offered")  # what our meters and controllers can deliver
RATE_UNITS = ("A", "W")  # charging profile rates the station accepts (current, power)
MAX_LIST_ITEMS = 8
LOCAL_LIST_MAX_ENTRIES = 10000  # identifiers in the local authorization list
LOCAL_LIST_MAX_PER_MESSAGE = 1000  # identifiers in one list update
# Transaction start and stop points (tx_start_points, tx_stop_points): an EV plugged in, an
# identifier authorized, both (the power path may close), energy flowing.
TX_EV_CONNECTED = "ev_connected"
TX_AUTHORIZED = "authorized"
TX_POWER_PATH_CLOSED = "power_path_closed"
TX_ENERGY_TRANSFER = "energy_transfer"
TX_POINTS = (TX_EV_CONNECTED, TX_AUTHORIZED, TX_POWER_PATH_CLOSED, TX_ENERGY_TRANSFER)


class SettingDef:
    """One setting: its kind (bool, int, list or text), default and limits. With ``follows``
    (another setting's name) and no default, it has that setting's value until set itself."""

    __slots__ = ("name", "kind", "default", "minimum", "maximum", "choices", "max_items", "follows")

    def __init__(self, name: str, kind: str, default, minimum: int | None = None, maximum: int | None = None,
                 choices: tuple | None = None, max_items: int = MAX_LIST_ITEMS, follows: str | None = None) -> None:
        self.name = name
        self.follows = follows
        self.kind = kind
        self.default = default
        self.minimum = minimum
        self.maximum = maximum
        self.choices = choices
        self.max_items = max_items

    def check(self, value):
        """``value`` if it is valid for this setting, else ValueError."""
        if self.kind == BOOL:
            if not isinstance(value, bool):
                raise ValueError("%s: expected true or false" % self.name)
        elif self.kind == INT:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError("%s: expected an integer" % self.name)
            if (self.minimum is not None and value < self.minimum) or (
                    self.maximum is not None and value > self.maximum):
                raise ValueError("%s: out of range" % self.name)
        elif self.kind == LIST:
            if not isinstance(value, list) or any(not isinstance(i, str) or not i for i in value):
                raise ValueError("%s: expected a list of names" % self.name)
            if len(value) > self.max_items:
                raise ValueError("%s: too many items" % self.name)
            if self.choices is not None and any(i not in self.choices for i in value):
                raise ValueError("%s: unsupported item" % self.name)
        elif not isinstance(value, str):
            raise ValueError("%s: expected text" % self.name)
        return list(value) if self.kind == LIST else value


def station_settings(local_list: bool = True, smart_charging: bool = True) -> list:
    """The settings of a station; ``local_list`` and ``smart_charging`` add those features' own."""
    defs = [
        # Authorization
        SettingDef("auth_cache_enabled", BOOL, True),
        SettingDef("local_authorize_offline", BOOL, True),  # known identifiers start while offline
        SettingDef("local_pre_authorize", BOOL, False),  # known identifiers start without asking, online
        SettingDef("offline_start_unknown_id", BOOL, False),  # unknown identifiers start while offline
        SettingDef("authorize_remote_start", BOOL, False),  # remote starts are authorized first
        SettingDef("max_energy_on_invalid_id_wh", INT, 0, minimum=0, maximum=1_000_000),
        SettingDef("stop_on_invalid_id", BOOL, True),
        SettingDef("auth_cache_lifetime_s", INT, 0, minimum=0, maximum=31_536_000),  # 0: entries do not age
        SettingDef("auth_cache_disable_post_authorize", BOOL, False),  # a cached refusal is not asked again
        SettingDef("disable_remote_authorization", BOOL, False),  # only the local list and the cache decide
        # Identifiers of this group (parent) may stop every running transaction, never start one
        SettingDef("master_pass_group_id", TEXT, ""),
        # Sessions
        SettingDef("ev_connect_timeout_s", INT, 60, minimum=1, maximum=3600),
        SettingDef("stop_on_ev_disconnect", BOOL, True),
        SettingDef("unlock_on_ev_disconnect", BOOL, True),
        # When a transaction begins: the first of these events to happen (TX_POINTS); the
        # default, an authorized identifier meeting a plugged-in EV, is what OCPP 1.6 does
        SettingDef("tx_start_points", LIST, [TX_POWER_PATH_CLOSED], choices=TX_POINTS, max_items=len(TX_POINTS)),
        # When it ends: as soon as one of these no longer holds; with the default the EV leaving
        # ends it only through stop_on_ev_disconnect (which ends the authorization), as in 1.6
        SettingDef("tx_stop_points", LIST, [TX_AUTHORIZED], choices=TX_POINTS, max_items=len(TX_POINTS)),
        # Reservations (agent/core/reservations.py): whether the station takes them, and ones for
        # no particular connector (any connector of the station)
        SettingDef("reservations_enabled", BOOL, True),
        SettingDef("reserve_unspecified", BOOL, True),
        # Metering
        SettingDef("sample_interval_s", INT, 60, minimum=0, maximum=86400),
        SettingDef("sampled_measurands", LIST, ["Energy.Active.Import.Register", "Power.Active.Import"],
                   choices=MEASURANDS),
        SettingDef("sampled_end_measurands", LIST, [], choices=MEASURANDS),  # kept for the transaction's end
        # How often those are sampled; 1.6 has one interval for both, so until set it is sample_interval_s
        SettingDef("sample_end_interval_s", INT, None, minimum=0, maximum=86400, follows="sample_interval_s"),
        # Measured when a transaction starts and reported with its start (1.6 reports only the register)
        SettingDef("started_measurands", LIST, ["Energy.Active.Import.Register"], choices=MEASURANDS),
        SettingDef("aligned_interval_s", INT, 0, minimum=0, maximum=86400),
        SettingDef("aligned_measurands", LIST, ["Energy.Active.Import.Register"], choices=MEASURANDS),
        SettingDef("aligned_end_measurands", LIST, [], choices=MEASURANDS),
        SettingDef("aligned_end_interval_s", INT, None, minimum=0, maximum=86400, follows="aligned_interval_s"),
        # Clock-aligned values only from a connector without a transaction (2.0.1 AlignedDataSendDuringIdle)
        SettingDef("aligned_send_during_idle", BOOL, False),
        # Link to the central system
        SettingDef("heartbeat_interval_s", INT, 300, minimum=0, maximum=86400),
        SettingDef("ws_ping_interval_s", INT, 60, minimum=0, maximum=86400),
        SettingDef("tx_message_attempts", INT, 3, minimum=0, maximum=65535),
        SettingDef("tx_message_retry_interval_s", INT, 60, minimum=0, maximum=86400),
        SettingDef("reset_retries", INT, 1, minimum=0, maximum=100),
        # security (agent/security): the CSR's organization, resending a CSR the central system did not sign
        SettingDef("organization_name", TEXT, ""),
        SettingDef("cert_signing_wait_minimum_s", INT, 60, minimum=1, maximum=86400),
        SettingDef("cert_signing_repeat_times", INT, 3, minimum=0, maximum=100),
        SettingDef("allow_security_profile_downgrade", BOOL, False),  # 3 -> 2 only (2.0.1 errata)
    ]
    if local_list:
        defs += [
            SettingDef("local_list_enabled", BOOL, True),
            SettingDef("local_list_disable_post_authorize", BOOL, False),  # a listed refusal is not asked again
            SettingDef("local_list_max_entries", INT, LOCAL_LIST_MAX_ENTRIES, minimum=1, maximum=1_000_000),
            SettingDef("local_list_max_per_message", INT, LOCAL_LIST_MAX_PER_MESSAGE, minimum=1, maximum=100_000),
        ]
    if smart_charging:
        defs += [
            SettingDef("profile_max_stack_level", INT, DEFAULT_MAX_STACK_LEVEL, minimum=0, maximum=100),
            SettingDef("profile_max_periods", INT, DEFAULT_MAX_PERIODS, minimum=1, maximum=1000),
            SettingDef("profile_max_installed", INT, DEFAULT_MAX_PROFILES, minimum=1, maximum=1000),
            SettingDef("profile_rate_units", LIST, list(RATE_UNITS), choices=RATE_UNITS, max_items=2),
        ]
    return defs


class Settings:
    """Typed setting values with persistence and change listeners."""

    def __init__(self, defs: list, path: str | None = None, initial: dict | None = None) -> None:
        self._defs = {d.name: d for d in defs}
        self._values = {d.name: d.default for d in defs}
        self._path = path
        self._listeners: list = []
        for name, value in (initial or {}).items():  # the configuration file: a starting point
            self._values[name] = self.definition(name).check(value)
        self._stored: dict = {}
        data = read_json(path, {}) if path is not None else {}
        for name, value in (data if isinstance(data, dict) else {}).items():
            d = self._defs.get(name)
            if d is None:
                log.warning("%s: unknown setting %s ignored", path, name)
                continue
            try:
                self._values[name] = d.check(value)
            except ValueError as e:
                log.warning("%s: ignoring stored value: %s", path, e)
                continue
            self._stored[name] = value

    def definition(self, name: str) -> SettingDef:
        d = self._defs.get(name)
        if d is None:
            raise KeyError(name)
        return d

    def __contains__(self, name: str) -> bool:
        return name in self._defs

    def get(self, name: str, default=None):
        """The value of ``name``; ``default`` for a setting this station does not have."""
        if name not in self._defs:
            return default
        value = self._values[name]
        if value is None and self._defs[name].follows is not None:
            return self.get(self._defs[name].follows)
        return list(value) if isinstance(value, list) else value

    def set_initial(self, name: str, value) -> None:
        """A starting value (the configuration file): ValueError when invalid; a value
        set at run time and persisted wins over it."""
        value = self.definition(name).check(value)
        if name not in self._stored:
            self._values[name] = value

    def set(self, name: str, value, persist: bool = True) -> None:
        """Set ``name`` (ValueError when invalid), persist it and tell the listeners."""
        value = self.definition(name).check(value)
        self._values[name] = value
        if persist:
            self._stored[name] = value
            self._persist()
        changed = [(name, value)] + [(d.name, value) for d in self._defs.values()
                                     if d.follows == name and self._values[d.name] is None]
        for cb in list(self._listeners):
            for changed_name, changed_value in changed:
                cb(changed_name, changed_value)

    def stored(self) -> dict:
        """The values set at run time (persisted), by name."""
        return dict(self._stored)

    def on_change(self, callback) -> None:
        """``callback(name, value)`` runs after each change."""
        self._listeners.append(callback)

    def _persist(self) -> None:
        if self._path is not None:
            write_json_atomic(self._path, self._stored)
