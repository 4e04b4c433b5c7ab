"""OCTT 2.0.1 block F (remote control): RequestStart/StopTransaction variants, UnlockConnector
and TriggerMessage. The agent on the simulated board against the test central system over
real websockets (tests/ocpp201/octt201.py); every agent frame is schema-checked.

Each test follows its OCTT case (spec/OCPP-2.0.1_edition3_part6-testcases.txt) and checks
that case's tool validations.
"""

import pytest

from tests.harness import assert_charging_hw, assert_no_power, hw, index_of, quiet, until
from tests.ocpp201.octt201 import TAG, errors, harness, local_start, received, tx_events, wait_connector
from tools.csms import IN

TWO = {"evse": {"connectors": 2}}
TAG2 = "11223344"


async def energy_flowing(h, evse_id: int = 1) -> None:
    """The OCTT state EnergyTransferStarted: the EV draws, contactor closed."""
    await until(lambda: hw(h, evse_id)["power_w"] > 0, clock=h.clock, step_s=1)
    assert_charging_hw(h, evse_id)


async def set_variable(h, component: str, variable: str, value: str) -> None:
    got = await h.cs.call("SetVariables", setVariableData=[
        {"component": {"name": component}, "variable": {"name": variable}, "attributeValue": value}])
    assert got["setVariableResult"][0]["attributeStatus"] == "Accepted", got


# ---------------------------------------------------------------------- F01-F03: remote start / stop

async def test_tc_f_02_remote_start_first_authorize_remote_start_true(tmp_path):
    """AuthorizeRemoteStart true: RequestStartTransaction Accepted, then an AuthorizeRequest
    with the request's idToken (reusable state Authorized (remote), step 3), then the cable:
    Started with the idToken, triggerReason RemoteStart, and energy flows."""
    async with harness(tmp_path) as h:
        await set_variable(h, "AuthCtrlr", "AuthorizeRemoteStart", "true")
        await wait_connector(h, "Available")
        m = h.mark()
        token = {"idToken": TAG, "type": "Central"}  # the Authorize names the request's type
        got = await h.cs.call("RequestStartTransaction", idToken=token, evseId=1, remoteStartId=11)
        assert got["status"] == "Accepted"
        auth = await h.cs.wait_for("Authorize", start_index=m)
        assert auth["idToken"] == token
        assert 0 <= index_of(h, "RequestStartTransaction.conf", m) < index_of(h, "Authorize", m)
        await quiet(h)
        assert_no_power(h)  # no EV yet
        h.sim.plug(1)
        started = await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Started", start_index=m)
        assert started["idToken"] == token and started["transactionInfo"]["remoteStartId"] == 11
        assert started["triggerReason"] == "RemoteStart"
        assert 0 <= index_of(h, "Authorize", m) < index_of(h, "TransactionEvent", m)
        await energy_flowing(h)  # EnergyTransferStarted
        assert not errors(h)


async def test_tc_f_02_remote_start_refused_by_authorize_starts_nothing(tmp_path):
    """The other side of F02 with AuthorizeRemoteStart true: an idToken the CSMS answers
    Invalid to in the AuthorizeResponse starts no transaction."""
    async with harness(tmp_path) as h:
        h.cs_server.reject_tags.add("BADTAG")
        await set_variable(h, "AuthCtrlr", "AuthorizeRemoteStart", "true")
        await wait_connector(h, "Available")
        m = h.mark()
        got = await h.cs.call("RequestStartTransaction", idToken={"idToken": "BADTAG", "type": "ISO14443"},
                              evseId=1, remoteStartId=12)
        assert got["status"] == "Accepted"
        await h.cs.wait_for("Authorize", start_index=m)
        h.sim.plug(1)
        await quiet(h)
        await h.clock.advance(5)
        await quiet(h)
        assert not tx_events(h, m) and h.station.connector(1).transaction is None
        assert_no_power(h)


