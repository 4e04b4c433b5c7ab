"""A full session against an independent, schema-strict central system.

The peer in tools/csms.py shares the ``ocpp`` library with the agent, so a bug
in that library (or in how we use it) could hide from it. This peer is Node.js
``ocpp-rpc`` in strict mode: it validates every request *and* reply the agent
sends against the OCPP 1.6 schemas, date-time formats included.
"""

import os

import pytest

from hal.runtime.clock import Clock
from agent.app.config import parse_config
from agent.app.runner import Agent
from tools import strict_csms
from tools.strict_csms import StrictCentralSystem

pytestmark = pytest.mark.skipif(not strict_csms.available() and not os.environ.get("OCPP_AGENT_CI"),
                                reason="node (and npm) not installed (CI fails instead of skipping)")


def _status(p, status):
    return p["connectorId"] == 1 and p["status"] == status


async def test_full_session_against_strict_ocpp_rpc_central_system(tmp_path):
    async with StrictCentralSystem() as cs:
        config = parse_config(str(tmp_path / "agent.toml"), {
            "station": {"id": "STRICT1", "data_dir": str(tmp_path / "data")},
            "csms": {"url": cs.url},
            "ocpp": {"MeterValueSampleInterval": 1, "ClockAlignedDataInterval": 1,
                     "StopTxnSampledData": "Energy.Active.Import.Register,Power.Active.Import"},
            "board": {"evse": {"speed": 60}},
        })
        agent = Agent(config, clock=Clock())
        await agent.start()
        try:
            sim = agent.loaded.sim
            boot = await cs.wait_for("BootNotification", station="STRICT1")
            assert boot["chargePointModel"]
            await cs.wait_for("StatusNotification", predicate=lambda p: _status(p, "Available"))

            # CS→CP requests: the agent's replies are validated by the strict peer too.
            conf = await cs.send("STRICT1", "GetConfiguration", {"key": ["HeartbeatInterval", "NoSuchKey"]})
            assert conf["unknownKey"] == ["NoSuchKey"]
            assert (await cs.send("STRICT1", "ChangeConfiguration",
                                  {"key": "HeartbeatInterval", "value": "120"}))["status"] == "Accepted"
            assert (await cs.send("STRICT1", "TriggerMessage",
                                  {"requestedMessage": "Heartbeat"}))["status"] == "Accepted"
            await cs.wait_for("Heartbeat")
            assert (await cs.send("STRICT1", "DataTransfer", {"vendorId": "x"}))["status"] == "UnknownVendorId"

            sim.plug(1)
            await cs.wait_for("StatusNotification", predicate=lambda p: _status(p, "Preparing"))
            sim.swipe("STRICT-TAG")
            await cs.wait_for("Authorize")
            start = await cs.wait_for("StartTransaction")
            assert start["idTag"] == "STRICT-TAG"
            await cs.wait_for("StatusNotification", predicate=lambda p: _status(p, "Charging"))
            sampled = await cs.wait_for("MeterValues", timeout_s=5,
                                        predicate=lambda p: p.get("transactionId") is not None)
            assert sampled["meterValue"][0]["sampledValue"]
            assert (await cs.send("STRICT1", "TriggerMessage", {"requestedMessage": "MeterValues",
                                                                "connectorId": 1}))["status"] == "Accepted"
            tx_id = sampled["transactionId"]
            assert (await cs.send("STRICT1", "RemoteStopTransaction",
                                  {"transactionId": tx_id}))["status"] == "Accepted"
            stop = await cs.wait_for("StopTransaction")
            assert stop["transactionId"] == tx_id and stop["reason"] == "Remote"
            assert stop["meterStop"] >= start["meterStart"]
            assert stop.get("transactionData"), "StopTxnSampledData must be reported"
            await cs.wait_for("StatusNotification", predicate=lambda p: _status(p, "Finishing"))
            sim.unplug(1)
            await cs.wait_for("StatusNotification", predicate=lambda p: _status(p, "Available"),
                              start_index=len(cs.events) - 1)
        finally:
            await agent.stop()
        assert cs.station_errors() == [], "the strict central system rejected agent frames"
