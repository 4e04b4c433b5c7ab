"""TriggerMessage: what is sent after the answer follows the answer.

A Rejected TriggerMessage sends nothing (MeterValues for connector 0: the station
has no charger-level meter); an Accepted one still sends the requested message.
"""

from tests.harness import AgentHarness, index_of, quiet


async def test_trigger_meter_values_connector_0_rejected_sends_nothing(tmp_path):
    async with AgentHarness(tmp_path, board={"evse": {"connectors": 2}}) as h:
        await h.wait_status(2, "Available")
        m = h.mark()
        reply = await h.cs.call("TriggerMessage", requestedMessage="MeterValues", connectorId=0)
        assert reply == {"status": "Rejected"}
        await h.clock.advance(5)  # bounded: virtual time on (no periodic sampling without a transaction)
        await quiet(h, 0.3)
        assert h.received("MeterValues", m) == []

        # The same request for connector 1 is Accepted and sends that connector's values only.
        m = h.mark()
        reply = await h.cs.call("TriggerMessage", requestedMessage="MeterValues", connectorId=1)
        assert reply == {"status": "Accepted"}
        payload = await h.cs.wait_for("MeterValues", start_index=m, timeout_s=2)
        assert payload["connectorId"] == 1
        assert 0 <= index_of(h, "TriggerMessage.conf", m) < index_of(h, "MeterValues", m)
        await quiet(h, 0.2)
        assert [p["connectorId"] for p in h.received("MeterValues", m)] == [1]


async def test_trigger_meter_values_without_connector_sends_every_connector(tmp_path):
    async with AgentHarness(tmp_path, board={"evse": {"connectors": 2}}) as h:
        await h.wait_status(2, "Available")
        m = h.mark()
        reply = await h.cs.call("TriggerMessage", requestedMessage="MeterValues")
        assert reply == {"status": "Accepted"}
        await h.cs.wait_for("MeterValues", lambda p: p["connectorId"] == 2, start_index=m, timeout_s=2)
        await quiet(h, 0.2)
        assert sorted(p["connectorId"] for p in h.received("MeterValues", m)) == [1, 2]
