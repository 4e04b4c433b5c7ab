"""Sending the transaction outbox to an OCPP 2.0.1 CSMS: the 2.0.1 twin of
agent/ocpp16/outbox_sender.py (same loop and ordering, another rendering).

``OutboxSender`` picks the head of the current CSMS's entries
(``TransactionOutbox.head()``), renders it at send time as a TransactionEvent
(``events.entry_event`` with the entry's seqNo and offline flag: Started,
Updated — meter values, or a charging state change (an UPDATE entry: triggerReason
ChargingStateChanged, EVCommunicationLost or CablePluggedIn with its chargingState) —
or Ended, transactionId = the station's ``tx.id``) and applies E13: a
message that fails (CALLERROR or no answer) is retried MessageAttemptInterval ×
attempts later and discarded after MessageAttempts (TransactionEvent's instances
of OCPPCommCtrlr, the neutral ``tx_message_retry_interval_s`` /
``tx_message_attempts``). The answer's idTokenInfo goes to the station: for a
Started event it confirms the transaction (known by ``tx.id``, 2.0.1 has no
central system id), for an Ended one it updates the stop token's authorization.

Other messages (StatusNotification, NotifyEvent, MeterValues) may be queued with
``queue_other``: they go out in the order they arose among the outbox entries, once.

Uses only the MicroPython asyncio subset; the payloads are dicts (``events.call``
turns them into the ``ocpp`` library's dataclasses in the client).
"""

import asyncio
import logging

import ocpp.exceptions
from ocpp.exceptions import OCPPError

from agent.core import model
from agent.core.outbox import START, STOP, UPDATE
from agent.ocpp201 import events
from agent.ocppj.sender import OrderedSender

log = logging.getLogger(__name__)

FAILURES = (OCPPError, asyncio.TimeoutError, ocpp.exceptions.ValidationError)  # answered badly or not at all


class OutboxSender(OrderedSender):
    """Delivers the current CSMS's outbox entries in order, one CALL at a time.

    ``call(action, payload) -> response dict`` (camelCase or the library's snake_case;
    ``ConnectionError`` when not connected; ``FAILURES`` are failed attempts, anything
    else — a closed websocket — ends the loop with the entry left as it was). Other
    messages are ``(action, payload)``."""

    def __init__(self, station, call, clock, wake: asyncio.Event, backend: str | None = None,
                 update_auth_cache: bool = True, on_idle=None) -> None:
        super().__init__(station, call, clock, wake, backend, on_idle)
        self.update_auth_cache = update_auth_cache  # False for an earlier backend's answers (a drain)

    def queued(self, tx_id: str | None = None) -> bool:
        """Whether transaction messages wait to be sent to the current CSMS (of transaction
        ``tx_id`` if given): GetTransactionStatus's messagesInQueue."""
        outbox = self.station.outbox
        return any(e.backend == outbox.backend and (tx_id is None or e.tx.id == tx_id) for e in outbox.entries())

    async def send_other(self, action: str, payload: dict) -> None:
        await self.send_quietly(action, payload)

    async def send_quietly(self, action: str, payload: dict) -> None:
        """Send a notification; a failure is logged, not raised (the next one replaces it)."""
        try:
            await self.call(action, payload)
        except ConnectionError:
            raise
        except Exception as e:
            log.warning("%s not delivered: %s", action, e)

    def render(self, entry) -> dict:
        tx = entry.tx
        return events.entry_event(entry, entry.seq_no or 0, bool(entry.offline), token_kind=tx.token_kind,
                                  remote_start_id=tx.remote_start_id if entry.kind == START else None)

    async def send(self, entry) -> None:
        """One attempt at ``entry``: removed when answered, else rescheduled or, past its
        attempts, discarded (E13). A lost connection is raised (the entry stays)."""
        station, outbox = self.station, self.station.outbox
        try:
            result = await self.call("TransactionEvent", self.render(entry))
        except FAILURES as e:
            entry.attempts += 1
            limit = station.settings.get("tx_message_attempts")
            if limit and entry.attempts >= limit:
                log.error("discarding %r after %d attempts: %s", entry, entry.attempts, e)
                self._confirm(entry, None)
                outbox.remove(entry)
                return
            delay = station.settings.get("tx_message_retry_interval_s") * entry.attempts
            log.warning("%r failed (%s); retry in %d s", entry, e, delay)
            entry.not_before = self.clock.monotonic() + delay
            return
        self._confirm(entry, events.transaction_info_answer(result))
        outbox.remove(entry)

    def _confirm(self, entry, info) -> None:
        """The answer's idTokenInfo into the station. A Started event confirms its transaction
        (``backend_id`` = ``tx.id``: what the journal's recovery reads as "start confirmed")."""
        station, tx = self.station, entry.tx
        if entry.kind == START:
            station.transaction_confirmed(tx, tx.id, info or model.IdTagInfo(model.AUTH_ACCEPTED),
                                          update_auth_cache=self.update_auth_cache)
        elif entry.kind == STOP and info is not None and tx.stop_id_tag and self.update_auth_cache:
            station.id_tag_info_received(tx.stop_id_tag, info)
        elif (entry.kind == UPDATE and info is not None and tx.id_tag and not tx.stopped
              and entry.cause in events.START_TOKEN_CAUSES):
            # the idToken that authorized a transaction begun on the EV: its answer as a start's
            station.transaction_confirmed(tx, tx.id, info, update_auth_cache=self.update_auth_cache)
