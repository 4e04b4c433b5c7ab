"""What the core keeps about a transaction and its events for any protocol to render: the
token's kind, a remote start's id, what came last at the start, each queued event's number
within its transaction and whether it arose offline (2.0.1 TransactionEvent seqNo, offline,
triggerReason; 1.6 ignores them). Kept in the journal: a restart reads them back."""

import json

from agent.core import model
from agent.core.outbox import METER, START, STOP
from tests.harness import TAG, AgentHarness, fixed_transaction_id, keys, quiet, reach_charging, until


async def test_what_came_last_and_the_token_kind_are_kept(tmp_path):
    async with AgentHarness(tmp_path, ocpp=keys(), board={"evse": {"connectors": 3}}) as h:
        fixed_transaction_id(h)
        h.sim.plug(1)
        await quiet(h)
        h.sim.swipe(TAG)  # the EV first, then the tag
        await until(lambda: h.station.connector(1).transaction is not None)
        tx1 = h.station.connector(1).transaction
        assert (tx1.start_cause, tx1.token_kind, tx1.remote_start_id) == (model.START_AUTHORIZED, "iso14443", None)

        h.sim.swipe("TAG-2")  # the tag first, then the EV
        await quiet(h)
        h.sim.plug(2)
        await until(lambda: h.station.connector(2).transaction is not None)
        assert h.station.connector(2).transaction.start_cause == model.START_CABLE_PLUGGED_IN

        h.sim.plug(3)
        await quiet(h)
        assert await h.station.remote_start("TAG-3", 3, token_kind=model.TOKEN_KEY_CODE, remote_start_id=42)
        await until(lambda: h.station.connector(3).transaction is not None)
        tx3 = h.station.connector(3).transaction
        assert (tx3.start_cause, tx3.token_kind, tx3.remote_start_id) == (model.START_REMOTE, "key_code", 42)

        rows = {t.local_id: t for t in (model.transaction_from_dict(d) for d in journal_transactions(h))}
        assert rows[tx3.local_id].remote_start_id == 42 and rows[tx3.local_id].token_kind == "key_code"
        assert rows[tx1.local_id].start_cause == model.START_AUTHORIZED


async def test_queued_events_are_numbered_and_marked_offline_across_a_restart(tmp_path):
    async with AgentHarness(tmp_path, ocpp=keys(MeterValueSampleInterval=10)) as h:
        fixed_transaction_id(h)
        await reach_charging(h, 1)
        tx = h.station.connector(1).transaction
        await h.go_offline()
        for _ in range(2):
            await h.clock.advance(10)
            await quiet(h)
        h.sim.swipe(TAG)  # stops it, offline
        await until(lambda: any(e.kind == STOP for e in h.station.outbox.entries()))
        queued = [(e.kind, e.seq_no, e.offline) for e in h.station.outbox.entries()]
        assert queued[-1][0] == STOP and [k for k, _, _ in queued[:-1]] == [METER] * (len(queued) - 1)
        numbers = [n for _, n, _ in queued]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers))) and numbers[0] >= 1  # 0: the start
        assert all(offline for _, _, offline in queued)
        assert tx.event_count == numbers[-1] + 1

        await h.restart_agent()  # a reboot: the journal gives them back as they were
        restored = [(e.kind, e.seq_no, e.offline) for e in h.station.outbox.entries() if e.tx.local_id == tx.local_id]
        assert restored == queued


async def test_an_online_start_is_event_0_and_not_offline(tmp_path):
    async with AgentHarness(tmp_path, ocpp=keys()) as h:
        seen = []
        h.station.outbox.listeners.append(lambda entry: entry is not None and seen.append(
            (entry.kind, entry.seq_no, entry.offline)))
        fixed_transaction_id(h)
        await reach_charging(h, 1)
        assert seen[0] == (START, 0, False)


async def test_unlock_while_a_transaction_runs_stops_it_or_refuses(tmp_path):
    async with AgentHarness(tmp_path, ocpp=keys()) as h:
        fixed_transaction_id(h)
        await reach_charging(h, 1)
        assert await h.station.unlock_connector(1, stop_running=False) == model.ONGOING_TRANSACTION
        assert h.station.connector(1).transaction is not None  # 2.0.1: the cable stays locked, it goes on
        assert await h.station.unlock_connector(1) == model.UNLOCKED  # 1.6: stopped, then unlocked
        assert h.station.connector(1).transaction is None


def journal_transactions(h) -> list:
    return [json.loads(d) for (d,) in h.agent.journal._db.execute("SELECT data FROM tx ORDER BY local_id")]
