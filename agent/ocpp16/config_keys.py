"""OCPP 1.6 configuration keys: a mapping onto the station's neutral settings.

Most keys are bound to a setting of agent/core/settings.py (``setting=``): the
value lives there, typed, and is persisted in ``data_dir/settings.json``; this
table gives the 1.6 name, string form, validation and read-only flag. Keys with
no neutral meaning (ConnectorPhaseRotation's 1.6 form, the *MaxLength keys) are
kept here, persisted in ``data_dir/ocpp-config.json`` as before. Values of bound
keys found in an ocpp-config.json of an earlier release move to settings.json on
the first start (nothing is lost). Listeners hear 1.6 key names, so a new
HeartbeatInterval re-arms the heartbeat timer at once.
"""

import logging
import os

from agent.core.settings import LOCAL_LIST_MAX_ENTRIES, LOCAL_LIST_MAX_PER_MESSAGE, MEASURANDS, Settings, station_settings
from agent.core.smart_charging import DEFAULT_MAX_PERIODS, DEFAULT_MAX_PROFILES, DEFAULT_MAX_STACK_LEVEL
from agent.security.context import MAX_CERTIFICATES, MAX_CHAIN_CHARS
from hal.runtime.storage import read_json, write_json_atomic

log = logging.getLogger(__name__)

ACCEPTED, REJECTED, REBOOT_REQUIRED, NOT_SUPPORTED = "Accepted", "Rejected", "RebootRequired", "NotSupported"

PHASE_ROTATIONS = ("NotApplicable", "Unknown", "RST", "RTS", "SRT", "STR", "TRS", "TSR")
CSL_MAX = 8
FEATURE_PROFILES = ("Core", "FirmwareManagement", "LocalAuthListManagement", "RemoteTrigger", "Reservation",
                    "SmartCharging")  # the profiles we support
CHARGING_RATE_UNITS = ("Current", "Power")  # ChargingScheduleAllowedChargingRateUnit values (errata 3.86)
_RATE_UNIT_SETTING = {"Current": "A", "Power": "W"}
_RATE_UNIT_KEY = {v: k for k, v in _RATE_UNIT_SETTING.items()}


class InvalidKeyValue(ValueError):
    """An initial value (the config file's [ocpp] table) that the key does not accept."""

    def __init__(self, name: str, problem: str) -> None:
        self.name, self.problem = name, problem
        super().__init__("%s: %s" % (name, problem))


