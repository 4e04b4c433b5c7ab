"""OCTT 2.0.1 block E, transactions (spec/OCPP-2.0.1_edition3_part6-testcases.txt): the agent on
the simulated board against the test central system serving ``ocpp2.0.1``. TxCtrlr.TxStartPoint
and TxStopPoint are the neutral settings tx_start_points / tx_stop_points the core acts on; each
test sets the case's configuration state over the wire (SetVariables), follows its steps (the
reusable states Authorized, EVConnectedPreSession, EnergyTransferStarted, EnergyTransferSuspended,
StopAuthorized, EVDisconnected) and checks its tool validations and the hardware. Cases that
cannot apply to this station are listed with their reason in docs/ocpp201.md.
"""

import pytest
from ocpp.exceptions import InternalError

from agent.core import model
from tests.harness import AgentHarness, assert_charging_hw, assert_no_power, hw, keys, quiet, until
from tests.ocpp201.octt201 import TAG, configure, errors, harness, received, tx_events, wait_connector

TAG2, GROUP = "11223344", "FAMILY-1"
TIMEOUT_S = 30  # <Configured ev_connection_timeout>


def token(tag: str = TAG) -> dict:
    return {"idToken": tag, "type": "ISO14443"}


def of_type(h, event_type: str, start: int = 0) -> list:
    return [p for p in tx_events(h, start) if p["eventType"] == event_type]


async def event(h, start: int, event_type: str, trigger: str | None = None) -> dict:
    return await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == event_type
                               and (trigger is None or p["triggerReason"] == trigger), start_index=start)


async def authorized_local(h, tag: str = TAG) -> int:
    """Reusable state Authorized (local): the badge, AuthorizeRequest with its idToken. Returns
    the record index before the badge."""
    await wait_connector(h, "Available")  # booted: the badge is not read offline
    m = h.mark()
    h.sim.swipe(tag)
    auth = await h.cs.wait_for("Authorize", start_index=m)
    assert auth["idToken"] == token(tag)
    return m


async def plug_in(h, start: int) -> None:
    """The EV plugged in: StatusNotification Occupied for the configured EVSE and connector."""
    h.sim.plug(1)
    occupied = await wait_connector(h, "Occupied", start=start)
    assert (occupied["evseId"], occupied["connectorId"]) == (1, 1)


async def energy_transfer_started(h, start: int) -> None:
    """Reusable state EnergyTransferStarted, part 2: ChargingStateChanged Charging, energy flowing."""
    charging = await h.cs.wait_for("TransactionEvent", lambda p: p["triggerReason"] == "ChargingStateChanged"
                                   and p["transactionInfo"].get("chargingState") == "Charging", start_index=start)
    assert charging["eventType"] in ("Started", "Updated")
    await until(lambda: h.station.connector(1).status == model.CHARGING, clock=h.clock, step_s=1)
    assert_charging_hw(h)


async def charging_session(h) -> dict:
    """Authorized (local), then EVConnectedPreSession and EnergyTransferStarted: the Started event."""
    m = await authorized_local(h)
    await plug_in(h, m)
    started = await event(h, m, "Started")
    await energy_transfer_started(h, m)
    await until(lambda: h.station.connector(1).transaction.backend_id is not None)
    return started


async def energy_transfer_suspended(h) -> int:
    """Reusable state EnergyTransferSuspended (the transaction goes on): Updated ChargingStateChanged
    SuspendedEV. Returns the record index before the EV suspended."""
    m = h.mark()
    h.sim.ev_full(1)
    suspended = await event(h, m, "Updated", "ChargingStateChanged")
    assert suspended["transactionInfo"]["chargingState"] == "SuspendedEV"
    await quiet(h)
    return m


def assert_numbered(h, tx_id: str) -> None:
    evs = [p for p in tx_events(h) if p["transactionInfo"]["transactionId"] == tx_id]
    assert [p["seqNo"] for p in evs] == list(range(len(evs)))
    assert evs[0]["eventType"] == "Started"


# ---------------------------------------------------------------------- E01: start points

async def test_tc_e_01_power_path_closed_start_on_the_ev_after_authorization(tmp_path):
    """TxStartPoint PowerPathClosed, state Authorized: no transaction until the EV is connected;
    then Started (CablePluggedIn, chargingState EVConnected, evse and connector) and charging."""
    async with harness(tmp_path) as h:
        await configure(h, {"TxCtrlr.TxStartPoint": "PowerPathClosed"})
        m = await authorized_local(h)
        await quiet(h)
        assert not tx_events(h, m)
        assert_no_power(h)
        await plug_in(h, m)
        started = await event(h, m, "Started")
        assert started["triggerReason"] in ("CablePluggedIn", "ChargingStateChanged", "RemoteStart")
        assert started["transactionInfo"]["chargingState"] in ("EVConnected", "SuspendedEVSE", "Charging")
        assert started["evse"] == {"id": 1, "connectorId": 1} and started["idToken"] == token()
        await energy_transfer_started(h, m)
        assert not errors(h)


