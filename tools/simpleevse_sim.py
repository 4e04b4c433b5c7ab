"""A SimpleEVSE-WB / EVSE-DIN simulator (Modbus RTU on a pseudo-terminal, or TCP).

It serves the controller's holding registers (``hal/evse_simpleevse.py``):
1000..1007 (configured and actual current, vehicle state, cable limit,
turn-off bits, firmware, EVSE state, RCD status) and 2000..2017 (settings),
with a simulated EV (``hal.sim.SimEv``): plugged in → state B; current offered
(PWM on, i.e. 1000 at or above the minimum) and the EV wanting energy → C, and
the controller closes its contactor (``delivering``).

Factory state, as shipped: "charge on plug" — register 2000 (current after
boot, default 16 A) is loaded into 1000 at power-up, so a plugged EV is
offered current at once until a master writes 1000 = 0.

Faults: ``fault("rcd")`` (vehicle state 5, RCD status 1), ``fault("diode")``
(vehicle state 5), ``clear()``; ``silent = True`` (no answers),
``device_failure = True`` (Modbus exception 4 to every request), ``reboot()``
(1000 reloaded from 2000).

Command line (a console on stdin drives the EV and the faults)::

    python -m tools.simpleevse_sim --pty [--device-id 1] [--baud 9600]
    python -m tools.simpleevse_sim --tcp-port 5020
    python -m tools.simpleevse_sim --serial /dev/ttyUSB1

In-process::

    sim = SimpleEvseSim()
    link = await sim.start_pty()          # the driver opens link.a_path at 9600 8N1
    sim.plug(); sim.fault("rcd"); sim.clear(); sim.silent = True
    await sim.stop()
"""

import logging
import sys

from hal.sim import SimEv
from tools import sim_cli
from tools.modbus_slave import (DEVICE_FAILURE, ILLEGAL_ADDRESS, ILLEGAL_FUNCTION, ILLEGAL_VALUE, ModbusSlave,
                                SlaveDevice)

log = logging.getLogger(__name__)

FIRMWARE = 17
FAULTS = ("rcd", "diode")


