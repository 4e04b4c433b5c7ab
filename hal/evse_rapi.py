"""OpenEVSE over RAPI (serial, 115200 8N1): the controller and an energy meter
from its counters.

Protocol (``../shared/HARDWARE.md``, OpenEVSE ``rapi_proc.h``):

- command ``$cc p1 p2… :ss^xk\\r``: ``xk`` is the XOR of every character
  before ``^`` as two hex digits, ``:ss`` an optional sequence id (never 00)
  that the reply echoes; replies ``$OK …^xk`` / ``$NK …^xk``;
- asynchronous ``$AT evsestate pilotstate currentcapacity vflags`` on every
  state change, ``$AB postcode fwrev`` at boot, ``$AN`` (button). They can
  arrive *between* a command and its reply (the firmware sends ``$AT`` from
  inside ``$FS``/``$FE`` before answering), so one reader task splits the
  line stream: replies go to the pending command (matched by sequence id),
  notifications update the status at once.

Lines with a wrong checksum are dropped and counted (``link.stats``); a
command whose reply was lost or garbled times out and is sent again (with a
new sequence id, so a late reply to the first copy is recognised as stale).

How the controller is driven:

- no energy: ``$FS`` (sleep: pilot steady +12 V, relay opened once the EV
  has stopped). ``open()`` reads the state (``$GS``) and sends ``$FS`` right
  after, whatever the factory state (OpenEVSE boots enabled: "auto-start"),
  then arms the heartbeat; every poll and every ``$AT`` are checked against
  the desired state: a controller found enabled while it should not be
  (reboot — ``$AB`` triggers a new setup —, front-panel button) is put to
  sleep again at once;
- an offer: ``$SC amps V`` (volatile: no EEPROM wear, lost at reboot) then
  ``$FE``; whole amperes, rounded down; ``$NK amps`` = clamped by the
  controller, taken as the applied value;
- unavailable: ``$FD`` (pilot −12 V: state F);
- **heartbeat supervision**: ``$SY interval current`` at setup, then a
  ``$SY`` pulse every third of the interval. If the agent dies, the
  controller falls back to ``heartbeat_current_a`` by itself after
  ``heartbeat_interval_s``. A pulse answered ``$NK`` means a pulse was
  missed: the driver acknowledges (``$SY 165``) and reapplies its state.
  N.B. stock OpenEVSE firmware clamps the fallback to its minimum (6 A): on
  it, supervision limits a car left charging to 6 A rather than stopping it
  (``tools/rapi_sim.py`` models a firmware that stops below the minimum,
  and the stock behaviour with ``stock_heartbeat=True``);
- faults (evse state → OCPP): 05 diode check → ``ev_communication_error``;
  06 GFCI, 07 no ground, 09 GFI self-test → ``ground_failure``; 08 stuck
  relay, 0E relay closure → ``power_switch_failure``; 0A over-temperature →
  ``high_temperature``; 0B over-current → ``over_current_failure``; anything
  else → ``other_error``. Vendor codes name the RAPI state. The driver does
  not send ``$FS``/``$FE`` while the controller is in a fault state (that
  would mask the fault); the controller keeps its relay open itself.

The transport is a parameter: an object with ``async open() -> (reader,
writer)`` and ``async close()`` (``hal.serial_port.SerialPort`` for a tty or
``socket://``, ``StreamTransport`` for an existing stream pair). Portable
core: Event, Lock, create_task, wait_for only.
"""

import asyncio
import logging

from hal.errors import CommunicationError, HalConfigurationError
from hal.runtime.aio import cancel_and_wait, wait_for
from hal.evse_common import NOT_ANSWERING, PolledEvseController, check_number, vendor_code
from hal.interfaces import CP_A, CP_B, CP_C, CP_D, CP_F, NO_ERROR, EvseStatus, Meter, MeterReading

log = logging.getLogger(__name__)

# EVSE states (evsestate / pilotstate fields).
STATE_UNKNOWN = 0x00
STATE_A, STATE_B, STATE_C, STATE_D = 0x01, 0x02, 0x03, 0x04
STATE_SLEEPING = 0xFE
STATE_DISABLED = 0xFF
PILOT_STATES = {STATE_A: CP_A, STATE_B: CP_B, STATE_C: CP_C, STATE_D: CP_D}

