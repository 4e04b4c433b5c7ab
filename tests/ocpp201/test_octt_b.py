"""OCTT 2.0.1 block B (provisioning): boot Pending / Rejected, resets and what the next boot
says, the statuses after an outage shorter or longer than OfflineThreshold, and the
reconnection back-off. The agent on the simulated board against the test central system
over real websockets (tests/ocpp201/octt201.py); every agent frame is schema-checked.

Each test follows its OCTT case (spec/OCPP-2.0.1_edition3_part6-testcases.txt) and checks
that case's tool validations.
"""

from ocpp.exceptions import SecurityError

from tests.harness import AgentHarness, assert_charging_hw, keys, quiet, until
from tests.ocpp201.octt201 import TAG, errors, harness, local_start, received, tx_events, wait_connector
from tools.csms import IN, TestCentralSystem

TAG2 = "11223344"


def pending_harness(tmp_path, status: str, interval_s: int, **kw) -> AgentHarness:
    cs = TestCentralSystem(quiet=True, protocols=("ocpp2.0.1",), boot_status=status, boot_interval_s=interval_s)
    return AgentHarness(tmp_path, csms=cs, csms_extra={"ocpp_version": "2.0.1"}, ocpp=keys(), **kw)


def calls(h, start: int = 0) -> list:
    """The requests the agent sent since ``start`` (their actions, in order)."""
    return [m.action for m in h.cs.messages[start:] if m.direction == IN and "." not in m.action]


def assert_every_connector_reported(h, expected: dict, start: int) -> None:
    """Post scenario validation: a StatusNotification for every connector since ``start``,
    the last one of each with the status in ``expected`` (evse id -> connectorStatus)."""
    last = {p["evseId"]: p for p in received(h, "StatusNotification", start)}
    assert sorted(last) == sorted(expected), last
    for evse_id, status in expected.items():
        assert last[evse_id]["connectorId"] == 1 and last[evse_id]["connectorStatus"] == status, last[evse_id]


async def set_variables(h, **values) -> None:
    """SetVariables on OCPPCommCtrlr (the OCTT configuration state); each must be Accepted."""
    got = await h.cs.call("SetVariables", setVariableData=[
        {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": name}, "attributeValue": str(value)}
        for name, value in values.items()])
    assert [r["attributeStatus"] for r in got["setVariableResult"]] == ["Accepted"] * len(values), got


async def reboot_after_reset(h) -> int:
    """The agent asked for its restart (the runner would exit and be started again): start a
    new agent on the same data directory; the index of its first message in the record."""
    await until(lambda: h.agent.restart_requested is not None, clock=h.clock, step_s=1)
    m = h.mark()
    await h.restart_agent()
    await h.cs.wait_for("BootNotification", start_index=m)
    return m


# ---------------------------------------------------------------------- B01-B03: boot

async def test_tc_b_02_boot_pending_configurable_then_triggered_boot(tmp_path):
    """Pending: the CSMS may configure and read the station (SetVariables, GetVariables,
    GetBaseReport), a RequestStartTransaction is Rejected, the station sends nothing of its
    own; a TriggerMessage BootNotification is Accepted and the next BootNotification goes out
    at once with reason Triggered; Accepted: every connector's status."""
    async with pending_harness(tmp_path, "Pending", 300, board={"evse": {"connectors": 2}}) as h:
        assert received(h, "BootNotification")[0]["reason"] == "PowerUp"
        await quiet(h)
        await set_variables(h, OfflineThreshold=300)  # steps 3-4
        got = await h.cs.call("GetVariables", getVariableData=[
            {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "OfflineThreshold"}}])
        assert got["getVariableResult"][0]["attributeStatus"] == "Accepted"  # step 6
        assert got["getVariableResult"][0]["attributeValue"] == "300"
        m = h.mark()
        assert await h.cs.call("GetBaseReport", requestId=5, reportBase="FullInventory") == {"status": "Accepted"}
        reports = []
        while not reports or reports[-1].get("tbc"):  # steps 9-10: the whole report
            reports.append(await h.cs.wait_for("NotifyReport", lambda p: p["seqNo"] == len(reports), start_index=m))
        got = await h.cs.call("RequestStartTransaction", idToken={"idToken": "REMOTE1", "type": "Central"},
                              evseId=1, remoteStartId=1)
        assert got["status"] == "Rejected"  # step 12
        h.sim.plug(1)
        await quiet(h)
        assert h.station.connector(1).transaction is None
        assert set(calls(h)) == {"BootNotification", "NotifyReport"}, calls(h)  # nothing else while Pending
        h.cs_server.boot_status = "Accepted"
        m = h.mark()
        assert await h.cs.call("TriggerMessage", requestedMessage="BootNotification") == {"status": "Accepted"}
        boot = await h.cs.wait_for("BootNotification", start_index=m)  # well before the interval (300 s)
        assert boot["reason"] == "Triggered"  # step 15
        assert calls(h, m)[0] == "BootNotification"
        await wait_connector(h, "Occupied", 1, start=m)
        await wait_connector(h, "Available", 2, start=m)
        assert_every_connector_reported(h, {1: "Occupied", 2: "Available"}, m)  # step 17
        assert h.agent.client.online and not errors(h)