async def test_tc_e_02_energy_transfer_start_reported_when_energy_flows(tmp_path):
    """TxStartPoint EnergyTransfer, state Authorized, EV connected: the first TransactionEvent is
    Started as energy flows (ChargingStateChanged, chargingState Charging, the idToken, evse and
    connector); an EV that never draws starts no transaction at all."""
    async with harness(tmp_path) as h:
        await configure(h, {"TxCtrlr.TxStartPoint": "EnergyTransfer"})
        # An EV that is not ready: plugged in after the badge, never drawing, then unplugged.
        m = await authorized_local(h)
        h.sim.plug(1)
        h.sim.ev_full(1)
        await wait_connector(h, "Occupied", start=m)
        await h.clock.advance(5)
        await quiet(h)
        assert not tx_events(h, m)
        m_out = h.mark()
        h.sim.unplug(1)
        await wait_connector(h, "Available", start=m_out)
        await quiet(h)
        assert not tx_events(h, m) and h.station.connector(1).transaction is None
        # Now an EV that draws.
        m = await authorized_local(h)
        await plug_in(h, m)
        started = await event(h, m, "Started")
        assert tx_events(h, m)[0] is started  # nothing before it
        assert started["triggerReason"] in ("ChargingStateChanged", "Authorized")
        assert started["transactionInfo"]["chargingState"] == "Charging"
        assert started["idToken"] == token() and started["evse"] == {"id": 1, "connectorId": 1}
        await until(lambda: h.station.connector(1).status == model.CHARGING, clock=h.clock, step_s=1)
        assert_charging_hw(h)
        h.sim.swipe(TAG)
        ended = await event(h, m, "Ended")
        assert ended["transactionInfo"]["stoppedReason"] == "Local"
        assert_numbered(h, started["transactionInfo"]["transactionId"])
        assert not errors(h)


async def test_tc_e_09_ev_connected_start_then_the_badge_authorizes_it(tmp_path):
    """TxStartPoint EVConnected: plugging in starts the transaction (CablePluggedIn, EVConnected, no
    idToken) without energy; the badge then authorizes it: Updated Authorized with the idToken (the
    reusable state Authorized from EVConnectedPreSession), and the energy flows."""
    async with harness(tmp_path) as h:
        await configure(h, {"TxCtrlr.TxStartPoint": "EVConnected"})
        got = await h.cs.call("GetVariables", getVariableData=[
            {"component": {"name": "TxCtrlr"}, "variable": {"name": name}} for name in ("TxStartPoint", "TxStopPoint")])
        assert [r["attributeValue"] for r in got["getVariableResult"]] == ["EVConnected", "Authorized"]
        assert h.station.settings.get("tx_start_points") == ["ev_connected"]
        await wait_connector(h, "Available")
        m = h.mark()
        await plug_in(h, m)
        started = await event(h, m, "Started")
        assert started["triggerReason"] in ("CablePluggedIn", "ChargingStateChanged")
        assert started["transactionInfo"]["chargingState"] == "EVConnected"
        assert started["evse"] == {"id": 1, "connectorId": 1} and "idToken" not in started
        await quiet(h)
        assert_no_power(h)
        m2 = await authorized_local(h)
        authorized = await event(h, m2, "Updated", "Authorized")
        assert authorized["idToken"] == token()
        tx_id = started["transactionInfo"]["transactionId"]
        assert authorized["transactionInfo"]["transactionId"] == tx_id
        await energy_transfer_started(h, m2)
        h.sim.swipe(TAG)
        ended = await event(h, m2, "Ended")
        assert (ended["triggerReason"], ended["transactionInfo"]["stoppedReason"]) == ("StopAuthorized", "Local")
        assert_numbered(h, tx_id)
        assert not errors(h)


