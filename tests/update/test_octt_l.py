"""OCPP 2.0.1 agent updates by OCTT test case (block L, secure firmware update), in process:
the agent on the simulated board at the 2.0.1 test central system, virtual time where it
waits (retrieveDateTime, installDateTime, the end of a transaction), real downloads over
HTTP on loopback (tests/transfer/servers.py), bundles signed at test time by a
manufacturer made here (its root installed with InstallCertificate). The agent is given
an install root in ``tmp_path``: an empty one where the flow stops before installing;
TC_L_02 installs bundles["0.9.2"] into it for real and stops at the restart request.

The cases that need a restart into the new version (TC_L_01, TC_L_08, the deadline
rollback) run real processes at the end of this file, like tests/update/test_update_e2e.py.
"""

import datetime
import os
import socket
import subprocess
import time

import pytest

from agent.update.bundle import sign_file
from agent.update.installer import InstallRoot
from hal.runtime.clock import VirtualClock
from tests import pki
from tests.harness import until, validate_agent_frames
from tests.ocpp201 import octt201
from tests.transfer.servers import FileServer
from tests.update.test_update_e2e import CONFIG, Seen, clean_env, iso_now
from tests.update.test_update_e2e import until as until_real
from tools.csms import TestCentralSystem

HOUR = 3600.0


# ---------------------------------------------------------------------- what the tests share

class Maker:
    """A manufacturer: its root (which the charger gets with InstallCertificate) and the
    firmware signing certificate it issued, with the key that signs bundles."""

    def __init__(self, common_name: str = "Manufacturer Root") -> None:
        self.root = pki.Authority(common_name)
        self.key = pki.new_key()
        self.cert = self.root.issue(self.key.public_key(), pki.name("Firmware Signing", "Maker"), server=False)

    @property
    def cert_pem(self) -> str:
        return pki.pem(self.cert)

    def sign(self, path) -> str:
        return sign_file(str(path), self.key)


