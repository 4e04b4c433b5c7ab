"""Fault tests, in process and in virtual time: a central system that is away
for hours while thousands of transaction messages queue, a journal too small
for all of them, and a link that flaps during a transaction.

The central system is the test one (tools/csms.py) with the counting handlers
of the soak (tools/soak.py ``Ledger``/``analyze``: no transaction lost or
duplicated, MeterValues only with transaction ids it assigned, meterStop >=
meterStart). It goes away by stopping its server and comes back by starting
it again on the same port.
"""

import asyncio
import random

from agent.ocpp16.codec import iso_time
from agent.core.outbox import METER, START, STOP
from tests.harness import AgentHarness, until
from tools.csms import TestCentralSystem
from tools.soak import Ledger, analyze, parse_time

HOURS_6_S = 6 * 3600
SAMPLE_S = 10


class HeldStart:
    """StartTransaction handler: while ``holding``, the central system receives the
    Start but never answers it (it goes away with the Start in flight); else the
    ledger answers."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.holding = False
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, payload: dict) -> dict:
        if not self.holding:
            return self.ledger._on_start(payload)
        self.arrived.set()
        await self.release.wait()
        return {"transactionId": 999999, "idTagInfo": {"status": "Accepted"}}  # sent on a closed socket


class OutageHarness(AgentHarness):
    """The harness with a counting central system and a journal size."""

    def __init__(self, tmp_path, journal_max_entries: int | None = None, **kw) -> None:
        cs = TestCentralSystem(quiet=True, protocols=("ocpp1.6",))
        self.ledger = Ledger("CP001")
        self.ledger.attach(cs)
        self.held = HeldStart(self.ledger)
        self.ledger.handle.handlers["StartTransaction"] = self.held
        self.journal_max_entries = journal_max_entries
        kw.setdefault("ocpp", {"MeterValueSampleInterval": SAMPLE_S, "WebSocketPingInterval": 0,
                               "HeartbeatInterval": 0})
        super().__init__(tmp_path, csms=cs, **kw)
        self.port = None

    def make_config(self):
        cfg = super().make_config()
        if self.journal_max_entries is not None:
            cfg.station["journal_max_entries"] = self.journal_max_entries
        return cfg

    async def __aenter__(self):
        await super().__aenter__()
        self.port = self.cs_server.port
        await until(lambda: self.agent.client.online)  # BootNotification answered
        return self

    async def cs_away(self) -> None:
        """Stop the central system (releasing a held Start once its socket is closed)."""
        stopping = asyncio.create_task(self.cs_server.stop())
        await until(lambda: not self.cs.connected)
        self.held.release.set()
        await stopping
        await until(lambda: not self.agent.client.online)

    async def cs_back(self, timeout_s: float = 10) -> None:
        """Start the central system on the same port (if it is away); advance time until the agent is back."""
        self.held.holding = False
        await self.go_online(self.port, step_s=5, timeout_s=timeout_s)

    async def drain(self, timeout_s: float = 15) -> None:
        await asyncio.wait_for(self.station.outbox.emptied.wait(), timeout_s)
        await asyncio.sleep(0.05)

    async def start_held(self, tag: str) -> None:
        """Plug in and swipe: the central system gets the StartTransaction and goes away unanswered."""
        self.held.holding = True
        self.sim.plug(1)
        self.sim.swipe(tag)
        await asyncio.wait_for(self.held.arrived.wait(), 5)
        await self.cs_away()


def kinds(entries) -> list:
    return [e.kind for e in entries]


async def charged_six_hours(h: OutageHarness) -> tuple:
    """Six hours of charging with the central system away, then the EV unplugged.
    Returns (the queued entries: Start, the MeterValues, Stop; the MeterValues)."""
    await h.clock.advance(HOURS_6_S)
    h.sim.unplug(1)
    await h.clock.settle()
    queued = h.station.outbox.entries()
    meters = [e for e in queued if e.kind == METER]
    assert kinds(queued) == [START] + [METER] * len(meters) + [STOP]
    return queued, meters


async def test_six_hour_outage_queues_thousands_and_replays_in_order_exactly_once(tmp_path):
    """An offline-started transaction (its StartTransaction unanswered when the
    central system went away) charges for 6 h with MeterValueSampleInterval 10:
    2160 MeterValues queue. When the central system is back, everything arrives
    in order, once each, every MeterValues with the id StartTransaction.conf gave."""
    async with OutageHarness(tmp_path) as h:
        await h.start_held("TAG-OUT")
        tx = h.station.connectors[0].transaction
        assert tx is not None and tx.backend_id is None  # a local reference only
        queued, meters = await charged_six_hours(h)
        assert len(meters) >= HOURS_6_S // SAMPLE_S - 1 >= 2000
        assert len(h.agent.journal) == len(queued)  # all of it durable
        sample_times = [s.timestamp for e in meters for s in e.samples]
        mark = len(h.ledger.messages)

        await h.cs_back()
        await h.drain()
        got = h.ledger.messages[mark:]
        assert [m.kind for m in got] == ["start"] + ["meter"] * len(meters) + ["stop"]
        tid = got[0].tid
        assert all(m.tid == tid for m in got)  # never none or -1: the id StartTransaction.conf gave
        received_times = [parse_time(m.payload["meterValue"][0]["timestamp"]) for m in got[1:-1]]
        assert received_times == sorted(received_times) and len(set(received_times)) == len(received_times)
        assert [m.payload["meterValue"][0]["timestamp"] for m in got[1:-1]] == [iso_time(t) for t in sample_times]
        stop = got[-1].payload
        assert stop["reason"] == "EVDisconnected" and stop["meterStop"] > got[0].payload["meterStart"]
        r = analyze(h.ledger, {"TAG-OUT"})
        assert r["violations"] == [] and r["transactions"] == 1
        assert r["redelivered_meter_values"] == r["redelivered_starts"] == 0
        assert len(h.agent.journal) == 0
        assert h.agent.journal.dropped_meter_entries == 0


async def test_full_journal_drops_oldest_meter_values_never_start_or_stop(tmp_path):
    """journal_max_entries 50 and 6 h away: the oldest sampled meter values go,
    the unanswered StartTransaction (the oldest entry of all) and the
    StopTransaction stay; the newest meter values arrive, in order."""
    async with OutageHarness(tmp_path, journal_max_entries=50) as h:
        await h.start_held("TAG-CAP")
        queued, meters = await charged_six_hours(h)
        assert len(queued) <= 50 + 1  # full of meter values, then a Stop that is never refused
        dropped = h.agent.journal.dropped_meter_entries
        assert dropped >= HOURS_6_S // SAMPLE_S - 1 - 50
        kept_times = [s.timestamp for e in meters for s in e.samples]
        assert kept_times == sorted(kept_times)
        assert kept_times[-1] >= h.clock.time() - SAMPLE_S - 1  # the newest were kept
        # The journal holds exactly what memory holds (a restart would replay the same).
        txs, msgs = h.agent.journal._load()
        assert [m["kind"] for m in msgs] == kinds(queued)

        await h.cs_back()
        await h.drain()
        got = h.ledger.messages
        assert [m.kind for m in got] == ["start"] + ["meter"] * len(meters) + ["stop"]
        assert [m.payload["meterValue"][0]["timestamp"] for m in got[1:-1]] == [iso_time(t) for t in kept_times]
        r = analyze(h.ledger, {"TAG-CAP"})
        assert r["violations"] == [] and r["transactions"] == 1


async def test_link_flapping_during_a_transaction_loses_and_duplicates_nothing(tmp_path):
    """The central system drops the connection again and again during a
    transaction - at random moments and right after a MeterValues arrives (its
    answer possibly lost) - and is away for a few minutes now and then: one
    Start, one Stop, every sampled value delivered, no duplicate beyond a copy
    whose answer the agent cannot have received."""
    rng = random.Random(20260101)
    async with OutageHarness(tmp_path, csms_extra={"reconnect_initial_s": 1.0, "reconnect_max_s": 4.0}) as h:
        appended = []
        original_append = h.station.outbox.append

        def counting_append(entry):
            appended.append(entry)
            return original_append(entry)

        h.station.outbox.append = counting_append
        h.sim.plug(1)
        h.sim.swipe("TAG-FLAP")
        await until(lambda: h.ledger.starts)
        flaps = outages = 0
        for i in range(40):
            await h.clock.advance(rng.uniform(1, 2 * SAMPLE_S))
            r = rng.random()
            if r < 0.4:
                mark = len(h.ledger.messages)
                try:
                    await until(lambda: len(h.ledger.messages) > mark and h.cs.connected, 0.2)
                except AssertionError:
                    pass
            if r < 0.8 and h.cs.connected:
                flaps += 1
                await h.cs.disconnect()
            elif r >= 0.95:
                outages += 1
                await h.cs_away()
                await h.clock.advance(rng.uniform(30, 300))
            if not (h.cs.connected and h.agent.client.online):
                await h.cs_back()
        h.sim.unplug(1)
        await h.clock.settle()
        if not (h.cs.connected and h.agent.client.online):
            await h.cs_back()
        await h.drain()

        assert flaps >= 10
        r = analyze(h.ledger, {"TAG-FLAP"})
        assert r["violations"] == [], r["violations"]
        assert r["transactions"] == 1 and r["stop_reasons"] == {"EVDisconnected": 1}
        sampled = {s.timestamp for e in appended if e.kind == METER for s in e.samples}
        assert len(sampled) >= 40
        received = {m.ident for m in h.ledger.messages if m.kind == "meter"}
        assert len(received) == len(sampled)  # every sample arrived; copies only as redeliveries
        assert r["meter_value_messages"] == len(received) + r["redelivered_meter_values"]
        assert len(h.agent.journal) == 0


def test_crash_during_a_long_replay_resends_only_the_last_few_meter_values(tmp_path):
    """Confirmed meter values leave the journal with its next write (no write of
    their own). During a replay of thousands there is no other write for a long
    time: a crash then must not send the whole confirmed backlog again."""
    from agent.core import model
    from agent.store.journal import TransactionJournal
    from agent.core.outbox import CONFIRMED_METERS_FLUSH, OutboxEntry, TransactionOutbox

    path = TransactionJournal.path_in(str(tmp_path))
    journal = TransactionJournal(path)
    journal.open()
    outbox = TransactionOutbox(journal)
    tx = model.Transaction(1, 1, "TAG", 0, 1_767_225_600.0)
    tx.backend_id = 7
    for i in range(1000):
        outbox.append(OutboxEntry(METER, tx, 1, [model.MeterSample(1_767_225_600.0 + i, [])]))
    for _ in range(1000):
        outbox.remove(outbox.head())  # confirmed one by one, as a replay does
    after_crash = TransactionJournal(path)  # the process dies here: nothing else written
    _txs, msgs = after_crash.open()
    assert len(msgs) < CONFIRMED_METERS_FLUSH
    assert journal.commits < 1000 + 1000 // CONFIRMED_METERS_FLUSH + 2  # still no write per confirmation
    after_crash.close()
    journal.close()
