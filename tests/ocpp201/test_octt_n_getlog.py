"""OCTT 2.0.1 block N, N01 Retrieve Log Information with logType SecurityLog and
DiagnosticsLog: GetLog is answered with the file name, LogStatusNotifications with the
request's id follow the answer, the file arrives at the remote location (a real HTTP or
FTP server on 127.0.0.1). DiagnosticsLog is the diagnostics archive (a zip,
agent/app/diagnostics.py): TC_N_25/26 run with it, and once more with SecurityLog.
Every frame schema-checked."""

import asyncio
import io
import zipfile

from tests.harness import index_of, until
from tests.ocpp201.octt201 import errors, harness, received
from tests.transfer.servers import FtpSink, HttpSink, dead_port


async def get_log(h, request_id: int, location: str, log_type: str = "SecurityLog", **extra) -> dict:
    return await h.cs.call("GetLog", logType=log_type, requestId=request_id, log={"remoteLocation": location},
                           **extra)


async def test_tc_n_35_security_log_success(tmp_path):
    sink = HttpSink()
    try:
        async with harness(tmp_path) as h:
            h.agent.security.log.record("invalid_csms_certificate", "test")
            m = h.mark()
            answer = await get_log(h, 11, sink.url("/logs/"))
            assert answer["status"] == "Accepted" and answer["filename"].startswith("CP001-securitylog-")
            await h.cs.wait_for("LogStatusNotification", lambda p: p["status"] == "Uploaded", start_index=m)
            assert received(h, "LogStatusNotification", m) == [{"status": "Uploading", "requestId": 11},
                                                               {"status": "Uploaded", "requestId": 11}]
            assert 0 <= index_of(h, "GetLog.conf", m) < index_of(h, "LogStatusNotification", m)
            assert not errors(h)
    finally:
        sink.close()
    [(_method, path, _headers, body)] = sink.requests
    assert path == "/logs/" + answer["filename"]
    assert body.decode().splitlines()[-1].endswith("InvalidCsmsCertificate  test")


async def test_tc_n_35_security_log_over_ftp(tmp_path):
    (tmp_path / "ftp").mkdir()
    sink = FtpSink(tmp_path / "ftp")
    try:
        async with harness(tmp_path) as h:
            m = h.mark()
            answer = await get_log(h, 12, sink.url("/"))
            await h.cs.wait_for("LogStatusNotification", lambda p: p["status"] == "Uploaded", start_index=m)
    finally:
        sink.close()
    assert "StartupOfTheDevice" in (tmp_path / "ftp" / answer["filename"]).read_text()


async def test_tc_n_25_diagnostics_log_success(tmp_path):
    sink = HttpSink()
    try:
        async with harness(tmp_path, csms_extra={"password": "n25-Secret-0123456789"}) as h:
            m = h.mark()
            answer = await get_log(h, 15, sink.url("/logs/"), log_type="DiagnosticsLog")
            assert answer["status"] == "Accepted" and answer["filename"].startswith("CP001-diagnostics-")
            assert answer["filename"].endswith(".zip")
            await h.cs.wait_for("LogStatusNotification", lambda p: p["status"] == "Uploaded", start_index=m)
            assert received(h, "LogStatusNotification", m) == [{"status": "Uploading", "requestId": 15},
                                                               {"status": "Uploaded", "requestId": 15}]
            assert 0 <= index_of(h, "GetLog.conf", m) < index_of(h, "LogStatusNotification", m)
            assert not errors(h)
    finally:
        sink.close()
    [(method, path, _headers, body)] = sink.requests
    assert (method, path) == ("PUT", "/logs/" + answer["filename"])
    with zipfile.ZipFile(io.BytesIO(body)) as z:
        names = z.namelist()
        traffic = z.read("logs/ocpp-traffic-recent.log").decode()
    assert {"README.txt", "status.json", "doctor.txt", "config/agent.toml"} <= set(names)
    assert '"GetLog"' in traffic and "DiagnosticsLog" in traffic
    assert b"n25-Secret-0123456789" not in body


