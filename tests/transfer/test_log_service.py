"""The log service: a request answered at once with the file name, the upload in a task
after ``start``, its states told in order, retries on a virtual clock, the newest request
canceling the one running, and no file or task left behind."""

import asyncio
import os

import pytest

from agent.security.events import SecurityLog
from agent.transfer.logs import LogService
from agent.transfer.upload import UploadError
from hal.runtime.clock import VirtualClock
from tests.transfer.servers import HttpSink, dead_port

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z, the virtual clock's start


class Rig:
    def __init__(self, tmp_path, upload=None) -> None:
        self.clock = VirtualClock()
        self.log = SecurityLog(str(tmp_path / "security"), self.clock)
        self.work_dir = str(tmp_path / "uploads")
        self.service = LogService(self.log, self.clock, self.work_dir, station_id="CP 001", upload=upload)
        self.told: list = []  # (word, request id, monotonic s)

    async def notify(self, word: str, request_id: int) -> None:
        self.told.append((word, request_id, self.clock.monotonic()))

    def request(self, request_id: int = 5, location: str = "http://127.0.0.1:1/", **kw):
        return self.service.request("security", location, request_id, notify=self.notify, **kw)

    def words(self) -> list:
        return [(w, rid) for w, rid, _t in self.told]

    async def until_done(self) -> None:
        for _ in range(500):
            if self.service.status()[0] == "idle":
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the upload did not end: %r" % self.told)


