"""A virtual serial cable: two pseudo-terminals joined by a simulated RS-485 wire.

``PtyLink`` opens two pty pairs and copies bytes between their master sides.
The driver under test opens ``link.a_path``, the simulated device opens
``link.b_path``: both use real serial code (pyserial, termios) on real tty
devices, as they would on an RS-485 adapter.

The wire in the middle can:

- pace bytes at a baud rate (``baudrate``, ``char_bits``): each chunk arrives
  at the far end once it has been "transmitted", and a frame may not start
  before 3.5 characters of silence after the previous one (half duplex, as on
  RS-485). A pty has no baud rate of its own, so this is what makes bus-time
  measurements meaningful;
- inject faults in the device → driver direction: ``corrupt(n)`` flips a bit
  in the next ``n`` frames (a CRC error at the receiver), ``drop(n)`` swallows
  them (a timeout), ``inject_noise(data)`` adds garbage bytes.

Counters: ``frames_a_to_b`` / ``frames_b_to_a`` (chunks, one per written
frame), ``bytes_a_to_b`` / ``bytes_b_to_a``.

A multi-drop line: ``PtyLink(drops=2)`` opens one device pty per simulated
device on the line (``b_paths``; ``b_path`` is the first). What the driver
writes reaches every device, as on RS-485; what a device writes reaches the
driver. Each simulator answers only its own device id, so a meter and an EVSE
controller share one line and one driver-side port (``a_path``) as they do on
a real installation. (The devices do not hear each other's answers: a real
device ignores them, and a simulator need not parse them.)

CPython only (a test and HIL tool): ``os.openpty``, ``termios``, the event
loop's ``add_reader`` and ``call_at``.
"""

import asyncio
import os
import time
import tty


class PtyLink:
    """Two ptys joined by a wire. ``async with PtyLink(baudrate=9600) as link:``"""

    def __init__(self, *, baudrate: int | None = None, char_bits: int = 10, drops: int = 1) -> None:
        if drops < 1:
            raise ValueError("a line needs at least one device (drops >= 1)")
        self.baudrate = baudrate
        self.char_bits = char_bits
        self.drops = drops
        self.a_path = self.b_path = None
        self.b_paths = []
        self.frames_a_to_b = self.frames_b_to_a = 0
        self.bytes_a_to_b = self.bytes_b_to_a = 0
        self._fds = []
        self._masters = None
        self._loop = None
        self._wire_free = 0.0  # loop time at which the wire is idle again
        self._corrupt = 0
        self._drop = 0
        self._noise = b""
        self._pending = set()

    @property
    def char_s(self) -> float:
        return self.char_bits / self.baudrate if self.baudrate else 0.0

    @property
    def t35_s(self) -> float:
        if not self.baudrate:
            return 0.0
        return 0.00175 if self.baudrate > 19200 else 3.5 * self.char_s

    async def open(self) -> "PtyLink":
        self._loop = asyncio.get_running_loop()
        ma, sa = os.openpty()
        pairs = [os.openpty() for _ in range(self.drops)]
        self._fds = [ma, sa] + [fd for pair in pairs for fd in pair]
        device_masters = tuple(m for m, _ in pairs)
        for fd in (sa,) + tuple(sl for _, sl in pairs):  # raw before anyone opens them: no echo, no line editing
            tty.setraw(fd)
        for fd in (ma,) + device_masters:
            os.set_blocking(fd, False)
        self.a_path = os.ttyname(sa)
        self.b_paths = [os.ttyname(sl) for _, sl in pairs]
        self.b_path = self.b_paths[0]
        self._masters = (ma,) + device_masters
        self._loop.add_reader(ma, self._on_readable, ma, device_masters, True)
        for mb in device_masters:
            self._loop.add_reader(mb, self._on_readable, mb, (ma,), False)
        return self

    async def close(self) -> None:
        if self._masters is None:
            return
        for fd in self._masters:
            self._loop.remove_reader(fd)
        for h in list(self._pending):
            h.cancel()
        self._pending.clear()
        self._masters = None
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = []

    async def __aenter__(self):
        return await self.open()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # -- faults (device → driver direction) ---------------------------------------------

    def corrupt(self, frames: int = 1) -> None:
        """Flip one bit in each of the next ``frames`` frames from the device."""
        self._corrupt += frames

    def drop(self, frames: int = 1) -> None:
        """Swallow the next ``frames`` frames from the device (the driver sees silence)."""
        self._drop += frames

    def inject_noise(self, data: bytes) -> None:
        """Deliver ``data`` to the driver ahead of the next frame from the device."""
        self._noise += data

    # -- the wire -------------------------------------------------------------------------

    def _on_readable(self, src: int, dsts: tuple, a_to_b: bool) -> None:
        try:
            data = os.read(src, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # the other side closed its tty (EIO): nothing to forward
            return
        if not data:
            return
        if a_to_b:
            self.frames_a_to_b += 1
            self.bytes_a_to_b += len(data)
        else:
            self.frames_b_to_a += 1
            self.bytes_b_to_a += len(data)
            if self._drop:
                self._drop -= 1
                return
            if self._corrupt:
                self._corrupt -= 1
                i = len(data) // 2
                data = data[:i] + bytes([data[i] ^ 0x10]) + data[i + 1:]
            if self._noise:
                data, self._noise = self._noise + data, b""
        if not self.baudrate:
            for dst in dsts:
                self._write(dst, data)
            return
        now = self._loop.time()
        start = max(now, self._wire_free + self.t35_s)
        self._wire_free = start + len(data) * self.char_s
        handle = self._loop.call_at(self._wire_free, self._deliver, dsts, data)
        self._pending.add(handle)

    def _deliver(self, dsts: tuple, data: bytes) -> None:
        self._pending = {h for h in self._pending if not h.cancelled() and h.when() > self._loop.time()}
        if self._masters is not None:
            for dst in dsts:
                self._write(dst, data)

    @staticmethod
    def _write(fd: int, data: bytes) -> None:
        deadline = time.monotonic() + 1.0
        while data:
            try:
                n = os.write(fd, data)
                data = data[n:]
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return  # nobody reads this side: drop, as a wire would
                time.sleep(0.0005)
            except OSError:
                return
