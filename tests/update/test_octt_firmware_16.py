"""OCPP 1.6 agent updates by OCTT test case, in process: UpdateFirmware (FirmwareManagement:
TC_044_2) and the security whitepaper's SignedUpdateFirmware (TC_081, an invalid
certificate), ExtendedTriggerMessage for the SignedFirmwareStatusNotification, and the
refusal of an agent without an install root. The agent on the simulated board at the 1.6
test central system, virtual time for the retries, downloads over HTTP on loopback. The
restarts (TC_044_1/3, TC_080) run real processes: tests/update/test_update_e2e.py and the
end of this file.
"""

import time

import pytest

from agent.update.installer import InstallRoot
from hal.runtime.clock import VirtualClock
from tests.harness import AgentHarness, keys, until, validate_agent_frames
from tests.transfer.servers import FileServer, FtpSink, dead_port
from tests.update.test_octt_l import HangingServer, Installed, Maker, events_seen, iso, print_log, serve_bundles, \
    served
from tests.update.test_update_e2e import Seen, iso_now
from tests.update.test_update_e2e import until as until_real
from tools.csms import TestCentralSystem


def harness(tmp_path) -> AgentHarness:
    return AgentHarness(tmp_path, ocpp=keys(), clock=VirtualClock(start=time.time()))


def give_root(h, tmp_path) -> InstallRoot:
    root = InstallRoot(str(tmp_path / "root"))
    h.agent.updates.install_root = root
    return root


def plain(h, start: int = 0) -> list:
    return [p["status"] for p in h.received("FirmwareStatusNotification", start)]


def signed(h, start: int = 0) -> list:
    return [(p["status"], p.get("requestId")) for p in h.received("SignedFirmwareStatusNotification", start)]


async def install_maker_root(h, maker: Maker) -> None:
    assert await h.cs.call("InstallCertificate", certificateType="ManufacturerRootCertificate",
                           certificate=maker.root.pem) == {"status": "Accepted"}


def signed_firmware(location: str, maker: Maker, path, at: float, signature: str | None = None) -> dict:
    return {"location": location, "retrieveDateTime": iso(at), "signingCertificate": maker.cert_pem,
            "signature": signature if signature is not None else maker.sign(path)}


async def test_tc_044_2_download_failed_a_missing_file_is_not_retried(tmp_path):
    """TC_044_2_CS: UpdateFirmware of a file the server does not have (404, permanent):
    Downloading, DownloadFailed, one request only although retries is 3."""
    directory, _path = served(tmp_path)
    files = FileServer(directory)
    try:
        async with harness(tmp_path) as h:
            give_root(h, tmp_path)
            m = h.mark()
            assert await h.cs.call("UpdateFirmware", location=files.url("download_fail.fwi"),
                                   retrieveDate=iso(h.clock.time() - 1), retries=3, retryInterval=30) == {}
            await until(lambda: "DownloadFailed" in plain(h, m), what="DownloadFailed")
            assert plain(h, m) == ["Downloading", "DownloadFailed"]
            assert files.requests == [("/download_fail.fwi", None)]
            await until(lambda: h.agent.updates.status == "idle", what="idle again")
    finally:
        files.close()


async def test_tc_044_2_download_failed_over_ftp(tmp_path):
    """TC_044_2_CS as the OCTT sends it: ftp://…/download_fail.fwi, retries 0: Downloading,
    DownloadFailed (550 from the FTP server)."""
    (tmp_path / "ftp").mkdir()
    ftp = FtpSink(tmp_path / "ftp")
    try:
        async with harness(tmp_path) as h:
            give_root(h, tmp_path)
            m = h.mark()
            assert await h.cs.call("UpdateFirmware", location=ftp.url("/download_fail.fwi"),
                                   retrieveDate=iso(h.clock.time() - 1), retries=0) == {}
            await until(lambda: "DownloadFailed" in plain(h, m), what="DownloadFailed")
            assert plain(h, m) == ["Downloading", "DownloadFailed"]
    finally:
        ftp.close()


