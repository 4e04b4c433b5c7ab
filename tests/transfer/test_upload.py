"""Uploads to real servers on 127.0.0.1: HTTP PUT (and the POST form when PUT is not
allowed), HTTPS with verification, FTP with a user; failures carry the neutral
reason a LogStatusNotification reports, and no password reaches a log line."""

import logging
import ssl

import pytest

from agent.transfer.upload import (BadLocationError, UnsupportedLocationError, UploadError, UploadNotSupportedError,
                                   UploadPermissionError, safe_url, upload_file)
from tests.pki import Authority, write_pair, write_pem
from tests.transfer.servers import PASSWORD, USER, FtpSink, HttpSink, dead_port

BODY = b"2026-01-01T00:00:00Z  #1  StartupOfTheDevice\n" * 100


@pytest.fixture
def log_file(tmp_path):
    path = tmp_path / "local.log"
    path.write_bytes(BODY)
    return str(path)


@pytest.fixture
def http_sink():
    sink = HttpSink()
    yield sink
    sink.close()


@pytest.fixture
def ftp_sink(tmp_path):
    root = tmp_path / "ftp"
    (root / "logs").mkdir(parents=True)
    sink = FtpSink(root)
    yield sink
    sink.close()


async def test_http_put_to_a_directory_appends_the_file_name(log_file, http_sink):
    await upload_file(log_file, http_sink.url("/upload/"), "CP001-securitylog-20260101T000000Z.log")
    [(method, path, headers, body)] = http_sink.requests
    assert (method, path, body) == ("PUT", "/upload/CP001-securitylog-20260101T000000Z.log", BODY)
    assert headers["Content-Type"] == "application/octet-stream"


async def test_http_put_to_a_file_url_as_given(log_file, http_sink):
    await upload_file(log_file, http_sink.url("/upload/mine.log?token=1"), "x.log")
    assert [r[:2] for r in http_sink.requests] == [("PUT", "/upload/mine.log?token=1")]


async def test_a_server_without_put_gets_a_multipart_post(log_file):
    sink = HttpSink(put_status=405)
    try:
        await upload_file(log_file, sink.url("/upload"), "x.log")
    finally:
        sink.close()
    assert [r[0] for r in sink.requests] == ["PUT", "POST"]
    _method, path, headers, body = sink.requests[1]
    assert path == "/upload" and headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert b'name="file"; filename="x.log"' in body and BODY in body


async def test_a_server_taking_neither_put_nor_post_is_not_supported(log_file):
    sink = HttpSink(put_status=405, status=405)
    try:
        with pytest.raises(UploadNotSupportedError) as e:
            await upload_file(log_file, sink.url("/upload"), "x.log")
    finally:
        sink.close()
    assert e.value.status == "not_supported"


@pytest.mark.parametrize("code,error,status", [(403, UploadPermissionError, "permission_denied"),
                                               (401, UploadPermissionError, "permission_denied"),
                                               (500, UploadError, "upload_failure")])
async def test_http_errors_carry_their_reason(log_file, code, error, status):
    sink = HttpSink(put_status=code)
    try:
        with pytest.raises(error) as e:
            await upload_file(log_file, sink.url(), "x.log")
    finally:
        sink.close()
    assert e.value.status == status and e.value.retryable


async def test_http_user_info_is_basic_authentication_and_never_logged(log_file, http_sink, caplog):
    caplog.set_level(logging.DEBUG)
    url = http_sink.url().replace("http://", "http://alice:pa%24%24@")
    await upload_file(log_file, url, "x.log")
    headers = http_sink.requests[0][2]
    assert headers["Authorization"] == "Basic YWxpY2U6cGEkJA=="  # alice:pa$$
    assert "pa%24%24" not in caplog.text and "alice" not in caplog.text
    assert safe_url(url) == http_sink.url()


async def test_https_verifies_the_server(log_file, tmp_path):
    ca = Authority()
    cert, key = ca.server()
    cert_file, key_file = write_pair(tmp_path, "server", cert, key)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert_file, key_file)
    sink = HttpSink(tls=tls)
    try:
        with pytest.raises(UploadError, match="CERTIFICATE_VERIFY_FAILED"):  # not among the system CAs
            await upload_file(log_file, sink.url(), "x.log")
        assert sink.requests == []
        trusting = ssl.create_default_context(cafile=write_pem(tmp_path, "ca.pem", ca.cert))
        await upload_file(log_file, sink.url(), "x.log", ssl_context=trusting)
    finally:
        sink.close()
    assert [r[:2] for r in sink.requests] == [("PUT", "/upload/x.log")]


async def test_ftp_to_a_directory_and_to_a_file(log_file, ftp_sink, caplog):
    caplog.set_level(logging.DEBUG, logger="agent")
    await upload_file(log_file, ftp_sink.url("/logs/"), "CP001-securitylog.log")
    await upload_file(log_file, ftp_sink.url("/logs/named.log"), "ignored.log")
    assert (ftp_sink.root / "logs" / "CP001-securitylog.log").read_bytes() == BODY
    assert (ftp_sink.root / "logs" / "named.log").read_bytes() == BODY
    assert PASSWORD not in caplog.text and "s3cret" not in caplog.text


async def test_ftp_wrong_password_is_permission_denied(log_file, ftp_sink, caplog):
    caplog.set_level(logging.DEBUG, logger="agent")
    with pytest.raises(UploadPermissionError) as e:
        await upload_file(log_file, ftp_sink.url("/logs/", password="wrong-pw"), "x.log")
    assert e.value.status == "permission_denied"
    assert "wrong-pw" not in str(e.value) and "wrong-pw" not in caplog.text and USER not in str(e.value)


async def test_ftp_to_a_missing_directory_fails(log_file, ftp_sink):
    with pytest.raises(UploadError):
        await upload_file(log_file, ftp_sink.url("/nowhere/"), "x.log")


@pytest.mark.parametrize("scheme", ["http", "ftp"])
async def test_a_dead_port_is_a_retryable_failure(log_file, scheme):
    with pytest.raises(UploadError) as e:
        await upload_file(log_file, "%s://127.0.0.1:%d/" % (scheme, dead_port()), "x.log", timeout_s=5)
    assert type(e.value) is UploadError and e.value.status == "upload_failure" and e.value.retryable


@pytest.mark.parametrize("location", ["ftps://h/x", "sftp://u:p@h/x", "file:///tmp/x", "/tmp/x"])
async def test_an_unsupported_scheme_is_refused_clearly(log_file, location):
    with pytest.raises(UnsupportedLocationError, match="supported schemes are http, https, ftp") as e:
        await upload_file(log_file, location, "x.log")
    assert e.value.status == "not_supported" and not e.value.retryable
    assert ":p@" not in str(e.value)


@pytest.mark.parametrize("location", ["http://127.0.0.1:port/x", "ftp:///x"])
async def test_a_malformed_location_is_a_bad_message(log_file, location):
    with pytest.raises(BadLocationError) as e:
        await upload_file(log_file, location, "x.log")
    assert e.value.status == "bad_message" and not e.value.retryable
