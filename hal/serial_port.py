"""A serial port as an asyncio-style stream pair (thin CPython wrapper over pyserial).

Drivers of line protocols (OpenEVSE RAPI) take a *transport*: an object with
``async open() -> (reader, writer)`` and ``async close()``, where ``reader``
has ``await read(n)`` (some bytes, ``b""`` at end of stream) and ``writer``
has ``write(data)``, ``await drain()`` and ``close()`` — the shape of
asyncio's (and MicroPython's) ``StreamReader``/``StreamWriter``. This module
provides that transport for:

- a local serial device (``/dev/ttyUSB0``, ``/dev/ttyAMA0``, a pty such as
  ``/dev/pts/5``): pyserial configures the line (baud rate, parity, stop
  bits; raw mode) and the bytes move through the event loop's reader and
  writer callbacks on the file descriptor — no pyserial-asyncio, no thread;
- ``socket://host:port`` (a serial-to-TCP bridge such as ser2net, or a
  simulator): ``asyncio.open_connection``.

``StreamTransport`` wraps an already open stream pair (tests, in-process
simulators, or a MicroPython ``UART`` wrapped in ``asyncio.StreamReader``).

CPython only (``add_reader``/``add_writer`` on the running loop, termios via
pyserial); exempt from the MicroPython subset scan for that reason. A
MicroPython port passes a ``StreamTransport`` over its UART streams instead.
"""

import asyncio
import errno
import logging
import os

from hal.errors import CommunicationError, HalConfigurationError

log = logging.getLogger(__name__)

READ_CHUNK = 4096


class SerialPortError(CommunicationError):
    """The port is missing, not accessible, busy or not a serial port."""


class StreamTransport:
    """A transport over an existing (reader, writer) pair; ``close()`` closes the writer."""

    def __init__(self, reader, writer) -> None:
        self.reader = reader
        self.writer = writer
        self.name = "stream"

    async def open(self):
        return self.reader, self.writer

    async def close(self) -> None:
        try:
            self.writer.close()
        except Exception:  # already closed, or the peer went away
            pass