async def test_tc_e_09_ev_connected_start_then_a_remote_start_authorizes_it(tmp_path):
    """TxStartPoint EVConnected, then the reusable state Authorized by RequestStartTransaction: the
    answer carries the transactionId of the Started event; then Updated RemoteStart with
    remoteStartId and the idToken, and the energy flows."""
    async with harness(tmp_path) as h:
        await configure(h, {"TxCtrlr.TxStartPoint": "EVConnected"})
        await wait_connector(h, "Available")
        m = h.mark()
        await plug_in(h, m)
        started = await event(h, m, "Started")
        tx_id = started["transactionInfo"]["transactionId"]
        m2 = h.mark()
        got = await h.cs.call("RequestStartTransaction", idToken={"idToken": "REMOTE1", "type": "Central"},
                              evseId=1, remoteStartId=7)
        assert got == {"status": "Accepted", "transactionId": tx_id}
        remote = await event(h, m2, "Updated", "RemoteStart")
        assert remote["transactionInfo"] == {"transactionId": tx_id, "chargingState": "EVConnected",
                                             "remoteStartId": 7}
        assert remote["idToken"] == {"idToken": "REMOTE1", "type": "Central"}
        await energy_transfer_started(h, m2)
        assert_numbered(h, tx_id)
        assert not errors(h)


async def test_tc_e_09_e_16_the_csms_refusing_the_token_of_an_ev_connected_transaction_ends_it(tmp_path):
    """TxStartPoint EVConnected, StopTxOnInvalidId true: the badge's Updated Authorized is answered
    idTokenInfo Invalid: Ended, triggerReason Deauthorized, stoppedReason DeAuthorized; no energy."""
    async with harness(tmp_path) as h:
        await configure(h, {"TxCtrlr.TxStartPoint": "EVConnected", "TxCtrlr.StopTxOnInvalidId": True})
        h.cs.handlers["TransactionEvent"] = lambda p: (
            {"idTokenInfo": {"status": "Invalid"}} if p["triggerReason"] == "Authorized" else {})
        await wait_connector(h, "Available")
        m = h.mark()
        await plug_in(h, m)
        await event(h, m, "Started")
        await authorized_local(h)
        ended = await event(h, m, "Ended")
        assert ended["triggerReason"] == "Deauthorized"
        assert ended["transactionInfo"]["stoppedReason"] == "DeAuthorized"
        await quiet(h)
        assert_no_power(h)
        assert h.station.connector(1).transaction is None
        assert not errors(h)


# ---------------------------------------------------------------------- E03: authorization first

async def test_tc_e_04_authorization_first_then_the_ev(tmp_path):
    """Authorized (local), then EnergyTransferStarted part 1: StatusNotification Occupied and
    Started with triggerReason CablePluggedIn, chargingState EVConnected; part 2: Updated
    ChargingStateChanged Charging, energy flowing."""
    async with harness(tmp_path) as h:
        m = await authorized_local(h)
        await quiet(h)
        assert not tx_events(h, m)
        await plug_in(h, m)
        started = await event(h, m, "Started")
        assert started["triggerReason"] == "CablePluggedIn"
        assert started["transactionInfo"]["chargingState"] == "EVConnected"
        assert started["idToken"] == token()
        await energy_transfer_started(h, m)
        charging = of_type(h, "Updated", m)[0]
        assert charging["triggerReason"] == "ChargingStateChanged" and charging["seqNo"] == 1
        assert not errors(h)


@pytest.mark.parametrize("start_point", ["Authorized", "PowerPathClosed"])
async def test_tc_e_05_authorization_first_cable_plugin_timeout(tmp_path, start_point):
    """EVConnectionTimeOut configured, cache off: the badge, then no EV. With TxStartPoint
    Authorized the transaction started on the badge ends after the timeout: Ended, EVConnectTimeout,
    stoppedReason Timeout (TxStopPoint Authorized); with PowerPathClosed nothing had started and
    nothing is sent. Then the EVSE is ready for another session (Authorized, EnergyTransferStarted)."""
    async with harness(tmp_path) as h:
        await configure(h, {"TxCtrlr.EVConnectionTimeOut": TIMEOUT_S, "AuthCacheCtrlr.Enabled": False,
                            "AuthCtrlr.LocalPreAuthorize": False, "TxCtrlr.TxStartPoint": start_point,
                            "TxCtrlr.TxStopPoint": "Authorized"})
        m = await authorized_local(h)
        if start_point == "Authorized":
            started = await event(h, m, "Started", "Authorized")
            assert started["idToken"] == token()
        await h.clock.advance(TIMEOUT_S - 1)
        await quiet(h)
        assert not of_type(h, "Ended", m)
        await h.clock.advance(2)
        await quiet(h)
        if start_point == "Authorized":
            ended = await event(h, m, "Ended")
            assert ended["triggerReason"] == "EVConnectTimeout"
            assert ended["transactionInfo"]["stoppedReason"] == "Timeout"
            assert_numbered(h, started["transactionInfo"]["transactionId"])
        else:
            assert not tx_events(h, m)
        assert h.station.connector(1).transaction is None and h.station.connector(1).pending_auth is None
        assert_no_power(h)
        m2 = await authorized_local(h)
        await plug_in(h, m2)
        await energy_transfer_started(h, m2)
        assert not errors(h)


