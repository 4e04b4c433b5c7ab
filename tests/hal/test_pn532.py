"""PN532 RFID reader: the frame codec, then the real driver (hal/pn532.py) over a
pseudo-terminal pair (real serial code: pyserial on /dev/pts/N on both ends) against
the simulator (tools/pn532_sim.py), then a swipe through a running agent."""

import asyncio
import time

import pytest

from hal.errors import CommunicationError, HalConfigurationError
from hal.interfaces import IdReader
from hal.pn532 import (ACK, NACK, FrameParser, Pn532Error, Pn532Reader, build_frame, build_reader,
                       parse_targets)
from hal.serial_port import SerialPort
from tests.harness import AgentHarness
from tools.pn532_sim import Pn532Sim

UID = "04A1B2C3D4E5F6"
FAST = {"poll_interval_s": 0.01, "release_s": 0.05, "timeout_s": 0.3, "ack_timeout_s": 0.1}


# ------------------------------------------------------------------ frames

def test_frame_layout_and_checksums():
    # GetFirmwareVersion, as in the user manual: 00 00 FF 02 FE D4 02 2A 00
    assert build_frame(b"\x02") == bytes.fromhex("0000FF02FED4022A00")
    frame = build_frame(bytes([0x4A, 0x01, 0x00]))
    length = frame[3]
    assert (length + frame[4]) & 0xFF == 0
    assert (sum(frame[5:5 + length]) + frame[5 + length]) & 0xFF == 0
    assert frame[-1] == 0


def test_parser_finds_frames_acks_and_errors_in_a_noisy_stream():
    p = FrameParser()
    answer = build_frame(bytes([0x03, 0x32, 0x01, 0x06, 0x07]), 0xD5)
    stream = b"\x55\x55\xff\x12" + ACK + answer + NACK + b"\x00\x00\xff\x01\xff\x7f\x81\x00"
    events = []
    for i in range(len(stream)):  # byte by byte: frames split anywhere
        events += p.feed(stream[i:i + 1])
    assert events == [("ack",), ("frame", 0xD5, bytes([0x03, 0x32, 0x01, 0x06, 0x07])), ("nack",), ("error",)]
    bad = bytearray(answer)
    bad[-2] ^= 1
    assert p.feed(bytes(bad)) == [("bad", "data checksum error")]
    # A false start code (00 FF with a bad length checksum) is skipped, the real frame found.
    assert p.feed(b"\x00\xff\x05\x05" + answer) == [("frame", 0xD5, bytes([0x03, 0x32, 0x01, 0x06, 0x07]))]


def test_targets_with_4_7_and_ats():
    four = bytes([1, 1, 0x00, 0x04, 0x08, 4]) + bytes.fromhex("DEADBEEF")
    assert parse_targets(four) == [bytes.fromhex("DEADBEEF")]
    seven_ats = bytes([1, 1, 0x03, 0x44, 0x20, 7]) + bytes.fromhex(UID) + bytes([5, 0x78, 0x80, 0x70, 0x02])
    assert parse_targets(seven_ats) == [bytes.fromhex(UID)]
    assert parse_targets(b"\x00") == []
    with pytest.raises(Pn532Error):
        parse_targets(bytes([1, 1, 0, 0x04, 0x08, 5, 1, 2, 3, 4, 5]))


# ------------------------------------------------------------------ the driver on a pty

async def start(**kw):
    sim = Pn532Sim()
    link = await sim.start_pty()
    reader = Pn532Reader(SerialPort(link.a_path, baudrate=115200), **dict(FAST, **kw))
    return sim, reader


async def test_wakes_configures_and_reports_the_firmware():
    sim, reader = await start()
    try:
        assert isinstance(reader, IdReader)
        await reader.open()
        assert reader.ready and reader.firmware_version == "1.6"
        assert sim.wakeups == 1 and sim.sam_configured
        assert sim.commands == [0x14, 0x02, 0x32]  # SAMConfiguration, GetFirmwareVersion, RFConfiguration
        assert sim.passive_retries == 1  # InListPassiveTarget gives up instead of waiting forever
        assert await reader.poll() is None
    finally:
        await reader.close()
        await sim.stop()


async def test_a_card_held_on_the_reader_is_one_presentation():
    sim, reader = await start()
    try:
        await reader.open()
        sim.present(UID)
        assert await asyncio.wait_for(reader.read_tag(), 2) == UID
        assert sim.commands[-2:] == [0x4A, 0x52]  # InListPassiveTarget, then InRelease
        # Still on the reader: many polls, no second swipe.
        polls = sim.commands.count(0x4A)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(reader.read_tag(), 0.3)
        assert sim.commands.count(0x4A) > polls + 5
        # Taken away (seen absent for release_s) and presented again: a new swipe.
        sim.remove()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(reader.read_tag(), 0.2)
        sim.present(UID)
        assert await asyncio.wait_for(reader.read_tag(), 2) == UID
        # Another card counts at once.
        sim.present("DEADBEEF")
        assert await asyncio.wait_for(reader.read_tag(), 2) == "DEADBEEF"
    finally:
        await reader.close()
        await sim.stop()


