"""Reset in the core: now (ending the transactions) or once idle (2.0.1's OnIdle; 1.6 resets now)."""

from agent.core import model
from agent.core.sessions import IDLE_RESET_POLL_S
from tests.harness import TAG, AgentHarness, fixed_transaction_id, keys, quiet, reach_charging, until


async def test_reset_on_idle_waits_for_the_transaction_and_starts_no_new_one(tmp_path):
    async with AgentHarness(tmp_path, ocpp=keys(), board={"evse": {"connectors": 2}}) as h:
        fixed_transaction_id(h)
        await reach_charging(h, 1)
        restarts = []
        h.station.on_restart = restarts.append
        m = h.mark()
        h.station.request_reset(hard=False, when=model.RESET_ON_IDLE)
        await h.clock.advance(30)
        await quiet(h)
        assert restarts == [] and h.received("StopTransaction", m) == []  # the session goes on
        assert h.station.connector(1).transaction is not None
        # No new session meanwhile, on the free connector either.
        assert await h.cs.call("RemoteStartTransaction", connectorId=2, idTag="OTHER") == {"status": "Rejected"}
        h.sim.plug(2)
        h.sim.swipe("OTHER")
        await quiet(h)
        assert h.station.connector(2).transaction is None
        # The driver ends the session: the reset follows, soft, with the stop delivered first.
        h.sim.swipe(TAG)
        stop = await h.cs.wait_for("StopTransaction", start_index=m)
        assert stop["reason"] == "Local"
        await until(lambda: restarts == [False], clock=h.clock, step_s=IDLE_RESET_POLL_S)


async def test_reset_now_ends_the_transaction_with_the_reset_reason(tmp_path):
    async with AgentHarness(tmp_path, ocpp=keys()) as h:
        fixed_transaction_id(h)
        await reach_charging(h, 1)
        restarts = []
        h.station.on_restart = restarts.append
        m = h.mark()
        h.station.request_reset(hard=True)
        stop = await h.cs.wait_for("StopTransaction", start_index=m)
        assert stop["reason"] == "HardReset"
        await until(lambda: restarts == [True])