class _FdReader:
    """``read(n)`` over a non-blocking file descriptor, fed by the loop's reader callback."""

    def __init__(self, port: "SerialPort") -> None:
        self._port = port
        self._buf = bytearray()
        self._ready = asyncio.Event()
        self._eof = False
        self._error = None

    def _on_readable(self) -> None:
        try:
            data = os.read(self._port.fd, READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            if e.errno == errno.EIO:  # a pty whose other side is closed: nothing to read for now
                return
            self._error = e
            self._ready.set()
            return
        if not data:
            self._eof = True
        self._buf.extend(data)
        self._ready.set()

    def _close(self) -> None:
        self._eof = True
        self._ready.set()

    async def read(self, n: int = -1) -> bytes:
        while not self._buf and not self._eof and self._error is None:
            self._ready.clear()
            await self._ready.wait()
        if self._buf:
            n = len(self._buf) if n is None or n < 0 else n
            data = bytes(self._buf[:n])
            del self._buf[:n]
            return data
        if self._error is not None:
            raise SerialPortError("%s: read failed: %s" % (self._port.port, self._error))
        return b""


class _FdWriter:
    """``write()``/``drain()`` over a non-blocking file descriptor."""

    def __init__(self, port: "SerialPort") -> None:
        self._port = port
        self._buf = bytearray()
        self._drained = asyncio.Event()
        self._drained.set()
        self._writing = False
        self._closed = False

    def write(self, data: bytes) -> None:
        if self._closed:
            raise SerialPortError("%s: port is closed" % self._port.port)
        self._buf.extend(data)
        self._flush()

    def _flush(self) -> None:
        loop = self._port.loop
        while self._buf:
            try:
                n = os.write(self._port.fd, self._buf)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:
                log.warning("%s: write failed: %s", self._port.port, e)
                self._buf.clear()
                break
            del self._buf[:n]
        if self._buf and not self._writing:
            loop.add_writer(self._port.fd, self._flush)
            self._writing = True
        elif not self._buf and self._writing:
            loop.remove_writer(self._port.fd)
            self._writing = False
        if self._buf:
            self._drained.clear()
        else:
            self._drained.set()

    async def drain(self) -> None:
        await self._drained.wait()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._port._close_now()

    async def wait_closed(self) -> None:
        return None


class SerialPort:
    """A serial port (or ``socket://host:port``) opened as a stream pair. No I/O until ``open()``."""

    def __init__(self, port: str, *, baudrate: int = 115200, bytesize: int = 8, parity: str = "N",
                 stopbits: int = 1) -> None:
        if not port:
            raise HalConfigurationError("a serial transport needs a port (e.g. /dev/ttyUSB0)")
        parity = str(parity).upper()[:1]
        if parity not in ("N", "E", "O"):
            raise HalConfigurationError("parity must be N, E or O, not %r" % parity)
        if stopbits not in (1, 2) or bytesize not in (7, 8):
            raise HalConfigurationError("stopbits must be 1 or 2 and bytesize 7 or 8")
        if not (isinstance(baudrate, int) and 300 <= baudrate <= 4_000_000):
            raise HalConfigurationError("baudrate %r out of range" % (baudrate,))
        self.port = port
        self.baudrate = baudrate
        self.bytesize = bytesize
        self.parity = parity
        self.stopbits = stopbits
        self.name = port
        self.loop = None
        self.fd = None
        self._serial = None
        self._reader = None
        self._writer = None
        self._stream_writer = None

    def describe(self) -> str:
        if self.port.startswith("socket://"):
            return self.port
        return "%s at %d %d%s%d" % (self.port, self.baudrate, self.bytesize, self.parity, self.stopbits)

    def __repr__(self) -> str:
        return "SerialPort(%s)" % self.describe()

    async def open(self):
        """Open the port; returns ``(reader, writer)``. Raises ``SerialPortError``."""
        if self.port.startswith("socket://"):
            return await self._open_socket()
        import serial  # pyserial, CPython only

        if not os.path.exists(self.port):
            raise SerialPortError("%s: port does not exist (is the adapter plugged in?)" % self.port)
        if not os.access(self.port, os.R_OK | os.W_OK):
            raise SerialPortError("%s: permission denied (is the user in the dialout group?)" % self.port)
        parity = {"N": serial.PARITY_NONE, "E": serial.PARITY_EVEN, "O": serial.PARITY_ODD}[self.parity]
        try:
            ser = serial.Serial(self.port, baudrate=self.baudrate, bytesize=self.bytesize, parity=parity,
                                stopbits=self.stopbits, timeout=0, write_timeout=0, exclusive=True)
        except (serial.SerialException, OSError, ValueError) as e:
            raise SerialPortError("%s: cannot open: %s" % (self.port, e)) from None
        self._serial = ser
        self.fd = ser.fileno()
        os.set_blocking(self.fd, False)
        self.loop = asyncio.get_running_loop()
        self._reader = _FdReader(self)
        self._writer = _FdWriter(self)
        self.loop.add_reader(self.fd, self._reader._on_readable)
        log.info("serial: opened %s", self.describe())
        return self._reader, self._writer

    async def _open_socket(self):
        rest = self.port[len("socket://"):]
        host, _, port = rest.rpartition(":")
        try:
            port = int(port)
        except ValueError:
            raise HalConfigurationError("bad socket URL %r (expected socket://host:port)" % self.port) from None
        try:
            reader, writer = await asyncio.open_connection(host or "127.0.0.1", port)
        except OSError as e:
            raise SerialPortError("%s: cannot connect: %s" % (self.port, e)) from None
        self._stream_writer = writer
        return reader, writer

    def _close_now(self) -> None:
        if self.fd is not None and self.loop is not None:
            self.loop.remove_reader(self.fd)
            if self._writer is not None and self._writer._writing:
                self.loop.remove_writer(self.fd)
                self._writer._writing = False
        self.fd = None
        if self._reader is not None:
            self._reader._close()
        if self._serial is not None:
            try:
                self._serial.close()
            except Exception:  # closing must not fail
                pass
            self._serial = None

    async def close(self) -> None:
        """Close the port. Safe to call twice."""
        if self._stream_writer is not None:
            writer, self._stream_writer = self._stream_writer, None
            writer.close()
            try:
                await writer.wait_closed()
            except (OSError, ConnectionError):
                pass
            return
        if self._writer is not None:
            self._writer._closed = True
        self._close_now()
