"""EVSE controller drivers end to end against their simulators.

SimpleEVSE-WB: the real driver and the real Modbus bus adapter (pymodbus, RTU)
against ``tools/simpleevse_sim.py`` over a pseudo-terminal pair (pyserial on
/dev/pts/N on both ends, ``tools/pty_link.py`` in between). OpenEVSE: the RAPI
driver against ``tools/rapi_sim.py`` over a pty pair, and over TCP
(``socket://``). Phoenix EM-CP-PP-ETH: Modbus TCP on loopback against
``tools/phoenix_sim.py``.

Every simulator starts in its factory state — charging as soon as an EV is
plugged in — and every test checks that no energy flows before the agent
offers current. Faults are injected in the simulators (controller faults,
silence, reboots, checksum errors, notifications between command and reply);
the heartbeat supervision test runs the OpenEVSE simulator on a virtual clock.
"""

import asyncio
import contextlib
import functools
import time

import pytest

from hal.runtime.clock import VirtualClock
from hal.errors import CommunicationError, HalConfigurationError
from hal.evse_common import NOT_ANSWERING
from hal.evse_drivers import DRIVERS, build_evse, build_evse_meter
from hal.evse_phoenix import PhoenixEmCpPpEth, decode_cp
from hal.evse_rapi import (OpenEvseMeter, OpenEvseRapi, RapiChecksumError, RapiEnergyCounter, RapiError,
                           RapiLink, RapiTimeoutError, decode_line, encode_line, status_from_state)
from hal.evse_simpleevse import SimpleEvseWb, decode_status
from hal.interfaces import EvseController
from hal.modbus import BusRegistry, ModbusBus
from hal.serial_port import SerialPort, StreamTransport
from tests import harness
from tools.phoenix_sim import PhoenixSim
from tools.rapi_sim import RapiSim
from tools.simpleevse_sim import SimpleEvseSim

POLL_S = 0.05
FAST_BUS = {"timeout_s": 0.2, "retries": 0}
until = functools.partial(harness.until, timeout_s=3.0, poll_s=0.01)


def no_energy(sim) -> bool:
    return not sim.delivering


# -- SimpleEVSE-WB over Modbus RTU on a pty ------------------------------------------------


@contextlib.asynccontextmanager
async def simpleevse(plugged: bool = True, **kw):
    sim = SimpleEvseSim(**kw)
    if plugged:
        sim.plug()
    link = await sim.start_pty()
    bus = ModbusBus(transport="rtu", port=link.a_path, baudrate=9600, **FAST_BUS)
    evse = SimpleEvseWb(bus, 1, poll_interval_s=POLL_S, offline_after=2)
    try:
        yield sim, evse, link
    finally:
        await evse.close()
        await sim.stop()


async def test_simpleevse_factory_charge_on_plug_gives_no_energy_after_open():
    async with simpleevse() as (sim, evse, _link):
        assert sim.delivering, "the simulator's factory state charges a plugged EV at once"
        await evse.open()
        assert no_energy(sim) and sim.configured == 0
        assert sim.writes[0] == (1000, 0), "the first write must stop the offer"
        assert sim.settings[0] == 0, "current after boot (2000) is set to 0"
        assert evse.status.cp_state == "B" and not evse.status.pwm_on and evse.status.error_code == "no_error"
        # A reboot reloads 1000 from 2000 (now 0): still nothing offered.
        sim.reboot()
        await asyncio.sleep(3 * POLL_S)
        assert no_energy(sim)


async def test_simpleevse_reboot_into_charge_on_plug_is_corrected_by_the_poll():
    async with simpleevse(boot_current_a=16) as (sim, evse, _link):
        evse.boot_current_zero = False  # keep the factory setting in 2000
        await evse.open()
        assert sim.settings[0] == 16 and no_energy(sim)
        sim.reboot()  # 1000 = 16 again: the EV charges …
        assert sim.delivering
        await until(lambda: no_energy(sim), what="the poll to rewrite 1000 = 0")  # … for one poll at most
        assert sim.configured == 0