class HangingServer:
    """A port whose connections the kernel accepts and nobody answers: a download that hangs
    (until ``close``, which resets them)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]

    def url(self, name: str) -> str:
        return "http://127.0.0.1:%d/%s" % (self.port, name)

    def close(self) -> None:
        self.sock.close()


def iso(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def served(tmp_path, name: str = "agent.bundle", data: bytes = b"not really a bundle\n" * 100):
    """A file to serve: (the directory, its path)."""
    directory = tmp_path / "served"
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_bytes(data)
    return str(directory), path


def firmware(location: str, maker: Maker | None = None, path=None, *, at: float, signature: str | None = None,
             **more) -> dict:
    out = {"location": location, "retrieveDateTime": iso(at)}
    if maker is not None:
        out["signingCertificate"] = maker.cert_pem
        out["signature"] = signature if signature is not None else maker.sign(path)
    out.update(more)
    return out


def harness(tmp_path):
    """The 2.0.1 agent with a virtual clock that starts now (certificates made now are valid)."""
    return octt201.harness(tmp_path, clock=VirtualClock(start=time.time()))


def give_root(h, tmp_path) -> InstallRoot:
    root = InstallRoot(str(tmp_path / "root"))
    h.agent.updates.install_root = root
    return root


def firmware_statuses(h, start: int = 0) -> list:
    return [(p["status"], p.get("requestId")) for p in h.received("FirmwareStatusNotification", start)]


def security_events(h, start: int = 0) -> list:
    return [p["type"] for p in h.received("SecurityEventNotification", start)]


async def install_maker_root(h, maker: Maker) -> None:
    assert await h.cs.call("InstallCertificate", certificateType="ManufacturerRootCertificate",
                           certificate=maker.root.pem) == {"status": "Accepted"}


async def statuses_until(h, last: str, start: int = 0, clock=None, timeout_s: float = 10) -> list:
    await until(lambda: last in [s for s, _ in firmware_statuses(h, start)], timeout_s=timeout_s,
                what="FirmwareStatusNotification %s" % last, clock=clock, step_s=1.0)
    return firmware_statuses(h, start)


# ---------------------------------------------------------------------- in process

async def test_tc_l_05_a_signing_certificate_not_from_an_installed_manufacturer_root(tmp_path):
    """TC_L_05_CS: UpdateFirmware whose signingCertificate was issued by another root than the
    installed ManufacturerRootCertificate: InvalidCertificate, nothing downloaded, a
    SecurityEventNotification InvalidFirmwareSigningCertificate."""
    maker, stranger = Maker(), Maker("Someone Else's Root")
    directory, path = served(tmp_path)
    files = FileServer(directory)
    try:
        async with harness(tmp_path) as h:
            give_root(h, tmp_path)
            await install_maker_root(h, maker)
            m = h.mark()
            answer = await h.cs.call("UpdateFirmware", requestId=5, firmware=firmware(
                files.url("agent.bundle"), stranger, path, at=h.clock.time() - 2 * HOUR))
            assert answer["status"] == "InvalidCertificate"
            await h.cs.wait_for("SecurityEventNotification", lambda p: p["type"] == "InvalidFirmwareSigningCertificate",
                                start_index=m)
            await h.settle(0.2)
            assert firmware_statuses(h, m) == [] and files.requests == []
            assert h.agent.updates.status == "idle"
    finally:
        files.close()


async def test_tc_l_18_no_signing_certificate_and_no_signature_is_rejected(tmp_path):
    """TC_L_18_CS: the agent supports the secure update, so an UpdateFirmware without
    signingCertificate and signature (L02, non-secure) is Rejected; nothing is downloaded."""
    directory, _path = served(tmp_path)
    files = FileServer(directory)
    try:
        async with harness(tmp_path) as h:
            give_root(h, tmp_path)
            m = h.mark()
            answer = await h.cs.call("UpdateFirmware", requestId=6,
                                     firmware=firmware(files.url("agent.bundle"), at=h.clock.time() - 2 * HOUR))
            assert answer["status"] in ("Rejected", "InvalidCertificate")
            await h.settle(0.2)
            assert firmware_statuses(h, m) == [] and files.requests == []
    finally:
        files.close()


async def test_rejected_without_an_install_root(tmp_path):
    """An agent run from a checkout (no install root) cannot update itself: Rejected."""
    maker = Maker()
    directory, path = served(tmp_path)
    files = FileServer(directory)
    try:
        async with harness(tmp_path) as h:
            assert h.agent.updates.install_root is None
            await install_maker_root(h, maker)
            m = h.mark()
            answer = await h.cs.call("UpdateFirmware", requestId=7, firmware=firmware(
                files.url("agent.bundle"), maker, path, at=h.clock.time() - 1))
            assert answer["status"] == "Rejected"
            await h.settle(0.2)
            assert firmware_statuses(h, m) == [] and files.requests == []
    finally:
        files.close()


async def test_tc_l_06_invalid_signature(tmp_path):
    """TC_L_06_CS: a trusted signing certificate, a signature over other bytes: Downloading,
    Downloaded, InvalidSignature, and a SecurityEventNotification InvalidFirmwareSignature."""
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
            answer = await h.cs.call("UpdateFirmware", requestId=8, firmware=firmware(
                files.url("agent.bundle"), maker, path, at=h.clock.time() - 2 * HOUR, signature=maker.sign(other),
                installDateTime=iso(h.clock.time() - 2 * HOUR)))
            assert answer == {"status": "Accepted"}
            assert await statuses_until(h, "InvalidSignature", m) == [
                ("Downloading", 8), ("Downloaded", 8), ("InvalidSignature", 8)]
            await h.cs.wait_for("SecurityEventNotification", lambda p: p["type"] == "InvalidFirmwareSignature",
                                start_index=m)
            assert h.agent.updates.status == "idle"
    finally:
        files.close()


async def test_tc_l_07_download_failed(tmp_path):
    """TC_L_07_CS: the location points to a file that does not exist: Downloading, then
    DownloadFailed (a 404 is not retried)."""
    maker = Maker()
    directory, path = served(tmp_path)
    files = FileServer(directory)
    try:
        async with harness(tmp_path) as h:
            give_root(h, tmp_path)
            await install_maker_root(h, maker)
            m = h.mark()
            answer = await h.cs.call("UpdateFirmware", requestId=9, retries=3, retryInterval=30, firmware=firmware(
                files.url("agent.bundle_does_not_exist"), maker, path, at=h.clock.time() - 2 * HOUR))
            assert answer == {"status": "Accepted"}
            assert await statuses_until(h, "DownloadFailed", m) == [("Downloading", 9), ("DownloadFailed", 9)]
            assert len(files.requests) == 1
    finally:
        files.close()


async def test_tc_l_03_download_scheduled(tmp_path):
    """TC_L_03_CS: retrieveDateTime an hour ahead: DownloadScheduled at once, nothing fetched
    until the hour has passed (virtual time), then Downloading, Downloaded, SignatureVerified.
    (The file served is not a bundle, so the flow ends there with InstallationFailed; a real
    installation is TC_L_02's and TC_L_01's.)"""
    maker = Maker()
    directory, path = served(tmp_path)
    files = FileServer(directory)
    try:
        async with harness(tmp_path) as h:
            give_root(h, tmp_path)
            await install_maker_root(h, maker)
            m = h.mark()
            answer = await h.cs.call("UpdateFirmware", requestId=10, firmware=firmware(
                files.url("agent.bundle"), maker, path, at=h.clock.time() + HOUR))
            assert answer == {"status": "Accepted"}
            assert await statuses_until(h, "DownloadScheduled", m) == [("DownloadScheduled", 10)]
            await h.clock.advance(HOUR - 60)
            await h.settle(0.2)
            assert firmware_statuses(h, m) == [("DownloadScheduled", 10)] and files.requests == []
            await h.clock.advance(61)
            assert await statuses_until(h, "InstallationFailed", m) == [
                ("DownloadScheduled", 10), ("Downloading", 10), ("Downloaded", 10), ("SignatureVerified", 10),
                ("InstallationFailed", 10)]
    finally:
        files.close()


async def test_tc_l_10_a_second_update_while_downloading_is_accepted_canceled(tmp_path):
    """TC_L_10_CS: while the first update downloads (from a server that never answers), a
    second UpdateFirmware: AcceptedCanceled; from then on the statuses carry the second
    requestId: Downloading, Downloaded, SignatureVerified."""
    maker = Maker()
    directory, path = served(tmp_path)
    files, hanging = FileServer(directory), HangingServer()
    try:
        async with harness(tmp_path) as h:
            give_root(h, tmp_path)
            await install_maker_root(h, maker)
            m = h.mark()
            first = firmware(hanging.url("agent.bundle"), maker, path, at=h.clock.time() - 2 * HOUR)
            assert await h.cs.call("UpdateFirmware", requestId=11, firmware=first) == {"status": "Accepted"}
            assert await statuses_until(h, "Downloading", m) == [("Downloading", 11)]
            second = firmware(files.url("agent.bundle"), maker, path, at=h.clock.time() - 2 * HOUR)
            assert await h.cs.call("UpdateFirmware", requestId=12, firmware=second) == {"status": "AcceptedCanceled"}
            assert await statuses_until(h, "InstallationFailed", m) == [  # not a bundle (see TC_L_03)
                ("Downloading", 11), ("Downloading", 12), ("Downloaded", 12), ("SignatureVerified", 12),
                ("InstallationFailed", 12)]
    finally:
        hanging.close()
        files.close()


async def test_a_download_given_up_is_not_resumed_into_the_next_one(tmp_path):
    """A download broken off (retries 0: DownloadFailed) leaves a partial file; the next
    request for another file starts from its first byte (no Range into the other file's
    bytes), and its signature verifies."""
    maker = Maker()
    directory, first = served(tmp_path, "first.bundle", b"A" * 200_000)
    _directory, second = served(tmp_path, "second.bundle", b"B" * 200_000)
    files = FileServer(directory)
    files.cut_after = 50_000
    try:
        async with harness(tmp_path) as h:
            give_root(h, tmp_path)
            await install_maker_root(h, maker)
            m = h.mark()
            assert (await h.cs.call("UpdateFirmware", requestId=1, firmware=firmware(
                files.url("first.bundle"), maker, first, at=h.clock.time() - 1)))["status"] == "Accepted"
            await statuses_until(h, "DownloadFailed", m)
            # The central system has DownloadFailed before the agent has its answer: the first
            # request ends only then (a request sent before would be AcceptedCanceled).
            await until(lambda: h.agent.updates._task.done(), what="the first request over")
            m = h.mark()
            assert (await h.cs.call("UpdateFirmware", requestId=2, firmware=firmware(
                files.url("second.bundle"), maker, second, at=h.clock.time() - 1)))["status"] == "Accepted"
            assert await statuses_until(h, "InstallationFailed", m) == [
                ("Downloading", 2), ("Downloaded", 2), ("SignatureVerified", 2), ("InstallationFailed", 2)]
            assert files.requests[-1] == ("/second.bundle", None)
    finally:
        files.close()


async def test_trigger_firmware_status_notification_idle_and_while_downloading(tmp_path):
    """TriggerMessage FirmwareStatusNotification (F06): Idle without an update; Downloading with
    the update's requestId while one downloads."""
    maker = Maker()
    directory, path = served(tmp_path)
    hanging = HangingServer()
    try:
        async with harness(tmp_path) as h:
            give_root(h, tmp_path)
            m = h.mark()
            assert await h.cs.call("TriggerMessage", requestedMessage="FirmwareStatusNotification") == {
                "status": "Accepted"}
            assert await h.cs.wait_for("FirmwareStatusNotification", start_index=m) == {"status": "Idle"}
            await install_maker_root(h, maker)
            assert (await h.cs.call("UpdateFirmware", requestId=21, firmware=firmware(
                hanging.url("agent.bundle"), maker, path, at=h.clock.time() - 1)))["status"] == "Accepted"
            await statuses_until(h, "Downloading", m)
            m = h.mark()
            assert await h.cs.call("TriggerMessage", requestedMessage="FirmwareStatusNotification") == {
                "status": "Accepted"}
            assert await h.cs.wait_for("FirmwareStatusNotification", start_index=m) == {
                "status": "Downloading", "requestId": 21}
    finally:
        hanging.close()


