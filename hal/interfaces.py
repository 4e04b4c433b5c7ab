"""Small hardware interfaces the station is written against.

Every interface is a plain base class with async methods, portable to
MicroPython: no asyncio beyond ``Event``/``Lock``/``sleep``. Drivers and the
simulated board subclass them. Constructors do no I/O; ``open()`` and
``close()`` do, and every device works as an async context manager.

State changes are signalled with an ``asyncio.Event`` named ``changed`` that
the device sets whenever its cached status changes; a consumer waits on it,
clears it and reads the status again (a queue built from an Event, because
MicroPython has no ``asyncio.Queue``).
"""

import asyncio

# IEC 61851-1 control pilot states.
CP_A = "A"  # no EV
CP_B = "B"  # EV connected, not ready
CP_C = "C"  # EV wants charge
CP_D = "D"  # charge, ventilation required
CP_E = "E"  # error / short
CP_F = "F"  # EVSE not available
CP_STATES = (CP_A, CP_B, CP_C, CP_D, CP_E, CP_F)

NO_ERROR = "no_error"

# Faults a device may report (each protocol adapter maps them to its own names).
ERROR_CODES = (
    "connector_lock_failure", "ev_communication_error", "ground_failure", "high_temperature",
    "internal_error", "local_list_conflict", NO_ERROR, "other_error", "over_current_failure",
    "power_meter_failure", "power_switch_failure", "reader_failure", "reset_failure",
    "under_voltage", "over_voltage", "weak_signal",
)


class Device:
    """Base of every device: open/close and async context manager."""

    async def open(self) -> None:
        """Acquire the transport and start any background polling."""

    async def close(self) -> None:
        """Stop polling and release the transport. Safe to call twice."""

    async def __aenter__(self):
        await self.open()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()


class MeterReading:
    """One reading of an energy meter. ``None`` marks a value that is missing
    (not measured by this meter, or not read successfully) — never a guess.

    Per-phase values are tuples of three (L1, L2, L3), an entry may be None.
    """

    __slots__ = ("energy_wh", "power_w", "current_a", "voltage_v", "frequency_hz", "timestamp")

    def __init__(self, energy_wh: float | None = None, power_w: float | None = None,
                 current_a: tuple | None = None, voltage_v: tuple | None = None,
                 frequency_hz: float | None = None, timestamp: float = 0.0) -> None:
        self.energy_wh = energy_wh
        self.power_w = power_w
        self.current_a = current_a
        self.voltage_v = voltage_v
        self.frequency_hz = frequency_hz
        self.timestamp = timestamp

    def __repr__(self) -> str:
        return ("MeterReading(energy_wh=%r, power_w=%r, current_a=%r, voltage_v=%r, frequency_hz=%r)"
                % (self.energy_wh, self.power_w, self.current_a, self.voltage_v, self.frequency_hz))


class Meter(Device):
    """An energy meter for one connector."""

    async def read(self) -> MeterReading:
        """Read the meter now. Raises ``CommunicationError`` if it cannot."""
        raise NotImplementedError


class EvseStatus:
    """What an EVSE controller reports about its connector."""

    __slots__ = ("cp_state", "error_code", "vendor_error_code", "info", "pwm_on")

    def __init__(self, cp_state: str = CP_A, error_code: str = NO_ERROR,
                 vendor_error_code: str = "", info: str = "", pwm_on: bool = False) -> None:
        self.cp_state = cp_state
        self.error_code = error_code
        self.vendor_error_code = vendor_error_code
        self.info = info
        self.pwm_on = pwm_on

    @property
    def ev_connected(self) -> bool:
        return self.cp_state in (CP_B, CP_C, CP_D)

    @property
    def ev_wants_charge(self) -> bool:
        return self.cp_state in (CP_C, CP_D)

    def __eq__(self, other) -> bool:
        return isinstance(other, EvseStatus) and all(
            getattr(self, k) == getattr(other, k) for k in self.__slots__)

    def __repr__(self) -> str:
        return "EvseStatus(cp_state=%r, error_code=%r, pwm_on=%r)" % (
            self.cp_state, self.error_code, self.pwm_on)


