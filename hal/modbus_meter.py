"""Modbus energy meters driven by register maps that are data (``hal/meters/*.toml``).

A register map names, for each quantity a charger needs, where the meter keeps
it: function code (3 holding, 4 input), 0-based address, type (``float32``,
``int16``/``uint16``, ``int32``/``uint32``, ``int64``/``uint64``), word order
(``big`` = high word first), scale and unit. ``ModbusMeter`` plans the reads
once: registers of one function code that are contiguous (or separated by at
most the map's ``max_gap`` registers, for meters that accept reads across
unused registers) go into one frame of at most ``max_registers``. Adding a
meter is adding a data file.

Portable core: decoding uses ``struct`` and plain integers only, and
``tomllib`` is used only by ``load_register_map``, through
``hal.data_file`` (a MicroPython port ships the maps as JSON and calls
``RegisterMap.from_dict``). The bus is a
parameter: anything with ``read(function, device_id, address, count)``
returning a list of register values (``hal.modbus.ModbusBus``, or a fake).

Values are never made up: a failed read raises ``CommunicationError``; a value
the meter marks as not available (NaN, or the all-ones pattern of ABB meters
with ``missing_when_max``) is ``None``; an import energy register lower than
one already seen is reported as ``None`` (and logged), never as a value that
goes backwards.
"""

import logging
import os
import struct

from hal.errors import CommunicationError, HalConfigurationError
from hal.interfaces import Meter, MeterReading

log = logging.getLogger(__name__)

METER_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "meters")

# Quantity name → (MeterReading field, phase index or None, canonical unit, OCPP measurand, OCPP phase).
QUANTITIES = {
    "energy_import": ("energy_wh", None, "Wh", "Energy.Active.Import.Register", None),
    "power": ("power_w", None, "W", "Power.Active.Import", None),
    "current_l1": ("current_a", 0, "A", "Current.Import", "L1"),
    "current_l2": ("current_a", 1, "A", "Current.Import", "L2"),
    "current_l3": ("current_a", 2, "A", "Current.Import", "L3"),
    "voltage_l1": ("voltage_v", 0, "V", "Voltage", "L1-N"),
    "voltage_l2": ("voltage_v", 1, "V", "Voltage", "L2-N"),
    "voltage_l3": ("voltage_v", 2, "V", "Voltage", "L3-N"),
    "frequency": ("frequency_hz", None, "Hz", "Frequency", None),
}

# Unit written in a map → (canonical unit, factor to it).
UNITS = {
    "Wh": ("Wh", 1.0), "kWh": ("Wh", 1000.0),
    "W": ("W", 1.0), "kW": ("W", 1000.0),
    "A": ("A", 1.0), "mA": ("A", 0.001),
    "V": ("V", 1.0),
    "Hz": ("Hz", 1.0),
}

# Type → (registers, signed, float).
TYPES = {
    "float32": (2, True, True),
    "int16": (1, True, False), "uint16": (1, False, False),
    "int32": (2, True, False), "uint32": (2, False, False),
    "int64": (4, True, False), "uint64": (4, False, False),
}
WORD_ORDERS = ("big", "little")
FUNCTIONS = (3, 4)
MAX_REGISTERS = 125


def decode(regs, type_: str, word_order: str = "big", missing_when_max: bool = False):
    """The number held in ``regs`` (16-bit words), or None if the meter marks it not available.

    ``word_order`` "big": the first register holds the most significant word.
    """
    words = list(regs) if word_order == "big" else list(reversed(regs))
    nregs, signed, is_float = TYPES[type_]
    if is_float:
        value = struct.unpack(">f", struct.pack(">HH", words[0], words[1]))[0]
        if value != value or value in (float("inf"), float("-inf")):
            return None  # NaN or infinite: not available
        return _shortest_float32(value)
    raw = 0
    for w in words:
        raw = (raw << 16) | (w & 0xFFFF)
    bits = 16 * nregs
    if missing_when_max:
        full = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
        if raw == full:
            return None
    if signed and raw >= 1 << (bits - 1):
        raw -= 1 << bits
    return raw


def _shortest_float32(value: float) -> float:
    """The shortest decimal that is the same float32 (0.01 kWh reads as 0.01, not as
    0.009999999776): the meter's value without the binary noise of widening it."""
    packed = struct.pack(">f", value)
    for digits in (6, 7, 8):
        short = float("%.*g" % (digits, value))
        if struct.pack(">f", short) == packed:
            return short
    return value