async def test_simpleevse_pilot_changes_are_published():
    async with simpleevse(plugged=False) as (sim, evse, _link):
        await evse.open()
        assert evse.status.cp_state == "A"
        evse.changed.clear()
        sim.plug()
        await asyncio.wait_for(evse.changed.wait(), 2)
        assert evse.status.cp_state == "B"
        await evse.set_current_limit(16)
        assert evse.status.cp_state == "C" and evse.status.pwm_on and sim.delivering
        sim.ev_full()
        await until(lambda: evse.status.cp_state == "B", what="B after the EV is full")
        sim.unplug()
        await until(lambda: evse.status.cp_state == "A", what="A after unplug")


async def test_simpleevse_current_limit_applied_and_clamped():
    async with simpleevse() as (sim, evse, _link):
        await evse.open()
        assert isinstance(evse, EvseController) and evse.min_current_a == 6 and evse.max_current_a == 32
        await evse.set_current_limit(16)
        assert sim.configured == 16 and sim.delivering
        await evse.set_current_limit(50)
        assert sim.configured == 32 and evse.current_limit_a == 32
        await evse.set_current_limit(6.9)
        assert sim.configured == 6  # whole amperes, never more than allowed
        await evse.set_current_limit(5)  # below the minimum: nothing
        assert sim.configured == 0 and no_energy(sim) and not evse.status.pwm_on
        await evse.set_current_limit(0)
        assert sim.configured == 0


async def test_simpleevse_precise_current_resolution():
    async with simpleevse(precise=True) as (sim, evse, _link):
        await evse.open()
        assert evse.scale == 100
        await evse.set_current_limit(16.5)
        assert sim.configured == 1650 and sim.delivering


async def test_simpleevse_pause_enable_and_unavailable():
    async with simpleevse() as (sim, evse, _link):
        await evse.open()
        await evse.set_current_limit(16)
        assert sim.delivering
        await evse.set_current_limit(0)  # pause
        assert no_energy(sim) and evse.status.cp_state == "B"
        await evse.set_current_limit(16)  # enable again
        assert sim.delivering
        await evse.set_available(False)
        assert no_energy(sim) and sim.configured == 0 and evse.status.cp_state == "F"
        await evse.set_current_limit(16)  # unavailable wins
        assert no_energy(sim)
        await evse.set_available(True)
        assert sim.delivering and evse.status.cp_state == "C"


@pytest.mark.parametrize("fault, code", [("rcd", "ground_failure"), ("diode", "ev_communication_error")])
async def test_simpleevse_fault_mapping(fault, code):
    async with simpleevse() as (sim, evse, _link):
        await evse.open()
        await evse.set_current_limit(16)
        sim.fault(fault)
        await until(lambda: evse.status.error_code == code, what=code)
        assert evse.status.cp_state == "E" and not evse.status.pwm_on and evse.status.vendor_error_code
        assert len(evse.status.vendor_error_code) <= 50
        sim.clear()
        await until(lambda: evse.status.error_code == "no_error", what="fault cleared")


async def test_simpleevse_device_failure_exception_is_a_fault():
    async with simpleevse() as (sim, evse, _link):
        await evse.open()
        sim.device_failure = True
        await until(lambda: evse.status.error_code == "internal_error", what="device failure")
        assert evse.status.vendor_error_code == "modbus exception 4 (device failure)"
        sim.device_failure = False
        await until(lambda: evse.status.error_code == "no_error", what="recovery")


async def test_simpleevse_silent_controller_is_reported_and_recovers():
    async with simpleevse() as (sim, evse, _link):
        await evse.open()
        await evse.set_current_limit(16)
        assert sim.delivering
        sim.silent = True
        await until(lambda: evse.status.vendor_error_code == NOT_ANSWERING, what="not answering")
        assert evse.status.error_code == "internal_error" and not evse.status.pwm_on
        assert evse.status.cp_state == "C"  # the last known pilot state is kept
        await evse.set_current_limit(0)  # the station stops offering: no exception
        with pytest.raises(CommunicationError):
            await evse.set_current_limit(16)  # an offer cannot reach it
        await evse.set_current_limit(0)
        sim.silent = False
        await until(lambda: evse.status.error_code == "no_error", what="recovery")
        assert sim.configured == 0 and no_energy(sim), "recovery first restores the desired (safe) state"


async def test_simpleevse_does_not_answer_at_open():
    async with simpleevse() as (sim, evse, _link):
        sim.silent = True
        await evse.open()  # does not raise: the status says it
        assert evse.status.error_code == "internal_error" and evse.status.vendor_error_code == NOT_ANSWERING
        sim.silent = False
        await until(lambda: evse.status.error_code == "no_error", what="first contact")
        assert no_energy(sim) and sim.configured == 0


