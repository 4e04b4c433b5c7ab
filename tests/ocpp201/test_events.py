"""The 2.0.1 vocabulary and the rendering of the core's transaction events, statuses and
faults (agent/ocpp201/vocabulary.py, agent/ocpp201/events.py).

Every payload is checked against the ``ocpp`` library's 2.0.1 JSON schema of its message
(and its dateTimes against ISO 8601 UTC, which the library's validator leaves unchecked),
and survives the library's call dataclass and serialization unchanged. Tests named after
an OCTT case check what that case's tool validations check in the message.
"""

import pathlib
import re

import ocpp.messages
import pytest
from ocpp.charge_point import remove_nones, serialize_as_dict, snake_to_camel_case
from ocpp.v201 import enums

from agent.core import model
from agent.core.auth import DIFFERENTIAL, FULL, UPDATE_FAILED, UPDATE_VERSION_MISMATCH
from agent.core.outbox import METER, START, STOP, UPDATE, OutboxEntry
from agent.core.settings import MEASURANDS
from agent.core.smart_charging import UNKNOWN
from agent.ocpp201 import events
from agent.ocpp201 import vocabulary as words
from hal.interfaces import ERROR_CODES, NO_ERROR

T0 = 1_718_000_000.0  # 2024-06-10T06:13:20Z
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$")
TIME_KEYS = ("timestamp", "generatedAt", "cacheExpiryDateTime")


def values(enum) -> set:
    return {str(m.value) for m in enum}


def _times(data):
    if isinstance(data, dict):
        for k, v in data.items():
            if k in TIME_KEYS:
                yield v
            else:
                yield from _times(v)
    elif isinstance(data, list):
        for v in data:
            yield from _times(v)


def check(action: str, payload: dict, response: bool = False) -> dict:
    """``payload`` is valid for ``action`` (a request unless ``response``), its dateTimes
    are UTC, and a request goes through the library's dataclass unchanged."""
    ocpp.messages.get_validator(3 if response else 2, action, "2.0.1").validate(payload)
    for t in _times(payload):
        assert ISO_UTC.match(t), t
    if not response:
        assert remove_nones(snake_to_camel_case(serialize_as_dict(events.call(action, payload)))) == payload
    return payload


# ---------------------------------------------------------------- the core's words, introspected
MODEL_SOURCE = pathlib.Path(model.__file__).read_text()


def model_section(title: str) -> set:
    """The values of the constants in model.py under the comment ``# <title>`` (up to the next blank line)."""
    out, inside = set(), False
    for line in MODEL_SOURCE.splitlines():
        if line.startswith("#"):
            inside = line.lstrip("# ").startswith(title)
        elif not line.strip():
            inside = False
        elif inside:
            m = re.match(r'^([A-Z_]+) = "([a-z_]+)"', line)
            if m:
                out.add(m.group(2))
    return out


def model_words(prefix: str) -> set:
    return {v for k, v in vars(model).items() if k.startswith(prefix) and isinstance(v, str)}


CONNECTOR_STATES = model_section("Connector states")
STOP_REASONS = model_words("REASON_")
AUTH_OUTCOMES = model_words("AUTH_")
ANSWER_WORDS = model_section("Answers to requests")
FAULT_WORDS = set(ERROR_CODES) - {NO_ERROR}


def test_the_core_words_are_found():
    assert len(CONNECTOR_STATES) == 9 and model.FINISHING in CONNECTOR_STATES
    assert len(STOP_REASONS) == 14 and model.REASON_MASTER_PASS in STOP_REASONS and len(AUTH_OUTCOMES) == 5
    assert {model.UNLOCK_FAILED, model.SCHEDULED, model.NOT_SUPPORTED} <= ANSWER_WORDS


def test_connector_states_map_to_connector_status_and_charging_state():
    assert set(words.CONNECTOR_STATUS) == CONNECTOR_STATES
    assert set(words.CHARGING_STATE_WITH_EV) == CONNECTOR_STATES
    assert set(words.CONNECTOR_STATUS.values()) == values(enums.ConnectorStatusEnumType)
    assert set(words.CHARGING_STATE_WITH_EV.values()) | {words.IDLE} == values(enums.ChargingStateEnumType)
    for state in CONNECTOR_STATES:
        assert words.connector_status(state, False) in values(enums.ConnectorStatusEnumType)
        assert words.charging_state(state, False) == "Idle"


