"""The OCPP 2.0.1 device model: components, variables, and the pure logic of GetVariables,
SetVariables, GetBaseReport and GetReport -> NotifyReport.

The variables are data (device_model_data.py). A variable's value lives in one place:

- a neutral setting (agent/core/settings.py) when OCPP 1.6 knows it too: a SetVariables
  reaches the Settings and its listeners, and a setting changed elsewhere shows here at once;
- the device model itself for 2.0.1-only variables (TxStartPoint, OfflineThreshold…), persisted
  in ``data_dir/device-model.json`` (mode 0600) when written;
- a fact about the station (phases, power, connector type), fixed at construction;
- the running station (AvailabilityState, Entries…), read through ``attach``.

Every method returns payload-ready dicts in the OCPP JSON form (camelCase). No I/O besides
the persisted file; the 2.0.1 session turns requests into calls of these methods.
"""

import json
import logging
import os
import re

from agent.core.isotime import format_datetime, parse_datetime
from agent.core.settings import Settings
from agent.ocpp201.device_model_data import VARIABLES
from hal.runtime.clock import Clock
from hal.runtime.storage import read_json, write_json_atomic

log = logging.getLogger(__name__)

DEVICE_MODEL_FILE = "device-model.json"
ACTUAL, TARGET, MIN_SET, MAX_SET = "Actual", "Target", "MinSet", "MaxSet"
READ_ONLY, READ_WRITE, WRITE_ONLY = "ReadOnly", "ReadWrite", "WriteOnly"
ACCEPTED, REJECTED, REBOOT_REQUIRED = "Accepted", "Rejected", "RebootRequired"
UNKNOWN_COMPONENT, UNKNOWN_VARIABLE = "UnknownComponent", "UnknownVariable"
NOT_SUPPORTED_ATTRIBUTE_TYPE = "NotSupportedAttributeType"
LIST_TYPES = ("OptionList", "SequenceList", "MemberList")
REPORT_BASES = ("ConfigurationInventory", "FullInventory", "SummaryInventory")
CRITERIA = ("Active", "Available", "Enabled", "Problem")
SUMMARY_PROBLEMS = ("Problem", "Tripped", "Overload", "Fallback")  # reported when true (TC_B_14)
VALUE_SIZE = 2500  # GetVariableResult.attributeValue and VariableAttribute.value (schema maxLength)
SET_VALUE_SIZE = 1000  # SetVariableData.attributeValue
CALL_OVERHEAD_BYTES = 64  # [2,"<uuid>","NotifyReport",…] around the payload

_INTEGER = re.compile(r"-?[0-9]+$")
_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?$")


class DeviceModelError(ValueError):
    """An initial value (the configuration's [ocpp201] table) that the model does not accept."""

    def __init__(self, name: str, problem: str) -> None:
        self.name, self.problem = name, problem
        super().__init__("%s: %s" % (name, problem))


class InvalidValue(ValueError):
    """A value the variable does not accept, with its 2.0.1 reason code."""

    def __init__(self, reason: str, info: str) -> None:
        self.reason = reason
        super().__init__(info)


class Component:
    """A component: name, optional instance, EVSE id and connector id."""

    __slots__ = ("name", "instance", "evse", "connector")

    def __init__(self, name: str, instance: str | None = None, evse: int | None = None,
                 connector: int | None = None) -> None:
        self.name, self.instance, self.evse, self.connector = name, instance, evse, connector

    def to_json(self) -> dict:
        d = {"name": self.name}
        if self.instance is not None:
            d["instance"] = self.instance
        if self.evse is not None:
            d["evse"] = {"id": self.evse}
            if self.connector is not None:
                d["evse"]["connectorId"] = self.connector
        return d

    def label(self) -> str:
        s = self.name + ("[%s]" % self.instance if self.instance is not None else "")
        if self.evse is not None:
            s += "@%d" % self.evse + (".%d" % self.connector if self.connector is not None else "")
        return s


