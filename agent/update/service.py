"""Updating the agent on request, in neutral words for every OCPP version (1.6
UpdateFirmware and SignedUpdateFirmware, 2.0.1 UpdateFirmware L01-L04) and the CLI:
download at the retrieve time with retries (a broken download resumes), check the
bundle and its signature against the installed ManufacturerRootCertificates, wait
until no transaction runs, install the new version beside the old one, make it the
active one, and restart into it — on trial: the supervisor
(agent/update/supervisor.py) switches back if it crashes, hangs or cannot connect
before the deadline. Each step is a status word the adapter turns into its
FirmwareStatusNotification; what happened across the restart is reported once
the charger is booted again (``pending_report``).

Status words: idle, download_scheduled, downloading, downloaded, download_failed,
signature_verified, invalid_signature, install_scheduled, installing,
install_rebooting, installed, installation_failed, install_verification_failed.

CPython-only (the installer and the download run subprocesses and threads).
"""

import asyncio
import logging
import os

from agent.transfer.download import DownloadError, download
from agent.transfer.upload import safe_url
from agent.update import state as update_state

log = logging.getLogger(__name__)

VERIFY_TIMEOUT_S = 300.0  # the new version's time to get BootNotification Accepted
HEALTHY_START_S = 60.0  # offline: the new version must run this long without dying
IDLE_POLL_S = 5.0  # how often a waiting installation looks for the end of the transactions
ACCEPTED, ACCEPTED_CANCELED, REJECTED, INVALID_CERTIFICATE = (
    "accepted", "accepted_canceled", "rejected", "invalid_certificate")


class UpdateRequest:
    """One update asked for: where, when, how often to try, and whom to tell."""

    __slots__ = ("location", "retrieve_at", "retries", "retry_interval_s", "request_id", "signature",
                 "signing_certificate", "kind", "notify", "install_at")

    def __init__(self, location: str, retrieve_at: float, *, retries: int = 0, retry_interval_s: float = 60.0,
                 request_id=None, signature: str | None = None, signing_certificate: str | None = None,
                 kind: str = "", notify=None, install_at: float | None = None) -> None:
        self.location = location
        self.retrieve_at = retrieve_at
        self.install_at = install_at  # installDateTime: not installed before it (2.0.1, 1.6 signed)
        self.retries = retries
        self.retry_interval_s = retry_interval_s
        self.request_id = request_id
        self.signature = signature
        self.signing_certificate = signing_certificate
        self.kind = kind  # the adapter's name for the message family (it reports with it after the restart)
        self.notify = notify  # async callable(status word, request id), or None


