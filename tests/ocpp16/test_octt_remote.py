"""OCTT 1.6 remote actions, resets, unlocking, remote trigger and data transfer.

Each test runs one compliance scenario (steps and tool validations from
spec/octt-1.6-test-case-document-2024-04.txt) with the real agent on the
simulated board against the test central system on loopback, in virtual time
where the scenario is clock-driven. The last test runs ``ocpp-agent run`` as a
process and checks that a Hard Reset re-executes it.
"""

import asyncio
import json
import os
import sys

from tests.harness import (TAG, AgentHarness, assert_no_power, fixed_transaction_id, get_key, hw, index_of,
                           reach_charging, statuses, until)
from tools.csms import OUT, TestCentralSystem

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ---------------------------------------------------------------------- helpers

async def charging(h, connector_id: int = 1, id_tag: str = TAG) -> int:
    """The OCTT reusable state Charging (plug in first, then remote start; the Authorize.req
    as AuthorizeRemoteTxRequests says) at ``TX_ID``; returns the transactionId."""
    fixed_transaction_id(h)
    authorize_remote = await get_key(h, "AuthorizeRemoteTxRequests") == "true"
    return (await reach_charging(h, connector_id, id_tag, authorize_remote=authorize_remote))["transactionId"]


async def settled_nothing(h, action: str, start: int, seconds: float = 0.2) -> None:
    """Give the agent time to (wrongly) send ``action``; assert it did not."""
    await h.settle(seconds)
    assert h.received(action, start) == [], h.received(action, start)


# ---------------------------------------------------------------------- remote start / stop

async def test_tc_010_remote_start_cable_plugged_in_first(tmp_path):
    """TC_010_CS Remote Start Charging Session – Cable Plugged in First."""
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        m = h.mark()
        tx_id = await charging(h)
        assert statuses(h, 1, m) == ["Preparing", "Charging"]
        assert h.station.connector(1).transaction.backend_id == tx_id
        assert h.received("StopTransaction") == []


async def test_tc_011_1_remote_start_first_then_plug(tmp_path):
    """TC_011_1_CS Remote Start Charging Session – Remote Start First (AuthorizeRemoteTxRequests true)."""
    async with AgentHarness(tmp_path, ocpp={"AuthorizeRemoteTxRequests": True}) as h:
        await h.wait_status(1, "Available")
        fixed_transaction_id(h)
        assert await get_key(h, "AuthorizeRemoteTxRequests") == "true"
        m = h.mark()
        reply = await h.cs.call("RemoteStartTransaction", connectorId=1, idTag=TAG)
        assert reply == {"status": "Accepted"}
        auth = await h.cs.wait_for("Authorize", start_index=m)
        assert auth == {"idTag": TAG}
        assert index_of(h, "RemoteStartTransaction.conf", m) < index_of(h, "Authorize", m)
        await h.wait_status(1, "Preparing", m)
        assert h.received("StartTransaction", m) == []  # no EV yet: no transaction
        assert_no_power(h)
        m2 = h.mark()
        h.sim.plug(1)
        start = await h.cs.wait_for("StartTransaction", start_index=m2)
        assert start["connectorId"] == 1 and start["idTag"] == TAG
        await h.wait_status(1, "Charging", m2)
        assert statuses(h, 1, m) == ["Preparing", "Charging"]
        s = hw(h)
        assert s["contactor_closed"] and s["power_w"] > 0


async def test_tc_011_2_remote_start_connection_timeout(tmp_path):
    """TC_011_2_CS Remote Start Charging Session – Time Out: back to Available after ConnectionTimeOut."""
    async with AgentHarness(tmp_path, ocpp={"ConnectionTimeOut": 30}) as h:
        await h.wait_status(1, "Available")
        assert await get_key(h, "AuthorizeRemoteTxRequests") == "false"
        assert await get_key(h, "ConnectionTimeOut") == "30"
        m = h.mark()
        reply = await h.cs.call("RemoteStartTransaction", connectorId=1, idTag=TAG)
        assert reply == {"status": "Accepted"}
        await h.wait_status(1, "Preparing", m)
        assert h.received("Authorize", m) == []
        await h.clock.advance(29)  # not yet
        await h.settle(0.1)
        assert statuses(h, 1, m) == ["Preparing"]
        await h.clock.advance(2)
        await h.wait_status(1, "Available", m)
        assert statuses(h, 1, m) == ["Preparing", "Available"]
        # The authorization is gone: a late plug-in starts nothing.
        m2 = h.mark()
        h.sim.plug(1)
        await h.wait_status(1, "Preparing", m2)
        await settled_nothing(h, "StartTransaction", m)
        assert_no_power(h)
        assert h.station.connector(1).transaction is None


