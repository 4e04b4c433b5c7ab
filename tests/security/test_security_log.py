"""The persistent security event log (agent/security/events.py) and the per-version words.

Real files in a temporary directory, virtual time.
"""

import json
import logging
import os
import stat

import pytest

from agent.ocpp16 import security_words as words16
from agent.ocpp201 import security_words as words201
from agent.security import events as ev
from agent.security.events import LOG_FILE, SecurityEvent, SecurityLog
from hal.runtime.clock import VirtualClock


def make_log(tmp_path, clock=None, **kw) -> SecurityLog:
    return SecurityLog(str(tmp_path / "security" / "log"), clock or VirtualClock(), **kw)


def files_of(log: SecurityLog) -> list:
    return sorted(n for n in os.listdir(log.directory) if n.startswith(LOG_FILE))


def test_record_persists_and_a_new_log_carries_on(tmp_path):
    clock = VirtualClock()
    log = make_log(tmp_path, clock)
    assert not os.path.exists(log.directory)  # the constructor does no I/O
    first = log.record(ev.STARTUP)
    clock.step_wall(10)
    second = log.record(ev.INVALID_CSMS_CERTIFICATE, "unknown issuer", at=clock.time() - 1)
    assert (first.seq, first.kind, first.at, first.tech_info) == (1, ev.STARTUP, clock.time() - 10, "")
    assert (second.seq, second.at, second.tech_info) == (2, clock.time() - 1, "unknown issuer")
    with open(log.path) as f:
        lines = [json.loads(line) for line in f]
    assert [line["seq"] for line in lines] == [1, 2] and lines[1]["kind"] == ev.INVALID_CSMS_CERTIFICATE

    again = make_log(tmp_path, clock)  # a restart
    assert again.events() == [first, second]
    assert again.last_seq == 2
    assert again.record(ev.RESET).seq == 3


