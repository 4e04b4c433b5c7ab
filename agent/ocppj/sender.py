"""The send loop every adapter's outbox sender shares (agent/ocpp16/outbox_sender.py,
agent/ocpp201/outbox_sender.py): the outbox entries of one central system in order,
one CALL at a time, a failed one waiting for its ``not_before``; other messages
(status notifications, events) sent once, in the order they arose among the entries.
Subclasses say how one entry and one other message go out.

CPython-only (used with the ocpp library's sessions).
"""

import asyncio

from hal.runtime.aio import sleep_or_event


class OrderedSender:
    """Subclasses implement ``send(entry)`` (one attempt: removed from the outbox when
    confirmed, else rescheduled with ``entry.not_before``; a lost connection raised) and
    ``send_other(*message)`` (once; a failure logged, not raised)."""

    def __init__(self, station, call, clock, wake: asyncio.Event, backend: str | None = None,
                 on_idle=None) -> None:
        self.station = station
        self.call = call  # one CALL; ConnectionError when not connected
        self.clock = clock
        self.wake = wake  # set when there may be something new to send
        self.backend = backend  # an OutboxEntry.backend key; None: the current central system's
        self.on_idle = on_idle  # called whenever nothing is left to send
        self._others: list = []  # (seq, message) of non-transaction messages, sent once in order

    def queue_other(self, *message) -> None:
        """Send ``message`` (the arguments of ``send_other``) in order with the outbox (once:
        not retried, not kept across reconnects)."""
        self._others.append((self.station.outbox.next_seq(), message))
        self.wake.set()

    def reset_others(self, messages) -> None:
        """Replace the queued non-transaction messages (at the start of a session); each one a
        tuple of ``send_other``'s arguments."""
        self._others = [(self.station.outbox.next_seq(), m) for m in messages]
        self.wake.set()

    async def run(self, alive) -> None:
        """Send while ``alive()`` (the session it was started for is the host's current one)."""
        outbox = self.station.outbox
        while alive():
            self.wake.clear()
            entry = outbox.head(self.backend)
            wait_s = entry.not_before - self.clock.monotonic() if entry is not None else 0.0
            ready = entry is not None and wait_s <= 0
            if self._others and (not ready or self._others[0][0] < entry.seq):
                await self.send_other(*self._others.pop(0)[1])
            elif ready:
                await self.send(entry)
            elif entry is not None:
                await sleep_or_event(self.clock, self.wake, wait_s)
            else:
                if self.on_idle is not None:
                    self.on_idle()
                await self.wake.wait()

    async def send(self, entry) -> None:
        raise NotImplementedError

    async def send_other(self, *message) -> None:
        raise NotImplementedError
