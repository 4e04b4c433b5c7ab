"""A PN532 RFID reader simulator on a serial port (HSU frames), for HIL benches and tests.

It answers as a PN532 in HSU mode does: it sleeps until the wake-up preamble
(0x55), acknowledges every well-formed command frame, then answers
GetFirmwareVersion, SAMConfiguration, RFConfiguration, InListPassiveTarget
(106 kbps type A) and InRelease; a host ACK aborts a waiting command, a host
NACK repeats the last answer, a frame with a bad checksum is ignored (the
host times out waiting for its ACK) and an unknown command gets the error frame.
InListPassiveTarget without a card answers "no target" after the configured
passive activation retries, or, when they are 0xFF (the factory setting),
waits for a card as the chip does.

Serial code is real: the simulator opens its end of a ``tools.pty_link.PtyLink``
(or any serial port) with pyserial.

Command line::

    python -m tools.pn532_sim --pty                 # prints the port the agent should open
    python -m tools.pn532_sim --serial /dev/ttyUSB1
    then type on stdin:  present 04A1B2C3D4E5F6  |  remove  |  status

In-process (tests)::

    sim = Pn532Sim()
    link = await sim.start_pty()      # the reader opens link.a_path
    sim.present("04A1B2C3")           # a card in the field (until remove())
    sim.remove()
    sim.commands                      # command codes received, in order
    sim.silent = True                 # stop answering
    sim.corrupt(1)                    # spoil the checksum of the next answer
    await sim.stop()

CPython only (a tool): pyserial, the event loop's ``add_reader``.
"""

import asyncio
import logging
import sys

from hal.pn532 import (ACK, GET_FIRMWARE_VERSION, IN_LIST_PASSIVE_TARGET, IN_RELEASE, RF_CFG_MAX_RETRIES,
                       RF_CONFIGURATION, SAM_CONFIGURATION, TFI_HOST, TFI_PN532, FrameParser, build_frame)
from tools import sim_cli

log = logging.getLogger(__name__)

ERROR_FRAME = b"\x00\x00\xff\x01\xff\x7f\x81\x00"


