"""The log service's ``write`` sources (a file made in the upload's task, after the
answer), its channels (a GetDiagnostics and a GetLog served side by side) and
``every_attempt=False`` (1.6 GetDiagnostics: Uploading once, only the final outcome)."""

import asyncio
import os

import pytest

from agent.transfer.logs import DIAGNOSTICS_CHANNEL, LogService
from agent.transfer.upload import UploadError
from tests.transfer.test_log_service import Recorder, Rig


def archive_source(made: list):
    async def write(path, start, stop):
        made.append((start, stop))
        with open(path, "w") as f:
            f.write("archive %s-%s" % (start, stop))
    return write


async def test_a_write_source_makes_its_file_after_the_answer(tmp_path):
    upload = Recorder()
    rig = Rig(tmp_path, upload)
    made = []
    rig.service.add_source("diagnostics", "diagnostics", write=archive_source(made), extension="zip")
    answer = rig.service.request("diagnostics", "http://h/", 1, start=10.0, stop=20.0, notify=rig.notify)
    assert answer.status == "accepted" and answer.filename == "CP_001-diagnostics-20260101T000000Z.zip"
    assert made == [] and os.listdir(rig.work_dir) == []  # nothing made before start()
    rig.service.start(1)
    await rig.until_done()
    assert made == [(10.0, 20.0)] and upload.calls == [("http://h/", answer.filename, "archive 10.0-20.0")]
    assert rig.words() == [("uploading", 1), ("uploaded", 1)] and os.listdir(rig.work_dir) == []


def test_a_source_gives_lines_or_write(tmp_path):
    service = LogService(None, None, str(tmp_path))
    with pytest.raises(ValueError):
        service.add_source("diagnostics", "d")
    with pytest.raises(ValueError):
        service.add_source("diagnostics", "d", lambda *a: ["x"], write=archive_source([]))


async def test_channels_are_served_side_by_side(tmp_path):
    upload = Recorder()
    upload.gate.clear()
    rig = Rig(tmp_path, upload)
    rig.log.record("startup")
    rig.service.add_source("diagnostics", "diagnostics", write=archive_source([]), extension="zip")
    first = rig.service.request("diagnostics", "http://h/d/", 0, notify=rig.notify, channel=DIAGNOSTICS_CHANNEL)
    second = rig.request(request_id=7)
    assert (first.status, second.status) == ("accepted", "accepted")  # neither canceled the other
    assert rig.service.status(DIAGNOSTICS_CHANNEL) == ("uploading", 0) and rig.service.status() == ("uploading", 7)
    rig.service.start(0, DIAGNOSTICS_CHANNEL)
    rig.service.start(7)
    upload.gate.set()
    for _ in range(500):
        if rig.service.status(DIAGNOSTICS_CHANNEL)[0] == rig.service.status()[0] == "idle":
            break
        await asyncio.sleep(0.01)
    assert sorted(rig.words()) == [("uploaded", 0), ("uploaded", 7), ("uploading", 0), ("uploading", 7)]
    await rig.service.close()


async def test_every_attempt_false_tells_uploading_once_and_the_final_outcome(tmp_path):
    upload = Recorder(fail=UploadError("no"))
    rig = Rig(tmp_path, upload)
    rig.clock.instant_sleep = True
    rig.log.record("startup")
    rig.service.request("security", "http://h/", 3, notify=rig.notify, retries=2, retry_interval_s=5,
                        every_attempt=False)
    rig.service.start(3)
    await rig.until_done()
    assert len(upload.calls) == 3
    assert rig.words() == [("uploading", 3), ("upload_failure", 3)]


async def test_the_service_is_idle_when_the_outcome_is_told(tmp_path):
    """A TriggerMessage answered right after the final notification hears Idle."""
    rig = Rig(tmp_path, Recorder())
    rig.log.record("startup")
    seen = []

    async def notify(word, request_id):
        seen.append((word, rig.service.status()))

    rig.service.request("security", "http://h/", 4, notify=notify)
    rig.service.start(4)
    await rig.until_done()
    assert seen == [("uploading", ("uploading", 4)), ("uploaded", ("idle", None))]