async def test_tc_e_39_deauthorized_timeout_then_the_ev_does_not_charge(tmp_path):
    """TxStartPoint Authorized, TxStopPoint Authorized: the transaction begun on the badge ends after
    EVConnectionTimeOut (Ended, EVConnectTimeout, Timeout); the EV connected afterwards gets no
    energy and starts no transaction."""
    async with harness(tmp_path) as h:
        await configure(h, {"TxCtrlr.EVConnectionTimeOut": TIMEOUT_S, "TxCtrlr.TxStartPoint": "Authorized",
                            "TxCtrlr.TxStopPoint": "Authorized"})
        m = await authorized_local(h)
        started = await event(h, m, "Started", "Authorized")
        assert started["transactionInfo"]["chargingState"] == "Idle"  # no EV yet
        await h.clock.advance(TIMEOUT_S + 1)
        ended = await event(h, m, "Ended")
        assert ended["triggerReason"] == "EVConnectTimeout" and ended["transactionInfo"]["stoppedReason"] == "Timeout"
        m2 = h.mark()
        await plug_in(h, m2)
        await h.clock.advance(5)
        await quiet(h)
        assert all(p["triggerReason"] == "CablePluggedIn" for p in tx_events(h, m2))
        assert h.station.connector(1).transaction is None
        assert_no_power(h)
        assert not errors(h)


# ---------------------------------------------------------------------- E06/E07: stop points

async def test_tc_e_06_local_stop_accepted(tmp_path):
    """EnergyTransferStarted, then StopAuthorized (local): Ended with StopAuthorized, stoppedReason
    Local and the idToken; energy stops; EVDisconnected: StatusNotification Available and no
    further TransactionEvent (the transaction had ended)."""
    async with harness(tmp_path) as h:
        started = await charging_session(h)
        await h.clock.advance(30)
        m = h.mark()
        h.sim.swipe(TAG)
        ended = await event(h, m, "Ended")
        assert ended["triggerReason"] == "StopAuthorized" and ended["idToken"] == token()
        assert ended["transactionInfo"]["stoppedReason"] == "Local"
        await quiet(h)
        assert_no_power(h)
        m2 = h.mark()
        h.sim.unplug(1)
        await wait_connector(h, "Available", start=m2)
        await quiet(h)
        assert not tx_events(h, m2)
        assert_numbered(h, started["transactionInfo"]["transactionId"])
        assert not errors(h)


@pytest.mark.parametrize("stop_point", ["PowerPathClosed", "EnergyTransfer"])
async def test_tc_e_07_e_08_local_stop_with_power_path_closed_or_energy_transfer(tmp_path, stop_point):
    """TxStopPoint PowerPathClosed (TC_E_07) or EnergyTransfer (TC_E_08), EnergyTransferStarted,
    then the badge again (StopAuthorized): Ended, triggerReason StopAuthorized, stoppedReason Local."""
    async with harness(tmp_path) as h:
        await configure(h, {"TxCtrlr.TxStopPoint": stop_point})
        await charging_session(h)
        m = h.mark()
        h.sim.swipe(TAG)
        ended = await event(h, m, "Ended")
        assert ended["triggerReason"] == "StopAuthorized" and ended["transactionInfo"]["stoppedReason"] == "Local"
        assert ended["idToken"] == token()
        await quiet(h)
        assert_no_power(h)
        assert not errors(h)


async def test_tc_e_35_power_path_closed_remote_stop(tmp_path):
    """TxStopPoint PowerPathClosed, EnergyTransferStarted: RequestStopTransaction Accepted, then Ended
    with triggerReason RemoteStop, stoppedReason Remote."""
    async with harness(tmp_path) as h:
        await configure(h, {"TxCtrlr.TxStopPoint": "PowerPathClosed"})
        started = await charging_session(h)
        m = h.mark()
        got = await h.cs.call("RequestStopTransaction", transactionId=started["transactionInfo"]["transactionId"])
        assert got["status"] == "Accepted"
        ended = await event(h, m, "Ended")
        assert ended["triggerReason"] == "RemoteStop" and ended["transactionInfo"]["stoppedReason"] == "Remote"
        await quiet(h)
        assert_no_power(h)
        assert not errors(h)


