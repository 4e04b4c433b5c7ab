"""OCPP configuration keys: definitions, validation and persistence.

The station reads typed values (``keys.get("HeartbeatInterval")``); the OCPP
adapter reads and writes the OCPP string form. Changed values are persisted
in ``data_dir/ocpp-config.json`` and listeners are told at once, so a new
HeartbeatInterval re-arms the heartbeat timer immediately.
"""

import logging
import os

from agent.core.smart_charging import DEFAULT_MAX_PERIODS, DEFAULT_MAX_PROFILES, DEFAULT_MAX_STACK_LEVEL
from hal.runtime.storage import read_json, write_json_atomic

log = logging.getLogger(__name__)

ACCEPTED, REJECTED, REBOOT_REQUIRED, NOT_SUPPORTED = "Accepted", "Rejected", "RebootRequired", "NotSupported"

# Measurands our meters and controllers can deliver.
MEASURANDS = ("Energy.Active.Import.Register", "Power.Active.Import", "Current.Import", "Voltage",
              "Frequency", "Current.Offered")
PHASE_ROTATIONS = ("NotApplicable", "Unknown", "RST", "RTS", "SRT", "STR", "TRS", "TSR")
CSL_MAX = 8
LOCAL_AUTH_LIST_MAX_LENGTH = 10000  # idTags in the Local Authorization List
SEND_LOCAL_LIST_MAX_LENGTH = 1000  # idTags in one SendLocalList.req
FEATURE_PROFILES = ("Core", "LocalAuthListManagement", "RemoteTrigger", "SmartCharging")  # the profiles we support
CHARGING_RATE_UNITS = ("Current", "Power")  # ChargingScheduleAllowedChargingRateUnit values (errata 3.86)


class InvalidKeyValue(ValueError):
    """An initial value (the config file's [ocpp] table) that the key does not accept."""

    def __init__(self, name: str, problem: str) -> None:
        self.name, self.problem = name, problem
        super().__init__("%s: %s" % (name, problem))


class KeyDef:
    """One configuration key. ``kind`` is bool, int or csl or str."""

    __slots__ = ("name", "kind", "readonly", "default", "minimum", "maximum", "choices",
                 "max_items", "check", "write_only")

    def __init__(self, name: str, kind: str, default, readonly: bool = False, minimum: int | None = None,
                 maximum: int | None = None, choices: tuple | None = None, max_items: int = CSL_MAX,
                 check=None, write_only: bool = False) -> None:
        self.name = name
        self.kind = kind
        self.default = default
        self.readonly = readonly
        self.minimum = minimum
        self.maximum = maximum
        self.choices = choices
        self.max_items = max_items
        self.check = check  # extra validator: value -> bool
        self.write_only = write_only

    def parse(self, text: str):
        """Parse the OCPP string form; raise ValueError when malformed or out of range."""
        if not isinstance(text, str):
            raise ValueError("not a string")
        if self.kind == "bool":
            low = text.strip().lower()
            if low not in ("true", "false"):
                raise ValueError("expected true or false")
            return low == "true"
        if self.kind == "int":
            t = text.strip()
            if not t or not (t.isdigit() or (t[0] == "-" and t[1:].isdigit())):
                raise ValueError("expected an integer")
            v = int(t)
            if (self.minimum is not None and v < self.minimum) or (self.maximum is not None and v > self.maximum):
                raise ValueError("out of range")
            return v
        if self.kind == "csl":
            items = [i.strip() for i in text.split(",")] if text.strip() else []
            if len(items) > self.max_items or any(not i for i in items):
                raise ValueError("too many or empty items")
            if self.choices is not None and any(i not in self.choices for i in items):
                raise ValueError("unsupported item")
            if self.check is not None and not self.check(items):
                raise ValueError("invalid value")
            return items
        if self.check is not None and not self.check(text):
            raise ValueError("invalid value")
        return text

    def format(self, value) -> str:
        if self.kind == "bool":
            return "true" if value else "false"
        if self.kind == "csl":
            return ",".join(value)
        return str(value)


def _phase_rotation_ok(items: list) -> bool:
    for item in items:
        conn, dot, rot = item.partition(".")
        if not dot or not conn.isdigit() or rot not in PHASE_ROTATIONS:
            return False
    return True