class EvseController(Device):
    """The controller that drives the control pilot of one connector.

    It reports the pilot state (``status``, ``changed``) and takes the current
    the EV may draw. ``set_current_limit(0)`` (or anything below the
    controller's minimum) stops offering current: PWM off / pause. The station
    calls ``set_current_limit`` only when charging is authorized, and drivers
    must put the controller in a non-delivering state in ``open()`` whatever
    its factory state.
    """

    min_current_a = 6.0
    max_current_a = 32.0

    def __init__(self) -> None:
        self.status = EvseStatus()
        self.changed = asyncio.Event()
        self.current_limit_a = 0.0

    def _publish(self, status: EvseStatus) -> None:
        """Drivers call this with each status they read; waiters are woken on change."""
        if status != self.status:
            self.status = status
            self.changed.set()

    async def set_current_limit(self, current_a: float) -> None:
        """Offer ``current_a`` amperes per phase (below the minimum: offer nothing)."""
        raise NotImplementedError

    async def set_available(self, available: bool) -> None:
        """Make the connector usable (pilot at +12 V) or unavailable (state F)."""


class Relay(Device):
    """A contactor (or any relay) with optional feedback contact."""

    has_feedback = False

    def __init__(self) -> None:
        self.is_closed = False

    async def set_closed(self, closed: bool) -> None:
        """Close (energise) or open the relay."""
        raise NotImplementedError

    async def read_feedback(self) -> bool | None:
        """The feedback contact: True when the contacts are closed; None if there is none."""
        return None


class IdReader(Device):
    """An identification reader (RFID, keypad…). ``token_kind`` says what its tokens are:
    "iso14443" (RFID cards, the UID in hex; the default), "iso15693", "key_code"…"""

    token_kind = "iso14443"

    async def read_tag(self) -> str:
        """Wait for the next presented id token and return it (upper-case hex for RFID UIDs)."""
        raise NotImplementedError


class ConnectorLock(Device):
    """An optional connector lock (socket outlets without a fixed cable)."""

    async def set_locked(self, locked: bool) -> bool:
        """Lock or unlock; return True when the lock reached that position."""
        raise NotImplementedError


class ConnectorHardware:
    """The devices that serve one connector. Meter, relay and lock are optional."""

    def __init__(self, evse: EvseController, meter: Meter | None = None,
                 contactor: Relay | None = None, lock: ConnectorLock | None = None,
                 phases: int = 3, voltage_v: float = 230.0) -> None:
        self.evse = evse
        self.meter = meter
        self.contactor = contactor
        self.lock = lock
        self.phases = phases
        self.voltage_v = voltage_v

    def devices(self) -> list:
        return [d for d in (self.evse, self.meter, self.contactor, self.lock) if d is not None]


class Board:
    """A charger's hardware: connectors (numbered from 1) and an id reader."""

    def __init__(self, name: str, connectors: list, reader: IdReader | None = None,
                 vendor: str = "OpenCharge", model: str = "ocpp-agent") -> None:
        self.name = name
        self.connectors = connectors
        self.reader = reader
        self.vendor = vendor
        self.model = model

    def devices(self) -> list:
        out = []
        for c in self.connectors:
            out.extend(c.devices())
        if self.reader is not None:
            out.append(self.reader)
        return out

    async def open(self) -> None:
        opened = []
        try:
            for d in self.devices():
                await d.open()
                opened.append(d)
        except BaseException:
            for d in reversed(opened):
                await d.close()
            raise

    async def close(self) -> None:
        for d in reversed(self.devices()):
            try:
                await d.close()
            except Exception:  # closing must reach every device
                pass