async def test_tc_e_22_energy_transfer_stopped_by_the_ev(tmp_path):
    """TxStopPoint EnergyTransfer, EnergyTransferStarted, the EV suspends: Ended with triggerReason
    ChargingStateChanged, chargingState EVConnected, stoppedReason StoppedByEV; no power."""
    async with harness(tmp_path) as h:
        await configure(h, {"TxCtrlr.TxStopPoint": "EnergyTransfer"})
        started = await charging_session(h)
        m = h.mark()
        h.sim.ev_full(1)
        ended = await event(h, m, "Ended")
        assert tx_events(h, m) == [ended]
        assert ended["triggerReason"] == "ChargingStateChanged"
        assert ended["transactionInfo"]["chargingState"] == "EVConnected"
        assert ended["transactionInfo"]["stoppedReason"] == "StoppedByEV"
        await quiet(h)
        assert_no_power(h)
        assert h.station.connector(1).transaction is None
        assert_numbered(h, started["transactionInfo"]["transactionId"])
        assert not errors(h)


async def unplugged_at_the_ev_while_suspended(h) -> tuple:
    """EnergyTransferSuspended, then the cable pulled at the EV: (the record index before the
    unplug, the Ended event: EVCommunicationLost, chargingState Idle)."""
    await charging_session(h)
    await energy_transfer_suspended(h)
    m = h.mark()
    h.sim.unplug(1)
    ended = await event(h, m, "Ended")
    assert ended["triggerReason"] == "EVCommunicationLost"
    assert ended["transactionInfo"]["chargingState"] == "Idle"
    return m, ended


async def test_tc_e_37_power_path_closed_ev_side_disconnect(tmp_path):
    """TxStopPoint PowerPathClosed, StopTxOnEVSideDisconnect false, EnergyTransferSuspended: the
    cable pulled at the EV: Ended, EVCommunicationLost, chargingState Idle, stoppedReason
    EVDisconnected (the power path cannot close without the EV)."""
    async with harness(tmp_path) as h:
        await configure(h, {"TxCtrlr.TxStopPoint": "PowerPathClosed", "TxCtrlr.StopTxOnEVSideDisconnect": False})
        m, ended = await unplugged_at_the_ev_while_suspended(h)
        assert ended["transactionInfo"]["stoppedReason"] == "EVDisconnected"
        await wait_connector(h, "Available", start=m)
        assert h.station.connector(1).transaction is None
        assert_no_power(h)
        assert not errors(h)


async def test_tc_e_17_deauthorized_by_ev_side_disconnect(tmp_path):
    """TxStopPoint Authorized, StopTxOnEVSideDisconnect true, UnlockOnEVSideDisconnect false,
    EnergyTransferSuspended: the cable pulled at the EV: Ended, EVCommunicationLost, Idle,
    EVDisconnected; then StatusNotification Available."""
    async with harness(tmp_path) as h:
        await configure(h, {"TxCtrlr.TxStopPoint": "Authorized", "TxCtrlr.StopTxOnEVSideDisconnect": True,
                            "OCPPCommCtrlr.UnlockOnEVSideDisconnect": False})
        m, ended = await unplugged_at_the_ev_while_suspended(h)
        assert ended["transactionInfo"]["stoppedReason"] == "EVDisconnected"
        available = await wait_connector(h, "Available", start=m)
        assert available["connectorId"] == 1
        assert_no_power(h)
        assert not errors(h)


async def test_tc_e_20_ev_connected_stop_point_ends_on_ev_side_disconnect(tmp_path):
    """TxStopPoint EVConnected, StopTxOnEVSideDisconnect false, EnergyTransferSuspended: the cable
    pulled at the EV ends the transaction anyway: Ended, EVCommunicationLost, Idle, EVDisconnected."""
    async with harness(tmp_path) as h:
        await configure(h, {"TxCtrlr.TxStopPoint": "EVConnected", "TxCtrlr.StopTxOnEVSideDisconnect": False})
        m, ended = await unplugged_at_the_ev_while_suspended(h)
        assert ended["transactionInfo"]["stoppedReason"] == "EVDisconnected"
        assert not errors(h)


async def test_tc_e_14_ev_connected_stop_point_local_stop_then_unplug(tmp_path):
    """TxStopPoint EVConnected only: the badge (StopAuthorized) deauthorizes without ending (Updated
    StopAuthorized with the idToken, then ChargingStateChanged EVConnected, no energy; errata figure
    56); EVDisconnected: Ended, EVCommunicationLost, Idle, stoppedReason Local."""
    async with harness(tmp_path) as h:
        await configure(h, {"TxCtrlr.TxStopPoint": "EVConnected"})
        started = await charging_session(h)
        m = h.mark()
        h.sim.swipe(TAG)
        stop = await event(h, m, "Updated", "StopAuthorized")
        assert stop["idToken"] == token()
        after = await event(h, m, "Updated", "ChargingStateChanged")
        assert after["transactionInfo"]["chargingState"] == "EVConnected"
        await quiet(h)
        assert_no_power(h)
        assert not of_type(h, "Ended", m)
        m2 = h.mark()
        h.sim.unplug(1)
        await wait_connector(h, "Available", start=m2)
        ended = await event(h, m2, "Ended")
        assert ended["triggerReason"] == "EVCommunicationLost"
        assert ended["transactionInfo"]["chargingState"] == "Idle"
        assert ended["transactionInfo"]["stoppedReason"] == "Local"
        assert_numbered(h, started["transactionInfo"]["transactionId"])
        assert not errors(h)