async def test_tc_044_2_download_failed_after_the_retries_retry_interval_apart(tmp_path):
    """TC_044_2_CS with retries: a server that is not there is tried ``retries`` + 1 times,
    ``retryInterval`` apart (virtual time), then DownloadFailed."""
    url = "http://127.0.0.1:%d/agent.bundle" % dead_port()
    async with harness(tmp_path) as h:
        give_root(h, tmp_path)
        m = h.mark()
        assert await h.cs.call("UpdateFirmware", location=url, retrieveDate=iso(h.clock.time() - 1), retries=2,
                               retryInterval=30) == {}
        await until(lambda: plain(h, m) == ["Downloading"], what="the first attempt")
        await h.settle(0.3)
        await h.clock.advance(29)
        await h.settle(0.1)
        assert plain(h, m) == ["Downloading"]  # not before retryInterval
        await h.clock.advance(1)
        await until(lambda: len(plain(h, m)) == 2, what="the second attempt")
        await h.settle(0.3)
        await h.clock.advance(30)
        await until(lambda: "DownloadFailed" in plain(h, m), what="DownloadFailed")
        assert plain(h, m) == ["Downloading", "Downloading", "Downloading", "DownloadFailed"]


async def test_update_firmware_without_an_install_root_reports_installation_failed(tmp_path):
    """An agent run from a checkout cannot update itself: UpdateFirmware.conf (1.6 has no
    refusal), then FirmwareStatusNotification InstallationFailed; nothing downloaded."""
    directory, _path = served(tmp_path)
    files = FileServer(directory)
    try:
        async with harness(tmp_path) as h:
            assert h.agent.updates.install_root is None
            m = h.mark()
            assert await h.cs.call("UpdateFirmware", location=files.url("agent.bundle"),
                                   retrieveDate=iso(h.clock.time() - 1)) == {}
            await until(lambda: plain(h, m) == ["InstallationFailed"], what="InstallationFailed")
            assert files.requests == []
    finally:
        files.close()


async def test_tc_081_invalid_signature(tmp_path):
    """TC_081_CS: SignedUpdateFirmware with a trusted certificate and a signature over other
    bytes: Accepted; Downloading, Downloaded, InvalidSignature (with the requestId); a
    SecurityEventNotification InvalidFirmwareSignature."""
    maker = Maker()
    directory, path = served(tmp_path)
    other = tmp_path / "other.bin"
    other.write_bytes(b"other bytes")
    files = FileServer(directory)
    try:
        async with harness(tmp_path) as h:
            give_root(h, tmp_path)
            await install_maker_root(h, maker)
            m = h.mark()
            assert await h.cs.call("SignedUpdateFirmware", requestId=81, firmware=signed_firmware(
                files.url("agent.bundle"), maker, path, h.clock.time() - 1, signature=maker.sign(other))) == {
                "status": "Accepted"}
            await until(lambda: ("InvalidSignature", 81) in signed(h, m), what="InvalidSignature")
            assert signed(h, m) == [("Downloading", 81), ("Downloaded", 81), ("InvalidSignature", 81)]
            await h.cs.wait_for("SecurityEventNotification", lambda p: p["type"] == "InvalidFirmwareSignature",
                                start_index=m)
            assert plain(h, m) == []
    finally:
        files.close()


async def test_signed_update_with_a_certificate_from_another_root_is_invalid_certificate(tmp_path):
    """SignedUpdateFirmware whose signing certificate no installed ManufacturerRootCertificate
    issued: InvalidCertificate, a SecurityEventNotification InvalidFirmwareSigningCertificate,
    nothing downloaded."""
    maker, stranger = Maker(), Maker("Someone Else's Root")
    directory, path = served(tmp_path)
    files = FileServer(directory)
    try:
        async with harness(tmp_path) as h:
            give_root(h, tmp_path)
            await install_maker_root(h, maker)
            m = h.mark()
            assert await h.cs.call("SignedUpdateFirmware", requestId=82, firmware=signed_firmware(
                files.url("agent.bundle"), stranger, path, h.clock.time() - 1)) == {"status": "InvalidCertificate"}
            await h.cs.wait_for("SecurityEventNotification",
                                lambda p: p["type"] == "InvalidFirmwareSigningCertificate", start_index=m)
            await h.settle(0.2)
            assert signed(h, m) == [] and files.requests == []
    finally:
        files.close()


