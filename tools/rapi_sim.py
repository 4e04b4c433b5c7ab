"""An OpenEVSE simulator speaking RAPI on a pseudo-terminal (or TCP).

It models the firmware's state machine as far as an agent sees it:

- states 01 A / 02 B / 03 C from a simulated EV (``hal.sim.SimEv``: plugged in
  → B with PWM; the EV wanting energy → C, relay closed), FE sleeping (pilot
  +12 V, relay open), FF disabled (pilot −12 V), and the fault states (05
  diode check, 06 GFCI, 07 no ground, 08 stuck relay, 0A over-temperature,
  0B over-current…) injected with ``fault(state)``;
- factory "auto-start": at power-up the controller is enabled, so a plugged
  EV charges at the EEPROM current until a host says otherwise
  (``auto_start=False``: boots sleeping); ``reboot()`` (or ``$FR``) sends
  ``$AB 00 fw`` and starts over, volatile settings lost;
- ``$AT evse pilot amps vflags`` on every state change, written *before* the
  reply of the command that caused it (as the firmware does in ``$FS``);
  ``notify_before_reply = n`` adds one before each of the next n replies;
- commands ``FE FD FS FR SC GS GC GG GU GV G0 GY SY S4``; checksums checked
  (``^`` XOR or ``*`` sum; a wrong one is answered ``$NK``), sequence ids
  echoed; ``corrupt_replies = n`` sends the next n replies with a wrong
  checksum; ``silent = True`` answers nothing (a dead controller);
- heartbeat supervision (``$SY interval amps``): without a pulse for
  ``interval`` seconds of the injected clock the controller falls back by
  itself: below the minimum current it *stops charging* (sleeps); with
  ``stock_heartbeat=True`` it behaves as stock firmware does, which clamps
  the fallback to the minimum (6 A) and keeps charging;
- energy: Watt-seconds of the session (reset at plug-in) and Wh total
  (the session folded in, rounded down, at unplug), on the injected clock.

Command line (a console on stdin drives the EV and the faults)::

    python -m tools.rapi_sim --pty            # prints the pty the agent opens
    python -m tools.rapi_sim --tcp-port 2323  # RAPI over TCP (socket://)

In-process::

    sim = RapiSim(clock=clock)
    link = await sim.start_pty()   # the driver opens link.a_path at 115200
    sim.plug(); sim.fault(0x06); sim.clear_fault(); sim.reboot()
    await sim.stop()
"""

import asyncio
import logging
import sys

from hal.runtime.clock import Clock
from hal.evse_rapi import (HS_ACK_COOKIE, STATE_A, STATE_B, STATE_C, STATE_DISABLED, STATE_SLEEPING, STATE_UNKNOWN,
                           VFLAG_AUTH_LOCKED, VFLAG_EV_CONNECTED, VFLAG_HARD_FAULT, VFLAG_RELAY_CLOSED, RapiError,
                           decode_line, encode_line)
from hal.sim import SimEv
from tools import sim_cli

log = logging.getLogger(__name__)

FAULT_NAMES = {"diode": 0x05, "gfci": 0x06, "ground": 0x07, "stuck_relay": 0x08, "gfi_test": 0x09,
               "temperature": 0x0A, "overcurrent": 0x0B, "relay_closure": 0x0E}
HS_NONE, HS_ACKED, HS_MISSED = 0, 1, 2