@pytest.mark.timeout_s(120)
async def test_tc_l_02_install_scheduled_and_never_during_a_transaction(tmp_path, bundles, venv_works):
    """TC_L_02_CS: installDateTime an hour ahead: Downloading, Downloaded, SignatureVerified,
    InstallScheduled. A transaction runs as well: when the hour has passed the agent still
    waits for it to end; then Installing (bundles["0.9.2"] installed for real into the
    install root), InstallRebooting, ``current`` is 0.9.2 and the agent asks to restart into it
    (the reboot and Installed are TC_L_01's, with real processes)."""
    maker = Maker()
    directory, path = served(tmp_path, "agent-0.9.2.bundle", open(bundles["0.9.2"], "rb").read())
    files = FileServer(directory)
    try:
        async with harness(tmp_path) as h:
            root = give_root(h, tmp_path)
            await install_maker_root(h, maker)
            await octt201.local_start(h)
            m = h.mark()
            answer = await h.cs.call("UpdateFirmware", requestId=30, firmware=firmware(
                files.url("agent-0.9.2.bundle"), maker, path, at=h.clock.time() - 2 * HOUR,
                installDateTime=iso(h.clock.time() + HOUR)))
            assert answer == {"status": "Accepted"}
            assert await statuses_until(h, "InstallScheduled", m) == [
                ("Downloading", 30), ("Downloaded", 30), ("SignatureVerified", 30), ("InstallScheduled", 30)]
            assert h.agent.updates.status == "install_scheduled"
            await h.clock.advance(HOUR + 60)
            await h.settle(0.2)
            assert firmware_statuses(h, m)[-1] == ("InstallScheduled", 30)  # the transaction still runs
            assert root.current_version() is None
            h.sim.swipe(octt201.TAG)  # the driver ends it
            await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Ended", start_index=m)
            await until(lambda: h.station.connector(1).transaction is None
                        or h.station.connector(1).transaction.stopped, what="the transaction ended")
            assert await statuses_until(h, "InstallRebooting", m, clock=h.clock, timeout_s=90) == [
                ("Downloading", 30), ("Downloaded", 30), ("SignatureVerified", 30), ("InstallScheduled", 30),
                ("Installing", 30), ("InstallRebooting", 30)]
            assert root.current_version() == "0.9.2"
            await until(lambda: h.agent.restart_requested == "update", what="the restart into 0.9.2")
            assert h.agent.updates.status == "install_rebooting"
    finally:
        files.close()