class KeyDef:
    """One configuration key. ``kind`` is bool, int or csl or str."""

    __slots__ = ("name", "kind", "readonly", "default", "minimum", "maximum", "choices",
                 "max_items", "check", "write_only", "setting", "to_setting", "from_setting")

    def __init__(self, name: str, kind: str, default, readonly: bool = False, minimum: int | None = None,
                 maximum: int | None = None, choices: tuple | None = None, max_items: int = CSL_MAX,
                 check=None, write_only: bool = False, setting: str | None = None, to_setting=None,
                 from_setting=None) -> None:
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
        self.setting = setting  # the neutral setting it is bound to (agent/core/settings.py), or None
        self.to_setting = to_setting or (lambda v: v)  # the key's typed value -> the setting's
        self.from_setting = from_setting or (lambda v: v)

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
    """The Core (and transport) configuration keys this agent supports, with the
    neutral setting each one is bound to."""
    rotation = ",".join("%d.RST" % c for c in range(0, number_of_connectors + 1))
    keys = [
        KeyDef("AllowOfflineTxForUnknownId", "bool", False, setting="offline_start_unknown_id"),
        KeyDef("AuthorizationCacheEnabled", "bool", True, setting="auth_cache_enabled"),
        KeyDef("AuthorizeRemoteTxRequests", "bool", False, setting="authorize_remote_start"),
        KeyDef("ClockAlignedDataInterval", "int", 0, minimum=0, maximum=86400, setting="aligned_interval_s"),
        KeyDef("ConnectionTimeOut", "int", 60, minimum=1, maximum=3600, setting="ev_connect_timeout_s"),
        KeyDef("ConnectorPhaseRotation", "csl", rotation.split(","), check=_phase_rotation_ok,
               max_items=number_of_connectors + 1),
        KeyDef("ConnectorPhaseRotationMaxLength", "int", number_of_connectors + 1, readonly=True),
        KeyDef("GetConfigurationMaxKeys", "int", 64, readonly=True),
        KeyDef("HeartbeatInterval", "int", 300, minimum=0, maximum=86400, setting="heartbeat_interval_s"),
        KeyDef("LocalAuthorizeOffline", "bool", True, setting="local_authorize_offline"),
        KeyDef("LocalPreAuthorize", "bool", False, setting="local_pre_authorize"),
        KeyDef("MaxEnergyOnInvalidId", "int", 0, minimum=0, maximum=1_000_000,
               setting="max_energy_on_invalid_id_wh"),
        KeyDef("MeterValuesAlignedData", "csl", ["Energy.Active.Import.Register"], choices=MEASURANDS,
               setting="aligned_measurands"),
        KeyDef("MeterValuesAlignedDataMaxLength", "int", CSL_MAX, readonly=True),
        KeyDef("MeterValuesSampledData", "csl", ["Energy.Active.Import.Register", "Power.Active.Import"],
               choices=MEASURANDS, setting="sampled_measurands"),
        KeyDef("MeterValuesSampledDataMaxLength", "int", CSL_MAX, readonly=True),
        KeyDef("MeterValueSampleInterval", "int", 60, minimum=0, maximum=86400, setting="sample_interval_s"),
        KeyDef("NumberOfConnectors", "int", number_of_connectors, readonly=True),
        KeyDef("ResetRetries", "int", 1, minimum=0, maximum=100, setting="reset_retries"),
        KeyDef("StopTransactionOnEVSideDisconnect", "bool", True, setting="stop_on_ev_disconnect"),
        KeyDef("StopTransactionOnInvalidId", "bool", True, setting="stop_on_invalid_id"),
        KeyDef("StopTxnAlignedData", "csl", [], choices=MEASURANDS, setting="aligned_end_measurands"),
        KeyDef("StopTxnAlignedDataMaxLength", "int", CSL_MAX, readonly=True),
        KeyDef("StopTxnSampledData", "csl", [], choices=MEASURANDS, setting="sampled_end_measurands"),
        KeyDef("StopTxnSampledDataMaxLength", "int", CSL_MAX, readonly=True),
        KeyDef("SupportedFeatureProfiles", "csl", list(profiles), readonly=True),
        KeyDef("SupportedFeatureProfilesMaxLength", "int", 6, readonly=True),
        KeyDef("SupportedFileTransferProtocols", "csl", ["FTP", "HTTP", "HTTPS"], readonly=True),
        KeyDef("TransactionMessageAttempts", "int", 3, minimum=0, maximum=65535, setting="tx_message_attempts"),
        KeyDef("TransactionMessageRetryInterval", "int", 60, minimum=0, maximum=86400,
               setting="tx_message_retry_interval_s"),
        KeyDef("UnlockConnectorOnEVSideDisconnect", "bool", True, setting="unlock_on_ev_disconnect"),
        KeyDef("WebSocketPingInterval", "int", 60, minimum=0, maximum=86400, setting="ws_ping_interval_s"),
        # Security whitepaper §7 (SecurityProfile lives in the endpoint state: agent/link/switch.py)
        KeyDef("AdditionalRootCertificateCheck", "bool", False, readonly=True),
        KeyDef("CertificateSignedMaxChainSize", "int", MAX_CHAIN_CHARS, readonly=True),
        KeyDef("CertificateStoreMaxLength", "int", MAX_CERTIFICATES, readonly=True),
        KeyDef("CpoName", "str", "", setting="organization_name"),
        # Not in 1.6: 2.0.1's SecurityCtrlr variables of the same names, for resending a CSR
        KeyDef("CertSigningWaitMinimum", "int", 60, minimum=1, maximum=86400,
               setting="cert_signing_wait_minimum_s"),
        KeyDef("CertSigningRepeatTimes", "int", 3, minimum=0, maximum=100, setting="cert_signing_repeat_times"),
    ]
    if "LocalAuthListManagement" in profiles:
        keys += [
            KeyDef("LocalAuthListEnabled", "bool", True, setting="local_list_enabled"),
            KeyDef("LocalAuthListMaxLength", "int", LOCAL_LIST_MAX_ENTRIES, readonly=True,
                   setting="local_list_max_entries"),
            KeyDef("SendLocalListMaxLength", "int", LOCAL_LIST_MAX_PER_MESSAGE, readonly=True,
                   setting="local_list_max_per_message"),
        ]
    if "Reservation" in profiles:
        # §9.3.1, read-only; the config file's [ocpp] table may set it (agent/core/reservations.py)
        keys.append(KeyDef("ReserveConnectorZeroSupported", "bool", True, readonly=True,
                           setting="reserve_unspecified"))
    if "SmartCharging" in profiles:
        # Read-only (§9.4); the config file's [ocpp] table may set them. The station's
        # ChargingProfileStore enforces them (agent/core/smart_charging.py).
        keys += [
            KeyDef("ChargeProfileMaxStackLevel", "int", DEFAULT_MAX_STACK_LEVEL, readonly=True, minimum=0,
                   maximum=100, setting="profile_max_stack_level"),
            KeyDef("ChargingScheduleAllowedChargingRateUnit", "csl", list(CHARGING_RATE_UNITS), readonly=True,
                   choices=CHARGING_RATE_UNITS, check=lambda items: 0 < len(items) == len(set(items)),
                   setting="profile_rate_units", to_setting=lambda v: [_RATE_UNIT_SETTING[i] for i in v],
                   from_setting=lambda v: [_RATE_UNIT_KEY[i] for i in v]),
            KeyDef("ChargingScheduleMaxPeriods", "int", DEFAULT_MAX_PERIODS, readonly=True, minimum=1,
                   maximum=1000, setting="profile_max_periods"),
            KeyDef("MaxChargingProfilesInstalled", "int", DEFAULT_MAX_PROFILES, readonly=True, minimum=1,
                   maximum=1000, setting="profile_max_installed"),
        ]
    return keys


