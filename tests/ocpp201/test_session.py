"""The OCPP 2.0.1 adapter over the wire (agent/ocpp201/session.py, client.py,
outbox_sender.py): the agent on the simulated board, pinned to 2.0.1
(``csms.ocpp_version = "2.0.1"``), against the test central system serving only
``ocpp2.0.1``. The central system's ocpp library validates every request the agent
sends, and the harness validates every frame against the 2.0.1 schemas at the end;
no CALLERROR is allowed unless a test asks for one.

Tests named after an OCTT case (spec/OCPP-2.0.1_edition3_part6-testcases.txt)
follow that case's steps and check its tool validations.
"""

import json

import pytest

from agent.app.config import ConfigError, parse_config
from agent.app.runner import Agent
from agent.core import model
from tests.harness import AgentHarness, assert_charging_hw, assert_no_power, epoch, keys, quiet, until
from tests.ocpp201.octt201 import TAG, errors, harness, local_start, received, tx_events, wait_connector
from tools.csms import IN, TestCentralSystem


# ---------------------------------------------------------------------- B: provisioning

async def test_tc_b_01_cold_boot_boot_notification_then_status_of_every_connector(tmp_path):
    async with harness(tmp_path) as h:
        assert h.cs.version == "2.0.1" and h.cs.subprotocol == "ocpp2.0.1"
        boot = received(h, "BootNotification")[0]
        assert boot["reason"] == "PowerUp"
        assert boot["chargingStation"]["model"] and boot["chargingStation"]["vendorName"]
        await wait_connector(h, "Available")
        calls = [m.action for m in h.cs.messages if m.direction == IN and "." not in m.action]
        assert calls[0] == "BootNotification"
        n = len(h.station.connectors)
        statuses = received(h, "StatusNotification")
        assert sorted(p["evseId"] for p in statuses) == list(range(1, n + 1))
        assert all(p["connectorId"] == 1 and p["connectorStatus"] == "Available" for p in statuses)
        assert h.agent.client.online and not errors(h)


async def test_boot_pending_retries_after_the_interval_b02(tmp_path):
    cs = TestCentralSystem(quiet=True, protocols=("ocpp2.0.1",), boot_status="Pending", boot_interval_s=20)
    async with AgentHarness(tmp_path, csms=cs, csms_extra={"ocpp_version": "2.0.1"}, ocpp=keys()) as h:
        await quiet(h)
        assert len(received(h, "BootNotification")) == 1 and not received(h, "StatusNotification")
        cs.boot_status = "Accepted"
        await h.clock.advance(20)
        await h.cs.wait_for("BootNotification", start_index=1)
        await wait_connector(h, "Available")
        assert h.agent.client.online


async def test_heartbeat_at_the_interval_of_the_boot_answer(tmp_path):
    cs = TestCentralSystem(quiet=True, protocols=("ocpp2.0.1",), boot_interval_s=60)
    async with AgentHarness(tmp_path, csms=cs, csms_extra={"ocpp_version": "2.0.1"}, ocpp=keys()) as h:
        await wait_connector(h, "Available")
        assert h.station.settings.get("heartbeat_interval_s") == 60
        await quiet(h)
        assert not received(h, "Heartbeat")
        await h.clock.advance(61)
        await h.cs.wait_for("Heartbeat")
        got = await h.cs.call("GetVariables", getVariableData=[
            {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}])
        assert got["getVariableResult"][0]["attributeValue"] == "60"


async def test_tc_b_06_get_variables_single_value(tmp_path):
    async with harness(tmp_path) as h:
        got = await h.cs.call("GetVariables", getVariableData=[
            {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "OfflineThreshold"}}])
        result = got["getVariableResult"]
        assert len(result) == 1 and result[0]["attributeStatus"] == "Accepted"
        assert result[0]["attributeValue"] == "60"
        assert result[0]["component"] == {"name": "OCPPCommCtrlr"}
        assert result[0]["variable"] == {"name": "OfflineThreshold"}