# Fault states → (OCPP ChargePointErrorCode, what the firmware calls it).
FAULTS = {
    0x05: ("ev_communication_error", "diode check failed"),
    0x06: ("ground_failure", "GFCI fault"),
    0x07: ("ground_failure", "no ground"),
    0x08: ("power_switch_failure", "stuck relay"),
    0x09: ("ground_failure", "GFI self-test failed"),
    0x0A: ("high_temperature", "over temperature"),
    0x0B: ("over_current_failure", "over current"),
    0x0E: ("power_switch_failure", "relay closure fault"),
}

# vflags bits.
VFLAG_HARD_FAULT = 0x0002
VFLAG_AUTH_LOCKED = 0x0008
VFLAG_RELAY_CLOSED = 0x0040
VFLAG_EV_CONNECTED = 0x0100

HS_ACK_COOKIE = 165  # $SY 165: acknowledge a missed heartbeat pulse


class RapiError(CommunicationError):
    """A RAPI exchange failed."""


class RapiChecksumError(RapiError):
    """A line whose checksum is wrong (or missing where one is required)."""


class RapiTimeoutError(RapiError):
    """No reply to a command."""


def xor_checksum(text: str) -> int:
    x = 0
    for b in text.encode("ascii", "replace"):
        x ^= b
    return x


def sum_checksum(text: str) -> int:
    return sum(text.encode("ascii", "replace")) & 0xFF


def encode_line(kind: str, params=(), seq: int | None = None) -> bytes:
    """A RAPI line: ``$kind p1 p2 [:ss]^xk\\r`` (commands, and replies in simulators)."""
    body = "$" + kind
    if params:
        body += " " + " ".join(str(p) for p in params)
    if seq is not None:
        body += " :%02X" % seq
    return ("%s^%02X\r" % (body, xor_checksum(body))).encode("ascii")


class RapiMessage:
    """One decoded line: ``kind`` (``OK``, ``NK``, ``AT``…, or a command such as ``GS``),
    its ``params`` (strings) and its sequence id (None when absent)."""

    __slots__ = ("kind", "params", "seq")

    def __init__(self, kind: str, params: list, seq: int | None = None) -> None:
        self.kind = kind
        self.params = params
        self.seq = seq

    @property
    def ok(self) -> bool:
        return self.kind == "OK"

    def __repr__(self) -> str:
        return "RapiMessage(%s %s%s)" % (self.kind, " ".join(self.params),
                                         "" if self.seq is None else " :%02X" % self.seq)


def decode_line(line, require_checksum: bool = True) -> RapiMessage:
    """Decode one line (without its ``\\r``). Raises ``RapiChecksumError`` when the
    checksum is wrong or missing (unless ``require_checksum`` is False), ``RapiError``
    when it is not a RAPI line at all."""
    if isinstance(line, (bytes, bytearray)):
        line = bytes(line).decode("ascii", "replace")
    line = line.strip()
    start = line.rfind("$")
    if start < 0:
        raise RapiError("not a RAPI line: %r" % line)
    line = line[start:]  # noise before the start of a line is dropped
    if "^" in line:
        body, _, ck = line.rpartition("^")
        if _hex(ck) != xor_checksum(body):
            raise RapiChecksumError("bad checksum in %r" % line)
    elif "*" in line:
        body, _, ck = line.rpartition("*")
        if _hex(ck) != sum_checksum(body):
            raise RapiChecksumError("bad checksum in %r" % line)
    elif require_checksum:
        raise RapiChecksumError("no checksum in %r" % line)
    else:
        body = line
    tokens = body[1:].split()
    if not tokens:
        raise RapiError("empty RAPI line %r" % line)
    seq = None
    if len(tokens) > 1 and tokens[-1].startswith(":"):
        seq = _hex(tokens[-1][1:])
        if seq is None:
            raise RapiError("bad sequence id in %r" % line)
        tokens = tokens[:-1]
    return RapiMessage(tokens[0].upper(), tokens[1:], seq)


