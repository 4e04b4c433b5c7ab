"""The OCPP 2.0.1 device model: GetVariables, SetVariables, GetBaseReport, GetReport -> NotifyReport.

Pure module tests: requests in, payloads out, each payload checked against the ocpp package's
2.0.1 JSON schemas. Tests named after an OCTT case follow that case's steps and tool validations
(spec/OCPP-2.0.1_edition3_part6-testcases.txt) as far as a module without a websocket can.
"""

import csv
import os
import stat

import pytest
from ocpp.messages import get_validator

from agent.core.settings import Settings, station_settings
from agent.ocpp201.device_model import (ACCEPTED, NOT_SUPPORTED_ATTRIBUTE_TYPE, REBOOT_REQUIRED, REJECTED,
                                        UNKNOWN_COMPONENT, UNKNOWN_VARIABLE, DeviceModel, DeviceModelError)
from hal.runtime.clock import VirtualClock

SPEC = "/work/shared/spec/OCPP-2.0.1_dm_components_vars.csv"
# Core, Local Authorization List and Smart Charging (OCTT201.md, part 5): their controllers, and the
# physical components every station has.
PROFILE_COMPONENTS = ("OCPPCommCtrlr", "TxCtrlr", "DeviceDataCtrlr", "ClockCtrlr", "SecurityCtrlr",
                      "SampledDataCtrlr", "AlignedDataCtrlr", "AuthCtrlr", "AuthCacheCtrlr", "LocalAuthListCtrlr",
                      "SmartChargingCtrlr", "ChargingStation", "EVSE", "Connector")
KNOWN_REQUIRED = 55  # how many of those the CSV marks required: guards the parsing of the CSV


def _valid(action: str, payload: dict, response: bool = True) -> dict:
    get_validator(3 if response else 2, action, "2.0.1").validate(payload)
    return payload


def _model(connectors: int = 2, **kw) -> DeviceModel:
    settings = kw.pop("settings", None) or Settings(station_settings())
    return DeviceModel.for_station(connectors, settings, clock=kw.pop("clock", VirtualClock()), **kw)


def _get(dm: DeviceModel, *items) -> list:
    """GetVariables for (component, variable[, attributeType]) items; the request and the
    response both checked against the schemas."""
    data = []
    for item in items:
        d = {"component": _comp(item[0]), "variable": _var(item[1])}
        if len(item) > 2:
            d["attributeType"] = item[2]
        data.append(d)
    _valid("GetVariables", {"getVariableData": data}, response=False)
    return _valid("GetVariables", {"getVariableResult": dm.get_variables(data)})["getVariableResult"]


def _set(dm: DeviceModel, *items) -> list:
    """SetVariables for (component, variable, value[, attributeType]) items."""
    data = []
    for item in items:
        d = {"component": _comp(item[0]), "variable": _var(item[1]), "attributeValue": item[2]}
        if len(item) > 3:
            d["attributeType"] = item[3]
        data.append(d)
    _valid("SetVariables", {"setVariableData": data}, response=False)
    return _valid("SetVariables", {"setVariableResult": dm.set_variables(data)})["setVariableResult"]


def _comp(c) -> dict:
    return {"name": c} if isinstance(c, str) else c


def _var(v) -> dict:
    return {"name": v} if isinstance(v, str) else v


def _notify(dm: DeviceModel, data: list, **kw) -> list:
    messages = dm.notify_report_messages(7, data, generated_at="2026-01-01T00:00:00Z", **kw)
    for m in messages:
        _valid("NotifyReport", m, response=False)
    return messages


def _required() -> set:
    """(component, variable, instance) marked required in the CSV for PROFILE_COMPONENTS."""
    with open(SPEC, encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter=";"))
    return {(r["Specific Component"], r["Variable"], r["Instance"] or None) for r in rows
            if r["Required?"] == "yes" and r["Specific Component"] in PROFILE_COMPONENTS}


# Presence of the required variables (TC_B_53)

