"""Update entries: a running transaction's state changes (charging, suspended by the EV or
by the charger, the EV unplugged and plugged in again) queued in the outbox as the
neutral kind UPDATE, with their cause and state, for a link that asks for them
(``wants_state_events``: the 2.0.1 adapter reports them as TransactionEvent Updated).

They take their place among the transaction's events (seq_no, offline, in order with
meter values), are journaled without an fsync of their own and read back after a
restart; a 1.6 link never gets one, and the 1.6 sender removes one unsent if it meets it
(a journal written under 2.0.1)."""

import asyncio
import json

from agent.core import model
from agent.core.outbox import METER, START, STOP, UPDATE, OutboxEntry, TransactionOutbox
from agent.core.station import CentralSystemLink
from agent.ocpp16.outbox_sender import OutboxSender as Ocpp16Sender
from agent.ocpp201.client import Ocpp201Client
from agent.store.journal import TransactionJournal
from tests.harness import TAG, AgentHarness, keys, quiet, reach_charging, until

# The EV may leave and come back while the transaction goes on.
OCPP = keys(MeterValueSampleInterval=10, StopTransactionOnEVSideDisconnect="false",
            UnlockConnectorOnEVSideDisconnect="false")


def record(h) -> list:
    """Every entry queued from now on."""
    seen = []
    h.station.outbox.listeners.append(lambda e: e is not None and e in h.station.outbox.entries()
                                      and e not in seen and seen.append(e))
    return seen


async def run(h, seconds: int) -> None:
    for _ in range(seconds):
        await h.clock.advance(1)
        await asyncio.sleep(0.002)
    await quiet(h)


def updates(entries) -> list:
    return [(e.cause, e.state, e.ev_connected) for e in entries if e.kind == UPDATE]


def test_only_a_link_that_asks_gets_them():
    assert CentralSystemLink.wants_state_events is False
    assert Ocpp201Client.wants_state_events is True


async def ev_comes_pauses_leaves_returns(h) -> list:
    """Charge, the EV full, unplugged (the transaction goes on), plugged in again, the tag
    ends it; every queued entry, once all are delivered."""
    seen = record(h)
    await reach_charging(h, 1)
    await run(h, 10)
    h.sim.ev_full(1)
    await run(h, 10)
    h.sim.unplug(1)
    await run(h, 2)
    assert h.station.connector(1).transaction is not None
    h.sim.plug(1)
    await run(h, 2)
    h.sim.swipe(TAG)
    await until(lambda: h.station.connector(1).transaction is None)
    await until(lambda: len(h.station.outbox) == 0)
    return seen


async def test_none_on_a_1_6_link_whatever_the_ev_does(tmp_path):
    """1.6: the same session as below queues no update, and the central system sees what it
    always saw."""
    async with AgentHarness(tmp_path, ocpp=OCPP) as h:
        assert h.station.link.wants_state_events is False
        seen = await ev_comes_pauses_leaves_returns(h)
        kinds = [e.kind for e in seen]
        assert UPDATE not in kinds and kinds[0] == START and kinds[-1] == STOP
        assert [e.seq_no for e in seen] == list(range(len(seen)))
        assert len(h.received("StopTransaction")) == 1


async def test_queued_in_order_with_meter_values_when_the_link_asks(tmp_path):
    """Charging after the start, SuspendedEV when the EV stops drawing, the EV gone (the
    transaction goes on), back (connected first, then charging): each one update, numbered
    among the meter values. On a 1.6 link that asks anyway, its sender removes them unsent:
    Start, MeterValues and Stop still go out, in order, without error."""
    async with AgentHarness(tmp_path, ocpp=OCPP) as h:
        h.station.link.wants_state_events = True  # as a 2.0.1 link does
        seen = await ev_comes_pauses_leaves_returns(h)
        kinds = [e.kind for e in seen]
        assert kinds[0] == START and kinds[-1] == STOP
        assert kinds[1] == UPDATE and METER in kinds
        assert [e.seq_no for e in seen] == list(range(len(seen)))  # one count for every kind
        assert updates(seen) == [
            (model.CAUSE_CHARGING_STATE, model.CHARGING, True),
            (model.CAUSE_CHARGING_STATE, model.SUSPENDED_EV, True),
            (model.CAUSE_EV_DEPARTED, model.SUSPENDED_EVSE, False),
            (model.CAUSE_CABLE_PLUGGED_IN, model.PREPARING, True),
            (model.CAUSE_CHARGING_STATE, model.CHARGING, True),
        ]
        i_full = next(i for i, e in enumerate(seen) if e.kind == UPDATE and e.state == model.SUSPENDED_EV)
        assert METER in kinds[2:i_full] and METER in kinds[i_full:]  # between the meter values
        assert all(e.time is not None and e.offline is False for e in seen if e.kind == UPDATE)
        # The 1.6 sender skipped them: the central system saw only what 1.6 has.
        assert len(h.received("StartTransaction")) == 1 and len(h.received("StopTransaction")) == 1
        assert h.received("MeterValues")


