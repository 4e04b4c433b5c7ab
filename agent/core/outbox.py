"""The ordered queue of transaction messages waiting for the central system.

A transaction's start, its end and its meter values must reach the
central system in order and exactly once. The station appends; the OCPP
adapter sends the head, and removes it only when the central system confirmed
it. Payloads are built at send time, so messages queued for a transaction
started offline go out with the transactionId the central system assigned.

Kinds: START, METER, STOP, and UPDATE: a running transaction's state changed
(charging, suspended by the EV or by the charger, the EV left or came back),
with its cause (model.CAUSE_*), the state and the time. The station queues
UPDATE entries only for a link that asks for them (``wants_state_events``: 2.0.1
reports them as TransactionEvent Updated; 1.6 has no message for them).

With a journal (agent/store/journal.py) every change is written through: Start and
Stop durably (fsync) before the agent goes on, meter values and updates without an
fsync of their own. Confirmed meter values and updates are deleted with the next write instead
of in a write of their own (fewer writes to an SD card; after a crash at most
the last confirmed meter values are sent again) - or, in a replay of a backlog,
every CONFIRMED_METERS_FLUSH confirmations, so that a crash mid-replay resends
at most that many. A failed journal write leaves ``resync_needed`` set: memory
is then the truth and the station rewrites the journal from it once writes
work again. Portable core: no sqlite here.

Each entry belongs to a central system (``backend``, a key from
agent/link/endpoint.py): the one that was current when its transaction started.
``head()`` and ``emptied`` are about the current backend's entries only;
entries held for another backend wait for a connection to that one
(agent/link/switch.py) and are never dropped for it.
"""

import asyncio

from agent.core.model import sample_to_dict, transaction_to_dict

START = "start"
STOP = "stop"
METER = "meter"
UPDATE = "update"  # a running transaction's state changed (cause, state, time in the entry)
NOT_FSYNCED = (METER, UPDATE)  # journaled without an fsync; their confirmations deleted with the next write
CONFIRMED_METERS_FLUSH = 32  # confirmed meter values deleted in a write of their own (a replay)


class JournalUnavailable(Exception):
    """A transaction's start could not be made durable: the transaction must not start."""


class OutboxEntry:
    """One queued transaction message."""

    __slots__ = ("kind", "tx", "connector_id", "samples", "attempts", "seq", "not_before", "jseq", "backend",
                 "seq_no", "offline", "cause", "state", "ev_connected", "time")

    def __init__(self, kind: str, tx, connector_id: int, samples: list | None = None, cause: str | None = None,
                 state: str | None = None, ev_connected: bool | None = None, time: float | None = None) -> None:
        self.kind = kind
        self.tx = tx
        self.connector_id = connector_id
        self.samples = samples or []
        self.attempts = 0
        self.seq = 0
        self.not_before = 0.0  # monotonic time before which a retry must not be sent
        self.jseq = None  # its row in the journal
        self.backend = ""  # the central system it belongs to: its transaction's
        self.seq_no = None  # its number among its transaction's events (0: the start), set when queued
        self.offline = None  # whether it arose while the central system was unreachable, set when queued
        # START (a link that wants state events): what began it (model.START_*), its state and time;
        # UPDATE: why (model.CAUSE_*), the connector's state then (model's connector states), whether an
        # EV was connected, and when (epoch seconds)
        self.cause = cause
        self.state = state
        self.ev_connected = ev_connected
        self.time = time

    def info(self) -> dict:
        """What the journal keeps of it besides kind, transaction and samples."""
        info = {"seq_no": self.seq_no, "offline": self.offline}
        if self.kind == UPDATE or (self.kind == START and self.cause is not None):
            info.update(cause=self.cause, state=self.state, ev=self.ev_connected, t=self.time)
        return info

    def read_info(self, info: dict | None) -> None:
        """Take back what ``info()`` gave the journal (rows of releases before 0.2 have none)."""
        info = info or {}
        self.seq_no, self.offline = info.get("seq_no"), bool(info.get("offline"))
        if self.kind in (UPDATE, START):
            self.cause, self.state, self.ev_connected, self.time = (
                info.get("cause"), info.get("state"), info.get("ev"), info.get("t"))

    def __repr__(self) -> str:
        return "OutboxEntry(%s, %r, attempts=%d)" % (self.kind, self.tx, self.attempts)