async def test_tc_b_03_boot_rejected_waits_the_interval_then_boots_again(tmp_path):
    """Rejected with an interval: no other message, the next BootNotification no sooner than
    the interval; Accepted: every connector's status, Available."""
    async with pending_harness(tmp_path, "Rejected", 60, board={"evse": {"connectors": 2}}) as h:
        await h.clock.advance(59)
        await quiet(h)
        assert calls(h) == ["BootNotification"]
        h.cs_server.boot_status = "Accepted"
        m = h.mark()
        await h.clock.advance(1)
        await h.cs.wait_for("BootNotification", start_index=m)
        await until(lambda: len(received(h, "StatusNotification", m)) == 2)
        assert calls(h)[:2] == ["BootNotification", "BootNotification"]
        assert_every_connector_reported(h, {1: "Available", 2: "Available"}, m)  # step 5
        assert not errors(h)


async def test_tc_b_30_requests_while_rejected_get_security_error(tmp_path):
    """While the boot is Rejected, a CSMS request is answered with CALLERROR SecurityError
    (B03.FR.08); the station itself sends nothing but BootNotification."""
    async with pending_harness(tmp_path, "Rejected", 60, allowed_errors=("SecurityError",)) as h:
        try:
            await h.cs.call("GetBaseReport", requestId=1, reportBase="FullInventory")
        except SecurityError:
            pass
        else:
            raise AssertionError("GetBaseReport was answered while Rejected")
        await quiet(h)
        assert calls(h) == ["BootNotification"] and not received(h, "NotifyReport")
        # Accepted later: requests are answered again
        h.cs_server.boot_status = "Accepted"
        await h.clock.advance(60)
        await wait_connector(h, "Available")
        assert await h.cs.call("GetBaseReport", requestId=2, reportBase="FullInventory") == {"status": "Accepted"}


# ---------------------------------------------------------------------- B11/B12: reset