@pytest.mark.skipif(not os.path.exists(SPEC), reason="the device model CSV is not mounted")
def test_every_required_variable_of_the_profiles_is_in_the_model():
    required = _required()
    assert len(required) == KNOWN_REQUIRED
    have = {(v.component.name, v.name, v.instance) for v in _model().variables()}
    assert sorted(required - have) == []


@pytest.mark.skipif(not os.path.exists(SPEC), reason="the device model CSV is not mounted")
def test_tc_b_53_full_inventory_reports_the_required_variables_with_valid_lists():
    dm = _model()
    data = [d for m in _notify(dm, dm.base_report("FullInventory")) for d in m["reportData"]]
    reported = {(d["component"]["name"], d["variable"]["name"], d["variable"].get("instance")) for d in data}
    assert _required() <= reported
    for d in data:
        ch = d["variableCharacteristics"]
        for a in d["variableAttribute"]:
            if a["mutability"] == "WriteOnly":
                assert "value" not in a
            elif ch["dataType"] in ("OptionList", "SequenceList", "MemberList"):
                allowed = ch["valuesList"].split(",")
                assert allowed and all(i in allowed for i in a["value"].split(",") if i), d
    evses = {d["component"]["evse"]["id"] for d in data if d["component"]["name"] == "EVSE"}
    assert evses == {1, 2}
    connectors = {(d["component"]["evse"]["id"], d["component"]["evse"]["connectorId"]) for d in data
                  if d["component"]["name"] == "Connector"}
    assert connectors == {(1, 1), (2, 1)}


def test_a_station_without_local_list_or_smart_charging_has_no_such_controllers():
    dm = _model(settings=Settings(station_settings(local_list=False, smart_charging=False)))
    names = {v.component.name for v in dm.variables()}
    assert "LocalAuthListCtrlr" not in names and "SmartChargingCtrlr" not in names
    assert _get(dm, ("LocalAuthListCtrlr", "Enabled"))[0]["attributeStatus"] == UNKNOWN_COMPONENT


# GetVariables (B06)

