"""A fake of the ``gpiod`` module (libgpiod v2 Python bindings) with simulated chips.

Like gpiozero's ``MockFactory``: the real driver (``hal.gpio_relay``) runs on
it unchanged, tests drive inputs and read the physical levels of outputs and
their history. Only the part of the API the agent uses is provided:
``request_lines(path, consumer=, config=)``, ``LineSettings``,
``line.Direction/Value/Bias/Drive/Edge`` and the ``LineRequest`` methods
``set_value``, ``get_value``, ``release``; errors are raised as the kernel
raises them (``OSError`` with ENOENT, EACCES, EBUSY, EINVAL).

    gpiod = FakeGpiod()
    chip = gpiod.add_chip("/dev/gpiochip0", lines=54, names={17: "GPIO17"})
    contactor = GpioContactor(line=17, feedback_line=27, gpiod=gpiod)
    chip.drive(27, 0)            # the auxiliary contact pulls the input low
    chip.level(17)               # the physical output level: 0 or 1
    chip.history(17)             # every level the output was driven to, in order

A released output keeps its level (``persist=True``, Raspberry Pi OS kernels)
or returns to an input (``persist=False``, mainline). Put the fake in
``sys.modules["gpiod"]`` to load boards that use ``driver = "gpio"``.
"""

import enum
import errno
from dataclasses import dataclass


class Direction(enum.Enum):
    AS_IS = 1
    INPUT = 2
    OUTPUT = 3


class Value(enum.Enum):
    INACTIVE = 0
    ACTIVE = 1


class Bias(enum.Enum):
    AS_IS = 1
    UNKNOWN = 2
    DISABLED = 3
    PULL_UP = 4
    PULL_DOWN = 5


class Drive(enum.Enum):
    PUSH_PULL = 1
    OPEN_DRAIN = 2
    OPEN_SOURCE = 3


class Edge(enum.Enum):
    NONE = 1
    RISING = 2
    FALLING = 3
    BOTH = 4


class _LineModule:
    Direction = Direction
    Value = Value
    Bias = Bias
    Drive = Drive
    Edge = Edge


@dataclass
class LineSettings:
    direction: Direction = Direction.AS_IS
    edge_detection: Edge = Edge.NONE
    bias: Bias = Bias.AS_IS
    drive: Drive = Drive.PUSH_PULL
    active_low: bool = False
    output_value: Value = Value.INACTIVE


class FakeLine:
    """One line of a fake chip: what the pin does, physically."""

    def __init__(self, offset: int, name: str = "") -> None:
        self.offset = offset
        self.name = name
        self.direction = Direction.INPUT
        self.settings = None
        self.consumer = None  # set while requested
        self.driven = None  # physical level driven as an output
        self.external = None  # physical level driven from outside (a contact), or None
        self.history = []

    def level(self) -> int:
        if self.direction == Direction.OUTPUT and self.driven is not None:
            return self.driven
        if self.external is not None:
            return self.external
        bias = self.settings.bias if self.settings is not None else Bias.AS_IS
        return 1 if bias == Bias.PULL_UP else 0


class FakeChip:
    def __init__(self, path: str, lines: int = 54, names: dict | None = None, persist: bool = True) -> None:
        self.path = path
        self.lines = [FakeLine(i, (names or {}).get(i, "")) for i in range(lines)]
        self.persist = persist
        self.accessible = True
        self.requests = []  # every LineRequest made, released or not
        self.on_output = None  # callback(offset, level) after an output changes

    def line(self, offset: int) -> FakeLine:
        return self.lines[offset]

    def resolve(self, key) -> int:
        if isinstance(key, str):
            for ln in self.lines:
                if ln.name == key:
                    return ln.offset
            raise ValueError("unknown line name: %s" % key)
        if not 0 <= key < len(self.lines):
            raise OSError(errno.EINVAL, "Invalid argument")
        return key

    def drive(self, offset: int, level) -> None:
        """Drive an input from outside (0, 1; None: let it float to its bias)."""
        self.lines[offset].external = level

    def level(self, offset: int) -> int:
        return self.lines[offset].level()

    def history(self, offset: int) -> list:
        return list(self.lines[offset].history)

    def _set_output(self, ln: FakeLine, level: int) -> None:
        ln.driven = level
        ln.history.append(level)
        if self.on_output is not None:
            self.on_output(ln.offset, level)


class FakeLineRequest:
    def __init__(self, chip: FakeChip, offsets: dict) -> None:
        self.chip = chip
        self._offsets = offsets  # key as requested -> offset
        self.released = False

    def _line(self, key) -> FakeLine:
        if self.released:
            raise RuntimeError("request released")  # gpiod.RequestReleasedError
        offset = self.chip.resolve(key)
        if offset not in self._offsets.values():
            raise ValueError("line %r not in this request" % (key,))
        return self.chip.lines[offset]

    def set_value(self, line, value: Value) -> None:
        ln = self._line(line)
        if ln.direction != Direction.OUTPUT:
            raise OSError(errno.EPERM, "Operation not permitted")
        self.chip._set_output(ln, value.value ^ int(ln.settings.active_low))

    def get_value(self, line) -> Value:
        ln = self._line(line)
        return Value(ln.level() ^ int(ln.settings.active_low))

    def release(self) -> None:
        if self.released:
            raise RuntimeError("request released")
        self.released = True
        for offset in self._offsets.values():
            ln = self.chip.lines[offset]
            ln.consumer = None
            if ln.direction == Direction.OUTPUT and not self.chip.persist:
                ln.direction = Direction.INPUT
                ln.driven = None
                ln.history.append(None)  # floating: only the pull resistor decides


class FakeGpiod:
    """Stands in for the ``gpiod`` module (see the module doc)."""

    LineSettings = LineSettings
    line = _LineModule

    def __init__(self) -> None:
        self.chips = {}

    def add_chip(self, path: str = "/dev/gpiochip0", lines: int = 54, names: dict | None = None,
                 persist: bool = True) -> FakeChip:
        chip = self.chips[path] = FakeChip(path, lines, names, persist)
        return chip

    def request_lines(self, path: str, consumer: str | None = None, config: dict | None = None, **kw):
        chip = self.chips.get(path)
        if chip is None:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        if not chip.accessible:
            raise PermissionError(errno.EACCES, "Permission denied", path)
        offsets = {}
        settings = {}
        for key, s in (config or {}).items():
            keys = key if isinstance(key, tuple) else (key,)
            for k in keys:
                offset = chip.resolve(k)
                offsets[k] = offset
                settings[offset] = s or LineSettings()
        for offset in settings:
            if chip.lines[offset].consumer is not None:
                raise OSError(errno.EBUSY, "Device or resource busy")
        for offset, s in settings.items():
            ln = chip.lines[offset]
            ln.consumer = consumer or "?"
            ln.settings = s
            if s.direction == Direction.OUTPUT:
                ln.direction = Direction.OUTPUT
                chip._set_output(ln, s.output_value.value ^ int(s.active_low))
            elif s.direction == Direction.INPUT:
                ln.direction = Direction.INPUT
                ln.driven = None
        req = FakeLineRequest(chip, offsets)
        chip.requests.append(req)
        return req