async def test_tc_b_20_reset_on_idle_reboots_and_boots_with_remote_reset(tmp_path):
    """TC_B_20 to its end: after the reboot the BootNotification's reason is RemoteReset and
    every connector's status is reported; the reason is given once (the next run boots PowerUp)."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        assert await h.cs.call("Reset", type="OnIdle") == {"status": "Accepted"}
        m = await reboot_after_reset(h)
        assert received(h, "BootNotification", m)[0]["reason"] == "RemoteReset"
        await wait_connector(h, "Available", start=m)
        m = h.mark()
        await h.restart_agent()  # a restart that no reset asked for
        await h.cs.wait_for("BootNotification", start_index=m)
        assert received(h, "BootNotification", m)[0]["reason"] == "PowerUp"


async def test_tc_b_22_immediate_reset_with_a_transaction_ends_it_then_remote_reset(tmp_path):
    async with harness(tmp_path, board={"evse": {"connectors": 2}}) as h:
        await local_start(h)
        await until(lambda: h.sim.status()["connectors"][0]["power_w"] > 0, clock=h.clock, step_s=1)
        assert_charging_hw(h)  # EnergyTransferStarted
        m = h.mark()
        assert await h.cs.call("Reset", type="Immediate") == {"status": "Accepted"}  # step 2
        ended = await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Ended", start_index=m)
        assert ended["triggerReason"] == "ResetCommand"  # step 3
        assert ended["transactionInfo"]["stoppedReason"] == "ImmediateReset"
        assert ended["transactionInfo"]["chargingState"] == "EVConnected"
        assert "idToken" not in ended
        m = await reboot_after_reset(h)
        assert received(h, "BootNotification", m)[0]["reason"] == "RemoteReset"  # step 5
        await until(lambda: len(received(h, "StatusNotification", m)) == 2)
        assert_every_connector_reported(h, {1: "Occupied", 2: "Available"}, m)  # step 7
        assert h.station.connector(1).transaction is None
        assert not errors(h)


async def test_tc_b_23_unavailable_persists_over_a_reset(tmp_path):
    async with harness(tmp_path, board={"evse": {"connectors": 2}}) as h:
        await wait_connector(h, "Available", 2)
        m = h.mark()
        assert await h.cs.call("ChangeAvailability", operationalStatus="Inoperative",
                               evse={"id": 1}) == {"status": "Accepted"}
        await wait_connector(h, "Unavailable", 1, start=m)
        assert await h.cs.call("Reset", type="OnIdle") == {"status": "Accepted"}  # step 2
        m = await reboot_after_reset(h)
        assert received(h, "BootNotification", m)[0]["reason"] == "RemoteReset"  # step 3
        await until(lambda: len(received(h, "StatusNotification", m)) == 2)
        assert_every_connector_reported(h, {1: "Unavailable", 2: "Available"}, m)  # step 5
        h.sim.plug(1)
        h.sim.swipe(TAG)
        await quiet(h)
        assert h.station.connector(1).transaction is None  # still inoperative


async def test_tc_b_28_29_reset_of_one_evse_is_rejected_with_or_without_a_transaction(tmp_path):
    """Resetting a single EVSE is not supported: Rejected, nothing restarts, a running
    transaction goes on."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        assert await h.cs.call("Reset", type="OnIdle", evseId=1) == {"status": "Rejected"}  # TC_B_28
        await local_start(h)
        m = h.mark()
        assert await h.cs.call("Reset", type="OnIdle", evseId=1) == {"status": "Rejected"}  # TC_B_29
        assert await h.cs.call("Reset", type="Immediate", evseId=1) == {"status": "Rejected"}
        await h.clock.advance(10)
        await quiet(h)
        assert h.agent.restart_requested is None
        assert h.station.connector(1).transaction is not None
        assert not [p for p in tx_events(h, m) if p["eventType"] == "Ended"]


async def test_tc_b_41_on_idle_reset_waits_for_every_transaction_then_scheduled_reset(tmp_path):
    async with harness(tmp_path, board={"evse": {"connectors": 2}}) as h:
        await local_start(h)
        m = h.mark()
        await local_start(h, TAG2, evse=2)
        assert await h.cs.call("Reset", type="OnIdle") == {"status": "Scheduled"}  # step 2
        m = h.mark()
        h.sim.swipe(TAG)  # step 3: StopAuthorized on EVSE 1 (TxStopPoint Authorized ends it)
        await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Ended" and p["evse"]["id"] == 1,
                            start_index=m)
        h.sim.unplug(1)  # steps 4-5
        await wait_connector(h, "Available", 1, start=m)
        await h.clock.advance(30)
        await quiet(h)
        assert h.agent.restart_requested is None  # EVSE 2 still charges
        assert h.station.connector(2).transaction is not None
        h.sim.plug(1)
        h.sim.swipe(TAG)
        await quiet(h)
        assert h.station.connector(1).transaction is None  # no new transaction while the reset waits
        h.sim.unplug(1)
        h.sim.swipe(TAG2)  # step 7
        await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Ended" and p["evse"]["id"] == 2,
                            start_index=m)
        m = await reboot_after_reset(h)
        assert received(h, "BootNotification", m)[0]["reason"] == "ScheduledReset"  # step 11
        await until(lambda: len(received(h, "StatusNotification", m)) == 2)
        assert_every_connector_reported(h, {1: "Available", 2: "Occupied"}, m)  # step 13
        assert not errors(h)