def test_tc_b_06_get_variables_single_value():
    dm = _model(initial={"OCPPCommCtrlr.OfflineThreshold": 300})
    [r] = _get(dm, ("OCPPCommCtrlr", "OfflineThreshold", "Actual"))
    assert r == {"attributeStatus": ACCEPTED, "attributeType": "Actual", "attributeValue": "300",
                 "component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "OfflineThreshold"}}


def test_tc_b_07_get_variables_multiple_values():
    dm = _model(initial={"OCPPCommCtrlr.OfflineThreshold": 300, "AuthCtrlr.LocalAuthorizeOffline": True})
    r = _get(dm, ("OCPPCommCtrlr", "OfflineThreshold", "Actual"), ("AuthCtrlr", "LocalAuthorizeOffline", "Actual"))
    assert [(x["attributeStatus"], x["variable"]["name"], x["attributeValue"]) for x in r] == [
        (ACCEPTED, "OfflineThreshold", "300"), (ACCEPTED, "LocalAuthorizeOffline", "true")]


def test_tc_b_32_get_variables_unknown_component():
    [r] = _get(_model(), ("UnknownComponent", "OfflineThreshold"))
    assert r["attributeStatus"] == UNKNOWN_COMPONENT and r["component"] == {"name": "UnknownComponent"}
    assert r["variable"] == {"name": "OfflineThreshold"} and "attributeValue" not in r


def test_tc_b_33_get_variables_unknown_variable():
    [r] = _get(_model(), ("OCPPCommCtrlr", "UnknownVariable"))
    assert r["attributeStatus"] == UNKNOWN_VARIABLE and r["variable"] == {"name": "UnknownVariable"}


def test_tc_b_34_get_variables_not_supported_attribute_type():
    [r] = _get(_model(), ("OCPPCommCtrlr", "OfflineThreshold", "Target"))
    assert r["attributeStatus"] == NOT_SUPPORTED_ATTRIBUTE_TYPE and r["attributeType"] == "Target"


def test_get_variables_of_a_write_only_variable_is_rejected_without_its_value():
    [r] = _get(_model(), ("SecurityCtrlr", "BasicAuthPassword"))
    assert r["attributeStatus"] == REJECTED and "attributeValue" not in r
    assert r["attributeStatusInfo"]["reasonCode"] == "WriteOnly"


def test_get_variables_addresses_evses_and_connectors():
    dm = _model(connectors=2, max_current_a=16, supply_phases=3)
    r = _get(dm, ({"name": "EVSE", "evse": {"id": 2}}, "Power", "MaxSet"),
             ({"name": "EVSE", "evse": {"id": 2}}, "Power", "Actual"),
             ({"name": "Connector", "evse": {"id": 1, "connectorId": 1}}, "ConnectorType"),
             ("EVSE", "Power"),  # no EVSE id: which one?
             ({"name": "EVSE", "evse": {"id": 3}}, "Power"),
             ({"name": "OCPPCommCtrlr", "evse": {"id": 1}}, "HeartbeatInterval"),
             ({"name": "EVSE", "evse": {"id": 1}}, "Power", "MinSet"),
             ("ocppcommctrlr", "heartbeatinterval"))  # names are case-insensitive
    assert [(x["attributeStatus"], x.get("attributeValue")) for x in r] == [
        (ACCEPTED, "11040"), (ACCEPTED, "0"), (ACCEPTED, "cType2"), (UNKNOWN_COMPONENT, None),
        (UNKNOWN_COMPONENT, None), (UNKNOWN_COMPONENT, None), (NOT_SUPPORTED_ATTRIBUTE_TYPE, None),
        (ACCEPTED, "300")]


def test_live_variables_read_the_station_through_attach():
    dm = _model(connectors=2)
    states = {1: "Occupied", 2: "Faulted"}
    dm.attach("EVSE", "AvailabilityState", read=lambda comp: states[comp.evse])
    dm.attach("LocalAuthListCtrlr", "Entries", read=lambda comp: 42)
    r = _get(dm, ({"name": "EVSE", "evse": {"id": 1}}, "AvailabilityState"),
             ({"name": "EVSE", "evse": {"id": 2}}, "AvailabilityState"),
             ({"name": "Connector", "evse": {"id": 2, "connectorId": 1}}, "AvailabilityState"),
             ("LocalAuthListCtrlr", "Entries"), ("ClockCtrlr", "DateTime"))
    assert [x["attributeValue"] for x in r] == ["Occupied", "Faulted", "Available", "42", "2026-01-01T00:00:00Z"]


# SetVariables (B05)

def test_tc_b_09_set_variables_single_value():
    dm = _model()
    [r] = _set(dm, ("OCPPCommCtrlr", "OfflineThreshold", "300", "Actual"))
    assert r == {"attributeStatus": ACCEPTED, "attributeType": "Actual", "component": {"name": "OCPPCommCtrlr"},
                 "variable": {"name": "OfflineThreshold"}}
    assert dm.get("OCPPCommCtrlr.OfflineThreshold") == 300


def test_tc_b_10_set_variables_multiple_values():
    dm = _model()
    r = _set(dm, ("OCPPCommCtrlr", "OfflineThreshold", "300", "Actual"),
             ("AuthCtrlr", "LocalAuthorizeOffline", "true", "Actual"))
    assert [x["attributeStatus"] for x in r] == [ACCEPTED, ACCEPTED]


def test_tc_b_35_36_37_set_variables_unknown_component_variable_attribute_type():
    r = _set(_model(), ("UnknownComponent", "OfflineThreshold", "1"), ("OCPPCommCtrlr", "UnknownVariable", "1"),
             ("OCPPCommCtrlr", "OfflineThreshold", "1", "Target"))
    assert [x["attributeStatus"] for x in r] == [UNKNOWN_COMPONENT, UNKNOWN_VARIABLE, NOT_SUPPORTED_ATTRIBUTE_TYPE]
    assert r[2]["attributeType"] == "Target"


def test_tc_b_39_set_variables_read_only():
    dm = _model()
    [r] = _set(dm, ("OCPPCommCtrlr", {"name": "MessageTimeout", "instance": "Default"}, "10"))
    assert r["attributeStatus"] == REJECTED and r["variable"] == {"name": "MessageTimeout", "instance": "Default"}
    assert r["attributeStatusInfo"]["reasonCode"] == "ReadOnly"
    assert dm.get("OCPPCommCtrlr.MessageTimeout[Default]") == 30


def test_tc_b_11_set_variables_invalidly_formatted_values():
    dm = _model(initial={"OCPPCommCtrlr.OfflineThreshold": 300})
    values = ["300", "300.1", "true", "2026-01-01T00:00:00Z", "abc"]
    expected = {  # which of the five values each variable accepts
        "OfflineThreshold": [ACCEPTED, REJECTED, REJECTED, REJECTED, REJECTED],
        "LimitChangeSignificance": [REJECTED, REJECTED, REJECTED, REJECTED, REJECTED],  # a percentage: 0..100
        "AuthorizeRemoteStart": [REJECTED, REJECTED, ACCEPTED, REJECTED, REJECTED],
    }
    comps = {"OfflineThreshold": "OCPPCommCtrlr", "LimitChangeSignificance": "SmartChargingCtrlr",
             "AuthorizeRemoteStart": "AuthCtrlr"}
    for name, statuses in expected.items():
        results = [_set(dm, (comps[name], name, v))[0] for v in values]
        assert [x["attributeStatus"] for x in results] == statuses, name
        for x in results:
            if x["attributeStatus"] == REJECTED:
                assert x["attributeStatusInfo"]["reasonCode"] in ("InvalidValue", "ValueOutOfRange")
    assert _set(dm, ("SmartChargingCtrlr", "LimitChangeSignificance", "0.5"))[0]["attributeStatus"] == ACCEPTED
    assert dm.get("SmartChargingCtrlr.LimitChangeSignificance") == 0.5
    # Steps 7-8 only when ClockCtrlr.NextTimeOffsetTransitionDateTime exists; this station has none.
    assert _set(dm, ("ClockCtrlr", "NextTimeOffsetTransitionDateTime", values[3]))[0]["attributeStatus"] == \
        UNKNOWN_VARIABLE


def test_list_values_follow_the_option_sequence_and_member_list_rules():
    dm = _model()
    cases = [
        ("SampledDataCtrlr", "TxUpdatedMeasurands", "Energy.Active.Import.Register,Voltage", ACCEPTED),
        ("SampledDataCtrlr", "TxUpdatedMeasurands", "", ACCEPTED),  # an empty set of measurands
        ("SampledDataCtrlr", "TxUpdatedMeasurands", "Voltage,Voltage", REJECTED),
        ("SampledDataCtrlr", "TxUpdatedMeasurands", "SoC", REJECTED),  # not one our meters deliver
        ("TxCtrlr", "TxStartPoint", "EVConnected,Authorized", ACCEPTED),
        ("TxCtrlr", "TxStartPoint", "", REJECTED),  # at least one start point
        ("TxCtrlr", "TxStopPoint", "ParkingBayOccupancy", REJECTED),  # no bay sensor
        ("ClockCtrlr", "TimeSource", "Heartbeat", ACCEPTED),
        ("ClockCtrlr", "TimeSource", "GPS", REJECTED),
        ("OCPPCommCtrlr", "NetworkConfigurationPriority", "1,x", REJECTED),
        ("SecurityCtrlr", "OrganizationName", "x" * 65, REJECTED),
        ("OCPPCommCtrlr", "HeartbeatInterval", "-1", REJECTED),  # the neutral setting's limits
        ("OCPPCommCtrlr", "HeartbeatInterval", "86401", REJECTED),
    ]
    for comp, name, value, status in cases:
        assert _set(dm, (comp, name, value))[0]["attributeStatus"] == status, (name, value)
    assert dm.get("TxCtrlr.TxStartPoint") == ["EVConnected", "Authorized"]
    assert dm.settings.get("sampled_measurands") == []


def test_the_network_configuration_priority_goes_to_its_writer_and_is_read_from_it():
    """Live: the endpoint manager keeps it (agent/link/network_profiles.py); unwired, Rejected."""
    dm = _model()
    assert _set(dm, ("OCPPCommCtrlr", "NetworkConfigurationPriority", "2,1"))[0]["attributeStatus"] == REJECTED
    kept = ["1"]
    dm.attach("OCPPCommCtrlr", "NetworkConfigurationPriority", read=lambda comp: kept[-1],
              write=lambda comp, value: kept.append(value) or REBOOT_REQUIRED)
    [r] = _set(dm, ("OCPPCommCtrlr", "NetworkConfigurationPriority", "2,1"))
    assert r["attributeStatus"] == REBOOT_REQUIRED
    assert _get(dm, ("OCPPCommCtrlr", "NetworkConfigurationPriority"))[0]["attributeValue"] == "2,1"
    assert _set(dm, ("OCPPCommCtrlr", "NetworkConfigurationPriority", "2,x"))[0]["attributeStatus"] == REJECTED
    assert kept == ["1", "2,1"]


def test_write_only_password_goes_to_its_writer():
    dm = _model()
    assert _set(dm, ("SecurityCtrlr", "BasicAuthPassword", "s" * 16))[0]["attributeStatus"] == REJECTED  # unwired
    written = []
    dm.attach("SecurityCtrlr", "BasicAuthPassword",
              write=lambda comp, value: written.append(value) or ACCEPTED)
    r = _set(dm, ("SecurityCtrlr", "BasicAuthPassword", "s" * 16), ("SecurityCtrlr", "BasicAuthPassword", "short"))
    assert [x["attributeStatus"] for x in r] == [ACCEPTED, REJECTED] and written == ["s" * 16]


def test_every_status_of_get_and_set_occurs():
    dm = _model()
    dm.attach("SecurityCtrlr", "BasicAuthPassword", write=lambda comp, value: ACCEPTED)
    dm.attach("OCPPCommCtrlr", "NetworkConfigurationPriority", write=lambda comp, value: REBOOT_REQUIRED)
    got = {x["attributeStatus"] for x in _get(
        dm, ("OCPPCommCtrlr", "HeartbeatInterval"), ("SecurityCtrlr", "BasicAuthPassword"), ("X", "Y"),
        ("OCPPCommCtrlr", "Y"), ("OCPPCommCtrlr", "HeartbeatInterval", "MaxSet"))}
    assert got == {ACCEPTED, REJECTED, UNKNOWN_COMPONENT, UNKNOWN_VARIABLE, NOT_SUPPORTED_ATTRIBUTE_TYPE}
    put = {x["attributeStatus"] for x in _set(
        dm, ("OCPPCommCtrlr", "HeartbeatInterval", "60"), ("OCPPCommCtrlr", "HeartbeatInterval", "x"),
        ("OCPPCommCtrlr", "NetworkConfigurationPriority", "1"), ("X", "Y", "1"), ("OCPPCommCtrlr", "Y", "1"),
        ("OCPPCommCtrlr", "HeartbeatInterval", "1", "MinSet"))}
    assert put == {ACCEPTED, REJECTED, REBOOT_REQUIRED, UNKNOWN_COMPONENT, UNKNOWN_VARIABLE,
                   NOT_SUPPORTED_ATTRIBUTE_TYPE}


# Bound to the neutral settings, both ways

def test_set_variables_changes_the_neutral_setting_and_its_listeners_hear_it():
    settings = Settings(station_settings())
    heard, dm_heard = [], []
    settings.on_change(lambda name, value: heard.append((name, value)))
    dm = _model(settings=settings)
    dm.on_change(lambda key, value: dm_heard.append((key, value)))
    r = _set(dm, ("OCPPCommCtrlr", "HeartbeatInterval", "120"),
             ("SampledDataCtrlr", "TxUpdatedMeasurands", "Energy.Active.Import.Register,Current.Import"),
             ("OCPPCommCtrlr", {"name": "MessageAttempts", "instance": "TransactionEvent"}, "5"),
             ("TxCtrlr", "StopTxOnInvalidId", "false"))
    assert {x["attributeStatus"] for x in r} == {ACCEPTED}
    assert heard == [("heartbeat_interval_s", 120),
                     ("sampled_measurands", ["Energy.Active.Import.Register", "Current.Import"]),
                     ("tx_message_attempts", 5), ("stop_on_invalid_id", False)]
    assert ("OCPPCommCtrlr.HeartbeatInterval", 120) in dm_heard
    assert ("OCPPCommCtrlr.MessageAttempts[TransactionEvent]", 5) in dm_heard


def test_a_setting_changed_elsewhere_shows_in_get_variables():
    dm = _model()
    heard = []
    dm.on_change(lambda key, value: heard.append(key))
    dm.settings.set("sample_interval_s", 15)  # e.g. by the CLI or OCPP 1.6's ChangeConfiguration
    dm.settings.set("local_list_max_entries", 500)
    r = _get(dm, ("SampledDataCtrlr", "TxUpdatedInterval"), ("SampledDataCtrlr", "TxEndedInterval"))
    assert [x["attributeValue"] for x in r] == ["15", "15"]
    assert sorted(heard) == ["SampledDataCtrlr.TxEndedInterval", "SampledDataCtrlr.TxUpdatedInterval"]
    [d] = dm.report([{"component": {"name": "LocalAuthListCtrlr"}, "variable": {"name": "Entries"}}])
    assert d["variableCharacteristics"]["maxLimit"] == 500
    # TxEndedInterval follows TxUpdatedInterval (1.6 has one interval) until written itself.
    assert _set(dm, ("SampledDataCtrlr", "TxEndedInterval", "10"))[0]["attributeStatus"] == ACCEPTED
    dm.settings.set("sample_interval_s", 20)
    r = _get(dm, ("SampledDataCtrlr", "TxUpdatedInterval"), ("SampledDataCtrlr", "TxEndedInterval"))
    assert [x["attributeValue"] for x in r] == ["20", "10"]


def test_rate_units_and_limits_come_from_the_smart_charging_settings():
    settings = Settings(station_settings(), initial={"profile_rate_units": ["A"], "profile_max_installed": 4})
    dm = _model(settings=settings)
    [d] = dm.report([{"component": {"name": "SmartChargingCtrlr"},
                      "variable": {"name": "Entries", "instance": "ChargingProfiles"}}])
    assert d["variableCharacteristics"]["maxLimit"] == 4
    [r] = _get(dm, ("SmartChargingCtrlr", "RateUnit"))
    assert r["attributeValue"] == "A"


# Persistence and initial values

def test_device_model_values_persist_in_the_data_dir(tmp_path):
    settings_path = str(tmp_path / "settings.json")
    dm = _model(settings=Settings(station_settings(), settings_path), data_dir=str(tmp_path))
    _set(dm, ("OCPPCommCtrlr", "OfflineThreshold", "120"), ("TxCtrlr", "TxStopPoint", "Authorized"),
         ("OCPPCommCtrlr", "HeartbeatInterval", "90"))
    path = tmp_path / "device-model.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = _model(settings=Settings(station_settings(), settings_path), data_dir=str(tmp_path),
                   initial={"OCPPCommCtrlr.OfflineThreshold": 30})  # the stored value wins
    r = _get(again, ("OCPPCommCtrlr", "OfflineThreshold"), ("TxCtrlr", "TxStopPoint"),
             ("OCPPCommCtrlr", "HeartbeatInterval"))
    assert [x["attributeValue"] for x in r] == ["120", "Authorized", "90"]
    assert "OCPPCommCtrlr.HeartbeatInterval" not in path.read_text()  # that one lives in settings.json