class Pn532Sim(sim_cli.StopOnExit):
    """A simulated PN532 (see the module doc)."""

    def __init__(self, *, firmware=(0x32, 1, 6, 0x07), require_wakeup: bool = True) -> None:
        self.firmware = bytes(firmware)
        self.require_wakeup = require_wakeup
        self.awake = not require_wakeup
        self.silent = False
        self.card = None  # UID bytes of the card in the field
        self.sak = 0x08  # MIFARE Classic 1K
        self.passive_retries = 0xFF  # factory setting: wait for a card forever
        self.sam_configured = False
        self.commands = []  # command codes received
        self.wakeups = 0
        self._corrupt = 0
        self._parser = FrameParser()
        self._last_answer = None
        self._waiting = None  # the InListPassiveTarget waiting for a card
        self._serial = None
        self._link = None
        self._loop = None

    # -- the field ------------------------------------------------------------------------

    def present(self, uid) -> None:
        """Put a card in the field: ``uid`` as hex text or bytes (4, 7 or 10 bytes)."""
        uid = bytes.fromhex(uid) if isinstance(uid, str) else bytes(uid)
        if len(uid) not in (4, 7, 10):
            raise ValueError("a type A UID has 4, 7 or 10 bytes, not %d" % len(uid))
        self.card = uid
        if self._waiting is not None:
            self._waiting = None
            self._send_answer(IN_LIST_PASSIVE_TARGET, self._targets())

    def remove(self) -> None:
        self.card = None

    def corrupt(self, answers: int = 1) -> None:
        """Spoil the data checksum of the next ``answers`` answers."""
        self._corrupt += answers

    # -- serial ---------------------------------------------------------------------------

    async def start(self, port: str, baudrate: int = 115200) -> None:
        import serial

        self._loop = asyncio.get_running_loop()
        self._serial = serial.serial_for_url(port, baudrate=baudrate, timeout=0)
        self._loop.add_reader(self._serial.fileno(), self._on_readable)

    async def start_pty(self, baudrate: int = 115200):
        """Serve on a ``PtyLink``; returns it (the reader opens ``link.a_path``)."""
        link = await sim_cli.start_on_pty(lambda path: self.start(path, baudrate))
        self._link = link
        return link

    async def stop(self) -> None:
        ser, self._serial = self._serial, None
        if ser is not None:
            self._loop.remove_reader(ser.fileno())
            ser.close()
        link, self._link = self._link, None
        if link is not None:
            await link.close()

    def _write(self, data: bytes) -> None:
        if self._serial is not None and not self.silent:
            try:
                self._serial.write(data)
            except Exception as e:  # the other end went away
                log.debug("pn532 sim: write failed: %s", e)

    def _on_readable(self) -> None:
        try:
            data = self._serial.read(4096)
        except Exception:
            return
        if not data:
            return
        if not self.awake:
            i = data.find(b"\x55")
            if i < 0:
                return  # asleep: everything but the wake-up preamble is lost
            self.awake = True
            self.wakeups += 1
            data = data[i:]
        for ev in self._parser.feed(data):
            self._handle(ev)

    # -- protocol -------------------------------------------------------------------------

    def _handle(self, ev) -> None:
        kind = ev[0]
        if kind == "ack":
            if self._waiting is not None:  # the host aborts the waiting command
                self._waiting = None
            return
        if kind == "nack":
            if self._last_answer is not None:
                self._write(self._last_answer)
            return
        if kind != "frame" or ev[1] != TFI_HOST or not ev[2]:
            return  # bad checksum: ignored, the host times out
        if self.silent:
            return
        code, params = ev[2][0], ev[2][1:]
        self.commands.append(code)
        self._write(ACK)
        self._waiting = None
        if code == GET_FIRMWARE_VERSION:
            self._send_answer(code, self.firmware)
        elif code == SAM_CONFIGURATION:
            self.sam_configured = bool(params) and params[0] == 0x01
            self._send_answer(code, b"")
        elif code == RF_CONFIGURATION:
            if len(params) >= 4 and params[0] == RF_CFG_MAX_RETRIES:
                self.passive_retries = params[3]
            self._send_answer(code, b"")
        elif code == IN_LIST_PASSIVE_TARGET and len(params) >= 2 and params[1] == 0x00:
            if self.card is None and self.passive_retries == 0xFF:
                self._waiting = code  # the chip keeps trying until a card comes
                return
            self._send_answer(code, self._targets())
        elif code == IN_RELEASE:
            self._send_answer(code, b"\x00")
        else:
            self._write(ERROR_FRAME)

    def _targets(self) -> bytes:
        if self.card is None:
            return b"\x00"
        return bytes([1, 1, 0x00, 0x04 if len(self.card) == 4 else 0x44, self.sak, len(self.card)]) + self.card

    def _send_answer(self, code: int, data: bytes) -> None:
        frame = bytearray(build_frame(bytes([code + 1]) + bytes(data), TFI_PN532))
        self._last_answer = bytes(frame)
        if self._corrupt:
            self._corrupt -= 1
            frame[-2] ^= 0x01  # the data checksum
        self._write(bytes(frame))


def _parse(argv):
    p = sim_cli.new_parser("tools.pn532_sim", __doc__)
    sim_cli.add_transports(p, pty="", serial="")
    p.add_argument("--baud", type=int, default=115200)
    p.add_argument("--uid", help="a card in the field from the start (hex)")
    return sim_cli.parse(p, argv)


async def _main(args) -> None:
    sim = Pn532Sim()
    if args.uid:
        sim.present(args.uid)
    if args.pty:
        link = await sim.start_pty(args.baud)
        where = link.a_path
    else:
        await sim.start(args.serial, args.baud)
        where = args.serial
    print("PN532 simulator on %s (%d 8N1). Commands: present UID | remove | status" % (where, args.baud),
          flush=True)
    from tools.sim_console import run_console

    def status() -> str:
        return "card: %s, commands served: %d" % (sim.card.hex().upper() if sim.card else "none",
                                                 len(sim.commands))

    def present(uid: str) -> str:
        sim.present(uid)
        return status()

    def remove() -> str:
        sim.remove()
        return status()

    await sim_cli.until_stopped(sim, run_console({"present": present, "remove": remove, "status": status}))


def main(argv=None) -> int:
    return sim_cli.run(argv, _parse, _main, verbose_level=logging.DEBUG)


if __name__ == "__main__":
    sys.exit(main())
