"""A Modbus energy meter simulator for any mapped meter (HIL benches and tests).

It serves the register map of ``hal/meters/<meter>.toml`` (the same data the
driver reads) from a settable load: phase voltages, phase currents, total
power and frequency; the import energy register integrates power over time.
It runs on pymodbus's own server classes, over Modbus TCP or over Modbus RTU
on a serial port, typically one end of a ``tools.pty_link.PtyLink``.

Command line::

    python -m tools.modbus_meter_sim --meter sdm630 --tcp-port 5020
    python -m tools.modbus_meter_sim --meter orno_we516 --pty [--baud 9600] [--pace]
    python -m tools.modbus_meter_sim --meter sdm630 --serial /dev/ttyUSB1 --baud 9600 --parity N

With ``--pty`` it prints the pseudo-terminal the driver should open.

In-process (tests)::

    sim = ModbusMeterSim("sdm630", device_id=1)
    sim.set_load(current_a=16.0)              # 16 A on each phase at 230 V
    port = await sim.start_tcp()              # 127.0.0.1, a free port
    path = await sim.start_pty(baudrate=9600) # or: an RTU link on a pty pair
    ...
    sim.requests          # [(function, address, count)] of every request served
    sim.silent = True     # stop answering (the driver times out)
    sim.set_energy_wh(0)  # make the register jump (e.g. backwards)
    await sim.stop()

Like a real meter, it answers only its own device id (other ids: silence),
answers a read outside its map with exception 2 (illegal data address) unless
the map allows reading across gaps (``max_gap``) or ``strict=False``, and
refuses writes.
"""

import asyncio
import logging
import sys
import time

from hal.modbus_meter import QUANTITIES, RegisterMap, load_register_map, plan_blocks
from tools import sim_cli

log = logging.getLogger(__name__)


class MeterLoad:
    """The electrical state the simulated meter measures."""

    def __init__(self, phases: int = 3) -> None:
        self.phases = phases
        self.voltage_v = [230.0] * 3
        self.current_a = [0.0] * 3
        self.power_w = 0.0
        self.frequency_hz = 50.0

    def set(self, *, power_w=None, current_a=None, voltage_v=None, frequency_hz=None) -> None:
        """Set any of the values; the others follow at power factor 1.

        ``current_a`` / ``voltage_v``: one number for every phase or a sequence
        of three. Given currents without power: power = Σ V·I. Given power
        without currents: the current is spread evenly over the phases.
        """
        if voltage_v is not None:
            self.voltage_v = _three(voltage_v)
        if frequency_hz is not None:
            self.frequency_hz = float(frequency_hz)
        if current_a is not None:
            self.current_a = _three(current_a)
            for i in range(self.phases, 3):
                self.current_a[i] = 0.0
        if power_w is not None:
            self.power_w = float(power_w)
            if current_a is None:
                volts = sum(self.voltage_v[:self.phases]) or 1.0
                self.current_a = [self.power_w / volts if i < self.phases else 0.0 for i in range(3)]
        elif current_a is not None or voltage_v is not None:
            self.power_w = sum(self.voltage_v[i] * self.current_a[i] for i in range(self.phases))

    def value(self, quantity: str, energy_wh: float) -> float:
        field, phase = QUANTITIES[quantity][0], QUANTITIES[quantity][1]
        if field == "energy_wh":
            return energy_wh
        if field == "power_w":
            return self.power_w
        if field == "frequency_hz":
            return self.frequency_hz
        if field == "current_a":
            return self.current_a[phase]
        return self.voltage_v[phase] if phase < self.phases else 0.0


def _three(v) -> list:
    if isinstance(v, (int, float)):
        return [float(v)] * 3
    v = [float(x) for x in v]
    if len(v) != 3:
        raise ValueError("give one value or three (L1, L2, L3)")
    return v


