"""The simulated board (``board = "sim"``): EVs, pilot controllers, contactors,
meters and an RFID reader behind the same interfaces as real hardware.

Energy integrates lazily and deterministically from the injected clock: every
read or state change first adds ``power_w × elapsed_s × speed`` to the meter
register, so a ``VirtualClock`` drives hours of charging in no real time and
``speed`` compresses time on benches (60: one real second is a minute of
charging). The hardware state (EV plugged, EV full, faults, energy registers)
survives a restart of the agent in ``data_dir/sim-state.json``, as real
hardware survives a controller reboot. Portable core: only Event, sleep,
create_task, current_task and Task.cancel() from asyncio.
"""

import asyncio
import logging
import os

from hal.runtime.storage import read_json, write_json_atomic
from hal.runtime.aio import cancel_and_wait
from hal.errors import HalConfigurationError
from hal.runtime.words import neutral
from hal.interfaces import (CP_A, CP_B, CP_C, CP_F, ERROR_CODES, NO_ERROR, Board, ConnectorHardware,
                            ConnectorLock, EvseController, EvseStatus, IdReader, Meter, MeterReading,
                            Relay)

log = logging.getLogger(__name__)

STATE_FILE = "sim-state.json"
STATE_VERSION = 1
SAVE_INTERVAL_S = 1.0  # at most one write per this many (clock) seconds from meter reads (a real meter keeps its register exactly; 1 s keeps the simulated one close)
MAX_TAG_LEN = 20  # OCPP IdToken: CiString20
MAX_QUEUED_TAGS = 8  # swipes nobody has read yet; older ones are dropped
FULL_EPSILON_WH = 1e-6

# (key, default, type, low, high): the parameters of build_sim_board; bounds of a str are on its length.
PARAMS = (
    ("connectors", 1, int, 1, 64),
    ("phases", 3, int, 1, 3),
    ("voltage_v", 230.0, float, 1.0, 1000.0),
    ("max_current_a", 32.0, float, EvseController.min_current_a, 80.0),
    ("ev_max_current_a", 32.0, float, 1.0, 80.0),
    ("ev_needs_wh", 0.0, float, 0.0, 1e9),
    ("speed", 1.0, float, 1e-3, 1e6),
    ("vendor", "OpenCharge", str, 1, 20),  # OCPP chargePointVendor: CiString20
    ("model", "ocpp-agent-sim", str, 1, 20),  # OCPP chargePointModel: CiString20
)


def check_error_code(code: str) -> str:
    """Return ``code`` (as ``ground_failure`` or ``GroundFailure``) if it names a fault."""
    code = neutral(code)
    if code not in ERROR_CODES or code == NO_ERROR:
        raise ValueError("unknown error code %r; expected one of %s (use clear to clear a fault)"
                         % (code, ", ".join(c for c in ERROR_CODES if c != NO_ERROR)))
    return code


def _printable(text: str) -> bool:
    """``str.isprintable()``; MicroPython's str lacks it, there: no control characters."""
    isprintable = getattr(text, "isprintable", None)
    if isprintable is not None:
        return isprintable()
    return all(" " <= ch and not "\x7f" <= ch <= "\x9f" for ch in text)


class SimEv:
    """The car: plugged in or not, full or not, and how much current it draws.

    ``needs_wh`` > 0: the EV becomes full by itself after that much energy in
    the session (0 = never).
    """

    def __init__(self, max_current_a: float = 32.0, needs_wh: float = 0.0) -> None:
        self.max_current_a = max_current_a
        self.needs_wh = needs_wh
        self.plugged = False
        self.full = False
        self.session_energy_wh = 0.0
        self.ignores_pwm_off = False  # a misbehaving EV that stays in C when the offer is withdrawn

    def plug(self) -> None:
        if not self.plugged:
            self.plugged, self.full, self.session_energy_wh = True, False, 0.0

    def unplug(self) -> None:
        self.plugged, self.full, self.session_energy_wh = False, False, 0.0

    def cp_state(self, pwm_on: bool) -> str:
        """The pilot state this EV pulls the line to."""
        if not self.plugged:
            return CP_A
        if self.ignores_pwm_off and not self.full and self.session_energy_wh > 0:
            return CP_C
        return CP_C if pwm_on and not self.full else CP_B

    def draw_a(self, offered_a: float) -> float:
        return min(offered_a, self.max_current_a)

    def remaining_wh(self) -> float | None:
        """Energy until full by itself; None when it never gets full by itself."""
        if self.needs_wh <= 0:
            return None
        return max(0.0, self.needs_wh - self.session_energy_wh)

    def add_energy(self, energy_wh: float) -> bool:
        """Account charged energy; return True if that made the EV full."""
        self.session_energy_wh += energy_wh
        remaining_wh = self.remaining_wh()
        if remaining_wh is not None and remaining_wh <= FULL_EPSILON_WH and not self.full:
            self.full = True
            return True
        return False