# ---------------------------------------------------------------------- real processes

class Installed:
    """The agent installed in an install root, run under its supervisor
    (``<root>/current/bin/ocpp-agent run``) on the simulated board, as a charger runs it."""

    def __init__(self, tmp_path, root: InstallRoot, url: str, version: str = "2.0.1",
                 verify_timeout_s: int = 90, healthy_start_s: int = 5) -> None:
        self.tmp_path, self.root = tmp_path, root
        self.config = tmp_path / "agent.toml"
        text = CONFIG % {"data": tmp_path / "data", "url": url, "version": version}
        text = text.replace("verify_timeout_s = 90", "verify_timeout_s = %d" % verify_timeout_s)
        self.config.write_text(text.replace("healthy_start_s = 5", "healthy_start_s = %d" % healthy_start_s))
        self.log_path = tmp_path / "agent.log"
        self.process = None

    def start(self) -> None:
        self.log_file = open(self.log_path, "a")
        self.process = subprocess.Popen([self.root.executable(), "run", "--config", str(self.config)],
                                        cwd=str(self.tmp_path), env=clean_env(), stdout=self.log_file,
                                        stderr=subprocess.STDOUT)

    def stop(self) -> int:
        if self.process is None:
            return 0
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log_file.close()
        code, self.process = self.process.returncode, None
        return code

    def log(self) -> str:
        return self.log_path.read_text()[-3000:]


