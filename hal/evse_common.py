"""What every real EVSE controller driver shares: the desired state, the poll
loop, "controller not answering" detection and recovery.

A driver keeps the *desired* state the station asked for (``current_limit_a``,
``available``) apart from what the controller reports, and reconciles the
two on every poll: a controller that rebooted into its factory "charge on
plug" state, or that someone else reconfigured, is put back into the desired
state — by default the non-delivering one — within a poll interval.

Lifecycle and rules, the same for every driver:

- ``open()`` opens the transport (raising ``CommunicationError`` when the port
  itself cannot be opened), then tries once to reach the controller and put it
  in the desired state: **no energy until the station offers current**,
  whatever the factory state. A controller that does not answer does not make
  ``open()`` fail: the status reports it (see below) and the poll loop keeps
  trying, so the station can report a Faulted connector.
- The poll loop reads the controller every ``poll_interval_s`` (on the
  injected clock). After ``offline_after`` failed polls in a row — or at
  once when a command does not reach it, or when it was never reached — the
  status becomes ``error_code="internal_error"``, ``vendor_error_code=
  "controller not answering"``, PWM off, the last known pilot state kept: the
  station stops offering current, opens the contactor and reports the
  connector Faulted. When the controller answers again, the driver first puts
  it back into the desired state (the station offers nothing while the
  connector is faulted, so that is "no energy"), then publishes its real
  status, which clears the error.
- ``set_current_limit(a)``: below ``min_current_a`` (or 0) offers nothing, above
  ``max_current_a`` is clamped. It raises ``CommunicationError`` only when an
  offer of current could not be delivered to the controller (the offer is
  then dropped: the desired limit becomes 0, nothing is offered later by
  surprise); stopping (0) never raises — a stop that did not reach the
  controller is reported through the status (not answering), which makes the
  station safe.
- ``set_available(False)`` makes the connector unavailable (pilot state F
  where the controller can, no offer in any case); the published pilot state
  is F while unavailable, as on the simulated board.
- A controller that answers with a device exception is reported with the
  ``DeviceFaultError`` code it maps to.

Portable core: Event, Lock, create_task, sleep (through the clock) only.
"""

import asyncio
import logging

from hal.runtime.clock import Clock
from hal.runtime.aio import cancel_and_wait
from hal.errors import CommunicationError, DeviceFaultError, HalConfigurationError, HalError
from hal.interfaces import CP_A, CP_F, EvseController, EvseStatus

log = logging.getLogger(__name__)

NOT_ANSWERING = "controller not answering"
NOT_ANSWERING_CODE = "internal_error"
MAX_VENDOR_CODE = 50  # OCPP 1.6 vendorErrorCode: CiString50


def vendor_code(text: str) -> str:
    """A vendorErrorCode: at most 50 characters."""
    return text[:MAX_VENDOR_CODE]


def device_fault_from_modbus(e: Exception, name: str) -> DeviceFaultError | None:
    """The ``DeviceFaultError`` a Modbus exception response means for an EVSE controller
    (None if ``e`` is not an exception response). Exception 4 is the device's own
    failure; any other one (illegal address, value) means a wrong device or map."""
    code = getattr(e, "exception_code", None)
    if code is None:
        return None
    if code == 4:
        return DeviceFaultError("%s: device failure (modbus exception 4)" % name, "internal_error",
                                "modbus exception 4 (device failure)")
    return DeviceFaultError("%s: modbus exception %d: %s" % (name, code, e), "other_error",
                            vendor_code("modbus exception %d" % code))