# ---------------------------------------------------------------------- E09: EV-side disconnect

@pytest.mark.parametrize("unlock", [True, False])
async def test_tc_e_24_e_25_ev_side_disconnect_deauthorizes(tmp_path, unlock):
    """StopTxOnEVSideDisconnect true, UnlockOnEVSideDisconnect true (TC_E_24) or false (TC_E_25),
    EnergyTransferSuspended: the cable pulled at the EV: TransactionEvent EVCommunicationLost,
    chargingState Idle; StatusNotification Available once the cable is out. The cable is unlocked
    at the station side (TC_E_24), or kept locked until the driver presents the idToken that
    started the transaction (TC_E_25, E09.FR.03), which starts nothing new."""
    async with harness(tmp_path) as h:
        await configure(h, {"TxCtrlr.StopTxOnEVSideDisconnect": True,
                            "OCPPCommCtrlr.UnlockOnEVSideDisconnect": unlock})
        await charging_session(h)
        assert hw(h)["locked"]
        await energy_transfer_suspended(h)
        m = h.mark()
        h.sim.unplug(1)
        lost = await h.cs.wait_for("TransactionEvent", lambda p: p["triggerReason"] == "EVCommunicationLost",
                                   start_index=m)
        assert lost["transactionInfo"]["chargingState"] == "Idle"
        await wait_connector(h, "Available", start=m)
        await quiet(h)
        assert_no_power(h)
        assert hw(h)["locked"] is not unlock
        if not unlock:
            m2 = h.mark()
            h.sim.swipe(TAG)
            await until(lambda: not hw(h)["locked"])
            await h.clock.advance(5)
            await quiet(h)
            assert not tx_events(h, m2) and not received(h, "Authorize", m2)
            c = h.station.connector(1)
            assert c.transaction is None and c.pending_auth is None
        assert not errors(h)


# ---------------------------------------------------------------------- E13: retries

ATTEMPTS, INTERVAL_S = 3, 10  # <Configured message_attempts_transaction_event(_interval)>


async def retried(tmp_path, answer_on: set) -> list:
    """MessageAttempts[TransactionEvent] 3, MessageAttemptInterval[TransactionEvent] 10 s, states
    Authorized and EVConnectedPreSession; the CSMS answers the Started event's attempts numbered in
    ``answer_on`` and a CALLERROR InternalError to the others (later events are answered). Returns
    the station clock's time of each attempt at the Started event, after waiting one more iteration."""
    async with harness(tmp_path) as h:
        got = await h.cs.call("SetVariables", setVariableData=[
            {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": name, "instance": "TransactionEvent"},
             "attributeValue": str(value)} for name, value in (("MessageAttempts", ATTEMPTS),
                                                               ("MessageAttemptInterval", INTERVAL_S))])
        assert {r["attributeStatus"] for r in got["setVariableResult"]} == {"Accepted"}
        attempts = []

        def answer(p):
            if p["seqNo"] != 0:
                return {}
            attempts.append(h.clock.monotonic())
            if len(attempts) not in answer_on:
                raise InternalError("CSMS broken")
            return {"idTokenInfo": {"status": "Accepted"}}

        h.cs.handlers["TransactionEvent"] = answer
        m = await authorized_local(h)
        await plug_in(h, m)
        await until(lambda: attempts, clock=h.clock, step_s=1)
        expected = min(answer_on | {ATTEMPTS})
        await until(lambda: len(attempts) >= expected, clock=h.clock, step_s=1, timeout_s=20)
        await h.clock.advance(INTERVAL_S * (ATTEMPTS + 1) + 1)  # one more iteration: nothing more
        await quiet(h)
        assert all(p["eventType"] == "Started" for p in tx_events(h, m) if p["seqNo"] == 0)
        assert h.station.connector(1).transaction is not None  # it goes on whatever the CSMS says
        return attempts


