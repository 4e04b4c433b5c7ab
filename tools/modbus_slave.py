"""A small Modbus server (slave) for device simulators: RTU on a serial port or
pseudo-terminal, and TCP.

The simulated device is a *model* with two methods::

    read(function, address, count)   -> list of values (bools for FC01/02) or an exception code
    write(function, address, values) -> None, or an exception code

so the simulator decides per register what is readable, writable and what a
write does (the EVSE simulators need coils, input and holding registers in
separate spaces, writes with side effects and exceptions for bad values).
Function codes 1, 2, 3, 4, 5, 6, 15 and 16; anything else is answered with
exception 1.

Like a device on a real line it answers only its own id (other ids and
garbled frames: silence; broadcasts to id 0 are executed, not answered), and
``silent = True`` makes it stop answering altogether (a dead controller).
``requests`` records ``(function, address, count)`` of every request served.

CPython only (a test and HIL tool).
"""

import asyncio
import logging
import struct

from tools import sim_cli

log = logging.getLogger(__name__)

ILLEGAL_FUNCTION, ILLEGAL_ADDRESS, ILLEGAL_VALUE, DEVICE_FAILURE = 1, 2, 3, 4


def crc16(data: bytes) -> int:
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def with_crc(frame: bytes) -> bytes:
    return frame + struct.pack("<H", crc16(frame))


