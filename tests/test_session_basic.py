"""Core charging sessions end to end: agent on the simulated board, peer on loopback."""

from tests.harness import AgentHarness


async def test_tc_001_cold_boot(tmp_path):
    """TC_001_CS Cold Boot Charge Point: BootNotification, then the status of every connector."""
    async with AgentHarness(tmp_path) as h:
        boot = await h.cs.wait_for("BootNotification")
        assert boot["chargePointVendor"] and boot["chargePointModel"]
        await h.wait_status(0, "Available")
        await h.wait_status(1, "Available")
        actions = [m.action for m in h.cs.messages if m.direction == "→"]
        assert actions[0] == "BootNotification"
        assert h.cs.subprotocol == "ocpp1.6"


async def test_tc_003_plugin_first(tmp_path):
    """TC_003_CS Regular Charging Session - Plugin First."""
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        m = h.mark()
        h.sim.plug(1)
        await h.wait_status(1, "Preparing", m)
        h.sim.swipe("TAG-1")
        auth = await h.cs.wait_for("Authorize", start_index=m)
        assert auth == {"idTag": "TAG-1"}
        start = await h.cs.wait_for("StartTransaction", start_index=m)
        assert start["connectorId"] == 1 and start["idTag"] == "TAG-1" and start["meterStart"] == 0
        await h.wait_status(1, "Charging", m)
        status = h.sim.status()["connectors"][0]
        assert status["contactor_closed"] and status["cp_state"] == "C" and status["power_w"] == 22080.0
        assert status["locked"], "the cable is locked while a transaction runs"
        m = h.mark()
        h.sim.swipe("TAG-1")
        stop = await h.cs.wait_for("StopTransaction", start_index=m)
        assert stop["reason"] == "Local"
        await h.wait_status(1, "Finishing", m)
        status = h.sim.status()["connectors"][0]
        assert not status["locked"] and not status["contactor_closed"] and not status["pwm_on"]