async def test_simpleevse_missing_port_fails_open():
    bus = ModbusBus(transport="rtu", port="/dev/does-not-exist", **FAST_BUS)
    evse = SimpleEvseWb(bus, 1)
    with pytest.raises(CommunicationError, match="does not exist"):
        await evse.open()
    await evse.close()


def test_simpleevse_decode():
    regs = [16, 16, 3, 32, 0, 17, 2, 0]
    assert decode_status(regs).cp_state == "C" and decode_status(regs).pwm_on
    assert decode_status([0, 0, 5, 0, 0, 17, 1, 1]).error_code == "ground_failure"
    assert decode_status([0, 0, 5, 0, 0, 17, 1, 0]).error_code == "ev_communication_error"
    assert decode_status([0, 0, 9, 0, 0, 17, 1, 0]).error_code == "other_error"


# -- OpenEVSE over RAPI: the codec and the link (no I/O) ----------------------------------


def test_rapi_checksums_and_lines():
    assert encode_line("GS") == b"$GS^30\r"  # the example of the RAPI documentation
    assert decode_line("$FD*AE").kind == "FD"  # legacy additive checksum
    m = decode_line("$OK 03 120 03 0140 :1A^" + "%02X" % _xor("$OK 03 120 03 0140 :1A"))
    assert (m.kind, m.params, m.seq) == ("OK", ["03", "120", "03", "0140"], 0x1A)
    assert encode_line("SC", (16, "V"), 0x2B).startswith(b"$SC 16 V :2B^")
    with pytest.raises(RapiChecksumError):
        decode_line("$GS^31")
    with pytest.raises(RapiChecksumError):
        decode_line("$GS")  # a checksum is required unless told otherwise
    assert decode_line("$GS", require_checksum=False).kind == "GS"
    assert decode_line(b"\x00\xff$GS^30").kind == "GS"  # noise before the line start is dropped
    with pytest.raises(RapiError):
        decode_line("garbage")


def _xor(text: str) -> int:
    x = 0
    for b in text.encode():
        x ^= b
    return x


class ScriptedPeer:
    """A writer whose written commands are answered by ``script(line) -> [bytes to feed]``."""

    def __init__(self, reader: asyncio.StreamReader, script) -> None:
        self.reader = reader
        self.script = script
        self.lines = []

    def write(self, data: bytes) -> None:
        self.lines.append(data)
        for chunk in self.script(decode_line(data.rstrip(b"\r"))):
            if isinstance(chunk, tuple):  # (delay_s, data): answer late
                asyncio.get_running_loop().call_later(chunk[0], self.reader.feed_data, chunk[1])
            else:
                self.reader.feed_data(chunk)

    async def drain(self) -> None:
        pass

    def close(self) -> None:
        pass


async def test_rapi_notification_between_command_and_reply():
    reader = asyncio.StreamReader()
    seen = []

    def script(cmd):
        # The firmware writes $AT from inside $FS, before the reply; and a half line arrives first.
        at = encode_line("AT", ["fe", "02", "16", "0100"])
        ok = encode_line("OK", [], cmd.seq)
        return [at[:5], at[5:] + ok]

    link = RapiLink(reader, ScriptedPeer(reader, script), timeout_s=0.5, on_notification=seen.append)
    link.start()
    try:
        reply = await link.command("FS")
        assert reply.ok
        assert [(m.kind, m.params) for m in seen] == [("AT", ["fe", "02", "16", "0100"])]
        assert link.stats.notifications == 1 and link.stats.timeouts == 0
    finally:
        await link.stop()


async def test_rapi_garbled_and_stale_replies_are_dropped_and_the_command_resent():
    reader = asyncio.StreamReader()
    calls = []

    def script(cmd):
        calls.append(cmd.seq)
        if len(calls) == 1:
            bad = bytearray(encode_line("OK", ["01"], cmd.seq))
            bad[-2] ^= 0x01  # one checksum digit wrong
            late = encode_line("OK", ["stale"], cmd.seq)
            return [bytes(bad), (0.25, late)]  # and a late copy, after the resend
        return [(0.1, encode_line("OK", ["fresh"], cmd.seq))]

    link = RapiLink(reader, ScriptedPeer(reader, script), timeout_s=0.15, retries=2)
    link.start()
    try:
        reply = await link.command("GV")
        assert reply.params == ["fresh"] and calls[0] != calls[1]
        assert link.stats.checksum_errors == 1 and link.stats.timeouts == 1
        await asyncio.sleep(0.2)
        assert link.stats.stale == 1  # the late reply to the first copy was recognised
        with pytest.raises(RapiTimeoutError):
            await RapiLink(asyncio.StreamReader(), ScriptedPeer(reader, lambda c: []), timeout_s=0.05,
                           retries=1).command("GS")
    finally:
        await link.stop()