async def test_tc_f_04_remote_start_cable_plugin_timeout(tmp_path):
    """EVConnectionTimeOut 20 s: a remote start with no EV within the timeout lapses (the
    transaction starts at PowerPathClosed, so none was started and none ends); an EV plugged
    in afterwards gets no energy. Step 3: the EVSE takes another remote start at once."""
    async with harness(tmp_path) as h:
        await set_variable(h, "TxCtrlr", "EVConnectionTimeOut", "20")
        await wait_connector(h, "Available")
        m = h.mark()
        got = await h.cs.call("RequestStartTransaction", idToken={"idToken": "REMOTE4", "type": "Central"},
                              evseId=1, remoteStartId=41)
        assert got["status"] == "Accepted"
        await quiet(h)
        await h.clock.advance(21)
        await quiet(h)
        h.sim.plug(1)
        await quiet(h)
        await h.clock.advance(2)
        await quiet(h)
        assert not tx_events(h, m) and h.station.connector(1).transaction is None
        assert_no_power(h)
        got = await h.cs.call("RequestStartTransaction", idToken={"idToken": "REMOTE5", "type": "Central"},
                              evseId=1, remoteStartId=42)
        assert got["status"] == "Accepted"  # step 3
        started = await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Started", start_index=m)
        assert started["transactionInfo"]["remoteStartId"] == 42
        assert started["idToken"] == {"idToken": "REMOTE5", "type": "Central"}
        await energy_flowing(h)


async def test_tc_f_04_tx_start_point_authorized_ends_with_ev_connect_timeout(tmp_path):
    """TxStartPoint Authorized: the remote start begins the transaction; no EV within
    EVConnectionTimeOut: TransactionEvent Ended, triggerReason EVConnectTimeout (step 1); then
    the EVSE takes another remote start (step 3)."""
    async with harness(tmp_path) as h:
        await set_variable(h, "TxCtrlr", "EVConnectionTimeOut", "20")
        await set_variable(h, "TxCtrlr", "TxStartPoint", "Authorized")
        await wait_connector(h, "Available")
        m = h.mark()
        got = await h.cs.call("RequestStartTransaction", idToken={"idToken": "REMOTE4", "type": "Central"},
                              evseId=1, remoteStartId=41)
        assert got["status"] == "Accepted"
        started = await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Started", start_index=m)
        await h.clock.advance(19)
        await quiet(h)
        assert not [p for p in tx_events(h, m) if p["eventType"] == "Ended"]  # not before the timeout
        await h.clock.advance(2)
        ended = await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Ended", start_index=m)
        assert ended["eventType"] == "Ended" and ended["triggerReason"] == "EVConnectTimeout"  # step 1
        assert ended["transactionInfo"]["transactionId"] == started["transactionInfo"]["transactionId"]
        assert_no_power(h)
        m = h.mark()
        got = await h.cs.call("RequestStartTransaction", idToken={"idToken": "REMOTE5", "type": "Central"},
                              evseId=1, remoteStartId=42)
        assert got["status"] == "Accepted"  # step 3
        again = await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Started", start_index=m)
        assert again["transactionInfo"]["remoteStartId"] == 42
        h.sim.plug(1)
        await energy_flowing(h)
        assert not errors(h)


async def test_tc_f_09_remote_stop_of_an_unknown_transaction_is_rejected(tmp_path):
    async with harness(tmp_path) as h:
        started = await local_start(h)
        await energy_flowing(h)
        tx_id = started["transactionInfo"]["transactionId"]
        m = h.mark()
        got = await h.cs.call("RequestStopTransaction", transactionId=tx_id + "-other")
        assert got == {"status": "Rejected"}  # step 2
        await h.clock.advance(5)
        await quiet(h)
        assert not [p for p in tx_events(h, m) if p["eventType"] == "Ended"]
        assert h.station.connector(1).transaction is not None
        assert_charging_hw(h)


# ---------------------------------------------------------------------- F05: unlock

async def test_tc_f_06_unlock_without_a_transaction_unlocks(tmp_path):
    async with harness(tmp_path) as h:
        await local_start(h)
        assert hw(h)["locked"]  # the cable is held during the transaction
        h.sim.swipe(TAG)  # ended; the cable stays in
        await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Ended")
        await quiet(h)
        h.sim.connector(1).lock.locked = True  # a lock that stayed shut (the reason F05 exists)
        got = await h.cs.call("UnlockConnector", evseId=1, connectorId=1)
        assert got == {"status": "Unlocked"}  # step 2
        assert not hw(h)["locked"]


async def test_tc_f_07_unlock_without_a_cable_unlocks(tmp_path):
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        assert hw(h)["cp_state"] not in ("B", "C")  # no cable connected
        got = await h.cs.call("UnlockConnector", evseId=1, connectorId=1)
        assert got == {"status": "Unlocked"}
        assert not hw(h)["locked"]


