"""NXP PN532 RFID reader over its high-speed UART (HSU), as an ``IdReader``.

The PN532 is the reader builders actually wire to a charger controller (the
red and blue breakout boards; set their mode switches to HSU: both off). It
talks 115200 8N1 by default. Frames (PN532 User Manual UM0701, §6.2):

    00 00 FF LEN LCS TFI PD0 … PDn DCS 00
    preamble, start code, LEN = bytes in TFI+PD, LEN+LCS ≡ 0 (mod 256),
    TFI D4 host→PN532 / D5 PN532→host, TFI+PD0+…+PDn+DCS ≡ 0 (mod 256), postamble

    ACK 00 00 FF 00 FF 00   NACK 00 00 FF FF 00 00   error 00 00 FF 01 FF 7F 81 00

Every command is acknowledged (ACK) before its answer (command code + 1)
comes. A host ACK aborts a command in progress; a host NACK asks for the last
answer again (used after a checksum error).

Start-up: after power-on the PN532 sleeps (LowVbat); in HSU mode it wakes on a
long preamble (0x55 0x55 then zeros) followed by SAMConfiguration (normal mode).
Then GetFirmwareVersion (IC 0x32 = PN532) and RFConfiguration MaxRetries, so
that InListPassiveTarget gives up after a few activation attempts instead of
waiting for a card forever.

Polling: InListPassiveTarget (1 target, 106 kbps type A) every
``poll_interval_s``; a found target is released again (InRelease) so the next
poll activates it afresh. ``read_tag()`` returns the UID as upper-case hex.

Debouncing: a card held on the reader is one presentation. The same UID is
returned again only after the reader has *seen* it absent for ``release_s``
(polls that find nothing); another card is returned at once. Time that passes
without polling (the station busy with the last swipe) is not absence, so a
card still lying on the reader is not taken for a new swipe.

Portable core: the frame codec and the driver use the MicroPython asyncio
subset. The transport is a parameter with the shape of ``hal.serial_port``:
``async open() -> (reader, writer)`` and ``async close()``, the reader and
writer shaped like asyncio's streams (``hal.serial_port.SerialPort`` on
CPython; a UART wrapped in streams on MicroPython). Errors are ``Pn532Error``
(a ``CommunicationError``). ``poll()`` raises them; ``read_tag()`` keeps
waiting through them: a reader that stops answering (unplugged, browned out)
is logged once, woken up again every ``retry_s`` (2 s) in the reader's own (real)
time, and logged again when it answers.
"""

import asyncio
import logging
import time

from hal.runtime.clock import Clock
from hal.runtime.aio import wait_for
from hal.errors import CommunicationError, HalConfigurationError
from hal.interfaces import IdReader

log = logging.getLogger(__name__)

TFI_HOST = 0xD4
TFI_PN532 = 0xD5
ACK = b"\x00\x00\xff\x00\xff\x00"
NACK = b"\x00\x00\xff\xff\x00\x00"
WAKEUP = b"\x55\x55" + b"\x00" * 14  # HSU wake-up preamble (as libnfc sends it)
RETRY_S = 2.0  # a failed reader is woken up again this often

# Commands (UM0701 §7).
GET_FIRMWARE_VERSION = 0x02
SAM_CONFIGURATION = 0x14
RF_CONFIGURATION = 0x32
IN_LIST_PASSIVE_TARGET = 0x4A
IN_RELEASE = 0x52
RF_CFG_MAX_RETRIES = 0x05
BRTY_106_TYPE_A = 0x00
PN532_IC = 0x32


class Pn532Error(CommunicationError):
    """The reader did not answer, or not as a PN532 does."""


def build_frame(data: bytes, tfi: int = TFI_HOST) -> bytes:
    """A normal information frame carrying ``data`` (command code and parameters)."""
    body = bytes([tfi]) + bytes(data)
    if len(body) > 255:
        raise ValueError("frame data too long for a normal frame (%d bytes)" % len(body))
    length = len(body)
    dcs = (-sum(body)) & 0xFF
    return b"\x00\x00\xff" + bytes([length, (-length) & 0xFF]) + body + bytes([dcs, 0x00])