def test_stop_reasons_map_to_a_reason_and_a_trigger():
    assert set(words.STOPPED_REASON) == STOP_REASONS == set(words.STOP_TRIGGER)
    assert set(words.STOPPED_REASON.values()) <= values(enums.ReasonEnumType)
    assert set(words.STOP_TRIGGER.values()) <= set(words.TRIGGER_REASON)


def test_trigger_words_are_one_to_one_with_the_2_0_1_trigger_reasons():
    assert set(words.TRIGGER_REASON.values()) == values(enums.TriggerReasonEnumType)
    assert len(words.TRIGGER_REASON) == len(values(enums.TriggerReasonEnumType))
    assert words.TRIGGER_REASON["ev_communication_lost"] == "EVCommunicationLost"
    assert set(words.METER_TRIGGER) <= values(enums.ReadingContextEnumType)
    assert set(words.METER_TRIGGER.values()) <= set(words.TRIGGER_REASON)


def test_authorization_statuses_both_ways():
    assert set(words.AUTHORIZATION_STATUS) == AUTH_OUTCOMES
    assert set(words.AUTHORIZATION_FROM_201) == values(enums.AuthorizationStatusEnumType)
    assert set(words.AUTHORIZATION_FROM_201.values()) == AUTH_OUTCOMES
    for word, status in words.AUTHORIZATION_STATUS.items():
        assert words.AUTHORIZATION_FROM_201[status] == word


def test_token_kinds_are_the_2_0_1_id_token_types():
    assert set(words.TOKEN_KINDS.values()) == values(enums.IdTokenEnumType)
    assert words.TOKEN_KIND_FROM_201["ISO15693"] == "iso15693"


ANSWER_ENUMS = {
    "ChangeAvailability": enums.ChangeAvailabilityStatusEnumType,
    "Reset": enums.ResetStatusEnumType,
    "RequestStartTransaction": enums.RequestStartStopStatusEnumType,
    "RequestStopTransaction": enums.RequestStartStopStatusEnumType,
    "UnlockConnector": enums.UnlockStatusEnumType,
    "SendLocalList": enums.SendLocalListStatusEnumType,
    "SetChargingProfile": enums.ChargingProfileStatusEnumType,
    "ClearChargingProfile": enums.ClearChargingProfileStatusEnumType,
    "GetCompositeSchedule": enums.GenericStatusEnumType,
    "ClearCache": enums.ClearCacheStatusEnumType,
    "TriggerMessage": enums.TriggerMessageStatusEnumType,
}


def test_answers_are_members_of_each_response_status():
    assert set(words.ANSWERS) == set(ANSWER_ENUMS)
    for action, table in words.ANSWERS.items():
        assert set(table.values()) <= values(ANSWER_ENUMS[action]), action
        check(action, {"status": words.answer(action, model.ACCEPTED if model.ACCEPTED in table else model.UNLOCKED)},
              response=True)
    used = set().union(*(set(t) for t in words.ANSWERS.values()))
    assert ANSWER_WORDS <= used  # every answer of the core has a 2.0.1 status somewhere
    assert {UPDATE_FAILED, UPDATE_VERSION_MISMATCH, UNKNOWN} <= used
    assert words.answer("UnlockConnector", model.UNLOCK_FAILED) == "UnlockFailed"
    assert words.answer("TriggerMessage", model.NOT_SUPPORTED) == "NotImplemented"
    assert words.answer("ChangeAvailability", model.SCHEDULED) == "Scheduled"


def test_request_words_are_read_into_the_core_words():
    assert set(words.OPERATIONAL_STATUS) == values(enums.OperationalStatusEnumType)
    assert set(words.OPERATIONAL_STATUS.values()) == {model.OPERATIVE, model.INOPERATIVE}
    assert set(words.RESET_TYPE) == values(enums.ResetEnumType)
    assert set(words.RESET_TYPE.values()) == model_section("Restarting")
    assert set(words.UPDATE_TYPE) == values(enums.UpdateEnumType)
    assert set(words.UPDATE_TYPE.values()) == {FULL, DIFFERENTIAL}


def test_every_fault_word_has_a_standardized_component_and_variable():
    assert set(words.FAULTS) == FAULT_WORDS
    for word, (component, variable) in words.FAULTS.items():
        assert component in values(enums.PhysicalComponentName), word
        assert variable in values(getattr(enums, component + "VariableName")), word
    assert words.fault_component("other_error", None) == ("ChargingStation", "Problem")
    assert words.fault_component("other_error", 1) == ("EVSE", "Problem")
    with pytest.raises(ValueError):
        words.fault_component(NO_ERROR, 1)


