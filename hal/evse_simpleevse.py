"""SimpleEVSE-WB / EVSE-DIN (EVSE Wallbox by EV Racing / openWB) over Modbus RTU.

Register map (holding registers, FC03 reads, FC16 writes; ``../shared/HARDWARE.md``):

====  =====================================================================
1000  configured current, A (0 = off; 0.01 A units when 2005 bit 7 is set)
1001  actual current offered, same unit
1002  vehicle state: 1 A, 2 B, 3 C, 4 D, 5 failure (diode check, RCD)
1003  cable current limit from PP, A
1004  turn-off bits
1005  firmware revision
1006  EVSE state: 1 steady 12 V, 2 PWM on, 3 off
1007  RCD status
2000  current after boot, A (the factory "charge when plugged" setting)
2002  minimum current, A
2005  configuration bits (bit 7: currents in 0.01 A)
====  =====================================================================

How the driver uses it:

- status: one FC03 frame of 1000..1007 per poll;
- no energy: register 1000 = 0. ``open()`` writes it *before* reading
  anything else, and every poll compares 1000 with the desired value and
  rewrites it when the controller offers current it should not (a reboot
  reloads 1000 from 2000, the factory "enable on plug" value) or stopped
  offering current it should; a controller that lowered the value itself
  (cable limit) is left alone;
- ``boot_current_zero`` (default on): at setup, if 2000 is not 0 it is
  written to 0 once (an EEPROM setting, written only when it differs), so a
  controller that reboots while the agent is down cannot start charging
  before the agent allows it;
- faults: vehicle state 5 → ``ground_failure`` when the RCD status (1007) is
  set, else ``ev_communication_error`` (diode check / pilot failure); an
  unknown vehicle state → ``other_error``; Modbus exception 4 →
  ``internal_error``. Vendor codes name the register values.

*Unverified* (no datasheet at hand): the meaning of non-zero 1007 values and
whether 2000 accepts 0 (a device that refuses it is logged, not fatal).

The bus is a parameter (``hal.modbus.ModbusBus`` or anything with
``read_holding`` / ``write_registers``); it may be shared with a meter on the
same RS-485 line. Portable core (the bus adapter is the CPython part).
"""

import logging

from hal.errors import CommunicationError, HalConfigurationError
from hal.evse_common import ModbusEvseController, vendor_code
from hal.interfaces import CP_A, CP_B, CP_C, CP_D, NO_ERROR, EvseStatus

log = logging.getLogger(__name__)

REG_CURRENT = 1000
REG_ACTUAL_CURRENT = 1001
REG_VEHICLE_STATE = 1002
REG_CABLE_LIMIT = 1003
REG_TURN_OFF = 1004
REG_FIRMWARE = 1005
REG_EVSE_STATE = 1006
REG_RCD = 1007
STATUS_BLOCK = (1000, 8)

REG_BOOT_CURRENT = 2000
REG_MIN_CURRENT = 2002
REG_CONFIG = 2005
CONFIG_BLOCK = (2000, 6)
CONFIG_PRECISE_CURRENT = 0x0080  # 2005 bit 7: currents in 0.01 A

VEHICLE_STATES = {1: CP_A, 2: CP_B, 3: CP_C, 4: CP_D}
VEHICLE_FAILURE = 5
EVSE_STATE_PWM = 2
EVSE_STATE_NAMES = {1: "steady 12 V", 2: "PWM on", 3: "off"}


def decode_status(regs: list) -> EvseStatus:
    """The status that registers 1000..1007 describe (availability not applied)."""
    base = STATUS_BLOCK[0]
    vehicle, evse_state, rcd = regs[REG_VEHICLE_STATE - base], regs[REG_EVSE_STATE - base], regs[REG_RCD - base]
    if vehicle == VEHICLE_FAILURE:
        if rcd:
            return EvseStatus("E", "ground_failure", vendor_code("RCD tripped (1002=5, 1007=%d)" % rcd))
        return EvseStatus("E", "ev_communication_error", "vehicle state failure (1002=5)")
    cp = VEHICLE_STATES.get(vehicle)
    if cp is None:
        return EvseStatus("E", "other_error", vendor_code("unknown vehicle state 1002=%d" % vehicle))
    return EvseStatus(cp, NO_ERROR, pwm_on=evse_state == EVSE_STATE_PWM)