async def test_tc_b_07_get_variables_multiple_values_and_availability_state_live(tmp_path):
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        req = [{"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "OfflineThreshold"}},
               {"component": {"name": "AuthCtrlr"}, "variable": {"name": "AuthorizeRemoteStart"}},
               {"component": {"name": "EVSE", "evse": {"id": 1}}, "variable": {"name": "AvailabilityState"}},
               {"component": {"name": "NoSuchCtrlr"}, "variable": {"name": "X"}}]
        got = (await h.cs.call("GetVariables", getVariableData=req))["getVariableResult"]
        assert [r["attributeStatus"] for r in got] == ["Accepted", "Accepted", "Accepted", "UnknownComponent"]
        assert got[2]["attributeValue"] == "Available"
        h.sim.plug(1)
        await wait_connector(h, "Occupied")
        got = (await h.cs.call("GetVariables", getVariableData=req[2:3]))["getVariableResult"]
        assert got[0]["attributeValue"] == "Occupied"


async def test_set_variables_over_the_wire_reaches_the_settings_b05(tmp_path):
    async with harness(tmp_path) as h:
        got = await h.cs.call("SetVariables", setVariableData=[
            {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"},
             "attributeValue": "120"},
            {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "OfflineThreshold"},
             "attributeValue": "-5"},
            {"component": {"name": "ChargingStation"}, "variable": {"name": "SupplyPhases"},
             "attributeValue": "1"}])
        assert [r["attributeStatus"] for r in got["setVariableResult"]] == ["Accepted", "Rejected", "Rejected"]
        assert h.station.settings.get("heartbeat_interval_s") == 120
        m = h.mark()
        await h.clock.advance(121)
        await h.cs.wait_for("Heartbeat", start_index=m)


async def test_tc_b_12_get_base_report_configuration_inventory_then_notify_report(tmp_path):
    async with harness(tmp_path) as h:
        m = h.mark()
        assert await h.cs.call("GetBaseReport", requestId=7, reportBase="ConfigurationInventory") == {
            "status": "Accepted"}
        reports = []
        while not reports or reports[-1].get("tbc"):
            reports.append(await h.cs.wait_for("NotifyReport", lambda p: p["seqNo"] == len(reports), start_index=m))
        i_conf = next(i for i in range(m, len(h.cs.messages)) if h.cs.messages[i].action == "GetBaseReport.conf")
        i_report = next(i for i in range(m, len(h.cs.messages)) if h.cs.messages[i].action == "NotifyReport")
        assert i_conf < i_report, "the answer goes before the report"
        assert all(r["requestId"] == 7 for r in reports)
        names = {(d["component"]["name"], d["variable"]["name"]) for r in reports for d in r["reportData"]}
        assert ("OCPPCommCtrlr", "HeartbeatInterval") in names
        assert all(a["mutability"] != "ReadOnly" for r in reports for d in r["reportData"]
                   for a in d["variableAttribute"] if a["type"] == "Actual")


async def test_get_report_empty_result_set_and_unknown_base_not_supported(tmp_path):
    async with harness(tmp_path) as h:
        got = await h.cs.call("GetReport", requestId=1, componentVariable=[{"component": {"name": "NoSuchCtrlr"}}])
        assert got == {"status": "EmptyResultSet"}
        got = await h.cs.call("GetReport", requestId=2, componentVariable=[{"component": {"name": "ClockCtrlr"}}])
        assert got == {"status": "Accepted"}
        report = await h.cs.wait_for("NotifyReport", lambda p: p["requestId"] == 2)
        assert {d["component"]["name"] for d in report["reportData"]} == {"ClockCtrlr"}


async def test_tc_b_20_reset_on_idle_without_transaction_restarts(tmp_path):
    async with harness(tmp_path) as h:
        assert await h.cs.call("Reset", type="OnIdle") == {"status": "Accepted"}
        await until(lambda: h.agent.restart_requested is not None)


async def test_tc_b_21_reset_on_idle_with_a_transaction_is_scheduled_until_it_ends(tmp_path):
    async with harness(tmp_path) as h:
        await local_start(h)
        assert await h.cs.call("Reset", type="OnIdle") == {"status": "Scheduled"}
        await quiet(h)
        await h.clock.advance(30)
        assert h.agent.restart_requested is None and h.station.connector(1).transaction is not None
        m = h.mark()
        h.sim.swipe(TAG)
        ended = await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Ended", start_index=m)
        assert ended["transactionInfo"]["stoppedReason"] == "Local"
        await until(lambda: h.agent.restart_requested is not None, clock=h.clock, step_s=1)