class Variable:
    """One variable of one component, with its characteristics and where its value lives."""

    __slots__ = ("component", "name", "instance", "data_type", "unit", "minimum", "maximum", "values",
                 "min_items", "mutability", "setting", "view", "live", "param", "default", "reboot",
                 "check", "maxset", "max_setting", "key", "words")

    def __init__(self, component: Component, row: dict, default, minimum=None, maximum=None,
                 values=None, maxset=None) -> None:
        self.component = component
        self.name = row["v"]
        self.instance = row.get("vi")
        self.data_type = row["type"]
        self.unit = row.get("unit")
        self.minimum, self.maximum = minimum, maximum
        self.values = tuple(values) if values is not None else None
        self.min_items = row.get("min_items", 0)
        self.mutability = row["mut"]
        self.setting = row.get("setting")
        self.view = row.get("view", False)
        self.live = row.get("live", False)
        self.param = row.get("param")
        self.default = default
        self.reboot = row.get("reboot", False)
        self.check = row.get("check")
        self.maxset = maxset
        self.max_setting = row.get("max_setting")  # maxLimit: that setting's current value
        self.words = row.get("words")  # list items: 2.0.1 word -> the setting's neutral word
        self.key = component.label() + "." + self.name + ("[%s]" % self.instance if self.instance else "")

    @property
    def stored(self) -> bool:
        """Kept (and persisted) by the device model itself."""
        return self.setting is None and not self.live and self.param is None

    def attribute_types(self) -> tuple:
        return (ACTUAL, MAX_SET) if self.maxset is not None else (ACTUAL,)

    def writable(self) -> bool:
        return self.mutability != READ_ONLY

    def to_json(self) -> dict:
        d = {"name": self.name}
        if self.instance is not None:
            d["instance"] = self.instance
        return d

    def characteristics(self, settings: Settings) -> dict:
        d = {"dataType": self.data_type, "supportsMonitoring": False}
        if self.unit is not None:
            d["unit"] = self.unit
        if self.minimum is not None:
            d["minLimit"] = self.minimum
        maximum = settings.get(self.max_setting) if self.max_setting is not None else self.maximum
        if maximum is not None:
            d["maxLimit"] = maximum
        if self.values is not None:
            d["valuesList"] = ",".join(self.values)
        return d

    # The OCPP string form <-> typed values.

    def format(self, value) -> str:
        if value is None:
            return ""
        if self.data_type == "boolean":
            return "true" if value else "false"
        if self.data_type in ("SequenceList", "MemberList"):
            return ",".join(value)
        if self.data_type == "decimal":
            return str(int(value)) if float(value).is_integer() else repr(float(value))
        return str(value)

    def parse(self, text: str):
        """The typed value of ``text``; InvalidValue when the variable does not accept it."""
        if not isinstance(text, str):
            raise InvalidValue("InvalidValue", "not a string")
        if len(text) > SET_VALUE_SIZE:
            raise InvalidValue("TooLargeElement", "longer than %d characters" % SET_VALUE_SIZE)
        t = self.data_type
        if t == "boolean":
            if text.lower() not in ("true", "false"):
                raise InvalidValue("InvalidValue", "expected true or false")
            return text.lower() == "true"
        if t in ("integer", "decimal"):
            if not (_INTEGER if t == "integer" else _DECIMAL).match(text):
                raise InvalidValue("InvalidValue", "expected an %s" % t)
            value = int(text) if t == "integer" else float(text)
            self._in_range(value, value)
            return value
        if t == "dateTime":
            try:
                parse_datetime(text)
            except ValueError:
                raise InvalidValue("InvalidValue", "expected a dateTime") from None
            return text
        if t == "OptionList":
            if text not in self.values:
                raise InvalidValue("InvalidValue", "not one of %s" % ",".join(self.values))
            return text
        if t in ("SequenceList", "MemberList"):
            items = [i.strip() for i in text.split(",")] if text.strip() else []
            if any(not i for i in items) or len(set(items)) != len(items):
                raise InvalidValue("InvalidValue", "empty or repeated items")
            if self.values is not None and any(i not in self.values for i in items):
                raise InvalidValue("InvalidValue", "items must be among %s" % ",".join(self.values))
            if len(items) < self.min_items:
                raise InvalidValue("InvalidValue", "at least %d item(s)" % self.min_items)
            return items
        self._in_range(len(text), "%d characters" % len(text))  # string: limits are lengths
        if self.check == "int_list" and not all(i.strip().isdigit() for i in text.split(",")):
            raise InvalidValue("InvalidValue", "expected comma-separated numbers")
        return text

    def _in_range(self, value, shown) -> None:
        if (self.minimum is not None and value < self.minimum) or (
                self.maximum is not None and value > self.maximum):
            raise InvalidValue("ValueOutOfRange", "%s outside %s..%s" % (shown, self.minimum, self.maximum))