async def test_tc_f_10_unlock_unknown_connector(tmp_path):
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        got = await h.cs.call("UnlockConnector", evseId=1, connectorId=999)
        assert got == {"status": "UnknownConnector"}


# ---------------------------------------------------------------------- F06: TriggerMessage

async def test_tc_f_12_trigger_meter_values_of_every_evse(tmp_path):
    async with harness(tmp_path, board=TWO) as h:
        await wait_connector(h, "Available", 2)
        m = h.mark()
        assert await h.cs.call("TriggerMessage", requestedMessage="MeterValues") == {"status": "Accepted"}
        await until(lambda: len(received(h, "MeterValues", m)) == 2)
        got = received(h, "MeterValues", m)
        assert sorted(p["evseId"] for p in got) == [1, 2]
        assert all(p["meterValue"][0]["sampledValue"][0]["context"] == "Trigger" for p in got)


async def test_tc_f_14_trigger_transaction_event_of_every_evse(tmp_path):
    async with harness(tmp_path, board=TWO) as h:
        await local_start(h)
        m = h.mark()
        await local_start(h, TAG2, evse=2)
        await energy_flowing(h, 1)
        await energy_flowing(h, 2)
        await quiet(h)
        m = h.mark()
        assert await h.cs.call("TriggerMessage", requestedMessage="TransactionEvent") == {"status": "Accepted"}
        await until(lambda: len(tx_events(h, m)) == 2)
        got = tx_events(h, m)
        assert sorted(p["evse"]["id"] for p in got) == [1, 2]
        for p in got:
            assert p["eventType"] == "Updated" and p["triggerReason"] == "Trigger"
            assert p["transactionInfo"]["chargingState"] == "Charging"
            assert p["meterValue"][0]["sampledValue"][0]["context"] == "Trigger"


async def test_tc_f_24_trigger_status_notification_of_an_occupied_connector(tmp_path):
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        h.sim.plug(1)  # EVConnectedPreSession
        await wait_connector(h, "Occupied")
        m = h.mark()
        got = await h.cs.call("TriggerMessage", requestedMessage="StatusNotification",
                              evse={"id": 1, "connectorId": 1})
        assert got == {"status": "Accepted"}
        status = await wait_connector(h, "Occupied", start=m)
        assert (status["evseId"], status["connectorId"]) == (1, 1)


async def test_tc_f_26_trigger_boot_notification_once_accepted_is_rejected(tmp_path):
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        m = h.mark()
        got = await h.cs.call("TriggerMessage", requestedMessage="BootNotification")
        assert got == {"status": "Rejected"}
        await quiet(h)
        assert not received(h, "BootNotification", m)


async def test_tc_f_27_trigger_of_a_message_not_implemented(tmp_path):
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        await h.cs.wait_for("SecurityEventNotification")  # what the station sends once after its boot
        await quiet(h)
        m = h.mark()
        got = await h.cs.call("TriggerMessage", requestedMessage="SignCombinedCertificate")
        assert got == {"status": "NotImplemented"}
        await quiet(h)
        assert not [x for x in h.cs.messages[m:] if x.direction == IN and "." not in x.action]


@pytest.mark.parametrize("message, evse", [("LogStatusNotification", None),  # TC_F_15
                                           ("FirmwareStatusNotification", {"id": 1}),  # TC_F_17
                                           ("FirmwareStatusNotification", None)])  # TC_F_18
async def test_tc_f_15_f_17_f_18_trigger_log_and_firmware_status_notification_idle(tmp_path, message, evse):
    """TC_F_15_CS / TC_F_17_CS / TC_F_18_CS: TriggerMessage Accepted (an evse given to the firmware
    status is not relevant, F_17), then the notification with status Idle: the station uploads
    no log and downloads no firmware (until issue 14 brings them; F_16/F_19 need them)."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        m = h.mark()
        request = {"requestedMessage": message} | ({"evse": evse} if evse else {})
        assert await h.cs.call("TriggerMessage", **request) == {"status": "Accepted"}
        sent = await h.cs.wait_for(message, start_index=m)
        assert sent == {"status": "Idle"}
        assert 0 <= index_of(h, "TriggerMessage.conf", m) < index_of(h, message, m)