async def test_reset_of_one_evse_is_rejected(tmp_path):
    async with harness(tmp_path) as h:
        assert await h.cs.call("Reset", type="Immediate", evseId=1) == {"status": "Rejected"}
        await quiet(h)
        assert h.agent.restart_requested is None


async def test_change_availability_station_and_evse_g03_g04(tmp_path):
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        m = h.mark()
        assert await h.cs.call("ChangeAvailability", operationalStatus="Inoperative",
                               evse={"id": 1}) == {"status": "Accepted"}
        await wait_connector(h, "Unavailable", start=m)
        assert await h.cs.call("ChangeAvailability", operationalStatus="Operative") == {"status": "Accepted"}
        await wait_connector(h, "Available", start=m)
        assert await h.cs.call("ChangeAvailability", operationalStatus="Inoperative",
                               evse={"id": 1, "connectorId": 2}) == {"status": "Rejected"}
        await local_start(h)
        assert await h.cs.call("ChangeAvailability", operationalStatus="Inoperative",
                               evse={"id": 1}) == {"status": "Scheduled"}


# ---------------------------------------------------------------------- E: transactions

async def test_tc_e_03_local_session_started_updated_ended_tc_e_15(tmp_path):
    """Cable first, badge (ISO14443): Started; Updated ChargingStateChanged (Charging) once
    the EV draws, then periodic Updated with meter values; badge again: Ended, stoppedReason
    Local, triggerReason StopAuthorized; seqNo 0..n."""
    async with harness(tmp_path, ocpp=keys(MeterValueSampleInterval=10)) as h:
        m = h.mark()
        started = await local_start(h)
        assert started["idToken"] == {"idToken": TAG, "type": "ISO14443"}
        assert started["triggerReason"] == "Authorized" and started["seqNo"] == 0 and not started["offline"]
        assert started["evse"] == {"id": 1, "connectorId": 1}
        assert started["meterValue"][0]["sampledValue"][0]["context"] == "Transaction.Begin"
        tx_id = started["transactionInfo"]["transactionId"]
        assert tx_id == h.station.connector(1).transaction.id
        await until(lambda: h.station.connector(1).status == model.CHARGING, clock=h.clock, step_s=1)
        assert_charging_hw(h)
        await until(lambda: any(p["triggerReason"] == "MeterValuePeriodic" for p in tx_events(h, m)),
                    clock=h.clock, step_s=2)
        updated = [p for p in tx_events(h, m) if p["eventType"] == "Updated"]
        assert updated[0]["triggerReason"] == "ChargingStateChanged"
        assert updated[0]["transactionInfo"]["chargingState"] == "Charging"
        assert updated[1]["triggerReason"] == "MeterValuePeriodic" and updated[1]["meterValue"]
        h.sim.swipe(TAG)
        ended = await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Ended", start_index=m)
        assert ended["transactionInfo"]["stoppedReason"] == "Local"
        assert ended["triggerReason"] == "StopAuthorized"
        assert ended["idToken"] == {"idToken": TAG, "type": "ISO14443"}
        evs = tx_events(h, m)
        assert {p["transactionInfo"]["transactionId"] for p in evs} == {tx_id}
        assert [p["seqNo"] for p in evs] == list(range(len(evs)))
        await quiet(h)
        assert_no_power(h)
        h.sim.unplug(1)
        await wait_connector(h, "Available", start=m + 2)
        assert not errors(h)


async def test_tc_e_29_e_30_e_28_get_transaction_status(tmp_path):
    async with harness(tmp_path) as h:
        started = await local_start(h)
        tx_id = started["transactionInfo"]["transactionId"]
        await quiet(h)
        got = await h.cs.call("GetTransactionStatus", transactionId=tx_id)
        assert got == {"messagesInQueue": False, "ongoingIndicator": True}
        assert await h.cs.call("GetTransactionStatus", transactionId="nope") == {
            "messagesInQueue": False, "ongoingIndicator": False}
        assert await h.cs.call("GetTransactionStatus") == {"messagesInQueue": False}


