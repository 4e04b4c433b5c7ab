"""A full OCPP 2.0.1 session against the independent, schema-strict central system
(Node.js ``ocpp-rpc`` in strict mode, serving only ``ocpp2.0.1``): every request and
reply the agent sends is validated against the 2.0.1 schemas by a library that is
not the one the agent uses. The agent is pinned to 2.0.1 (experimental, opt-in).
"""

import os

import pytest

from agent.app.config import parse_config
from agent.app.runner import Agent
from hal.runtime.clock import Clock
from tools import strict_csms
from tools.strict_csms import StrictCentralSystem

pytestmark = pytest.mark.skipif(not strict_csms.available() and not os.environ.get("OCPP_AGENT_CI"),
                                reason="node (and npm) not installed (CI fails instead of skipping)")

STATION = "STRICT201"


def _status(p, status):
    return p["evseId"] == 1 and p["connectorStatus"] == status


def _event(event_type):
    return lambda p: p["eventType"] == event_type


async def test_full_201_session_against_strict_ocpp_rpc_central_system(tmp_path):
    async with StrictCentralSystem(protocols=("ocpp2.0.1",)) as cs:
        config = parse_config(str(tmp_path / "agent.toml"), {
            "station": {"id": STATION, "data_dir": str(tmp_path / "data"), "serial_number": "SN-1"},
            "csms": {"url": cs.url, "ocpp_version": "2.0.1"},
            "ocpp": {"MeterValueSampleInterval": 1, "WebSocketPingInterval": 0},
            "board": {"evse": {"speed": 60}},
        })
        agent = Agent(config, clock=Clock())
        await agent.start()
        try:
            sim = agent.loaded.sim
            boot = await cs.wait_for("BootNotification", station=STATION)
            assert boot["reason"] == "PowerUp" and boot["chargingStation"]["serialNumber"] == "SN-1"
            await cs.wait_for("StatusNotification", predicate=lambda p: _status(p, "Available"))
            assert cs.protocol_of(STATION) == "ocpp2.0.1"

            # CSMS→CS requests: the agent's replies are validated by the strict peer too.
            got = await cs.send(STATION, "GetVariables", {"getVariableData": [
                {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}},
                {"component": {"name": "Nope"}, "variable": {"name": "Nope"}}]})
            assert [r["attributeStatus"] for r in got["getVariableResult"]] == ["Accepted", "UnknownComponent"]
            got = await cs.send(STATION, "SetVariables", {"setVariableData": [
                {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"},
                 "attributeValue": "120"}]})
            assert got["setVariableResult"][0]["attributeStatus"] == "Accepted"
            assert (await cs.send(STATION, "GetBaseReport",
                                  {"requestId": 1, "reportBase": "SummaryInventory"}))["status"] == "Accepted"
            await cs.wait_for("NotifyReport")
            assert (await cs.send(STATION, "TriggerMessage",
                                  {"requestedMessage": "Heartbeat"}))["status"] == "Accepted"
            await cs.wait_for("Heartbeat")
            assert (await cs.send(STATION, "DataTransfer", {"vendorId": "x"}))["status"] == "UnknownVendorId"

            sim.plug(1)
            await cs.wait_for("StatusNotification", predicate=lambda p: _status(p, "Occupied"))
            sim.swipe("STRICTTAG")
            await cs.wait_for("Authorize")
            started = await cs.wait_for("TransactionEvent", predicate=_event("Started"))
            assert started["idToken"] == {"idToken": "STRICTTAG", "type": "ISO14443"}
            tx_id = started["transactionInfo"]["transactionId"]
            charging = await cs.wait_for("TransactionEvent", timeout_s=8, predicate=lambda p: (
                p["eventType"] == "Updated" and p["triggerReason"] == "ChargingStateChanged"))
            assert charging["transactionInfo"]["chargingState"] == "Charging"
            updated = await cs.wait_for("TransactionEvent", timeout_s=8, predicate=lambda p: (
                p["eventType"] == "Updated" and p["triggerReason"] == "MeterValuePeriodic"))
            assert updated["meterValue"][0]["sampledValue"]
            status = await cs.send(STATION, "GetTransactionStatus", {"transactionId": tx_id})
            assert status["ongoingIndicator"] is True
            assert (await cs.send(STATION, "UnlockConnector", {"evseId": 1, "connectorId": 1}))["status"] == (
                "OngoingAuthorizedTransaction")
            assert (await cs.send(STATION, "RequestStopTransaction",
                                  {"transactionId": tx_id}))["status"] == "Accepted"
            ended = await cs.wait_for("TransactionEvent", predicate=_event("Ended"))
            assert ended["transactionInfo"]["stoppedReason"] == "Remote"
            assert ended["transactionInfo"]["transactionId"] == tx_id
            sim.unplug(1)
            await cs.wait_for("StatusNotification", predicate=lambda p: _status(p, "Available"),
                              start_index=len(cs.events) - 1)
        finally:
            await agent.stop()
        assert cs.station_errors() == [], "the strict central system rejected agent frames"