def core_keys(number_of_connectors: int, profiles: tuple) -> list:
    """The Core (and transport) configuration keys this agent supports."""
    rotation = ",".join("%d.RST" % c for c in range(0, number_of_connectors + 1))
    keys = [
        KeyDef("AllowOfflineTxForUnknownId", "bool", False),
        KeyDef("AuthorizationCacheEnabled", "bool", True),
        KeyDef("AuthorizeRemoteTxRequests", "bool", False),
        KeyDef("ClockAlignedDataInterval", "int", 0, minimum=0, maximum=86400),
        KeyDef("ConnectionTimeOut", "int", 60, minimum=1, maximum=3600),
        KeyDef("ConnectorPhaseRotation", "csl", rotation.split(","), check=_phase_rotation_ok,
               max_items=number_of_connectors + 1),
        KeyDef("ConnectorPhaseRotationMaxLength", "int", number_of_connectors + 1, readonly=True),
        KeyDef("GetConfigurationMaxKeys", "int", 64, readonly=True),
        KeyDef("HeartbeatInterval", "int", 300, minimum=0, maximum=86400),
        KeyDef("LocalAuthorizeOffline", "bool", True),
        KeyDef("LocalPreAuthorize", "bool", False),
        KeyDef("MaxEnergyOnInvalidId", "int", 0, minimum=0, maximum=1_000_000),
        KeyDef("MeterValuesAlignedData", "csl", ["Energy.Active.Import.Register"], choices=MEASURANDS),
        KeyDef("MeterValuesAlignedDataMaxLength", "int", CSL_MAX, readonly=True),
        KeyDef("MeterValuesSampledData", "csl", ["Energy.Active.Import.Register", "Power.Active.Import"],
               choices=MEASURANDS),
        KeyDef("MeterValuesSampledDataMaxLength", "int", CSL_MAX, readonly=True),
        KeyDef("MeterValueSampleInterval", "int", 60, minimum=0, maximum=86400),
        KeyDef("NumberOfConnectors", "int", number_of_connectors, readonly=True),
        KeyDef("ResetRetries", "int", 1, minimum=0, maximum=100),
        KeyDef("StopTransactionOnEVSideDisconnect", "bool", True),
        KeyDef("StopTransactionOnInvalidId", "bool", True),
        KeyDef("StopTxnAlignedData", "csl", [], choices=MEASURANDS),
        KeyDef("StopTxnAlignedDataMaxLength", "int", CSL_MAX, readonly=True),
        KeyDef("StopTxnSampledData", "csl", [], choices=MEASURANDS),
        KeyDef("StopTxnSampledDataMaxLength", "int", CSL_MAX, readonly=True),
        KeyDef("SupportedFeatureProfiles", "csl", list(profiles), readonly=True),
        KeyDef("SupportedFeatureProfilesMaxLength", "int", 6, readonly=True),
        KeyDef("TransactionMessageAttempts", "int", 3, minimum=0, maximum=65535),
        KeyDef("TransactionMessageRetryInterval", "int", 60, minimum=0, maximum=86400),
        KeyDef("UnlockConnectorOnEVSideDisconnect", "bool", True),
        KeyDef("WebSocketPingInterval", "int", 60, minimum=0, maximum=86400),
    ]
    if "LocalAuthListManagement" in profiles:
        keys += [
            KeyDef("LocalAuthListEnabled", "bool", True),
            KeyDef("LocalAuthListMaxLength", "int", LOCAL_AUTH_LIST_MAX_LENGTH, readonly=True),
            KeyDef("SendLocalListMaxLength", "int", SEND_LOCAL_LIST_MAX_LENGTH, readonly=True),
        ]
    if "SmartCharging" in profiles:
        # Read-only (§9.4); the config file's [ocpp] table may set them. The station's
        # ChargingProfileStore enforces them (agent/core/smart_charging.py).
        keys += [
            KeyDef("ChargeProfileMaxStackLevel", "int", DEFAULT_MAX_STACK_LEVEL, readonly=True, minimum=0,
                   maximum=100),
            KeyDef("ChargingScheduleAllowedChargingRateUnit", "csl", list(CHARGING_RATE_UNITS), readonly=True,
                   choices=CHARGING_RATE_UNITS, check=lambda items: 0 < len(items) == len(set(items))),
            KeyDef("ChargingScheduleMaxPeriods", "int", DEFAULT_MAX_PERIODS, readonly=True, minimum=1,
                   maximum=1000),
            KeyDef("MaxChargingProfilesInstalled", "int", DEFAULT_MAX_PROFILES, readonly=True, minimum=1,
                   maximum=1000),
        ]
    return keys