def test_rapi_status_and_fault_mapping():
    assert status_from_state(0x03, 0x03, 0x0140).cp_state == "C"
    assert status_from_state(0x03, 0x03, 0x0140).pwm_on
    assert status_from_state(0xFE, 0x02, 0x0100).cp_state == "B"
    assert not status_from_state(0xFE, 0x02, 0x0100).pwm_on
    assert status_from_state(0xFF, 0x00, 0).cp_state == "F"
    expected = {0x05: "ev_communication_error", 0x06: "ground_failure", 0x07: "ground_failure",
                0x08: "power_switch_failure", 0x09: "ground_failure", 0x0A: "high_temperature",
                0x0B: "over_current_failure", 0x0E: "power_switch_failure", 0x0C: "other_error"}
    for state, code in expected.items():
        s = status_from_state(state, 0x02, 0x0102)
        assert (s.error_code, s.cp_state, s.pwm_on) == (code, "B", False), hex(state)
        assert s.vendor_error_code.startswith("RAPI state %02X" % state) and len(s.vendor_error_code) <= 50


def test_rapi_energy_counter_never_counts_a_session_twice():
    c = RapiEnergyCounter()
    assert c.update(0, 1000, ev_connected=True) == 1000
    assert c.update(3600 * 5 + 1800, 1000, True) == 1005  # whole Wh of the running session
    # Unplugged: the firmware folds 5 Wh into the total; the session counter stays.
    assert c.update(3600 * 5 + 1800, 1005, ev_connected=True) == 1005  # read as connected: no double count
    assert c.update(3600 * 5 + 1800, 1005, False) == 1005
    assert c.update(0, 1005, True) == 1005  # a new session
    assert c.update(7200, 1005, True) == 1007
    # That session ended (folded: 1007) and a new one started before the next reading.
    assert c.update(3600, 1007, True) == 1008
    c2 = RapiEnergyCounter()
    assert c2.update(9000, 2002, ev_connected=False) == 2002  # first reading: a finished session is in the total
    assert c2.update(100, 2002, True) == 2002


# -- OpenEVSE over RAPI end to end on a pty ------------------------------------------------


@contextlib.asynccontextmanager
async def openevse(plugged: bool = True, sim_clock=None, driver_kw=None, **kw):
    sim = RapiSim(clock=sim_clock, **kw)
    if plugged:
        sim.plug()
    link = await sim.start_pty()
    options = {"poll_interval_s": POLL_S, "timeout_s": 0.2, "retries": 1, "heartbeat_interval_s": 0}
    options.update(driver_kw or {})
    evse = OpenEvseRapi(SerialPort(link.a_path), **options)
    try:
        yield sim, evse, link
    finally:
        await evse.close()
        await sim.stop()


def commands(sim) -> list:
    return [m.kind for m in sim.received]


async def test_openevse_auto_start_gives_no_energy_after_open():
    async with openevse() as (sim, evse, _link):
        assert sim.delivering, "factory auto-start: a plugged EV charges at once"
        await evse.open()
        assert no_energy(sim) and sim.evse_state == 0xFE
        assert commands(sim)[:2] == ["GS", "FS"], "the state is read, then the controller put to sleep"
        assert evse.status.cp_state == "B" and not evse.status.pwm_on and evse.status.error_code == "no_error"


async def test_openevse_reboot_is_put_back_to_sleep():
    async with openevse() as (sim, evse, _link):
        await evse.open()
        n = len(sim.received)
        sim.reboot()  # $AB, auto-start: charging again …
        await until(lambda: no_energy(sim), what="the driver to react to $AB")  # … put to sleep at once
        assert "FS" in commands(sim)[n:] and evse.boots == 1


