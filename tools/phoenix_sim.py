"""A Phoenix Contact EM-CP-PP-ETH simulator (Modbus TCP, unit 180).

Served registers (``hal/evse_phoenix.py``): input 100 (pilot state as ASCII in
the low byte), input 102..103 (charging time, s), 108..113 (voltages), 114..119
(currents, ×0.001 A), 120..121 (power, ×0.01 kW), 128..129 (energy, ×0.01 kWh;
32-bit values low word first), holding 300 (maximum current, 6..80 A), coil
400 (charging enabled). A simulated EV (``hal.sim.SimEv``): plugged in → B;
charging enabled with ≥ 6 A and the EV wanting energy → C, contactor closed,
energy counted on the injected clock.

Factory state: charging enabled (coil 400 on) at 16 A — a plugged EV charges at
once until a master switches coil 400 off; ``reboot()`` restores it.

Faults: ``fault("E")`` (pilot short / diode fault), ``fault("F")`` (controller
not available), ``clear()``; ``silent = True``; ``drop_connections()``.

Command line::

    python -m tools.phoenix_sim --tcp-port 5502   # then type help
"""

import logging
import sys
import time

from hal.sim import SimEv
from tools import sim_cli
from tools.modbus_slave import ILLEGAL_ADDRESS, ILLEGAL_FUNCTION, ILLEGAL_VALUE, ModbusSlave, SlaveDevice

log = logging.getLogger(__name__)

UNIT = 180
FACTORY_CURRENT_A = 16


def _u32_le(value: int) -> list:
    value = int(value) & 0xFFFFFFFF
    return [value & 0xFFFF, value >> 16]


class PhoenixSim(SlaveDevice):
    """The simulated controller and its EV. See the module doc."""

    def __init__(self, *, device_id: int = UNIT, clock=time.monotonic, voltage_v: float = 230.0, phases: int = 3,
                 ev: SimEv | None = None) -> None:
        self.device_id = device_id
        self.clock = clock
        self.voltage_v = voltage_v
        self.phases = phases
        self.ev = ev or SimEv()
        self.fault_kind = None
        self.enabled = True
        self.max_current_a = FACTORY_CURRENT_A
        self.energy_wh = 0.0
        self.charge_time_s = 0.0
        self.coil_writes = []  # values written to coil 400, in order
        self._last_t = clock()
        self.slave = ModbusSlave(self, device_id, name="phoenix-sim")
        self.reboot()

    # -- the controller -------------------------------------------------------------------

    @property
    def pwm_on(self) -> bool:
        return self.fault_kind is None and self.enabled and self.max_current_a >= 6

    @property
    def cp_state(self) -> str:
        if self.fault_kind is not None:
            return self.fault_kind
        return self.ev.cp_state(self.pwm_on)

    @property
    def delivering(self) -> bool:
        return self.cp_state == "C"

    @property
    def current_a(self) -> float:
        return self.ev.draw_a(self.max_current_a) if self.delivering else 0.0

    def _integrate(self) -> None:
        now = self.clock()
        dt, self._last_t = max(0.0, now - self._last_t), now
        if self.delivering:
            self.energy_wh += self.current_a * self.voltage_v * self.phases * dt / 3600.0
            self.charge_time_s += dt

    def reboot(self) -> None:
        """Power cycle: back to the factory state (charging enabled at 16 A)."""
        self._integrate()
        self.enabled = True
        self.max_current_a = FACTORY_CURRENT_A

    def inputs(self) -> dict:
        self._integrate()
        i = self.current_a
        regs = {100: ord(self.cp_state), 101: 0}
        regs.update(zip((102, 103), _u32_le(self.charge_time_s)))
        for n in range(3):
            on = n < self.phases
            regs.update(zip((108 + 2 * n, 109 + 2 * n), _u32_le(self.voltage_v * 100 if on else 0)))
            regs.update(zip((114 + 2 * n, 115 + 2 * n), _u32_le(i * 1000 if on else 0)))
        regs.update(zip((120, 121), _u32_le(i * self.voltage_v * self.phases / 10.0)))
        regs.update(zip((128, 129), _u32_le(self.energy_wh / 10.0)))
        return regs

    # -- the EV and faults ----------------------------------------------------------------

    def plug(self) -> None:
        self._integrate()
        self.ev.plug()

    def unplug(self) -> None:
        self._integrate()
        self.ev.unplug()

    def ev_full(self, full: bool = True) -> None:
        self._integrate()
        self.ev.full = bool(full)

    def fault(self, kind: str) -> None:
        kind = kind.upper()
        if kind not in ("E", "F"):
            raise ValueError("fault must be E or F")
        self._integrate()
        self.fault_kind = kind

    def clear(self) -> None:
        self._integrate()
        self.fault_kind = None

    def status(self) -> dict:
        self._integrate()
        return {"cp": self.cp_state, "enabled": self.enabled, "max_current_a": self.max_current_a,
                "delivering": self.delivering, "energy_wh": round(self.energy_wh, 3), "fault": self.fault_kind,
                "silent": self.silent}

    # -- Modbus model ---------------------------------------------------------------------

    def read(self, function: int, address: int, count: int):
        if function == 1:
            if address != 400 or count != 1:
                return ILLEGAL_ADDRESS
            return [self.enabled]
        if function == 3:
            if address != 300 or count != 1:
                return ILLEGAL_ADDRESS
            return [self.max_current_a]
        if function == 4:
            regs = self.inputs()
            if any(a not in regs for a in range(address, address + count)):
                return ILLEGAL_ADDRESS
            return [regs[a] for a in range(address, address + count)]
        return ILLEGAL_FUNCTION

    def write(self, function: int, address: int, values: list):
        self._integrate()
        if function in (5, 15):
            if address != 400 or len(values) != 1:
                return ILLEGAL_ADDRESS
            self.enabled = bool(values[0])
            self.coil_writes.append(self.enabled)
            return None
        if function in (6, 16):
            if address != 300 or len(values) != 1:
                return ILLEGAL_ADDRESS
            if not 6 <= values[0] <= 80:
                return ILLEGAL_VALUE
            self.max_current_a = values[0]
            return None
        return ILLEGAL_FUNCTION


def _parse(argv):
    p = sim_cli.new_parser("tools.phoenix_sim", __doc__)
    p.add_argument("--tcp-port", type=int, default=5502, help="Modbus TCP port (0: any free port)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--unit", type=int, default=UNIT)
    return sim_cli.parse(p, argv)


async def _main(args) -> None:
    sim = PhoenixSim(device_id=args.unit)
    port = await sim.start_tcp(args.host, args.tcp_port)
    print("EM-CP-PP-ETH simulator, unit %d: Modbus TCP %s:%d (type help)" % (args.unit, args.host, port), flush=True)
    await sim_cli.serve_console(sim)


def main(argv=None) -> int:
    return sim_cli.run(argv, _parse, _main)


if __name__ == "__main__":
    sys.exit(main())