def central_201(seen: Seen, boot_status=lambda version: "Accepted") -> TestCentralSystem:
    def boot(p: dict) -> dict:
        return {"status": boot_status(p["chargingStation"].get("firmwareVersion")), "currentTime": iso_now(),
                "interval": 300}
    return TestCentralSystem(quiet=True, protocols=("ocpp2.0.1",), handlers={
        "BootNotification": seen.handler("BootNotification", boot),
        "FirmwareStatusNotification": seen.handler("FirmwareStatusNotification", lambda p: {}),
        "SecurityEventNotification": seen.handler("SecurityEventNotification", lambda p: {})})


def events_seen(seen: Seen, since: int = 0) -> list:
    return [(a, w) for _t, a, w in seen.log[since:]]


def print_log(title: str, seen: Seen, since: int) -> None:
    print("\n%s as the CSMS saw it:" % title)
    for t, action, what in seen.log[since:]:
        print("  %6.1f s  %s %s" % (t, action, what))


def serve_bundles(tmp_path, bundles, *versions) -> FileServer:
    directory = tmp_path / "served"
    directory.mkdir(exist_ok=True)
    for version in versions:
        os.link(bundles[version], directory / ("agent-%s.bundle" % version))
    return FileServer(str(directory))


@pytest.mark.timeout_s(300)
async def test_tc_l_01_secure_update_and_tc_l_08_a_broken_one_rolled_back(bundles, tmp_path, venv_works):
    """TC_L_01_CS: 0.9.1 installed; InstallCertificate ManufacturerRootCertificate, UpdateFirmware
    with signature, signingCertificate and requestId: Downloading, Downloaded, SignatureVerified,
    Installing, InstallRebooting; after the restart BootNotification 0.9.2, Installed with the
    requestId and a SecurityEventNotification FirmwareUpdated. TC_L_08_CS: then a signed bundle
    whose agent fails at start (0.9.3): the same up to InstallRebooting, the supervisor goes
    back to 0.9.2, which reports InstallationFailed."""
    maker = Maker()
    root = InstallRoot(str(tmp_path / "root"))
    root.activate(root.install(bundles["0.9.1"]))
    files = serve_bundles(tmp_path, bundles, "0.9.2", "0.9.3")
    seen = Seen()
    cs = central_201(seen)
    await cs.start()
    agent = Installed(tmp_path, root, cs.url)
    agent.start()
    try:
        h = await cs.wait_for_station("CP001", timeout_s=60)
        await until_real(lambda: ("BootNotification", "0.9.1") in events_seen(seen), 60, "0.9.1 booted")
        assert await h.call("InstallCertificate", certificateType="ManufacturerRootCertificate",
                            certificate=maker.root.pem) == {"status": "Accepted"}

        mark = len(seen.log)
        answer = await h.call("UpdateFirmware", requestId=101, firmware={
            "location": files.url("agent-0.9.2.bundle"), "retrieveDateTime": iso(time.time() - 7200),
            "installDateTime": iso(time.time() - 7200), "signingCertificate": maker.cert_pem,
            "signature": maker.sign(bundles["0.9.2"])})
        assert answer == {"status": "Accepted"}
        await until_real(lambda: "Installed" in seen.statuses(mark), 120, "0.9.2 Installed")
        await until_real(lambda: any(m.action == "SecurityEventNotification" and m.payload["type"] == "FirmwareUpdated"
                                     for m in h.messages), 30, "SecurityEventNotification FirmwareUpdated")
        assert seen.statuses(mark) == ["Downloading", "Downloaded", "SignatureVerified", "Installing",
                                       "InstallRebooting", "Installed"]
        installed = [m.payload for m in h.messages if m.action == "FirmwareStatusNotification"
                     and m.payload.get("status") == "Installed"]
        assert installed and installed[-1].get("requestId") == 101
        assert ("BootNotification", "0.9.2") in events_seen(seen, mark)
        assert root.current_version() == "0.9.2" and root.previous_version() == "0.9.1"
        print_log("TC_L_01 update 0.9.1 -> 0.9.2", seen, mark)

        mark = len(seen.log)
        answer = await h.call("UpdateFirmware", requestId=102, firmware={
            "location": files.url("agent-0.9.3.bundle"), "retrieveDateTime": iso(time.time() - 7200),
            "signingCertificate": maker.cert_pem, "signature": maker.sign(bundles["0.9.3"])})
        assert answer == {"status": "Accepted"}
        await until_real(lambda: "InstallationFailed" in seen.statuses(mark), 150, "InstallationFailed")
        assert seen.statuses(mark) == ["Downloading", "Downloaded", "SignatureVerified", "Installing",
                                       "InstallRebooting", "InstallationFailed"]
        failed = [m.payload for m in h.messages if m.action == "FirmwareStatusNotification"
                  and m.payload.get("status") == "InstallationFailed"]
        assert failed[-1].get("requestId") == 102
        assert [w for a, w in events_seen(seen, mark) if a == "BootNotification"] == ["0.9.2"]
        assert root.current_version() == "0.9.2" and root.previous_version() == "0.9.3"
        print_log("TC_L_08 update 0.9.2 -> 0.9.3 (fails at start)", seen, mark)
        validate_agent_frames(h)
    finally:
        code = agent.stop()
        files.close()
        await cs.stop()
    assert code == 0, agent.log()