def test_the_core_sample_words_are_2_0_1_words():
    assert set(MEASURANDS) <= values(enums.MeasurandEnumType)
    assert {"Sample.Periodic", "Sample.Clock", "Trigger", "Transaction.Begin", "Transaction.End"} <= values(
        enums.ReadingContextEnumType)
    assert {"L1", "L2", "L3", "L1-N", "L2-N", "L3-N"} <= values(enums.PhaseEnumType)
    assert model.Sample("Voltage", 230.0, "V").location in values(enums.LocationEnumType)


# ---------------------------------------------------------------- a transaction, as the core builds it
def periodic(t: float, energy_wh: float, context: str = "Sample.Periodic") -> model.MeterSample:
    return model.MeterSample(t, [
        model.Sample("Energy.Active.Import.Register", energy_wh, "Wh", context=context),
        model.Sample("Power.Active.Import", 11040.0, "W", context=context),
        *(model.Sample("Current.Import", 16.0, "A", phase=p, context=context) for p in ("L1", "L2", "L3")),
        model.Sample("Voltage", 230.1, "V", phase="L1-N", context=context),
        model.Sample("Frequency", 50.0, None, context=context),
        model.Sample("Current.Offered", 16.0, "A", context=context),
    ])


def started_transaction(tag: str = "04A1B2C3D4E5F6") -> model.Transaction:
    """Like Sessions._begin_transaction: the journal's next id, the meter register, the begin sample kept."""
    tx = model.Transaction(7, 1, tag, 1000, T0)
    tx.stop_data.append(model.MeterSample(T0, [model.Sample("Energy.Active.Import.Register", 1000.0, "Wh",
                                                             context="Transaction.Begin")]))
    return tx


def stop(tx: model.Transaction, reason: str, id_tag: str | None = None, at: float = T0 + 3600) -> None:
    """Like Sessions._end_transaction."""
    tx.stop_time, tx.meter_stop_wh, tx.stop_reason, tx.stop_id_tag = at, 12040, reason, id_tag
    tx.stop_data.append(model.MeterSample(at, [model.Sample("Energy.Active.Import.Register", 12040.0, "Wh",
                                                             context="Transaction.End")]))


def test_started_updated_ended_share_the_transaction_id_with_seq_no_0_1_2():
    tx = started_transaction()
    meter = OutboxEntry(METER, tx, 1, [periodic(T0 + 60, 1184.0)])
    first = events.entry_event(OutboxEntry(START, tx, 1), 0, offline=True)
    second = events.entry_event(meter, 1, offline=True)
    stop(tx, model.REASON_LOCAL, id_tag=tx.id_tag)
    third = events.entry_event(OutboxEntry(STOP, tx, 1), 2, offline=False, number_of_phases=3)
    for payload in (first, second, third):
        check("TransactionEvent", payload)
        assert payload["transactionInfo"]["transactionId"] == tx.id == "1718000000-7"
        assert payload["evse"] == {"id": 1, "connectorId": 1}
    assert [p["eventType"] for p in (first, second, third)] == ["Started", "Updated", "Ended"]
    assert [p["seqNo"] for p in (first, second, third)] == [0, 1, 2]
    assert [p["offline"] for p in (first, second, third)] == [True, True, False]
    assert first["timestamp"] == "2024-06-10T06:13:20.000Z" and third["timestamp"] == "2024-06-10T07:13:20.000Z"
    assert first["transactionInfo"]["chargingState"] == "EVConnected"
    assert first["meterValue"] == [{"timestamp": "2024-06-10T06:13:20.000Z", "sampledValue": [
        {"value": 1000, "context": "Transaction.Begin", "measurand": "Energy.Active.Import.Register",
         "location": "Outlet", "unitOfMeasure": {"unit": "Wh"}}]}]
    assert "stoppedReason" not in first["transactionInfo"] and "stoppedReason" not in second["transactionInfo"]
    assert second["triggerReason"] == "MeterValuePeriodic"
    sampled = second["meterValue"][0]["sampledValue"]
    assert [s.get("phase") for s in sampled if s["measurand"] == "Current.Import"] == ["L1", "L2", "L3"]
    assert [s["unitOfMeasure"] for s in sampled if s["measurand"] == "Frequency"] == [{"unit": "Hz"}]
    assert all(isinstance(s["value"], float) for s in sampled)
    assert third["transactionInfo"]["stoppedReason"] == "Local"
    assert third["numberOfPhasesUsed"] == 3
    contexts = [v["sampledValue"][0]["context"] for v in third["meterValue"]]
    assert contexts == ["Transaction.Begin", "Transaction.End"]


