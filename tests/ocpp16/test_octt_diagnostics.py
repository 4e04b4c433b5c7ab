"""OCTT 1.6 TC_045_1_CS "Get Diagnostics" and TC_045_2_CS "Get Diagnostics - Upload
Failed": GetDiagnostics.conf names the file, DiagnosticsStatusNotification Uploading
follows the answer, then Uploaded (the zip arrived at a real HTTP or FTP server on
127.0.0.1, with the expected members) or UploadFailed after the last retry (retries on
the virtual clock); TriggerMessage DiagnosticsStatusNotification tells Uploading or
Idle; a GetDiagnostics and a GetLog do not cancel each other."""

import io
import os
import zipfile

from agent.core.isotime import format_datetime
from tests.harness import AgentHarness, index_of, keys, until
from tests.transfer.servers import FtpSink, HttpSink, dead_port

PASSWORD = "diagnostics-Secret-0123"
MEMBERS = ["README.txt", "config/agent.toml", "doctor.txt", "logs/ocpp-traffic-recent.log", "status.json"]


def harness(tmp_path, **kw) -> AgentHarness:
    return AgentHarness(tmp_path, ocpp=keys(), csms_extra={"password": PASSWORD}, **kw)


def zip_members(body: bytes) -> dict:
    with zipfile.ZipFile(io.BytesIO(body)) as z:
        return {name: z.read(name).decode() for name in z.namelist()}


async def test_tc_045_1_get_diagnostics(tmp_path):
    sink = HttpSink()
    try:
        async with harness(tmp_path) as h:
            m = h.mark()
            answer = await h.cs.call("GetDiagnostics", location=sink.url("/diagnostics/"))
            assert answer["fileName"].startswith("CP001-diagnostics-") and answer["fileName"].endswith(".zip")
            await h.cs.wait_for("DiagnosticsStatusNotification", lambda p: p["status"] == "Uploaded", start_index=m)
            assert h.received("DiagnosticsStatusNotification", m) == [{"status": "Uploading"}, {"status": "Uploaded"}]
            assert 0 <= index_of(h, "GetDiagnostics.conf", m) < index_of(h, "DiagnosticsStatusNotification", m)
            assert h.agent.logs.status("diagnostics") == ("idle", None)
    finally:
        sink.close()
    [(method, path, _headers, body)] = sink.requests
    assert (method, path) == ("PUT", "/diagnostics/" + answer["fileName"])
    got = zip_members(body)
    assert sorted(got) == MEMBERS
    assert '"GetDiagnostics"' in got["logs/ocpp-traffic-recent.log"]
    assert PASSWORD.encode() not in body and not any(PASSWORD in text for text in got.values())
    assert os.listdir(os.path.join(h.agent.config.data_dir, "uploads")) == []  # removed once uploaded


async def test_tc_045_1_get_diagnostics_over_ftp_with_a_window(tmp_path):
    """startTime / stopTime select the agent log's lines (data_dir/logs, written as ``run`` does)."""
    (tmp_path / "ftp" / "files").mkdir(parents=True)
    sink = FtpSink(tmp_path / "ftp")
    try:
        async with harness(tmp_path) as h:
            t0 = h.clock.time()
            logs = os.path.join(h.agent.config.data_dir, "logs")
            os.makedirs(logs)
            with open(os.path.join(logs, "agent.log"), "w") as f:
                for n in range(5):
                    f.write("%s INFO agent: event %d\n" % (format_datetime(t0 - 3600 * (4 - n), millis=True), n))
            m = h.mark()
            answer = await h.cs.call("GetDiagnostics", location=sink.url("/files/"), retries=1, retryInterval=10,
                                     startTime=format_datetime(t0 - 3 * 3600 - 1),
                                     stopTime=format_datetime(t0 - 3600 + 1))
            await h.cs.wait_for("DiagnosticsStatusNotification", lambda p: p["status"] == "Uploaded", start_index=m)
    finally:
        sink.close()
    got = zip_members((tmp_path / "ftp" / "files" / answer["fileName"]).read_bytes())
    assert [line.split(": ")[1] for line in got["logs/agent.log"].splitlines()] == ["event 1", "event 2", "event 3"]
    assert "Time window: " in got["README.txt"]