def test_files_and_directory_are_private(tmp_path):
    log = make_log(tmp_path)
    log.record(ev.STARTUP)
    log.delivered(1)
    assert stat.S_IMODE(os.stat(log.directory).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(log.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(log.state_path).st_mode) == 0o600


def test_tech_info_is_clipped_to_255_characters(tmp_path):
    log = make_log(tmp_path)
    assert log.record(ev.INVALID_MESSAGES, "x" * 1000).tech_info == "x" * 255
    assert make_log(tmp_path).events()[0].tech_info == "x" * 255


def test_rotation_bounds_the_files_and_seq_keeps_rising(tmp_path):
    log = make_log(tmp_path, max_bytes=1000, keep_files=2)
    for i in range(200):
        log.record(ev.INVALID_MESSAGES, "message %d" % i)
    assert files_of(log) == [LOG_FILE, LOG_FILE + ".1", LOG_FILE + ".2"]
    for name in files_of(log):
        assert os.path.getsize(os.path.join(log.directory, name)) <= 1000
    kept = log.events()
    seqs = [e.seq for e in kept]
    assert seqs == list(range(seqs[0], 201)) and seqs[0] > 1  # the oldest went, no gap in the rest
    assert make_log(tmp_path, max_bytes=1000, keep_files=2).record(ev.STARTUP).seq == 201


def test_fewer_kept_files_after_a_configuration_change(tmp_path):
    log = make_log(tmp_path, max_bytes=300, keep_files=4)
    for _ in range(40):
        log.record(ev.STARTUP)
    assert len(files_of(log)) == 5
    smaller = make_log(tmp_path, max_bytes=300, keep_files=1)
    for _ in range(5):
        smaller.record(ev.STARTUP)
    assert files_of(smaller) == [LOG_FILE, LOG_FILE + ".1"]


def test_without_kept_files_seq_survives_a_restart(tmp_path):
    log = make_log(tmp_path, max_bytes=200, keep_files=0)
    for _ in range(10):
        log.record(ev.STARTUP)
    assert files_of(log) == [LOG_FILE]
    assert make_log(tmp_path, max_bytes=200, keep_files=0).record(ev.RESET).seq == 11


def test_events_in_a_time_window_and_since_a_seq(tmp_path):
    clock = VirtualClock()
    log = make_log(tmp_path, clock, max_bytes=400, keep_files=10)
    t0 = clock.time()
    for i in range(20):
        log.record(ev.INVALID_MESSAGES, "n%d" % i, at=t0 + 60 * i)
    window = log.events(start=t0 + 300, stop=t0 + 600)
    assert [e.tech_info for e in window] == ["n5", "n6", "n7", "n8", "n9", "n10"]
    assert [e.seq for e in log.events(since_seq=17)] == [18, 19, 20]
    assert [e.seq for e in log.events(since_seq=3, stop=t0 + 300)] == [4, 5, 6]
    assert len(files_of(log)) > 2  # the query crossed rotated files


def test_undelivered_critical_events_and_the_persistent_cursor(tmp_path):
    log = make_log(tmp_path)
    log.record(ev.STARTUP)  # critical in both versions
    log.record(ev.INVALID_TLS_VERSION)  # critical in 2.0.1 only
    log.record(ev.INVALID_MESSAGES)  # never critical
    assert [e.kind for e in log.undelivered(words16.is_critical)] == [ev.STARTUP]
    assert [e.kind for e in log.undelivered(words201.is_critical)] == [ev.STARTUP, ev.INVALID_TLS_VERSION]
    log.delivered(2)
    assert log.undelivered(words201.is_critical) == []
    log.delivered(1)  # an older acknowledgement does not move the cursor back
    fourth = log.record(ev.TAMPER_DETECTION_ACTIVATED)
    restarted = make_log(tmp_path)
    assert restarted.delivered_seq == 2
    assert restarted.undelivered(words201.is_critical) == [fourth]
    with open(restarted.state_path) as f:
        assert json.load(f)["delivered_seq"] == 2


def test_clear_removes_every_file_and_records_the_clearing(tmp_path):
    log = make_log(tmp_path, max_bytes=300, keep_files=3)
    for _ in range(12):
        log.record(ev.STARTUP)
    log.delivered(12)
    cleared = log.clear()
    assert (cleared.kind, cleared.seq) == (ev.SECURITY_LOG_CLEARED, 13)
    assert files_of(log) == [LOG_FILE]
    assert log.events() == [cleared]
    with open(log.path) as f:
        assert json.loads(f.readline())["kind"] == ev.SECURITY_LOG_CLEARED  # the first line of the new log
    assert log.undelivered(words16.is_critical) == [cleared]  # only the clearing is sent, not old events
    assert make_log(tmp_path).record(ev.RESET).seq == 14


def test_a_clear_by_another_process_is_noticed(tmp_path):
    """``ocpp-agent log security --clear`` while the agent runs: no seq is given out twice."""
    agent = make_log(tmp_path)
    for _ in range(3):
        agent.record(ev.STARTUP)
    cli = make_log(tmp_path)
    assert cli.clear().seq == 4
    assert agent.record(ev.RESET).seq == 5
    assert [e.seq for e in make_log(tmp_path).events()] == [4, 5]


def test_a_corrupt_line_is_skipped_and_the_next_event_is_whole(tmp_path, caplog):
    log = make_log(tmp_path, max_bytes=200)
    for _ in range(3):
        log.record(ev.STARTUP)
    rotated = log.path + ".1"
    with open(rotated, "rb") as f:
        old = f.read()
    with open(rotated, "wb") as f:
        f.write(b"garbage\n" + old + b"[1]\n")
    with open(log.path, "ab") as f:
        f.write(b'{"seq": 4, "at": 17672')  # power lost mid-write
    restarted = make_log(tmp_path, max_bytes=200)
    with caplog.at_level(logging.WARNING, logger="agent.security.events"):
        assert [e.seq for e in restarted.events()] == [1, 2, 3]
        assert caplog.text.count("is corrupt, skipped") == 3
        caplog.clear()
        restarted.events()
        assert caplog.text == ""  # reported once
    assert restarted.record(ev.SETTING_SYSTEM_TIME).seq == 4
    assert [e.seq for e in make_log(tmp_path).events()] == [1, 2, 3, 4]


def test_listeners_get_each_event_after_it_was_written(tmp_path):
    log = make_log(tmp_path)
    seen = []

    def listener(event):
        seen.append((event, os.path.getsize(log.path)))

    def broken(event):
        raise RuntimeError("listener bug")

    log.listeners += [broken, listener]
    event = log.record(ev.FIRMWARE_UPDATED, "1.2.3")
    assert seen == [(event, os.path.getsize(log.path))] and seen[0][1] > 0


def test_a_failed_write_is_logged_once_and_the_event_still_goes_out(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    log = SecurityLog(str(blocker / "log"), VirtualClock())
    seen = []
    log.listeners.append(seen.append)
    with caplog.at_level(logging.ERROR, logger="agent.security.events"):
        first = log.record(ev.STARTUP)
        second = log.record(ev.RESET)
    assert seen == [first, second] and (first.seq, second.seq) == (1, 2)
    assert caplog.text.count("cannot write the security log") == 1


@pytest.mark.parametrize("words", [words16, words201])
def test_every_kind_has_a_name_in_each_version(words):
    assert set(words.EVENT_TYPE) == set(ev.KINDS)
    assert words.CRITICAL <= set(ev.KINDS)
    assert len(set(words.EVENT_TYPE.values())) == len(ev.KINDS)
    assert words.event_type("vendor_specific") == "vendor_specific"


def test_the_versions_differ_where_the_specifications_do():
    assert words16.EVENT_TYPE[ev.INVALID_CSMS_CERTIFICATE] == "InvalidCentralSystemCertificate"
    assert words16.EVENT_TYPE[ev.INVALID_CHARGING_STATION_CERTIFICATE] == "InvalidChargePointCertificate"
    assert words16.EVENT_TYPE[ev.FAILED_TO_AUTHENTICATE_AT_CSMS] == "FailedToAuthenticateAtCentralSystem"
    assert words201.EVENT_TYPE[ev.INVALID_CSMS_CERTIFICATE] == "InvalidCsmsCertificate"
    assert words201.EVENT_TYPE[ev.INVALID_CHARGING_STATION_CERTIFICATE] == "InvalidChargingStationCertificate"
    assert words201.EVENT_TYPE[ev.FAILED_TO_AUTHENTICATE_AT_CSMS] == "FailedToAuthenticateAtCsms"
    # 1.6 pushes the invalid certificates too: its M05 and A02 use cases send them (TC_077, TC_078),
    # and its secure firmware update the invalid firmware signing certificate and signature
    # (whitepaper L01.FR.02, L01.FR.03; TC_081)
    assert words201.CRITICAL - words16.CRITICAL == {ev.INVALID_TLS_VERSION, ev.INVALID_TLS_CIPHER_SUITE}
    assert words16.CRITICAL <= words201.CRITICAL
    for words in (words16, words201):
        assert words.is_critical(ev.MAINTENANCE_LOGIN_FAILED) and not words.is_critical(ev.INVALID_MESSAGES)


def test_2_0_1_names_are_the_ocpp_library_enumeration():
    from ocpp.v201.enums import SecurityEventType

    assert set(words201.EVENT_TYPE.values()) == {m.value for m in SecurityEventType}


def test_events_compare_by_value():
    assert SecurityEvent(1, ev.STARTUP, 5.0, "") == SecurityEvent.from_dict(
        {"seq": 1, "kind": ev.STARTUP, "at": 5.0, "tech_info": ""})
    with pytest.raises(ValueError):
        SecurityEvent.from_dict({"seq": "1", "kind": ev.STARTUP, "at": 5.0})