def _text(value) -> str:
    """A configuration file's value (TOML types) in the OCPP string form."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def _status_info(reason: str, info: str | None = None) -> dict:
    d = {"reasonCode": reason}
    if info:
        d["additionalInfo"] = info[:512]
    return d


def _fold(name) -> str | None:
    return name.lower() if isinstance(name, str) else None  # names are case-insensitive (schemas)


class DeviceModel:
    """The station's components and variables over its neutral ``settings``."""

    def __init__(self, variables: list, settings: Settings, path: str | None = None,
                 initial: dict | None = None, clock=None) -> None:
        self.settings = settings
        self.clock = clock if clock is not None else Clock()
        self._vars = list(variables)
        self._by_key = {v.key.lower(): v for v in self._vars}
        self._path = path
        self._values = {v.key: v.default for v in self._vars if v.stored}
        self._readers: dict = {}  # (component name, variable name, instance) -> read(component)
        self._writers: dict = {}
        self._listeners: list = []
        self._by_setting: dict = {}
        for v in self._vars:
            if v.setting is not None:
                self._by_setting.setdefault(v.setting, []).append(v)
        self._stored = self._load()
        for name, value in (initial or {}).items():
            self._apply_initial(name, value)
        self.attach("ClockCtrlr", "DateTime", read=lambda c: format_datetime(self.clock.time()))
        settings.on_change(self._setting_changed)

    @classmethod
    def for_station(cls, connector_count: int, settings: Settings, *, data_dir: str | None = None,
                    initial: dict | None = None, clock=None, supply_phases: int = 3,
                    max_power_w: float | None = None, max_current_a: float = 32.0, voltage_v: float = 230.0,
                    connector_type: str = "cType2", message_timeout_s: int = 30) -> "DeviceModel":
        """The model of a station with ``connector_count`` connectors: EVSE 1..N, each with one
        connector (connectorId 1); features (local list, smart charging) follow ``settings``."""
        if max_power_w is None:
            max_power_w = float(supply_phases * voltage_v * max_current_a)
        params = {"supply_phases": supply_phases, "max_power_w": float(max_power_w),
                  "connector_type": connector_type, "message_timeout_s": int(message_timeout_s)}
        features = {"local_list": "local_list_enabled" in settings,
                    "smart_charging": "profile_max_installed" in settings}
        variables = []
        for row in VARIABLES:
            if row.get("feature") and not features[row["feature"]]:
                continue
            scope = row.get("scope", "station")
            if scope == "station":
                components = [Component(row["c"], row.get("ci"))]
            else:
                components = [Component(row["c"], row.get("ci"), n, 1 if scope == "connector" else None)
                              for n in range(1, connector_count + 1)]
            for comp in components:
                variables.append(_build(comp, row, settings, params))
        path = os.path.join(data_dir, DEVICE_MODEL_FILE) if data_dir is not None else None
        return cls(variables, settings, path, initial, clock)

    # Wiring to the running station.

    def attach(self, component: str, variable: str, read=None, write=None, instance: str | None = None) -> None:
        """Values of a live variable from the station: ``read(component) -> typed value`` and
        ``write(component, typed value) -> Accepted | Rejected | RebootRequired``; the
        Component tells which EVSE or connector is meant."""
        k = (component.lower(), variable.lower(), instance)
        if read is not None:
            self._readers[k] = read
        if write is not None:
            self._writers[k] = write

    def on_change(self, callback) -> None:
        """``callback(key, value)`` after each change: ``key`` as "OCPPCommCtrlr.HeartbeatInterval"
        (or "...MessageAttempts[TransactionEvent]"), ``value`` typed. Bound variables notify
        when their setting changes, whoever changed it."""
        self._listeners.append(callback)

    def variables(self) -> list:
        return list(self._vars)

    def find(self, key: str) -> Variable:
        """A variable by key, as "Component.Variable[instance]" (KeyError when unknown)."""
        v = self._by_key.get(key.lower())
        if v is None:
            raise KeyError(key)
        return v

    def value(self, var: Variable, attribute: str = ACTUAL):
        """The typed value of ``var`` (``attribute`` Actual or MaxSet)."""
        if attribute == MAX_SET:
            return var.maxset
        if var.setting is not None:
            return _from_neutral(var, self.settings.get(var.setting))
        if var.live:
            read = self._readers.get(self._hook(var))
            return read(var.component) if read is not None else var.default
        if var.param is not None:
            return var.default
        return self._values[var.key]

    def get(self, key: str):
        """The typed Actual value of a variable by key (see ``find``)."""
        return self.value(self.find(key))

    # GetVariables / SetVariables (B06 / B05)

    def get_variables(self, requests: list) -> list:
        """GetVariableResult for each GetVariableData of a GetVariablesRequest."""
        results = []
        for req in requests:
            attribute = req.get("attributeType", ACTUAL)
            result = {"attributeType": attribute, "component": req["component"], "variable": req["variable"]}
            var, status = self._resolve(req["component"], req["variable"])
            if var is not None and attribute not in var.attribute_types():
                status = NOT_SUPPORTED_ATTRIBUTE_TYPE
            elif var is not None and var.mutability == WRITE_ONLY:
                status = REJECTED
                result["attributeStatusInfo"] = _status_info("WriteOnly")
            elif var is not None:
                status = ACCEPTED
                result["attributeValue"] = var.format(self.value(var, attribute))[:VALUE_SIZE]
            result["attributeStatus"] = status
            results.append(result)
        return results

    def set_variables(self, requests: list) -> list:
        """SetVariableResult for each SetVariableData of a SetVariablesRequest, applied in order."""
        results = []
        for req in requests:
            attribute = req.get("attributeType", ACTUAL)
            result = {"attributeType": attribute, "component": req["component"], "variable": req["variable"]}
            var, status = self._resolve(req["component"], req["variable"])
            if var is not None:
                status, info = self._set(var, attribute, req["attributeValue"])
                if info is not None:
                    result["attributeStatusInfo"] = info
            result["attributeStatus"] = status
            results.append(result)
        return results

    def _set(self, var: Variable, attribute: str, text: str) -> tuple:
        if attribute not in var.attribute_types():
            return NOT_SUPPORTED_ATTRIBUTE_TYPE, None
        if attribute != ACTUAL or not var.writable() or var.view:
            return REJECTED, _status_info("ReadOnly")
        try:
            value = var.parse(text)
            if var.setting is not None:
                self.settings.set(var.setting, _to_neutral(var, value))  # its listeners, then ours
                return ACCEPTED, None
        except InvalidValue as e:
            log.info("SetVariables %s=%r rejected: %s", var.key, text, e)
            return REJECTED, _status_info(e.reason, str(e))
        except ValueError as e:  # the setting's own limits
            log.info("SetVariables %s=%r rejected: %s", var.key, text, e)
            return REJECTED, _status_info("ValueOutOfRange", str(e))
        if var.live:
            write = self._writers.get(self._hook(var))
            if write is None:
                return REJECTED, _status_info("UnsupportedRequest")
            status = write(var.component, value)
            if status in (ACCEPTED, REBOOT_REQUIRED) and var.mutability != WRITE_ONLY:
                self._notify(var.key, value)
            return status, None
        self._values[var.key] = value
        self._stored[var.key] = var.format(value)
        self._persist()
        self._notify(var.key, value)
        return (REBOOT_REQUIRED if var.reboot else ACCEPTED), None

    def _resolve(self, component: dict, variable: dict) -> tuple:
        """(variable, None) or (None, UnknownComponent | UnknownVariable) for one request."""
        evse = component.get("evse") or {}
        name, instance = _fold(component.get("name")), _fold(component.get("instance"))
        comps = [v for v in self._vars if v.component.name.lower() == name
                 and _fold(v.component.instance) == instance and v.component.evse == evse.get("id")
                 and v.component.connector == evse.get("connectorId")]
        if not comps:
            return None, UNKNOWN_COMPONENT
        vname, vinst = _fold(variable.get("name")), _fold(variable.get("instance"))
        for v in comps:
            if v.name.lower() == vname and _fold(v.instance) == vinst:
                return v, None
        return None, UNKNOWN_VARIABLE

    # Reports (B07 / B08)

    def base_report(self, report_base: str) -> list:
        """ReportData of a GetBaseReport; ValueError for a report base not supported."""
        if report_base == "FullInventory":
            chosen = self._vars
        elif report_base == "ConfigurationInventory":
            chosen = [v for v in self._vars if v.writable() and not v.view]
        elif report_base == "SummaryInventory":
            chosen = [v for v in self._vars
                      if (v.component.name in ("ChargingStation", "EVSE", "Connector")
                          and v.name in ("AvailabilityState", "Available"))
                      or (v.name in SUMMARY_PROBLEMS and self.value(v) is True)]
        else:
            raise ValueError("report base %r not supported" % report_base)
        return [self.report_data(v) for v in chosen]

    def report(self, component_variables: list | None = None, criteria: list | None = None) -> list:
        """ReportData of a GetReport: the ``component_variables`` selected (a component without
        evse means every EVSE, a variable absent every variable, an instance absent every
        instance), of the components meeting any of ``criteria`` (their variable of that name
        is true). With criteria only, the criterion variables themselves are reported (as
        TC_B_16 checks). Empty: nothing matches. ValueError for an unknown criterion."""
        for c in criteria or ():
            if c not in CRITERIA:
                raise ValueError("component criterion %r not supported" % c)
        if component_variables:
            chosen = [v for v in self._vars if any(_selects(cv, v) for cv in component_variables)]
        elif criteria:
            chosen = [v for v in self._vars if v.name in criteria and v.instance is None]
        else:
            chosen = list(self._vars)
        if criteria:
            met = {v.component.label() for v in self._vars
                   if v.name in criteria and v.instance is None and self.value(v) is True}
            chosen = [v for v in chosen if v.component.label() in met]
        return [self.report_data(v) for v in chosen]

    def report_data(self, var: Variable) -> dict:
        """One ReportData: component, variable, its attributes and characteristics."""
        attributes = []
        for attribute in var.attribute_types():
            a = {"type": attribute}
            mutability = var.mutability if attribute == ACTUAL else READ_ONLY
            if mutability != WRITE_ONLY:  # B07.FR.03 / B08.FR.03 (errata 2025-01)
                a["value"] = var.format(self.value(var, attribute))[:VALUE_SIZE]
            a["mutability"] = mutability
            a["persistent"] = not var.live or attribute != ACTUAL
            a["constant"] = attribute != ACTUAL or (var.mutability == READ_ONLY and var.setting is None
                                                    and not var.live)
            attributes.append(a)
        return {"component": var.component.to_json(), "variable": var.to_json(),
                "variableAttribute": attributes, "variableCharacteristics": var.characteristics(self.settings)}

    def notify_report_messages(self, request_id: int, report_data: list, items_per_message: int | None = None,
                               bytes_per_message: int | None = None, generated_at: str | None = None) -> list:
        """NotifyReportRequest payloads carrying ``report_data``: at most ``items_per_message``
        items and ``bytes_per_message`` bytes (the CALL frame included) each, by default the
        DeviceDataCtrlr's ItemsPerMessage/BytesPerMessage of GetReport; seqNo from 0, tbc true
        but on the last. No report data: no message (the answer is EmptyResultSet)."""
        if items_per_message is None:
            items_per_message = self.get("DeviceDataCtrlr.ItemsPerMessage[GetReport]")
        if bytes_per_message is None:
            bytes_per_message = self.get("DeviceDataCtrlr.BytesPerMessage[GetReport]")
        if generated_at is None:
            generated_at = format_datetime(self.clock.time())
        envelope = _size({"requestId": request_id, "generatedAt": generated_at, "seqNo": 0, "tbc": True,
                          "reportData": []}) + CALL_OVERHEAD_BYTES
        chunks: list = []
        used = 0
        for item in report_data:
            size = _size(item) + 1  # and its comma
            if chunks and len(chunks[-1]) < items_per_message and used + size <= bytes_per_message:
                chunks[-1].append(item)
                used += size
            else:
                chunks.append([item])
                used = envelope + size
        return [{"requestId": request_id, "generatedAt": generated_at, "seqNo": n, "tbc": n < len(chunks) - 1,
                 "reportData": chunk} for n, chunk in enumerate(chunks)]

    # Initial values, persistence, listeners

    def _apply_initial(self, name: str, value) -> None:
        var = self._by_key.get(name.lower()) if isinstance(name, str) else None
        if var is None or var.component.evse is not None:
            raise DeviceModelError(name, "unknown variable (expected Component.Variable[instance])")
        if var.live or var.view or var.param is not None:
            raise DeviceModelError(name, "not configurable: its value comes from the station")
        try:
            typed = var.parse(_text(value))
            if var.setting is not None:
                self.settings.set_initial(var.setting, _to_neutral(var, typed))
            elif var.key not in self._stored:  # a value set over OCPP wins
                self._values[var.key] = typed
        except ValueError as e:
            raise DeviceModelError(name, "invalid value %r: %s" % (value, e)) from None

    def _load(self) -> dict:
        data = read_json(self._path, {}) if self._path is not None else {}
        stored = {}
        for key, text in (data if isinstance(data, dict) else {}).items():
            var = self._by_key.get(key.lower())
            if var is None or not var.stored:
                log.warning("%s: unknown variable %s ignored", self._path, key)
                continue
            try:
                self._values[var.key] = var.parse(text)
            except ValueError as e:
                log.warning("%s: ignoring stored value of %s: %s", self._path, key, e)
                continue
            stored[var.key] = text
        return stored

    def _persist(self) -> None:
        if self._path is not None:
            write_json_atomic(self._path, self._stored)

    def _setting_changed(self, setting: str, value) -> None:
        for var in self._by_setting.get(setting, ()):
            self._notify(var.key, _from_neutral(var, value))

    def _notify(self, key: str, value) -> None:
        for cb in list(self._listeners):
            cb(key, value)

    @staticmethod
    def _hook(var: Variable) -> tuple:
        return (var.component.name.lower(), var.name.lower(), var.instance)