async def test_openevse_notifications_publish_pilot_changes_without_polling():
    async with openevse(plugged=False, driver_kw={"poll_interval_s": 60}) as (sim, evse, _link):
        await evse.open()
        assert evse.status.cp_state == "A"
        n = len(sim.received)
        sim.plug()
        await until(lambda: evse.status.cp_state == "B", timeout_s=1, what="$AT B")
        sim.unplug()
        await until(lambda: evse.status.cp_state == "A", timeout_s=1, what="$AT A")
        assert "GS" not in commands(sim)[n:], "published from $AT, not from a poll"


async def test_openevse_current_limit_is_volatile_and_clamped():
    async with openevse(max_current_a=20) as (sim, evse, _link):
        await evse.open()
        assert (evse.min_current_a, evse.max_current_a) == (6, 20)  # from $GC
        await evse.set_current_limit(16)
        assert sim.delivering and sim.capacity_a == 16 and sim.eeprom_current_a == 32
        sc = [m.params for m in sim.received if m.kind == "SC"]
        assert sc[-1] == ["16", "V"]
        await evse.set_current_limit(32)
        assert sim.capacity_a == 20 and evse.current_limit_a == 20
        await evse.set_current_limit(12.8)
        assert sim.capacity_a == 12
        await evse.set_current_limit(3)
        assert no_energy(sim) and sim.evse_state == 0xFE


async def test_openevse_pause_enable_and_unavailable():
    async with openevse() as (sim, evse, _link):
        await evse.open()
        await evse.set_current_limit(16)
        assert sim.delivering and evse.status.cp_state == "C" and evse.status.pwm_on
        await evse.set_current_limit(0)
        assert no_energy(sim) and sim.evse_state == 0xFE and evse.status.cp_state == "B"
        await evse.set_current_limit(16)
        assert sim.delivering
        await evse.set_available(False)
        assert no_energy(sim) and sim.evse_state == 0xFF and evse.status.cp_state == "F"
        await evse.set_available(True)
        assert sim.delivering


@pytest.mark.parametrize("fault, code", [("gfci", "ground_failure"), ("temperature", "high_temperature"),
                                         ("overcurrent", "over_current_failure"), ("diode", "ev_communication_error"),
                                         ("stuck_relay", "power_switch_failure"), ("0C", "other_error")])
async def test_openevse_fault_mapping(fault, code):
    async with openevse(driver_kw={"poll_interval_s": 60}) as (sim, evse, _link):
        await evse.open()
        await evse.set_current_limit(16)
        n = len(sim.received)
        sim.fault(fault)
        await until(lambda: evse.status.error_code == code, timeout_s=1, what=code)
        assert no_energy(sim) and not evse.status.pwm_on
        await evse.set_current_limit(0)  # the station reacts: nothing is sent that would hide the fault
        assert "FS" not in commands(sim)[n:] and evse.status.error_code == code
        sim.clear_fault()  # the firmware resumes enabled …
        await until(lambda: evse.status.error_code == "no_error" and sim.evse_state == 0xFE, timeout_s=1,
                    what="cleared and asleep")  # … and the driver puts it to sleep
        assert no_energy(sim)


async def test_openevse_notification_before_every_reply_and_checksum_errors():
    async with openevse() as (sim, evse, link):
        await evse.open()
        sim.notify_before_reply = 5
        await evse.set_current_limit(16)
        assert sim.delivering and evse.link.stats.timeouts == 0
        sim.corrupt_replies = 1
        await evse.set_current_limit(10)
        assert sim.capacity_a == 10
        assert evse.link.stats.checksum_errors == 1 and evse.link.stats.timeouts == 1
        link.corrupt(1)  # a bit flipped on the wire
        await until(lambda: evse.link.stats.checksum_errors + evse.link.stats.garbled == 2, what="wire error")
        await asyncio.sleep(5 * POLL_S)
        assert evse.status.error_code == "no_error" and sim.delivering


async def test_openevse_controller_checks_our_checksums():
    async with openevse(driver_kw={"poll_interval_s": 60}) as (sim, evse, _link):
        await evse.open()
        evse.link.writer.write(b"$GS^00\r")  # a wrong checksum: the controller answers $NK
        await until(lambda: sim.checksum_errors == 1 and evse.link.stats.stale == 1, what="the $NK")