async def test_tc_e_40_offline_events_go_out_after_reconnection_in_order_with_offline_true(tmp_path):
    """Connection lost during a transaction: it is stopped offline; after reconnection
    the queued events go out in order, offline true, seqNo continuing."""
    async with harness(tmp_path) as h:
        started = await local_start(h)
        tx_id = started["transactionInfo"]["transactionId"]
        port = await h.go_offline()
        m = h.mark()
        h.sim.swipe(TAG)  # stopped offline (the tag is in the cache)
        await until(lambda: h.station.connector(1).transaction is None, clock=h.clock, step_s=1)
        assert len(h.station.outbox) >= 1
        await h.go_online(port)
        ended = await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Ended", start_index=m)
        assert ended["offline"] is True and ended["transactionInfo"]["transactionId"] == tx_id
        evs = [p for p in tx_events(h) if p["transactionInfo"]["transactionId"] == tx_id]
        assert [p["seqNo"] for p in evs] == list(range(len(evs)))
        assert len(received(h, "BootNotification")) == 1  # a reconnection is no reboot


async def test_tc_e_41_a_failing_transaction_event_is_retried_then_discarded(tmp_path):
    async with harness(tmp_path, ocpp=keys(TransactionMessageAttempts=2,
                                           TransactionMessageRetryInterval=10)) as h:
        await wait_connector(h, "Available")

        def fail(_p):
            raise RuntimeError("CSMS broken")

        h.cs.handlers["TransactionEvent"] = fail
        m = h.mark()
        h.sim.plug(1)
        h.sim.swipe(TAG)
        await h.cs.wait_for("TransactionEvent", start_index=m)
        await h.clock.advance(11)
        await until(lambda: len(tx_events(h, m)) >= 2)
        await until(lambda: len(h.station.outbox) == 0, clock=h.clock, step_s=5)
        await h.clock.advance(60)
        await quiet(h)
        evs = tx_events(h, m)
        assert [p["eventType"] for p in evs[:2]] == ["Started", "Started"]
        seq_nos = [p["seqNo"] for p in evs]  # each (the Started, then the ChargingStateChanged): twice
        assert all(seq_nos.count(n) == 2 for n in seq_nos) and seq_nos == sorted(seq_nos)


async def state_event(h, trigger: str, state: str, start: int) -> dict:
    return await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Updated"
                               and p["triggerReason"] == trigger
                               and p["transactionInfo"].get("chargingState") == state, start_index=start)


def state_events(h, start: int = 0) -> list:
    """(triggerReason, chargingState) of the Updated events that are not meter values."""
    return [(p["triggerReason"], p["transactionInfo"].get("chargingState")) for p in tx_events(h, start)
            if p["eventType"] == "Updated" and not p["triggerReason"].startswith("MeterValue")]


async def test_tc_e_11_step_5_charging_state_changed_then_suspended_ev_when_the_ev_stops_drawing(tmp_path):
    """After Started (EVConnected), Updated ChargingStateChanged Charging as the EV draws
    (TC_E_11 step 5; the reusable state EnergyTransferStarted), then SuspendedEV when the EV
    stops drawing with current still offered (EnergyTransferSuspended, TC_E_22 with the
    transaction going on). The connector stays Occupied: no StatusNotification for it."""
    async with harness(tmp_path) as h:
        m = h.mark()
        started = await local_start(h)
        assert started["transactionInfo"]["chargingState"] == "EVConnected"
        charging = await state_event(h, "ChargingStateChanged", "Charging", m)
        assert charging["seqNo"] == 1 and charging["offline"] is False
        assert charging["transactionInfo"]["transactionId"] == started["transactionInfo"]["transactionId"]
        assert charging["evse"] == {"id": 1, "connectorId": 1} and "meterValue" not in charging
        m2 = h.mark()
        h.sim.ev_full(1)
        suspended = await state_event(h, "ChargingStateChanged", "SuspendedEV", m2)
        assert suspended["seqNo"] == 2
        assert h.station.connector(1).status == model.SUSPENDED_EV
        await quiet(h)
        assert not received(h, "StatusNotification", m2)  # still Occupied
        h.sim.swipe(TAG)
        ended = await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Ended", start_index=m2)
        assert ended["seqNo"] == 3
        await quiet(h)
        assert state_events(h, m) == [("ChargingStateChanged", "Charging"), ("ChargingStateChanged", "SuspendedEV")]
        assert not errors(h)


