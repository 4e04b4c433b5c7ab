"""Sending the transaction outbox to an OCPP 1.6 central system: one class used by
composition wherever queued transaction messages go out — the station's link
(``Ocpp16Client``) for the current central system's, and a drain connection
(agent/link/switch.py) for those held for an earlier one.

``OutboxSender`` picks the head of one backend's entries
(``TransactionOutbox.head(backend)``), builds its StartTransaction,
StopTransaction or MeterValues payload at send time (with the central system's
transactionId), and applies the retry rules: a failed message is retried
TransactionMessageRetryInterval × attempts later (at most hourly); MeterValues
are dropped after TransactionMessageAttempts, Start and Stop never; an entry of
a kind 1.6 has no message for (UPDATE, from a journal written under 2.0.1) is
removed unsent. Other
messages (status notifications) may be queued with ``queue_other``: they go out
in the order they arose among the outbox entries, once.

What the host gives it is small: ``call(payload)`` (one CALL over its session,
``ConnectionError`` when there is none), an ``asyncio.Event`` that wakes the
loop, and whether the answers' idTagInfo updates the authorization data — not
when they come from an earlier backend (the cache and local list belong to the
current one), while they still confirm the transaction.

Uses only the MicroPython asyncio subset; the payloads are the ``ocpp`` library's.
"""

import asyncio
import logging

import ocpp.exceptions
from ocpp.exceptions import OCPPError
from ocpp.v16 import call as messages

from agent.core.outbox import METER, START, STOP
from agent.ocpp16.codec import id_tag_info, iso_time, meter_value
from agent.ocpp16.vocabulary import to_16
from agent.ocppj.sender import OrderedSender

log = logging.getLogger(__name__)

MAX_RETRY_DELAY_S = 3600  # Start/Stop are retried forever (never dropped), at least hourly
FAILURES = (OCPPError, asyncio.TimeoutError, ocpp.exceptions.ValidationError)  # a CALL answered badly or not at all


async def call_quietly(call, payload) -> None:
    """Send ``payload``; a failure is logged, not raised (a lost notification is replaced by the next one)."""
    try:
        await call(payload)
    except Exception as e:
        log.warning("%s not delivered: %s", type(payload).__name__, e)


class OutboxSender(OrderedSender):
    """Delivers the outbox entries of one central system in order, one CALL at a time
    (``call(payload) -> result``); other messages are payloads."""

    def __init__(self, station, call, clock, wake: asyncio.Event, backend: str | None = None,
                 update_auth_cache: bool = True, on_idle=None) -> None:
        super().__init__(station, call, clock, wake, backend, on_idle)
        self.update_auth_cache = update_auth_cache  # False for an earlier backend's answers

    async def send_other(self, payload) -> None:
        await call_quietly(self.call, payload)

    async def send(self, entry) -> None:
        """One attempt at ``entry``: removed from the outbox when confirmed, else
        rescheduled (or, a MeterValues past its attempts, dropped). A lost
        connection is raised (the entry stays as it was)."""
        station, outbox, tx = self.station, self.station.outbox, entry.tx
        if entry.kind not in (START, STOP, METER):
            # An event 1.6 has no message for (a 2.0.1 charging state change, UPDATE): never
            # queued on a 1.6 link, but one journaled under 2.0.1 may come back after a
            # change of version. Removed unsent, so that what follows it goes out.
            log.warning("%r: no 1.6 message for it; removed without sending", entry)
            outbox.remove(entry)
            return
        try:
            if entry.kind == START:
                result = await self.call(messages.StartTransaction(
                    connector_id=entry.connector_id, id_tag=tx.id_tag, meter_start=tx.meter_start_wh,
                    timestamp=iso_time(tx.start_time), reservation_id=tx.reservation_id))
                # The id first: removing the entry journals the transaction with it.
                station.transaction_confirmed(tx, result.transaction_id, id_tag_info(result.id_tag_info),
                                              update_auth_cache=self.update_auth_cache)
                outbox.remove(entry)
            elif entry.kind == STOP:
                result = await self.call(messages.StopTransaction(
                    meter_stop=tx.meter_stop_wh, timestamp=iso_time(tx.stop_time),
                    transaction_id=tx.backend_id, reason=to_16(tx.stop_reason), id_tag=tx.stop_id_tag,
                    transaction_data=[meter_value(s) for s in tx.stop_data] or None))
                outbox.remove(entry)
                if result.id_tag_info and self.update_auth_cache:
                    station.id_tag_info_received(tx.stop_id_tag, id_tag_info(result.id_tag_info))
            elif entry.kind == METER:
                await self.call(messages.MeterValues(
                    connector_id=entry.connector_id, transaction_id=tx.backend_id,
                    meter_value=[meter_value(s) for s in entry.samples]))
                outbox.remove(entry)
        except ConnectionError:
            raise
        except FAILURES as e:
            entry.attempts += 1
            limit = station.settings.get("tx_message_attempts")
            if entry.kind == METER and limit and entry.attempts >= limit:
                log.error("dropping %r after %d attempts: %s", entry, entry.attempts, e)
                outbox.remove(entry)
                return
            delay = min(station.settings.get("tx_message_retry_interval_s") * entry.attempts, MAX_RETRY_DELAY_S)
            log.warning("%r failed (%s); retry in %d s", entry, e, delay)
            entry.not_before = self.clock.monotonic() + delay