def test_a_corrupt_or_foreign_stored_value_is_ignored(tmp_path):
    (tmp_path / "device-model.json").write_text('{"OCPPCommCtrlr.OfflineThreshold": "abc", "Nope.Nope": "1"}')
    assert _model(data_dir=str(tmp_path)).get("OCPPCommCtrlr.OfflineThreshold") == 60


def test_initial_values_from_the_configuration():
    settings = Settings(station_settings())
    dm = _model(settings=settings, initial={"OCPPCommCtrlr.HeartbeatInterval": 600,
                                            "TxCtrlr.TxStartPoint": ["EVConnected"],
                                            "OCPPCommCtrlr.MessageAttempts[TransactionEvent]": "4",
                                            "DeviceDataCtrlr.ItemsPerMessage[GetReport]": 20})
    assert settings.get("heartbeat_interval_s") == 600 and settings.get("tx_message_attempts") == 4
    assert dm.get("TxCtrlr.TxStartPoint") == ["EVConnected"]
    assert dm.get("DeviceDataCtrlr.ItemsPerMessage[GetReport]") == 20
    for initial, problem in [({"OCPPCommCtrlr.Nope": 1}, "unknown variable"),
                             ({"OCPPCommCtrlr.MessageAttempts": 1}, "unknown variable"),  # its instance
                             ({"OCPPCommCtrlr.HeartbeatInterval": "soon"}, "invalid value"),
                             ({"OCPPCommCtrlr.HeartbeatInterval": -5}, "invalid value"),
                             ({"TxCtrlr.TxStartPoint": ["DataSigned"]}, "invalid value"),
                             ({"EVSE@1.Power": 1}, "unknown variable"),
                             ({"ClockCtrlr.DateTime": "2026-01-01T00:00:00Z"}, "not configurable")]:
        with pytest.raises(DeviceModelError, match=problem):
            _model(initial=initial)