def test_a_journaled_transaction_renders_the_same():
    tx = started_transaction()
    stop(tx, model.REASON_REMOTE)
    again = model.transaction_from_dict(model.transaction_to_dict(tx))
    assert (events.entry_event(OutboxEntry(STOP, again, 1), 5)
            == events.entry_event(OutboxEntry(STOP, tx, 1), 5))


def test_the_end_register_is_added_when_the_core_kept_none():
    tx = started_transaction()
    tx.stop_data = []  # sampled_end_measurands empty: nothing kept for the end
    tx.stop_time, tx.meter_stop_wh, tx.stop_reason = T0 + 10, 1010, model.REASON_OTHER
    payload = check("TransactionEvent", events.entry_event(OutboxEntry(STOP, tx, 1), 1))
    assert payload["meterValue"][0]["sampledValue"][0]["value"] == 1010
    assert payload["meterValue"][0]["sampledValue"][0]["context"] == "Transaction.End"
    assert payload["transactionInfo"]["stoppedReason"] == "Other"
    assert payload["triggerReason"] == "AbnormalCondition"


def test_clock_aligned_values_are_meter_value_clock():
    tx = started_transaction()
    entry = OutboxEntry(METER, tx, 1, [periodic(T0 + 900, 2000.0, context="Sample.Clock")])
    payload = check("TransactionEvent", events.entry_event(entry, 3))
    assert payload["triggerReason"] == "MeterValueClock"
    assert payload["timestamp"] == "2024-06-10T06:28:20.000Z"


# ---------------------------------------------------------------- OCTT block E: TransactionEvent content
def test_tc_e_09_started_on_cable_plug_in_is_ev_connected():
    tx = started_transaction()
    payload = check("TransactionEvent", events.transaction_event(
        START, tx, 1, 0, T0, "cable_plugged_in", charging_state=model.PREPARING, ev_connected=True))
    assert payload["eventType"] == "Started" and payload["triggerReason"] == "CablePluggedIn"
    assert payload["evse"]["connectorId"] == 1
    assert payload["transactionInfo"]["chargingState"] == "EVConnected"


def test_tc_e_10_started_by_local_authorization_carries_the_token():
    tx = started_transaction()
    payload = check("TransactionEvent", events.entry_event(OutboxEntry(START, tx, 1), 0))
    assert payload["eventType"] == "Started" and payload["triggerReason"] == "Authorized"
    assert payload["idToken"] == {"idToken": "04A1B2C3D4E5F6", "type": "ISO14443"}


def test_tc_e_13_started_by_a_remote_start_has_its_id():
    tx = started_transaction("REMOTE-TOKEN-1")
    payload = check("TransactionEvent", events.entry_event(OutboxEntry(START, tx, 1), 0, remote_start_id=4711,
                                                           token_kind="central"))
    assert payload["triggerReason"] == "RemoteStart"
    assert payload["transactionInfo"]["remoteStartId"] == 4711
    assert payload["idToken"] == {"idToken": "REMOTE-TOKEN-1", "type": "Central"}


@pytest.mark.parametrize("state, expected", [(model.CHARGING, "Charging"), (model.SUSPENDED_EV, "SuspendedEV"),
                                             (model.SUSPENDED_EVSE, "SuspendedEVSE")])
def test_tc_e_38_and_energy_transfer_updates_are_charging_state_changed(state, expected):
    tx = started_transaction()
    payload = check("TransactionEvent", events.transaction_event(
        words.UPDATE, tx, 1, 1, T0 + 5, words.CHARGING_STATE_CHANGED, charging_state=state))
    assert payload["eventType"] == "Updated" and payload["triggerReason"] == "ChargingStateChanged"
    assert payload["transactionInfo"]["chargingState"] == expected
    assert "meterValue" not in payload and "idToken" not in payload


