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

This module holds the station's state, lifecycle, persistence and recovery; the
rest is in agent/core/supervision.py (hardware rules and faults), limits.py
(charging limits and profiles), authorization.py, sessions.py (transactions and
requests) and sampling.py (meter values).

Portable core: only the MicroPython asyncio subset (see STYLE.md).
"""

import asyncio
import logging

from agent.core import model
from agent.core.auth import AuthorizationCache, LocalAuthList
from agent.core.authorization import Authorization
from agent.core.connector import Connector
from agent.core.limits import ChargingLimits
from agent.core.metering import energy_wh_of
from agent.core.outbox import START, STOP, OutboxEntry, TransactionOutbox
from agent.core.profile_store import ChargingProfileStore
from agent.core.reservations import ReservationBook, Reservations
from agent.core.sampling import Sampling
from agent.core.sessions import Sessions
from agent.core.settings import Settings
from agent.core.supervision import HardwareSupervision
from hal.errors import HalError
from hal.interfaces import NO_ERROR, Board
from hal.runtime.clock import Clock

log = logging.getLogger(__name__)

JOURNAL_RETRY_S = 30  # after a failed journal write, rewrite it from memory this often


class CentralSystemLink:
    """What the station needs from the central system. The default is a link
    that is never online (a station with no backend still works locally)."""

    online = False
    registration = None  # the central system's answer to the boot (never asked)
    # Whether the station queues an outbox UPDATE entry whenever a running transaction's state
    # changes (charging, suspended, the EV left or came back): for a protocol that reports them
    # as transaction events (2.0.1); 1.6 has no message for them.
    wants_state_events = False
    # Whether the central system may place a transaction's start and end (settings tx_start_points /
    # tx_stop_points, 2.0.1 TxStartPoint/TxStopPoint); otherwise their defaults apply, the one shape
    # of transaction 1.6 knows (an identifier is needed to start, so 1.6 cannot start on the EV).
    configurable_tx_points = False

    async def authorize(self, id_tag: str, token_kind: str | None = None) -> model.IdTagInfo | None:
        """Ask the central system about ``id_tag`` (of ``token_kind``, model.TOKEN_*); None
        when there is no answer (offline, timeout)."""
        return None

    def status_changed(self, connector_id: int) -> None:
        """The status of ``connector_id`` (0 = charger) changed."""

    def meter_values(self, connector_id: int, sample) -> None:
        """Meter values outside a transaction (sent when online, else dropped)."""

    def local_list_conflict(self, id_tag: str) -> None:
        """The central system's answer about ``id_tag`` contradicts the Local
        Authorization List (reported, the charger's status unchanged)."""


class Station(HardwareSupervision, ChargingLimits, Authorization, Sessions, Sampling, Reservations):
    """A self-contained charger: one object per station, no shared state. Its behaviour
    is split by responsibility into the classes it is made of (one module each)."""

    def __init__(self, board: Board, settings: Settings, clock: Clock | None = None,
                 max_current_a: float = 0.0, store=None, journal=None, auth_cache=None,
                 local_list=None, charging_profiles: ChargingProfileStore | None = None,
                 charging_profiles_path: str | None = None, migrate_profiles=None) -> None:
        self.board = board
        self.settings = settings
        self.clock = clock or Clock()
        self.link = CentralSystemLink()
        self.outbox = TransactionOutbox(journal)
        self.outbox.online = lambda: self.link.online
        self.auth_cache = auth_cache if auth_cache is not None else AuthorizationCache(None)
        self.local_list = local_list if local_list is not None else LocalAuthList(None)
        self.recovered: list = []  # transactions closed at start after a crash or power cut
        self.connectors = [Connector(i + 1, hw) for i, hw in enumerate(board.connectors)]
        self.max_current_a = max_current_a  # local supply limit per phase; 0 = none
        self.charger_error_code = NO_ERROR
        self.charger_status = model.AVAILABLE
        self.charger_availability = model.OPERATIVE  # of connector 0, set by a change of availability for 0
        self.on_restart = None  # callable(hard: bool), set by the runner
        self.reset_pending = False  # a reset waits for the running transactions to end
        self.restart_cause: str | None = None  # model.RESTART_*: why the agent goes down now (persisted)
        self.boot_cause: str | None = None  # model.RESTART_*: why the last run went down, None after a power-up
        self._store = store  # persistent station state (availability, transaction counter, reservations)
        self.reservations = ReservationBook()  # agent/core/reservations.py; kept with the station state
        self._next_local_id = 1
        self._clean_shutdown = False
        self._tasks: list = []
        self._conn_tasks: dict = {}
        self._locks = [asyncio.Lock() for _ in self.connectors]
        self._running = False
        self._watchers = []  # the hardware loops' tasks (start)
        # Smart charging: the installed profiles, persisted in charging_profiles_path; a file in an
        # earlier format goes through migrate_profiles (the adapter's converter, ChargingProfileStore.load).
        self.charging_profiles = (charging_profiles if charging_profiles is not None
                                  else self._default_profile_store())
        self._profiles_path = charging_profiles_path
        self._migrate_profiles = migrate_profiles
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
        for c in self.connectors:  # no transaction runs at boot: tx profiles end with theirs (§3.13.1)
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
        self._watchers = []
        for c in self.connectors:
            self._watchers.append(self._spawn(self._watch_evse(c)))
            await self._update(c)
            if c.hw.meter is not None:
                self._watchers.append(self._spawn(self._meter_watch(c)))
        self._update_charger_status()
        clean = self._clean_shutdown
        self._clean_shutdown = False
        self._save()
        if journal_data is not None:
            await self._recover(journal_data, clean)
        if self.outbox.journal is not None:
            self._spawn(self._journal_watch())
        if self.board.reader is not None:
            self._watchers.append(self._spawn(self._watch_reader()))
        if hasattr(self.board, "changed"):
            self._watchers.append(self._spawn(self._watch_board()))
        self._restart_aligned()
        self._arm_reservation_timer()  # what expired while the agent was down ends now

    def hardware_alive(self) -> bool:
        """The station runs and every hardware loop (EVSE and board events, meter reads, id
        reader) is alive: what the service watchdog pings for (agent/app/systemd.py)."""
        return self._running and not any(t.done() for t in self._watchers)

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

    # ------------------------------------------------------------------ persistence
    def _restore(self, state: dict) -> None:
        self._next_local_id = int(state.get("next_local_id", 1))
        self._clean_shutdown = bool(state.get("clean_shutdown", False))
        self.reservations.load(state.get("reservations"))
        self.boot_cause = state.get("restart_cause") if self._clean_shutdown else None
        saved = {k: model.neutral(v) for k, v in state.get("availability", {}).items()}  # 1.6 spelling before 0.2
        if saved.get("0") == model.INOPERATIVE:
            self.charger_availability = model.INOPERATIVE
        for c in self.connectors:
            if saved.get(str(c.id)) == model.INOPERATIVE:
                c.availability = model.INOPERATIVE

    def _save(self) -> None:
        if self._store is None:
            return
        availability = {str(c.id): c.availability for c in self.connectors}
        availability["0"] = self.charger_availability
        state = {
            "next_local_id": self._next_local_id,
            "clean_shutdown": self._clean_shutdown,
            "availability": availability,
            "reservations": self.reservations.to_list(),
        }
        if self.restart_cause is not None:
            state["restart_cause"] = self.restart_cause  # read once, by the next run
        self._store.save(state)

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
            entry.read_info(m.get("info"))  # seq_no, offline (an update's cause and state too)
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
        """Queue again the start or end message of a journaled transaction
        whose message was lost to a damaged journal (salvaged rows). A transaction's row
        is deleted in the commit that confirms its end and saved with its
        id in the one that confirms its start, so: no id means the Start is
        unconfirmed, stopped means the Stop is. Returns True if anything was requeued."""
        kinds: dict = {}
        for e in entries:
            kinds.setdefault(e.tx.local_id, set()).add(e.kind)
        repaired = False
        for tx in txs.values():
            queued = kinds.get(tx.local_id, set())
            if tx.backend_id is None and START not in queued:
                at = next((i for i, e in enumerate(entries) if e.tx is tx), len(entries))
                entry = OutboxEntry(START, tx, tx.connector_id)
                entry.seq_no, entry.offline = 0, True  # the start is its transaction's first event
                entries.insert(at, entry)
                log.error("journal: the start of transaction %d was lost: queued again", tx.local_id)
                repaired = True
            if tx.stopped and STOP not in queued:
                entry = OutboxEntry(STOP, tx, tx.connector_id)
                entry.seq_no, entry.offline = max(tx.event_count - 1, 0), True  # counted when first queued
                entries.append(entry)
                log.error("journal: the end of transaction %d (id %r) was lost: queued again",
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
        return {"station_status": c.status, "transaction_id": tx.backend_id if tx else None,
                "id_tag": tx.id_tag if tx else None,
                "station_limit_a": round(self.current_limit_a(c), 3)}  # config and profiles, before the 6 A minimum