async def test_tc_e_38_ev_not_ready_is_charging_state_changed_suspended_ev(tmp_path):
    """Authorization first, then an EV that is not ready to take energy (it stays in B):
    Started, then Updated ChargingStateChanged SuspendedEV; never Charging."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        h.sim.swipe(TAG)
        await h.cs.wait_for("Authorize")
        await quiet(h)
        m = h.mark()
        h.sim.plug(1)
        h.sim.ev_full(1)  # before the station looks: plugged in, not drawing
        started = await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Started", start_index=m)
        assert started["transactionInfo"]["chargingState"] == "EVConnected"
        suspended = await state_event(h, "ChargingStateChanged", "SuspendedEV", m)
        assert suspended["seqNo"] == started["seqNo"] + 1
        await quiet(h)
        assert state_events(h, m) == [("ChargingStateChanged", "SuspendedEV")]
        assert not errors(h)


async def test_tc_e_26_ev_unplugged_the_transaction_goes_on_then_plugged_in_again(tmp_path):
    """StopTxOnEVSideDisconnect false, UnlockOnEVSideDisconnect false (set over the wire): the
    EV leaves during a transaction: Updated EVCommunicationLost, chargingState Idle (step 1),
    then StatusNotification Available (step 3); plugged in again: Updated CablePluggedIn
    EVConnected (step 5), then ChargingStateChanged Charging (step 7). seqNo goes on."""
    async with harness(tmp_path) as h:
        got = await h.cs.call("SetVariables", setVariableData=[
            {"component": {"name": "TxCtrlr"}, "variable": {"name": "StopTxOnEVSideDisconnect"},
             "attributeValue": "false"},
            {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "UnlockOnEVSideDisconnect"},
             "attributeValue": "false"}])
        assert [r["attributeStatus"] for r in got["setVariableResult"]] == ["Accepted", "Accepted"]
        m = h.mark()
        started = await local_start(h)
        await state_event(h, "ChargingStateChanged", "Charging", m)
        m1 = h.mark()
        h.sim.unplug(1)
        left = await state_event(h, "EVCommunicationLost", "Idle", m1)
        assert left["seqNo"] == 2
        available = await wait_connector(h, "Available", start=m1)
        frames = [x.payload for x in h.cs.messages[m1:] if x.direction == IN]
        assert frames.index(left) < frames.index(available)  # step 1, then step 3
        assert h.station.connector(1).transaction is not None  # it goes on
        m2 = h.mark()
        h.sim.plug(1)
        back = await state_event(h, "CablePluggedIn", "EVConnected", m2)
        charging = await state_event(h, "ChargingStateChanged", "Charging", m2)
        assert (back["seqNo"], charging["seqNo"]) == (3, 4)
        await until(lambda: h.station.connector(1).status == model.CHARGING, clock=h.clock, step_s=1)
        assert_charging_hw(h)
        h.sim.swipe(TAG)
        ended = await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Ended", start_index=m2)
        assert ended["seqNo"] == 5
        evs = tx_events(h, m)
        assert {p["transactionInfo"]["transactionId"] for p in evs} == {started["transactionInfo"]["transactionId"]}
        assert [p["seqNo"] for p in evs] == list(range(len(evs)))
        assert not errors(h)


async def test_tc_e_40_state_changes_while_offline_survive_a_restart_in_order(tmp_path):
    """A charging state change while the CSMS is unreachable is journaled with its cause and
    state; after a reboot it goes out in order before the transaction's end (Reboot), offline
    true, at the time it arose, seqNo continuing."""
    async with harness(tmp_path) as h:
        m = h.mark()
        started = await local_start(h)
        tx_id = started["transactionInfo"]["transactionId"]
        await state_event(h, "ChargingStateChanged", "Charging", m)
        port = await h.go_offline()
        h.sim.ev_full(1)
        await until(lambda: any(e.kind == "update" for e in h.station.outbox.entries()), clock=h.clock, step_s=1)
        arose = h.clock.time()
        await h.restart_agent()
        queued = [(e.kind, e.seq_no, e.offline, e.cause, e.state) for e in h.station.outbox.entries()]
        assert queued == [("update", 2, True, model.CAUSE_CHARGING_STATE, model.SUSPENDED_EV),
                          ("stop", 3, True, None, None)]
        m2 = h.mark()
        await h.go_online(port)
        ended = await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Ended", start_index=m2)
        assert ended["transactionInfo"]["stoppedReason"] == "Reboot" and ended["seqNo"] == 3
        suspended = [p for p in tx_events(h, m2) if p["eventType"] == "Updated"]
        assert len(suspended) == 1
        assert suspended[0]["triggerReason"] == "ChargingStateChanged"
        assert suspended[0]["transactionInfo"] == {"transactionId": tx_id, "chargingState": "SuspendedEV"}
        assert suspended[0]["offline"] is True and suspended[0]["seqNo"] == 2
        assert abs(epoch(suspended[0]["timestamp"]) - arose) <= 1
        evs = [p for p in tx_events(h) if p["transactionInfo"]["transactionId"] == tx_id]
        assert [p["seqNo"] for p in evs] == list(range(len(evs)))


# ---------------------------------------------------------------------- F: remote control

async def test_tc_f_01_remote_start_cable_plugged_in_first_then_tc_f_08_remote_stop(tmp_path):
    async with harness(tmp_path) as h:
        m = h.mark()
        h.sim.plug(1)
        await wait_connector(h, "Occupied", start=m)
        got = await h.cs.call("RequestStartTransaction", idToken={"idToken": "REMOTE1", "type": "Central"},
                              evseId=1, remoteStartId=42)
        assert got["status"] == "Accepted"
        started = await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Started", start_index=m)
        assert started["triggerReason"] == "RemoteStart"
        assert started["transactionInfo"]["remoteStartId"] == 42
        assert started["idToken"] == {"idToken": "REMOTE1", "type": "Central"}
        i_conf = next(i for i in range(m, len(h.cs.messages))
                      if h.cs.messages[i].action == "RequestStartTransaction.conf")
        i_start = next(i for i in range(m, len(h.cs.messages)) if h.cs.messages[i].action == "TransactionEvent")
        assert i_conf < i_start
        tx_id = started["transactionInfo"]["transactionId"]
        assert await h.cs.call("RequestStopTransaction", transactionId="unknown") == {"status": "Rejected"}
        assert await h.cs.call("RequestStopTransaction", transactionId=tx_id) == {"status": "Accepted"}
        ended = await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Ended", start_index=m)
        assert ended["transactionInfo"]["stoppedReason"] == "Remote" and ended["triggerReason"] == "RemoteStop"
        assert ended["transactionInfo"]["transactionId"] == tx_id


async def test_tc_f_03_remote_start_first_then_cable(tmp_path):
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        m = h.mark()
        got = await h.cs.call("RequestStartTransaction", idToken={"idToken": "REMOTE2", "type": "Central"},
                              evseId=1, remoteStartId=7)
        assert got["status"] == "Accepted"
        await quiet(h)
        assert not tx_events(h, m)
        h.sim.plug(1)
        started = await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Started", start_index=m)
        assert started["transactionInfo"]["remoteStartId"] == 7


async def test_tc_f_05_unlock_connector_with_ongoing_transaction(tmp_path):
    async with harness(tmp_path) as h:
        await local_start(h)
        got = await h.cs.call("UnlockConnector", evseId=1, connectorId=1)
        assert got == {"status": "OngoingAuthorizedTransaction"}
        assert h.station.connector(1).transaction is not None
        assert await h.cs.call("UnlockConnector", evseId=9, connectorId=1) == {"status": "UnknownConnector"}


async def test_tc_f_20_trigger_heartbeat_and_status_notification_tc_f_23(tmp_path):
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        m = h.mark()
        assert await h.cs.call("TriggerMessage", requestedMessage="Heartbeat") == {"status": "Accepted"}
        await h.cs.wait_for("Heartbeat", start_index=m)
        assert await h.cs.call("TriggerMessage", requestedMessage="StatusNotification",
                               evse={"id": 1, "connectorId": 1}) == {"status": "Accepted"}
        await wait_connector(h, "Available", start=m)
        assert await h.cs.call("TriggerMessage", requestedMessage="BootNotification") == {"status": "Rejected"}
        assert await h.cs.call("TriggerMessage", requestedMessage="SignV2GCertificate") == {
            "status": "NotImplemented"}
        assert await h.cs.call("TriggerMessage", requestedMessage="TransactionEvent") == {"status": "Rejected"}


async def test_tc_f_11_tc_f_13_trigger_meter_values_and_transaction_event(tmp_path):
    async with harness(tmp_path) as h:
        started = await local_start(h)
        await quiet(h)
        m = h.mark()
        assert await h.cs.call("TriggerMessage", requestedMessage="MeterValues",
                               evse={"id": 1}) == {"status": "Accepted"}
        mv = await h.cs.wait_for("MeterValues", start_index=m)
        assert mv["evseId"] == 1 and mv["meterValue"][0]["sampledValue"][0]["context"] == "Trigger"
        assert await h.cs.call("TriggerMessage", requestedMessage="TransactionEvent",
                               evse={"id": 1}) == {"status": "Accepted"}
        ev = await h.cs.wait_for("TransactionEvent", start_index=m)
        assert ev["eventType"] == "Updated" and ev["triggerReason"] == "Trigger"
        assert ev["transactionInfo"]["transactionId"] == started["transactionInfo"]["transactionId"]
        assert ev["seqNo"] == max(p["seqNo"] for p in tx_events(h, 0)[:-1]) + 1


# ---------------------------------------------------------------------- C/D, P and the framing

async def test_clear_cache_local_list_and_data_transfer(tmp_path):
    async with harness(tmp_path) as h:
        assert await h.cs.call("ClearCache") == {"status": "Accepted"}
        assert await h.cs.call("GetLocalListVersion") == {"versionNumber": 0}
        got = await h.cs.call("SendLocalList", versionNumber=3, updateType="Full", localAuthorizationList=[
            {"idToken": {"idToken": "LL1", "type": "ISO14443"}, "idTokenInfo": {"status": "Accepted"}},
            {"idToken": {"idToken": "LL2", "type": "ISO14443"}, "idTokenInfo": {"status": "Blocked"}}])
        assert got == {"status": "Accepted"}
        assert await h.cs.call("GetLocalListVersion") == {"versionNumber": 3}
        assert h.station.local_list.get("LL2").status == model.AUTH_BLOCKED
        assert await h.cs.call("DataTransfer", vendorId="x") == {"status": "UnknownVendorId"}


async def test_unknown_and_unsupported_actions_and_malformed_frames_get_2_0_1_callerrors(tmp_path):
    async with harness(tmp_path, allowed_errors=("NotSupported", "NotImplemented", "RpcFrameworkError",
                                                 "FormatViolation", "MessageTypeNotSupported",
                                                 "OccurrenceConstraintViolation")) as h:
        await wait_connector(h, "Available")

        async def answer(frame: str) -> list:
            m = len(h.cs.raw)
            await h.cs.send_raw(frame)
            text = await h.cs.wait_raw(lambda t: t.startswith("[4,"), start_index=m)
            return json.loads(text)

        assert (await answer('[2,"u1","FlyToTheMoon",{}]'))[:3] == [4, "u1", "NotImplemented"]
        assert (await answer('[2,"u2","GetDisplayMessages",{"requestId":1}]'))[:3] == [4, "u2", "NotSupported"]
        assert (await answer('not json'))[2] == "RpcFrameworkError"
        assert (await answer('[2,"u3","GetVariables",[]]'))[:3] == [4, "u3", "FormatViolation"]
        assert (await answer('[7,"u4","x",{}]'))[:3] == [4, "u4", "MessageTypeNotSupported"]
        assert (await answer('[2,"u5","GetVariables",{}]'))[:3] == [4, "u5", "OccurrenceConstraintViolation"]
        # the connection stays up and keeps working
        assert await h.cs.call("DataTransfer", vendorId="x") == {"status": "UnknownVendorId"}
        assert h.cs.connections == 1


def test_the_ocpp201_table_sets_initial_values_and_a_bad_one_is_a_config_error(tmp_path):
    def config(table):
        return parse_config(str(tmp_path / "agent.toml"), {
            "station": {"id": "CP9", "data_dir": str(tmp_path / "data")},
            "csms": {"url": "ws://127.0.0.1:9/ocpp", "ocpp_version": "2.0.1"}, "ocpp201": table})

    agent = Agent(config({"OCPPCommCtrlr.OfflineThreshold": 300}))
    assert agent.client.device_model.get("OCPPCommCtrlr.OfflineThreshold") == 300
    assert not hasattr(agent.client, "keys")  # the 1.6 configuration keys stay with the 1.6 client
    agent.journal.close()
    with pytest.raises(ConfigError) as e:
        Agent(config({"OCPPCommCtrlr.NoSuchVariable": 1}))
    assert e.value.key == "ocpp201.OCPPCommCtrlr.NoSuchVariable"