class SimEvseController(EvseController):
    """The pilot controller: PWM on at >= ``min_current_a`` while available and not faulted."""

    def __init__(self, sim: "SimConnector", max_current_a: float = 32.0) -> None:
        super().__init__()
        self._sim = sim
        self.max_current_a = max_current_a
        self.available = True
        self.error_code = NO_ERROR

    @property
    def pwm_on(self) -> bool:
        return (self.available and self.error_code == NO_ERROR
                and self.current_limit_a >= self.min_current_a)

    @property
    def offered_a(self) -> float:
        return self.current_limit_a if self.pwm_on else 0.0

    def cp_state(self) -> str:
        return self._sim.ev.cp_state(self.pwm_on) if self.available else CP_F

    def publish(self) -> None:
        self._publish(EvseStatus(self.cp_state(), self.error_code, pwm_on=self.pwm_on))

    async def open(self) -> None:
        """Start in a non-delivering state, and start the EV's full timer."""
        await self.set_current_limit(0)
        self._sim.start()

    async def close(self) -> None:
        await self._sim.stop()

    async def set_current_limit(self, current_a: float) -> None:
        current_a = float(current_a)
        self._sim.advance()
        self.current_limit_a = min(current_a, self.max_current_a) if current_a > 0 else 0.0
        self._sim.commit()

    async def set_available(self, available: bool) -> None:
        self._sim.advance()
        self.available = bool(available)
        self._sim.commit()

    def fault(self, code: str) -> None:
        """Report the OCPP ChargePointErrorCode ``code``; a faulted EVSE offers nothing."""
        code = check_error_code(code)  # the neutral word, whichever spelling came in (the core compares words)
        self._sim.advance()
        self.error_code = code
        self._sim.commit()

    def clear(self) -> None:
        self._sim.advance()
        self.error_code = NO_ERROR
        self._sim.commit()


class SimContactor(Relay):
    """The contactor, with a feedback contact that always tells the truth."""

    has_feedback = True

    def __init__(self, sim: "SimConnector") -> None:
        super().__init__()
        self._sim = sim

    async def set_closed(self, closed: bool) -> None:
        self._sim.advance()
        self.is_closed = bool(closed)
        self._sim.commit()

    async def read_feedback(self) -> bool | None:
        return self.is_closed


class SimMeter(Meter):
    """The meter: an import register that never goes backwards, and live values."""

    def __init__(self, sim: "SimConnector") -> None:
        self._sim = sim
        self.energy_wh = 0.0

    async def read(self) -> MeterReading:
        sim = self._sim
        sim.commit(save_now=False)
        current_a = sim.current_a()
        on = [i < sim.phases for i in range(3)]
        return MeterReading(
            energy_wh=self.energy_wh,
            power_w=current_a * sim.voltage_v * sim.phases,
            current_a=tuple(current_a if p else 0.0 for p in on),
            voltage_v=tuple(sim.voltage_v if p else None for p in on),
            frequency_hz=50.0,
            timestamp=sim.clock.time())


class SimReader(IdReader):
    """An RFID reader fed by ``swipe(tag)``; ``read_tag()`` waits for the next swipe."""

    def __init__(self) -> None:
        self._tags: list = []
        self._swiped = asyncio.Event()

    def swipe(self, tag: str) -> None:
        if not isinstance(tag, str) or not 0 < len(tag) <= MAX_TAG_LEN or not _printable(tag):
            raise ValueError("tag %r: expected 1 to %d printable characters" % (tag, MAX_TAG_LEN))
        if len(self._tags) >= MAX_QUEUED_TAGS:
            log.warning("nobody reads the sim reader; dropping tag %s", self._tags.pop(0))
        self._tags.append(tag)
        self._swiped.set()

    async def read_tag(self) -> str:
        while not self._tags:
            self._swiped.clear()
            await self._swiped.wait()
        return self._tags.pop(0)