def test_every_update_cause_has_a_trigger_reason():
    assert set(events.UPDATE_TRIGGER) == model_words("CAUSE_")
    assert set(events.UPDATE_TRIGGER.values()) <= set(words.TRIGGER_REASON)


@pytest.mark.parametrize("case, cause, state, ev, trigger, expected", [
    ("TC_E_11", model.CAUSE_CHARGING_STATE, model.CHARGING, True, "ChargingStateChanged", "Charging"),
    ("TC_E_38", model.CAUSE_CHARGING_STATE, model.SUSPENDED_EV, True, "ChargingStateChanged", "SuspendedEV"),
    ("TC_E_41", model.CAUSE_CHARGING_STATE, model.SUSPENDED_EVSE, True, "ChargingStateChanged", "SuspendedEVSE"),
    ("TC_E_26 step 1", model.CAUSE_EV_DEPARTED, model.SUSPENDED_EVSE, False, "EVCommunicationLost", "Idle"),
    ("TC_E_26 step 5", model.CAUSE_CABLE_PLUGGED_IN, model.PREPARING, True, "CablePluggedIn", "EVConnected"),
])
def test_update_entries_render_their_cause_and_state(case, cause, state, ev, trigger, expected):
    tx = started_transaction()
    entry = OutboxEntry(UPDATE, tx, 1, cause=cause, state=state, ev_connected=ev, time=T0 + 42)
    payload = check("TransactionEvent", events.entry_event(entry, 3, offline=True))
    assert (payload["eventType"], payload["triggerReason"], payload["seqNo"], payload["offline"]) == (
        "Updated", trigger, 3, True)
    assert payload["transactionInfo"] == {"transactionId": tx.id, "chargingState": expected}
    assert payload["timestamp"] == "2024-06-10T06:14:02.000Z"
    assert "meterValue" not in payload and "idToken" not in payload


def test_an_update_with_words_of_a_later_release_still_renders():
    tx = started_transaction()
    entry = OutboxEntry(UPDATE, tx, 1, cause="something_new", state="something_else", time=T0)
    payload = check("TransactionEvent", events.entry_event(entry, 1))
    assert payload["triggerReason"] == "ChargingStateChanged" and "chargingState" not in payload["transactionInfo"]


@pytest.mark.parametrize("case", ["TC_E_14", "TC_E_20", "TC_E_17"])
def test_tc_e_14_20_ended_when_the_ev_left(case):
    tx = started_transaction()
    stop(tx, model.REASON_EV_DISCONNECTED)
    payload = check("TransactionEvent", events.entry_event(OutboxEntry(STOP, tx, 1), 4))
    assert payload["eventType"] == "Ended"
    assert payload["triggerReason"] == "EVCommunicationLost"
    assert payload["transactionInfo"]["chargingState"] == "Idle"
    assert payload["transactionInfo"]["stoppedReason"] == "EVDisconnected"
    assert "idToken" not in payload


def test_tc_e_15_local_stop_is_stop_authorized_local_with_the_token():
    tx = started_transaction()
    stop(tx, model.REASON_LOCAL, id_tag="04A1B2C3D4E5F6")
    payload = check("TransactionEvent", events.entry_event(OutboxEntry(STOP, tx, 1), 2))
    assert (payload["eventType"], payload["triggerReason"], payload["transactionInfo"]["stoppedReason"]) == (
        "Ended", "StopAuthorized", "Local")
    assert payload["idToken"]["idToken"] == "04A1B2C3D4E5F6"  # errata 2.20, figure 56


def test_tc_e_16_queued_offline_events_then_deauthorized():
    tx = started_transaction()
    start = check("TransactionEvent", events.entry_event(OutboxEntry(START, tx, 1), 0, offline=True))
    assert start["offline"] is True
    stop(tx, model.REASON_DEAUTHORIZED)
    end = check("TransactionEvent", events.entry_event(OutboxEntry(STOP, tx, 1), 1))
    assert (end["eventType"], end["triggerReason"], end["transactionInfo"]["stoppedReason"]) == (
        "Ended", "Deauthorized", "DeAuthorized")


@pytest.mark.parametrize("case", ["TC_E_21", "TC_E_35"])
def test_tc_e_21_remote_stop(case):
    tx = started_transaction()
    stop(tx, model.REASON_REMOTE)
    payload = check("TransactionEvent", events.entry_event(OutboxEntry(STOP, tx, 1), 2))
    assert (payload["eventType"], payload["triggerReason"], payload["transactionInfo"]["stoppedReason"]) == (
        "Ended", "RemoteStop", "Remote")