async def test_openevse_silent_controller_is_reported_and_recovers():
    async with openevse() as (sim, evse, _link):
        await evse.open()
        await evse.set_current_limit(16)
        sim.silent = True
        await until(lambda: evse.status.vendor_error_code == NOT_ANSWERING, what="not answering")
        assert evse.status.error_code == "internal_error" and not evse.status.pwm_on
        await evse.set_current_limit(0)
        with pytest.raises(CommunicationError):
            await evse.set_current_limit(16)
        sim.silent = False
        await until(lambda: evse.status.error_code == "no_error", what="recovery")
        assert no_energy(sim) and sim.evse_state == 0xFE


async def test_openevse_heartbeat_supervision_stops_charging_when_the_agent_dies():
    vclock = VirtualClock()
    async with openevse(sim_clock=vclock, driver_kw={"heartbeat_interval_s": 1, "heartbeat_current_a": 0}) as (
            sim, evse, _link):
        await evse.open()
        assert (sim.hs_interval_s, sim.hs_current_a) == (1, 0), "armed at open"
        await evse.set_current_limit(16)
        assert sim.delivering
        def pulses() -> int:
            return sum(1 for m in sim.received if m.kind == "SY" and not m.params)

        for _ in range(5):  # fed: 2.5 s of controller time pass, a pulse in every half second
            n = pulses()
            await until(lambda: pulses() > n, what="a heartbeat pulse")
            await vclock.advance(0.5)
        assert sim.delivering and sim.hs_expirations == 0
        await evse.kill()  # the agent dies without a word
        await vclock.advance(1.5)
        assert no_energy(sim) and sim.evse_state == 0xFE and sim.hs_trigger == 2


async def test_openevse_missed_pulse_is_acknowledged_and_the_offer_restored():
    vclock = VirtualClock()
    async with openevse(sim_clock=vclock, driver_kw={"heartbeat_interval_s": 3}) as (sim, evse, _link):
        await evse.open()
        await evse.set_current_limit(16)
        await vclock.advance(3.5)  # the controller's clock runs ahead of our pulses: a miss
        assert sim.hs_expirations == 1  # it stopped (the $AT makes the driver offer again at once)
        await until(lambda: evse.missed_pulses == 1, timeout_s=3, what="the next pulse answered $NK")
        await until(lambda: sim.delivering and sim.hs_trigger == 1, what="$SY 165 and the offer restored")
        assert ["165"] in [m.params for m in sim.received if m.kind == "SY"]


async def test_openevse_stock_heartbeat_only_limits_to_the_minimum():
    vclock = VirtualClock()
    async with openevse(sim_clock=vclock, stock_heartbeat=True, driver_kw={"heartbeat_interval_s": 1}) as (
            sim, evse, _link):
        await evse.open()
        await evse.set_current_limit(16)
        await evse.kill()
        await vclock.advance(1.5)
        assert sim.delivering and sim.capacity_a == 6  # documented: stock firmware clamps the fallback


async def test_openevse_meter_from_the_controller_counters():
    async with openevse(speed=3600) as (sim, evse, _link):
        meter = OpenEvseMeter(evse)
        with pytest.raises(CommunicationError):
            await meter.read()  # not open yet
        await evse.open()
        first = await meter.read()
        await evse.set_current_limit(16)
        await asyncio.sleep(0.3)  # 0.3 s × 3600 at 3.68 kW ≈ 1.1 kWh
        charging = await meter.read()
        assert charging.energy_wh > first.energy_wh + 500
        assert charging.current_a[0] == 16.0 and charging.voltage_v[0] == 230.0 and charging.power_w == 3680.0
        await evse.set_current_limit(0)
        stopped = await meter.read()
        sim.unplug()  # the session is folded into the total
        await until(lambda: evse.status.cp_state == "A", what="unplugged")
        after = await meter.read()
        assert after.energy_wh == stopped.energy_wh, "a finished session is not counted twice"
        assert sim.total_wh == after.energy_wh
        sim.plug()
        await until(lambda: evse.status.cp_state == "B", what="plugged")
        assert (await meter.read()).energy_wh == after.energy_wh


