"""Core messages not covered by a conformance scenario: DataTransfer from the charge point."""

import pytest
from ocpp.exceptions import NotImplementedError as OcppNotImplemented

from tests.harness import AgentHarness


async def test_data_transfer_from_charge_point(tmp_path):
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        h.cs.handlers["DataTransfer"] = lambda p: {"status": "Accepted", "data": "echo:" + p.get("data", "")}
        status, data = await h.agent.client.data_transfer("org.example", "ping", "42")
        assert (status, data) == ("Accepted", "echo:42")
        sent = h.received("DataTransfer")
        assert sent == [{"vendorId": "org.example", "messageId": "ping", "data": "42"}]

        def refuse(_payload):
            raise OcppNotImplemented("no vendor extensions here")
        h.cs.handlers["DataTransfer"] = refuse
        with pytest.raises(OcppNotImplemented):
            await h.agent.client.data_transfer("org.example")
        # The session survives a refused DataTransfer.
        assert (await h.cs.call("GetConfiguration", key=["HeartbeatInterval"]))["configurationKey"]