def _build(comp: Component, row: dict, settings: Settings, params: dict) -> Variable:
    """A Variable from a data row, with limits from its setting and facts from ``params``."""
    minimum, maximum, values = row.get("min"), row.get("max"), row.get("values")
    default = row.get("default")
    if row.get("setting") is not None:
        d = settings.definition(row["setting"])  # KeyError: the data names a setting that does not exist
        minimum = d.minimum if minimum is None else minimum
        maximum = d.maximum if maximum is None else maximum
        values = d.choices if values is None else values
        default = None
    if row.get("param") is not None:
        default = params[row["param"]]
    if row.get("max_param") is not None:
        maximum = params[row["max_param"]]
    maxset = params[row["maxset_param"]] if row.get("maxset_param") else None
    if isinstance(default, list):
        default = list(default)
    return Variable(comp, row, default, minimum, maximum, values, maxset)


def _to_neutral(var: Variable, value):
    """A list variable's 2.0.1 words as its setting's neutral words (``words`` of its row)."""
    return [var.words[w] for w in value] if var.words else value


def _from_neutral(var: Variable, value):
    """A setting's neutral list words as the variable's 2.0.1 words."""
    if not var.words:
        return value
    back = {n: w for w, n in var.words.items()}
    return [back[n] for n in value]


def _selects(cv: dict, var: Variable) -> bool:
    """Whether a GetReport ComponentVariable selects ``var``."""
    c, comp = cv["component"], var.component
    if c["name"].lower() != comp.name.lower():
        return False
    if "instance" in c and _fold(c["instance"]) != _fold(comp.instance):
        return False
    evse = c.get("evse")
    if evse is not None and (evse["id"] != comp.evse or (
            "connectorId" in evse and evse["connectorId"] != comp.connector)):
        return False
    v = cv.get("variable")
    if v is None:
        return True
    if v["name"].lower() != var.name.lower():
        return False
    return "instance" not in v or _fold(v["instance"]) == _fold(var.instance)


def _size(payload) -> int:
    """Bytes of ``payload`` as compact JSON."""
    return len(json.dumps(payload, separators=(",", ":")).encode())
