"""The station: connectors, authorization, transactions and charging logic.

Independent of OCPP: an adapter calls the public methods (``present_tag``,
``remote_start``, ``change_availability``…) and provides a
``CentralSystemLink`` for what the station must tell the central system.
Every hardware output follows from one rule set in ``_apply``:

* the EVSE controller offers current only while an authorized transaction
  runs, the connector is not faulted and the limits allow at least the
  controller's minimum;
* the contactor is closed only while current is offered and the EV is in
  state C or D, and opened on anything else (unplug, stop, fault, lost
  controller).

Portable core: only the MicroPython asyncio subset (see STYLE.md).
"""

import asyncio
import logging

from agent.core import model
from agent.core.auth import AuthorizationCache, LocalAuthList, effective, tag_key
from hal.runtime.clock import Clock
from agent.core.settings import Settings
from agent.core.connector import Connector
from agent.core.metering import build_meter_sample, energy_wh_of
from agent.core.outbox import METER, START, STOP, JournalUnavailable, OutboxEntry, TransactionOutbox
from agent.core.smart_charging import (ACCEPTED, DEFAULT_MAX_PERIODS, DEFAULT_MAX_PROFILES, DEFAULT_MAX_STACK_LEVEL,
                                  ChargingProfileStore, composite_schedule, limit_at)
from hal.runtime.storage import read_json, write_json_atomic
from hal.runtime.aio import wait_for
from hal.contactor_check import POWER_SWITCH_FAILURE
from hal.errors import DeviceFaultError, HalError
from hal.interfaces import NO_ERROR, Board, MeterReading

log = logging.getLogger(__name__)

RESET_FLUSH_TIMEOUT_S = 10.0
EV_STOP_GRACE_S = 6.0  # PWM off with the EV still in C: open the contactor after this at the latest
CHECKPOINT_S = 60  # the running transaction's meter reading is journaled at least this often
JOURNAL_RETRY_S = 30  # after a failed journal write, rewrite it from memory this often
INVALID_ID_POLL_S = 1.0  # meter reads while charging on MaxEnergyOnInvalidId
METER_WATCH_S = 60.0  # the meter is read at least this often, idle or not (meter health, welded contactor)
METER_RETRY_S = 5.0  # ... and this often while its reads fail (PowerMeterFailure, then NoError soon after)
COMMAND_RETRY_S = 5.0  # after a failed hardware command, retry it after this long, doubling on each failure
COMMAND_RETRY_MAX_S = 300.0  # ... up to this
FAULT_SOURCES = ("contactor", "command", "lock", "meter")  # Connector.faults, the first one present is reported
CLOCK_CHECK_S = 60.0  # a boundary timer looks at least this often whether the wall clock was stepped
CLOCK_STEP_S = 1.0  # wall time moving this much more or less than monotonic time is a step (NTP, RTC)


class CentralSystemLink:
    """What the station needs from the central system. The default is a link
    that is never online (a station with no backend still works locally)."""

    online = False

    async def authorize(self, id_tag: str) -> model.IdTagInfo | None:
        """Ask the central system; None when there is no answer (offline, timeout)."""
        return None

    def status_changed(self, connector_id: int) -> None:
        """The status of ``connector_id`` (0 = charger) changed."""

    def meter_values(self, connector_id: int, sample) -> None:
        """Meter values outside a transaction (sent when online, else dropped)."""

    def local_list_conflict(self, id_tag: str) -> None:
        """The central system's answer about ``id_tag`` contradicts the Local
        Authorization List (reported, the charger's status unchanged)."""