class TransactionOutbox:
    """In-order queue; ``changed`` is set whenever an entry is added."""

    def __init__(self, journal=None) -> None:
        self.journal = journal
        self.resync_needed = False
        self._entries: list = []
        self._seq = 0
        self._confirmed_meters: list = []  # jseqs (meter values, updates) to delete with the next journal write
        self.changed = asyncio.Event()
        self.emptied = asyncio.Event()  # no entry of the current backend is queued
        self.emptied.set()
        self.backend = ""  # key of the current central system (set_backend)
        self.listeners: list = []  # callables(entry or None) run after each change
        self.online = lambda: False  # whether the central system is reachable now (the station sets it)

    def next_seq(self) -> int:
        """A sequence number shared with other outgoing messages, to keep their order."""
        self._seq += 1
        return self._seq

    def restore(self, entries: list) -> None:
        """Put entries read back from the journal in the queue, in order."""
        for entry in entries:
            entry.seq = self.next_seq()
            self._own(entry)
            self._entries.append(entry)
        if self._entries:
            self._update_emptied()
            self.changed.set()

    def _own(self, entry: OutboxEntry) -> None:
        """An entry belongs to its transaction's backend; a new transaction to the current one."""
        if not entry.tx.backend:
            entry.tx.backend = self.backend
        entry.backend = entry.tx.backend

    def _update_emptied(self) -> None:
        if any(e.backend == self.backend for e in self._entries):
            self.emptied.clear()
        else:
            self.emptied.set()

    def _notify(self, entry=None) -> None:
        for cb in list(self.listeners):
            cb(entry)

    def append(self, entry: OutboxEntry) -> list:
        """Queue an entry (written through to the journal); returns meter entries
        dropped because the journal is full. Raises JournalUnavailable for a
        transaction start that could not be made durable."""
        dropped = []
        self._own(entry)
        if entry.seq_no is None:  # numbered in the same journal write as its transaction's count
            entry.seq_no = entry.tx.event_count
            entry.tx.event_count += 1
        if entry.offline is None:
            entry.offline = not self.online()
        if self.journal is not None:
            try:
                entry.jseq, dropped_jseqs = self.journal.append(
                    entry.kind, entry.tx.local_id, entry.connector_id,
                    [sample_to_dict(s) for s in entry.samples], tx=transaction_to_dict(entry.tx),
                    remove=tuple(self._confirmed_meters), durable=entry.kind not in NOT_FSYNCED,
                    backend=entry.backend, info=entry.info())
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
        self._update_emptied()
        self.changed.set()
        self._notify(entry)
        return dropped

    def head(self, backend: str | None = None) -> OutboxEntry | None:
        """The oldest entry of ``backend`` (default: the current central system's)."""
        key = self.backend if backend is None else backend
        for e in self._entries:
            if e.backend == key:
                return e
        return None

    def set_backend(self, key: str) -> None:
        """The agent now talks to central system ``key``: only its entries are sent."""
        self.backend = key
        self._update_emptied()
        self.changed.set()
        self._notify()

    def held(self) -> dict:
        """{backend key: number of entries} queued for central systems other than the current one."""
        out: dict = {}
        for e in self._entries:
            if e.backend != self.backend:
                out[e.backend] = out.get(e.backend, 0) + 1
        return out

    def reassign(self, from_key: str, to_key: str, min_local_id: int, running: list = ()) -> int:
        """Give the transactions of ``from_key`` with local_id >= ``min_local_id`` (queued
        entries and the ``running`` transactions) to ``to_key``; returns how many moved."""
        txs = {}
        for tx in list(running) + [e.tx for e in self._entries]:
            if tx.backend == from_key and tx.local_id >= min_local_id:
                txs[tx.local_id] = tx
        if not txs:
            return 0
        moved = [e for e in self._entries if e.tx.local_id in txs]
        for tx in txs.values():
            tx.backend = to_key
        for e in moved:
            e.backend = to_key
        if self.journal is not None:
            try:
                self.journal.set_backend(tuple(e.jseq for e in moved if e.jseq is not None),
                                         [transaction_to_dict(t) for t in txs.values()], to_key)
            except Exception:
                self.resync_needed = True
        self._update_emptied()
        self.changed.set()
        self._notify()
        return len(txs)

    def remove(self, entry: OutboxEntry) -> None:
        """The central system confirmed ``entry`` (a Start's transaction id is then saved with it)."""
        if entry in self._entries:
            self._entries.remove(entry)
        if self.journal is not None and entry.jseq is not None:
            if entry.kind in NOT_FSYNCED:
                self._confirmed_meters.append(entry.jseq)
                if len(self._confirmed_meters) >= CONFIRMED_METERS_FLUSH:  # a long replay: bound the resend
                    try:
                        self.journal.remove(tuple(self._confirmed_meters), durable=False)
                        self._confirmed_meters = []
                    except Exception:
                        self.resync_needed = True
            else:
                tx_done = entry.kind == STOP and not any(e.tx is entry.tx for e in self._entries)
                try:
                    self.journal.remove(tuple([entry.jseq] + self._confirmed_meters),
                                        tx=None if tx_done else transaction_to_dict(entry.tx),
                                        delete_tx=entry.tx.local_id if tx_done else None)
                    self._confirmed_meters = []
                except Exception:
                    self.resync_needed = True
        self._update_emptied()
        self._notify(entry)

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
                 "samples": [sample_to_dict(s) for s in e.samples], "attempts": e.attempts,
                 "backend": e.backend, "info": e.info()}
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