async def test_extended_trigger_signed_firmware_status_idle_and_while_downloading(tmp_path):
    """ExtendedTriggerMessage FirmwareStatusNotification: the whitepaper's
    SignedFirmwareStatusNotification, Idle without an update, Downloading with the
    requestId while one downloads; TriggerMessage FirmwareStatusNotification gives the
    plain one (Downloading)."""
    maker = Maker()
    directory, path = served(tmp_path)
    hanging = HangingServer()
    try:
        async with harness(tmp_path) as h:
            give_root(h, tmp_path)
            m = h.mark()
            assert await h.cs.call("ExtendedTriggerMessage", requestedMessage="FirmwareStatusNotification") == {
                "status": "Accepted"}
            await until(lambda: signed(h, m) == [("Idle", None)], what="Idle")
            await install_maker_root(h, maker)
            m = h.mark()
            assert await h.cs.call("SignedUpdateFirmware", requestId=83, firmware=signed_firmware(
                hanging.url("agent.bundle"), maker, path, h.clock.time() - 1)) == {"status": "Accepted"}
            await until(lambda: signed(h, m) == [("Downloading", 83)], what="Downloading")
            assert await h.cs.call("ExtendedTriggerMessage", requestedMessage="FirmwareStatusNotification") == {
                "status": "Accepted"}
            await until(lambda: signed(h, m) == [("Downloading", 83)] * 2, what="the triggered status")
            assert await h.cs.call("TriggerMessage", requestedMessage="FirmwareStatusNotification") == {
                "status": "Accepted"}
            await until(lambda: plain(h, m) == ["Downloading"], what="the plain triggered status")
    finally:
        hanging.close()


# ---------------------------------------------------------------------- real processes

@pytest.mark.timeout_s(300)
async def test_tc_080_secure_firmware_update(bundles, tmp_path, venv_works):
    """TC_080_CS: 0.9.1 installed and running under its supervisor on 1.6; InstallCertificate
    ManufacturerRootCertificate, SignedUpdateFirmware for 0.9.2 signed by the manufacturer:
    Accepted; SignedFirmwareStatusNotification Downloading, Downloaded, SignatureVerified,
    Installing (InstallRebooting); BootNotification 0.9.2, a SecurityEventNotification
    FirmwareUpdated, Installed with the requestId."""
    maker = Maker()
    root = InstallRoot(str(tmp_path / "root"))
    root.activate(root.install(bundles["0.9.1"]))
    files = serve_bundles(tmp_path, bundles, "0.9.2")
    seen = Seen()
    boot = {"status": "Accepted", "currentTime": iso_now(), "interval": 300}
    cs = TestCentralSystem(quiet=True, protocols=("ocpp1.6",), handlers={
        "BootNotification": seen.handler("BootNotification", lambda p: dict(boot, currentTime=iso_now())),
        "SignedFirmwareStatusNotification": seen.handler("SignedFirmwareStatusNotification", lambda p: {}),
        "FirmwareStatusNotification": seen.handler("FirmwareStatusNotification", lambda p: {})})
    await cs.start()
    agent = Installed(tmp_path, root, cs.url, version="1.6")
    agent.start()
    try:
        h = await cs.wait_for_station("CP001", timeout_s=60)
        await until_real(lambda: ("BootNotification", "0.9.1") in events_seen(seen), 60, "0.9.1 booted")
        assert await h.call("InstallCertificate", certificateType="ManufacturerRootCertificate",
                            certificate=maker.root.pem) == {"status": "Accepted"}
        mark = len(seen.log)
        assert await h.call("SignedUpdateFirmware", requestId=80, firmware=signed_firmware(
            files.url("agent-0.9.2.bundle"), maker, bundles["0.9.2"], time.time() - 1)) == {"status": "Accepted"}
        await until_real(lambda: "Installed" in seen.statuses(mark), 120, "0.9.2 Installed")
        await until_real(lambda: any(m.action == "SecurityEventNotification" and m.payload["type"] == "FirmwareUpdated"
                                     for m in h.messages), 30, "SecurityEventNotification FirmwareUpdated")
        assert seen.statuses(mark) == ["Downloading", "Downloaded", "SignatureVerified", "Installing",
                                       "InstallRebooting", "Installed"]
        assert [a for a, _w in events_seen(seen, mark) if a == "FirmwareStatusNotification"] == []
        installed = [m.payload for m in h.messages if m.action == "SignedFirmwareStatusNotification"
                     and m.payload["status"] == "Installed"]
        assert installed[-1]["requestId"] == 80
        assert ("BootNotification", "0.9.2") in events_seen(seen, mark)
        assert root.current_version() == "0.9.2" and root.previous_version() == "0.9.1"
        print_log("TC_080 update 0.9.1 -> 0.9.2", seen, mark)
        validate_agent_frames(h)
    finally:
        code = agent.stop()
        files.close()
        await cs.stop()
    assert code == 0, agent.log()