@pytest.mark.parametrize("reason", [model.REASON_HARD_RESET, model.REASON_SOFT_RESET])
def test_b12_fr_04_reset_ends_with_reset_command_immediate_reset(reason):
    tx = started_transaction()
    stop(tx, reason)
    payload = check("TransactionEvent", events.entry_event(OutboxEntry(STOP, tx, 1), 2))
    assert (payload["triggerReason"], payload["transactionInfo"]["stoppedReason"]) == ("ResetCommand", "ImmediateReset")


@pytest.mark.parametrize("reason", sorted(STOP_REASONS))
def test_every_stop_reason_renders_a_valid_ended_event(reason):
    tx = started_transaction()
    stop(tx, reason)
    payload = check("TransactionEvent", events.entry_event(OutboxEntry(STOP, tx, 1), 1))
    assert payload["transactionInfo"]["stoppedReason"] == words.STOPPED_REASON[reason]


def test_a_reserved_transaction_names_its_reservation_when_started():
    tx = model.Transaction(8, 2, "AABBCCDD", 0, T0, reservation_id=12)
    payload = check("TransactionEvent", events.entry_event(OutboxEntry(START, tx, 2), 0))
    assert payload["reservationId"] == 12 and payload["evse"] == {"id": 2, "connectorId": 1}


# ---------------------------------------------------------------- OCTT block G: statuses and events
def test_tc_g_01_available_to_occupied():
    status = check("StatusNotification", events.status_notification(1, model.PREPARING, T0))
    assert status == {"timestamp": "2024-06-10T06:13:20.000Z", "connectorStatus": "Occupied", "evseId": 1,
                      "connectorId": 1}
    event = check("NotifyEvent", events.availability_event(model.PREPARING, 17, T0, evse_id=1, connector_id=1))
    data = event["eventData"][0]
    assert (data["trigger"], data["actualValue"], data["component"]["name"], data["variable"]["name"]) == (
        "Delta", "Occupied", "Connector", "AvailabilityState")
    assert data["component"]["evse"] == {"id": 1, "connectorId": 1}  # EVDisconnected reusable state


def test_tc_g_02_occupied_to_available():
    for state in (model.AVAILABLE, model.SUSPENDED_EV):  # the transaction may outlive the plug
        status = check("StatusNotification", events.status_notification(1, state, T0, ev_connected=False))
        assert status["connectorStatus"] == "Available"
        event = check("NotifyEvent", events.availability_event(state, 18, T0, evse_id=1, ev_connected=False))
        assert event["eventData"][0]["actualValue"] == "Available"


def test_an_authorization_waiting_for_the_plug_leaves_the_connector_available():
    # errata 6.2.28: no Occupied status after a remote start without an EV
    assert events.status_notification(1, model.PREPARING, T0, ev_connected=False)["connectorStatus"] == "Available"


def test_a_reserved_connector_stays_reserved_with_an_ev():  # errata 2.21, G01.FR.09
    assert events.status_notification(1, model.RESERVED, T0, ev_connected=True)["connectorStatus"] == "Reserved"


@pytest.mark.parametrize("state", sorted(CONNECTOR_STATES))
def test_every_connector_state_renders_valid_status_messages(state):
    check("StatusNotification", events.status_notification(2, state, T0))
    check("NotifyEvent", events.availability_event(state, 1, T0, evse_id=2))
    check("NotifyEvent", events.availability_event(state, 1, T0))


def test_evse_and_station_availability_events():
    evse = events.availability_event(model.UNAVAILABLE, 3, T0, evse_id=1, connector_id=None)["eventData"][0]
    assert evse["component"] == {"name": "EVSE", "evse": {"id": 1}} and evse["actualValue"] == "Unavailable"
    station = events.availability_event(model.UNAVAILABLE, 4, T0, evse_id=None)["eventData"][0]
    assert station["component"] == {"name": "ChargingStation"}


