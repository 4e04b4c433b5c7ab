"""Phoenix Contact EM-CP-PP-ETH charge controller over Modbus TCP (unit 180).

Registers used (``../shared/HARDWARE.md``; the map evcc's ``phoenix-em-eth`` uses):

=========  ======================================================================
input 100  control pilot state, ASCII ``'A'``…``'F'`` in the low byte
hold  300  maximum charging current, A (whole amperes)
coil  400  charging enabled
=========  ======================================================================

- no energy: coil 400 off. ``open()`` switches it off before reading
  anything; every poll compares coil and current with the desired state and
  corrects a controller that enables itself (its factory default after a
  reboot) or offers more than it should;
- an offer: holding 300 = the offer rounded down to whole amperes (never more
  than allowed), then coil 400 on;
- pilot E → ``ev_communication_error`` (pilot short or diode fault); pilot F
  while charging is enabled → ``other_error`` (the controller says the EVSE is
  not available); any other byte → ``other_error``; Modbus exception 4 →
  ``internal_error``.

*Unverified*: whether the controller reports F (rather than A/B) while coil
400 is off; this driver does not treat F as a fault in that case.

The bus is a parameter (``hal.modbus.ModbusBus``: ``read_input``,
``read_holding``, ``read_coils``, ``write_register``, ``write_coil``).
Portable core.
"""

import logging

from hal.errors import HalConfigurationError
from hal.evse_common import ModbusEvseController, vendor_code
from hal.interfaces import CP_STATES, NO_ERROR, EvseStatus

log = logging.getLogger(__name__)

REG_CP_STATE = 100  # input register
REG_MAX_CURRENT = 300  # holding register
COIL_ENABLE = 400
DEFAULT_UNIT = 180


def decode_cp(register: int, enabled: bool) -> EvseStatus:
    """The status that input register 100 describes, with charging ``enabled`` (coil 400)."""
    low = register & 0xFF
    cp = chr(low) if 0x20 < low < 0x7F else ""
    if cp not in CP_STATES:
        return EvseStatus("E", "other_error", vendor_code("unknown CP state 0x%04X (reg 100)" % register))
    if cp == "E":
        return EvseStatus("E", "ev_communication_error", "CP state E (pilot short or diode fault)")
    if cp == "F" and enabled:
        return EvseStatus("F", "other_error", "CP state F while enabled (EVSE not available)")
    return EvseStatus(cp, NO_ERROR, pwm_on=enabled and cp in ("B", "C", "D"))


class PhoenixEmCpPpEth(ModbusEvseController):
    """An EM-CP-PP-ETH controller on ``bus`` at ``device_id`` (Modbus unit, default 180)."""

    driver_name = "phoenix_em_cp_pp_eth"

    def __init__(self, bus, device_id: int = DEFAULT_UNIT, *, clock=None, poll_interval_s: float = 1.0,
                 offline_after: int = 2, max_current_a: float = 32.0, name: str | None = None) -> None:
        if isinstance(device_id, bool) or not isinstance(device_id, int) or not 0 <= device_id <= 255:
            raise HalConfigurationError("phoenix_em_cp_pp_eth device_id must be 0..255, not %r" % (device_id,))
        super().__init__(bus, device_id, clock=clock, poll_interval_s=poll_interval_s, offline_after=offline_after,
                         max_current_a=max_current_a, name=name or "phoenix_em_cp_pp_eth@%d" % device_id)
        self.enabled = None  # coil 400 as last read
        self.max_current_register = None  # holding 300 as last read

    def expected_amps(self) -> int:
        """Holding 300 while offering: whole amperes, rounded down."""
        return int(self.offer_a())

    async def _setup(self) -> None:
        await self._call(self.bus.write_coil(self.device_id, COIL_ENABLE, False))  # first: no energy
        self.enabled = False

    async def _apply(self) -> None:
        amps = self.expected_amps()
        if amps > 0:
            await self._call(self.bus.write_register(self.device_id, REG_MAX_CURRENT, amps))
            self.max_current_register = amps
        await self._call(self.bus.write_coil(self.device_id, COIL_ENABLE, amps > 0))
        self.enabled = amps > 0

    async def _poll(self) -> EvseStatus:
        amps = self.expected_amps()
        enabled = (await self._call(self.bus.read_coils(self.device_id, COIL_ENABLE, 1)))[0]
        current = (await self._call(self.bus.read_holding(self.device_id, REG_MAX_CURRENT, 1)))[0]
        if enabled != (amps > 0) or (amps > 0 and current > amps):
            log.warning("%s: controller has charging %s at %d A, expected %s (reboot or another master?): "
                        "correcting it", self.name, "enabled" if enabled else "disabled", current,
                        "%d A" % amps if amps else "disabled")
            await self._apply()
            enabled, current = amps > 0, amps if amps > 0 else current
        self.enabled, self.max_current_register = enabled, current
        cp = (await self._call(self.bus.read_input(self.device_id, REG_CP_STATE, 1)))[0]
        return self.unavailable_status(decode_cp(cp, enabled))