async def test_a_short_dropout_or_time_without_polling_is_not_a_new_swipe():
    reader = Pn532Reader(transport=None, release_s=1.0)
    assert reader.observe(UID, 0.0) == UID
    assert reader.observe(None, 0.1) is None  # one missed poll
    assert reader.observe(UID, 0.2) is None
    # The station was busy for a minute with the swipe (no polls): the card is still the same one.
    assert reader.observe(UID, 60.0) is None
    assert reader.observe(None, 61.0) is None
    assert reader.observe(None, 62.5) is None  # absent for 1.5 s: released
    assert reader.observe(UID, 63.0) == UID


async def test_checksum_error_is_repaired_with_a_nack():
    sim, reader = await start()
    try:
        await reader.open()
        sim.present(UID)
        sim.corrupt(1)
        assert await reader.poll() == UID
    finally:
        await reader.close()
        await sim.stop()


async def test_silent_reader_fails_then_recovers_with_a_new_wakeup(caplog):
    sim, reader = await start(retry_s=0.05)
    try:
        await reader.open()
        sim.silent = True
        sim.awake = False  # it lost power: asleep again
        t = time.monotonic()
        with pytest.raises(Pn532Error, match="no ACK"):
            await reader.poll()
        assert time.monotonic() - t < 1.0
        assert not reader.ready
        # read_tag() waits through the outage: logged once, retried, logged again when it answers.
        waiting = asyncio.create_task(reader.read_tag())
        await asyncio.sleep(0.5)
        assert not waiting.done()
        failures = [r for r in caplog.records if "not answering" in r.getMessage()]
        assert len(failures) == 1 and failures[0].levelname == "ERROR"
        sim.silent = False
        sim.present(UID)
        assert await asyncio.wait_for(waiting, 2) == UID
        assert sim.wakeups == 2
        assert any("answering again" in r.getMessage() for r in caplog.records)
    finally:
        await reader.close()
        await sim.stop()


async def test_an_unconfigured_reader_waits_and_an_ack_aborts():
    """Without the retries configuration the PN532 waits for a card: the driver's timeout sends
    an ACK to abort, as the manual says."""
    sim, reader = await start(timeout_s=0.2)
    try:
        await reader.open()
        sim.passive_retries = 0xFF
        with pytest.raises(Pn532Error, match="no answer"):
            await reader.command(0x4A, bytes([1, 0]))
        await asyncio.sleep(0.05)
        assert sim._waiting is None  # aborted by the host's ACK
    finally:
        await reader.close()
        await sim.stop()


async def test_missing_port_is_not_fatal_at_open(tmp_path):
    reader = build_reader({"driver": "pn532", "port": str(tmp_path / "ttyUSB9")})
    await reader.open()  # logged, not raised: the charger still works by remote start
    with pytest.raises(CommunicationError, match="does not exist"):
        await reader.poll()
    reader.retry_s = 0.01
    waiting = asyncio.create_task(reader.read_tag())  # waits for the adapter to appear
    await asyncio.sleep(0.1)
    assert not waiting.done()
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    await reader.close()


def test_reader_section_is_checked():
    with pytest.raises(HalConfigurationError) as e:
        build_reader({"driver": "pn532"})
    assert e.value.key == "port"
    with pytest.raises(HalConfigurationError) as e:
        build_reader({"driver": "pn532", "port": "/dev/ttyAMA0", "speed": 1})
    assert e.value.key == "speed"
    with pytest.raises(HalConfigurationError):
        build_reader({"driver": "pn532", "port": "/dev/ttyAMA0", "passive_retries": 255})


# ------------------------------------------------------------------ a swipe through the agent

async def test_a_reader_that_drops_out_still_starts_a_transaction_when_it_answers_again(tmp_path):
    """The station runs in virtual time that nobody advances here; the reader's retries are its own
    (real) time, so a reader outage cannot leave the station waiting for a clock that stands still."""
    sim = Pn532Sim()
    link = await sim.start_pty()
    try:
        board = {"reader": {"driver": "pn532", "port": link.a_path, "poll_interval_s": 0.02, "timeout_s": 0.1,
                            "ack_timeout_s": 0.1}}
        async with AgentHarness(tmp_path, board=board) as h:
            await h.wait_status(1, "Available")
            wakeups = sim.wakeups
            sim.silent = True
            sim.awake = False
            await asyncio.sleep(0.5)  # polls fail: the reader is closed and retried
            sim.silent = False
            h.sim.plug(1)
            sim.present(UID)
            start = await h.cs.wait_for("StartTransaction", timeout_s=8)
            assert start["idTag"] == UID and sim.wakeups > wakeups
    finally:
        await sim.stop()


async def test_a_card_on_the_pn532_starts_a_transaction(tmp_path):
    sim = Pn532Sim()
    link = await sim.start_pty()
    try:
        board = {"reader": {"driver": "pn532", "port": link.a_path, "poll_interval_s": 0.02}}
        async with AgentHarness(tmp_path, board=board) as h:
            assert isinstance(h.agent.loaded.board.reader, Pn532Reader)
            await h.wait_status(1, "Available")
            h.sim.plug(1)
            sim.present(UID)
            start = await h.cs.wait_for("StartTransaction")
            assert start["idTag"] == UID
            await h.wait_status(1, "Charging")
    finally:
        await sim.stop()