def settings_for(profiles: tuple, path: str | None = None) -> Settings:
    """The station's settings for the 1.6 feature ``profiles`` (persisted in ``path``)."""
    return Settings(station_settings(local_list="LocalAuthListManagement" in profiles,
                                     smart_charging="SmartCharging" in profiles), path)


class ConfigurationStore:
    """The 1.6 configuration keys over the station's ``settings``: typed values,
    the 1.6 string form, persistence of the unbound keys and change listeners."""

    def __init__(self, defs: list, path: str | None, initial: dict | None = None,
                 settings: Settings | None = None) -> None:
        self._defs = {d.name: d for d in defs}
        self.settings = settings if settings is not None else Settings(station_settings())
        self._values = {d.name: d.default for d in defs if not self._bound(d)}
        self._path = path
        self._listeners: list = []
        self._external: dict = {}  # name -> (read, write, after): keys whose value lives elsewhere
        self._by_setting = {d.setting: d for d in defs if self._bound(d)}
        self.settings.on_change(self._setting_changed)
        # Values set over OCPP (or by the agent) win over the config file's [ocpp] table.
        self._stored: dict = read_json(path, {}) if path is not None else {}
        self._migrate()
        for name, value in (initial or {}).items():
            self._apply_initial(name, value)
        self._load_stored()

    def _bound(self, d: KeyDef) -> bool:
        return d.setting is not None and d.setting in self.settings

    def _migrate(self) -> None:
        """Move values of bound keys from ocpp-config.json (an earlier release kept every
        key there) to the settings; a value the settings already hold wins."""
        moved = False
        for name, text in list(self._stored.items()):
            d = self._defs.get(name)
            if d is None or not self._bound(d):
                continue
            del self._stored[name]
            moved = True
            if d.readonly or d.setting in self.settings.stored():
                continue
            try:
                self.settings.set(d.setting, d.to_setting(d.parse(text)))
            except ValueError:
                log.warning("ignoring stored value of %s: %r", name, text)
                continue
            log.info("configuration key %s moved to setting %s", name, d.setting)
        if moved:
            self._persist()

    def _load_stored(self) -> None:
        for name, text in list(self._stored.items()):
            d = self._defs.get(name)
            if d is None or d.readonly or self._bound(d):
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
            parsed = d.parse(text)
            if self._bound(d):
                self.settings.set_initial(d.setting, d.to_setting(parsed))
            else:
                self._values[name] = parsed
        except ValueError as e:
            raise InvalidKeyValue(name, "invalid value %r: %s" % (value, e)) from None

    def _setting_changed(self, setting: str, value) -> None:
        d = self._by_setting.get(setting)
        if d is not None:
            self._notify(d.name, d.from_setting(value))

    def add(self, defs: list) -> None:
        """Add keys (a feature profile registering its own)."""
        for d in defs:
            self._defs[d.name] = d
            if self._bound(d):
                self._by_setting[d.setting] = d
            else:
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
        d = self._defs[name]
        if self._bound(d):
            return d.from_setting(self.settings.get(d.setting))
        return self._values[name]

    def set(self, name: str, value) -> None:
        """Set a typed value from inside the agent (e.g. HeartbeatInterval from BootNotification)."""
        if name in self._external:
            self._external[name][1](value)
            return
        self._store(self._defs[name], value)

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
        self._store(d, value)
        return ACCEPTED

    def _store(self, d: KeyDef, value) -> None:
        """Set a key's typed value: in its setting (whose listeners notify), or here."""
        if self._bound(d):
            self.settings.set(d.setting, d.to_setting(value))
            return
        self._values[d.name] = value
        self._stored[d.name] = d.format(value)
        self._persist()
        self._notify(d.name, value)

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