def _bits_to_bytes(bits) -> bytes:
    out = bytearray((len(bits) + 7) // 8)
    for i, b in enumerate(bits):
        if b:
            out[i // 8] |= 1 << (i % 8)
    return bytes(out)


def _bytes_to_bits(data: bytes, count: int) -> list:
    return [bool(data[i // 8] >> (i % 8) & 1) for i in range(count)]


class ModbusSlave:
    """Serves ``model`` as Modbus device ``device_id`` (see the module doc)."""

    def __init__(self, model, device_id: int, *, name: str = "modbus-sim") -> None:
        self.model = model
        self.device_id = device_id
        self.name = name
        self.silent = False
        self.turnaround_s = 0.0
        self.requests = []
        self.crc_errors = 0
        self._server = None
        self._link = None
        self._port = None
        self._tasks = []
        self._clients = set()
        self._writers = []

    # -- the PDU --------------------------------------------------------------------------

    def handle_pdu(self, pdu: bytes) -> bytes:
        """The response PDU to a request PDU."""
        fc = pdu[0]
        try:
            result = self._dispatch(fc, pdu)
        except (struct.error, IndexError):
            result = ILLEGAL_VALUE
        if isinstance(result, int):
            return bytes([fc | 0x80, result])
        return result

    def _dispatch(self, fc: int, pdu: bytes):
        if fc in (1, 2, 3, 4):
            address, count = struct.unpack(">HH", pdu[1:5])
            limit = 2000 if fc in (1, 2) else 125
            if not 1 <= count <= limit:
                return ILLEGAL_VALUE
            self.requests.append((fc, address, count))
            values = self.model.read(fc, address, count)
            if isinstance(values, int):
                return values
            if fc in (1, 2):
                data = _bits_to_bytes(values)
            else:
                data = struct.pack(">%dH" % count, *(v & 0xFFFF for v in values))
            return bytes([fc, len(data)]) + data
        if fc == 5:
            address, value = struct.unpack(">HH", pdu[1:5])
            if value not in (0x0000, 0xFF00):
                return ILLEGAL_VALUE
            self.requests.append((fc, address, 1))
            return self.model.write(fc, address, [value == 0xFF00]) or pdu[:5]
        if fc == 6:
            address, value = struct.unpack(">HH", pdu[1:5])
            self.requests.append((fc, address, 1))
            return self.model.write(fc, address, [value]) or pdu[:5]
        if fc in (15, 16):
            address, count, nbytes = struct.unpack(">HHB", pdu[1:6])
            data = pdu[6:6 + nbytes]
            if len(data) != nbytes:
                return ILLEGAL_VALUE
            self.requests.append((fc, address, count))
            if fc == 15:
                if not 1 <= count <= 1968 or nbytes != (count + 7) // 8:
                    return ILLEGAL_VALUE
                values = _bytes_to_bits(data, count)
            else:
                if not 1 <= count <= 123 or nbytes != 2 * count:
                    return ILLEGAL_VALUE
                values = list(struct.unpack(">%dH" % count, data))
            return self.model.write(fc, address, values) or pdu[:5]
        return ILLEGAL_FUNCTION

    # -- RTU ------------------------------------------------------------------------------

    @staticmethod
    def _rtu_length(buf: bytes):
        """The length of the RTU request at the start of ``buf`` (None: need more bytes)."""
        if len(buf) < 2:
            return None
        fc = buf[1]
        if fc in (1, 2, 3, 4, 5, 6):
            return 8
        if fc in (15, 16):
            return 9 + buf[6] if len(buf) >= 7 else None
        return len(buf) if len(buf) >= 4 else None  # unknown function: the whole chunk

    async def serve_rtu(self, reader, writer) -> None:
        """Serve RTU requests from a serial stream pair until it ends."""
        buf = b""
        while True:
            data = await reader.read(256)
            if not data:
                return
            buf += data
            while buf:
                n = self._rtu_length(buf)
                if n is None or len(buf) < n:
                    break
                frame, rest = buf[:n], buf[n:]
                if crc16(frame[:-2]) != struct.unpack("<H", frame[-2:])[0]:
                    self.crc_errors += 1
                    buf = buf[1:]  # resynchronise one byte further
                    continue
                buf = rest
                unit = frame[0]
                if unit not in (0, self.device_id):
                    continue
                if self.silent:
                    continue
                response = self.handle_pdu(frame[1:-2])
                if unit == 0:
                    continue
                if self.turnaround_s:
                    await asyncio.sleep(self.turnaround_s)
                writer.write(with_crc(bytes([unit]) + response))
                await writer.drain()

    async def start_pty(self, *, baudrate: int = 9600, pace: bool = False):
        """Serve RTU on a ``PtyLink``; returns it (the driver opens ``link.a_path``)."""
        link = await sim_cli.start_on_pty(lambda path: self.start_serial(path, baudrate=baudrate),
                                          baudrate=baudrate if pace else None)
        self._link = link
        return link

    async def start_serial(self, port: str, *, baudrate: int = 9600, parity: str = "N") -> None:
        """Serve RTU on a serial port."""
        from hal.serial_port import SerialPort

        self._port = SerialPort(port, baudrate=baudrate, parity=parity)
        reader, writer = await self._port.open()
        self._tasks.append(asyncio.create_task(self.serve_rtu(reader, writer)))

    # -- TCP ------------------------------------------------------------------------------

    async def start_tcp(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Serve Modbus TCP; returns the port (a free one when ``port`` is 0)."""
        self._server = await asyncio.start_server(self._tcp_client, host, port)
        return self._server.sockets[0].getsockname()[1]

    async def _tcp_client(self, reader, writer) -> None:
        task = asyncio.current_task()
        self._clients.add(task)
        self._writers.append(writer)
        try:
            while True:
                header = await reader.readexactly(7)
                tid, pid, length, unit = struct.unpack(">HHHB", header)
                pdu = await reader.readexactly(length - 1)
                if pid != 0 or (self.device_id is not None and unit != self.device_id) or self.silent:
                    continue
                response = self.handle_pdu(pdu)
                if self.turnaround_s:
                    await asyncio.sleep(self.turnaround_s)
                writer.write(struct.pack(">HHHB", tid, 0, len(response) + 1, unit) + response)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except asyncio.CancelledError:  # stop(): end quietly (start_server reads the task's outcome)
            pass
        finally:
            writer.close()
            if writer in self._writers:
                self._writers.remove(writer)
            self._clients.discard(task)

    def drop_connections(self) -> None:
        """Close every TCP connection (a controller that reboots its network stack)."""
        for w in list(self._writers):
            w.close()

    # -- lifetime -------------------------------------------------------------------------

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            self.drop_connections()
            await server.wait_closed()
        tasks, self._tasks = self._tasks + list(self._clients), []
        await sim_cli.cancel_all(tasks)
        port, self._port = self._port, None
        link, self._link = self._link, None
        await sim_cli.close_each(port, link)
        await asyncio.sleep(0)


class SlaveDevice(sim_cli.StopOnExit):
    """Base of a simulated device that is the model of its own ``ModbusSlave``
    (``self.slave``, made by the subclass): serving, ``silent`` and ``stop()`` go to it."""

    slave: ModbusSlave

    @property
    def silent(self) -> bool:
        return self.slave.silent

    @silent.setter
    def silent(self, value: bool) -> None:
        self.slave.silent = bool(value)

    async def start_pty(self, *, baudrate: int = 9600, pace: bool = False):
        return await self.slave.start_pty(baudrate=baudrate, pace=pace)

    async def start_serial(self, port: str, *, baudrate: int = 9600, parity: str = "N") -> None:
        await self.slave.start_serial(port, baudrate=baudrate, parity=parity)

    async def start_tcp(self, host: str = "127.0.0.1", port: int = 0) -> int:
        return await self.slave.start_tcp(host, port)

    def drop_connections(self) -> None:
        self.slave.drop_connections()

    async def stop(self) -> None:
        await self.slave.stop()