def test_tc_g_20_lock_failure_is_reported_then_cleared():
    problem = check("NotifyEvent", events.notify_event("connector_lock_failure", False, 1, 21, T0))
    data = problem["eventData"][0]
    assert (data["trigger"], data["component"]["name"], data["variable"]["name"], data["actualValue"]) == (
        "Delta", "ConnectorPlugRetentionLock", "Problem", "true")
    assert data["component"]["evse"] == {"id": 1, "connectorId": 1}
    assert data["cleared"] is False and data["techCode"] == "connector_lock_failure"
    assert data["eventNotificationType"] == "HardWiredNotification"
    cleared = check("NotifyEvent", events.notify_event("connector_lock_failure", True, 1, 22, T0 + 30))
    assert (cleared["eventData"][0]["actualValue"], cleared["eventData"][0]["cleared"]) == ("false", True)


@pytest.mark.parametrize("word", sorted(FAULT_WORDS))
def test_every_fault_renders_a_valid_notify_event(word):
    data = check("NotifyEvent", events.notify_event(word, False, 1, 5, T0, tech_info="x" * 600))["eventData"][0]
    assert (data["component"]["name"], data["variable"]["name"]) == words.FAULTS[word]
    assert data["techCode"] == word and len(data["techInfo"]) == 500
    assert ("connectorId" in data["component"]["evse"]) == (data["component"]["name"] in words.CONNECTOR_COMPONENTS)
    check("NotifyEvent", events.notify_event(word, True, None, 6, T0))


def test_a_station_fault_has_no_evse():
    data = events.notify_event("other_error", False, None, 9, T0)["eventData"][0]
    assert data["component"] == {"name": "ChargingStation"} and "techInfo" not in data
    with pytest.raises(ValueError):
        events.notify_event(NO_ERROR, False, 1, 10, T0)


def test_meter_values_outside_a_transaction():
    payload = check("MeterValues", events.meter_values(1, [periodic(T0, 500.0, context="Sample.Clock"),
                                                           model.MeterSample(T0, [])]))
    assert len(payload["meterValue"]) == 1  # a sample without values is left out
    assert payload["meterValue"][0]["sampledValue"][0]["context"] == "Sample.Clock"


# ---------------------------------------------------------------- id tokens and authorization
def test_id_tokens():
    assert events.id_token("04A1B2C3") == {"idToken": "04A1B2C3", "type": "ISO14443"}
    assert events.id_token("E004010012345678", "iso15693")["type"] == "ISO15693"
    assert events.id_token("anything", "no_authorization") == {"idToken": "", "type": "NoAuthorization"}
    check("Authorize", events.authorize_request(events.id_token("04A1B2C3")))


def test_id_token_info_is_read_into_the_core_and_back():
    answer = {"idTokenInfo": {"status": "Accepted", "cacheExpiryDateTime": "2024-07-01T00:00:00.000Z",
                              "groupIdToken": {"idToken": "GROUP-1", "type": "Central"}}}
    check("Authorize", answer, response=True)
    info = events.id_tag_info(answer["idTokenInfo"])
    assert (info.status, info.expiry_date, info.parent_id_tag) == (model.AUTH_ACCEPTED, "2024-07-01T00:00:00.000Z",
                                                                   "GROUP-1")
    assert events.id_token_info(info) == answer["idTokenInfo"]
    # as the ocpp library hands a response over: snake_case keys
    snake = {"status": "Blocked", "cache_expiry_date_time": "2024-07-01T00:00:00Z",
             "group_id_token": {"id_token": "GROUP-2", "type": "Central"}}
    info = events.id_tag_info(snake)
    assert (info.status, info.expiry_date, info.parent_id_tag) == (
        model.AUTH_BLOCKED, "2024-07-01T00:00:00Z", "GROUP-2")
    assert events.id_token_info(info)["cacheExpiryDateTime"] == "2024-07-01T00:00:00.000Z"


@pytest.mark.parametrize("status", sorted(values(enums.AuthorizationStatusEnumType)))
def test_every_2_0_1_authorization_status_is_read(status):
    info = events.id_tag_info({"status": status})
    assert info.status == words.AUTHORIZATION_FROM_201[status]
    assert info.accepted == (status == "Accepted")
    assert info.expiry_date is None and info.parent_id_tag is None
    check("Authorize", {"idTokenInfo": events.id_token_info(info)}, response=True)


def test_a_transaction_event_response_may_carry_id_token_info():
    assert events.transaction_info_answer({}) is None
    answer = {"idTokenInfo": {"status": "Invalid"}}
    check("TransactionEvent", answer, response=True)
    assert events.transaction_info_answer(answer).status == model.AUTH_INVALID
    assert events.transaction_info_answer({"id_token_info": {"status": "Accepted"}}).accepted
