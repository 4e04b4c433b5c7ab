"""The ordered queue of transaction messages waiting for the central system.

StartTransaction, StopTransaction and transaction MeterValues must reach the
central system in order and exactly once. The station appends; the OCPP
adapter sends the head, and removes it only when the central system confirmed
it. Payloads are built at send time, so messages queued for a transaction
started offline go out with the transactionId the central system assigned.

With a journal (agent/journal.py) every change is written through: Start and
Stop durably (fsync) before the agent goes on, meter values without an fsync
of their own. Confirmed meter values are deleted with the next write instead
of in a write of their own (fewer writes to an SD card; after a crash at most
the last confirmed MeterValues is sent again). A failed journal write leaves
``resync_needed`` set: memory is then the truth and the station rewrites the
journal from it once writes work again. Portable core: no sqlite here.
"""

import asyncio

from agent.model import sample_to_dict, transaction_to_dict

START = "start"
STOP = "stop"
METER = "meter"


class JournalUnavailable(Exception):
    """A StartTransaction could not be made durable: the transaction must not start."""


class OutboxEntry:
    """One queued transaction message."""

    __slots__ = ("kind", "tx", "connector_id", "samples", "attempts", "seq", "not_before", "jseq")

    def __init__(self, kind: str, tx, connector_id: int, samples: list | None = None) -> None:
        self.kind = kind
        self.tx = tx
        self.connector_id = connector_id
        self.samples = samples or []
        self.attempts = 0
        self.seq = 0
        self.not_before = 0.0  # monotonic time before which a retry must not be sent
        self.jseq = None  # its row in the journal

    def __repr__(self) -> str:
        return "OutboxEntry(%s, %r, attempts=%d)" % (self.kind, self.tx, self.attempts)


class TransactionOutbox:
    """In-order queue; ``changed`` is set whenever an entry is added."""

    def __init__(self, journal=None) -> None:
        self.journal = journal
        self.resync_needed = False
        self._entries: list = []
        self._seq = 0
        self._confirmed_meters: list = []  # jseqs to delete with the next journal write
        self.changed = asyncio.Event()
        self.emptied = asyncio.Event()
        self.emptied.set()

    def next_seq(self) -> int:
        """A sequence number shared with other outgoing messages, to keep their order."""
        self._seq += 1
        return self._seq

    def restore(self, entries: list) -> None:
        """Put entries read back from the journal in the queue, in order."""
        for entry in entries:
            entry.seq = self.next_seq()
            self._entries.append(entry)
        if self._entries:
            self.emptied.clear()
            self.changed.set()

    def append(self, entry: OutboxEntry) -> list:
        """Queue an entry (written through to the journal); returns meter entries
        dropped because the journal is full. Raises JournalUnavailable for a
        StartTransaction that could not be made durable."""
        dropped = []
        if self.journal is not None:
            try:
                entry.jseq, dropped_jseqs = self.journal.append(
                    entry.kind, entry.tx.local_id, entry.connector_id,
                    [sample_to_dict(s) for s in entry.samples], tx=transaction_to_dict(entry.tx),
                    remove=tuple(self._confirmed_meters), durable=entry.kind != METER)
                self._confirmed_meters = []
            except Exception as e:  # JournalError: logged by the journal
                if entry.kind == START:
                    raise JournalUnavailable(str(e)) from e
                self.resync_needed = True
            else:
                if dropped_jseqs:
                    gone = set(dropped_jseqs)
                    dropped = [e for e in self._entries if e.jseq in gone]
                    self._entries = [e for e in self._entries if e.jseq not in gone]
        entry.seq = self.next_seq()
        self._entries.append(entry)
        self.emptied.clear()
        self.changed.set()
        return dropped

    def head(self) -> OutboxEntry | None:
        return self._entries[0] if self._entries else None

    def remove(self, entry: OutboxEntry) -> None:
        """The central system confirmed ``entry`` (a Start's transaction id is then saved with it)."""
        if entry in self._entries:
            self._entries.remove(entry)
        if self.journal is not None and entry.jseq is not None:
            if entry.kind == METER:
                self._confirmed_meters.append(entry.jseq)
            else:
                tx_done = entry.kind == STOP and not any(e.tx is entry.tx for e in self._entries)
                try:
                    self.journal.remove(tuple([entry.jseq] + self._confirmed_meters),
                                        tx=None if tx_done else transaction_to_dict(entry.tx),
                                        delete_tx=entry.tx.local_id if tx_done else None)
                    self._confirmed_meters = []
                except Exception:
                    self.resync_needed = True
        if not self._entries:
            self.emptied.set()

    def save_transaction(self, tx, durable: bool = False) -> None:
        """Write a transaction's current state (e.g. its latest meter reading)."""
        if self.journal is None:
            return
        try:
            if self._confirmed_meters:
                self.journal.remove(tuple(self._confirmed_meters), tx=transaction_to_dict(tx), durable=durable)
                self._confirmed_meters = []
            else:
                self.journal.save_transaction(transaction_to_dict(tx), durable=durable)
        except Exception:
            self.resync_needed = True

    def resync(self, live_transactions: list) -> bool:
        """Rewrite the journal from memory after failed writes; True when done."""
        txs = {tx.local_id: tx for tx in live_transactions}
        for e in self._entries:
            txs[e.tx.local_id] = e.tx
        msgs = [{"kind": e.kind, "local_id": e.tx.local_id, "connector_id": e.connector_id,
                 "samples": [sample_to_dict(s) for s in e.samples], "attempts": e.attempts}
                for e in self._entries]
        try:
            jseqs = self.journal.replace_all([transaction_to_dict(t) for t in txs.values()], msgs)
        except Exception:
            return False
        for e, jseq in zip(self._entries, jseqs):
            e.jseq = jseq
        self._confirmed_meters = []
        self.resync_needed = False
        return True

    def entries(self) -> list:
        return list(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
