"""Delivering an earlier central system's queued transaction messages (a drain,
agent/link/switch.py) with the OCPP adapter's own sending code (issue 11, item 4).

The drain sends through the same ``OutboxSender`` as the station's link: the same
payloads and retry rules. Its answers confirm the transactions (they get the
earlier central system's transactionId) but leave the current central system's
authorization cache alone. The real agent, two TestCentralSystems, virtual time.
"""

from ocpp.exceptions import InternalError

from agent.link.endpoint import EndpointSettings
from tests.harness import validate_agent_frames
from tools.csms import IN
from tests.link.test_moving_backend import Rig, actions, run_cli, until

EXPIRY = "2099-01-01T00:00:00Z"


async def test_drained_answers_confirm_the_transaction_but_stay_out_of_the_current_authorization_cache(tmp_path):
    """A transaction of cs1 (started offline, ended after the move to cs2) reaches cs1 over a
    drain: cs1's StartTransaction.conf gives it its transactionId, but neither that answer's
    idTagInfo nor the StopTransaction.conf's enters the cache, which now belongs to cs2. The
    same answers from cs2, the current central system, do enter it."""
    rig = Rig(tmp_path)
    cs1, cs2 = await rig.central(), await rig.central()
    info = {"status": "Accepted", "expiryDate": EXPIRY}
    cs1.handlers["StartTransaction"] = lambda p: {"transactionId": 4242, "idTagInfo": info}
    cs1.handlers["StopTransaction"] = lambda p: {"idTagInfo": {"status": "Blocked"}}
    cs2.handlers["StartTransaction"] = lambda p: {"transactionId": 77, "idTagInfo": info}
    try:
        h1, port1, url1, tx = await rig.offline_transaction(cs1, "TAG-OLD")
        assert tx.backend == EndpointSettings(url1, "CP001").key

        code, out, err = await run_cli("csms", "set", cs2.url, "--config", rig.path)
        assert code == 0, err
        h2 = await rig.booted(cs2)
        assert rig.station.settings.get("auth_cache_enabled") and len(rig.station.auth_cache) == 0
        rig.sim.swipe("TAG-OLD")  # the same tag ends it (no Authorize): Stop with idTag, queued for cs1
        await until(lambda: tx.stopped and any(e.kind == "stop" for e in rig.station.outbox.entries()),
                    clock=rig.clock, what="the Stop queued")

        await drained_to(rig, cs1, port1)
        assert tx.backend_id == 4242  # confirmed by cs1's answer
        stops = actions(h1, "StopTransaction")
        assert len(stops) == 1 and stops[0]["transactionId"] == 4242 and stops[0]["idTag"] == "TAG-OLD"
        assert rig.station.auth_cache.get("TAG-OLD") is None and len(rig.station.auth_cache) == 0
        assert actions(h2, "StartTransaction") == [] and actions(h2, "StopTransaction") == []
        await until(lambda: not rig.agent.endpoint._drains, clock=rig.clock, what="the drain closed")

        # The current central system's StartTransaction.conf is what fills the cache.
        rig.sim.unplug("1")
        rig.sim.plug("1")
        rig.sim.swipe("TAG-NEW")
        await h2.wait_for("StartTransaction")
        await until(lambda: rig.station.connectors[0].transaction.backend_id == 77, what="confirmed by cs2")
        cached = rig.station.auth_cache.get("TAG-NEW")
        assert cached is not None and cached.expiry_date == EXPIRY
        assert rig.station.auth_cache.get("TAG-OLD") is None
        validate_agent_frames(h1)
        validate_agent_frames(h2)
    finally:
        await rig.close()


async def test_a_drained_stop_answered_with_a_callerror_is_retried_per_the_retry_interval_not_dropped(tmp_path):
    """The drain applies the link's retry rules: a StopTransaction answered with a CALLERROR
    stays queued and is sent again TransactionMessageRetryInterval later — even past
    TransactionMessageAttempts, which only MeterValues are dropped at."""
    rig = Rig(tmp_path)
    cs1, cs2 = await rig.central(), await rig.central()
    attempts = []  # virtual time of each StopTransaction cs1 received

    def flaky_stop(payload):
        attempts.append(rig.clock.monotonic())
        if len(attempts) == 1:
            raise InternalError(description="try again")
        return {}
    cs1.handlers["StopTransaction"] = flaky_stop
    try:
        h1 = await rig.start_at(cs1)
        for key, value in (("TransactionMessageRetryInterval", "10"), ("TransactionMessageAttempts", "1")):
            assert (await h1.call("ChangeConfiguration", key=key, value=value))["status"] == "Accepted"
        rig.sim.plug("1")
        rig.sim.swipe("TAG-1")
        await until(lambda: rig.station.connectors[0].transaction is not None
                    and rig.station.connectors[0].transaction.backend_id is not None, what="a confirmed Start")
        tx = rig.station.connectors[0].transaction
        reply = await h1.call("ChangeConfiguration", key="CentralSystemUrl", value=cs2.url)
        assert reply["status"] == "Accepted"
        h2 = await rig.booted(cs2)

        # The running transaction stays with cs1: its Stop goes there, over a drain connection.
        rig.sim.unplug("1")
        await until(lambda: len(attempts) >= 1, clock=rig.clock, timeout_s=10, what="the first Stop",
                    step_s=1.0)
        await until(lambda: [e.attempts for e in rig.station.outbox.entries()] == [1],
                    what="the failed Stop kept, one attempt counted")
        entry = rig.station.outbox.entries()[0]
        assert entry.kind == "stop" and entry.backend == tx.backend != rig.agent.endpoint.current.key
        await until(lambda: len(attempts) == 2, clock=rig.clock, timeout_s=10, what="the retry", step_s=1.0)
        assert 10 <= attempts[1] - attempts[0] <= 12
        await until(lambda: len(rig.station.outbox) == 0, what="the Stop confirmed")
        stops = actions(h1, "StopTransaction")
        assert len(stops) == 2 and stops[0] == stops[1] and stops[0]["transactionId"] == tx.backend_id
        assert actions(h2, "StopTransaction") == []
        await until(lambda: not rig.agent.endpoint._drains, clock=rig.clock, what="the drain closed")
        validate_agent_frames(h1)
        validate_agent_frames(h2)
    finally:
        await rig.close()