# ---------------------------------------------------------------------- B04: offline, part 4 5.3: reconnecting

async def test_tc_b_51_offline_longer_than_the_threshold_reports_every_connector(tmp_path):
    async with harness(tmp_path, board={"evse": {"connectors": 2}}) as h:
        await wait_connector(h, "Available", 2)
        await set_variables(h, OfflineThreshold=30, RetryBackOffWaitMinimum=32, RetryBackOffRandomRange=0)
        port = await h.go_offline()  # step 1
        h.sim.plug(1)  # step 2
        await quiet(h)
        await h.cs_server.start(port=port)
        m = h.mark()
        await h.clock.advance(31)
        await quiet(h)
        assert not h.cs.connected  # the back-off: no attempt before RetryBackOffWaitMinimum
        await h.clock.advance(2)
        await until(lambda: len(received(h, "StatusNotification", m)) == 2)  # step 4
        assert_every_connector_reported(h, {1: "Occupied", 2: "Available"}, m)
        assert "BootNotification" not in calls(h, m)  # a reconnection, not a reboot
        await quiet(h)
        assert len(received(h, "StatusNotification", m)) == 2


async def test_tc_b_52_offline_shorter_than_the_threshold_reports_only_changed_connectors(tmp_path):
    async with harness(tmp_path, board={"evse": {"connectors": 2}}) as h:
        await wait_connector(h, "Available", 2)
        await set_variables(h, OfflineThreshold=30, RetryBackOffWaitMinimum=28, RetryBackOffRandomRange=0)
        port = await h.go_offline()  # step 1
        h.sim.plug(1)  # step 2
        await quiet(h)
        await h.cs_server.start(port=port)
        m = h.mark()
        await h.clock.advance(29)
        await until(lambda: received(h, "StatusNotification", m))  # step 3
        await quiet(h)
        got = received(h, "StatusNotification", m)
        assert [(p["evseId"], p["connectorId"], p["connectorStatus"]) for p in got] == [(1, 1, "Occupied")]
        assert "BootNotification" not in calls(h, m)


async def test_tc_b_57_reconnection_back_off_doubles_after_a_failed_attempt(tmp_path):
    """RetryBackOffRepeatTimes 2, RandomRange 0, WaitMinimum 10 s: after the CSMS closes the
    connection the station reconnects no sooner than 10 s (steps 1-3); again 10 s after the
    next close (step 5); that attempt refused, the next one no sooner than 20 s later (step 7)."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        await set_variables(h, RetryBackOffRepeatTimes=2, RetryBackOffRandomRange=0, RetryBackOffWaitMinimum=10)
        await h.cs.disconnect()  # step 1
        await until(lambda: not h.agent.client.online)
        await h.clock.advance(9.5)
        await quiet(h)
        assert h.cs.connections == 1  # not before WaitMinimum (step 2)
        await h.clock.advance(1)
        await until(lambda: h.cs.connected and h.agent.client.online)  # step 3
        assert h.cs.connections == 2
        port = await h.go_offline()  # step 4, and step 6: attempts are refused
        await h.clock.advance(10.5)  # step 5: the attempt after WaitMinimum fails
        await quiet(h)
        await h.cs_server.start(port=port)
        await h.clock.advance(19)
        await quiet(h)
        assert h.cs.connections == 2  # step 7: the next attempt waits twice as long
        await h.clock.advance(1)
        await until(lambda: h.cs.connected and h.agent.client.online)  # step 8
        assert h.cs.connections == 3
        assert not errors(h)