async def test_openevse_over_tcp_through_build_evse():
    sim = RapiSim()
    sim.plug()
    port = await sim.start_tcp()
    evse = build_evse({"driver": "openevse_rapi", "transport": "tcp", "host": "127.0.0.1", "tcp_port": port,
                       "poll_interval_s": POLL_S, "heartbeat_interval_s": 5, "timeout_s": 0.3},
                      BusRegistry(), None)
    meter = build_evse_meter({"driver": "openevse_rapi", "meter_phases": 3}, evse)
    try:
        await evse.open()
        assert no_energy(sim) and sim.hs_interval_s == 5
        await evse.set_current_limit(16)
        assert sim.delivering
        reading = await meter.read()
        assert reading.current_a == (16.0, 16.0, 16.0) and reading.power_w == 16 * 230 * 3
    finally:
        await evse.close()
        await sim.stop()


# -- Phoenix Contact EM-CP-PP-ETH over Modbus TCP -------------------------------------------


@contextlib.asynccontextmanager
async def phoenix(plugged: bool = True):
    sim = PhoenixSim()
    if plugged:
        sim.plug()
    port = await sim.start_tcp()
    bus = ModbusBus(transport="tcp", host="127.0.0.1", tcp_port=port, **FAST_BUS)
    evse = PhoenixEmCpPpEth(bus, poll_interval_s=POLL_S)
    try:
        yield sim, evse
    finally:
        await evse.close()
        await sim.stop()


async def test_phoenix_factory_enabled_gives_no_energy_after_open():
    async with phoenix() as (sim, evse):
        assert sim.delivering
        await evse.open()
        assert no_energy(sim) and sim.coil_writes[0] is False
        assert evse.status.cp_state == "B" and not evse.status.pwm_on


async def test_phoenix_pilot_changes_limits_pause_and_unavailable():
    async with phoenix(plugged=False) as (sim, evse):
        await evse.open()
        assert evse.status.cp_state == "A"
        sim.plug()
        await until(lambda: evse.status.cp_state == "B", what="B")
        await evse.set_current_limit(16.7)
        assert sim.delivering and sim.max_current_a == 16 and evse.status.cp_state == "C"
        await evse.set_current_limit(60)
        assert sim.max_current_a == 32
        await evse.set_current_limit(5.9)
        assert no_energy(sim) and not sim.enabled
        await evse.set_current_limit(10)
        assert sim.delivering and sim.max_current_a == 10
        await evse.set_available(False)
        assert no_energy(sim) and evse.status.cp_state == "F" and evse.status.error_code == "no_error"
        await evse.set_available(True)
        assert sim.delivering
        sim.unplug()
        await until(lambda: evse.status.cp_state == "A", what="A")


@pytest.mark.parametrize("fault, code", [("E", "ev_communication_error"), ("F", "other_error")])
async def test_phoenix_fault_mapping(fault, code):
    async with phoenix() as (sim, evse):
        await evse.open()
        await evse.set_current_limit(16)
        sim.fault(fault)
        await until(lambda: evse.status.error_code == code, what=code)
        assert evse.status.cp_state == fault and not evse.status.pwm_on
        sim.clear()
        await until(lambda: evse.status.error_code == "no_error", what="cleared")
    assert decode_cp(ord("F"), enabled=False).error_code == "no_error"
    assert decode_cp(0x0058, enabled=True).error_code == "other_error"


async def test_phoenix_silence_reboot_and_reconnect():
    async with phoenix() as (sim, evse):
        await evse.open()
        await evse.set_current_limit(16)
        sim.silent = True
        await until(lambda: evse.status.vendor_error_code == NOT_ANSWERING, what="not answering")
        await evse.set_current_limit(0)
        sim.silent = False
        await until(lambda: evse.status.error_code == "no_error", what="recovery")
        assert no_energy(sim)
        sim.drop_connections()  # the controller reboots: TCP dropped, factory state (enabled) back
        sim.reboot()
        assert sim.delivering
        await until(lambda: no_energy(sim), what="reconnect and correct")
        assert evse.status.error_code == "no_error"


# -- build_evse: the board loader's entry point ------------------------------------------