async def test_tc_012_remote_stop(tmp_path):
    """TC_012_CS Remote Stop Charging Session: StopTransaction reason Remote, then Finishing."""
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        tx_id = await charging(h)
        m = h.mark()
        reply = await h.cs.call("RemoteStopTransaction", transactionId=tx_id)
        assert reply == {"status": "Accepted"}
        stop = await h.cs.wait_for("StopTransaction", start_index=m)
        assert stop["transactionId"] == tx_id and stop["reason"] == "Remote"
        assert "idTag" not in stop  # stopped by the central system, not by a tag
        assert stop["meterStop"] >= 0
        await h.wait_status(1, "Finishing", m)
        assert_no_power(h)
        assert statuses(h, 1, m) == ["Finishing"]
        m2 = h.mark()
        h.sim.unplug(1)
        await h.wait_status(1, "Available", m2)
        assert len(h.received("StopTransaction")) == 1


# ---------------------------------------------------------------------- resets

async def _reset_without_transaction(tmp_path, kind: str) -> None:
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        m = h.mark()
        assert await h.cs.call("ChangeAvailability", connectorId=1, type="Inoperative") == {"status": "Accepted"}
        await h.wait_status(1, "Unavailable", m)
        assert hw(h)["cp_state"] == "F" and not hw(h)["pwm_on"]
        await h.settle(0.05)
        assert statuses(h, 0, m) == []  # connector 0 has its own availability (OCPP 1.6 §4.9)
        m = h.mark()
        assert await h.cs.call("Reset", type=kind) == {"status": "Accepted"}
        assert await asyncio.wait_for(h.agent.wait(), 5) == kind.lower()
        assert h.received("StopTransaction", m) == []
        connections = h.cs.connections
        m = h.mark()
        await h.restart_agent()
        boot = await h.cs.wait_for("BootNotification", start_index=m)
        assert boot["chargePointVendor"] and boot["chargePointModel"]
        assert h.cs.connections == connections + 1
        # Unavailable persists across the reboot; the charger itself (connector 0) is Available.
        await h.wait_status(1, "Unavailable", m)
        await h.wait_status(0, "Available", m)
        assert statuses(h, 1, m) == ["Unavailable"] and statuses(h, 0, m) == ["Available"]
        assert index_of(h, "BootNotification", m) < index_of(h, "StatusNotification", m)
        s = hw(h)
        assert s["cp_state"] == "F" and not s["pwm_on"], "the EVSE must stay unavailable after the reboot"
        m = h.mark()
        assert await h.cs.call("ChangeAvailability", connectorId=1, type="Operative") == {"status": "Accepted"}
        await h.wait_status(1, "Available", m)
        assert hw(h)["cp_state"] == "A"


async def test_tc_013_hard_reset_without_transaction(tmp_path):
    """TC_013_CS Hard Reset Without transaction."""
    await _reset_without_transaction(tmp_path, "Hard")


async def test_tc_014_soft_reset_without_transaction(tmp_path):
    """TC_014_CS Soft Reset Without Transaction."""
    await _reset_without_transaction(tmp_path, "Soft")


async def test_tc_013_hard_reset_keeps_charge_point_unavailable(tmp_path):
    """TC_013_CS variant with connectorId 0: a Charge Point set Inoperative stays Unavailable
    (connector 0 and every connector) across a Hard Reset, and Operative makes it Available."""
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(0, "Available")
        m = h.mark()
        assert await h.cs.call("ChangeAvailability", connectorId=0, type="Inoperative") == {"status": "Accepted"}
        await h.wait_status(0, "Unavailable", m)
        await h.wait_status(1, "Unavailable", m)
        assert await h.cs.call("Reset", type="Hard") == {"status": "Accepted"}
        assert await asyncio.wait_for(h.agent.wait(), 5) == "hard"
        m = h.mark()
        await h.restart_agent()
        await h.cs.wait_for("BootNotification", start_index=m)
        await h.wait_status(0, "Unavailable", m)
        await h.wait_status(1, "Unavailable", m)
        assert "Available" not in statuses(h, 0, m) + statuses(h, 1, m)
        assert hw(h)["cp_state"] == "F"
        m = h.mark()
        assert await h.cs.call("ChangeAvailability", connectorId=0, type="Operative") == {"status": "Accepted"}
        await h.wait_status(0, "Available", m)
        await h.wait_status(1, "Available", m)