async def test_tc_045_2_get_diagnostics_upload_failed(tmp_path):
    """The OCTT's own request: retries 0, an FTP location where nothing answers."""
    async with harness(tmp_path) as h:
        m = h.mark()
        answer = await h.cs.call("GetDiagnostics", location="ftp://127.0.0.1:%d/files/failedLocation" % dead_port(),
                                 retries=0)
        assert answer["fileName"].endswith(".zip")
        await h.cs.wait_for("DiagnosticsStatusNotification", lambda p: p["status"] == "UploadFailed", start_index=m)
        assert h.received("DiagnosticsStatusNotification", m) == [{"status": "Uploading"}, {"status": "UploadFailed"}]
        assert h.agent.logs.status("diagnostics") == ("idle", None)
        h.sim.plug(1)  # the charge point continues normal operation
        await h.wait_status(1, "Preparing", start=m)


async def test_tc_045_2_retries_then_upload_failed(tmp_path):
    """retries 2: three attempts retryInterval apart on the virtual clock; 1.6 hears Uploading once and
    UploadFailed once, after the last."""
    sink = HttpSink(put_status=500, status=500)
    try:
        async with harness(tmp_path) as h:
            m = h.mark()
            started = h.clock.monotonic()
            await h.cs.call("GetDiagnostics", location=sink.url("/diagnostics/"), retries=2, retryInterval=30)
            await until(lambda: h.received("DiagnosticsStatusNotification", m)[-1:] == [{"status": "UploadFailed"}],
                        clock=h.clock, step_s=5)
            assert h.received("DiagnosticsStatusNotification", m) == [{"status": "Uploading"},
                                                                      {"status": "UploadFailed"}]
            assert h.clock.monotonic() - started >= 60
    finally:
        sink.close()
    assert [r[0] for r in sink.requests] == ["PUT"] * 3


async def test_trigger_diagnostics_status_notification_tells_the_state(tmp_path):
    """TriggerMessage DiagnosticsStatusNotification: Idle with nothing to do, Uploading during an upload."""
    sink = HttpSink()
    sink.hold.clear()  # the upload hangs until released
    try:
        async with harness(tmp_path) as h:
            t = h.mark()
            assert await h.cs.call("TriggerMessage", requestedMessage="DiagnosticsStatusNotification") == {
                "status": "Accepted"}
            assert await h.cs.wait_for("DiagnosticsStatusNotification", start_index=t) == {"status": "Idle"}
            m = h.mark()
            await h.cs.call("GetDiagnostics", location=sink.url("/diagnostics/"))
            await h.cs.wait_for("DiagnosticsStatusNotification", start_index=m)
            await until(lambda: sink.requests)
            t = h.mark()
            await h.cs.call("TriggerMessage", requestedMessage="DiagnosticsStatusNotification")
            assert await h.cs.wait_for("DiagnosticsStatusNotification", start_index=t) == {"status": "Uploading"}
            sink.hold.set()
            await h.cs.wait_for("DiagnosticsStatusNotification", lambda p: p["status"] == "Uploaded", start_index=m)
            t = h.mark()
            await h.cs.call("TriggerMessage", requestedMessage="DiagnosticsStatusNotification")
            assert await h.cs.wait_for("DiagnosticsStatusNotification", start_index=t) == {"status": "Idle"}
    finally:
        sink.close()


async def test_get_diagnostics_and_get_log_do_not_cancel_each_other(tmp_path):
    sink = HttpSink()
    sink.hold.clear()
    try:
        async with harness(tmp_path) as h:
            m = h.mark()
            await h.cs.call("GetDiagnostics", location=sink.url("/diagnostics/"))
            await until(lambda: sink.requests)
            answer = await h.cs.call("GetLog", logType="SecurityLog", requestId=4,
                                     log={"remoteLocation": sink.url("/logs/")})
            assert answer["status"] == "Accepted"  # not AcceptedCanceled: another channel
            sink.hold.set()
            await h.cs.wait_for("DiagnosticsStatusNotification", lambda p: p["status"] == "Uploaded", start_index=m)
            await h.cs.wait_for("LogStatusNotification", lambda p: p["status"] == "Uploaded", start_index=m)
    finally:
        sink.close()
    assert sorted(r[1].split("CP001-")[0] for r in sink.requests) == ["/diagnostics/", "/logs/"]