def encode(value, type_: str, word_order: str = "big") -> list:
    """The registers that hold ``value`` (the inverse of ``decode``; used by simulators)."""
    nregs, signed, is_float = TYPES[type_]
    if is_float:
        hi, lo = struct.unpack(">HH", struct.pack(">f", value))
        words = [hi, lo]
    else:
        raw = int(round(value))
        bits = 16 * nregs
        low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        raw = min(max(raw, low), high)
        raw &= (1 << bits) - 1
        words = [(raw >> (16 * (nregs - 1 - i))) & 0xFFFF for i in range(nregs)]
    return words if word_order == "big" else list(reversed(words))


class RegisterSpec:
    """Where one quantity lives in a meter and how to turn its registers into canonical units."""

    __slots__ = ("quantity", "function", "address", "type", "word_order", "scale", "unit",
                 "count", "factor", "missing_when_max")

    def __init__(self, quantity: str, function: int, address: int, type_: str, word_order: str,
                 scale: float, unit: str, missing_when_max: bool = False) -> None:
        self.quantity = quantity
        self.function = function
        self.address = address
        self.type = type_
        self.word_order = word_order
        self.scale = scale
        self.unit = unit
        self.count = TYPES[type_][0]
        self.factor = scale * UNITS[unit][1]
        self.missing_when_max = missing_when_max

    @property
    def end(self) -> int:
        return self.address + self.count

    def decode(self, regs):
        raw = decode(regs, self.type, self.word_order, self.missing_when_max)
        return None if raw is None else raw * self.factor

    def encode(self, value: float) -> list:
        """Registers that decode to ``value`` (canonical units), for simulators."""
        return encode(value / self.factor, self.type, self.word_order)

    def __repr__(self) -> str:
        return "RegisterSpec(%s FC%02d 0x%04X %s %s ×%g %s)" % (
            self.quantity, self.function, self.address, self.type, self.word_order, self.scale, self.unit)


class Block:
    """One read frame: ``count`` registers of ``function`` from ``address``, holding ``specs``."""

    __slots__ = ("function", "address", "count", "specs")

    def __init__(self, function: int, address: int, count: int, specs: list) -> None:
        self.function = function
        self.address = address
        self.count = count
        self.specs = specs

    def __repr__(self) -> str:
        return "Block(FC%02d 0x%04X+%d: %s)" % (self.function, self.address, self.count,
                                                 ", ".join(s.quantity for s in self.specs))


def plan_blocks(specs, max_gap: int = 0, max_registers: int = MAX_REGISTERS) -> list:
    """Group registers into as few read frames as the rules allow.

    Registers of one function code are merged into a block while the gap
    between them is at most ``max_gap`` registers and the block stays within
    ``max_registers``. Overlapping registers are a map error.
    """
    blocks = []
    for function in FUNCTIONS:
        group = sorted((s for s in specs if s.function == function), key=lambda s: s.address)
        current = None
        for s in group:
            if current is not None:
                end = current.address + current.count
                if s.address < end:
                    raise HalConfigurationError("registers %s and %s overlap" % (current.specs[-1].quantity, s.quantity))
                if s.address - end <= max_gap and s.end - current.address <= max_registers:
                    current.count = s.end - current.address
                    current.specs.append(s)
                    continue
            current = Block(function, s.address, s.count, [s])
            blocks.append(current)
    return blocks