# Reports (B07, B08) and NotifyReport

def test_tc_b_12_configuration_inventory_holds_the_writable_variables():
    dm = _model()
    data = [d for m in _notify(dm, dm.base_report("ConfigurationInventory")) for d in m["reportData"]]
    assert data and all(d["variableCharacteristics"] for d in data)
    assert {a["mutability"] for d in data for a in d["variableAttribute"]} <= {"ReadWrite", "WriteOnly"}
    names = {(d["component"]["name"], d["variable"]["name"]) for d in data}
    assert {("OCPPCommCtrlr", "OfflineThreshold"), ("TxCtrlr", "TxStartPoint"),
            ("AuthCtrlr", "AuthorizeRemoteStart")} <= names
    password = [d for d in data if d["variable"]["name"] == "BasicAuthPassword"]
    assert password and "value" not in password[0]["variableAttribute"][0]


def test_tc_b_13_full_inventory_reports_everything_in_order():
    dm = _model()
    messages = _notify(dm, dm.base_report("FullInventory"))
    assert [m["seqNo"] for m in messages] == list(range(len(messages)))
    assert sum(len(m["reportData"]) for m in messages) == len(dm.variables())


def test_tc_b_14_summary_inventory_reports_availability():
    dm = _model(connectors=2)
    dm.attach("EVSE", "AvailabilityState", read=lambda comp: "Unavailable" if comp.evse == 2 else "Available")
    data = _notify(dm, dm.base_report("SummaryInventory"))[0]["reportData"]
    states = {(d["component"]["name"], (d["component"].get("evse") or {}).get("id")): d["variableAttribute"][0]["value"]
              for d in data if d["variable"]["name"] == "AvailabilityState"}
    assert states == {("ChargingStation", None): "Available", ("EVSE", 1): "Available", ("EVSE", 2): "Unavailable",
                      ("Connector", 1): "Available", ("Connector", 2): "Available"}
    with pytest.raises(ValueError):
        dm.base_report("NoSuchBase")