async def test_tc_e_50_max_retry_count_reached_with_call_errors(tmp_path):
    """Every attempt at the Started event is answered InternalError: it is sent MessageAttempts
    times, each retry MessageAttemptInterval × the preceding attempts later, then no more."""
    attempts = await retried(tmp_path, answer_on=set())
    assert len(attempts) == ATTEMPTS
    gaps = [round(b - a) for a, b in zip(attempts, attempts[1:])]
    assert gaps == [INTERVAL_S * n for n in range(1, ATTEMPTS)]


async def test_tc_e_51_success_before_the_max_retry_count_with_call_errors(tmp_path):
    """InternalError for the first attempt, an answer to the second: sent twice, MessageAttemptInterval
    apart, then never again."""
    attempts = await retried(tmp_path, answer_on={2})
    assert len(attempts) == 2
    assert round(attempts[1] - attempts[0]) == INTERVAL_S


# ---------------------------------------------------------------------- E08/E12: offline

async def send_local_list(h, entries: dict) -> None:
    """Memory state IdTokenLocalAuthList: a Full SendLocalList of ``{tag: idTokenInfo}``."""
    got = await h.cs.call("SendLocalList", versionNumber=1, updateType="Full", localAuthorizationList=[
        {"idToken": token(tag), "idTokenInfo": info} for tag, info in entries.items()])
    assert got == {"status": "Accepted"}


def after_reconnection(h, start: int) -> list:
    """The TransactionEvents the queue emptied after ``start``; all must say offline."""
    evs = tx_events(h, start)
    assert evs and all(p["offline"] is True for p in evs), evs
    return evs


async def stopped_offline_by(h, tag: str) -> dict:
    """Offline during the transaction: ``tag`` badged stops it (no energy), the EV leaves, then
    the connection comes back: the Ended event, every queued event sent offline true."""
    port = await h.go_offline()
    m = h.mark()
    h.sim.swipe(tag)
    await until(lambda: h.station.connector(1).transaction is None, clock=h.clock, step_s=1)
    assert_no_power(h)
    h.sim.unplug(1)
    await quiet(h)
    await h.go_online(port)
    ended = await event(h, m, "Ended")
    after_reconnection(h, m)
    return ended


async def test_tc_e_43_transaction_during_the_offline_period(tmp_path):
    """TransactionEventsInQueueEnded (the idToken in the local list): offline, EV connected, badge,
    badge again, EV disconnected; after reconnection the queue empties: every TransactionEvent
    offline true, a Started and an Ended among them, seqNo in order."""
    async with harness(tmp_path) as h:
        await configure(h, {"AuthCtrlr.OfflineTxForUnknownIdEnabled": True})
        await send_local_list(h, {TAG: {"status": "Accepted"}})
        await wait_connector(h, "Available")
        port = await h.go_offline()
        m = h.mark()
        h.sim.plug(1)
        h.sim.swipe(TAG)
        await until(lambda: h.station.connector(1).status == model.CHARGING, clock=h.clock, step_s=1)
        assert_charging_hw(h)
        await h.clock.advance(30)
        h.sim.swipe(TAG)
        await until(lambda: h.station.connector(1).transaction is None, clock=h.clock, step_s=1)
        h.sim.unplug(1)
        await quiet(h)
        assert_no_power(h)
        await h.go_online(port)
        await event(h, m, "Ended")
        evs = after_reconnection(h, m)
        assert [p["eventType"] for p in evs][0] == "Started" and evs[-1]["eventType"] == "Ended"
        assert evs[-1]["transactionInfo"]["stoppedReason"] == "Local"
        assert_numbered(h, evs[0]["transactionInfo"]["transactionId"])
        assert not errors(h)


async def test_tc_e_44_stop_transaction_during_the_offline_period(tmp_path):
    """EnergyTransferStarted, then offline: the same badge stops it, the EV is disconnected; after
    reconnection every queued TransactionEvent is offline true, the Ended one among them."""
    async with harness(tmp_path) as h:
        started = await charging_session(h)
        ended = await stopped_offline_by(h, TAG)  # authorized from the cache
        assert ended["transactionInfo"]["stoppedReason"] == "Local" and ended["idToken"] == token()
        assert_numbered(h, started["transactionInfo"]["transactionId"])
        assert not errors(h)


async def test_tc_e_45_stop_transaction_offline_with_the_same_group_id(tmp_path):
    """Authorized with a GroupIdToken, EnergyTransferStarted, then offline: a second idToken of the
    same group (in the local list) stops it; after reconnection every queued TransactionEvent is
    offline true, the Ended one with stoppedReason Local and the second idToken."""
    async with harness(tmp_path) as h:
        group = {"status": "Accepted", "groupIdToken": {"idToken": GROUP, "type": "Central"}}
        h.cs.handlers["Authorize"] = lambda p: {"idTokenInfo": group}
        await send_local_list(h, {TAG2: group})
        started = await charging_session(h)
        ended = await stopped_offline_by(h, TAG2)
        assert ended["transactionInfo"]["stoppedReason"] == "Local" and ended["idToken"] == token(TAG2)
        assert_numbered(h, started["transactionInfo"]["transactionId"])
        assert not errors(h)


