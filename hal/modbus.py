"""The Modbus bus: one owner per serial port or TCP endpoint (thin pymodbus adapter).

CPython only: this module is the one place that imports pymodbus, whose API
changes between minor releases (``slave=`` became ``device_id=`` in 3.10, the
payload helpers went away); pyproject pins ``pymodbus>=3.10,<4``. Drivers see
only ``ModbusBus``: raw register (or coil) lists in and out, and the hal
error tree when anything goes wrong. Decoding registers is the drivers' job
(``hal/modbus_meter.py``) and stays portable.

One RS-485 line carries several devices (a meter and an EVSE controller at
9600 8N1), so one ``ModbusBus`` owns the port and serialises requests with an
``asyncio.Lock``; devices on the line share it through a ``BusRegistry``
(asking twice for one port with different settings is an error). ``open()``
and ``close()`` are counted: the port opens with its first user and closes
with its last.

Every request has a timeout and a number of retries (bus defaults, overridable
per call). RTU rules are kept: the bus waits the 3.5-character silence before
each request, and after a failed request it waits a quiet period so that a
late answer cannot be taken for the answer to the next request.

Errors (all ``hal.errors.CommunicationError``):

- ``ModbusConnectionError``: the port is missing, not accessible or busy, or
  the TCP endpoint refuses the connection;
- ``ModbusTimeoutError``: no answer at all (wrong device id, wrong baud rate,
  unpowered or disconnected device);
- ``ModbusFrameError``: bytes came back but no valid frame (CRC error,
  wrong parity or baud rate, noise on the line, wrong register count);
- ``ModbusExceptionError``: the device answered with a Modbus exception
  (illegal address: probably the wrong meter model). It carries
  ``exception_code``; a driver that gives a code a device meaning (device
  failure on an EVSE controller) raises ``DeviceFaultError`` itself.
"""

import asyncio
import logging
import os
import time

from hal.errors import CommunicationError, HalConfigurationError

log = logging.getLogger(__name__)

TRANSPORTS = ("rtu", "tcp")
PARITIES = ("N", "E", "O")
MAX_READ_REGISTERS = 125  # Modbus limit for FC03/FC04
MAX_WRITE_REGISTERS = 123  # Modbus limit for FC16
MAX_READ_COILS = 2000  # Modbus limit for FC01

EXCEPTION_NAMES = {
    1: "illegal function", 2: "illegal data address", 3: "illegal data value",
    4: "device failure", 5: "acknowledge", 6: "device busy", 8: "memory parity error",
    10: "gateway path unavailable", 11: "gateway target failed to respond",
}


class ModbusConnectionError(CommunicationError):
    """The port or endpoint cannot be opened (missing, permission denied, busy, refused)."""


class ModbusTimeoutError(CommunicationError):
    """The device did not answer within the timeout."""


class ModbusFrameError(CommunicationError):
    """Bytes came back but not a valid answer (CRC error, framing/parity, wrong length)."""


class ModbusExceptionError(CommunicationError):
    """The device answered with a Modbus exception response."""

    def __init__(self, message: str, exception_code: int, function_code: int) -> None:
        super().__init__(message)
        self.exception_code = exception_code
        self.function_code = function_code


def bits_per_char(bytesize: int = 8, parity: str = "N", stopbits: int = 1) -> int:
    """Bits on the wire per character: start + data + parity + stop (8N1: 10, 8E1/8N2: 11)."""
    return 1 + bytesize + (0 if parity == "N" else 1) + stopbits


def t35_s(baudrate: int, char_bits: int) -> float:
    """The RTU inter-frame silence: 3.5 characters, fixed 1.75 ms above 19200 baud."""
    if baudrate > 19200:
        return 0.00175
    return 3.5 * char_bits / baudrate


class BusStats:
    """Counters of one bus; ``busy_s`` is the time the line was held by requests."""

    __slots__ = ("requests", "frames", "ok", "timeouts", "frame_errors", "exceptions",
                 "connection_errors", "retries", "busy_s")

    def __init__(self) -> None:
        for k in self.__slots__:
            setattr(self, k, 0)
        self.busy_s = 0.0

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__}

    def __repr__(self) -> str:
        return "BusStats(%s)" % ", ".join("%s=%r" % kv for kv in self.as_dict().items())