def test_tc_b_16_custom_report_with_component_criteria():
    dm = _model()
    dm.settings.set("auth_cache_enabled", False)
    data = [d for m in _notify(dm, dm.report(criteria=["Enabled"])) for d in m["reportData"]]
    assert data and all(d["variable"]["name"] == "Enabled" and d["variableAttribute"][0]["value"] == "true"
                        for d in data)
    full = dm.base_report("FullInventory")
    enabled = {d["component"]["name"] for d in full
               if d["variable"]["name"] == "Enabled" and d["variableAttribute"][0]["value"] == "true"}
    assert {d["component"]["name"] for d in data} == enabled and "AuthCacheCtrlr" not in enabled


def test_tc_b_17_custom_report_with_component_variable():
    dm = _model()
    [d] = dm.report([{"component": {"name": "EVSE", "evse": {"id": 1}}, "variable": {"name": "AvailabilityState"}}])
    _notify(dm, [d])
    assert d["component"] == {"name": "EVSE", "evse": {"id": 1}}
    assert d["variableCharacteristics"]["dataType"] == "OptionList"
    assert d["variableCharacteristics"]["valuesList"] == "Available,Occupied,Reserved,Unavailable,Faulted"
    assert [(a["type"], a["mutability"]) for a in d["variableAttribute"]] == [("Actual", "ReadOnly")]


