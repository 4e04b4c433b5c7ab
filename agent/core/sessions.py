"""Sessions: identifiers presented, remote starts and stops, transactions begun and
ended, availability, unlocking and reset.

A part of ``Station`` (agent/core/station.py): its methods share the station's
state. Portable core: only the MicroPython asyncio subset (see STYLE.md).
"""

import asyncio
import logging

from agent.core import model
from agent.core.auth import tag_key
from agent.core.connector import Connector
from agent.core.metering import build_meter_sample, energy_wh_of
from agent.core.outbox import START, STOP, JournalUnavailable, OutboxEntry
from agent.core.settings import TX_AUTHORIZED, TX_ENERGY_TRANSFER, TX_EV_CONNECTED, TX_POWER_PATH_CLOSED
from agent.core.smart_charging import ACCEPTED
from hal.errors import HalError
from hal.interfaces import NO_ERROR
from hal.runtime.aio import wait_for

log = logging.getLogger(__name__)

RESET_FLUSH_TIMEOUT_S = 10.0
IDLE_RESET_POLL_S = 1.0  # a reset on idle looks this often whether the last transaction ended
# Reasons that end a transaction's authorization; with stop points that do not include it (only
# ev_connected) the transaction goes on, without energy, until its EV leaves.
DEAUTHORIZING = {model.REASON_LOCAL: model.CAUSE_STOP_AUTHORIZED, model.REASON_REMOTE: model.CAUSE_REMOTE_STOP,
                 model.REASON_DEAUTHORIZED: model.CAUSE_DEAUTHORIZED}


def start_request(id_tag: str, parent_id_tag: str | None, charging_profile: dict | None = None,
                  token_kind: str | None = None, remote_start_id: int | None = None, remote: bool = False,
                  reservation_id: int | None = None) -> dict:
    """What may start a transaction once an EV is plugged in: an authorized identifier, its
    group, a remote start's charging profile, the token's kind, the remote start's id and the
    reservation it uses (agent/core/reservations.py)."""
    return {"id_tag": id_tag, "parent_id_tag": parent_id_tag, "charging_profile": charging_profile,
            "token_kind": token_kind or model.TOKEN_ISO14443, "remote_start_id": remote_start_id, "remote": remote,
            "reservation_id": reservation_id}