# ---------------------------------------------------------------------- C01 within E03

async def test_tc_e_52_disable_remote_authorization_refuses_an_unknown_id_token(tmp_path):
    """DisableRemoteAuthorization true, the idToken neither in the local list nor cached: no
    AuthorizeRequest, authorization refused (no transaction, nothing offered when the EV comes)."""
    async with harness(tmp_path) as h:
        await configure(h, {"AuthCtrlr.DisableRemoteAuthorization": True})
        await wait_connector(h, "Available")
        m = h.mark()
        h.sim.swipe(TAG)
        await h.clock.advance(2)
        await quiet(h)
        h.sim.plug(1)
        await wait_connector(h, "Occupied", start=m)
        await h.clock.advance(5)
        await quiet(h)
        assert not received(h, "Authorize", m) and not tx_events(h, m)
        c = h.station.connector(1)
        assert c.transaction is None and c.pending_auth is None
        assert_no_power(h)
        assert not errors(h)



# ---------------------------------------------------------------------- 1.6 keeps its one shape

async def test_a_1_6_session_keeps_the_default_start_and_stop_points(tmp_path):
    """tx_start_points / tx_stop_points set to EVConnected / EnergyTransfer (as a 2.0.1 CSMS could
    have left them) do not change a 1.6 session: plugging in starts nothing, the badge starts the
    transaction (StartTransaction with its idTag), the EV suspending does not end it."""
    async with AgentHarness(tmp_path, ocpp=keys()) as h:
        h.station.settings.set("tx_start_points", ["ev_connected"])
        h.station.settings.set("tx_stop_points", ["energy_transfer"])
        await h.wait_status(1, "Available")
        m = h.mark()
        h.sim.plug(1)
        await h.wait_status(1, "Preparing", m)
        await h.clock.advance(5)
        await quiet(h)
        assert not h.received("StartTransaction", m) and h.station.connector(1).transaction is None
        h.sim.swipe(TAG)
        start = await h.cs.wait_for("StartTransaction", start_index=m)
        assert start["idTag"] == TAG
        await until(lambda: h.station.connector(1).status == model.CHARGING, clock=h.clock, step_s=1)
        h.sim.ev_full(1)
        await h.wait_status(1, "SuspendedEV", m)
        await h.clock.advance(5)
        await quiet(h)
        assert not h.received("StopTransaction", m) and h.station.connector(1).transaction is not None


async def test_tc_e_42_success_before_the_max_retry_count_after_no_answer(tmp_path):
    """TC_E_42_CS: the CSMS ignores the first Started (no answer at all) and answers the second:
    the station waits its message timeout, sends it again MessageAttemptInterval later (sent 2
    times), and not a third time after one more iteration; the transaction goes on."""
    async with harness(tmp_path, csms_extra={"response_timeout_s": 0.5}) as h:
        got = await h.cs.call("SetVariables", setVariableData=[
            {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": name, "instance": "TransactionEvent"},
             "attributeValue": str(value)} for name, value in (("MessageAttempts", ATTEMPTS),
                                                               ("MessageAttemptInterval", INTERVAL_S))])
        assert {r["attributeStatus"] for r in got["setVariableResult"]} == {"Accepted"}
        h.cs.unanswered["TransactionEvent"] = 1
        m = await authorized_local(h)
        sent_at = []  # the station clock's time when each attempt at the Started event arrived

        def attempts() -> int:
            count = sum(1 for p in tx_events(h, m) if p["seqNo"] == 0)
            while len(sent_at) < count:
                sent_at.append(h.clock.monotonic())
            return count

        await plug_in(h, m)
        await until(lambda: attempts() >= 2, clock=h.clock, step_s=0.5, timeout_s=20, what="the second attempt")
        await h.clock.advance(INTERVAL_S * (ATTEMPTS + 1) + 1)  # one more iteration: nothing more
        await quiet(h)
        assert attempts() == 2 and h.cs.unanswered["TransactionEvent"] == 0
        assert sent_at[1] - sent_at[0] >= INTERVAL_S  # the timeout, then the interval × 1
        first, second = [p for p in tx_events(h, m) if p["seqNo"] == 0]
        assert first == second and first["eventType"] == "Started"
        assert h.station.connector(1).transaction is not None