def test_tc_b_18_custom_report_with_criteria_and_component_variable():
    dm = _model()
    cv = [{"component": {"name": "EVSE", "evse": {"id": 1}}, "variable": {"name": "AvailabilityState"}}]
    [d] = dm.report(cv, criteria=["Available"])
    assert d["variable"]["name"] == "AvailabilityState"
    assert dm.report(cv, criteria=["Problem"]) == []  # the adapter answers EmptyResultSet
    with pytest.raises(ValueError):
        dm.report(cv, criteria=["Broken"])  # TC_B_19: NotSupported


def test_tc_b_54_55_custom_report_with_and_without_variable_instance():
    dm = _model()
    every = dm.report([{"component": {"name": "DeviceDataCtrlr"}, "variable": {"name": "ItemsPerMessage"}}])
    assert [d["variable"].get("instance") for d in every] == ["GetReport", "GetVariables", "SetVariables"]
    one = dm.report([{"component": {"name": "DeviceDataCtrlr"},
                      "variable": {"name": "ItemsPerMessage", "instance": "GetReport"}}])
    assert [d["variable"] for d in one] == [{"name": "ItemsPerMessage", "instance": "GetReport"}]


def test_tc_b_56_custom_report_without_evse_id_covers_every_evse():
    dm = _model(connectors=3)
    data = dm.report([{"component": {"name": "EVSE"}, "variable": {"name": "AvailabilityState"}}])
    assert [d["component"]["evse"]["id"] for d in data] == [1, 2, 3]
    whole = dm.report([{"component": {"name": "Connector", "evse": {"id": 2}}}])  # every variable of it
    assert {d["variable"]["name"] for d in whole} == {"AvailabilityState", "Available", "ConnectorType",
                                                      "SupplyPhases"}