async def _reset_with_transaction(tmp_path, kind: str) -> None:
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        tx_id = await charging(h)

        async def slow_stop_conf(payload):  # the agent must wait for it before going down
            await asyncio.sleep(0.3)
            return {}

        h.cs.handlers["StopTransaction"] = slow_stop_conf
        m = h.mark()
        assert await h.cs.call("Reset", type=kind) == {"status": "Accepted"}
        assert await asyncio.wait_for(h.agent.wait(), 5) == kind.lower()
        assert_no_power(h)
        assert index_of(h, "StopTransaction.conf", m, direction=OUT) >= 0, "restarted before StopTransaction.conf"
        # Going down at once, as ``ocpp-agent run`` does when wait() returns.
        m_boot = h.mark()
        await h.restart_agent()
        await h.cs.wait_for("BootNotification", start_index=m_boot)
        stop = await h.cs.wait_for("StopTransaction", start_index=m, timeout_s=1)
        assert stop["transactionId"] == tx_id and stop["reason"] == kind + "Reset"
        i_stop = index_of(h, "StopTransaction", m)
        assert index_of(h, "Reset.conf", m) < i_stop < m_boot, "StopTransaction must be sent before the reboot"
        # Finishing is reported after StopTransaction and before the charger goes down.
        i_finishing = index_of(h, "StatusNotification", m,
                               pred=lambda p: p["connectorId"] == 1 and p["status"] == "Finishing")
        assert i_stop < i_finishing < m_boot, "Finishing must be reported before the reboot"
        m = m_boot
        await h.wait_status(0, "Available", m)
        after = await h.cs.wait_for("StatusNotification", lambda p: p["connectorId"] == 1, start_index=m)
        assert after["status"] in ("Finishing", "Preparing")
        assert index_of(h, "BootNotification", m) < index_of(h, "StatusNotification", m)
        assert h.station.connector(1).transaction is None
        assert_no_power(h)  # the EV is still plugged in after the reboot, but nothing is offered
        await h.settle(0.1)
        assert len(h.received("StopTransaction")) == 1 and h.received("StartTransaction", m) == []


async def test_tc_015_hard_reset_with_transaction(tmp_path):
    """TC_015_CS Hard Reset With Transaction: StopTransaction reason HardReset, then reboot."""
    await _reset_with_transaction(tmp_path, "Hard")


async def test_tc_016_soft_reset_with_transaction(tmp_path):
    """TC_016_CS Soft Reset With Transaction: StopTransaction reason SoftReset, then reboot."""
    await _reset_with_transaction(tmp_path, "Soft")


# ---------------------------------------------------------------------- unlocking

async def test_tc_017_1_unlock_without_session(tmp_path):
    """TC_017_1_CS Unlock connector - no charging session running (Not fixed cable)."""
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        h.sim.connectors[0].lock.locked = True  # a cable left locked in the socket
        m = h.mark()
        assert await h.cs.call("UnlockConnector", connectorId=1) == {"status": "Unlocked"}
        assert hw(h)["locked"] is False
        await settled_nothing(h, "StopTransaction", m)
        assert statuses(h, 1, m) == []


async def test_tc_018_1_unlock_with_session(tmp_path):
    """TC_018_1_CS Unlock Connector - With Charging Session (Not fixed cable)."""
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        tx_id = await charging(h)
        h.sim.connectors[0].lock.locked = True
        m = h.mark()
        assert await h.cs.call("UnlockConnector", connectorId=1) == {"status": "Unlocked"}
        stop = await h.cs.wait_for("StopTransaction", start_index=m)
        assert stop["transactionId"] == tx_id and stop["reason"] == "UnlockCommand"
        await h.wait_status(1, "Finishing", m)
        assert_no_power(h)
        assert hw(h)["locked"] is False
        m2 = h.mark()
        h.sim.unplug(1)
        await h.wait_status(1, "Available", m2)
        assert statuses(h, 1, m) == ["Finishing", "Available"]
        assert len(h.received("StopTransaction")) == 1