def test_build_evse_per_driver_and_section_keys():
    reg = BusRegistry()
    s = build_evse({"driver": "simpleevse_wb", "port": "/dev/ttyUSB0", "device_id": 3, "max_current_a": 16,
                    "poll_interval_s": 0.5}, reg, None)
    assert isinstance(s, SimpleEvseWb) and s.device_id == 3 and s.max_current_a == 16
    assert s.bus.baudrate == 9600 and s.bus.parity == "N" and s.bus.transport == "rtu"
    # A meter on the same line shares the bus; different settings on one port are an error.
    from hal.modbus_meter import build_meter
    m = build_meter({"driver": "sdm630", "port": "/dev/ttyUSB0", "device_id": 2}, reg)
    assert m.bus is s.bus
    with pytest.raises(HalConfigurationError):
        build_evse({"driver": "simpleevse_wb", "port": "/dev/ttyUSB0", "baudrate": 19200}, reg, None)
    p = build_evse({"driver": "phoenix_em_cp_pp_eth", "host": "192.0.2.7"}, reg, None)
    assert isinstance(p, PhoenixEmCpPpEth) and p.device_id == 180 and p.bus.tcp_port == 502
    o = build_evse({"driver": "openevse_rapi", "port": "/dev/ttyAMA0", "heartbeat_interval_s": 20,
                    "heartbeat_current_a": 6}, reg, None)
    assert isinstance(o, OpenEvseRapi) and o.transport.baudrate == 115200 and o.heartbeat_interval_s == 20
    assert isinstance(build_evse_meter({"driver": "openevse_rapi"}, o), OpenEvseMeter)
    assert build_evse_meter({"driver": "simpleevse_wb"}, s) is None
    assert set(DRIVERS) == {"simpleevse_wb", "openevse_rapi", "phoenix_em_cp_pp_eth"}
    for section, msg in (
        ({"driver": "simpleevse_wb", "port": "/dev/x", "baud": 9600}, "unknown key"),
        ({"driver": "nope"}, "unknown evse driver"),
        ({"driver": "phoenix_em_cp_pp_eth"}, "needs host"),
        ({"driver": "openevse_rapi"}, "needs port"),
        ({"driver": "openevse_rapi", "transport": "tcp", "host": "x"}, "tcp_port"),
        ({"driver": "openevse_rapi", "port": "/dev/x", "heartbeat_interval_s": 1.5}, "whole seconds"),
        ({"driver": "simpleevse_wb", "port": "/dev/y", "max_current_a": 100}, "max_current_a"),
    ):
        with pytest.raises(HalConfigurationError, match=msg):
            build_evse(section, BusRegistry(), None)


async def test_stream_transport_for_an_existing_stream_pair():
    sim = RapiSim(auto_start=False)
    port = await sim.start_tcp()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    evse = OpenEvseRapi(StreamTransport(reader, writer), poll_interval_s=POLL_S, heartbeat_interval_s=0)
    try:
        await evse.open()
        assert evse.online and evse.firmware == "8.2.2"
    finally:
        await evse.close()
        await sim.stop()


# -- the station on a real driver: a controller that stops answering ---------------------


class FakeMeter:
    """A meter whose register the test moves."""

    def __init__(self) -> None:
        self.energy_wh = 1000.0

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def read(self):
        from hal.interfaces import MeterReading
        return MeterReading(energy_wh=self.energy_wh, timestamp=time.time())


class FakeContactor:
    """A relay that records what it was told (with truthful feedback)."""

    has_feedback = True

    def __init__(self) -> None:
        self.is_closed = False
        self.history = []

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def set_closed(self, closed: bool) -> None:
        self.is_closed = bool(closed)
        self.history.append(self.is_closed)

    async def read_feedback(self):
        return self.is_closed


async def test_station_faults_the_connector_while_the_controller_is_silent():
    from hal.runtime.clock import Clock
    from agent.core.settings import Settings, station_settings
    from agent.core.station import Station
    from hal.interfaces import Board, ConnectorHardware

    async with simpleevse() as (sim, evse, _link):
        relay = FakeContactor()
        board = Board("test", [ConnectorHardware(evse, FakeMeter(), relay)])
        station = Station(board, Settings(station_settings()), Clock())
        await board.open()
        await station.start()
        try:
            c = station.connector(1)
            assert no_energy(sim)
            assert await station.remote_start("TAG1", 1)
            await until(lambda: c.status == "charging", what="Charging")
            assert sim.delivering and relay.is_closed
            sim.silent = True
            await until(lambda: c.status == "faulted", what="Faulted")
            assert not relay.is_closed and c.status_error_code == "internal_error"
            assert evse.current_limit_a == 0
            sim.silent = False
            # Recovery: the fault clears, the transaction (still running) is offered current again.
            await until(lambda: c.status == "charging", what="Charging again")
            assert evse.status.error_code == "no_error" and sim.delivering
            assert relay.history[-3:] == [True, False, True]
        finally:
            await station.stop()
            await board.close()