class RapiSim(sim_cli.StopOnExit):
    """The simulated controller and its EV. See the module doc."""

    def __init__(self, *, clock=None, auto_start: bool = True, firmware: str = "8.2.2",
                 min_current_a: int = 6, max_current_a: int = 32, hw_max_current_a: int = 80,
                 current_a: int = 32, voltage_mv: int = 230000, ammeter: bool = True,
                 stock_heartbeat: bool = False, sequence_ids: bool = True, speed: float = 1.0,
                 ev: SimEv | None = None) -> None:
        self.clock = clock or Clock()
        self.auto_start = auto_start
        self.firmware = firmware
        self.min_current_a = min_current_a
        self.max_current_a = max_current_a
        self.hw_max_current_a = hw_max_current_a
        self.eeprom_current_a = current_a
        self.voltage_mv = voltage_mv
        self.ammeter = ammeter
        self.stock_heartbeat = stock_heartbeat
        self.sequence_ids = sequence_ids
        self.speed = speed
        self.ev = ev or SimEv()
        # Knobs for tests.
        self.silent = False
        self.notify_before_reply = 0
        self.corrupt_replies = 0
        # Counters and records.
        self.received = []  # decoded commands, in order
        self.checksum_errors = 0
        self.notifications_sent = 0
        # Heartbeat supervision (EEPROM in the firmware: survives a reboot).
        self.hs_interval_s = 0
        self.hs_current_a = 0
        self.hs_trigger = HS_NONE
        self.hs_expirations = 0
        self.hs_last_pulse = self.clock.monotonic()
        self._hs_changed = asyncio.Event()
        # Energy.
        self.session_ws = 0.0
        self.total_wh = 0
        self.in_session = False
        self._last_t = self.clock.monotonic()
        # The connection and the tasks.
        self._writer = None
        self._tasks = []
        self._server = None
        self._link = None
        self._port = None
        self._boot(announce=False)

    # -- the state machine ----------------------------------------------------------------

    def _boot(self, announce: bool = True) -> None:
        self.capacity_a = min(self.eeprom_current_a, self.max_current_a)
        self.auth_locked = False
        self.fault_state = None
        self.evse_state = STATE_UNKNOWN if self.auto_start else STATE_SLEEPING
        self.relay_closed = False
        self.elapsed_s = 0
        self._reported = None
        if announce:
            self._send("AB", ["00", self.firmware])
        self._evaluate(force_report=announce)

    def reboot(self) -> None:
        """Power cycle (or ``$FR``): ``$AB``, volatile settings lost, auto-start again."""
        self._advance()
        self._boot(announce=True)

    @property
    def pilot_state(self) -> int:
        if self.evse_state == STATE_DISABLED:
            return STATE_UNKNOWN  # pilot at -12 V: the EV cannot be seen
        if not self.ev.plugged:
            return STATE_A
        pwm = self.evse_state in (STATE_B, STATE_C, STATE_UNKNOWN) and self.fault_state is None
        return STATE_C if pwm and not self.ev.full and not self.auth_locked else STATE_B

    @property
    def vflags(self) -> int:
        v = 0
        if self.relay_closed:
            v |= VFLAG_RELAY_CLOSED
        if self.ev.plugged and self.evse_state != STATE_DISABLED:
            v |= VFLAG_EV_CONNECTED
        if self.auth_locked:
            v |= VFLAG_AUTH_LOCKED
        if self.fault_state is not None:
            v |= VFLAG_HARD_FAULT
        return v

    @property
    def delivering(self) -> bool:
        """The relay is closed: the EV charges."""
        return self.relay_closed

    def _evaluate(self, force_report: bool = False) -> None:
        """Recompute the state after any change; send ``$AT`` if it changed."""
        self._advance()
        plugged = self.ev.plugged
        if plugged and not self.in_session:
            self._start_session()
        elif not plugged and self.in_session:
            self._end_session()
        if self.fault_state is not None:
            self.evse_state = self.fault_state
        elif self.evse_state in (STATE_SLEEPING, STATE_DISABLED):
            pass
        elif not plugged:
            self.evse_state = STATE_A
        elif self.ev.full or self.auth_locked or self.capacity_a < self.min_current_a:
            self.evse_state = STATE_B
        else:
            self.evse_state = STATE_C
        self.relay_closed = self.evse_state == STATE_C
        report = (self.evse_state, self.pilot_state, self.capacity_a, self.vflags)
        if report != self._reported or force_report:
            self._reported = report
            self._send("AT", ["%02x" % self.evse_state, "%02x" % self.pilot_state, str(self.capacity_a),
                              "%04x" % self.vflags])

    def _advance(self) -> None:
        now = self.clock.monotonic()
        dt, self._last_t = max(0.0, now - self._last_t), now
        if getattr(self, "relay_closed", False) and dt > 0:
            self.session_ws += self.power_w() * dt * self.speed
            self.elapsed_s += dt * self.speed

    def current_ma(self) -> int:
        if not self.relay_closed:
            return 0
        return int(self.ev.draw_a(self.capacity_a) * 1000)

    def power_w(self) -> float:
        return self.current_ma() / 1000.0 * self.voltage_mv / 1000.0

    def _start_session(self) -> None:
        self._end_session()
        self.session_ws = 0.0
        self.elapsed_s = 0
        self.in_session = True

    def _end_session(self) -> None:
        if self.in_session:
            self.in_session = False
            if self.session_ws:
                self.total_wh += int(self.session_ws) // 3600

    # -- the EV and faults ----------------------------------------------------------------

    def plug(self) -> None:
        self._advance()
        self.ev.plug()
        self._evaluate()

    def unplug(self) -> None:
        self._advance()
        self.ev.unplug()
        self._evaluate()

    def ev_full(self, full: bool = True) -> None:
        self._advance()
        self.ev.full = bool(full)
        self._evaluate()

    def fault(self, state) -> None:
        """Enter a fault state (a number such as 0x06, or a name: gfci, ground, temperature…)."""
        if isinstance(state, str):
            state = FAULT_NAMES[state] if state in FAULT_NAMES else int(state, 16)
        self._advance()
        self.fault_state = int(state)
        self._evaluate()

    def clear_fault(self) -> None:
        self._advance()
        if self.fault_state is not None:
            self.fault_state = None
            self.evse_state = STATE_UNKNOWN
        self._evaluate()

    clear = clear_fault

    def status(self) -> dict:
        self._advance()
        return {"evse_state": "%02x" % self.evse_state, "pilot_state": "%02x" % self.pilot_state,
                "capacity_a": self.capacity_a, "delivering": self.delivering,
                "session_wh": round(self.session_ws / 3600.0, 3), "total_wh": self.total_wh,
                "heartbeat": (self.hs_interval_s, self.hs_current_a, self.hs_trigger), "silent": self.silent}

    # -- heartbeat supervision ------------------------------------------------------------

    async def _hs_loop(self) -> None:
        while True:
            if not self.hs_interval_s:
                self._hs_changed.clear()
                await self._hs_changed.wait()
                continue
            due = self.hs_last_pulse + self.hs_interval_s
            now = self.clock.monotonic()
            if now >= due:
                self.hs_last_pulse = now
                self._hs_expired()
                continue
            await self.clock.sleep(due - now)

    def _hs_expired(self) -> None:
        self.hs_trigger = HS_MISSED
        self.hs_expirations += 1
        self._advance()
        fallback = self.hs_current_a
        log.info("rapi sim: heartbeat missed: falling back to %d A", fallback)
        if self.stock_heartbeat or fallback >= self.min_current_a:
            if fallback < self.capacity_a:
                self.capacity_a = max(fallback, self.min_current_a)
        elif self.fault_state is None and self.evse_state != STATE_DISABLED:
            self.evse_state = STATE_SLEEPING  # stop charging
        self._evaluate()

    # -- commands -------------------------------------------------------------------------

    def handle_line(self, line: bytes) -> None:
        """Process one received line (without ``\\r``) and send the reply."""
        text = line.decode("ascii", "replace").strip()
        if not text.startswith("$"):
            return
        seq = None
        try:
            msg = decode_line(text, require_checksum=False)
        except RapiError:
            self.checksum_errors += 1
            body = text.split("^")[0].split("*")[0]
            tokens = body.split()
            if tokens and tokens[-1].startswith(":") and self.sequence_ids:
                try:
                    seq = int(tokens[-1][1:], 16)
                except ValueError:
                    seq = None
            self._reply(False, [], seq)
            return
        self.received.append(msg)
        seq = msg.seq if self.sequence_ids else None
        ok, params = self._command(msg.kind, msg.params)
        self._reply(ok, params, seq)
        if msg.kind == "FR" and ok:
            self.reboot()

    def _command(self, kind: str, p: list):
        self._advance()
        if kind == "FE":
            if self.evse_state in (STATE_SLEEPING, STATE_DISABLED):
                self.evse_state = STATE_UNKNOWN
            self._evaluate()
            return True, []
        if kind == "FD":
            if self.evse_state != STATE_DISABLED:
                self.evse_state = STATE_DISABLED
                self.fault_state = None
            self._evaluate()
            return True, []
        if kind == "FS":
            if self.evse_state != STATE_SLEEPING:
                self.evse_state = STATE_SLEEPING
                self.fault_state = None  # as the firmware: sleeping hides a fault state
            self._evaluate()
            return True, []
        if kind == "FR":
            return True, []
        if kind == "SC" and p:
            amps = int(p[0])
            limit = self.max_current_a
            if len(p) > 1 and p[1].upper() == "M":
                return False, [str(self.max_current_a)]
            ok = self.min_current_a <= amps <= limit
            amps = min(max(amps, self.min_current_a), limit)
            self.capacity_a = amps
            if not (len(p) > 1 and p[1].upper() == "V"):
                self.eeprom_current_a = amps
            self._evaluate()
            return ok, [str(amps)]
        if kind == "GS":
            return True, ["%02x" % self.evse_state, str(int(self.elapsed_s)), "%02x" % self.pilot_state,
                          "%04x" % self.vflags]
        if kind == "GC":
            return True, [str(self.min_current_a), str(self.hw_max_current_a), str(self.capacity_a),
                          str(self.max_current_a)]
        if kind == "GG":
            return True, [str(self.current_ma() if self.ammeter else -1), str(self.voltage_mv)]
        if kind == "GU":
            return True, [str(int(self.session_ws)), str(self.total_wh)]
        if kind == "GV":
            return True, [self.firmware, "5.1.0"]
        if kind == "G0":
            return True, ["2" if self.evse_state == STATE_DISABLED else "1" if self.ev.plugged else "0"]
        if kind == "GY":
            return True, [str(self.hs_interval_s), str(self.hs_current_a), str(self.hs_trigger)]
        if kind == "SY":
            return self._sy(p)
        if kind == "S4" and p:
            self.auth_locked = p[0] == "1"
            self._evaluate()
            return True, []
        return False, []

    def _sy(self, p: list):
        now = self.clock.monotonic()
        if not p:  # a pulse
            self.hs_last_pulse = now
            return self.hs_trigger != HS_MISSED, self._hs_params()
        if len(p) == 1:  # acknowledge a missed pulse
            if int(p[0]) != HS_ACK_COOKIE:
                return False, self._hs_params()
            if self.hs_trigger == HS_MISSED:
                self.hs_trigger = HS_ACKED
                if self.stock_heartbeat or self.hs_current_a >= self.min_current_a:
                    self.capacity_a = min(self.eeprom_current_a, self.max_current_a)
                    self._evaluate()
            return True, self._hs_params()
        self.hs_interval_s, self.hs_current_a = int(p[0]), int(p[1])
        self.hs_trigger = HS_NONE
        self.hs_last_pulse = now
        self._hs_changed.set()
        return True, self._hs_params()

    def _hs_params(self) -> list:
        return [str(self.hs_interval_s), str(self.hs_current_a), str(self.hs_trigger)]

    # -- the wire -------------------------------------------------------------------------

    def _send(self, kind: str, params: list, seq=None, corrupt: bool = False) -> None:
        if self._writer is None or self.silent:
            return
        data = encode_line(kind, params, seq)
        if corrupt:  # the checksum digits of a wrong line
            data = data[:-3] + (b"%02X" % ((int(data[-3:-1], 16) + 1) & 0xFF)) + b"\r"
        if kind in ("AT", "AB", "AN"):
            self.notifications_sent += 1
        try:
            self._writer.write(data)
        except Exception as e:  # the link went away
            log.debug("rapi sim: write failed: %s", e)

    def _reply(self, ok: bool, params: list, seq) -> None:
        if self.notify_before_reply > 0:
            self.notify_before_reply -= 1
            self._send("AT", ["%02x" % self.evse_state, "%02x" % self.pilot_state, str(self.capacity_a),
                              "%04x" % self.vflags])
        corrupt = self.corrupt_replies > 0
        if corrupt:
            self.corrupt_replies -= 1
        self._send("OK" if ok else "NK", params, seq, corrupt)

    async def serve(self, reader, writer) -> None:
        """Serve one connection (a stream pair) until it ends."""
        self._writer = writer
        buf = b""
        try:
            while True:
                data = await reader.read(256)
                if not data:
                    return
                buf += data
                while b"\r" in buf:
                    line, _, buf = buf.partition(b"\r")
                    if self.silent:
                        continue
                    self.handle_line(line)
                    try:
                        await writer.drain()
                    except Exception:  # the link went away
                        return
        finally:
            if self._writer is writer:
                self._writer = None

    def _start_tasks(self) -> None:
        if not self._tasks:
            self._tasks.append(asyncio.create_task(self._hs_loop()))

    async def start_serial(self, port: str, *, baudrate: int = 115200) -> None:
        """Serve RAPI on a serial port."""
        from hal.serial_port import SerialPort

        self._port = SerialPort(port, baudrate=baudrate)
        reader, writer = await self._port.open()
        self._start_tasks()
        self._tasks.append(asyncio.create_task(self.serve(reader, writer)))

    async def start_pty(self, *, baudrate: int = 115200):
        """Serve RAPI on a ``PtyLink``; returns it (the driver opens ``link.a_path``)."""
        link = await sim_cli.start_on_pty(lambda path: self.start_serial(path, baudrate=baudrate))
        self._link = link
        return link

    async def start_tcp(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Serve RAPI over TCP (one client at a time); returns the port."""
        self._start_tasks()
        self._server = await asyncio.start_server(self._tcp_client, host, port)
        return self._server.sockets[0].getsockname()[1]

    async def _tcp_client(self, reader, writer) -> None:
        task = asyncio.current_task()
        self._tasks.append(task)
        try:
            await self.serve(reader, writer)
        except asyncio.CancelledError:  # stop(): end quietly (start_server reads the task's outcome)
            pass
        finally:
            writer.close()
            if task in self._tasks:
                self._tasks.remove(task)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        if self._writer is not None and server is not None:
            self._writer.close()
        tasks, self._tasks = self._tasks, []
        await sim_cli.cancel_all(tasks)
        if server is not None:
            await server.wait_closed()
        port, self._port = self._port, None
        link, self._link = self._link, None
        await sim_cli.close_each(port, link)


def _parse(argv):
    p = sim_cli.new_parser("tools.rapi_sim", __doc__)
    sim_cli.add_transports(p, pty="RAPI", tcp="RAPI over TCP")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--no-auto-start", action="store_true", help="boot sleeping instead of enabled")
    p.add_argument("--stock-heartbeat", action="store_true",
                   help="heartbeat fallback as stock firmware (clamped to 6 A, keeps charging)")
    p.add_argument("--speed", type=float, default=1.0, help="energy time compression")
    return sim_cli.parse(p, argv)


async def _main(args) -> None:
    sim = RapiSim(auto_start=not args.no_auto_start, stock_heartbeat=args.stock_heartbeat, speed=args.speed)
    if args.pty:
        link = await sim.start_pty()
        where = "RAPI on %s at 115200 8N1" % link.a_path
    else:
        port = await sim.start_tcp(args.host, args.tcp_port)
        where = "RAPI over TCP socket://%s:%d" % (args.host, port)
    print("OpenEVSE RAPI simulator: %s (type help; fault takes a state: gfci, ground, "
          "temperature, overcurrent, 06…)" % where, flush=True)
    await sim_cli.serve_console(sim)


def main(argv=None) -> int:
    return sim_cli.run(argv, _parse, _main)


if __name__ == "__main__":
    sys.exit(main())