class Recorder:
    """A fake upload: keeps what it was given; ``gate`` holds it until set."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.calls: list = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail = fail

    async def __call__(self, path: str, location: str, filename: str) -> None:
        with open(path) as f:
            self.calls.append((location, filename, f.read()))
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail


async def test_security_log_request_uploads_the_events(tmp_path):
    upload = Recorder()
    rig = Rig(tmp_path, upload)
    rig.log.record("startup")
    rig.log.record("invalid_csms_certificate", "test")
    answer = rig.request(names=lambda kind: kind.upper())
    assert (answer.status, answer.filename) == ("accepted", "CP_001-securitylog-20260101T000000Z.log")
    assert rig.service.status() == ("uploading", 5)
    assert rig.told == [] and upload.calls == []  # nothing before start(): the answer goes first
    assert rig.service.start(5) and not rig.service.start(5)
    await rig.until_done()
    assert rig.words() == [("uploading", 5), ("uploaded", 5)]
    [(location, filename, text)] = upload.calls
    assert (location, filename) == ("http://127.0.0.1:1/", answer.filename)
    lines = text.splitlines()
    assert lines[0].startswith("# security log of CP_001, 2 event(s)")
    assert lines[1:] == ["2026-01-01T00:00:00Z  #1  STARTUP",
                         "2026-01-01T00:00:00Z  #2  INVALID_CSMS_CERTIFICATE  test"]
    assert os.listdir(rig.work_dir) == []  # removed once uploaded
    assert rig.service.status() == ("idle", None)


async def test_the_time_window_selects_events_and_an_empty_one_is_rejected(tmp_path):
    upload = Recorder()
    rig = Rig(tmp_path, upload)
    for n in range(3):
        rig.log.record("startup", "n%d" % n, at=T0 + 100 * n)
    answer = rig.request(start=T0 + 50, stop=T0 + 150)
    assert answer.status == "accepted"
    rig.service.start(5)
    await rig.until_done()
    assert [line.split("  ")[-1] for line in upload.calls[0][2].splitlines()[1:]] == ["n1"]
    empty = rig.request(request_id=6, start=T0 + 1000)
    assert (empty.status, empty.filename, empty.reason) == ("rejected", None, "no_data")
    assert rig.service.status() == ("idle", None)


async def test_diagnostics_is_not_supported_until_a_source_is_added(tmp_path):
    upload = Recorder()
    rig = Rig(tmp_path, upload)
    answer = rig.service.request("diagnostics", "http://h/", 1, notify=rig.notify)
    assert (answer.status, answer.reason) == ("rejected", "not_supported")
    rig.service.add_source("diagnostics", "diagnostics", lambda start, stop, names: ["line 1", "line 2"])
    answer = rig.service.request("diagnostics", "http://h/", 2, notify=rig.notify)
    assert answer.status == "accepted" and "-diagnostics-" in answer.filename
    rig.service.start(2)
    await rig.until_done()
    assert upload.calls[0][2] == "line 1\nline 2\n"


async def test_failed_uploads_are_retried_retry_interval_apart(tmp_path):
    """TC_N_26: retries 3 -> four attempts; from the first Uploading to the last failure 3 x interval."""
    rig = Rig(tmp_path)  # the real upload, to a port nobody listens on
    rig.log.record("startup")
    rig.request(location="http://127.0.0.1:%d/logs/" % dead_port(), retries=3, retry_interval_s=60)
    rig.service.start(5)
    for _ in range(3):
        for _ in range(500):  # the attempt runs in a thread: wait until the task sleeps on the clock
            if rig.clock.pending:
                break
            await asyncio.sleep(0.01)
        await rig.clock.advance(60)
    await rig.until_done()
    assert rig.words() == [("uploading", 5), ("upload_failure", 5)] * 4
    assert rig.told[-1][2] - rig.told[0][2] == 180


async def test_a_retry_that_succeeds_ends_uploaded(tmp_path):
    sink = HttpSink(put_status=500)
    try:
        rig = Rig(tmp_path)
        rig.log.record("startup")
        rig.request(location=sink.url("/logs/"), retries=2, retry_interval_s=10)
        rig.service.start(5)
        for _ in range(500):
            if rig.clock.pending:
                break
            await asyncio.sleep(0.01)
        sink.put_status = 201
        await rig.clock.advance(10)
        await rig.until_done()
    finally:
        sink.close()
    assert rig.words() == [("uploading", 5), ("upload_failure", 5), ("uploading", 5), ("uploaded", 5)]
    assert len(sink.requests) == 2 and sink.requests[1][3].startswith(b"# security log of CP_001")


async def test_a_location_no_retry_can_fix_is_tried_once(tmp_path):
    rig = Rig(tmp_path)
    rig.log.record("startup")
    rig.request(location="gopher://127.0.0.1/", retries=5, retry_interval_s=1)
    rig.service.start(5)
    await rig.until_done()
    assert rig.words() == [("uploading", 5), ("not_supported", 5)]


async def test_a_new_request_cancels_the_one_running(tmp_path):
    """N01.FR.11/12, TC_N_36: AcceptedCanceled; the old request hears "canceled" before the new one uploads."""
    upload = Recorder()
    upload.gate.clear()  # the first upload hangs
    rig = Rig(tmp_path, upload)
    rig.log.record("startup")
    first = rig.request(request_id=1)
    rig.service.start(1)
    for _ in range(100):
        if upload.calls:
            break
        await asyncio.sleep(0)
    assert rig.words() == [("uploading", 1)] and rig.service.status() == ("uploading", 1)
    rig.clock.step_wall(1)
    second = rig.request(request_id=2)
    assert second.status == "accepted_canceled" and second.filename != first.filename
    assert rig.service.status() == ("uploading", 2)
    upload.gate.set()
    rig.service.start(2)
    await rig.until_done()
    assert rig.words() == [("uploading", 1), ("canceled", 1), ("uploading", 2), ("uploaded", 2)]
    assert os.listdir(rig.work_dir) == []


async def test_a_request_replacing_one_not_started_removes_its_file(tmp_path):
    rig = Rig(tmp_path, Recorder())
    rig.log.record("startup")
    rig.request(request_id=1)
    assert len(os.listdir(rig.work_dir)) == 1
    assert rig.request(request_id=2).status == "accepted_canceled"
    assert len(os.listdir(rig.work_dir)) == 1
    await rig.service.close()
    assert os.listdir(rig.work_dir) == [] and rig.service.status() == ("idle", None)


async def test_close_cancels_the_upload(tmp_path):
    upload = Recorder()
    upload.gate.clear()
    rig = Rig(tmp_path, upload)
    rig.log.record("startup")
    rig.request()
    rig.service.start(5)
    await asyncio.sleep(0)
    await rig.service.close()
    assert rig.service.status() == ("idle", None) and os.listdir(rig.work_dir) == []
    assert rig.words() == [("uploading", 5)]


async def test_a_lost_notification_does_not_stop_the_upload(tmp_path):
    upload = Recorder()
    rig = Rig(tmp_path, upload)
    rig.log.record("startup")

    async def broken(word, request_id):
        raise ConnectionError("offline")

    rig.service.request("security", "http://h/", 3, notify=broken)
    rig.service.start(3)
    await rig.until_done()
    assert len(upload.calls) == 1


@pytest.mark.parametrize("retries,expected", [(None, 1), (-2, 1), (100, 11)])
async def test_retries_are_bounded(tmp_path, retries, expected):
    upload = Recorder(fail=UploadError("no"))
    rig = Rig(tmp_path, upload)
    rig.clock.instant_sleep = True
    rig.log.record("startup")
    rig.request(retries=retries, retry_interval_s=0)
    rig.service.start(5)
    await rig.until_done()
    assert len(upload.calls) == expected


async def test_a_full_disk_rejects_the_request(tmp_path):
    rig = Rig(tmp_path, Recorder())
    rig.log.record("startup")
    (tmp_path / "uploads").write_text("not a directory")
    answer = rig.request()
    assert (answer.status, answer.reason) == ("rejected", "write_failed")
    assert rig.service.status() == ("idle", None)