class SimLock(ConnectorLock):
    """A connector lock; with ``lock_fails`` set, unlocking fails (stays locked); with
    ``jammed`` set, locking fails (a plug not fully in: OCTT TC_G_20)."""

    def __init__(self, lock_fails: bool = False, jammed: bool = False) -> None:
        self.lock_fails = lock_fails
        self.jammed = jammed
        self.locked = False

    async def set_locked(self, locked: bool) -> bool:
        if not locked and self.lock_fails:
            return False
        if locked and self.jammed:
            return False
        self.locked = bool(locked)
        return True


class SimConnector:
    """The physics of one connector: ties EV, controller, contactor and meter
    together, integrates energy and runs the timer that makes the EV full.

    Every state change is ``advance()`` (integrate up to now), the change,
    then ``commit()`` (republish the pilot state, re-arm the timer, persist).
    """

    def __init__(self, connector_id: int, clock, ev: SimEv, phases: int = 3, voltage_v: float = 230.0,
                 max_current_a: float = 32.0, speed: float = 1.0) -> None:
        self.id = connector_id
        self.clock = clock
        self.ev = ev
        self.phases = phases
        self.voltage_v = voltage_v
        self.speed = speed
        self.evse = SimEvseController(self, max_current_a)
        self.contactor = SimContactor(self)
        self.meter = SimMeter(self)
        self.lock = SimLock()
        self.on_change = None  # callable(save_now: bool), set by SimHardware
        self._last_update_s = clock.monotonic()
        self._became_full = False
        self._running = False
        self._timer = None  # the live EV-full timer task
        self._deadline_s = 0.0  # when it fires (clock.monotonic())
        self._stale: list = []  # cancelled timers not finished yet

    def current_a(self) -> float:
        """Current drawn per phase right now."""
        if not self.contactor.is_closed or self.evse.cp_state() != CP_C:
            return 0.0
        return self.ev.draw_a(self.evse.offered_a)

    def power_w(self) -> float:
        return self.current_a() * self.voltage_v * self.phases

    def advance(self) -> None:
        """Add the energy charged since the last update to the register."""
        now_s = self.clock.monotonic()
        elapsed_s = (now_s - self._last_update_s) * self.speed
        self._last_update_s = now_s
        power_w = self.power_w()
        if elapsed_s <= 0 or power_w <= 0:
            return
        energy_wh = power_w * elapsed_s / 3600.0
        remaining_wh = self.ev.remaining_wh()
        if remaining_wh is not None:
            energy_wh = min(energy_wh, remaining_wh)
        self.meter.energy_wh += energy_wh
        if self.ev.add_energy(energy_wh):
            log.info("sim connector %d: EV is full after %.1f Wh", self.id, self.ev.session_energy_wh)
            self._became_full = True

    def commit(self, save_now: bool = True) -> None:
        """After a change (or for a read): publish the status, re-arm, persist."""
        self.advance()
        self.evse.publish()
        self._arm()
        save_now = save_now or self._became_full
        self._became_full = False
        if self.on_change is not None:
            self.on_change(save_now)

    def plug(self) -> None:
        self.advance()
        self.ev.plug()
        self.commit()

    def unplug(self) -> None:
        self.advance()
        self.ev.unplug()
        self.commit()

    def set_ev_full(self) -> None:
        if not self.ev.plugged:
            raise ValueError("connector %d: no EV plugged in" % self.id)
        self.advance()
        self.ev.full = True
        self.commit()

    def restore(self, state: dict) -> None:
        """Apply a validated persisted state (see ``SimHardware.snapshot``)."""
        self.ev.plugged = state["plugged"]
        self.ev.full = state["ev_full"]
        self.ev.session_energy_wh = state["session_energy_wh"]
        self.meter.energy_wh = state["energy_wh"]
        self.evse.error_code = state["error_code"]
        self.evse.publish()

    # The EV-full timer: only armed while charging towards ev_needs_wh.

    def start(self) -> None:
        self._running = True
        self.commit(save_now=False)

    async def stop(self) -> None:
        self._running = False
        self._arm()
        stale, self._stale = self._stale, []
        for task in stale:
            await cancel_and_wait(task)
        if self.on_change is not None:
            self.advance()
            self.on_change(True)

    def _arm(self) -> None:
        """(Re)start the timer for the moment the EV gets full; keep it if that did not move."""
        deadline_s = None
        remaining_wh = self.ev.remaining_wh()
        power_w = self.power_w()
        now_s = self.clock.monotonic()
        if self._running and remaining_wh is not None and power_w > 0 and not self.ev.full:
            deadline_s = now_s + remaining_wh * 3600.0 / (power_w * self.speed)
        if self._timer is not None:
            if deadline_s is not None and abs(deadline_s - self._deadline_s) < 1e-3:
                return
            self._timer.cancel()
            self._stale.append(self._timer)
            self._timer = None
        self._stale = [t for t in self._stale if not t.done()]
        if deadline_s is not None:
            self._deadline_s = deadline_s
            self._timer = asyncio.create_task(self._full_after(deadline_s - now_s))

    async def _full_after(self, delay_s: float) -> None:
        await self.clock.sleep(delay_s)
        if self._timer is asyncio.current_task():
            self._timer = None
            self.commit(save_now=False)