async def moved_after_a_transaction_offline(rig, cs1, cs2) -> tuple:
    """A transaction started and ended while ``cs1`` was away, then ``csms set`` to ``cs2``:
    (the station on cs1, the transaction, the station on cs2 once booted, cs1's port)."""
    h1, port1, _url1, tx = await rig.offline_transaction(cs1, "TAG-OLD")
    rig.sim.unplug("1")
    await until(lambda: tx.stopped, clock=rig.clock, what="the transaction ended")
    code, _out, err = await run_cli("csms", "set", cs2.url, "--config", rig.path)
    assert code == 0, err
    return h1, tx, await rig.booted(cs2), port1


async def drained_to(rig, cs1, port1) -> None:
    """``cs1`` listens again; the drain empties the outbox."""
    await cs1.start(port=port1)
    await until(lambda: len(rig.station.outbox) == 0, clock=rig.clock, timeout_s=10,
                what="the held messages delivered", step_s=1.0)


async def test_a_move_from_a_16_to_a_201_backend_drains_the_old_one_in_16(tmp_path):
    """csms set from a 1.6 central system to a 2.0.1 one (the agent on "auto"): the station
    boots on 2.0.1 at cs2 while the transaction that started and ended for cs1 reaches cs1
    as StartTransaction and StopTransaction over a 1.6 drain connection; cs2 gets no
    TransactionEvent of it, and what starts afterwards is cs2's, in 2.0.1."""
    rig = Rig(tmp_path)
    cs1 = await rig.central()
    cs2 = await rig.central(protocols=("ocpp2.0.1",))
    cs1.handlers["StartTransaction"] = lambda p: {"transactionId": 4242, "idTagInfo": {"status": "Accepted"}}
    try:
        h1, tx, h2, port1 = await moved_after_a_transaction_offline(rig, cs1, cs2)
        assert h2.subprotocol == "ocpp2.0.1" and rig.agent.connection.version == "2.0.1"
        assert type(rig.agent.client).__name__ == "Ocpp201Client" and rig.station.link is rig.agent.client

        await drained_to(rig, cs1, port1)
        assert [m.action for m in h1.messages if m.direction == IN and m.action in (
            "StartTransaction", "StopTransaction")] == ["StartTransaction", "StopTransaction"]
        assert actions(h1, "StopTransaction")[0]["transactionId"] == 4242
        assert tx.backend_id == 4242  # confirmed by cs1 over 1.6
        assert actions(h2, "TransactionEvent") == []

        m = len(h2.messages)
        rig.sim.plug("1")
        rig.sim.swipe("TAG-NEW")
        started = await h2.wait_for("TransactionEvent", lambda p: p["eventType"] == "Started", start_index=m)
        assert started["idToken"]["idToken"] == "TAG-NEW"
        validate_agent_frames(h1)
        validate_agent_frames(h2)
    finally:
        await rig.close()


async def test_a_move_from_a_201_to_a_16_backend_drains_the_old_one_in_201(tmp_path):
    """The other direction: the transaction of a 2.0.1 central system (started offline, ended
    before the move) reaches it as TransactionEvents Started and Ended over a 2.0.1 drain while
    the station boots on 1.6 at the new one, which gets no StartTransaction of it."""
    rig = Rig(tmp_path)
    cs1 = await rig.central(protocols=("ocpp2.0.1",))
    cs2 = await rig.central()
    try:
        h1, tx, h2, port1 = await moved_after_a_transaction_offline(rig, cs1, cs2)
        assert h2.subprotocol == "ocpp1.6" and type(rig.agent.client).__name__ == "Ocpp16Client"

        await drained_to(rig, cs1, port1)
        events = actions(h1, "TransactionEvent")
        assert [e["eventType"] for e in events][0] == "Started" and events[-1]["eventType"] == "Ended"
        assert {e["transactionInfo"]["transactionId"] for e in events} == {tx.id}
        assert all(e["offline"] for e in events)
        assert actions(h2, "StartTransaction") == [] and actions(h2, "StopTransaction") == []

        m = len(h2.messages)
        rig.sim.plug("1")
        rig.sim.swipe("TAG-NEW")
        started = await h2.wait_for("StartTransaction", start_index=m)
        assert started["idTag"] == "TAG-NEW"
        validate_agent_frames(h1)
        validate_agent_frames(h2)
    finally:
        await rig.close()
