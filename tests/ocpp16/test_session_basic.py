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


async def test_contactor_opens_after_the_ev_stops_drawing_or_the_grace_time(tmp_path):
    """Offer withdrawn while charging: PWM goes off first and the contactor opens once the EV
    goes to B (no switching under load); an EV that keeps drawing gets EV_STOP_GRACE_S."""
    from agent.core.supervision import EV_STOP_GRACE_S

    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        m = h.mark()
        h.sim.plug(1)
        h.sim.swipe("TAG-1")
        await h.wait_status(1, "Charging", m)
        await h.clock.advance(60)
        ev = h.sim.connector(1).ev
        ev.ignores_pwm_off = True
        m = h.mark()
        h.sim.swipe("TAG-1")  # stop
        await h.cs.wait_for("StopTransaction", start_index=m)
        status = h.sim.status()["connectors"][0]
        assert not status["pwm_on"] and status["cp_state"] == "C"
        assert status["contactor_closed"], "must not open under load before the grace time"
        await h.clock.advance(EV_STOP_GRACE_S - 0.5)
        assert h.sim.status()["connectors"][0]["contactor_closed"]
        await h.clock.advance(1)
        await h.settle()
        assert not h.sim.status()["connectors"][0]["contactor_closed"]