class SimHardware:
    """All simulated hardware of one charger, and the commands benches use.

    Connector numbers start at 1; 0 means the whole charger where allowed.
    Bad numbers and unknown error codes raise ``ValueError``.
    """

    def __init__(self, connectors: list, reader: SimReader, clock, state_path: str | None = None,
                 vendor: str = "OpenCharge", model: str = "ocpp-agent-sim") -> None:
        self.connectors = connectors
        self.reader = reader
        self.clock = clock
        self.state_path = state_path
        self._saved_at_s: float | None = None
        self._saved_state: dict | None = None  # what the file holds, as last written
        self.board = Board("sim", [ConnectorHardware(c.evse, c.meter, c.contactor, c.lock, c.phases,
                                                     c.voltage_v) for c in connectors],
                           reader, vendor=vendor, model=model)
        self.board.error_code = NO_ERROR
        self.board.changed = asyncio.Event()
        for c in connectors:
            c.on_change = self._on_change

    def connector(self, n, allow_charger: bool = False) -> SimConnector | None:
        """The connector numbered ``n`` (int or decimal string); None for 0 if allowed."""
        low = 0 if allow_charger else 1
        if isinstance(n, str) and n.strip().isdigit():
            n = int(n)
        if isinstance(n, bool) or not isinstance(n, int) or not low <= n <= len(self.connectors):
            raise ValueError("bad connector %r: expected %d..%d%s" % (
                n, low, len(self.connectors), " (0 = the whole charger)" if allow_charger else ""))
        return self.connectors[n - 1] if n else None

    def plug(self, n) -> None:
        self.connector(n).plug()

    def unplug(self, n) -> None:
        self.connector(n).unplug()

    def ev_full(self, n) -> None:
        self.connector(n).set_ev_full()

    def swipe(self, tag: str) -> None:
        self.reader.swipe(tag)

    def fault(self, n, code: str) -> None:
        """Fault connector ``n``, or with 0 the whole charger and every connector."""
        check_error_code(code)
        c = self.connector(n, allow_charger=True)
        targets = [c] if c is not None else self.connectors
        if c is None:
            self._set_charger_error(code)
        for t in targets:
            t.evse.fault(code)

    def clear(self, n) -> None:
        """Clear connector ``n``'s fault, or with 0 the charger's and every connector's."""
        c = self.connector(n, allow_charger=True)
        targets = [c] if c is not None else self.connectors
        if c is None:
            self._set_charger_error(NO_ERROR)
        for t in targets:
            t.evse.clear()

    def status(self) -> dict:
        """The state of the simulated hardware, as the control socket reports it."""
        out = []
        for c in self.connectors:
            c.commit(save_now=False)
            out.append({
                "id": c.id, "cp_state": c.evse.status.cp_state, "contactor_closed": c.contactor.is_closed,
                "current_limit_a": c.evse.current_limit_a, "power_w": round(c.power_w(), 3),
                "energy_wh": round(c.meter.energy_wh, 3), "ev_full": c.ev.full,
                "error_code": c.evse.error_code, "plugged": c.ev.plugged, "pwm_on": c.evse.pwm_on,
                "session_energy_wh": round(c.ev.session_energy_wh, 3), "locked": c.lock.locked})
        return {"connectors": out, "error_code": self.board.error_code}

    def _set_charger_error(self, code: str) -> None:
        if self.board.error_code != code:
            self.board.error_code = code
            self.board.changed.set()

    # Persistence

    def snapshot(self) -> dict:
        return {"version": STATE_VERSION, "error_code": self.board.error_code, "connectors": [
            {"id": c.id, "plugged": c.ev.plugged, "ev_full": c.ev.full,
             "session_energy_wh": c.ev.session_energy_wh, "energy_wh": c.meter.energy_wh,
             "error_code": c.evse.error_code} for c in self.connectors]}

    def save(self, durable: bool = True) -> None:
        """Write the state file; ``durable=False`` (meter reads) without fsync, as the agent
        journals sampled meter values, and not at all when the state has not changed."""
        if self.state_path is None:
            return
        self._saved_at_s = self.clock.monotonic()
        state = self.snapshot()
        if not durable and state == self._saved_state:
            return  # an idle connector's periodic meter read: the file holds it already
        try:
            write_json_atomic(self.state_path, state, durable=durable)
            self._saved_state = state
        except OSError as e:
            log.warning("cannot save the sim state to %s: %s", self.state_path, e)

    def load(self) -> None:
        """Restore the state saved by a previous run; start fresh if there is none or it is bad."""
        if self.state_path is None:
            return
        data = read_json(self.state_path, None)
        if data is None:
            log.info("no sim state at %s: starting with no EV plugged in", self.state_path)
            return
        try:
            charger_code, states = _parse_state(data)
        except (ValueError, TypeError, KeyError) as e:
            log.warning("sim state %s is unusable (%s): starting fresh", self.state_path, e)
            return
        if charger_code != NO_ERROR:
            self._set_charger_error(charger_code)
        for c, state in zip(self.connectors, states):
            c.restore(state)
        if len(states) != len(self.connectors):
            log.info("sim state has %d connectors, the board %d", len(states), len(self.connectors))

    def _on_change(self, save_now: bool) -> None:
        now_s = self.clock.monotonic()
        if save_now or self._saved_at_s is None or now_s - self._saved_at_s >= SAVE_INTERVAL_S:
            # Meter reads cost no fsync (a fleet reads thousands); plugs, faults, a full EV do.
            self.save(durable=save_now)