class RegisterMap:
    """A meter model's register map, from a data file. See ``hal/meters/README.md``."""

    def __init__(self, name: str, model: str, registers: dict, *, max_gap: int = 0,
                 max_registers: int = MAX_REGISTERS, defaults: dict | None = None,
                 verified: bool = True) -> None:
        self.name = name
        self.model = model
        self.registers = registers  # quantity → RegisterSpec
        self.max_gap = max_gap
        self.max_registers = max_registers
        self.defaults = defaults or {}
        self.verified = verified
        self.blocks = plan_blocks(list(registers.values()), max_gap, max_registers)

    @property
    def phases(self) -> int:
        return sum(1 for q in ("current_l1", "current_l2", "current_l3") if q in self.registers)

    @classmethod
    def from_dict(cls, data: dict, name: str = "") -> "RegisterMap":
        """Build and validate a map from the parsed data file."""
        where = name or data.get("model", "register map")

        def fail(msg):
            raise HalConfigurationError("%s: %s" % (where, msg))

        known = ("model", "function", "type", "word_order", "scale", "missing_when_max", "max_gap",
                 "max_registers", "registers", "serial", "verified", "notes")
        for k in data:
            if k not in known:
                fail("unknown key %r (known: %s)" % (k, ", ".join(known)))
        base = {
            "function": data.get("function", 4), "type": data.get("type", "float32"),
            "word_order": data.get("word_order", "big"), "scale": data.get("scale", 1.0),
            "missing_when_max": data.get("missing_when_max", False),
        }
        regs = data.get("registers")
        if not isinstance(regs, dict) or not regs:
            fail("no [registers] table")
        specs = {}
        for quantity, r in regs.items():
            if quantity not in QUANTITIES:
                fail("unknown quantity %r (known: %s)" % (quantity, ", ".join(QUANTITIES)))
            if isinstance(r, int):
                r = {"address": r}
            if not isinstance(r, dict) or "address" not in r or "unit" not in r:
                fail("%s needs at least address and unit" % quantity)
            for k in r:
                if k not in ("address", "function", "type", "word_order", "scale", "unit", "missing_when_max"):
                    fail("%s: unknown key %r" % (quantity, k))
            spec = dict(base)
            spec.update(r)
            unit = spec["unit"]
            if unit not in UNITS or UNITS[unit][0] != QUANTITIES[quantity][2]:
                fail("%s: unit %r is not a unit of %s" % (quantity, unit, QUANTITIES[quantity][2]))
            if spec["function"] not in FUNCTIONS:
                fail("%s: function must be 3 or 4" % quantity)
            if spec["type"] not in TYPES:
                fail("%s: type must be one of %s" % (quantity, ", ".join(TYPES)))
            if spec["word_order"] not in WORD_ORDERS:
                fail("%s: word_order must be big or little" % quantity)
            address = spec["address"]
            if not (isinstance(address, int) and 0 <= address and address + TYPES[spec["type"]][0] <= 0x10000):
                fail("%s: address %r out of range" % (quantity, address))
            if not isinstance(spec["scale"], (int, float)) or spec["scale"] == 0:
                fail("%s: scale must be a non-zero number" % quantity)
            specs[quantity] = RegisterSpec(quantity, spec["function"], address, spec["type"],
                                           spec["word_order"], float(spec["scale"]), unit,
                                           bool(spec["missing_when_max"]))
        if "energy_import" not in specs:
            fail("a meter map needs energy_import")
        max_gap = data.get("max_gap", 0)
        max_registers = data.get("max_registers", MAX_REGISTERS)
        if not (isinstance(max_gap, int) and 0 <= max_gap < MAX_REGISTERS):
            fail("max_gap must be 0..124")
        if not (isinstance(max_registers, int) and 1 <= max_registers <= MAX_REGISTERS):
            fail("max_registers must be 1..125")
        serial = data.get("serial", {})
        defaults = {}
        for k in ("baudrate", "parity", "stopbits", "device_id"):
            if k in serial:
                defaults[k] = serial[k]
        for s in specs.values():
            if s.count > max_registers:
                fail("%s does not fit in max_registers" % s.quantity)
        return cls(name or data.get("model", ""), data.get("model", name), specs, max_gap=max_gap,
                   max_registers=max_registers, defaults=defaults, verified=data.get("verified", True))


def meter_names() -> list:
    """The meter drivers that have a data file in ``hal/meters``."""
    return sorted(f[:-5] for f in os.listdir(METER_DIR) if f.endswith(".toml"))


def load_register_map(name_or_path: str) -> RegisterMap:
    """The register map of a meter driver name (``sdm630``) or of a data file path."""
    from hal.data_file import read_toml  # CPython; a MicroPython port feeds RegisterMap.from_dict from JSON

    if os.sep in name_or_path or name_or_path.endswith(".toml"):
        path = name_or_path
        name = os.path.basename(path)[:-5] if path.endswith(".toml") else path
    else:
        path = os.path.join(METER_DIR, name_or_path + ".toml")
        name = name_or_path
        if not os.path.isfile(path):
            raise HalConfigurationError("unknown meter %r (known: %s)" % (name_or_path, ", ".join(meter_names())))
    return RegisterMap.from_dict(read_toml(path, "meter map"), name)


