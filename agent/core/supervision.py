"""Hardware supervision: the rules that drive the EVSE controller and the contactor,
faults and their recovery, and the meter reads that watch them.

A part of ``Station`` (agent/core/station.py): its methods share the station's
state. Portable core: only the MicroPython asyncio subset (see STYLE.md).
"""

import logging

from agent.core import model
from agent.core.connector import Connector
from agent.core.metering import energy_wh_of
from agent.core.outbox import UPDATE, OutboxEntry
from agent.core.settings import TX_ENERGY_TRANSFER
from hal.contactor_check import POWER_SWITCH_FAILURE
from hal.errors import DeviceFaultError, HalError
from hal.interfaces import NO_ERROR, MeterReading

log = logging.getLogger(__name__)

EV_STOP_GRACE_S = 6.0  # PWM off with the EV still in C: open the contactor after this at the latest
METER_WATCH_S = 60.0  # the meter is read at least this often, idle or not (meter health, welded contactor)
METER_RETRY_S = 5.0  # ... and this often while its reads fail (power_meter_failure, then no_error soon after)
COMMAND_RETRY_S = 5.0  # after a failed hardware command, retry it after this long, doubling on each failure
COMMAND_RETRY_MAX_S = 300.0  # ... up to this
FAULT_SOURCES = ("contactor", "command", "lock", "meter")  # Connector.faults, the first one present is reported


class HardwareSupervision:
    """Hardware supervision"""

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
                await self.present_tag(tag, getattr(self.board.reader, "token_kind", None))
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

    def _charging_allowed(self, c: Connector) -> bool:
        tx = c.transaction
        return (tx is not None and not tx.stopped and not tx.awaiting_auth
                and (tx.authorized or self._invalid_id_energy_left(c, tx))
                and not c.faulted and self.charger_error_code == NO_ERROR)

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
            c.reserved = self._holds_reservation(c)
            status = c.derive_status(self.charger_error_code != NO_ERROR, c.hw.evse.min_current_a)
            if await self._energy_points(c, status):
                status = c.derive_status(self.charger_error_code != NO_ERROR, c.hw.evse.min_current_a)
            error = c.effective_error_code if c.effective_error_code != NO_ERROR else self.charger_error_code
            c.info = "EV side disconnected" if c.transaction is not None and not c.ev_connected else ""
            if getattr(self.link, "wants_state_events", False):  # a link of its own may lack it
                self._report_transaction_state(c, status)  # before the status: it arose first
            if (status, error) != (c.status, c.status_error_code):
                log.info("connector %d: %s -> %s (%s)", c.id, c.status, status, error)
                c.status, c.status_error_code = status, error
                self.link.status_changed(c.id)
            self._reservation_rules(c, status)  # after the status: its removal follows it

    async def _energy_points(self, c: Connector, status: str) -> bool:
        """Energy began or stopped flowing for the running transaction (called with the lock
        held): a start deferred to the energy transfer is reported; with the stop point
        energy_transfer, the EV suspending it after it flowed ends the transaction
        (stopped_by_ev). True when the transaction ended."""
        tx = c.transaction
        if tx is None or tx.stopped:
            return False
        if status == model.CHARGING:
            tx.energy_seen = True
            if tx.start_deferred:
                self._report_deferred_start(c, tx)
        elif (status == model.SUSPENDED_EV and tx.energy_seen and c.ev_connected and not tx.start_deferred
              and TX_ENERGY_TRANSFER in self._tx_points("tx_stop_points")):
            await self._end_transaction(c, model.REASON_STOPPED_BY_EV)
            return True
        return False

    def _report_transaction_state(self, c: Connector, status: str) -> None:
        """Queue an update entry when the running transaction's state changed since its last
        event said (for a link that ``wants_state_events``). The state is the connector's
        derived status, faulted or unavailable counting as suspended by the charger, and
        whether an EV is connected; without an EV only its leaving and return count. An EV
        plugged in again is reported as connected first (the state it comes back in), then
        what the charger and the EV make of it. The start and the end are events of their own."""
        tx = c.transaction
        if tx is None or tx.stopped or tx.start_deferred:
            return
        state = model.SUSPENDED_EVSE if status in (model.FAULTED, model.UNAVAILABLE) else status
        if state == model.RESERVED:  # begun on the EV at a reserved connector: waiting for an identifier
            state = model.PREPARING
        ev = c.ev_connected
        last_state, last_ev = tx.reported_state or (model.PREPARING, True)
        if ev and not last_ev:
            self._queue_update(c, tx, model.CAUSE_CABLE_PLUGGED_IN, model.PREPARING, True)
            last_state = model.PREPARING
        if not ev:
            if last_ev:
                self._queue_update(c, tx, model.CAUSE_EV_DEPARTED, state, False)
        elif state != last_state:
            self._queue_update(c, tx, model.CAUSE_CHARGING_STATE, state, True)

    def _queue_update(self, c: Connector, tx, cause: str, state: str, ev: bool) -> None:
        tx.reported_state = (state, ev)
        log.info("connector %d: transaction %d: %s (%s, EV %s)", c.id, tx.local_id, cause, state,
                 "connected" if ev else "gone")
        self.outbox.append(OutboxEntry(UPDATE, tx, c.id, cause=cause, state=state, ev_connected=ev,
                                       time=self.clock.time()))

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
        next). The connector is Faulted with the error's code (internal_error for a
        communication failure) until a retry: after COMMAND_RETRY_S, doubling with each
        failure in a row up to COMMAND_RETRY_MAX_S, and only once the controller reports
        itself healthy. A retry that fails again keeps the connector Faulted without a
        status change in between; the first command that works ends the backoff."""
        c.command_failures += 1
        delay_s = min(COMMAND_RETRY_S * 2 ** min(c.command_failures - 1, 16), COMMAND_RETRY_MAX_S)
        c.command_retry_at = self.clock.monotonic() + delay_s
        code = getattr(e, "error_code", "") or "internal_error"
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
        is opened again and reported as a failed command (power_switch_failure, retried);
        one that stays closed when opened is welded: power_switch_failure, latched."""
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
        log.error("connector %d: %s: the contactor is commanded open; connector faulted until a restart "
                  "after repair", c.id, fault[1])
        self._set_fault(c, "contactor", fault)
        return True

    async def _force_open(self, c: Connector) -> None:
        """After a weld was found outside ``_apply``: command everything off again, then
        re-evaluate (Faulted)."""
        async with self._locks[c.id - 1]:
            await self._safe_outputs(c)
        await self._update(c)

    async def _read_meter(self, c: Connector, feedback: bool | None = None) -> MeterReading:
        """A fresh meter reading. When the meter does not answer, every value of the
        reading is missing (None) — never the last good reading passed off as new: a
        caller that needs an energy value uses what it recorded itself (a transaction's
        ``last_meter_wh``), sampled values leave the missing ones out. An import energy
        below one this connector already reported is missing too (never backwards).

        Every read feeds the connector's ``MeterHealth`` (power_meter_failure after
        repeated failures, no_error on the first good read) and its ``ContactorCheck``
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
        A meter in power_meter_failure faults the connector: a charger that cannot meter
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
        failure count reaches power_meter_failure soon, and no_error follows the meter's
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