def _parse_state(data) -> tuple:
    """Validate a persisted state; return (charger error code, [connector state])."""
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
        raise ValueError("not a version %d sim state" % STATE_VERSION)
    states = []
    for item in data["connectors"]:
        state = {k: item[k] for k in ("plugged", "ev_full", "session_energy_wh", "energy_wh", "error_code")}
        for k in ("plugged", "ev_full"):
            if not isinstance(state[k], bool):
                raise ValueError("%s must be true or false, not %r" % (k, state[k]))
        for k in ("session_energy_wh", "energy_wh"):
            if isinstance(state[k], bool) or not isinstance(state[k], (int, float)) or not state[k] >= 0:
                raise ValueError("%s must be a number >= 0, not %r" % (k, state[k]))
            state[k] = float(state[k])
        state["error_code"] = _check_stored_code(state["error_code"])
        states.append(state)
    return _check_stored_code(data["error_code"]), states


def _check_stored_code(code) -> str:
    code = neutral(code)  # files of releases before 0.2 hold the 1.6 spelling
    return code if code == NO_ERROR else check_error_code(code)


def _check_params(params: dict) -> dict:
    """Merge ``params`` over the defaults; raise HalConfigurationError naming a bad key."""
    known = [p[0] for p in PARAMS]
    for key in params:
        if key not in known:
            raise HalConfigurationError("sim board: unknown parameter %r (known: %s)"
                                        % (key, ", ".join(known)))
    out = {}
    for key, default, kind, low, high in PARAMS:
        value = params.get(key, default)
        ok = not isinstance(value, bool) and (
            isinstance(value, kind) or (kind is float and isinstance(value, int)))
        ok = ok and low <= (len(value) if kind is str else value) <= high
        if not ok:
            what = {int: "an integer", float: "a number", str: "a string, length"}[kind]
            raise HalConfigurationError("sim board: %s = %r: expected %s from %s to %s"
                                        % (key, value, what, low, high))
        out[key] = float(value) if kind is float else value
    return out


def build_sim_board(params: dict, data_dir: str | None, clock) -> tuple[Board, SimHardware]:
    """Build the simulated board from the ``[evse]`` parameters (minus ``driver``).

    Returns ``(board, sim)``: a ``hal.interfaces.Board`` to run the station on,
    and the ``SimHardware`` that benches command. Loads ``data_dir/sim-state.json``
    (``data_dir`` None: no persistence).
    """
    p = _check_params(params)
    connectors = [SimConnector(n, clock, SimEv(p["ev_max_current_a"], p["ev_needs_wh"]), p["phases"],
                               p["voltage_v"], p["max_current_a"], p["speed"])
                  for n in range(1, p["connectors"] + 1)]
    state_path = None if data_dir is None else os.path.join(data_dir, STATE_FILE)
    sim = SimHardware(connectors, SimReader(), clock, state_path, p["vendor"], p["model"])
    sim.load()
    return sim.board, sim