class Station:
    """A self-contained charger: one object per station, no shared state."""

    def __init__(self, board: Board, settings: Settings, clock: Clock | None = None,
                 max_current_a: float = 0.0, store=None, journal=None, auth_cache=None,
                 local_list=None, charging_profiles: ChargingProfileStore | None = None,
                 charging_profiles_path: str | None = None) -> None:
        self.board = board
        self.settings = settings
        self.clock = clock or Clock()
        self.link = CentralSystemLink()
        self.outbox = TransactionOutbox(journal)
        self.auth_cache = auth_cache if auth_cache is not None else AuthorizationCache(None)
        self.local_list = local_list if local_list is not None else LocalAuthList(None)
        self.recovered: list = []  # transactions closed at start after a crash or power cut
        self.connectors = [Connector(i + 1, hw) for i, hw in enumerate(board.connectors)]
        self.max_current_a = max_current_a  # local supply limit per phase; 0 = none
        self.charger_error_code = NO_ERROR
        self.charger_status = model.AVAILABLE
        self.charger_availability = model.OPERATIVE  # of connector 0, set by ChangeAvailability for 0
        self.on_restart = None  # callable(hard: bool), set by the runner
        self._store = store  # persistent station state (availability, transaction counter)
        self._next_local_id = 1
        self._clean_shutdown = False
        self._tasks: list = []
        self._conn_tasks: dict = {}
        self._locks = [asyncio.Lock() for _ in self.connectors]
        self._running = False
        # Smart charging (OCPP 1.6 §3.13): the installed profiles, persisted in charging_profiles_path.
        self.charging_profiles = (charging_profiles if charging_profiles is not None
                                  else self._default_profile_store())
        self._profiles_path = charging_profiles_path
        self._profiles_saved = self.charging_profiles.revision
        self._profile_timer_at: dict = {}  # connector id -> epoch of the armed boundary timer
        self._drawing: dict = {}  # connector id -> True while it may offer current (shares the budget)
        self.settings.on_change(self._on_setting_changed)
        if store is not None:
            self._restore(store.load())
        if charging_profiles_path is not None:
            self._load_profiles()

    # ------------------------------------------------------------------ lifecycle
    async def start(self, journal_data: tuple | None = None) -> None:
        """Put the hardware in its safe state, close what a crash left open
        (``journal_data`` = what the journal held), and start watching."""
        self._running = True
        for c in self.connectors:  # no transaction runs at boot: TxProfiles end with theirs (§3.13.1)
            if c.transaction is None:
                self.charging_profiles.transaction_ended(c.id)
        self._save_profiles()
        for c in self.connectors:
            c.evse = c.hw.evse.status
            await self._safe_outputs(c)
            if c.availability == model.INOPERATIVE:  # persisted: the EVSE stays unavailable after a reboot
                try:
                    await c.hw.evse.set_available(False)
                except HalError as e:
                    log.error("connector %d: cannot make it unavailable: %s", c.id, e)
        for c in self.connectors:
            self._spawn(self._watch_evse(c))
            await self._update(c)
            if c.hw.meter is not None:
                self._spawn(self._meter_watch(c))
        self._update_charger_status()
        clean = self._clean_shutdown
        self._clean_shutdown = False
        self._save()
        if journal_data is not None:
            await self._recover(journal_data, clean)
        if self.outbox.journal is not None:
            self._spawn(self._journal_watch())
        if self.board.reader is not None:
            self._spawn(self._watch_reader())
        if hasattr(self.board, "changed"):
            self._spawn(self._watch_board())
        self._restart_aligned()

    async def stop(self) -> None:
        """Stop all tasks and leave the hardware safe (no current offered, contactors open)."""
        self._running = False
        tasks = self._tasks + list(self._conn_tasks.values())
        self._tasks, self._conn_tasks = [], {}
        self._profile_timer_at = {}
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for c in self.connectors:
            await self._safe_outputs(c)
        for c in self.connectors:  # the last reading of a running transaction, for the restart
            tx = c.transaction
            if tx is not None:
                try:
                    energy = energy_wh_of(await self._read_meter(c))
                except Exception as e:  # stopping must go on whatever the meter does
                    log.warning("connector %d: no final meter reading at stop: %s", c.id, e)
                    energy = None
                if energy is not None and energy >= tx.last_meter_wh:
                    tx.last_meter_wh, tx.last_meter_time = int(round(energy)), self.clock.time()
                self.outbox.save_transaction(tx, durable=True)
        self._clean_shutdown = True
        self._save()

    def _spawn(self, coro, key=None):
        task = asyncio.create_task(coro)
        if key is None:
            self._tasks = [t for t in self._tasks if not t.done()]
            self._tasks.append(task)
        else:
            old = self._conn_tasks.pop(key, None)
            if old is not None:
                old.cancel()
            self._conn_tasks[key] = task
        return task

    def _cancel(self, key) -> None:
        task = self._conn_tasks.pop(key, None)
        if task is not None:
            task.cancel()

    def _spawn_once(self, key, start, *args) -> None:
        """Start ``start(*args)`` under ``key`` unless a task under it still runs."""
        task = self._conn_tasks.get(key)
        if self._running and (task is None or task.done()):
            self._spawn(start(*args), key=key)

    def _release(self, key) -> None:
        """A keyed task is ending: drop its entry, unless a newer task holds the key."""
        if self._conn_tasks.get(key) is asyncio.current_task():
            del self._conn_tasks[key]

    async def _safe_outputs(self, c: Connector) -> None:
        try:
            await c.hw.evse.set_current_limit(0)
        except HalError as e:
            log.error("connector %d: cannot stop current offer: %s", c.id, e)
        c.offered_current_a = 0.0
        if c.hw.contactor is not None:
            try:
                await c.hw.contactor.set_closed(False)
            except HalError as e:
                log.error("connector %d: cannot open contactor: %s", c.id, e)
        c.contactor_closed = False
        c.contactor_check.switched(False, self.clock.monotonic())

    # ------------------------------------------------------------------ persistence
    def _restore(self, state: dict) -> None:
        self._next_local_id = int(state.get("next_local_id", 1))
        self._clean_shutdown = bool(state.get("clean_shutdown", False))
        if state.get("availability", {}).get("0") == model.INOPERATIVE:
            self.charger_availability = model.INOPERATIVE
        for c in self.connectors:
            if state.get("availability", {}).get(str(c.id)) == model.INOPERATIVE:
                c.availability = model.INOPERATIVE

    def _save(self) -> None:
        if self._store is None:
            return
        availability = {str(c.id): c.availability for c in self.connectors}
        availability["0"] = self.charger_availability
        self._store.save({
            "next_local_id": self._next_local_id,
            "clean_shutdown": self._clean_shutdown,
            "availability": availability,
        })

    def _default_profile_store(self) -> ChargingProfileStore:
        """A profile store with the limits of the smart charging settings
        (their defaults when the station has no smart charging settings)."""
        return ChargingProfileStore(
            connector_count=len(self.connectors),
            max_stack_level=self.settings.get("profile_max_stack_level", DEFAULT_MAX_STACK_LEVEL),
            max_periods=self.settings.get("profile_max_periods", DEFAULT_MAX_PERIODS),
            max_profiles=self.settings.get("profile_max_installed", DEFAULT_MAX_PROFILES),
            allowed_units=tuple(self.settings.get("profile_rate_units", ("A", "W"))))

    def _load_profiles(self) -> None:
        data = read_json(self._profiles_path, None)
        if isinstance(data, dict):
            log.info("%d charging profiles restored", self.charging_profiles.load(data))
        elif data is not None:
            log.warning("%s is not a charging profile store; starting without profiles", self._profiles_path)
        self._profiles_saved = self.charging_profiles.revision

    def _save_profiles(self) -> None:
        """Persist the charging profiles if they changed (errata 3.37: they survive reboots)."""
        if self._profiles_path is None or self.charging_profiles.revision == self._profiles_saved:
            return
        try:
            write_json_atomic(self._profiles_path, self.charging_profiles.to_dict())
        except OSError as e:
            log.error("cannot save the charging profiles to %s: %s", self._profiles_path, e)
            return
        self._profiles_saved = self.charging_profiles.revision

    # ------------------------------------------------------------------ recovery
    async def _recover(self, journal_data: tuple, clean: bool) -> None:
        """Requeue what the journal held and close transactions a crash left open.

        A transaction still running in the journal ends now, exactly once:
        reason Reboot after a clean shutdown of the agent, PowerLoss after a
        crash, kill or power cut; meterStop is the meter's register now if it
        is readable and not below the last journaled reading, else that last
        reading; the stop time is the last moment the agent knew it running.
        """
        tx_dicts, msgs = journal_data
        txs = {d["local_id"]: model.transaction_from_dict(d) for d in tx_dicts}
        if txs:
            self._next_local_id = max(self._next_local_id, max(txs) + 1)
            self._save()
        entries = []
        for m in msgs:
            tx = txs.get(m["local_id"])
            if tx is None:
                log.error("journal: message %s for unknown transaction %d skipped", m["kind"], m["local_id"])
                continue
            entry = OutboxEntry(m["kind"], tx, m["connector_id"],
                                [model.sample_from_dict(x) for x in m["samples"]])
            entry.jseq, entry.attempts = m["jseq"], m["attempts"]
            entries.append(entry)
        repaired = self._requeue_lost(txs, entries)
        self.outbox.restore(entries)
        stopping = {e.tx.local_id for e in entries if e.kind == STOP}
        reason = model.REASON_REBOOT if clean else model.REASON_POWER_LOSS
        for tx in txs.values():
            if tx.stopped or tx.local_id in stopping:
                continue
            if not 1 <= tx.connector_id <= len(self.connectors):
                log.error("journal: transaction %d on unknown connector %d", tx.local_id, tx.connector_id)
                continue
            c = self.connector(tx.connector_id)
            reading = await self._read_meter(c)
            energy = energy_wh_of(reading)
            if energy is not None and energy >= tx.last_meter_wh:
                tx.meter_stop_wh = int(round(energy))
            else:
                tx.meter_stop_wh = max(tx.last_meter_wh, tx.meter_start_wh)
            tx.stop_time = max(tx.last_meter_time, tx.start_time)
            tx.stop_reason = reason
            self.outbox.append(OutboxEntry(STOP, tx, tx.connector_id))
            self.recovered.append(tx)
            c.finishing = c.ev_connected
            log.warning("connector %d: transaction %d (id %r) was left open by the last run: stopped (%s) at %d Wh",
                        c.id, tx.local_id, tx.backend_id, reason, tx.meter_stop_wh)
            await self._update(c)  # Finishing while the EV is still plugged in
        if repaired:  # give the requeued messages their rows in the journal
            self.outbox.resync_needed = True
            self.outbox.resync(list(txs.values()))

    @staticmethod
    def _requeue_lost(txs: dict, entries: list) -> bool:
        """Queue again the StartTransaction or StopTransaction of a journaled transaction
        whose message was lost to a damaged journal (salvaged rows). A transaction's row
        is deleted in the commit that confirms its StopTransaction and saved with its
        id in the one that confirms its StartTransaction, so: no id means the Start is
        unconfirmed, stopped means the Stop is. Returns True if anything was requeued."""
        kinds: dict = {}
        for e in entries:
            kinds.setdefault(e.tx.local_id, set()).add(e.kind)
        repaired = False
        for tx in txs.values():
            queued = kinds.get(tx.local_id, set())
            if tx.backend_id is None and START not in queued:
                at = next((i for i, e in enumerate(entries) if e.tx is tx), len(entries))
                entries.insert(at, OutboxEntry(START, tx, tx.connector_id))
                log.error("journal: StartTransaction of transaction %d was lost: queued again", tx.local_id)
                repaired = True
            if tx.stopped and STOP not in queued:
                entries.append(OutboxEntry(STOP, tx, tx.connector_id))
                log.error("journal: StopTransaction of transaction %d (id %r) was lost: queued again",
                          tx.local_id, tx.backend_id)
                repaired = True
        return repaired

    async def _journal_watch(self) -> None:
        """Rewrite the journal from memory after failed writes, until it works again."""
        while True:
            await self.clock.sleep(JOURNAL_RETRY_S)
            if self.outbox.resync_needed:
                live = [c.transaction for c in self.connectors if c.transaction is not None]
                if self.outbox.resync(live):
                    log.warning("journal rewritten from memory after failed writes")

    # ------------------------------------------------------------------ queries
    def connector(self, connector_id: int) -> Connector:
        if not 1 <= connector_id <= len(self.connectors):
            raise KeyError(connector_id)
        return self.connectors[connector_id - 1]

    def status_of(self, connector_id: int) -> tuple:
        """(status, error_code, info, vendor_error_code) of a connector; 0 = the charger."""
        if connector_id == 0:
            return self.charger_status, self.charger_error_code, "", ""
        c = self.connector(connector_id)
        vendor = c.effective_vendor_error_code if c.status_error_code == c.effective_error_code != NO_ERROR else ""
        return c.status, c.status_error_code, c.info, vendor

    def find_transaction(self, tx_id: str | None = None, backend_id=None) -> Connector | None:
        """The connector whose running transaction has the station's identifier ``tx_id``
        or the central system's ``backend_id``; None when there is none."""
        for c in self.connectors:
            tx = c.transaction
            if tx is not None and ((tx_id is not None and tx.id == tx_id)
                                   or (backend_id is not None and tx.backend_id == backend_id)):
                return c
        return None

    def sim_status(self, connector_id: int) -> dict:
        """Extra fields for the simulator's status output."""
        c = self.connector(connector_id)
        tx = c.transaction
        return {"ocpp_status": c.status, "transaction_id": tx.backend_id if tx else None,
                "id_tag": tx.id_tag if tx else None,
                "station_limit_a": round(self.current_limit_a(c), 3)}  # config and profiles, before the 6 A minimum

    # ------------------------------------------------------------------ hardware watching
    async def _watch_evse(self, c: Connector) -> None:
        evse = c.hw.evse
        while True:
            await evse.changed.wait()
            evse.changed.clear()
            await self._update(c)

    async def _watch_board(self) -> None:
        while True:
            await self.board.changed.wait()
            self.board.changed.clear()
            code = getattr(self.board, "error_code", NO_ERROR)
            if code != self.charger_error_code:
                self.charger_error_code = code
                for c in self.connectors:
                    await self._update(c)
                self._update_charger_status()

    async def _watch_reader(self) -> None:
        while True:
            try:
                tag = await self.board.reader.read_tag()
            except HalError as e:
                log.error("id reader failed: %s", e)
                await self.clock.sleep(5)
                continue
            try:
                await self.present_tag(tag)
            except Exception:  # one bad swipe must not stop the reader
                log.exception("handling id tag %s failed", tag)

    def _update_charger_status(self) -> None:
        if self.charger_error_code != NO_ERROR:
            status = model.FAULTED
        elif (self.charger_availability == model.INOPERATIVE
              and all(c.availability == model.INOPERATIVE for c in self.connectors)):
            status = model.UNAVAILABLE
        else:
            status = model.AVAILABLE
        if status != self.charger_status:
            self.charger_status = status
            self.link.status_changed(0)

    # ------------------------------------------------------------------ the rules
    def _charging_allowed(self, c: Connector) -> bool:
        tx = c.transaction
        return (tx is not None and not tx.stopped and (tx.authorized or self._invalid_id_energy_left(c, tx))
                and not c.faulted and self.charger_error_code == NO_ERROR)

    def current_limit_a(self, c: Connector) -> float:
        """The current this connector may offer now, before the controller's minimum."""
        return self._limit_and_next_change(c)[0]

    def _local_limit_a(self, c: Connector) -> float:
        """The connector's own limit: the controller's rating and ``[limits] max_current_a``."""
        limit = c.hw.evse.max_current_a
        if self.max_current_a > 0:
            limit = min(limit, self.max_current_a)
        return limit

    def _limit_and_next_change(self, c: Connector) -> tuple:
        """(the current connector ``c`` may offer now in A per phase, before the
        controller's minimum; the epoch time at which that may change, or None).

        The minimum of the local limit, the charging profiles' limit for the
        connector (``limit_at``: min of ChargePointMax and Tx/TxDefault) and, on a
        charger with several connectors, an equal share of the ChargePointMax
        budget among the connectors that may draw current now (it limits "the
        power or current to be shared by all connectors", §3.13.1)."""
        limit = self._local_limit_a(c)
        profiles = self.charging_profiles.profiles()
        if not profiles:
            return limit, None
        now = self.clock.time()
        tx = c.transaction
        running = tx is not None and not tx.stopped
        hw = c.hw
        profile_a, next_change = limit_at(profiles, c.id, now, tx.start_time if running else None,
                                          tx.backend_id if running else None, hw.voltage_v, hw.phases)
        if profile_a is not None and profile_a < limit:
            limit = profile_a
        if len(self.connectors) > 1:
            budget_a = limit_at(profiles, 0, now, None, None, hw.voltage_v, hw.phases)[0]
            if budget_a is not None:
                sharing = sum(1 for o in self.connectors if o is c or self._drawing.get(o.id))
                limit = min(limit, budget_a / sharing)
        return limit, next_change

    def _set_drawing(self, c: Connector, drawing: bool) -> None:
        """Note whether ``c`` may draw current; the others re-evaluate their share
        of a ChargePointMax budget when that changes."""
        if self._drawing.get(c.id, False) == drawing:
            return
        self._drawing[c.id] = drawing
        if not self._running or len(self.connectors) < 2:
            return
        if limit_at(self.charging_profiles.profiles(), 0, self.clock.time())[0] is None:
            return  # no budget to share now (one that starts later: every connector's timer fires then)
        for o in self.connectors:
            if o is not c and self._drawing.get(o.id):
                self._spawn(self._update(o))

    def _arm_profile_timer(self, c: Connector, at) -> None:
        """Re-evaluate ``c`` at the epoch time ``at`` (the next charging schedule
        boundary; None: no timer). Called with the connector's lock held, so the
        timer it replaces is asleep or waiting for the lock, never mid-command."""
        key = ("profile", c.id)
        if not self._running:
            at = None
        task = self._conn_tasks.get(key)
        alive = task is not None and not task.done()
        if alive and task is asyncio.current_task():  # the timer itself re-evaluating: it loops
            self._profile_timer_at[c.id] = at
            return
        if alive and self._profile_timer_at.get(c.id) == at:
            return
        self._profile_timer_at[c.id] = at
        if at is None:
            self._cancel(key)
        else:
            self._spawn(self._profile_timer(c), key=key)

    async def _profile_timer(self, c: Connector) -> None:
        """Sleep until the armed boundary (on the injected clock), then re-evaluate the
        connector. Boundaries are wall-clock times and sleeping is monotonic: a long wait
        is cut into CLOCK_CHECK_S pieces so that a stepped wall clock (a Pi without an
        RTC setting its time by NTP after boot) re-evaluates the limit at once."""
        clock = self.clock
        while True:
            at = self._profile_timer_at.get(c.id)
            if at is None:
                break
            remaining_s = at - clock.time()
            if remaining_s > 0:
                wall, mono = clock.time(), clock.monotonic()
                await clock.sleep(min(remaining_s, CLOCK_CHECK_S))
                step_s = (clock.time() - wall) - (clock.monotonic() - mono)
                if abs(step_s) < CLOCK_STEP_S:
                    continue
                log.info("connector %d: the wall clock moved %+.0f s; charging limit re-evaluated", c.id, step_s)
            self._profile_timer_at[c.id] = None
            await self._update(c)  # re-arms through _arm_profile_timer
        self._release(("profile", c.id))

    async def _update(self, c: Connector) -> None:
        """Re-evaluate one connector: hardware outputs first, then its status."""
        async with self._locks[c.id - 1]:
            for _ in range(3):  # settle: the EV may answer a new offer at once (B -> C)
                c.evse = c.hw.evse.status
                self._retry_commands_if_due(c)
                await self._react_to_pilot(c)
                changed = await self._apply(c)
                if not changed and not c.hw.evse.changed.is_set():
                    break
                c.hw.evse.changed.clear()
            status = c.derive_status(self.charger_error_code != NO_ERROR, c.hw.evse.min_current_a)
            error = c.effective_error_code if c.effective_error_code != NO_ERROR else self.charger_error_code
            c.info = "EV side disconnected" if c.transaction is not None and not c.ev_connected else ""
            if (status, error) != (c.status, c.status_error_code):
                log.info("connector %d: %s -> %s (%s)", c.id, c.status, status, error)
                c.status, c.status_error_code = status, error
                self.link.status_changed(c.id)

    async def _apply(self, c: Connector) -> bool:
        """Drive the controller and contactor from the rules; True if an output changed."""
        changed = False
        offer = 0.0
        next_change = None
        drawing = self._charging_allowed(c) and c.evse.ev_connected  # no PWM offer without an EV (state A)
        if drawing:
            limit, next_change = self._limit_and_next_change(c)
            offer = limit if limit >= c.hw.evse.min_current_a else 0.0  # below it: paused, SuspendedEVSE
        self._arm_profile_timer(c, next_change)
        self._set_drawing(c, drawing)
        close = offer > 0 and c.evse.cp_state in ("C", "D")
        if close:
            c.open_deadline = None
        elif (c.contactor_closed and c.evse.cp_state in ("C", "D") and not c.faulted
              and self.charger_error_code == NO_ERROR):
            # Offer withdrawn (pause, stop) with the EV still drawing: PWM off first, and the
            # contactor opens when the EV goes to B, or after EV_STOP_GRACE_S at the latest,
            # not under load (HARDWARE.md: EVerest uses 6 s). Faults and unplug open at once.
            now = self.clock.monotonic()
            if c.open_deadline is None:
                c.open_deadline = now + EV_STOP_GRACE_S
                self._spawn(self._contactor_grace(c, EV_STOP_GRACE_S), key=("grace", c.id))
            close = now < c.open_deadline
        try:
            if not close and c.contactor_closed:
                await self._set_contactor(c, False)
                c.open_deadline = None
                changed = True
            if offer != c.offered_current_a:
                await c.hw.evse.set_current_limit(offer)
                c.offered_current_a = offer
                changed = True
            if close and not c.contactor_closed:
                await self._set_contactor(c, True)
                changed = True
        except HalError as e:
            self._command_failed(c, e)
            await self._safe_outputs(c)
            changed = True
        else:
            if changed and c.command_failures:
                log.info("connector %d: hardware commands work again", c.id)
                c.command_failures = 0
        c.contactor_check.switched(self._power_may_flow(c), self.clock.monotonic())
        return changed

    def _power_may_flow(self, c: Connector) -> bool:
        """Whether current may flow now as commanded: the contactor is closed or, without a
        contactor of the agent's own, the controller offers current (it switches its relay)."""
        return c.contactor_closed or (c.hw.contactor is None and c.offered_current_a > 0)

    def _set_fault(self, c: Connector, source: str, fault) -> None:
        """Set (``(error code, vendor code)``) or clear (None) the fault a source reports on
        ``c``; the connector's error code is the first fault of FAULT_SOURCES present."""
        if fault is None:
            c.faults.pop(source, None)
        else:
            c.faults[source] = fault
        for s in FAULT_SOURCES:
            if s in c.faults:
                c.error_code, c.vendor_error_code = c.faults[s]
                return
        c.error_code, c.vendor_error_code = NO_ERROR, ""

    def _reevaluate(self, c: Connector) -> None:
        """Re-evaluate ``c`` in a task of its own (callers may hold the connector's lock)."""
        if self._running:
            self._spawn(self._update(c))

    def _command_failed(self, c: Connector, e: HalError) -> None:
        """A command to the controller or the contactor failed (the outputs are made safe
        next). The connector is Faulted with the error's code (InternalError for a
        communication failure) until a retry: after COMMAND_RETRY_S, doubling with each
        failure in a row up to COMMAND_RETRY_MAX_S, and only once the controller reports
        itself healthy. A retry that fails again keeps the connector Faulted without a
        status change in between; the first command that works ends the backoff."""
        c.command_failures += 1
        delay_s = min(COMMAND_RETRY_S * 2 ** min(c.command_failures - 1, 16), COMMAND_RETRY_MAX_S)
        c.command_retry_at = self.clock.monotonic() + delay_s
        code = getattr(e, "error_code", "") or "InternalError"
        vendor = getattr(e, "vendor_error_code", "") or str(e)
        log.error("connector %d: hardware command failed: %s; made safe, retried in %.0f s", c.id, e, delay_s)
        self._set_fault(c, "command", (code, vendor[:50]))  # CiString50
        self._spawn_once(("command-retry", c.id), self._command_retry, c)

    def _retry_commands_if_due(self, c: Connector) -> None:
        """Clear a failed command's fault once its retry is due and the controller reports
        itself healthy (called with the lock held, before the outputs are applied again)."""
        if ("command" in c.faults and c.hw.evse.status.error_code == NO_ERROR
                and self.clock.monotonic() >= c.command_retry_at):
            log.info("connector %d: retrying the hardware after a failed command", c.id)
            self._set_fault(c, "command", None)

    async def _command_retry(self, c: Connector) -> None:
        """Re-evaluate ``c`` when its failed command may be retried. A controller that is
        not healthy then is retried when it reports a healthy status (``_watch_evse``)."""
        while "command" in c.faults:
            wait_s = c.command_retry_at - self.clock.monotonic()
            if wait_s <= 0:
                break
            await self.clock.sleep(wait_s)
        self._release(("command-retry", c.id))
        await self._update(c)

    async def _contactor_grace(self, c: Connector, seconds: float) -> None:
        await self.clock.sleep(seconds)
        self._conn_tasks.pop(("grace", c.id), None)
        await self._update(c)

    async def _set_contactor(self, c: Connector, closed: bool) -> None:
        """Switch the contactor and check its feedback (settled). One that does not close
        is opened again and reported as a failed command (PowerSwitchFailure, retried);
        one that stays closed when opened is welded: PowerSwitchFailure, latched."""
        relay = c.hw.contactor
        if relay is not None:
            await relay.set_closed(closed)
            feedback = await relay.read_feedback()
            if feedback is not None and feedback != closed:
                c.contactor_closed = False
                if closed:
                    await relay.set_closed(False)
                    raise DeviceFaultError("contactor did not close (feedback open)", POWER_SWITCH_FAILURE,
                                           "contactor did not close")
                self._contactor_stuck(c, (POWER_SWITCH_FAILURE, "contactor stuck closed"))
                return
        c.contactor_closed = closed

    def _contactor_stuck(self, c: Connector, fault: tuple) -> bool:
        """A welded contactor (ContactorCheck's fault): latched until the agent restarts
        (after the repair). True the first time it is reported."""
        c.contactor_check.fault = fault
        if c.faults.get("contactor") == fault:
            return False
        log.error("connector %d: %s: the contactor is commanded open; connector Faulted until a restart "
                  "after repair", c.id, fault[1])
        self._set_fault(c, "contactor", fault)
        return True

    async def _force_open(self, c: Connector) -> None:
        """After a weld was found outside ``_apply``: command everything off again, then
        re-evaluate (Faulted)."""
        async with self._locks[c.id - 1]:
            await self._safe_outputs(c)
        await self._update(c)

    async def _react_to_pilot(self, c: Connector) -> None:
        """Transaction consequences of what the EV did (called with the connector lock held)."""
        tx = c.transaction
        if c.evse.ev_connected:
            if c.pending_auth is not None and tx is None:
                pending, c.pending_auth = c.pending_auth, None
                self._cancel(("timeout", c.id))
                await self._begin_transaction(c, pending["id_tag"], pending.get("parent_id_tag"),
                                              pending.get("charging_profile"))
            return
        # No EV (state A, or F while unavailable).
        if c.finishing:
            c.finishing = False
        if tx is not None and not tx.stopped and c.evse.cp_state == "A":
            if self.settings.get("stop_on_ev_disconnect"):
                await self._end_transaction(c, model.REASON_EV_DISCONNECTED)
            if self.settings.get("unlock_on_ev_disconnect") and c.hw.lock is not None:
                try:
                    await c.hw.lock.set_locked(False)
                except HalError as e:
                    log.error("connector %d: unlock after EV disconnect failed: %s", c.id, e)

    def _announce_finishing(self, c: Connector) -> None:
        """Report Finishing once when a transaction ends by unplugging (before Available)."""
        if c.status != model.FINISHING:
            c.status, c.status_error_code = model.FINISHING, c.effective_error_code
            self.link.status_changed(c.id)

    # ------------------------------------------------------------------ authorization
    def _local_list_enabled(self) -> bool:
        return bool(self.settings.get("local_list_enabled", False))

    def _local_info(self, id_tag: str) -> model.IdTagInfo | None:
        """What the Local Authorization List, else the Authorization Cache, knows of a tag,
        with passed expiry dates applied (the list has priority, §3.5.3)."""
        now = self.clock.time()
        if self._local_list_enabled():
            info = self.local_list.get(id_tag)
            if info is not None:
                return effective(info, now)
        if self.settings.get("auth_cache_enabled", False):
            return effective(self.auth_cache.get(id_tag), now)
        return None

    def id_tag_info_received(self, id_tag: str | None, info: model.IdTagInfo | None) -> None:
        """The central system answered about a tag (Authorize, StartTransaction or
        StopTransaction.conf): update the Authorization Cache, unless the tag is in
        the Local Authorization List (§3.5.3)."""
        if not id_tag or info is None or not self.settings.get("auth_cache_enabled", False):
            return
        if self._local_list_enabled() and id_tag in self.local_list:
            listed = self.local_list.get(id_tag)
            if listed is not None and listed.status != info.status:
                # §3.5.3: the list is out of date; the central system should update it.
                log.warning("tag %s: the central system says %s, the local list %s (LocalListConflict)",
                            id_tag, info.status, listed.status)
                self.link.local_list_conflict(id_tag)
            return
        self.auth_cache.update(id_tag, info, self.clock.time())

    async def authorize(self, id_tag: str) -> model.IdTagInfo:
        """Authorize a tag (OCPP 1.6 §3.5). Online: a valid entry in the Local
        Authorization List or the Authorization Cache starts at once with
        LocalPreAuthorize; otherwise Authorize.req decides and its answer is cached.
        Offline (or no answer): the local entry with LocalAuthorizeOffline, an unknown
        tag with AllowOfflineTxForUnknownId; otherwise Invalid."""
        local = self._local_info(id_tag)
        if self.link.online:
            if local is not None and local.accepted and self.settings.get("local_pre_authorize", False):
                log.info("tag %s: pre-authorized locally", id_tag)
                return local
            info = await self.link.authorize(id_tag)
            if info is not None:
                self.id_tag_info_received(id_tag, info)
                return info
            log.info("no answer to Authorize(%s): deciding offline", id_tag)
            local = self._local_info(id_tag)
        if local is not None:
            if not local.accepted:
                log.info("tag %s: %s in the local list or cache", id_tag, local.status)
                return local  # known and not valid (or expired): never accepted offline (§3.5.4)
            if self.settings.get("local_authorize_offline", False):
                log.info("tag %s: authorized offline from the local list or cache", id_tag)
                return local
        if self.settings.get("offline_start_unknown_id", False):
            log.info("tag %s: accepted offline (AllowOfflineTxForUnknownId)", id_tag)
            return model.IdTagInfo(model.AUTH_ACCEPTED)
        log.info("tag %s: cannot be authorized offline", id_tag)
        return model.IdTagInfo(model.AUTH_INVALID)

    def clear_cache(self) -> bool:
        """ClearCache: False if the cache could not be cleared."""
        return self.auth_cache.clear()

    def local_list_version(self) -> int:
        """GetLocalListVersion: -1 when the list is not supported or not enabled, 0 when empty."""
        if not self._local_list_enabled():
            return -1
        return self.local_list.version

    def send_local_list(self, update_type: str, version: int, entries: list) -> str:
        """SendLocalList; ``entries`` are (idTag, IdTagInfo or None) pairs. Returns the UpdateStatus."""
        if not self._local_list_enabled():
            return "NotSupported"
        status = self.local_list.apply(update_type, version, entries, self.settings.get("local_list_max_entries"),
                                       self.settings.get("local_list_max_per_message"))
        log.info("SendLocalList %s version %d, %d entries: %s", update_type, version, len(entries), status)
        return status

    def _invalid_id_energy_left(self, c: Connector, tx: model.Transaction) -> bool:
        """MaxEnergyOnInvalidId: a transaction whose tag the central system did not accept
        may deliver this much energy (from its start) before energy delivery stops."""
        limit = self.settings.get("max_energy_on_invalid_id_wh", 0)
        energy = energy_wh_of(c.last_reading)
        if limit <= 0 or energy is None or energy - tx.meter_start_wh >= limit:
            return False
        self._spawn_once(("invalid-id", c.id), self._watch_invalid_id_energy, c, tx)
        return True

    async def _watch_invalid_id_energy(self, c: Connector, tx: model.Transaction) -> None:
        """Read the meter while charging on MaxEnergyOnInvalidId; re-evaluate at the limit."""
        while c.transaction is tx and not tx.stopped:
            await self.clock.sleep(INVALID_ID_POLL_S)
            await self._read_meter(c)
            energy = energy_wh_of(c.last_reading)
            if energy is not None and energy - tx.meter_start_wh >= self.settings.get("max_energy_on_invalid_id_wh", 0):
                log.info("connector %d: MaxEnergyOnInvalidId reached; energy delivery stops", c.id)
                break
        self._release(("invalid-id", c.id))
        await self._update(c)

    async def present_tag(self, id_tag: str) -> str:
        """A tag was presented at the reader: stop a running transaction of the
        same tag (or parent), or authorize and start/prepare one. Returns what happened."""
        for c in self.connectors:
            tx = c.transaction
            if tx is not None and not tx.stopped and tag_key(tx.id_tag) == tag_key(id_tag):  # case-insensitive
                await self.stop_transaction(c.id, model.REASON_LOCAL, id_tag=id_tag)
                return "stopped"
        if self._connector_for_new_session() is None and not any(
                c.transaction is not None and not c.transaction.stopped and c.transaction.parent_id_tag
                for c in self.connectors):
            # Nothing this tag could start, and no group (parent) tag it could stop: no Authorize
            # (OCTT TC_068_CS step 1).
            log.info("tag %s: no connector free for a session", id_tag)
            return "no-connector"
        info = await self.authorize(id_tag)
        # A different tag may end a running transaction when both share a parent (group) tag.
        for c in self.connectors:
            tx = c.transaction
            if (tx is not None and not tx.stopped and info.accepted and info.parent_id_tag
                    and tx.parent_id_tag == info.parent_id_tag):
                await self.stop_transaction(c.id, model.REASON_LOCAL, id_tag=id_tag)
                return "stopped"
        if not info.accepted:
            log.info("tag %s not authorized: %s", id_tag, info.status)
            return "rejected"
        target = self._connector_for_new_session()
        if target is None:
            log.info("tag %s: no connector free for a session", id_tag)
            return "no-connector"
        await self._authorized(target, id_tag, info.parent_id_tag)
        return "authorized"

    def _connector_for_new_session(self) -> Connector | None:
        usable = [c for c in self.connectors if c.transaction is None and not c.faulted
                  and c.availability == model.OPERATIVE and c.pending_auth is None]
        for c in usable:
            if c.ev_connected:
                return c
        return usable[0] if usable else None

    async def _authorized(self, c: Connector, id_tag: str, parent_id_tag: str | None,
                          charging_profile: dict | None = None) -> None:
        async with self._locks[c.id - 1]:
            if c.ev_connected:
                await self._begin_transaction(c, id_tag, parent_id_tag, charging_profile)
            else:
                c.pending_auth = {"id_tag": id_tag, "parent_id_tag": parent_id_tag,
                                  "charging_profile": charging_profile}
                self._spawn(self._connection_timeout(c), key=("timeout", c.id))
        await self._update(c)

    async def _connection_timeout(self, c: Connector) -> None:
        await self.clock.sleep(self.settings.get("ev_connect_timeout_s"))
        self._conn_tasks.pop(("timeout", c.id), None)
        if c.pending_auth is not None and c.transaction is None:
            log.info("connector %d: no EV plugged in within ConnectionTimeOut; authorization dropped", c.id)
            c.pending_auth = None
            await self._update(c)

    # ------------------------------------------------------------------ remote commands
    async def remote_start(self, id_tag: str, connector_id: int | None = None,
                           charging_profile: dict | None = None) -> bool:
        """RemoteStartTransaction: True if accepted. ``charging_profile`` (a
        ChargingProfile dict, OCPP JSON) becomes the transaction's TxProfile when
        it starts; one the store would not take rejects the request (OCTT
        TC_060). Raises ``ProfileFormatError`` for a malformed profile."""
        journal = self.outbox.journal
        if journal is not None and not journal.healthy and not journal.probe():
            return False  # it could not be recorded: don't promise a transaction
        if connector_id is not None:
            if connector_id == 0 or connector_id > len(self.connectors) or connector_id < 0:
                return False
            c = self.connector(connector_id)
            if (c.transaction is not None or c.faulted or c.availability != model.OPERATIVE
                    or c.pending_auth is not None or self.charger_error_code != NO_ERROR):
                return False
        else:
            c = self._connector_for_new_session()
            if c is None:
                return False
        if charging_profile is not None and self.charging_profiles.check_remote_start(
                charging_profile, c.id) != ACCEPTED:
            return False
        self._spawn(self._remote_start(c, id_tag, charging_profile))
        return True

    async def _remote_start(self, c: Connector, id_tag: str, charging_profile: dict | None = None) -> None:
        parent = None
        if self.settings.get("authorize_remote_start"):
            info = await self.authorize(id_tag)
            if not info.accepted:
                log.info("remote start for %s: tag not authorized (%s)", id_tag, info.status)
                return
            parent = info.parent_id_tag
        await self._authorized(c, id_tag, parent, charging_profile)

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
            return "Rejected"
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
        return "Scheduled" if scheduled else "Accepted"

    async def unlock_connector(self, connector_id: int) -> str:
        """Unlocked, UnlockFailed or NotSupported."""
        if not 1 <= connector_id <= len(self.connectors):
            return "NotSupported"
        c = self.connector(connector_id)
        if c.hw.lock is None:
            return "NotSupported"
        if c.transaction is not None and not c.transaction.stopped:
            await self.stop_transaction(c.id, model.REASON_UNLOCK)
        try:
            ok = await c.hw.lock.set_locked(False)
        except HalError as e:
            log.error("connector %d: unlock failed: %s", c.id, e)
            ok = False
        return "Unlocked" if ok else "UnlockFailed"

    def request_reset(self, hard: bool) -> None:
        """Reset in the background (the central system has its answer already)."""
        self._spawn(self.reset(hard))

    async def reset(self, hard: bool) -> None:
        """End transactions (reason HardReset/SoftReset), flush them, then restart."""
        reason = model.REASON_HARD_RESET if hard else model.REASON_SOFT_RESET
        for c in self.connectors:
            if c.transaction is not None and not c.transaction.stopped:
                await self.stop_transaction(c.id, reason)
        if self.link.online:
            try:
                await wait_for(self.outbox.emptied.wait(), RESET_FLUSH_TIMEOUT_S)
            except asyncio.TimeoutError:
                log.warning("reset: %d transaction messages still queued", len(self.outbox))
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

    # ------------------------------------------------------------------ smart charging
    async def set_charging_profile(self, connector_id: int, profile: dict) -> str:
        """SetChargingProfile: ``profile`` is the csChargingProfiles object (OCPP
        JSON). Accepted or Rejected; raises ``ProfileFormatError`` (carrying the
        CALLERROR code) for a malformed profile or an unknown connector. The new
        limit reaches the EVSE controller before this returns."""
        tx = None
        if isinstance(connector_id, int) and 1 <= connector_id <= len(self.connectors):
            tx = self.connectors[connector_id - 1].transaction
            if tx is not None and tx.stopped:
                tx = None
        status = self.charging_profiles.install(connector_id, profile, now=self.clock.time(),
                                                transaction_id=tx.backend_id if tx else None,
                                                transaction_active=tx is not None)
        if status == ACCEPTED:
            await self._profiles_changed(self.connectors if connector_id == 0 else [self.connector(connector_id)])
        return status

    async def clear_charging_profile(self, profile_id: int | None = None, connector_id: int | None = None,
                                     purpose: str | None = None, stack_level: int | None = None) -> str:
        """ClearChargingProfile: Accepted, or Unknown when nothing matched."""
        status = self.charging_profiles.clear(profile_id=profile_id, connector_id=connector_id, purpose=purpose,
                                              stack_level=stack_level)
        if status == ACCEPTED:
            await self._profiles_changed(self.connectors)
        return status

    async def _profiles_changed(self, affected: list) -> None:
        """Enforce at once, then persist."""
        for c in affected:
            await self._update(c)
        self._save_profiles()

    def composite_schedule(self, connector_id: int, duration_s: int, unit: str | None = None) -> dict | None:
        """GetCompositeSchedule: the ChargingSchedule dict from now for ``duration_s``
        (its startSchedule is the scheduleStart), in ``unit`` "A"/"W" (None: the
        profiles' own); None for an unknown connector. Connector 0 is the
        charger's grid view: the ChargePointMax profiles capped by the sum of the
        connectors' local limits. Raises ``ProfileFormatError`` for a bad unit."""
        if not isinstance(connector_id, int) or not 0 <= connector_id <= len(self.connectors):
            return None
        tx_start = tx_id = None
        if connector_id == 0:
            hw = self.connectors[0].hw
            local_a = sum(self._local_limit_a(c) for c in self.connectors)
        else:
            c = self.connector(connector_id)
            hw = c.hw
            local_a = self._local_limit_a(c)
            tx = c.transaction
            if tx is not None and not tx.stopped:
                tx_start, tx_id = tx.start_time, tx.backend_id
        return composite_schedule(self.charging_profiles.profiles(), connector_id, self.clock.time(), duration_s,
                                  unit, local_limit_a=local_a, tx_start=tx_start, tx_id=tx_id,
                                  voltage_v=hw.voltage_v, phases=hw.phases)

    # ------------------------------------------------------------------ transactions
    async def _read_meter(self, c: Connector, feedback: bool | None = None) -> MeterReading:
        """A fresh meter reading. When the meter does not answer, every value of the
        reading is missing (None) — never the last good reading passed off as new: a
        caller that needs an energy value uses what it recorded itself (a transaction's
        ``last_meter_wh``), sampled values leave the missing ones out. An import energy
        below one this connector already reported is missing too (never backwards).

        Every read feeds the connector's ``MeterHealth`` (PowerMeterFailure after
        repeated failures, NoError on the first good read) and its ``ContactorCheck``
        (current with the contactor open; ``feedback``: its auxiliary contact, read by
        the caller)."""
        meter = c.hw.meter
        if meter is None:
            return MeterReading(timestamp=self.clock.time())
        try:
            reading = await meter.read()
        except HalError as e:
            health = c.meter_health
            log.warning("connector %d: meter read failed (%d in a row): %s", c.id,
                        health.consecutive_failures + 1, e)
            self._meter_health_changed(c, health.failed(str(e)))
            self._spawn_once(("meter-retry", c.id), self._meter_retry, c)
            return MeterReading(timestamp=self.clock.time())
        self._meter_health_changed(c, c.meter_health.succeeded())
        reading = self._never_backwards(c, reading)
        if reading.energy_wh is not None:
            c.last_reading = reading
        self._observe_contactor(c, reading, feedback)
        return reading

    def _never_backwards(self, c: Connector, reading: MeterReading) -> MeterReading:
        """``reading``, with its energy marked missing when it is below the last good
        reading or the running transaction's last recorded value (a replaced or faulty
        meter; the drivers guard their own register the same way)."""
        energy = reading.energy_wh
        if energy is None:
            return reading
        last = energy_wh_of(c.last_reading)
        tx = c.transaction
        if (last is not None and energy < last) or (tx is not None and int(round(energy)) < tx.last_meter_wh):
            log.warning("connector %d: the meter's import energy went backwards (%.1f Wh after %s Wh): "
                        "reported as missing", c.id, energy, last if last is not None else tx.last_meter_wh)
            return MeterReading(None, reading.power_w, reading.current_a, reading.voltage_v,
                                reading.frequency_hz, reading.timestamp)
        return reading

    def _meter_health_changed(self, c: Connector, change) -> None:
        """MeterHealth reported a change (``(error code, vendor code)``) or nothing (None).
        A meter in PowerMeterFailure faults the connector: a charger that cannot meter
        cannot bill, so no current is offered (a running transaction is suspended, and
        resumes when the meter answers again; it ends on the last recorded reading if
        it ends before that) and no transaction starts."""
        if change is None:
            return
        if change[0] == NO_ERROR:
            log.warning("connector %d: the meter answers again", c.id)
            self._set_fault(c, "meter", None)
        else:
            log.error("connector %d: %s (%s): no current is offered until it answers again", c.id,
                      change[0], change[1])
            self._set_fault(c, "meter", change)
        self._reevaluate(c)

    def _observe_contactor(self, c: Connector, reading: MeterReading, feedback: bool | None = None) -> None:
        fault = c.contactor_check.observe(closed=self._power_may_flow(c), now_s=self.clock.monotonic(),
                                          reading=reading, feedback=feedback)
        if fault is not None and self._contactor_stuck(c, fault) and self._running:
            self._spawn(self._force_open(c))

    async def _meter_retry(self, c: Connector) -> None:
        """After a failed read, read again every METER_RETRY_S until a read works: the
        failure count reaches PowerMeterFailure soon, and NoError follows the meter's
        recovery soon, whatever else reads the meter."""
        while c.meter_health.consecutive_failures:
            await self.clock.sleep(METER_RETRY_S)
            if not c.meter_health.consecutive_failures:
                break
            await self._read_meter(c)
        self._release(("meter-retry", c.id))

    async def _meter_watch(self, c: Connector) -> None:
        """Read the meter every METER_WATCH_S, idle or charging: a meter that stopped
        answering is noticed (then ``_meter_retry``) even when no transaction reads it,
        and current through a contactor that should be open (welded after a session) is
        noticed, with the contactor's feedback when it has one."""
        relay = c.hw.contactor
        while True:
            await self.clock.sleep(METER_WATCH_S)
            feedback = None
            if relay is not None and relay.has_feedback and not c.contactor_closed:
                try:
                    feedback = await relay.read_feedback()
                except HalError as e:
                    log.warning("connector %d: cannot read the contactor's feedback: %s", c.id, e)
            await self._read_meter(c, feedback)

    async def _begin_transaction(self, c: Connector, id_tag: str, parent_id_tag: str | None,
                                 charging_profile: dict | None = None) -> None:
        """Start a transaction (called with the connector lock held); ``charging_profile``
        (from RemoteStartTransaction) becomes its TxProfile."""
        reading = await self._read_meter(c)
        energy = energy_wh_of(reading)
        if energy is None:
            log.error("connector %d: no meter reading; refusing to start a transaction it cannot bill", c.id)
            return
        if not await self._set_cable_lock(c, True):
            log.error("connector %d: the cable could not be locked; not starting a transaction", c.id)
            return
        tx = model.Transaction(self._next_local_id, c.id, id_tag, int(round(energy)), self.clock.time(),
                               parent_id_tag=parent_id_tag)
        self._next_local_id += 1
        self._save()
        begin = build_meter_sample(reading, self.settings.get("sampled_end_measurands"), self.clock.time(),
                                   "Transaction.Begin", c)
        if begin.samples:
            tx.stop_data.append(begin)
        try:
            self.outbox.append(OutboxEntry(START, tx, c.id))  # durable before any energy flows
        except JournalUnavailable as e:
            log.error("connector %d: cannot record a new transaction (%s): not starting it", c.id, e)
            await self._set_cable_lock(c, False)
            return
        c.transaction = tx
        c.finishing = False
        log.info("connector %d: transaction %d started for %s at %d Wh", c.id, tx.local_id, id_tag,
                 tx.meter_start_wh)
        if charging_profile is not None:
            # Bound to the transaction id when StartTransaction.conf brings it (transaction_confirmed).
            status = self.charging_profiles.install(c.id, charging_profile, now=tx.start_time,
                                                    transaction_active=True)
            if status != ACCEPTED:
                log.warning("connector %d: the RemoteStartTransaction charging profile was not installed: %s",
                            c.id, self.charging_profiles.last_rejection)
            self._save_profiles()
        self._restart_sampler(c)

    async def _set_cable_lock(self, c: Connector, locked: bool) -> bool:
        """Lock or unlock the cable (connectors without a lock: nothing to do). A lock
        that fails to lock is reported as ConnectorLockFailure."""
        if c.hw.lock is None:
            return True
        try:
            ok = await c.hw.lock.set_locked(locked)
        except HalError as e:
            log.error("connector %d: %s failed: %s", c.id, "lock" if locked else "unlock", e)
            ok = False
        if locked:
            self._set_fault(c, "lock", None if ok else ("ConnectorLockFailure", ""))
        return ok

    def transaction_confirmed(self, tx: model.Transaction, backend_id, info: model.IdTagInfo) -> None:
        """The central system confirmed the start of ``tx``, giving it ``backend_id`` (or None)."""
        tx.backend_id = backend_id
        log.info("connector %d: transaction %s has the central system's id %r (%s)", tx.connector_id, tx.id,
                 backend_id, info.status)
        self.id_tag_info_received(tx.id_tag, info)
        if (not tx.stopped and 1 <= tx.connector_id <= len(self.connectors)
                and self.connector(tx.connector_id).transaction is tx):
            self.charging_profiles.bind_transaction(tx.connector_id, backend_id)  # its TxProfile
            self._save_profiles()
        if not info.accepted and not tx.stopped:
            tx.authorized = False
            c = self.connector(tx.connector_id)
            if self.settings.get("stop_on_invalid_id"):
                self._spawn(self.stop_transaction(c.id, model.REASON_DEAUTHORIZED))
            else:  # only energy delivery stops (after MaxEnergyOnInvalidId, see _charging_allowed)
                self._spawn(self._update(c))

    async def stop_transaction(self, connector_id: int, reason: str, id_tag: str | None = None) -> None:
        """End the running transaction on a connector."""
        c = self.connector(connector_id)
        async with self._locks[c.id - 1]:
            await self._end_transaction(c, reason, id_tag)
        await self._update(c)

    async def _end_transaction(self, c: Connector, reason: str, id_tag: str | None = None) -> None:
        tx = c.transaction
        if tx is None or tx.stopped:
            return
        tx.stop_time = self.clock.time()  # from here on _apply offers nothing
        await self._apply(c)
        self._cancel(("sampler", c.id))
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
                                 "Transaction.End", c)
        if end.samples:
            tx.stop_data.append(end)
        self.outbox.append(OutboxEntry(STOP, tx, c.id))
        log.info("connector %d: transaction %d stopped (%s), %d Wh", c.id, tx.local_id, reason,
                 tx.meter_stop_wh - tx.meter_start_wh)
        c.transaction = None
        if self.charging_profiles.transaction_ended(c.id):  # §3.13.1: TxProfiles end with the transaction
            self._save_profiles()
        c.finishing = c.ev_connected
        await self._set_cable_lock(c, False)  # the driver can take the cable once the session ends
        if not c.ev_connected:
            self._announce_finishing(c)  # the session's end is visible even when the EV already left
        if c.scheduled_availability is not None:
            c.availability, c.scheduled_availability = c.scheduled_availability, None
            await c.hw.evse.set_available(c.availability == model.OPERATIVE)
            self._save()
            self._update_charger_status()

    # ------------------------------------------------------------------ metering
    def _on_setting_changed(self, name: str, value) -> None:
        if not self._running:
            return
        if name == "sample_interval_s":
            for c in self.connectors:
                if c.transaction is not None:
                    self._restart_sampler(c)
        elif name == "aligned_interval_s":
            self._restart_aligned()

    def _restart_sampler(self, c: Connector) -> None:
        if self._running:
            self._spawn(self._sample_loop(c), key=("sampler", c.id))
        else:
            self._cancel(("sampler", c.id))

    async def _sample_loop(self, c: Connector) -> None:
        """Sampled meter values every MeterValueSampleInterval; with the interval 0,
        only a journal checkpoint of the reading every CHECKPOINT_S."""
        interval = self.settings.get("sample_interval_s")
        while c.transaction is not None:
            await self.clock.sleep(interval if interval > 0 else CHECKPOINT_S)
            tx = c.transaction
            if tx is None or tx.stopped:
                return
            reading = await self._read_meter(c)
            now = self.clock.time()
            energy = energy_wh_of(reading)
            if energy is not None and energy >= tx.last_meter_wh:
                tx.last_meter_wh, tx.last_meter_time = int(round(energy)), now
            if interval > 0:
                stop_sample = build_meter_sample(reading, self.settings.get("sampled_end_measurands"), now,
                                                 "Sample.Periodic", c)
                if stop_sample.samples:
                    tx.stop_data.append(stop_sample)
                sample = build_meter_sample(reading, self.settings.get("sampled_measurands"), now,
                                            "Sample.Periodic", c)
                if sample.samples:
                    self.outbox.append(OutboxEntry(METER, tx, c.id, [sample]))  # saves tx with it
                    continue
            self.outbox.save_transaction(tx)

    def _restart_aligned(self) -> None:
        if self._running and self.settings.get("aligned_interval_s") > 0:
            self._spawn(self._aligned_loop(), key="aligned")
        else:
            self._cancel("aligned")

    async def _aligned_loop(self) -> None:
        interval = self.settings.get("aligned_interval_s")
        while True:
            now = self.clock.time()
            midnight = now - now % 86400
            next_at = midnight + ((now - midnight) // interval + 1) * interval
            await self.clock.sleep(next_at - now)
            for c in self.connectors:
                await self._aligned_sample(c, next_at)

    async def _aligned_sample(self, c: Connector, at: float) -> None:
        reading = await self._read_meter(c)
        tx = c.transaction
        sample = build_meter_sample(reading, self.settings.get("aligned_measurands"), at, "Sample.Clock", c)
        if tx is not None:
            stop_sample = build_meter_sample(reading, self.settings.get("aligned_end_measurands"), at, "Sample.Clock", c)
            if stop_sample.samples:
                tx.stop_data.append(stop_sample)
        if sample.samples:
            if tx is not None:
                self.outbox.append(OutboxEntry(METER, tx, c.id, [sample]))
            else:
                self.link.meter_values(c.id, sample)

    async def meter_sample_now(self, connector_id: int) -> tuple:
        """(transaction or None, MeterSample) for a triggered MeterValues."""
        c = self.connector(connector_id)
        reading = await self._read_meter(c)
        sample = build_meter_sample(reading, self.settings.get("sampled_measurands"), self.clock.time(),
                                    "Trigger", c)
        return c.transaction, sample