def _hex(text: str):
    if len(text) != 2:
        return None
    try:
        return int(text, 16)
    except ValueError:
        return None


class RapiStats:
    __slots__ = ("commands", "replies", "timeouts", "checksum_errors", "garbled", "stale", "notifications")

    def __init__(self) -> None:
        for k in self.__slots__:
            setattr(self, k, 0)

    def __repr__(self) -> str:
        return "RapiStats(%s)" % ", ".join("%s=%d" % (k, getattr(self, k)) for k in self.__slots__)


class RapiLink:
    """Commands and replies over one (reader, writer) stream pair, and the
    asynchronous notifications in between (passed to ``on_notification``)."""

    def __init__(self, reader, writer, *, timeout_s: float = 1.0, retries: int = 2, sequence_ids: bool = True,
                 require_checksum: bool = True, on_notification=None, name: str = "rapi") -> None:
        self.reader = reader
        self.writer = writer
        self.timeout_s = timeout_s
        self.retries = retries
        self.sequence_ids = sequence_ids
        self.require_checksum = require_checksum
        self.on_notification = on_notification
        self.name = name
        self.stats = RapiStats()
        self._lock = asyncio.Lock()
        self._got = asyncio.Event()
        self._reply = None
        self._expect = False  # the sequence id awaited (None: no ids in use); False: no command pending
        self._seq = 0
        self._task = None
        self._closed = False

    def start(self) -> None:
        self._closed = False
        self._task = asyncio.create_task(self._read_loop())

    async def stop(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        await cancel_and_wait(task)
        self._got.set()

    def _next_seq(self) -> int:
        self._seq = self._seq % 255 + 1  # 01..FF; 00 is reserved
        return self._seq

    async def command(self, kind: str, *params, timeout_s: float | None = None,
                      retries: int | None = None) -> RapiMessage:
        """Send ``$kind params…`` and return the ``$OK``/``$NK`` reply. Raises
        ``RapiTimeoutError`` after ``retries`` resends without a valid reply."""
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        retries = self.retries if retries is None else retries
        async with self._lock:
            error = None
            for _attempt in range(retries + 1):
                if self._closed:
                    raise RapiError("%s: link closed" % self.name)
                seq = self._next_seq() if self.sequence_ids else None
                self._expect = seq
                self._reply = None
                self._got.clear()
                self.stats.commands += 1
                try:
                    self.writer.write(encode_line(kind, params, seq))
                    await self.writer.drain()
                except (OSError, CommunicationError) as e:
                    raise RapiError("%s: cannot write: %s" % (self.name, e)) from None
                try:
                    await wait_for(self._got.wait(), timeout_s)
                except asyncio.TimeoutError:
                    self.stats.timeouts += 1
                    error = RapiTimeoutError("%s: no reply to $%s within %.3g s" % (self.name, kind, timeout_s))
                    log.debug("%s", error)
                    continue
                finally:
                    self._expect = False
                reply = self._reply
                if reply is None:
                    raise RapiError("%s: link closed" % self.name)
                return reply
            raise error

    async def _read_loop(self) -> None:
        buf = b""
        while True:
            try:
                data = await self.reader.read(256)
            except CommunicationError as e:
                log.error("%s: %s", self.name, e)
                data = b""
            if not data:
                log.warning("%s: end of stream", self.name)
                self._closed = True
                self._got.set()
                return
            buf += data
            while True:
                i = buf.find(b"\r")
                if i < 0:
                    break
                line, buf = buf[:i], buf[i + 1:]
                self._on_line(line)
            if len(buf) > 512:  # no line end in sight: noise
                self.stats.garbled += 1
                buf = b""

    def _on_line(self, line: bytes) -> None:
        line = line.strip(b"\n\r\x00 ")
        if not line:
            return
        try:
            msg = decode_line(line, self.require_checksum)
        except RapiChecksumError as e:
            self.stats.checksum_errors += 1
            log.debug("%s: %s", self.name, e)
            return
        except RapiError as e:
            self.stats.garbled += 1
            log.debug("%s: %s", self.name, e)
            return
        if msg.kind in ("OK", "NK"):
            expect = self._expect
            if expect is False or (msg.seq is not None and msg.seq != expect):
                self.stats.stale += 1
                log.debug("%s: stale reply %r", self.name, msg)
                return
            self.stats.replies += 1
            self._reply = msg
            self._got.set()
            return
        self.stats.notifications += 1
        if self.on_notification is not None:
            try:
                self.on_notification(msg)
            except Exception:  # a bad notification must not stop the reader
                log.exception("%s: handling %r failed", self.name, msg)


def _int(text: str, base: int = 10) -> int:
    try:
        return int(text, base)
    except (TypeError, ValueError):
        raise RapiError("bad number %r" % (text,)) from None


def status_from_state(evse_state, pilot_state, vflags: int, last_cp: str = CP_A) -> EvseStatus:
    """The status an evse state, pilot state and vflags describe (availability not applied)."""
    pilot_cp = PILOT_STATES.get(pilot_state)
    if evse_state in PILOT_STATES:
        pwm = evse_state in (STATE_B, STATE_C) and not vflags & VFLAG_AUTH_LOCKED
        return EvseStatus(PILOT_STATES[evse_state], NO_ERROR, pwm_on=pwm)
    if evse_state == STATE_DISABLED:
        return EvseStatus(CP_F, NO_ERROR)
    if evse_state in (STATE_SLEEPING, STATE_UNKNOWN, None):
        return EvseStatus(pilot_cp or last_cp, NO_ERROR)
    code, what = FAULTS.get(evse_state, ("other_error", "evse state"))
    return EvseStatus(pilot_cp or "E", code, vendor_code("RAPI state %02X %s" % (evse_state, what)))


class OpenEvseRapi(PolledEvseController):
    """An OpenEVSE controller on a RAPI ``transport`` (see the module doc)."""

    driver_name = "openevse_rapi"

    def __init__(self, transport, *, clock=None, poll_interval_s: float = 1.0, offline_after: int = 2,
                 max_current_a: float = 32.0, heartbeat_interval_s: int = 10, heartbeat_current_a: int = 0,
                 timeout_s: float = 1.0, retries: int = 2, sequence_ids: bool = True,
                 require_checksum: bool = True, name: str | None = None) -> None:
        super().__init__(clock=clock, poll_interval_s=poll_interval_s, offline_after=offline_after,
                         max_current_a=max_current_a, name=name or "openevse_rapi")
        if isinstance(heartbeat_interval_s, bool) or not isinstance(heartbeat_interval_s, int) \
                or not 0 <= heartbeat_interval_s <= 65535:
            raise HalConfigurationError("heartbeat_interval_s must be whole seconds 0..65535 (0: off), not %r"
                                        % (heartbeat_interval_s,))
        if isinstance(heartbeat_current_a, bool) or not isinstance(heartbeat_current_a, int) \
                or not 0 <= heartbeat_current_a <= 80:
            raise HalConfigurationError("heartbeat_current_a must be whole amperes 0..80, not %r"
                                        % (heartbeat_current_a,))
        check_number("timeout_s", timeout_s, 0.01, 60)
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 10:
            raise HalConfigurationError("retries must be 0..10, not %r" % (retries,))
        self.transport = transport
        self.configured_max_a = float(max_current_a)
        self.heartbeat_interval_s = heartbeat_interval_s
        self.heartbeat_current_a = heartbeat_current_a
        self.timeout_s = float(timeout_s)
        self.retries = retries
        self.sequence_ids = bool(sequence_ids)
        self.require_checksum = bool(require_checksum)
        self.link = None
        self.firmware = ""
        self.evse_state = None  # as last reported ($GS or $AT)
        self.pilot_state = None
        self.vflags = 0
        self.capacity_a = None  # current capacity the pilot advertises, as last reported
        self.missed_pulses = 0
        self.boots = 0
        self._last_pulse_s = None
        self._kick_task = None
        self._kick_setup = False
        self._kick_again = False

    # -- transport ------------------------------------------------------------------------

    async def _open_transport(self) -> None:
        reader, writer = await self.transport.open()
        self.link = RapiLink(reader, writer, timeout_s=self.timeout_s, retries=self.retries,
                             sequence_ids=self.sequence_ids, require_checksum=self.require_checksum,
                             on_notification=self._on_notification, name=self.name)
        self.link.start()

    async def _close_transport(self) -> None:
        if self.link is not None:
            await self.link.stop()
        await self.transport.close()

    async def _cancel_tasks(self) -> None:
        await super()._cancel_tasks()
        task, self._kick_task = self._kick_task, None
        await cancel_and_wait(task)

    async def kill(self) -> None:
        """Drop the link without a word to the controller, as a crashed agent would
        (tests of the heartbeat supervision). The controller is left as it is."""
        self._opened = False
        await self._cancel_tasks()
        self.online = False
        await self._close_transport()

    async def cmd(self, kind: str, *params) -> RapiMessage:
        """One command; a reply other than ``$OK``/``$NK`` never comes back."""
        if self.link is None:
            raise RapiError("%s: not open" % self.name)
        return await self.link.command(kind, *params)

    # -- hooks ----------------------------------------------------------------------------

    async def _setup(self) -> None:
        # First of all: no energy, whatever the factory state (OpenEVSE boots enabled). The state
        # is read first only so that a controller in a fault state is left alone ($FS would hide
        # the fault; the controller has opened its relay itself).
        try:
            await self._read_state()
        except RapiError as e:
            if isinstance(e, RapiTimeoutError):
                raise
            self.evse_state = None
        if not self.in_fault():
            stop = "FD" if not self.available else "FS"
            if self.evse_state != (STATE_DISABLED if stop == "FD" else STATE_SLEEPING):
                reply = await self.cmd(stop)
                if not reply.ok:
                    log.warning("%s: $%s refused at setup: %r", self.name, stop, reply)
        if self.heartbeat_interval_s:
            reply = await self.cmd("SY", self.heartbeat_interval_s, self.heartbeat_current_a)
            if not reply.ok:
                log.warning("%s: heartbeat supervision refused (%r): a dead agent leaves the controller "
                            "as it is", self.name, reply)
            self._last_pulse_s = self.clock.monotonic()
        reply = await self.cmd("GC")
        if reply.ok and len(reply.params) >= 4:
            min_a, hw_max_a, _pilot_a, max_a = (_int(p) for p in reply.params[:4])
            self.min_current_a = max(6.0, float(min_a))
            limit = max_a or hw_max_a
            self.max_current_a = min(self.configured_max_a, float(limit)) if limit >= self.min_current_a \
                else self.configured_max_a
        if not self.firmware:
            reply = await self.cmd("GV")
            if reply.ok and reply.params:
                self.firmware = reply.params[0]
                log.info("%s: OpenEVSE firmware %s, %.0f..%.0f A", self.name, self.firmware,
                         self.min_current_a, self.max_current_a)
        self.capacity_a = None  # unknown until reported: $SC is sent with the first offer

    async def _apply(self) -> None:
        await self._reconcile(force_current=True)

    async def _poll(self) -> EvseStatus:
        await self._heartbeat()
        await self._read_state()
        if await self._reconcile():
            await self._read_state()
        return self._status()

    async def _safe_stop(self) -> None:
        if self.evse_state not in (STATE_SLEEPING, STATE_DISABLED) and not self.in_fault():
            await self.cmd("FS")

    def _next_delay_s(self) -> float:
        delay = self.poll_interval_s
        if self.heartbeat_interval_s and self._last_pulse_s is not None and self.online:
            due = self._last_pulse_s + self.heartbeat_interval_s / 3.0 - self.clock.monotonic()
            delay = min(delay, max(0.0, due))
        return delay

    # -- pieces ---------------------------------------------------------------------------

    async def _heartbeat(self) -> None:
        if not self.heartbeat_interval_s:
            return
        now = self.clock.monotonic()
        if self._last_pulse_s is not None and now - self._last_pulse_s < self.heartbeat_interval_s / 3.0:
            return
        reply = await self.cmd("SY")
        self._last_pulse_s = now
        if not reply.ok:  # a pulse was missed: the controller fell back to the heartbeat current
            self.missed_pulses += 1
            log.warning("%s: the controller missed a heartbeat pulse and fell back to %d A; "
                        "acknowledging and restoring the state", self.name, self.heartbeat_current_a)
            await self.cmd("SY", HS_ACK_COOKIE)
            self.capacity_a = None

    async def _read_state(self) -> None:
        reply = await self.cmd("GS")
        if not reply.ok or len(reply.params) < 4:
            raise RapiError("%s: bad $GS reply %r" % (self.name, reply))
        self.evse_state = _int(reply.params[0], 16)
        self.pilot_state = _int(reply.params[2], 16)
        self.vflags = _int(reply.params[3], 16)

    def in_fault(self) -> bool:
        es = self.evse_state
        return es is not None and es not in PILOT_STATES and es not in (STATE_SLEEPING, STATE_DISABLED)

    def needs_reconcile(self) -> bool:
        """Whether the controller's last reported state disagrees with the desired one."""
        es = self.evse_state
        if es is None or self.in_fault():
            return False
        if not self.available:
            return es != STATE_DISABLED
        amps = int(self.offer_a())
        if amps <= 0:
            return es != STATE_SLEEPING
        return es in (STATE_SLEEPING, STATE_DISABLED) or self.capacity_a is None or self.capacity_a > amps

    async def _reconcile(self, force_current: bool = False) -> bool:
        """Bring the controller to the desired state; True if a command changed it."""
        if self.evse_state is None or self.in_fault():
            return False  # unknown yet, or the controller is handling a fault: do not mask it
        es = self.evse_state
        if not self.available:
            if es != STATE_DISABLED:
                await self.cmd("FD")
                return True
            return False
        amps = int(self.offer_a())
        if amps <= 0:
            if es != STATE_SLEEPING:
                if es in PILOT_STATES:
                    log.info("%s: controller in state %02X while no current is offered: sleep", self.name, es)
                await self.cmd("FS")
                return True
            return False
        changed = False
        if force_current or self.capacity_a is None or self.capacity_a != amps:
            reply = await self.cmd("SC", amps, "V")
            if reply.params:
                self.capacity_a = _int(reply.params[0])
                if not reply.ok:
                    log.info("%s: controller clamped %d A to %d A", self.name, amps, self.capacity_a)
            changed = True
        if es in (STATE_SLEEPING, STATE_DISABLED):
            reply = await self.cmd("FE")
            if not reply.ok:
                raise RapiError("%s: $FE refused: %r" % (self.name, reply))
            changed = True
        return changed

    def _status(self) -> EvseStatus:
        return self.unavailable_status(status_from_state(self.evse_state, self.pilot_state, self.vflags,
                                                         self._last_cp()))

    # -- notifications (called by the link's reader task; must not block) ----------------

    def _on_notification(self, msg: RapiMessage) -> None:
        if msg.kind == "AT" and len(msg.params) >= 4:
            try:
                es, ps = _int(msg.params[0], 16), _int(msg.params[1], 16)
                cap, vf = _int(msg.params[2]), _int(msg.params[3], 16)
            except RapiError as e:
                log.debug("%s: bad $AT %r: %s", self.name, msg, e)
                return
            self.evse_state, self.pilot_state, self.capacity_a, self.vflags = es, ps, cap, vf
            if self.online:
                self._publish(self._status())
                if self.needs_reconcile():
                    self._kick()
        elif msg.kind == "AB":
            self.boots += 1
            log.warning("%s: controller booted (%s): setting it up again", self.name, " ".join(msg.params))
            self.capacity_a = None
            self._kick(setup=True)
        else:
            log.debug("%s: notification %r", self.name, msg)

    def _kick(self, setup: bool = False) -> None:
        """Run a poll (and a setup) now, from a task of its own."""
        if not self._opened:
            return
        self._kick_setup = self._kick_setup or setup
        if self._kick_task is not None and not self._kick_task.done():
            self._kick_again = True
            return
        self._kick_task = asyncio.create_task(self._kicked())

    async def _kicked(self) -> None:
        while True:
            self._kick_again = False
            setup, self._kick_setup = self._kick_setup, False
            await self._cycle(setup=setup)
            if not self._kick_again and not self._kick_setup:
                return


class RapiEnergyCounter:
    """The import energy register an OpenEVSE's counters describe, in whole Wh.

    ``$GU`` gives the Watt-seconds of the current (or last) session and the
    Wh total of past sessions; the firmware folds a session into the total
    (rounded down to whole Wh) when the EV is unplugged, and keeps reporting
    the finished session's Watt-seconds until the next plug-in. Counting
    ``total + session`` blindly would count a finished session twice, so the
    fold is recognised from the counters themselves: the total grew by
    exactly the session's whole Wh while the session counter did not move.
    """

    def __init__(self) -> None:
        self.total_wh = None
        self.session_ws = None
        self.folded = False  # the session counter is already included in the total
        self._folded_ws = None

    def update(self, session_ws: int, total_wh: int, ev_connected: bool) -> int:
        if self.total_wh is None:
            self.folded = not ev_connected  # a session seen finished at start is in the total
        elif total_wh > self.total_wh:  # a session ended since the last reading
            self.folded = session_ws >= self.session_ws and total_wh - self.total_wh == session_ws // 3600
        elif total_wh == self.total_wh and self.folded and session_ws != self._folded_ws:
            self.folded = False  # a new session started (its counter was reset)
        self._folded_ws = session_ws if self.folded else None
        self.total_wh, self.session_ws = total_wh, session_ws
        return total_wh + (0 if self.folded else session_ws // 3600)


class OpenEvseMeter(Meter):
    """An energy meter from an OpenEVSE's own counters (``$GU``, ``$GG``): for
    boards without a separate meter. Energy in whole Wh, never backwards
    (a counter that goes back, e.g. after ``$FC``, reads as missing); current
    and voltage from the controller's ammeter and voltage setting (a
    controller without an ammeter reports the current as missing).

    ``phases``: the controller measures one phase; with 3 the current is taken
    as the same on every phase (as the firmware's THREEPHASE build does)."""

    def __init__(self, evse: OpenEvseRapi, *, phases: int = 1, clock=None) -> None:
        if phases not in (1, 3):
            raise HalConfigurationError("openevse meter phases must be 1 or 3, not %r" % (phases,))
        self.evse = evse
        self.phases = phases
        self.clock = clock or evse.clock
        self.counter = RapiEnergyCounter()
        self.energy_high_wh = None
        self.last_reading = None

    async def read(self) -> MeterReading:
        evse = self.evse
        if not evse.online or evse.link is None:
            raise CommunicationError("%s: %s" % (evse.name, NOT_ANSWERING))
        gu = await evse.cmd("GU")
        gg = await evse.cmd("GG")
        if not gu.ok or len(gu.params) < 2:
            raise RapiError("%s: $GU refused or short: %r" % (evse.name, gu))
        session_ws, total_wh = _int(gu.params[0]), _int(gu.params[1])
        energy_wh = self._monotonic(self.counter.update(session_ws, total_wh, evse.status.ev_connected))
        current = voltage = None
        if gg.ok and len(gg.params) >= 2:
            ma, mv = _int(gg.params[0]), _int(gg.params[1])
            current = ma / 1000.0 if ma >= 0 else None
            voltage = mv / 1000.0 if mv > 0 else None
        power = current * voltage * self.phases if current is not None and voltage is not None else None
        n = self.phases
        reading = MeterReading(
            energy_wh=float(energy_wh) if energy_wh is not None else None, power_w=power,
            current_a=tuple(current if i < n else None for i in range(3)),
            voltage_v=tuple(voltage if i < n else None for i in range(3)),
            timestamp=self.clock.time())
        self.last_reading = reading
        return reading

    def _monotonic(self, energy_wh: int):
        high = self.energy_high_wh
        if high is not None and energy_wh < high:
            log.warning("%s: energy counter went backwards (%d Wh < %d Wh): reported as missing",
                        self.evse.name, energy_wh, high)
            return None
        self.energy_high_wh = energy_wh
        return energy_wh