class Sessions:
    """Sessions"""

    async def _react_to_pilot(self, c: Connector) -> None:
        """Transaction consequences of what the EV did (called with the connector lock held)."""
        tx = c.transaction
        if c.evse.ev_connected:
            if tx is not None and not tx.stopped:
                if not tx.ev_seen:  # a transaction begun on its authorization: the EV came in time
                    tx.ev_seen = True
                    self._cancel(("timeout", c.id))
            elif c.pending_auth is not None:
                pending, c.pending_auth = c.pending_auth, None
                self._cancel(("timeout", c.id))
                await self._begin_transaction(c, pending, model.START_CABLE_PLUGGED_IN)
            elif (tx is None and not c.finishing and TX_EV_CONNECTED in self._tx_points("tx_start_points")
                  and self._may_start(c)):
                await self._begin_transaction(c, start_request("", None), model.START_EV_CONNECTED)
            return
        # No EV (state A, or F while unavailable).
        if c.finishing:
            c.finishing = False
        if tx is not None and not tx.stopped and c.evse.cp_state == "A" and tx.ev_seen:
            if tx.start_deferred:  # no energy flowed: nothing began that the central system knows of
                await self._end_transaction(c, model.REASON_EV_DISCONNECTED)
            elif tx.awaiting_auth and tx.stop_reason is not None:  # deauthorized, held by the EV until now
                tx.stop_cause = model.CAUSE_EV_DEPARTED
                await self._end_transaction(c, tx.stop_reason, tx.stop_id_tag)
            elif self.settings.get("stop_on_ev_disconnect") or any(
                    p in self._tx_points("tx_stop_points")
                    for p in (TX_EV_CONNECTED, TX_POWER_PATH_CLOSED, TX_ENERGY_TRANSFER)):
                keep_locked = not self.settings.get("unlock_on_ev_disconnect") and c.hw.lock is not None
                await self._end_transaction(c, model.REASON_EV_DISCONNECTED, keep_locked=keep_locked)
                if keep_locked and tx.id_tag:
                    c.locked_for = tx.id_tag
            if self.settings.get("unlock_on_ev_disconnect") and c.hw.lock is not None:
                try:
                    await c.hw.lock.set_locked(False)
                except HalError as e:
                    log.error("connector %d: unlock after EV disconnect failed: %s", c.id, e)

    def _tx_points(self, name: str) -> list:
        """The transaction start (``tx_start_points``) or stop (``tx_stop_points``) points in force:
        the setting for a link that lets the central system place them, else its default."""
        if getattr(self.link, "configurable_tx_points", False):
            return self.settings.get(name)
        return list(self.settings.definition(name).default)

    def _may_start(self, c: Connector) -> bool:
        """Whether a new transaction may begin on ``c`` (idle, operative, not faulted, no reset waiting)."""
        return (c.transaction is None and not c.faulted and c.availability == model.OPERATIVE
                and self.charger_error_code == NO_ERROR and not self.reset_pending)

    def _ends_when_deauthorized(self, c: Connector) -> bool:
        """Whether losing its authorization ends the running transaction on ``c``: a stop point
        needs it (authorized, power_path_closed) or the energy it stops (energy_transfer), or no
        EV holds the transaction (its only stop point, ev_connected, is not there to end it)."""
        points = self._tx_points("tx_stop_points")
        return (c.transaction.start_deferred or not c.ev_connected
                or any(p in points for p in (TX_AUTHORIZED, TX_POWER_PATH_CLOSED, TX_ENERGY_TRANSFER)))

    def _announce_finishing(self, c: Connector) -> None:
        """Report Finishing once when a transaction ends by unplugging (before Available)."""
        if c.status != model.FINISHING:
            c.status, c.status_error_code = model.FINISHING, c.effective_error_code
            self.link.status_changed(c.id)

    async def present_tag(self, id_tag: str, token_kind: str | None = None) -> str:
        """A tag was presented at the reader: stop a running transaction of the
        same tag (or parent), or authorize and start/prepare one. ``token_kind``: what the
        reader says the token is (model.TOKEN_*). Returns what happened."""
        for c in self.connectors:
            if c.locked_for is not None and tag_key(c.locked_for) == tag_key(id_tag):
                c.locked_for = None  # its driver came back for the cable the EV left behind
                log.info("connector %d: tag %s unlocks its cable", c.id, id_tag)
                await self._set_cable_lock(c, False)
                return "unlocked"
        for c in self.connectors:
            tx = c.transaction
            if (tx is not None and not tx.stopped and not tx.awaiting_auth
                    and tag_key(tx.id_tag) == tag_key(id_tag)):  # case-insensitive
                await self.stop_transaction(c.id, model.REASON_LOCAL, id_tag=id_tag)
                return "stopped"
        if self._connector_for_new_session(id_tag, maybe_group=True) is None and not any(
                c.transaction is not None and not c.transaction.stopped
                and (c.transaction.parent_id_tag or self.settings.get("master_pass_group_id", ""))
                for c in self.connectors):
            # Nothing this tag could start, and no running transaction has a group (parent) tag it
            # could share: no authorization request (OCTT TC_068_CS step 1). A transaction's parent is
            # known from its tag's authorization, the local list/cache or the answer to its start (TC_069_CS).
            log.info("tag %s: no connector free for a session", id_tag)
            return "no-connector"
        info = await self.authorize(id_tag, token_kind)  # the central system online, else the local list/cache
        if self.is_master_pass(info):  # stops every transaction, starts none (2.0.1 C16, C12.FR.09)
            return "stopped" if await self._master_pass_stop(id_tag) else "rejected"
        # A different tag may end a running transaction when both share a parent (group) tag.
        for c in self.connectors:
            tx = c.transaction
            if (tx is not None and not tx.stopped and info.accepted and info.parent_id_tag
                    and tx.parent_id_tag and tag_key(tx.parent_id_tag) == tag_key(info.parent_id_tag)):
                await self.stop_transaction(c.id, model.REASON_LOCAL, id_tag=id_tag)
                return "stopped"
        if not info.accepted:
            log.info("tag %s not authorized: %s", id_tag, info.status)
            return "rejected"
        target = self._connector_for_new_session(id_tag, info.parent_id_tag)
        if target is None:
            log.info("tag %s: no connector free for a session (or reserved for another)", id_tag)
            return "no-connector"
        await self._authorized(target, start_request(id_tag, info.parent_id_tag, token_kind=token_kind,
                                                     reservation_id=self._claim(target, id_tag, info.parent_id_tag)))
        return "authorized"

    def _connector_for_new_session(self, id_tag: str | None = None, parent_id_tag: str | None = None,
                                   maybe_group: bool = False) -> Connector | None:
        """A connector where ``id_tag`` (of group ``parent_id_tag``) may begin a session: one with
        an EV plugged in first; reservations decide which ones it may use (``_sessions_allowed``)."""
        if self.reset_pending:
            return None
        usable = [c for c in self.connectors if (c.transaction is None or c.transaction.awaiting_auth) and not c.faulted
                  and c.availability == model.OPERATIVE and c.pending_auth is None]
        usable = self._sessions_allowed(usable, id_tag, parent_id_tag, maybe_group)
        for c in usable:
            if c.ev_connected:
                return c
        return usable[0] if usable else None

    async def _authorized(self, c: Connector, start: dict) -> None:
        """``start`` (``start_request``) may begin a transaction on ``c``: now if an EV is
        plugged in or the start point is the authorization, else when one is (within
        ev_connect_timeout_s). A transaction begun on the EV alone takes it as its identifier."""
        async with self._locks[c.id - 1]:
            tx = c.transaction
            if tx is not None and not tx.stopped and tx.awaiting_auth:
                self._authorize_running(c, tx, start)
            elif c.ev_connected or TX_AUTHORIZED in self._tx_points("tx_start_points"):
                cause = model.START_REMOTE if start["remote"] else model.START_AUTHORIZED
                await self._begin_transaction(c, start, cause)
                if c.transaction is not None and not c.transaction.ev_seen:
                    self._spawn(self._connection_timeout(c), key=("timeout", c.id))
            else:
                c.pending_auth = start
                self._spawn(self._connection_timeout(c), key=("timeout", c.id))
        await self._update(c)

    def _authorize_running(self, c: Connector, tx: model.Transaction, start: dict) -> None:
        """A transaction without an authorization (begun on the EV, or deauthorized while its
        EV holds it) gets ``start``'s identifier: reported, and energy may flow."""
        tx.id_tag, tx.parent_id_tag = start["id_tag"], start["parent_id_tag"]
        tx.token_kind, tx.remote_start_id = start["token_kind"], start["remote_start_id"]
        tx.awaiting_auth, tx.authorized = False, True
        tx.stop_reason = tx.stop_id_tag = None
        self._use_reservation(tx, start.get("reservation_id"))
        if start["charging_profile"] is not None:
            self._install_start_profile(c, tx, start["charging_profile"])
        log.info("connector %d: transaction %d authorized for %s", c.id, tx.local_id, tx.id_tag)
        if getattr(self.link, "wants_state_events", False):
            state = tx.reported_state[0] if tx.reported_state else model.PREPARING
            self._queue_update(c, tx, model.CAUSE_REMOTE_START if start["remote"] else model.CAUSE_AUTHORIZED,
                               state, c.ev_connected)

    def _deauthorize(self, c: Connector, reason: str, id_tag: str | None) -> None:
        """The running transaction on ``c`` loses its authorization but goes on (its stop points
        keep it while the EV is plugged in): no energy; it ends, with ``reason``, when the EV leaves."""
        tx = c.transaction
        if tx is None or tx.stopped or tx.awaiting_auth:
            return
        tx.awaiting_auth = True
        tx.stop_reason, tx.stop_id_tag = reason, id_tag
        log.info("connector %d: transaction %d deauthorized (%s); it ends when the EV leaves", c.id, tx.local_id,
                 reason)
        if getattr(self.link, "wants_state_events", False):
            state = tx.reported_state[0] if tx.reported_state else model.PREPARING
            self._queue_update(c, tx, DEAUTHORIZING[reason], state, c.ev_connected)

    async def _connection_timeout(self, c: Connector) -> None:
        await self.clock.sleep(self.settings.get("ev_connect_timeout_s"))
        self._conn_tasks.pop(("timeout", c.id), None)
        tx = c.transaction
        if tx is not None and not tx.stopped and not tx.ev_seen:
            log.info("connector %d: no EV plugged in within ev_connect_timeout_s; transaction %d ends", c.id,
                     tx.local_id)
            await self.stop_transaction(c.id, model.REASON_TIMEOUT)
            return
        if c.pending_auth is not None and c.transaction is None:
            log.info("connector %d: no EV plugged in within ev_connect_timeout_s; authorization dropped", c.id)
            c.pending_auth = None
            await self._update(c)

    async def remote_start(self, id_tag: str, connector_id: int | None = None,
                           charging_profile: dict | None = None, token_kind: str = model.TOKEN_CENTRAL,
                           remote_start_id: int | None = None) -> bool:
        """A remote start: True if accepted. ``charging_profile`` (a profile
        dict, agent/core/smart_charging.py) becomes the transaction's tx profile
        when it starts; one the store would not take rejects the request (OCTT
        TC_060). ``token_kind`` and ``remote_start_id`` (2.0.1) are kept with the
        transaction. Raises ``ProfileError`` for a malformed profile."""
        journal = self.outbox.journal
        if journal is not None and not journal.healthy and not journal.probe():
            return False  # it could not be recorded: don't promise a transaction
        if connector_id is not None:
            if connector_id == 0 or connector_id > len(self.connectors) or connector_id < 0:
                return False
            c = self.connector(connector_id)
            busy = c.transaction is not None and not c.transaction.awaiting_auth  # awaiting: it takes the id
            if (busy or c.faulted or c.availability != model.OPERATIVE
                    or c.pending_auth is not None or self.charger_error_code != NO_ERROR or self.reset_pending):
                return False
            if not self._sessions_allowed([c], id_tag, self._known_parent(id_tag)):
                return False  # reserved for another identifier
        else:
            c = self._connector_for_new_session(id_tag, self._known_parent(id_tag))
            if c is None:
                return False
        if charging_profile is not None and self.charging_profiles.check_remote_start(
                charging_profile, c.id) != ACCEPTED:
            return False
        self._spawn(self._remote_start(c, start_request(id_tag, None, charging_profile, token_kind, remote_start_id,
                                                        remote=True,
                                                        reservation_id=self._claim(c, id_tag,
                                                                                   self._known_parent(id_tag)))))
        return True

    async def _remote_start(self, c: Connector, start: dict) -> None:
        id_tag = start["id_tag"]
        if self.settings.get("authorize_remote_start"):
            info = await self.authorize(id_tag, start.get("token_kind"))
            if not info.accepted:
                log.info("remote start for %s: tag not authorized (%s)", id_tag, info.status)
                return
            start["parent_id_tag"] = info.parent_id_tag
        await self._authorized(c, start)

    async def remote_stop(self, tx_id: str | None = None, backend_id=None) -> bool:
        """Stop a transaction on the central system's request (by either identifier)."""
        c = self.find_transaction(tx_id, backend_id)
        if c is None:
            return False
        self._spawn(self.stop_transaction(c.id, model.REASON_REMOTE))
        return True

    async def change_availability(self, connector_id: int, availability: str) -> str:
        """Accepted, Rejected or Scheduled (when a transaction runs)."""
        if connector_id < 0 or connector_id > len(self.connectors):
            return model.REJECTED
        targets = self.connectors if connector_id == 0 else [self.connector(connector_id)]
        scheduled = False
        for c in targets:
            if c.transaction is not None and availability == model.INOPERATIVE:
                c.scheduled_availability = availability
                scheduled = True
            else:
                c.availability = availability
                c.scheduled_availability = None
                if availability == model.INOPERATIVE:
                    c.pending_auth = None
                await c.hw.evse.set_available(availability == model.OPERATIVE)
        if connector_id == 0:
            self.charger_availability = availability
        self._save()
        for c in targets:
            await self._update(c)
        self._update_charger_status()
        return model.SCHEDULED if scheduled else model.ACCEPTED

    async def unlock_connector(self, connector_id: int, stop_running: bool = True) -> str:
        """unlocked, unlock_failed, not_supported, or ongoing_transaction: a running
        transaction is stopped first (``stop_running``, 1.6) or keeps the cable locked
        (2.0.1 F05.FR.02)."""
        if not 1 <= connector_id <= len(self.connectors):
            return model.NOT_SUPPORTED
        c = self.connector(connector_id)
        if c.hw.lock is None:
            return model.NOT_SUPPORTED
        if c.transaction is not None and not c.transaction.stopped:
            if not stop_running:
                return model.ONGOING_TRANSACTION
            await self.stop_transaction(c.id, model.REASON_UNLOCK)
        try:
            ok = await c.hw.lock.set_locked(False)
        except HalError as e:
            log.error("connector %d: unlock failed: %s", c.id, e)
            ok = False
        if ok:
            c.locked_for = None
        return model.UNLOCKED if ok else model.UNLOCK_FAILED

    def request_reset(self, hard: bool, when: str = model.RESET_NOW) -> None:
        """Restart in the background (the central system has its answer already)."""
        self._spawn(self.reset(hard, when))

    async def reset(self, hard: bool, when: str = model.RESET_NOW) -> None:
        """Restart the agent: ``RESET_NOW`` ends running transactions first (reason
        hard_reset/soft_reset) and flushes them; ``RESET_ON_IDLE`` waits until no
        transaction runs (none is ended for it) and starts no new one meanwhile."""
        cause = model.RESTART_RESET
        if when == model.RESET_ON_IDLE:
            self.reset_pending = True  # _connector_for_new_session offers no connector from now on
            while any(c.transaction is not None and not c.transaction.stopped for c in self.connectors):
                cause = model.RESTART_SCHEDULED_RESET
                await self.clock.sleep(IDLE_RESET_POLL_S)
        reason = model.REASON_HARD_RESET if hard else model.REASON_SOFT_RESET
        for c in self.connectors:
            if c.transaction is not None and not c.transaction.stopped:
                await self.stop_transaction(c.id, reason)
        if self.link.online:
            try:
                await wait_for(self.outbox.emptied.wait(), RESET_FLUSH_TIMEOUT_S)
            except asyncio.TimeoutError:
                log.warning("reset: %d transaction messages still queued", len(self.outbox))
        self.restart_cause = cause
        self._save()
        if self.on_restart is not None:
            self.on_restart(hard)

    async def power_failure(self, flush_timeout_s: float = RESET_FLUSH_TIMEOUT_S) -> None:
        """The supply failed and a back-up source keeps the charger up for a moment
        (OCTT TC_032_1): end every transaction with reason PowerLoss and try to deliver
        the StopTransactions before going down. Without a back-up source the restarted
        agent closes them instead (``_recover``)."""
        for c in self.connectors:
            if c.transaction is not None and not c.transaction.stopped:
                await self.stop_transaction(c.id, model.REASON_POWER_LOSS)
        if self.link.online:
            try:
                await wait_for(self.outbox.emptied.wait(), flush_timeout_s)
            except asyncio.TimeoutError:
                log.warning("power failure: %d transaction messages still queued", len(self.outbox))

    async def _begin_transaction(self, c: Connector, start: dict, cause: str) -> None:
        """Start a transaction for ``start`` (``start_request``; called with the connector
        lock held); its charging profile (from a remote start) becomes its tx profile.
        ``cause``: what came last, model.START_*. Begun on the EV alone (START_EV_CONNECTED) it
        waits for an identifier; with energy_transfer the only start point its start is reported
        when energy flows (``_report_deferred_start``); begun without an EV, it waits for one."""
        id_tag, charging_profile = start["id_tag"], start["charging_profile"]
        reading = await self._read_meter(c)
        energy = energy_wh_of(reading)
        if energy is None:
            log.error("connector %d: no meter reading; refusing to start a transaction it cannot bill", c.id)
            return
        if not await self._set_cable_lock(c, True):
            log.error("connector %d: the cable could not be locked; not starting a transaction", c.id)
            return
        tx = model.Transaction(self._next_local_id, c.id, id_tag, int(round(energy)), self.clock.time(),
                               parent_id_tag=start["parent_id_tag"])
        tx.token_kind, tx.remote_start_id, tx.start_cause = start["token_kind"], start["remote_start_id"], cause
        reserved = start.get("reservation_id")
        if reserved is not None and self.reservations.get(reserved) is not None:
            tx.reservation_id = reserved  # still held (not expired or cancelled meanwhile): the start names it
        tx.awaiting_auth = cause == model.START_EV_CONNECTED
        tx.ev_seen = c.ev_connected
        tx.start_deferred = not any(p != TX_ENERGY_TRANSFER for p in self._tx_points("tx_start_points"))
        tx.reported_state = (model.PREPARING, c.ev_connected)
        self._next_local_id += 1
        self._save()
        begin = build_meter_sample(reading, self.settings.get("sampled_end_measurands"), self.clock.time(),
                                   "Transaction.Begin", c, register_wh=tx.meter_start_wh)
        if begin.samples:
            tx.stop_data.append(begin)
        started = build_meter_sample(reading, self.settings.get("started_measurands"), self.clock.time(),
                                     "Transaction.Begin", c, register_wh=tx.meter_start_wh)
        tx.start_samples = [started] if started.samples else []
        if not tx.start_deferred:
            try:
                self.outbox.append(self._start_entry(c, tx, model.PREPARING))  # durable before any energy flows
            except JournalUnavailable as e:
                log.error("connector %d: cannot record a new transaction (%s): not starting it", c.id, e)
                await self._set_cable_lock(c, False)
                return
        c.transaction = tx
        c.finishing = False
        c.locked_for = None  # locked again for this transaction
        self._use_reservation(tx, tx.reservation_id)  # its holder came: the reservation ends
        log.info("connector %d: transaction %d %s for %r at %d Wh", c.id, tx.local_id,
                 "begun, its start reported when energy flows," if tx.start_deferred else "started", id_tag,
                 tx.meter_start_wh)
        if charging_profile is not None:
            self._install_start_profile(c, tx, charging_profile)
        if not tx.start_deferred:
            self._restart_sampler(c)

    def _start_entry(self, c: Connector, tx: model.Transaction, state: str) -> OutboxEntry:
        """The outbox entry of ``tx``'s start; for a link that reports states, with what began it,
        the connector's state and whether an EV is connected (a start on the authorization has none)."""
        if not getattr(self.link, "wants_state_events", False):
            return OutboxEntry(START, tx, c.id, tx.start_samples)
        return OutboxEntry(START, tx, c.id, tx.start_samples, cause=tx.start_cause, state=state,
                           ev_connected=c.ev_connected, time=tx.start_time)

    def _install_start_profile(self, c: Connector, tx: model.Transaction, charging_profile: dict) -> None:
        """A remote start's charging profile becomes the transaction's tx profile (bound to the
        transaction id when the answer to its start brings it, ``transaction_confirmed``)."""
        status = self.charging_profiles.install(c.id, charging_profile, now=tx.start_time, transaction_active=True)
        if status != ACCEPTED:
            log.warning("connector %d: the remote start's charging profile was not installed: %s",
                        c.id, self.charging_profiles.last_rejection)
        self._save_profiles()

    def _report_deferred_start(self, c: Connector, tx: model.Transaction) -> None:
        """Energy flows for a transaction whose start point is energy_transfer: its start is
        queued now (called with the connector lock held). One that cannot be recorded ends."""
        tx.start_deferred = False
        tx.start_time, tx.start_cause = self.clock.time(), model.START_ENERGY_TRANSFER
        tx.reported_state = (model.CHARGING, True)
        try:
            self.outbox.append(self._start_entry(c, tx, model.CHARGING))
        except JournalUnavailable as e:
            log.error("connector %d: cannot record transaction %d (%s): ending it", c.id, tx.local_id, e)
            tx.start_deferred = True
            self._spawn(self.stop_transaction(c.id, model.REASON_OTHER))
            return
        log.info("connector %d: transaction %d started as energy flows", c.id, tx.local_id)
        self._restart_sampler(c)

    async def _set_cable_lock(self, c: Connector, locked: bool) -> bool:
        """Lock or unlock the cable (connectors without a lock: nothing to do). A lock
        that fails to lock is reported as connector_lock_failure."""
        if c.hw.lock is None:
            return True
        try:
            ok = await c.hw.lock.set_locked(locked)
        except HalError as e:
            log.error("connector %d: %s failed: %s", c.id, "lock" if locked else "unlock", e)
            ok = False
        if locked:
            self._set_fault(c, "lock", None if ok else ("connector_lock_failure", ""))
        return ok

    def transaction_confirmed(self, tx: model.Transaction, backend_id, info: model.IdTagInfo,
                              update_auth_cache: bool = True) -> None:
        """The central system confirmed the start of ``tx``, giving it ``backend_id`` (or None).
        ``update_auth_cache`` False: the answer comes from an earlier central system (a drain,
        agent/link/switch.py); it confirms the transaction, but its idTagInfo does not enter the
        current central system's authorization data (cache, local list conflicts)."""
        tx.backend_id = backend_id
        log.info("connector %d: transaction %s has the central system's id %r (%s)", tx.connector_id, tx.id,
                 backend_id, info.status)
        if info.parent_id_tag:  # the start tag's group, when no authorization told it (OCTT TC_069_CS)
            tx.parent_id_tag = info.parent_id_tag
        if update_auth_cache and tx.id_tag:  # begun on the EV alone: no identifier to learn about yet
            self.id_tag_info_received(tx.id_tag, info)
        if (not tx.stopped and 1 <= tx.connector_id <= len(self.connectors)
                and self.connector(tx.connector_id).transaction is tx):
            self.charging_profiles.bind_transaction(tx.connector_id, backend_id)  # its tx profile
            self._save_profiles()
        if not info.accepted and not tx.stopped:
            tx.authorized = False
            c = self.connector(tx.connector_id)
            if self.settings.get("stop_on_invalid_id"):
                self._spawn(self.stop_transaction(c.id, model.REASON_DEAUTHORIZED))
            else:  # only energy delivery stops (after max_energy_on_invalid_id_wh, see _charging_allowed)
                self._spawn(self._update(c))

    async def stop_transaction(self, connector_id: int, reason: str, id_tag: str | None = None) -> None:
        """End the running transaction on a connector."""
        c = self.connector(connector_id)
        async with self._locks[c.id - 1]:
            tx = c.transaction
            if (reason in DEAUTHORIZING and tx is not None and not tx.stopped and not tx.awaiting_auth
                    and not self._ends_when_deauthorized(c)):
                self._deauthorize(c, reason, id_tag)
            else:
                await self._end_transaction(c, reason, id_tag)
        await self._update(c)

    async def _end_transaction(self, c: Connector, reason: str, id_tag: str | None = None,
                               keep_locked: bool = False) -> None:
        """End the running transaction on ``c`` (called with the lock held); the cable is unlocked
        unless ``keep_locked`` (its EV left and unlock_on_ev_disconnect is false)."""
        tx = c.transaction
        if tx is None or tx.stopped:
            return
        tx.stop_time = self.clock.time()  # from here on _apply offers nothing
        await self._apply(c)
        self._cancel(("sampler", c.id))
        self._cancel(("timeout", c.id))
        if tx.start_deferred:  # begun, but no energy flowed: its start was never reported, nor is its end
            log.info("connector %d: transaction %d ends before energy flowed (%s): not reported", c.id,
                     tx.local_id, reason)
            c.transaction = None
            c.finishing = c.ev_connected
            await self._set_cable_lock(c, False)
            return
        reading = await self._read_meter(c)
        energy = energy_wh_of(reading)
        if energy is None:  # the meter does not answer: the last reading the transaction recorded
            log.warning("connector %d: no meter reading at the end of transaction %d: it ends on the last "
                        "recorded one, %d Wh", c.id, tx.local_id, tx.last_meter_wh)
            energy = tx.last_meter_wh
        tx.meter_stop_wh = max(int(round(energy)), tx.meter_start_wh, tx.last_meter_wh)
        tx.last_meter_wh, tx.last_meter_time = tx.meter_stop_wh, tx.stop_time
        tx.stop_reason = reason
        tx.stop_id_tag = id_tag
        end = build_meter_sample(reading, self.settings.get("sampled_end_measurands"), tx.stop_time,
                                 "Transaction.End", c, register_wh=tx.meter_stop_wh)
        if end.samples:
            tx.stop_data.append(end)
        self.outbox.append(OutboxEntry(STOP, tx, c.id))
        log.info("connector %d: transaction %d stopped (%s), %d Wh", c.id, tx.local_id, reason,
                 tx.meter_stop_wh - tx.meter_start_wh)
        c.transaction = None
        if self.charging_profiles.transaction_ended(c.id):  # §3.13.1: tx profiles end with the transaction
            self._save_profiles()
        c.finishing = c.ev_connected
        if not keep_locked:
            await self._set_cable_lock(c, False)  # the driver can take the cable once the session ends
        if not c.ev_connected:
            self._announce_finishing(c)  # the session's end is visible even when the EV already left
        if c.scheduled_availability is not None:
            c.availability, c.scheduled_availability = c.scheduled_availability, None
            await c.hw.evse.set_available(c.availability == model.OPERATIVE)
            self._save()
            self._update_charger_status()
