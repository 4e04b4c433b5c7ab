"""The ordered queue of transaction messages waiting for the central system.

StartTransaction, StopTransaction and transaction MeterValues must reach the
central system in order and exactly once. The station appends; the OCPP
adapter sends the head, and removes it only when the central system confirmed
it. Payloads are built at send time, so messages queued for a transaction
started offline go out with the transactionId the central system assigned.
"""

import asyncio

START = "start"
STOP = "stop"
METER = "meter"


class OutboxEntry:
    """One queued transaction message."""

    __slots__ = ("kind", "tx", "connector_id", "samples", "attempts", "seq", "not_before")

    def __init__(self, kind: str, tx, connector_id: int, samples: list | None = None) -> None:
        self.kind = kind
        self.tx = tx
        self.connector_id = connector_id
        self.samples = samples or []
        self.attempts = 0
        self.seq = 0
        self.not_before = 0.0  # monotonic time before which a retry must not be sent

    def __repr__(self) -> str:
        return "OutboxEntry(%s, %r, attempts=%d)" % (self.kind, self.tx, self.attempts)


class TransactionOutbox:
    """In-order queue; ``changed`` is set whenever an entry is added."""

    def __init__(self) -> None:
        self._entries: list = []
        self._seq = 0
        self.changed = asyncio.Event()
        self.emptied = asyncio.Event()
        self.emptied.set()

    def next_seq(self) -> int:
        """A sequence number shared with other outgoing messages, to keep their order."""
        self._seq += 1
        return self._seq

    def append(self, entry: OutboxEntry) -> None:
        entry.seq = self.next_seq()
        self._entries.append(entry)
        self.emptied.clear()
        self.changed.set()

    def head(self) -> OutboxEntry | None:
        return self._entries[0] if self._entries else None

    def remove(self, entry: OutboxEntry) -> None:
        if entry in self._entries:
            self._entries.remove(entry)
        if not self._entries:
            self.emptied.set()

    def entries(self) -> list:
        return list(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