async def test_tc_031_unlock_unknown_connector(tmp_path):
    """TC_031_CS Unlock Connector – Unknown Connector: NotSupported."""
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        n = int(await get_key(h, "NumberOfConnectors"))
        assert n == 1
        m = h.mark()
        assert await h.cs.call("UnlockConnector", connectorId=n + 1) == {"status": "NotSupported"}
        assert await h.cs.call("UnlockConnector", connectorId=0) == {"status": "NotSupported"}
        await h.settle(0.1)
        assert statuses(h, 1, m) == []


# ---------------------------------------------------------------------- remote non-happy flows

async def test_tc_026_remote_start_rejected_connector_occupied(tmp_path):
    """TC_026_CS Remote Start Charging Session – Rejected: a transaction runs on the connector."""
    async with AgentHarness(tmp_path, ocpp={"LocalPreAuthorize": False}) as h:
        await h.wait_status(1, "Available")
        tx_id = await charging(h)
        m = h.mark()
        reply = await h.cs.call("RemoteStartTransaction", connectorId=1, idTag="TAG-2")
        assert reply == {"status": "Rejected"}
        await settled_nothing(h, "StartTransaction", m)
        assert h.received("Authorize", m) == [] and h.received("StopTransaction", m) == []
        assert statuses(h, 1, m) == []
        tx = h.station.connector(1).transaction
        assert tx.backend_id == tx_id and tx.id_tag == TAG
        assert hw(h)["contactor_closed"]  # the running session is untouched


async def test_tc_026_remote_start_rejected_connector_unavailable(tmp_path):
    """TC_026_CS Remote Start Charging Session – Rejected: the connector is Unavailable."""
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        m = h.mark()
        assert await h.cs.call("ChangeAvailability", connectorId=1, type="Inoperative") == {"status": "Accepted"}
        await h.wait_status(1, "Unavailable", m)
        h.sim.plug(1)
        m = h.mark()
        reply = await h.cs.call("RemoteStartTransaction", connectorId=1, idTag=TAG)
        assert reply == {"status": "Rejected"}
        await settled_nothing(h, "StartTransaction", m)
        assert statuses(h, 1, m) == []
        assert_no_power(h)


async def test_tc_027_remote_start_connector_zero_rejected(tmp_path):
    """TC_027_CS Remote start transaction - connector id shall not be 0."""
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        h.sim.plug(1)
        await h.wait_status(1, "Preparing")
        m = h.mark()
        reply = await h.cs.call("RemoteStartTransaction", connectorId=0, idTag=TAG)
        assert reply == {"status": "Rejected"}
        await settled_nothing(h, "StartTransaction", m)
        assert h.received("Authorize", m) == [] and statuses(h, 1, m) == []
        assert_no_power(h)


async def test_tc_028_remote_stop_unknown_transaction_rejected(tmp_path):
    """TC_028_CS Remote Stop Transaction – Rejected: unknown transactionId."""
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        tx_id = await charging(h)
        m = h.mark()
        reply = await h.cs.call("RemoteStopTransaction", transactionId=tx_id + 1)
        assert reply == {"status": "Rejected"}
        await settled_nothing(h, "StopTransaction", m)
        assert statuses(h, 1, m) == []
        s = hw(h)
        assert s["contactor_closed"] and s["power_w"] > 0  # the real transaction keeps charging


# ---------------------------------------------------------------------- remote trigger