async def test_tc_n_26_diagnostics_log_upload_failed(tmp_path):
    """retries 3: four attempts retryInterval apart, each failure reported with the request's id."""
    async with harness(tmp_path) as h:
        m = h.mark()
        answer = await get_log(h, 16, "ftp://127.0.0.1:%d/logs/" % dead_port(), log_type="DiagnosticsLog",
                               retries=3, retryInterval=30)
        assert answer["status"] == "Accepted" and answer["filename"].endswith(".zip")
        await until(lambda: len(received(h, "LogStatusNotification", m)) == 8, clock=h.clock, step_s=5)
        assert received(h, "LogStatusNotification", m) == [{"status": "Uploading", "requestId": 16},
                                                           {"status": "UploadFailure", "requestId": 16}] * 4
        assert h.agent.logs.status() == ("idle", None)


async def test_tc_n_26_upload_failed_retried(tmp_path):
    """SecurityLog: retries 3, four attempts retryInterval apart, each failure reported with the request's id."""
    async with harness(tmp_path) as h:
        m = h.mark()
        answer = await get_log(h, 13, "http://127.0.0.1:%d/logs/" % dead_port(), retries=3, retryInterval=30)
        assert answer["status"] == "Accepted"
        # virtual time moves on while the attempts (real I/O) fail: 3 x 30 s (timed in tests/transfer)
        await until(lambda: len(received(h, "LogStatusNotification", m)) == 8, clock=h.clock, step_s=5)
        assert received(h, "LogStatusNotification", m) == [{"status": "Uploading", "requestId": 13},
                                                           {"status": "UploadFailure", "requestId": 13}] * 4
        assert h.agent.logs.status() == ("idle", None)


async def test_tc_n_34_rejected_without_log_information(tmp_path):
    """No security event in the requested window: Rejected, no file name, nothing uploaded."""
    async with harness(tmp_path) as h:
        m = h.mark()
        answer = await h.cs.call("GetLog", logType="SecurityLog", requestId=14, log={
            "remoteLocation": "http://127.0.0.1:1/", "oldestTimestamp": "2099-01-01T00:00:00Z"})
        assert answer == {"status": "Rejected", "statusInfo": {"reasonCode": "NotFound"}}
        await asyncio.sleep(0.1)
        assert received(h, "LogStatusNotification", m) == []


async def test_tc_n_36_second_request_cancels_the_first(tmp_path):
    sink = HttpSink()
    sink.hold.clear()  # the first upload hangs until the test ends
    try:
        async with harness(tmp_path) as h:
            m = h.mark()
            assert (await get_log(h, 21, sink.url("/slow/")))["status"] == "Accepted"
            await h.cs.wait_for("LogStatusNotification", start_index=m)
            await until(lambda: sink.requests)
            second = await get_log(h, 22, sink.url("/logs/"))
            sink.hold.set()  # the second upload goes through (the first one's task is gone)
            assert second["status"] == "AcceptedCanceled"
            await h.cs.wait_for("LogStatusNotification", lambda p: p["status"] == "Uploaded", start_index=m)
            assert received(h, "LogStatusNotification", m) == [
                {"status": "Uploading", "requestId": 21}, {"status": "AcceptedCanceled", "requestId": 21},
                {"status": "Uploading", "requestId": 22}, {"status": "Uploaded", "requestId": 22}]
            assert index_of(h, "GetLog.conf", m + 1) < index_of(h, "LogStatusNotification", m + 2,
                                                                 pred=lambda p: p["status"] == "AcceptedCanceled")
    finally:
        sink.close()
    assert [r[1].split("-")[0] for r in sink.requests] == ["/slow/CP001", "/logs/CP001"]


async def test_tc_f_16_trigger_log_status_notification_while_uploading(tmp_path):
    """TC_F_16 (run with SecurityLog): a TriggerMessage while uploading gets Uploading with the id."""
    sink = HttpSink()
    sink.hold.clear()
    try:
        async with harness(tmp_path) as h:
            m = h.mark()
            await get_log(h, 31, sink.url("/logs/"))
            await h.cs.wait_for("LogStatusNotification", start_index=m)
            t = h.mark()
            assert await h.cs.call("TriggerMessage", requestedMessage="LogStatusNotification") == {
                "status": "Accepted"}
            assert await h.cs.wait_for("LogStatusNotification", start_index=t) == {"status": "Uploading",
                                                                                   "requestId": 31}
            sink.hold.set()
            await h.cs.wait_for("LogStatusNotification", lambda p: p["status"] == "Uploaded", start_index=m)
            t = h.mark()
            await h.cs.call("TriggerMessage", requestedMessage="LogStatusNotification")
            assert await h.cs.wait_for("LogStatusNotification", start_index=t) == {"status": "Idle"}
    finally:
        sink.close()