class ModbusBus:
    """One Modbus RTU line or TCP endpoint, shared by the devices on it.

    RTU: ``ModbusBus(transport="rtu", port="/dev/ttyUSB0", baudrate=9600,
    parity="N", stopbits=1)``. TCP: ``ModbusBus(transport="tcp",
    host="192.168.1.20", tcp_port=502)``. ``port`` may also be a pyserial URL
    (``socket://127.0.0.1:5020`` carries RTU frames over TCP).

    No I/O in the constructor; ``open()`` connects (counted, see module doc).
    """

    def __init__(self, *, transport: str = "rtu", port: str | None = None, baudrate: int = 9600,
                 parity: str = "N", stopbits: int = 1, bytesize: int = 8,
                 host: str | None = None, tcp_port: int = 502,
                 timeout_s: float = 0.5, retries: int = 1, name: str | None = None) -> None:
        if transport not in TRANSPORTS:
            raise HalConfigurationError("modbus transport must be one of %s, not %r" % (TRANSPORTS, transport))
        if transport == "rtu":
            if not port:
                raise HalConfigurationError("modbus rtu needs a port (e.g. /dev/ttyUSB0)")
            parity = str(parity).upper()[:1]
            if parity not in PARITIES:
                raise HalConfigurationError("parity must be N, E or O, not %r" % parity)
            if stopbits not in (1, 2) or bytesize not in (7, 8):
                raise HalConfigurationError("stopbits must be 1 or 2 and bytesize 7 or 8")
            if not (isinstance(baudrate, int) and 300 <= baudrate <= 4_000_000):
                raise HalConfigurationError("baudrate %r out of range" % (baudrate,))
        else:
            if not host:
                raise HalConfigurationError("modbus tcp needs a host")
            if not (isinstance(tcp_port, int) and 0 < tcp_port < 65536):
                raise HalConfigurationError("tcp_port %r out of range" % (tcp_port,))
        if not timeout_s > 0 or retries < 0:
            raise HalConfigurationError("timeout_s must be > 0 and retries >= 0")
        self.transport = transport
        self.port = port
        self.baudrate = baudrate
        self.parity = parity
        self.stopbits = stopbits
        self.bytesize = bytesize
        self.host = host
        self.tcp_port = tcp_port
        self.timeout_s = timeout_s
        self.retries = retries
        self.name = name or self.describe()
        self.lock = asyncio.Lock()
        self.stats = BusStats()
        self.char_bits = bits_per_char(bytesize, parity, stopbits)
        self.t35_s = t35_s(baudrate, self.char_bits) if transport == "rtu" else 0.0
        self._client = None
        self._users = 0
        self._quiet_until = 0.0
        self._rx_seen = False

    # -- identity -------------------------------------------------------------------------

    def describe(self) -> str:
        if self.transport == "rtu":
            return "%s at %d %d%s%d" % (self.port, self.baudrate, self.bytesize, self.parity, self.stopbits)
        return "tcp://%s:%d" % (self.host, self.tcp_port)

    def settings(self) -> dict:
        """The settings that must agree between two users of one port."""
        if self.transport == "rtu":
            return {"transport": "rtu", "port": self.port, "baudrate": self.baudrate,
                    "parity": self.parity, "stopbits": self.stopbits, "bytesize": self.bytesize}
        return {"transport": "tcp", "host": self.host, "tcp_port": self.tcp_port}

    def key(self) -> tuple:
        if self.transport == "rtu":
            return ("rtu", os.path.realpath(self.port) if "://" not in self.port else self.port)
        return ("tcp", self.host, self.tcp_port)

    def __repr__(self) -> str:
        return "ModbusBus(%s)" % self.describe()

    # -- lifetime -------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._client is not None

    async def open(self) -> None:
        """Open the port (first user) or count one more user."""
        if self._client is None:
            await self._connect()
        self._users += 1

    async def close(self) -> None:
        """One user fewer; the last one closes the port. Safe when already closed."""
        if self._users > 0:
            self._users -= 1
        if self._users == 0 and self._client is not None:
            client, self._client = self._client, None
            client.close()
            await asyncio.sleep(0)  # let the transport's close callbacks run

    async def __aenter__(self):
        await self.open()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def _check_port(self) -> None:
        if self.transport != "rtu" or "://" in self.port:
            return
        if not os.path.exists(self.port):
            raise ModbusConnectionError("%s: port does not exist (is the adapter plugged in?)" % self.port)
        if not os.access(self.port, os.R_OK | os.W_OK):
            raise ModbusConnectionError("%s: permission denied (is the user in the dialout group?)" % self.port)

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        if not sending and data:
            self._rx_seen = True
        return data

    async def _connect(self) -> None:
        from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
        from pymodbus.framer import FramerType

        self._check_port()
        # retries=0 and reconnect_delay=0: retries and reconnection are ours, so that
        # every attempt is classified and no background reconnect task is left behind.
        if self.transport == "rtu":
            client = AsyncModbusSerialClient(
                self.port, framer=FramerType.RTU, baudrate=self.baudrate, bytesize=self.bytesize,
                parity=self.parity, stopbits=self.stopbits, timeout=self.timeout_s, retries=0,
                reconnect_delay=0, name=self.name, trace_packet=self._trace_packet)
        else:
            client = AsyncModbusTcpClient(
                self.host, port=self.tcp_port, framer=FramerType.SOCKET, timeout=self.timeout_s,
                retries=0, reconnect_delay=0, name=self.name, trace_packet=self._trace_packet)
        try:
            ok = await client.connect()
        except Exception as e:  # pymodbus logs and returns False for most failures
            client.close()
            raise ModbusConnectionError("%s: cannot open: %s" % (self.name, e)) from None
        if not ok:
            client.close()
            what = "port busy or not a serial port" if self.transport == "rtu" else "connection refused or timed out"
            raise ModbusConnectionError("%s: cannot open (%s)" % (self.name, what))
        self._client = client
        log.info("modbus: opened %s", self.name)

    # -- requests -------------------------------------------------------------------------

    async def read_holding(self, device_id: int, address: int, count: int, *,
                           timeout_s: float | None = None, retries: int | None = None) -> list:
        """FC03: ``count`` holding registers from ``address`` (0-based protocol address)."""
        self._check_range(address, count, MAX_READ_REGISTERS)
        return await self._request(3, device_id, address, count, None, timeout_s, retries)

    async def read_input(self, device_id: int, address: int, count: int, *,
                         timeout_s: float | None = None, retries: int | None = None) -> list:
        """FC04: ``count`` input registers from ``address``."""
        self._check_range(address, count, MAX_READ_REGISTERS)
        return await self._request(4, device_id, address, count, None, timeout_s, retries)

    async def read(self, function: int, device_id: int, address: int, count: int, **kw) -> list:
        """FC03 or FC04 by number (register maps name the function code)."""
        if function == 3:
            return await self.read_holding(device_id, address, count, **kw)
        if function == 4:
            return await self.read_input(device_id, address, count, **kw)
        raise HalConfigurationError("read function must be 3 or 4, not %r" % (function,))

    async def read_coils(self, device_id: int, address: int, count: int, *,
                         timeout_s: float | None = None, retries: int | None = None) -> list:
        """FC01: ``count`` coils from ``address``, as a list of bools."""
        self._check_range(address, count, MAX_READ_COILS)
        return await self._request(1, device_id, address, count, None, timeout_s, retries)

    async def write_coil(self, device_id: int, address: int, value: bool, *,
                         timeout_s: float | None = None, retries: int | None = None) -> None:
        """FC05: one coil."""
        self._check_range(address, 1, 1)
        await self._request(5, device_id, address, 1, [bool(value)], timeout_s, retries)

    async def write_register(self, device_id: int, address: int, value: int, *,
                             timeout_s: float | None = None, retries: int | None = None) -> None:
        """FC06: one holding register."""
        self._check_range(address, 1, 1)
        if not 0 <= value <= 0xFFFF:
            raise ValueError("register value %r out of 0..65535" % (value,))
        await self._request(6, device_id, address, 1, [value], timeout_s, retries)

    async def write_registers(self, device_id: int, address: int, values: list, *,
                              timeout_s: float | None = None, retries: int | None = None) -> None:
        """FC16: several holding registers in one frame."""
        self._check_range(address, len(values), MAX_WRITE_REGISTERS)
        for v in values:
            if not 0 <= v <= 0xFFFF:
                raise ValueError("register value %r out of 0..65535" % (v,))
        await self._request(16, device_id, address, len(values), list(values), timeout_s, retries)

    @staticmethod
    def _check_range(address: int, count: int, limit: int) -> None:
        if not (0 < count <= limit):
            raise ValueError("register count %r out of 1..%d" % (count, limit))
        if not (0 <= address and address + count <= 0x10000):
            raise ValueError("register address %r (+%d) out of 0..65535" % (address, count))

    def _call(self, function: int, device_id: int, address: int, count: int, values):
        c = self._client
        if function == 3:
            return c.read_holding_registers(address, count=count, device_id=device_id)
        if function == 4:
            return c.read_input_registers(address, count=count, device_id=device_id)
        if function == 1:
            return c.read_coils(address, count=count, device_id=device_id)
        if function == 5:
            return c.write_coil(address, values[0], device_id=device_id)
        if function == 6:
            return c.write_register(address, values[0], device_id=device_id)
        return c.write_registers(address, values, device_id=device_id)

    async def _request(self, function: int, device_id: int, address: int, count: int, values,
                       timeout_s, retries) -> list:
        from pymodbus.exceptions import ConnectionException, ModbusIOException

        if not 0 <= device_id <= 247:
            raise ValueError("device id %r out of 0..247" % (device_id,))
        if self._users == 0:
            raise ModbusConnectionError("%s: bus is not open" % self.name)
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        retries = self.retries if retries is None else retries
        what = "device %d FC%02d %d+%d" % (device_id, function, address, count)
        async with self.lock:
            started = time.monotonic()
            try:
                error = None
                for attempt in range(retries + 1):
                    if attempt:
                        self.stats.retries += 1
                    await self._wait_quiet()
                    if self._client is None or not self._client.connected:
                        await self._reconnect()
                    self._set_timeout(timeout_s)
                    self._rx_seen = False
                    self.stats.frames += 1
                    try:
                        rr = await self._call(function, device_id, address, count, values)
                    except ModbusIOException as e:
                        if self._rx_seen:
                            self.stats.frame_errors += 1
                            error = ModbusFrameError("%s: %s: garbled answer (CRC/framing error: noise, "
                                                     "or wrong baud rate or parity?)" % (self.name, what))
                        else:
                            self.stats.timeouts += 1
                            error = ModbusTimeoutError("%s: %s: no answer within %.3g s"
                                                       % (self.name, what, timeout_s))
                        log.debug("modbus: %s (%s)", error, e)
                        self._quiet_until = time.monotonic() + max(self.t35_s * 4, 0.02)
                        continue
                    except ConnectionException as e:
                        self.stats.connection_errors += 1
                        error = ModbusConnectionError("%s: %s: connection lost: %s" % (self.name, what, e))
                        continue
                    finally:
                        self._quiet_until = max(self._quiet_until, time.monotonic() + self.t35_s)
                    if rr.isError():
                        self.stats.exceptions += 1
                        code = getattr(rr, "exception_code", 0)
                        raise ModbusExceptionError(
                            "%s: %s: exception %d (%s)" % (self.name, what, code, EXCEPTION_NAMES.get(code, "?")),
                            code, function)
                    if function == 1:
                        bits = [bool(b) for b in rr.bits[:count]]
                        if len(bits) != count:
                            self.stats.frame_errors += 1
                            error = ModbusFrameError("%s: %s: answer has %d coils" % (self.name, what, len(bits)))
                            continue
                        self.stats.ok += 1
                        return bits
                    if function in (3, 4):
                        regs = list(rr.registers)
                        if len(regs) != count:
                            self.stats.frame_errors += 1
                            error = ModbusFrameError("%s: %s: answer has %d registers" % (self.name, what, len(regs)))
                            continue
                        self.stats.ok += 1
                        return regs
                    self.stats.ok += 1
                    return []
                raise error
            finally:
                self.stats.requests += 1
                self.stats.busy_s += time.monotonic() - started

    def _set_timeout(self, timeout_s: float) -> None:
        # pymodbus reads the response timeout from its transaction manager's copy of the
        # comm params at each request (3.10-3.16); the client's own copy is a fallback.
        ctx = getattr(self._client, "ctx", None)
        params = getattr(ctx, "comm_params", None) or self._client.comm_params
        params.timeout_connect = timeout_s

    async def _wait_quiet(self) -> None:
        delay = self._quiet_until - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _reconnect(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        try:
            await self._connect()
        except ModbusConnectionError:
            self.stats.connection_errors += 1
            raise


class BusRegistry:
    """The buses of one board: one ``ModbusBus`` per port, shared by the devices on it.

    ``get(...)`` returns the existing bus for a port when the settings agree and
    raises ``HalConfigurationError`` when they do not (a meter at 9600 baud and
    an EVSE controller at 19200 on one line cannot both work).
    """

    def __init__(self) -> None:
        self._buses = {}

    def get(self, **settings) -> ModbusBus:
        bus = ModbusBus(**settings)
        key = bus.key()
        existing = self._buses.get(key)
        if existing is None:
            self._buses[key] = bus
            return bus
        if existing.settings() != bus.settings():
            raise HalConfigurationError(
                "two devices on %s with different settings: %s and %s"
                % (bus.port or bus.name, existing.describe(), bus.describe()))
        return existing

    def buses(self) -> list:
        return list(self._buses.values())


# Board keys (issue 4 contract) → ModbusBus keyword arguments.
BUS_KEYS = ("transport", "port", "baudrate", "parity", "stopbits", "bytesize", "host", "tcp_port",
            "timeout_s", "retries")


def bus_settings(section: dict, defaults: dict | None = None) -> dict:
    """ModbusBus keyword arguments from a board section (``transport``, ``port``,
    ``baudrate``, ``parity``, ``host``, ``tcp_port``…) over per-device defaults."""
    out = dict(defaults or {})
    for k in BUS_KEYS:
        if k in section:
            out[k] = section[k]
    if out.get("transport", "rtu") == "tcp":
        for k in ("port", "baudrate", "parity", "stopbits", "bytesize"):
            out.pop(k, None)
    else:
        for k in ("host", "tcp_port"):
            out.pop(k, None)
    return out