async def test_tc_054_trigger_message(tmp_path):
    """TC_054_CS Trigger Message: Accepted, then the requested message, for every supported one."""
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        assert "RemoteTrigger" in (await get_key(h, "SupportedFeatureProfiles")).split(",")
        cases = [
            ("MeterValues", 1, lambda p: p["connectorId"] == 1),
            ("Heartbeat", None, None),
            ("StatusNotification", 1, lambda p: p["connectorId"] == 1),
            ("DiagnosticsStatusNotification", None, None),
            ("FirmwareStatusNotification", None, None),
            ("BootNotification", None, None),
        ]
        for requested, connector_id, pred in cases:
            m = h.mark()
            args = {"requestedMessage": requested}
            if connector_id is not None:
                args["connectorId"] = connector_id
            assert await h.cs.call("TriggerMessage", **args) == {"status": "Accepted"}, requested
            payload = await h.cs.wait_for(requested, pred, start_index=m, timeout_s=2)
            i_conf = index_of(h, "TriggerMessage.conf", m)
            assert 0 <= i_conf < index_of(h, requested, m, pred=pred), "%s sent before the conf" % requested
            if requested == "MeterValues":
                assert "transactionId" not in payload
                values = payload["meterValue"][0]["sampledValue"]
                assert all(v["context"] == "Trigger" for v in values)
                energy = [v for v in values if v["measurand"] == "Energy.Active.Import.Register"]
                assert len(energy) == 1 and energy[0]["unit"] == "Wh"
            elif requested == "StatusNotification":
                assert payload["status"] == "Available" and payload["errorCode"] == "NoError"
                await h.settle(0.05)
                assert [p["connectorId"] for p in h.received("StatusNotification", m)] == [1]
            elif requested in ("DiagnosticsStatusNotification", "FirmwareStatusNotification"):
                assert payload == {"status": "Idle"}
            elif requested == "BootNotification":
                assert payload["chargePointVendor"] and payload["chargePointModel"]


async def test_tc_055_trigger_message_rejected(tmp_path):
    """TC_055_CS Trigger Message - Rejected: MeterValues for connector NumberOfConnectors + 1."""
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        n = int(await get_key(h, "NumberOfConnectors"))
        m = h.mark()
        reply = await h.cs.call("TriggerMessage", requestedMessage="MeterValues", connectorId=n + 1)
        assert reply == {"status": "Rejected"}
        await settled_nothing(h, "MeterValues", m)


# ---------------------------------------------------------------------- data transfer

async def test_tc_062_data_transfer_to_charge_point(tmp_path):
    """TC_062_CS Data Transfer to a Charge Point: an unknown vendorId is not accepted."""
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        reply = await h.cs.call("DataTransfer", vendorId="org.example.unknown", messageId="Ping", data="hello")
        assert reply["status"] == "UnknownVendorId"
        assert h.cs.connected


# ---------------------------------------------------------------------- a real re-exec

async def test_tc_013_hard_reset_reexecutes_the_process(tmp_path):
    """TC_013_CS Hard Reset, end to end: ``ocpp-agent run`` answers Reset Hard by re-executing
    itself (same PID, os.execv) and boots again; SIGTERM then ends it cleanly."""
    async with TestCentralSystem(quiet=True, protocols=("ocpp1.6",)) as cs:
        config = tmp_path / "agent.toml"
        config.write_text("[station]\nid = \"CPX\"\ndata_dir = %s\nlog_level = \"INFO\"\n\n[csms]\nurl = %s\n"
                          % (json.dumps(str(tmp_path / "data")), json.dumps(cs.url)))
        log_path = tmp_path / "agent.log"
        env = dict(os.environ, PYTHONPATH=REPO, PYTHONUNBUFFERED="1")
        with open(log_path, "wb") as log_file:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "agent.app.cli", "run", "--config", str(config), cwd=REPO, env=env,
                stdin=asyncio.subprocess.DEVNULL, stdout=log_file, stderr=log_file)
        try:
            try:
                station = await cs.wait_for_station("CPX", timeout_s=8)
                await station.wait_for("BootNotification", timeout_s=5)
                await station.wait_for("StatusNotification", lambda p: p["connectorId"] == 1, timeout_s=5)
                assert station.connections == 1
                m = len(station.messages)
                assert await station.call("Reset", type="Hard") == {"status": "Accepted"}
                boot = await station.wait_for("BootNotification", start_index=m, timeout_s=8)
                assert boot["chargePointVendor"] and boot["chargePointModel"]
                await station.wait_for("StatusNotification", lambda p: p["connectorId"] == 0, start_index=m,
                                       timeout_s=5)
                assert station.connections == 2
                assert proc.returncode is None, "the process must live on (exec keeps the PID)"
                text = log_path.read_text()
                assert "re-executing for hard reset" in text
                assert text.count("agent CPX running") == 2, text
            except BaseException:
                sys.stderr.write(log_path.read_text())
                raise
            proc.terminate()
            assert await asyncio.wait_for(proc.wait(), 8) == 0
            await until(lambda: not station.connected, 5, "station still connected")
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