class ConfigurationStore:
    """Typed configuration key values with persistence and change listeners."""

    def __init__(self, defs: list, path: str | None, initial: dict | None = None) -> None:
        self._defs = {d.name: d for d in defs}
        self._values = {d.name: d.default for d in defs}
        self._path = path
        self._listeners: list = []
        self._external: dict = {}  # name -> (read, write, after): keys whose value lives elsewhere
        # Values set over OCPP (or by the agent) win over the config file's [ocpp] table.
        self._stored: dict = read_json(path, {}) if path is not None else {}
        for name, value in (initial or {}).items():
            self._apply_initial(name, value)
        self._load_stored()

    def _load_stored(self) -> None:
        for name, text in list(self._stored.items()):
            d = self._defs.get(name)
            if d is None or d.readonly:
                continue
            try:
                self._values[name] = d.parse(text)
            except ValueError:
                log.warning("ignoring stored value of %s: %r", name, text)

    def _apply_initial(self, name: str, value) -> None:
        d = self._defs.get(name)
        if d is None:
            raise KeyError(name)
        text = value if isinstance(value, str) else (
            ("true" if value else "false") if isinstance(value, bool) else
            ",".join(value) if isinstance(value, list) else str(value))
        try:
            self._values[name] = d.parse(text)
        except ValueError as e:
            raise InvalidKeyValue(name, "invalid value %r: %s" % (value, e)) from None

    def add(self, defs: list) -> None:
        """Add keys (a feature profile registering its own)."""
        for d in defs:
            self._defs[d.name] = d
            self._values.setdefault(d.name, d.default)
        self._load_stored()

    def add_external(self, d: KeyDef, read, write, after=None) -> None:
        """A key whose value lives elsewhere (CentralSystemUrl and AuthorizationKey live
        in the endpoint state): ``read() -> value``; ``write(value) -> status`` applies a
        valid ChangeConfiguration; ``after(name)`` runs once its answer was sent
        (``answered``). Never persisted here."""
        self._defs[d.name] = d
        self._external[d.name] = (read, write, after)

    def answered(self, name: str) -> None:
        """The ChangeConfiguration.conf for ``name`` was sent."""
        ext = self._external.get(name)
        if ext is not None and ext[2] is not None:
            ext[2](name)

    def on_change(self, callback) -> None:
        """``callback(name, value)`` runs after each accepted change."""
        self._listeners.append(callback)

    def __contains__(self, name: str) -> bool:
        return name in self._defs

    def get(self, name: str):
        if name in self._external:
            return self._external[name][0]()
        return self._values[name]

    def set(self, name: str, value) -> None:
        """Set a typed value from inside the agent (e.g. HeartbeatInterval from BootNotification)."""
        if name in self._external:
            self._external[name][1](value)
            return
        self._values[name] = value
        self._stored[name] = self._defs[name].format(value)
        self._persist()
        self._notify(name, value)

    def read(self, names: list | None = None) -> tuple:
        """(known, unknown): known = [(name, readonly, text)], for GetConfiguration."""
        known, unknown = [], []
        for name in (names if names else list(self._defs)):
            d = self._defs.get(name)
            if d is None:
                unknown.append(name)
            elif d.write_only:
                if names:
                    unknown.append(name)
            else:
                known.append((name, d.readonly, d.format(self.get(name))))
        return known, unknown

    def change(self, name: str, text: str) -> str:
        """Apply a ChangeConfiguration: Accepted, Rejected or NotSupported."""
        d = self._defs.get(name)
        if d is None:
            return NOT_SUPPORTED
        if d.readonly:
            return REJECTED
        try:
            value = d.parse(text)
        except ValueError as e:
            log.info("ChangeConfiguration %s rejected: %s", name, e)
            return REJECTED
        if name in self._external:
            status = self._external[name][1](value)
            if status == ACCEPTED:
                self._notify(name, value)
            return status
        self._values[name] = value
        self._stored[name] = d.format(value)
        self._persist()
        self._notify(name, value)
        return ACCEPTED

    def _notify(self, name: str, value) -> None:
        for cb in list(self._listeners):
            cb(name, value)

    def _persist(self) -> None:
        if self._path is None:
            return
        write_json_atomic(self._path, self._stored)

    @staticmethod
    def path_in(data_dir: str) -> str:
        return os.path.join(data_dir, "ocpp-config.json")