class ModbusMeterSim(sim_cli.StopOnExit):
    """A simulated meter serving ``meter``'s register map. See the module doc."""

    def __init__(self, meter: str | RegisterMap = "sdm630", *, device_id: int | None = None,
                 clock=time.monotonic, energy_wh: float = 0.0, speed: float = 1.0,
                 strict: bool = True, turnaround_s: float = 0.0) -> None:
        self.map = meter if isinstance(meter, RegisterMap) else load_register_map(meter)
        self.device_id = device_id if device_id is not None else self.map.defaults.get("device_id", 1)
        self.clock = clock
        self.speed = speed
        self.strict = strict
        self.turnaround_s = turnaround_s
        self.load = MeterLoad(self.map.phases or 1)
        self.silent = False
        self.requests = []  # (function, address, count) of each request answered or refused
        self._energy_wh = float(energy_wh)
        self._last_t = clock()
        self._server = None
        self._link = None
        self._for_me = True
        self._check_map()
        # What the meter lets a master read: its blocks, bridged as the map allows.
        self._readable = [(b.function, b.address, b.address + b.count) for b in self.map.blocks]

    def _check_map(self) -> None:
        by_addr = {}
        for s in self.map.registers.values():
            for a in range(s.address, s.end):
                if by_addr.setdefault(a, s.function) != s.function:
                    raise ValueError("%s: FC03 and FC04 registers share address %d; the simulator "
                                     "serves one register space" % (self.map.name, a))

    # -- the load -------------------------------------------------------------------------

    def set_load(self, **kw) -> None:
        """``power_w``, ``current_a``, ``voltage_v``, ``frequency_hz``: see ``MeterLoad.set``."""
        self._integrate()
        self.load.set(**kw)

    @property
    def energy_wh(self) -> float:
        self._integrate()
        return self._energy_wh

    def set_energy_wh(self, energy_wh: float) -> None:
        """Set the import register (a replaced or faulty meter may jump, even backwards)."""
        self._integrate()
        self._energy_wh = float(energy_wh)

    def _integrate(self) -> None:
        now = self.clock()
        dt = max(0.0, now - self._last_t)
        self._last_t = now
        if self.load.power_w > 0:
            self._energy_wh += self.load.power_w * dt * self.speed / 3600.0

    def register_values(self) -> dict:
        """{address: register value} of every mapped register, as of now."""
        energy = self.energy_wh
        out = {}
        for s in self.map.registers.values():
            for i, r in enumerate(s.encode(self.load.value(s.quantity, energy))):
                out[s.address + i] = r
        return out

    @property
    def frames(self) -> int:
        return len(self.requests)

    # -- pymodbus server ------------------------------------------------------------------

    def _device(self):
        from pymodbus.simulator import DataType, SimData, SimDevice

        lo = min(s.address for s in self.map.registers.values())
        hi = max(s.end for s in self.map.registers.values())
        me = SimDevice(self.device_id, simdata=[SimData(lo, count=hi - lo, values=0, datatype=DataType.REGISTERS)],
                       action=self._action)
        # Id 0 catches requests for other ids (its answers are silenced in _trace_packet),
        # so that a request to an absent device is silence, as on a real line.
        others = SimDevice(0, simdata=[SimData(0, count=1, values=0, datatype=DataType.REGISTERS)])
        return [me, others]

    async def _action(self, function, start_address, address, count, registers, values):
        from pymodbus.constants import ExcCodes

        self.requests.append((function, address, count))
        if self.turnaround_s:
            await asyncio.sleep(self.turnaround_s)
        if values is not None or function not in (3, 4):
            return ExcCodes.ILLEGAL_FUNCTION  # a meter's measurements are read-only
        end = address + count
        if self.strict and not any(f == function and a <= address and end <= e for f, a, e in self._readable):
            return ExcCodes.ILLEGAL_ADDRESS
        if not any(s.function == function and s.address < end and address < s.end
                   for s in self.map.registers.values()):
            return ExcCodes.ILLEGAL_ADDRESS
        for a, v in self.register_values().items():
            registers[a - start_address] = v
        return None

    def _trace_pdu(self, sending: bool, pdu):
        if not sending:
            self._for_me = pdu.dev_id == self.device_id  # a meter ignores broadcasts
        return pdu

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        if sending and (self.silent or not self._for_me):
            return b""  # silence: the master times out
        return data

    async def start_tcp(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Serve Modbus TCP; returns the port (a free one when ``port`` is 0)."""
        from pymodbus.server import ModbusTcpServer

        server = ModbusTcpServer(self._device(), address=(host, port), trace_pdu=self._trace_pdu,
                                 trace_packet=self._trace_packet)
        await server.serve_forever(background=True)
        self._server = server
        sock = server.transport.sockets[0]
        return sock.getsockname()[1]

    async def start_rtu(self, port: str, *, baudrate: int | None = None, parity: str | None = None,
                        stopbits: int | None = None) -> None:
        """Serve Modbus RTU on a serial port (the map's serial defaults unless given)."""
        from pymodbus.framer import FramerType
        from pymodbus.server import ModbusSerialServer

        d = self.map.defaults
        server = ModbusSerialServer(
            self._device(), framer=FramerType.RTU, port=port,
            baudrate=baudrate or d.get("baudrate", 9600), parity=parity or d.get("parity", "N"),
            stopbits=stopbits or d.get("stopbits", 1), trace_pdu=self._trace_pdu,
            trace_packet=self._trace_packet, reconnect_delay=0)
        await server.serve_forever(background=True)
        self._server = server

    async def start_pty(self, *, baudrate: int | None = None, pace: bool = False, char_bits: int | None = None):
        """Serve Modbus RTU on a ``PtyLink``; returns the link (``link.a_path`` is the
        driver's port, to be opened without parity: ptys refuse it). ``pace``: the wire
        runs at ``baudrate`` (bench timing)."""
        from hal.modbus import bits_per_char

        d = self.map.defaults
        baudrate = baudrate or d.get("baudrate", 9600)
        if char_bits is None:
            char_bits = bits_per_char(8, d.get("parity", "N"), d.get("stopbits", 1))
        # A pty cannot do parity (tcsetattr refuses PARENB): 8E1 meters run 8N1 on it,
        # and the link's char_bits keeps the 11-bit character timing.
        link = await sim_cli.start_on_pty(lambda path: self.start_rtu(path, baudrate=baudrate, parity="N"),
                                          baudrate=baudrate if pace else None, char_bits=char_bits)
        self._link = link
        return link

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()
            await asyncio.sleep(0)
        link, self._link = self._link, None
        if link is not None:
            await link.close()


def _parse(argv):
    from hal.modbus_meter import meter_names

    p = sim_cli.new_parser("tools.modbus_meter_sim", __doc__)
    p.add_argument("--meter", default="sdm630", help="meter map: %s, or a .toml path" % ", ".join(meter_names()))
    p.add_argument("--device-id", type=int, default=None, help="Modbus device id (default: the map's)")
    sim_cli.add_transports(p, tcp="Modbus TCP", pty="Modbus RTU", serial="Modbus RTU")
    p.add_argument("--host", default="127.0.0.1", help="TCP address to bind (default 127.0.0.1)")
    p.add_argument("--baud", type=int, default=None, help="RTU baud rate (default: the map's)")
    p.add_argument("--parity", choices="NEO", default=None, help="RTU parity (default: the map's)")
    p.add_argument("--pace", action="store_true", help="--pty: pace the wire at the baud rate")
    p.add_argument("--current", type=float, default=16.0, help="load current per phase, A (default 16)")
    p.add_argument("--voltage", type=float, default=230.0, help="phase voltage, V (default 230)")
    p.add_argument("--energy-kwh", type=float, default=0.0, help="initial import register, kWh")
    p.add_argument("--speed", type=float, default=1.0, help="energy time compression (60: a minute per second)")
    return sim_cli.parse(p, argv)


async def _main(args) -> None:
    sim = ModbusMeterSim(args.meter, device_id=args.device_id, energy_wh=args.energy_kwh * 1000, speed=args.speed)
    sim.set_load(current_a=args.current, voltage_v=args.voltage)
    if args.tcp_port is not None:
        port = await sim.start_tcp(args.host, args.tcp_port)
        where = "Modbus TCP %s:%d" % (args.host, port)
    elif args.pty:
        link = await sim.start_pty(baudrate=args.baud, pace=args.pace)
        where = "Modbus RTU on %s at %d 8N1 (a pty cannot do parity)" % (
            link.a_path, args.baud or sim.map.defaults.get("baudrate", 9600))
    else:
        await sim.start_rtu(args.serial, baudrate=args.baud, parity=args.parity)
        where = "Modbus RTU on %s" % args.serial
    print("%s simulator, device id %d: %s (%.1f W, Ctrl-C to stop)"
          % (sim.map.model, sim.device_id, where, sim.load.power_w), flush=True)
    await sim_cli.until_stopped(sim, _log_progress(sim))


async def _log_progress(sim) -> None:
    while True:
        await asyncio.sleep(10)
        log.info("energy %.3f kWh, %d requests", sim.energy_wh / 1000, sim.frames)


def main(argv=None) -> int:
    return sim_cli.run(argv, _parse, _main)


if __name__ == "__main__":
    sys.exit(main())
