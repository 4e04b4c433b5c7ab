"""OCTT 1.6 TC_079_CS "Get Security Log" (security whitepaper N01): GetLog SecurityLog is
Accepted with a file name, LogStatusNotification Uploading then Uploaded follow the
answer, and the file at the remote location holds the security log; GetLog
DiagnosticsLog uploads the diagnostics archive (a zip) the same way. The agent against
the test central system, uploading to real HTTP and FTP servers on 127.0.0.1."""

import zipfile

from tests.harness import AgentHarness, index_of
from tests.transfer.servers import FtpSink, HttpSink, dead_port


async def test_tc_079_get_security_log(tmp_path):
    sink = HttpSink()
    try:
        async with AgentHarness(tmp_path) as h:
            h.agent.security.log.record("invalid_csms_certificate", "test")
            m = h.mark()
            answer = await h.cs.call("GetLog", logType="SecurityLog", requestId=7,
                                     log={"remoteLocation": sink.url("/logs/")})
            assert answer["status"] == "Accepted"
            assert answer["filename"].startswith("CP001-securitylog-") and answer["filename"].endswith(".log")
            await h.cs.wait_for("LogStatusNotification", lambda p: p["status"] == "Uploaded", start_index=m)
            assert h.received("LogStatusNotification", m) == [{"status": "Uploading", "requestId": 7},
                                                              {"status": "Uploaded", "requestId": 7}]
            assert 0 <= index_of(h, "GetLog.conf", m) < index_of(h, "LogStatusNotification", m)
    finally:
        sink.close()
    [(method, path, _headers, body)] = sink.requests
    assert (method, path) == ("PUT", "/logs/" + answer["filename"])
    lines = body.decode().splitlines()
    assert "StartupOfTheDevice" in lines[1]  # the agent's own start, in 1.6 words
    assert lines[-1].endswith("InvalidCentralSystemCertificate  test")


async def test_get_log_upload_failure(tmp_path):
    async with AgentHarness(tmp_path) as h:
        m = h.mark()
        answer = await h.cs.call("GetLog", logType="SecurityLog", requestId=8,
                                 log={"remoteLocation": "ftp://u:p@127.0.0.1:%d/" % dead_port()})
        assert answer["status"] == "Accepted"
        await h.cs.wait_for("LogStatusNotification", lambda p: p["status"] == "UploadFailure", start_index=m)
        assert h.received("LogStatusNotification", m) == [{"status": "Uploading", "requestId": 8},
                                                          {"status": "UploadFailure", "requestId": 8}]


async def test_get_log_diagnostics_log_uploads_the_archive(tmp_path):
    """GetLog DiagnosticsLog (whitepaper N01): the diagnostics archive, over FTP."""
    (tmp_path / "ftp").mkdir()
    sink = FtpSink(tmp_path / "ftp")
    try:
        async with AgentHarness(tmp_path) as h:
            m = h.mark()
            answer = await h.cs.call("GetLog", logType="DiagnosticsLog", requestId=9,
                                     log={"remoteLocation": sink.url("/")})
            assert answer["status"] == "Accepted" and answer["filename"].startswith("CP001-diagnostics-")
            await h.cs.wait_for("LogStatusNotification", lambda p: p["status"] == "Uploaded", start_index=m)
            assert h.received("LogStatusNotification", m) == [{"status": "Uploading", "requestId": 9},
                                                              {"status": "Uploaded", "requestId": 9}]
    finally:
        sink.close()
    with zipfile.ZipFile(tmp_path / "ftp" / answer["filename"]) as z:
        assert {"README.txt", "status.json", "doctor.txt", "config/agent.toml"} <= set(z.namelist())


async def test_extended_trigger_log_status_notification_tells_the_upload_state(tmp_path):
    """N01.FR.12: Uploading with the request's id while uploading; Idle without one otherwise."""
    sink = HttpSink()
    sink.hold.clear()
    try:
        async with AgentHarness(tmp_path) as h:
            m = h.mark()
            await h.cs.call("GetLog", logType="SecurityLog", requestId=3, log={"remoteLocation": sink.url()})
            await h.cs.wait_for("LogStatusNotification", start_index=m)
            t = h.mark()
            got = await h.cs.call("ExtendedTriggerMessage", requestedMessage="LogStatusNotification")
            assert got == {"status": "Accepted"}
            assert await h.cs.wait_for("LogStatusNotification", start_index=t) == {"status": "Uploading",
                                                                                   "requestId": 3}
            sink.hold.set()
            await h.cs.wait_for("LogStatusNotification", lambda p: p["status"] == "Uploaded", start_index=m)
            t = h.mark()
            await h.cs.call("ExtendedTriggerMessage", requestedMessage="LogStatusNotification")
            assert await h.cs.wait_for("LogStatusNotification", start_index=t) == {"status": "Idle"}
    finally:
        sink.close()