class ModbusMeter(Meter):
    """An energy meter on a Modbus bus, described by a ``RegisterMap``.

    ``bus`` is opened and closed with the meter (a shared bus counts its
    users). ``clock`` (anything with ``time()``) stamps readings.
    """

    def __init__(self, bus, device_id: int, register_map: RegisterMap, *, clock=None,
                 name: str | None = None) -> None:
        if not (isinstance(device_id, int) and 1 <= device_id <= 247):
            raise HalConfigurationError("meter device_id must be 1..247, not %r" % (device_id,))
        self.bus = bus
        self.device_id = device_id
        self.register_map = register_map
        self.clock = clock
        self.name = name or "%s@%d" % (register_map.name, device_id)
        self.energy_high_wh = None  # the highest import energy seen; readings below it are missing
        self.last_reading = None
        self._open = False

    async def open(self) -> None:
        if not self._open:
            await self.bus.open()
            self._open = True

    async def close(self) -> None:
        if self._open:
            self._open = False
            await self.bus.close()

    def reset_energy_baseline(self) -> None:
        """Forget the highest energy seen (after a deliberate meter exchange)."""
        self.energy_high_wh = None

    async def read_values(self) -> dict:
        """Read every block and decode: {quantity: value in canonical units or None}."""
        values = {}
        for block in self.register_map.blocks:
            regs = await self.bus.read(block.function, self.device_id, block.address, block.count)
            if len(regs) != block.count:
                raise CommunicationError("%s: %d registers for a block of %d" % (self.name, len(regs), block.count))
            for s in block.specs:
                off = s.address - block.address
                values[s.quantity] = s.decode(regs[off:off + s.count])
        return values

    async def read(self) -> MeterReading:
        values = await self.read_values()
        fields = {"energy_wh": None, "power_w": None, "frequency_hz": None}
        per_phase = {"current_a": [None, None, None], "voltage_v": [None, None, None]}
        any_phase = {"current_a": False, "voltage_v": False}
        for quantity, value in values.items():
            field, phase = QUANTITIES[quantity][0], QUANTITIES[quantity][1]
            if phase is None:
                fields[field] = value
            else:
                per_phase[field][phase] = value
                any_phase[field] = True
        fields["energy_wh"] = self._monotonic_energy(fields["energy_wh"])
        reading = MeterReading(
            energy_wh=fields["energy_wh"], power_w=fields["power_w"],
            current_a=tuple(per_phase["current_a"]) if any_phase["current_a"] else None,
            voltage_v=tuple(per_phase["voltage_v"]) if any_phase["voltage_v"] else None,
            frequency_hz=fields["frequency_hz"],
            timestamp=self.clock.time() if self.clock is not None else _wall_time())
        self.last_reading = reading
        return reading

    def _monotonic_energy(self, energy_wh):
        if energy_wh is None:
            return None
        if energy_wh < 0:
            log.warning("%s: negative import energy %.3f Wh reported as missing", self.name, energy_wh)
            return None
        high = self.energy_high_wh
        if high is not None and energy_wh < high:
            log.warning("%s: import energy went backwards (%.3f Wh < %.3f Wh seen before): reported as missing",
                        self.name, energy_wh, high)
            return None
        self.energy_high_wh = energy_wh
        return energy_wh

    def __repr__(self) -> str:
        return "ModbusMeter(%s on %r)" % (self.name, self.bus)


def _wall_time() -> float:
    import time
    return time.time()


def build_meter(section: dict, buses, clock=None) -> ModbusMeter:
    """A ``ModbusMeter`` from a board ``[meter]`` section (``driver`` names the map;
    ``transport``, ``port``, ``baudrate``, ``parity``, ``device_id``, ``host``,
    ``tcp_port`` as in the board contract; unset keys take the map's serial defaults).
    ``buses`` is a ``hal.modbus.BusRegistry`` shared by the board's devices."""
    from hal.modbus import bus_settings

    register_map = load_register_map(section.get("map") or section["driver"])
    defaults = {k: v for k, v in register_map.defaults.items() if k != "device_id"}
    bus = buses.get(**bus_settings(section, defaults))
    device_id = section.get("device_id", register_map.defaults.get("device_id", 1))
    return ModbusMeter(bus, device_id, register_map, clock=clock)