@pytest.mark.timeout_s(300)
async def test_tc_l_08_a_version_the_csms_refuses_is_rolled_back_at_its_deadline(bundles, tmp_path, venv_works):
    """TC_L_08_CS, the other way to fail: 0.9.2 installs and starts, but the CSMS rejects its
    BootNotification (it does not take that version), so it never reaches Accepted. At
    ``update.verify_timeout_s`` (20 s here) the supervisor stops it, switches back to 0.9.1,
    which boots and reports InstallVerificationFailed."""
    maker = Maker()
    root = InstallRoot(str(tmp_path / "root"))
    root.activate(root.install(bundles["0.9.1"]))
    files = serve_bundles(tmp_path, bundles, "0.9.2")
    seen = Seen()
    cs = central_201(seen, boot_status=lambda version: "Rejected" if version == "0.9.2" else "Accepted")
    await cs.start()
    agent = Installed(tmp_path, root, cs.url, verify_timeout_s=20)
    agent.start()
    try:
        h = await cs.wait_for_station("CP001", timeout_s=60)
        await until_real(lambda: ("BootNotification", "0.9.1") in events_seen(seen), 60, "0.9.1 booted")
        assert await h.call("InstallCertificate", certificateType="ManufacturerRootCertificate",
                            certificate=maker.root.pem) == {"status": "Accepted"}
        mark = len(seen.log)
        answer = await h.call("UpdateFirmware", requestId=103, firmware={
            "location": files.url("agent-0.9.2.bundle"), "retrieveDateTime": iso(time.time() - 7200),
            "signingCertificate": maker.cert_pem, "signature": maker.sign(bundles["0.9.2"])})
        assert answer == {"status": "Accepted"}
        await until_real(lambda: "InstallVerificationFailed" in seen.statuses(mark), 150,
                         "InstallVerificationFailed")
        assert seen.statuses(mark) == ["Downloading", "Downloaded", "SignatureVerified", "Installing",
                                       "InstallRebooting", "InstallVerificationFailed"]
        boots = [w for a, w in events_seen(seen, mark) if a == "BootNotification"]
        assert "0.9.2" in boots and boots[-1] == "0.9.1"
        assert root.current_version() == "0.9.1" and root.previous_version() == "0.9.2"
        print_log("update 0.9.1 -> 0.9.2 refused by the CSMS (deadline 20 s)", seen, mark)
        validate_agent_frames(h)
    finally:
        code = agent.stop()
        files.close()
        await cs.stop()
    assert code == 0, agent.log()