def check_number(name: str, value, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise HalConfigurationError("%s must be a number in %g..%g, not %r" % (name, low, high, value))
    return float(value)


class PolledEvseController(EvseController):
    """Base of the EVSE drivers; subclasses implement the ``_…`` hooks below.

    Hooks (called with ``self._io`` held, may raise ``CommunicationError`` or
    ``DeviceFaultError``):

    - ``_open_transport()`` / ``_close_transport()``;
    - ``_setup()``: first contact (and after every loss of contact or
      controller reboot): put the controller in a non-delivering state
      *before anything else*, read its configuration;
    - ``_apply()``: write the desired state (``offer_a()``, ``available``);
    - ``_poll() -> EvseStatus``: read the controller, reconcile it with the
      desired state, return the status to publish;
    - ``_safe_stop()``: best effort at ``close()``: offer nothing.
    """

    driver_name = "evse"

    def __init__(self, *, clock=None, poll_interval_s: float = 1.0, offline_after: int = 2,
                 min_current_a: float = 6.0, max_current_a: float = 32.0, name: str | None = None) -> None:
        super().__init__()
        check_number("poll_interval_s", poll_interval_s, 0.01, 3600)
        if isinstance(offline_after, bool) or not isinstance(offline_after, int) or not 1 <= offline_after <= 100:
            raise HalConfigurationError("offline_after must be an integer 1..100, not %r" % (offline_after,))
        check_number("max_current_a", max_current_a, 6, 80)
        check_number("min_current_a", min_current_a, 6, max_current_a)
        self.clock = clock or Clock()
        self.poll_interval_s = float(poll_interval_s)
        self.offline_after = offline_after
        self.min_current_a = float(min_current_a)
        self.max_current_a = float(max_current_a)
        self.name = name or self.driver_name
        self.available = True
        self.online = False  # reached and set up, and the last poll answered
        self.failures = 0  # polls failed in a row
        self.last_error = ""
        self._io = asyncio.Lock()
        self._task = None
        self._opened = False

    # -- the desired state ----------------------------------------------------------------

    def clamp(self, current_a) -> float:
        """The limit a request for ``current_a`` amperes becomes: 0 below the minimum."""
        a = float(current_a)
        if a != a or a < self.min_current_a:  # NaN, 0, or below what the pilot can offer
            return 0.0
        return min(a, self.max_current_a)

    def offer_a(self) -> float:
        """The current the controller should offer now (0: no PWM / paused)."""
        if not self.available or self.current_limit_a < self.min_current_a:
            return 0.0
        return min(self.current_limit_a, self.max_current_a)

    async def set_current_limit(self, current_a: float) -> None:
        self.current_limit_a = self.clamp(current_a)
        await self._command("current limit %.1f A" % self.current_limit_a)

    async def set_available(self, available: bool) -> None:
        self.available = bool(available)
        await self._command("available" if self.available else "unavailable")

    # -- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        if self._opened:
            return
        await self._open_transport()
        self._opened = True
        await self._cycle()
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        if not self._opened:
            return
        self._opened = False
        await self._cancel_tasks()
        self.current_limit_a = 0.0  # nothing is offered once the agent lets go
        if self.online:
            try:
                async with self._io:
                    await self._safe_stop()
            except HalError as e:
                log.warning("%s: could not stop the controller on close: %s", self.name, e)
        self.online = False
        await self._close_transport()

    async def _cancel_tasks(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    # -- the poll loop --------------------------------------------------------------------

    def _next_delay_s(self) -> float:
        return self.poll_interval_s

    async def _run(self) -> None:
        # The flag as well as the cancellation: on CPython 3.11 a cancellation that races with a
        # reply completing inside pymodbus's wait_for can be lost; the loop still ends.
        while self._opened:
            await self.clock.sleep(self._next_delay_s())
            if not self._opened:
                return
            await self._cycle()

    async def _cycle(self, setup: bool = False) -> None:
        """One poll (after a setup when the controller was not reached yet). Never raises HalError."""
        try:
            async with self._io:
                if setup or not self.online:
                    await self._setup()
                status = await self._poll()
        except DeviceFaultError as e:
            self._device_fault(e)
        except CommunicationError as e:
            self._failed(e)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a driver bug must not stop the supervision of the controller
            log.exception("%s: poll failed", self.name)
            self._failed(e)
        else:
            self._succeeded(status)

    async def _command(self, what: str) -> None:
        """Apply the desired state now (see the module doc for when this raises)."""
        if not self._opened:
            return  # applied by open()
        offering = self.offer_a() > 0
        if not self.online:
            if offering:
                self.current_limit_a = 0.0  # an offer that cannot be delivered is dropped, not kept for later
                raise CommunicationError("%s: %s; cannot apply %s" % (self.name, NOT_ANSWERING, what))
            return  # applied by the setup when the controller answers again
        try:
            async with self._io:
                await self._apply()
                status = await self._poll()
        except DeviceFaultError as e:
            self._device_fault(e)
            if offering:
                self.current_limit_a = 0.0
                raise
        except CommunicationError as e:
            self._lost(e)  # the command may not have reached the controller: its state is unknown
            if offering:
                self.current_limit_a = 0.0
                raise
        else:
            self._succeeded(status)

    # -- outcomes -------------------------------------------------------------------------

    def _succeeded(self, status: EvseStatus) -> None:
        if not self.online:
            log.info("%s: controller answers (%s)", self.name, status)
        self.failures = 0
        self.online = True
        self.last_error = ""
        self._publish(status)

    def _failed(self, e: Exception) -> None:
        self.failures += 1
        self.last_error = str(e)
        if not self.online or self.failures >= self.offline_after:
            self._lost(e)
        else:
            log.debug("%s: poll failed (%d in a row): %s", self.name, self.failures, e)

    def _lost(self, e: Exception) -> None:
        self.last_error = str(e)
        if self.online or self.status.vendor_error_code != NOT_ANSWERING:
            log.error("%s: %s: %s", self.name, NOT_ANSWERING, e)
        self.online = False
        self._publish(EvseStatus(self._last_cp(), NOT_ANSWERING_CODE, NOT_ANSWERING, pwm_on=False))

    def _device_fault(self, e: DeviceFaultError) -> None:
        self.failures = 0
        self.last_error = str(e)
        self.online = False  # set it up again once it stops reporting the exception
        status = EvseStatus(self._last_cp(), e.error_code or "other_error",
                            vendor_code(e.vendor_error_code or str(e)), pwm_on=False)
        if status != self.status:
            log.error("%s: %s", self.name, e)
        self._publish(status)

    def _last_cp(self) -> str:
        return self.status.cp_state if self.status.cp_state else CP_A

    def unavailable_status(self, status: EvseStatus) -> EvseStatus:
        """``status`` as published while the connector is unavailable: pilot F, no PWM
        (faults are still reported)."""
        if self.available:
            return status
        return EvseStatus(CP_F, status.error_code, status.vendor_error_code, status.info, False)

    # -- hooks ----------------------------------------------------------------------------

    async def _open_transport(self) -> None:
        raise NotImplementedError

    async def _close_transport(self) -> None:
        raise NotImplementedError

    async def _setup(self) -> None:
        raise NotImplementedError

    async def _apply(self) -> None:
        raise NotImplementedError

    async def _poll(self) -> EvseStatus:
        raise NotImplementedError

    async def _safe_stop(self) -> None:
        await self._apply()  # close() zeroed the limit first



class ModbusEvseController(PolledEvseController):
    """Base of the EVSE drivers on a Modbus ``bus`` (``hal.modbus.ModbusBus``) at ``device_id``:
    the driver opens and closes the bus, and ``_call`` turns a device's exception
    response into the ``DeviceFaultError`` it means."""

    def __init__(self, bus, device_id: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.bus = bus
        self.device_id = device_id
        self._bus_open = False

    async def _call(self, coro):
        try:
            return await coro
        except CommunicationError as e:
            raise device_fault_from_modbus(e, self.name) or e

    async def _open_transport(self) -> None:
        await self.bus.open()
        self._bus_open = True

    async def _close_transport(self) -> None:
        if self._bus_open:
            self._bus_open = False
            await self.bus.close()