async def test_journaled_without_fsync_and_read_back_after_a_restart(tmp_path):
    async with AgentHarness(tmp_path, ocpp=OCPP) as h:
        h.station.link.wants_state_events = True
        await reach_charging(h, 1)
        await until(lambda: len(h.station.outbox) == 0)
        port = await h.go_offline()
        journal = h.agent.journal
        fsyncs = journal.fsync_commits
        h.sim.ev_full(1)
        await until(lambda: any(e.kind == UPDATE for e in h.station.outbox.entries()))
        assert journal.fsync_commits == fsyncs  # like meter values: no fsync of its own
        entry = next(e for e in h.station.outbox.entries() if e.kind == UPDATE)
        before = (entry.kind, entry.seq_no, entry.offline, entry.cause, entry.state, entry.ev_connected, entry.time)
        assert before[1:6] == (2, True, model.CAUSE_CHARGING_STATE, model.SUSPENDED_EV, True)
        rows = [(k, json.loads(i)) for k, i in journal._db.execute("SELECT kind, info FROM msg ORDER BY jseq")]
        assert rows[-1] == ("update", {"seq_no": 2, "offline": True, "cause": "charging_state_changed",
                                       "state": "suspended_ev", "ev": True, "t": entry.time})

        await h.restart_agent()  # the new 1.6 link asks for none, but the journal gives it back
        restored = [(e.kind, e.seq_no, e.offline, e.cause, e.state, e.ev_connected, e.time)
                    for e in h.station.outbox.entries()]
        assert restored[0] == before and restored[1][:3] == (STOP, 3, True)
        m = h.mark()
        await h.go_online(port)
        stop = await h.cs.wait_for("StopTransaction", start_index=m)
        assert stop["reason"] == "Reboot"
        await until(lambda: len(h.station.outbox) == 0)  # the update removed unsent (1.6)
        await quiet(h)
        assert len(h.received("StopTransaction")) == 1
        assert not [x for x in h.cs.messages if x.action.endswith(".error")]


def test_info_round_trip_and_old_rows():
    tx = model.Transaction(3, 1, TAG, 100, 1000.0)
    entry = OutboxEntry(UPDATE, tx, 1, cause=model.CAUSE_EV_DEPARTED, state=model.SUSPENDED_EVSE,
                        ev_connected=False, time=1234.5)
    entry.seq_no, entry.offline = 4, False
    again = OutboxEntry(UPDATE, tx, 1)
    again.read_info(json.loads(json.dumps(entry.info())))
    assert (again.seq_no, again.offline, again.cause, again.state, again.ev_connected, again.time) == (
        4, False, model.CAUSE_EV_DEPARTED, model.SUSPENDED_EVSE, False, 1234.5)
    start = OutboxEntry(START, tx, 1)
    start.seq_no, start.offline = 0, True
    assert start.info() == {"seq_no": 0, "offline": True}  # the other kinds' rows as before
    old = OutboxEntry(METER, tx, 1)
    old.read_info({})  # a row of a release before 0.2
    assert (old.seq_no, old.offline, old.cause) == (None, False, None)


async def test_the_1_6_sender_removes_an_update_unsent_and_goes_on(tmp_path):
    """An update journaled under 2.0.1, met by the 1.6 sender: removed from the outbox and
    the journal without a CALL; the entries after it go out."""
    journal = TransactionJournal(str(tmp_path / "journal.sqlite"))
    journal.open()
    outbox = TransactionOutbox(journal)
    tx = model.Transaction(1, 1, TAG, 100, 1000.0)
    tx.backend_id = 7
    outbox.append(OutboxEntry(UPDATE, tx, 1, cause=model.CAUSE_CHARGING_STATE, state=model.CHARGING,
                              ev_connected=True, time=1001.0))
    outbox.append(OutboxEntry(METER, tx, 1, [model.MeterSample(1010.0, [model.Sample(
        "Energy.Active.Import.Register", 110.0, "Wh")])]))

    class Station:
        pass

    station = Station()
    station.outbox = outbox
    sent = []

    async def call(payload):
        sent.append(type(payload).__name__)
        return None

    sender = Ocpp16Sender(station, call, clock=None, wake=asyncio.Event())
    await sender.send(outbox.head())
    assert sent == [] and [e.kind for e in outbox.entries()] == [METER]
    await sender.send(outbox.head())
    assert sent == ["MeterValues"] and len(outbox) == 0
    outbox.save_transaction(tx)  # the next write deletes the confirmed rows
    journal.close()
    journal = TransactionJournal(str(tmp_path / "journal.sqlite"))
    _txs, msgs = journal.open()
    assert msgs == []
    journal.close()