class SimpleEvseWb(ModbusEvseController):
    """A SimpleEVSE-WB / EVSE-DIN controller on ``bus`` at ``device_id``."""

    driver_name = "simpleevse_wb"

    def __init__(self, bus, device_id: int = 1, *, clock=None, poll_interval_s: float = 1.0,
                 offline_after: int = 2, max_current_a: float = 32.0, boot_current_zero: bool = True,
                 name: str | None = None) -> None:
        if isinstance(device_id, bool) or not isinstance(device_id, int) or not 1 <= device_id <= 247:
            raise HalConfigurationError("simpleevse_wb device_id must be 1..247, not %r" % (device_id,))
        super().__init__(bus, device_id, clock=clock, poll_interval_s=poll_interval_s,
                         offline_after=offline_after, max_current_a=max_current_a,
                         name=name or "simpleevse_wb@%d" % device_id)
        self.boot_current_zero = bool(boot_current_zero)
        self.scale = 1  # register units per ampere (100 with 0.01 A resolution)
        self.firmware = None
        self.registers = None  # the last 1000..1007 read

    # -- bus access (device exceptions become DeviceFaultError) ---------------------------

    async def _read(self, address: int, count: int) -> list:
        return await self._call(self.bus.read_holding(self.device_id, address, count))

    async def _write(self, address: int, value: int) -> None:
        await self._call(self.bus.write_registers(self.device_id, address, [int(value)]))

    # -- hooks ----------------------------------------------------------------------------

    def expected_register(self) -> int:
        """What register 1000 should hold now."""
        return int(self.offer_a() * self.scale)

    async def _setup(self) -> None:
        await self._write(REG_CURRENT, 0)  # first of all: no energy, whatever the factory state
        cfg = await self._read(*CONFIG_BLOCK)
        self.scale = 100 if cfg[REG_CONFIG - CONFIG_BLOCK[0]] & CONFIG_PRECISE_CURRENT else 1
        min_a = cfg[REG_MIN_CURRENT - CONFIG_BLOCK[0]]
        self.min_current_a = max(6.0, float(min_a)) if min_a <= self.max_current_a else 6.0
        boot_a = cfg[REG_BOOT_CURRENT - CONFIG_BLOCK[0]]
        if self.boot_current_zero and boot_a != 0:
            try:
                await self._write(REG_BOOT_CURRENT, 0)
                log.warning("%s: current after boot (reg 2000) was %d A: set to 0 so that the controller "
                            "cannot charge after a reboot before the agent allows it", self.name, boot_a)
            except CommunicationError as e:
                if getattr(e, "exception_code", None) is None:
                    raise
                log.warning("%s: the controller refuses 0 in reg 2000 (%s); after a reboot it offers %d A "
                            "until the agent resets register 1000", self.name, e, boot_a)
        log.info("%s: %s A resolution, minimum %.0f A", self.name, "0.01" if self.scale == 100 else "1",
                 self.min_current_a)

    async def _apply(self) -> None:
        await self._write(REG_CURRENT, self.expected_register())

    async def _poll(self) -> EvseStatus:
        before = self.expected_register()
        regs = await self._read(*STATUS_BLOCK)
        expected = self.expected_register()
        actual = regs[0]
        if (actual == 0) != (expected == 0) or actual > expected:
            if expected == before:  # else a command changed the desired value during the read: no surprise
                log.warning("%s: controller holds %d in reg 1000, expected %d (reboot or another master?): "
                            "rewriting it", self.name, actual, expected)
            await self._write(REG_CURRENT, expected)
            regs = await self._read(*STATUS_BLOCK)
        self.registers = regs
        if self.firmware != regs[REG_FIRMWARE - REG_CURRENT]:
            self.firmware = regs[REG_FIRMWARE - REG_CURRENT]
            log.info("%s: firmware %d", self.name, self.firmware)
        return self.unavailable_status(decode_status(regs))