class FrameParser:
    """Turns a byte stream into events; bytes between frames are skipped.

    ``feed(data)`` returns a list of events: ``("ack",)``, ``("nack",)``,
    ``("error",)`` (the PN532's syntax-error frame), ``("frame", tfi, data)``
    and ``("bad", reason)`` for a frame whose checksums do not add up.
    """

    def __init__(self) -> None:
        self.buf = bytearray()

    def reset(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list:
        self.buf += data
        events = []
        while True:
            ev = self._next()
            if ev is None:
                return events
            events.append(ev)

    def _next(self):
        buf = self.buf
        while True:
            i = buf.find(b"\x00\xff")
            if i < 0:
                # keep a trailing 0x00: it may be the first half of a start code
                del buf[:max(0, len(buf) - 1)]
                return None
            del buf[:i]
            if len(buf) < 4:
                return None
            length, lcs = buf[2], buf[3]
            if length == 0x00 and lcs == 0xFF:
                del buf[:4]
                self._postamble()
                return ("ack",)
            if length == 0xFF and lcs == 0x00:
                del buf[:4]
                self._postamble()
                return ("nack",)
            if length == 0xFF and lcs == 0xFF:  # extended frame: never sent by us, never answered
                del buf[:2]
                return ("bad", "extended frame not supported")
            if (length + lcs) & 0xFF:
                del buf[:2]  # not a frame after all (a 00 FF inside data): resynchronise
                continue
            if len(buf) < 4 + length + 1:
                return None
            body = bytes(buf[4:4 + length])
            dcs = buf[4 + length]
            del buf[:5 + length]
            self._postamble()
            if (sum(body) + dcs) & 0xFF:
                return ("bad", "data checksum error")
            if body == b"\x7f":
                return ("error",)
            if not body:
                return ("bad", "empty frame")
            return ("frame", body[0], body[1:])

    def _postamble(self) -> None:
        if self.buf[:1] == b"\x00" and self.buf[1:2] != b"\xff":
            del self.buf[:1]


def parse_targets(data: bytes) -> list:
    """The UIDs (bytes) in an InListPassiveTarget answer for 106 kbps type A."""
    if not data:
        raise Pn532Error("empty InListPassiveTarget answer")
    count, pos, uids = data[0], 1, []
    for _ in range(count):
        # Tg, SENS_RES (2), SEL_RES (1), NFCIDLength, NFCID1, [ATS: TL (counts itself), …]
        if len(data) < pos + 5:
            raise Pn532Error("truncated target data in InListPassiveTarget answer")
        sel_res, uid_len = data[pos + 3], data[pos + 4]
        uid = data[pos + 5:pos + 5 + uid_len]
        if len(uid) != uid_len or uid_len not in (4, 7, 10):
            raise Pn532Error("bad UID length %d in InListPassiveTarget answer" % uid_len)
        uids.append(bytes(uid))
        pos += 5 + uid_len
        if sel_res & 0x20 and pos < len(data):  # ISO 14443-4 card: its ATS follows
            pos += max(1, data[pos])
    return uids


class Pn532Reader(IdReader):
    """A PN532 on ``transport`` (see the module doc). No I/O until ``open()``.

    ``clock``: anything with ``monotonic()`` and ``async sleep()`` (default:
    real time); ``poll_interval_s`` between polls; ``release_s`` of observed
    absence before the same card counts again; ``timeout_s`` for an answer.
    """

    def __init__(self, transport, *, poll_interval_s: float = 0.25, release_s: float = 1.0,
                 timeout_s: float = 1.0, ack_timeout_s: float = 1.0, passive_retries: int = 1,
                 retry_s: float = RETRY_S, clock=None, name: str = "pn532") -> None:
        super().__init__()
        if not 0 < poll_interval_s <= 10 or release_s < 0 or not 0 < timeout_s <= 10:
            raise HalConfigurationError("poll_interval_s must be 0..10 s, release_s >= 0, timeout_s 0..10 s")
        if not 0 <= passive_retries <= 0xFE:
            raise HalConfigurationError("passive_retries must be 0..254 (255 would wait for a card forever)",
                                        key="passive_retries")
        self.transport = transport
        self.poll_interval_s = poll_interval_s
        self.release_s = release_s
        self.timeout_s = timeout_s
        self.ack_timeout_s = ack_timeout_s
        self.passive_retries = passive_retries
        self.retry_s = retry_s
        self.clock = clock or Clock()
        self.name = name
        self.firmware = None  # (ic, version, revision, support) after initialisation
        self.ready = False
        self._parser = FrameParser()
        self._events = []
        self._reader = None
        self._writer = None
        self._held = None  # UID (hex) of the card on the reader, once reported
        self._absent_since = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return "Pn532Reader(%r)" % (self.transport,)

    @property
    def firmware_version(self) -> str:
        if self.firmware is None:
            return ""
        return "%d.%d" % (self.firmware[1], self.firmware[2])

    # -- lifetime -------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the port and wake the reader. A reader that does not answer is
        not fatal (the charger still works by remote start): it is logged, and
        ``read_tag()`` tries again."""
        try:
            await self._ensure_ready()
        except CommunicationError as e:
            log.warning("%s: not ready: %s (will retry)", self.name, e)

    async def close(self) -> None:
        self.ready = False
        self._reader = self._writer = None
        await self.transport.close()

    async def _ensure_ready(self) -> None:
        if self.ready:
            return
        try:
            self._reader, self._writer = await self.transport.open()
            await self._write(WAKEUP)
            await self.clock.sleep(0.002)
            await self.command(SAM_CONFIGURATION, bytes([0x01, 0x14, 0x01]))  # normal mode, 1 s, IRQ on
            fw = await self.command(GET_FIRMWARE_VERSION)
            if len(fw) != 4:
                raise Pn532Error("%s: bad GetFirmwareVersion answer %s" % (self.name, fw.hex()))
            if fw[0] != PN532_IC:
                log.warning("%s: IC 0x%02X is not a PN532 (0x32); continuing", self.name, fw[0])
            self.firmware = tuple(fw)
            # MxRtyATR, MxRtyPSL, MxRtyPassiveActivation: give up after a few tries.
            await self.command(RF_CONFIGURATION, bytes([RF_CFG_MAX_RETRIES, 0xFF, 0x01, self.passive_retries]))
        except CommunicationError:
            await self.close()
            raise
        self.ready = True
        log.info("%s: PN532 firmware %s ready", self.name, self.firmware_version)

    # -- frames ---------------------------------------------------------------------------

    async def _write(self, data: bytes) -> None:
        if self._writer is None:
            raise Pn532Error("%s: port not open" % self.name)
        try:
            self._writer.write(data)
            await self._writer.drain()
        except OSError as e:
            raise Pn532Error("%s: write failed: %s" % (self.name, e)) from None

    async def _next_event(self, timeout_s: float):
        deadline = self._now_real() + timeout_s
        while not self._events:
            left = deadline - self._now_real()
            if left <= 0:
                return None
            try:
                data = await wait_for(self._reader.read(256), left)
            except asyncio.TimeoutError:
                return None
            except OSError as e:
                raise Pn532Error("%s: read failed: %s" % (self.name, e)) from None
            if not data:
                raise Pn532Error("%s: the port was closed (adapter unplugged?)" % self.name)
            self._events.extend(self._parser.feed(data))
        return self._events.pop(0)

    @staticmethod
    def _now_real() -> float:
        return time.monotonic()  # transport time is real time, whatever the station's clock

    async def command(self, code: int, params: bytes = b"", timeout_s: float | None = None) -> bytes:
        """Send one command; return its answer's data (after the answer code)."""
        async with self._lock:
            return await self._command(code, params, self.timeout_s if timeout_s is None else timeout_s)

    async def _command(self, code: int, params: bytes, timeout_s: float) -> bytes:
        frame = build_frame(bytes([code]) + bytes(params))
        what = "%s: command 0x%02X" % (self.name, code)
        for attempt in range(2):
            # Bytes of an aborted exchange may still come: answers are matched by their code.
            self._events = []
            await self._write(frame)
            ev = await self._next_event(self.ack_timeout_s)
            if ev is None:
                raise Pn532Error("%s: no ACK from the reader (wiring TX/RX, HSU mode, 115200 baud?)" % what)
            if ev[0] == "nack" or ev[0] == "bad":
                log.debug("%s: %s instead of ACK, sending again", what, ev[0])
                continue
            if ev[0] == "error":
                raise Pn532Error("%s: the reader reported a syntax error" % what)
            if ev[0] != "ack":
                raise Pn532Error("%s: answer without ACK" % what)
            return await self._answer(code, timeout_s, what)
        raise Pn532Error("%s: no ACK after a retry (noise on the line?)" % what)

    async def _answer(self, code: int, timeout_s: float, what: str) -> bytes:
        nacks = 0
        while True:
            ev = await self._next_event(timeout_s)
            if ev is None:
                await self._write(ACK)  # abort the command in progress
                raise Pn532Error("%s: no answer within %.3g s" % (what, timeout_s))
            kind = ev[0]
            if kind == "bad":
                if nacks >= 2:
                    raise Pn532Error("%s: garbled answers (%s)" % (what, ev[1]))
                nacks += 1
                await self._write(NACK)  # ask for the answer again
                continue
            if kind == "error":
                raise Pn532Error("%s: the reader reported a syntax error" % what)
            if kind != "frame":
                continue  # a stray ACK
            _kind, tfi, data = ev
            if tfi != TFI_PN532 or not data:
                raise Pn532Error("%s: unexpected frame %02X %s" % (what, tfi, bytes(data).hex()))
            if data[0] != code + 1:
                log.debug("%s: stale answer 0x%02X skipped", what, data[0])
                continue  # the late answer to an aborted command
            return data[1:]

    # -- reading tags ---------------------------------------------------------------------

    async def poll(self) -> str | None:
        """One InListPassiveTarget: the UID (upper-case hex) of a card in the field, or None."""
        await self._ensure_ready()
        try:
            data = await self.command(IN_LIST_PASSIVE_TARGET, bytes([1, BRTY_106_TYPE_A]))
            uids = parse_targets(data)
            if not uids:
                return None
            await self.command(IN_RELEASE, bytes([0]))  # every target: the next poll starts afresh
        except CommunicationError:
            await self.close()
            raise
        return uids[0].hex().upper()

    def observe(self, uid: str | None, now_s: float) -> str | None:
        """Debounce one poll result: the UID if it is a new presentation, else None."""
        if uid is None:
            if self._held is not None:
                if self._absent_since is None:
                    self._absent_since = now_s
                if now_s - self._absent_since >= self.release_s:
                    self._held = None
                    self._absent_since = None
            return None
        self._absent_since = None
        if uid == self._held:
            return None
        self._held = uid
        return uid

    async def read_tag(self) -> str:
        """Wait for a new presentation; a reader that fails is retried (see the module doc)."""
        failing = False
        while True:
            try:
                uid = await self.poll()
            except CommunicationError as e:
                if not failing:
                    log.error("%s: not answering: %s (trying again every %g s)", self.name, e, self.retry_s)
                    failing = True
                await self.clock.sleep(self.retry_s)
                continue
            if failing:
                log.warning("%s: answering again", self.name)
                failing = False
            tag = self.observe(uid, self.clock.monotonic())
            if tag is not None:
                log.info("%s: card %s", self.name, tag)
                return tag
            await self.clock.sleep(self.poll_interval_s)


READER_KEYS = ("driver", "port", "baudrate", "poll_interval_s", "release_s", "timeout_s", "ack_timeout_s",
               "passive_retries")


def build_reader(section: dict, clock=None) -> Pn532Reader:
    """A ``Pn532Reader`` from a board ``[reader]`` section (``driver = "pn532"``,
    ``port``, ``baudrate`` (115200), ``poll_interval_s``, ``release_s``…)."""
    from hal.serial_port import SerialPort

    for k in section:
        if k not in READER_KEYS:
            raise HalConfigurationError("unknown key %r in [reader] (known: %s)" % (k, ", ".join(READER_KEYS)), key=k)
    if not section.get("port"):
        raise HalConfigurationError("[reader] needs port (the PN532's serial port, e.g. /dev/ttyAMA0)", key="port")
    transport = SerialPort(section["port"], baudrate=section.get("baudrate", 115200))
    params = {k: section[k] for k in READER_KEYS[3:] if k in section}
    # Polling and debouncing are physical timing: real time, not the station's (maybe virtual) clock.
    return Pn532Reader(transport, **params)
