"""HTTPS for the status page (agent/app/page_tls.py): a real agent's page over TLS,
checked by a client that trusts only the page's own certificate and checks the
host name; the certificate kept across restarts and remade when it runs out; the
owner's certificate served instead; bad ``[status_page]`` TLS settings refused."""

import asyncio
import datetime
import logging
import os
import ssl
import stat
import urllib.error
import urllib.request

import pytest

from agent.app import page_tls
from agent.app.config import ConfigError, parse_config
from agent.app.page_tls import ensure_certificate, fingerprint_sha256, page_context, wants_tls
from agent.app.status_page import StatusPage
from tests import pki
from tests.app.test_status_page import start_rig

NAMES = ["localhost", "127.0.0.1"]


async def https_get(url: str, cafile: str) -> tuple:
    """(status, text) of a GET that trusts only ``cafile`` and checks the host name."""
    context = ssl.create_default_context(cafile=cafile)
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context))

    def run():
        try:
            with opener.open(url, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            with e:
                return e.code, e.read().decode()

    return await asyncio.to_thread(run)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


async def test_the_page_serves_https_with_a_certificate_of_its_own(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="agent.app.page_tls")
    rig, cs1, _cs2 = await start_rig(tmp_path, extra_page='tls = "on"')
    try:
        page = rig.agent.status_page
        assert page is not None and page.url.startswith("https://127.0.0.1:")
        security = os.path.join(rig.agent.config.data_dir, "security")
        cert_file = os.path.join(security, "status-page.crt")
        assert mode(os.path.join(security, "status-page.key")) == 0o600 and mode(security) == 0o700
        status, text = await https_get(page.url, cert_file)
        assert status == 200 and cs1.url in text
        # The fingerprint the owner compares with the browser's is in the log.
        assert fingerprint_sha256(cert_file) in caplog.text
        # Another name than the certificate's: the client refuses it.
        with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
            await asyncio.open_connection("127.0.0.1", page.port, ssl=ssl.create_default_context(cafile=cert_file),
                                          server_hostname="charger.example")
        # Plain HTTP on the same port gets no page.
        reader, writer = await asyncio.open_connection("127.0.0.1", page.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        reply = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        assert b"Accepted" not in reply and not reply.startswith(b"HTTP/1.1 200")

        # A restart serves the same certificate: the owner checks its fingerprint once.
        before = open(cert_file).read()
        await rig.restart()
        assert open(cert_file).read() == before
        status, _ = await https_get(rig.agent.status_page.url, cert_file)
        assert status == 200
    finally:
        await rig.close()


def test_the_certificate_is_kept_until_it_runs_out(tmp_path):
    now = datetime.datetime.now(datetime.timezone.utc)
    directory = str(tmp_path / "security")
    cert_file, key_file = ensure_certificate(directory, NAMES, now=now)
    first = open(cert_file).read()
    assert ensure_certificate(directory, NAMES, now=now + datetime.timedelta(days=400)) == (cert_file, key_file)
    assert open(cert_file).read() == first
    # Within 30 days of its end: a new one.
    late = now + datetime.timedelta(days=page_tls.VALID_DAYS - page_tls.RENEW_BEFORE_DAYS + 1)
    ensure_certificate(directory, NAMES, now=late)
    second = open(cert_file).read()
    assert second != first
    # Expired (made long ago): a new one, valid now.
    old = now - datetime.timedelta(days=page_tls.VALID_DAYS + 10)
    directory = str(tmp_path / "old")
    cert_file, key_file = ensure_certificate(directory, NAMES, now=old)
    ensure_certificate(directory, NAMES, now=now)
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(open(cert_file, "rb").read())
    assert cert.not_valid_before_utc < now < cert.not_valid_after_utc
    # Served under another name (the page moved to another address): a new one that names it.
    third = open(cert_file).read()
    ensure_certificate(directory, NAMES + ["192.0.2.7"], now=now)
    assert open(cert_file).read() != third
    # A key that does not belong to the certificate (a crash between the two writes): a new pair.
    ensure_certificate(str(tmp_path / "other"), NAMES, now=now)
    os.replace(str(tmp_path / "other" / "status-page.key"), key_file)
    ensure_certificate(directory, NAMES + ["192.0.2.7"], now=now)
    page_tls.server_context(cert_file, key_file)  # loads: key and certificate match again
    assert mode(key_file) == 0o600


def test_names_and_when_tls_is_on(monkeypatch):
    monkeypatch.setattr(page_tls.socket, "gethostname", lambda: "charger7")
    assert page_tls.served_names("0.0.0.0") == ["charger7", "charger7.local", "localhost"]
    assert page_tls.served_names("192.0.2.5") == ["charger7", "charger7.local", "192.0.2.5", "localhost"]
    assert not wants_tls("auto", "127.0.0.1") and not wants_tls("auto", "localhost")
    assert wants_tls("auto", "0.0.0.0") and wants_tls("auto", "192.0.2.5")
    assert wants_tls("on", "127.0.0.1") and not wants_tls("off", "0.0.0.0")


async def test_the_owners_certificate_is_served(tmp_path):
    ca = pki.Authority("Owner CA")
    cert_file, key_file = pki.write_pair(tmp_path, "owner", *ca.server(hosts=("127.0.0.1", "localhost")))
    ca_file = pki.write_pem(tmp_path, "ca.pem", ca.cert)
    cfg = parse_config(str(tmp_path / "a.toml"), {
        "station": {"id": "CP001", "data_dir": "data"}, "csms": {"url": "ws://127.0.0.1:9/ocpp"},
        "status_page": {"port": 0, "tls": "on", "cert_file": "owner.crt", "key_file": "owner.key"}})
    assert cfg.status_page["cert_file"] == cert_file  # relative to the configuration file
    page = StatusPage(None, None, port=0, ssl_context=page_context(cfg.status_page, cfg.data_dir))
    await page.start()
    try:
        # Trusting only the owner's CA, the request gets through (to the page's 404: no agent behind it).
        assert await https_get(page.url + "nothing-here", ca_file) == (404, "404: Not Found\n")
    finally:
        await page.close()
    assert not os.path.exists(os.path.join(cfg.data_dir, "security", "status-page.crt"))


def test_bad_tls_settings_are_refused(tmp_path):
    cert_file, key_file = pki.write_pair(tmp_path, "owner", *pki.self_signed())
    other_cert, _ = pki.write_pair(tmp_path, "other", *pki.self_signed())
    base = {"station": {"id": "CP001", "data_dir": str(tmp_path)}, "csms": {"url": "ws://127.0.0.1:9/ocpp"}}

    def check(page: dict, match: str) -> None:
        with pytest.raises(ConfigError, match=match):
            parse_config(str(tmp_path / "a.toml"), dict(base, status_page=page))

    check({"tls": "yes"}, r"status_page.tls: must be one of auto, on, off \(got 'yes'\)")
    check({"tls": True}, "status_page.tls: must be a string")
    check({"cert_file": cert_file}, "status_page.key_file: give cert_file and key_file together, or neither")
    check({"key_file": key_file}, "status_page.cert_file: give cert_file and key_file together")
    check({"cert_file": str(tmp_path / "none.crt"), "key_file": key_file}, "status_page.cert_file: no such file")
    check({"cert_file": cert_file, "key_file": str(tmp_path / "none.key")}, "status_page.key_file: no such file")
    check({"tls": "off", "cert_file": cert_file, "key_file": key_file}, 'not used with tls = "off"')
    check({"cert_file": other_cert, "key_file": key_file}, "status_page.cert_file: cannot use")
    cfg = parse_config(str(tmp_path / "a.toml"), dict(base, status_page={"cert_file": cert_file, "key_file": key_file}))
    assert cfg.status_page["tls"] == "auto"