def test_report_is_split_by_items_per_message():
    dm = _model()
    data = dm.report([{"component": {"name": "TxCtrlr"}}])
    assert len(data) == 6
    messages = _notify(dm, data, items_per_message=2)
    assert [m["seqNo"] for m in messages] == [0, 1, 2]
    assert [m["tbc"] for m in messages] == [True, True, False]
    assert [d for m in messages for d in m["reportData"]] == data
    assert {m["requestId"] for m in messages} == {7}


def test_report_is_split_by_bytes_per_message():
    import json
    dm = _model(connectors=4)
    data = dm.base_report("FullInventory")
    messages = _notify(dm, data, bytes_per_message=2048)
    assert len(messages) > 3 and [d for m in messages for d in m["reportData"]] == data
    for m in messages:
        frame = json.dumps([2, "0b7e4c38-7a0b-4b26-9c3f-6a8b0f1e2d3c", "NotifyReport", m], separators=(",", ":"))
        assert len(frame.encode()) <= 2048
    assert messages[-1]["tbc"] is False and all(m["tbc"] for m in messages[:-1])


def test_default_split_uses_the_device_data_controller_and_nothing_is_sent_for_no_data():
    dm = _model(initial={"DeviceDataCtrlr.ItemsPerMessage[GetReport]": 10})
    messages = _notify(dm, dm.base_report("FullInventory"))
    assert all(len(m["reportData"]) <= 10 for m in messages) and len(messages) >= 7
    assert dm.notify_report_messages(1, []) == []