class SimpleEvseSim(SlaveDevice):
    """The simulated controller and its EV. See the module doc."""

    def __init__(self, *, device_id: int = 1, boot_current_a: int = 16, min_current_a: int = 5,
                 max_current_a: int = 80, cable_limit_a: int = 32, precise: bool = False,
                 ev: SimEv | None = None) -> None:
        self.device_id = device_id
        self.min_current_a = min_current_a
        self.max_current_a = max_current_a
        self.cable_limit_a = cable_limit_a
        self.ev = ev or SimEv()
        self.settings = [0] * 18  # 2000..2017
        self.settings[0] = boot_current_a
        self.settings[2] = min_current_a
        self.settings[5] = 0x0080 if precise else 0
        self.turn_off = 0
        self.fault_kind = None
        self.device_failure = False  # answer every request with Modbus exception 4
        self.configured = 0
        self.writes = []  # (address, value) of every register written
        self.slave = ModbusSlave(self, device_id, name="simpleevse-sim")
        self.reboot()

    # -- the controller -------------------------------------------------------------------

    @property
    def scale(self) -> int:
        return 100 if self.settings[5] & 0x0080 else 1

    @property
    def configured_a(self) -> float:
        return self.configured / self.scale

    @property
    def pwm_on(self) -> bool:
        return (self.fault_kind is None and not self.turn_off and self.configured > 0
                and self.configured_a >= self.min_current_a)

    @property
    def vehicle_state(self) -> int:
        if self.fault_kind is not None:
            return 5
        return {"A": 1, "B": 2, "C": 3}[self.ev.cp_state(self.pwm_on)]

    @property
    def delivering(self) -> bool:
        """The controller's contactor is closed: the EV charges."""
        return self.vehicle_state == 3

    @property
    def evse_state(self) -> int:
        if self.turn_off:
            return 3
        return 2 if self.pwm_on else 1

    def registers(self) -> dict:
        regs = {
            1000: self.configured,
            1001: self.configured if self.pwm_on else 0,
            1002: self.vehicle_state,
            1003: self.cable_limit_a if self.ev.plugged else 0,
            1004: self.turn_off,
            1005: FIRMWARE,
            1006: self.evse_state,
            1007: 1 if self.fault_kind == "rcd" else 0,
        }
        for i, v in enumerate(self.settings):
            regs[2000 + i] = v
        return regs

    def reboot(self) -> None:
        """Power cycle: 1000 is loaded from 2000 (the factory "charge on plug")."""
        self.configured = self.settings[0] * self.scale
        self.turn_off = 0

    # -- the EV and faults ----------------------------------------------------------------

    def plug(self) -> None:
        self.ev.plug()

    def unplug(self) -> None:
        self.ev.unplug()

    def ev_full(self, full: bool = True) -> None:
        self.ev.full = bool(full)

    def fault(self, kind: str) -> None:
        if kind not in FAULTS:
            raise ValueError("fault must be one of %s" % ", ".join(FAULTS))
        self.fault_kind = kind

    def clear(self) -> None:
        self.fault_kind = None

    def status(self) -> dict:
        return {"cp": self.ev.cp_state(self.pwm_on), "vehicle_state": self.vehicle_state,
                "configured_a": self.configured_a, "pwm_on": self.pwm_on, "delivering": self.delivering,
                "fault": self.fault_kind, "silent": self.silent, "boot_current_a": self.settings[0]}

    # -- Modbus model ---------------------------------------------------------------------

    def read(self, function: int, address: int, count: int):
        if self.device_failure:
            return DEVICE_FAILURE
        if function != 3:
            return ILLEGAL_FUNCTION
        regs = self.registers()
        if any(a not in regs for a in range(address, address + count)):
            return ILLEGAL_ADDRESS
        return [regs[a] for a in range(address, address + count)]

    def write(self, function: int, address: int, values: list):
        if self.device_failure:
            return DEVICE_FAILURE
        if function not in (6, 16):
            return ILLEGAL_FUNCTION
        for i, value in enumerate(values):
            a = address + i
            if a == 1000:
                if value != 0 and not self.min_current_a * self.scale <= value <= self.max_current_a * self.scale:
                    return ILLEGAL_VALUE
            elif a == 1004:
                if value > 0xFF:
                    return ILLEGAL_VALUE
            elif 2000 <= a <= 2017:
                if a == 2000 and value > self.max_current_a * self.scale:
                    return ILLEGAL_VALUE
            else:
                return ILLEGAL_ADDRESS
        for i, value in enumerate(values):
            a = address + i
            self.writes.append((a, value))
            if a == 1000:
                self.configured = value
            elif a == 1004:
                self.turn_off = value & 1
            else:
                self.settings[a - 2000] = value
        return None


def _parse(argv):
    p = sim_cli.new_parser("tools.simpleevse_sim", __doc__)
    sim_cli.add_transports(p, pty="Modbus RTU", serial="Modbus RTU", tcp="Modbus TCP")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--device-id", type=int, default=1)
    p.add_argument("--baud", type=int, default=9600)
    p.add_argument("--boot-current", type=int, default=16, help="register 2000, A (0: no charge on plug)")
    return sim_cli.parse(p, argv)


async def _main(args) -> None:
    sim = SimpleEvseSim(device_id=args.device_id, boot_current_a=args.boot_current)
    if args.pty:
        link = await sim.start_pty(baudrate=args.baud)
        where = "Modbus RTU on %s at %d 8N1" % (link.a_path, args.baud)
    elif args.serial:
        await sim.start_serial(args.serial, baudrate=args.baud)
        where = "Modbus RTU on %s at %d 8N1" % (args.serial, args.baud)
    else:
        port = await sim.start_tcp(args.host, args.tcp_port)
        where = "Modbus TCP %s:%d" % (args.host, port)
    print("SimpleEVSE-WB simulator, device id %d: %s (type help)" % (args.device_id, where), flush=True)
    await sim_cli.serve_console(sim)


def main(argv=None) -> int:
    return sim_cli.run(argv, _parse, _main)


if __name__ == "__main__":
    sys.exit(main())