class UpdateService:
    """The station's agent updates (one at a time; the newest request wins)."""

    def __init__(self, *, data_dir: str, clock, station, security, install_root, running_version: str,
                 verify_timeout_s: float = VERIFY_TIMEOUT_S, healthy_start_s: float = HEALTHY_START_S,
                 request_restart=None) -> None:
        self.clock = clock
        self.station = station
        self.security = security  # SecurityContext: the manufacturer roots, the security log
        self.install_root = install_root  # agent/update/installer.py InstallRoot, None outside one
        self.running_version = running_version
        self.verify_timeout_s = verify_timeout_s
        self.healthy_start_s = healthy_start_s
        self.request_restart = request_restart  # callable(): end this run to start the new version
        self.work_dir = os.path.join(data_dir, "updates")
        self.state_path = os.path.join(data_dir, update_state.FILE)
        self.status = "idle"
        self.request_id = None
        self._pending: UpdateRequest | None = None
        self._downloads = 0
        self._task = None
        self._trial_task = None

    # ------------------------------------------------------------------ requests
    def request(self, location: str, retrieve_at: float, **options) -> str:
        """Answer an update request (``options``: those of UpdateRequest): accepted (``start()``
        runs it), accepted_canceled (an update under way was given up for it), rejected, or
        invalid_certificate."""
        req = UpdateRequest(location, retrieve_at, **options)
        if self.install_root is None:
            log.warning("update refused: the agent does not run from an install root (docs/updates.md)")
            return REJECTED
        if req.signing_certificate:
            problem = self._certificate_problem(req.signing_certificate)
            if problem:
                log.warning("update refused: signing certificate: %s", problem)
                self.security.log.record("invalid_firmware_signing_certificate", problem)
                return INVALID_CERTIFICATE
        canceled = self._task is not None and not self._task.done()
        if canceled:
            self._task.cancel()
            log.warning("the update under way is given up for request %s", req.request_id)
        self._pending = req
        return ACCEPTED_CANCELED if canceled else ACCEPTED

    def start(self) -> None:
        """Run the accepted request (after its answer went out)."""
        req, self._pending = self._pending, None
        if req is not None:
            self._task = asyncio.create_task(self._run(req))

    async def close(self) -> None:
        for task in (self._task, self._trial_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._task = self._trial_task = None

    def _certificate_problem(self, pem: str) -> str:
        """Why the firmware signing certificate cannot be trusted ("" when it can): valid now and
        issued by an installed ManufacturerRootCertificate (checked before any download)."""
        from agent.security.certificates import MANUFACTURER_ROOT
        from agent.update.bundle import signing_certificate_problem

        return signing_certificate_problem(pem, self.security.certificates.certificates(MANUFACTURER_ROOT),
                                           self.clock.time())

    async def _say(self, req: UpdateRequest, word: str) -> None:
        self.status, self.request_id = word, req.request_id
        log.info("update %s: %s", req.request_id if req.request_id is not None else "", word)
        if req.notify is not None:
            try:
                await req.notify(word, req.request_id)
            except Exception as e:  # a status not delivered must not stop the update
                log.warning("firmware status %s not delivered: %s", word, e)

    # ------------------------------------------------------------------ the steps
    async def _run(self, req: UpdateRequest) -> None:
        try:
            bundle = await self._download(req)
            if bundle is None or not await self._verify(req, bundle):
                return
            await self._wait_until_idle(req)
            await self._install(req, bundle)
        finally:
            if self.status in ("download_failed", "invalid_signature", "installation_failed"):
                self.status = "idle"

    async def _download(self, req: UpdateRequest) -> str | None:
        wait_s = req.retrieve_at - self.clock.time()
        if wait_s > 0:
            await self._say(req, "download_scheduled")
            await self.clock.sleep(wait_s)
        os.makedirs(self.work_dir, mode=0o700, exist_ok=True)
        # One file per request: its retries resume its own partial download; what another request
        # left (given up for this one, failed) is removed, never resumed into this one, and a
        # download thread of a request given up cannot write over this one's file.
        self._downloads += 1
        name = "update-%d.bundle" % self._downloads
        dest = os.path.join(self.work_dir, name)
        for other in os.listdir(self.work_dir):
            if not other.startswith(name):
                try:
                    os.remove(os.path.join(self.work_dir, other))
                except OSError:
                    pass
        for attempt in range(req.retries + 1):
            await self._say(req, "downloading")
            try:
                await download(req.location, dest)
                await self._say(req, "downloaded")
                return dest
            except DownloadError as e:
                log.warning("download of %s failed (attempt %d of %d): %s", safe_url(req.location), attempt + 1,
                            req.retries + 1, e.reason)
                if e.permanent or attempt == req.retries:
                    break
                await self.clock.sleep(req.retry_interval_s)
        await self._say(req, "download_failed")
        return None

    async def _verify(self, req: UpdateRequest, bundle: str) -> bool:
        from agent.update.bundle import BundleError, check_compatible, read_manifest, verify_signature

        if req.signature:
            from agent.security.certificates import MANUFACTURER_ROOT

            roots = self.security.certificates.certificates(MANUFACTURER_ROOT)
            problem = verify_signature(bundle, req.signature, req.signing_certificate or "", roots, self.clock.time())
            if problem:
                log.error("update refused: %s", problem)
                self.security.log.record("invalid_firmware_signature", problem)
                await self._say(req, "invalid_signature")
                return False
            await self._say(req, "signature_verified")
        try:
            problem = check_compatible(read_manifest(bundle))
        except BundleError as e:
            problem = str(e)
        if problem:
            log.error("update refused: the bundle: %s", problem)
            await self._say(req, "installation_failed")
            return False
        return True

    async def _wait_until_idle(self, req: UpdateRequest) -> None:
        """Not before the install time asked for, never while a transaction runs: wait for
        both (InstallScheduled once)."""
        said = False
        while True:
            wait_s = req.install_at - self.clock.time() if req.install_at is not None else 0
            busy = any(c.transaction is not None and not c.transaction.stopped for c in self.station.connectors)
            if wait_s <= 0 and not busy:
                return
            if not said:
                await self._say(req, "install_scheduled")
                said = True
            await self.clock.sleep(wait_s if not busy else IDLE_POLL_S)

    async def _install(self, req: UpdateRequest, bundle: str) -> None:
        from agent.update.bundle import BundleError
        from agent.update.installer import InstallError

        await self._say(req, "installing")
        try:
            version = await self.install_root.install_async(bundle)
        except (BundleError, InstallError, OSError) as e:
            log.error("installation failed: %s", e)
            await self._say(req, "installation_failed")
            return
        now = self.clock.time()
        needs_boot = self.station.link.online  # offline: a healthy start is proof enough
        update_state.begin_trial(self.state_path, from_version=self.running_version, to_version=version, now=now,
                                 deadline=now + self.verify_timeout_s, needs_boot=needs_boot,
                                 request_id=req.request_id, protocol=req.kind)
        self.install_root.activate(version)
        log.warning("version %s installed and active: restarting into it (on trial for %d s)", version,
                    self.verify_timeout_s)
        await self._say(req, "install_rebooting")
        if self.request_restart is not None:
            self.request_restart()

    def roll_back_by_hand(self) -> str:
        """``ocpp-agent update --rollback``: the previous version active again, this run ends
        for the supervisor to start it."""
        if self.install_root is None:
            raise ValueError("the agent does not run from an install root")
        previous = self.install_root.previous_version()
        if previous is None:
            raise ValueError("there is no previous version")
        self.install_root.roll_back()
        update_state.write_state(self.state_path, {
            "status": update_state.ROLLED_BACK, "from": previous, "to": self.running_version, "reason": "by hand",
            "reason_kind": "installation", "request_id": None, "protocol": "cli", "since": self.clock.time()})
        log.warning("rolled back by hand: %s -> %s", self.running_version, previous)
        if self.request_restart is not None:
            self.request_restart()
        return "version %s is active again; the agent restarts into it" % previous

    # ------------------------------------------------------------------ after the restart
    def on_start(self) -> None:
        """At the start of a run: the new version on trial without a central system to prove
        itself to passes after a healthy start of HEALTHY_START_S."""
        st = update_state.read_state(self.state_path)
        if st is None or st["status"] != update_state.TRIAL or st["to"] != self.running_version:
            return
        self.status, self.request_id = "installing", st.get("request_id")
        if not st.get("needs_boot"):
            self._trial_task = asyncio.create_task(self._healthy_start())

    async def _healthy_start(self) -> None:
        await self.clock.sleep(self.healthy_start_s)
        self._verified("a healthy start of %d s" % self.healthy_start_s)

    def boot_accepted(self) -> None:
        """BootNotification Accepted: the new version on trial has proven itself."""
        st = update_state.read_state(self.state_path)
        if st is not None and st["status"] == update_state.TRIAL and st["to"] == self.running_version:
            self._verified("BootNotification Accepted")

    def _verified(self, how: str) -> None:
        st = update_state.mark(self.state_path, update_state.VERIFIED, verified_by=how)
        if st is None:
            return
        log.warning("update to %s verified (%s)", self.running_version, how)
        self.security.log.record("firmware_updated", "%s -> %s" % (st["from"], st["to"]))

    def pending_report(self):
        """(status word, request id, kind) to tell the central system once booted, or None:
        installed, or the failure the supervisor rolled back."""
        st = update_state.read_state(self.state_path)
        if st is None:
            return None
        if st["status"] == update_state.VERIFIED and st["to"] == self.running_version:
            return "installed", st.get("request_id"), st.get("protocol")
        if st["status"] == update_state.ROLLED_BACK and st["from"] == self.running_version:
            word = "install_verification_failed" if st.get("reason_kind") == "verification" else "installation_failed"
            return word, st.get("request_id"), st.get("protocol")
        return None

    def reported(self) -> None:
        update_state.mark(self.state_path, update_state.REPORTED)
        self.status, self.request_id = "idle", None
