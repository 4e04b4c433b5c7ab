"""OCPP 1.6 agent updates: UpdateFirmware (FirmwareManagement, FirmwareStatusNotification)
and the security whitepaper's SignedUpdateFirmware (SignedFirmwareStatusNotification),
translated to the UpdateService (agent/update/service.py). A mixin of Ocpp16Session.

CPython-only (the ``ocpp`` library's routing).
"""

import logging

from ocpp.routing import after, on
from ocpp.v16 import call
from ocpp.v16.enums import Action

from agent.core.isotime import parse_datetime

log = logging.getLogger(__name__)

PLAIN, SIGNED = "ocpp16", "ocpp16_signed"  # the message family an update is reported in
# The update's status words in FirmwareStatusNotification (None: 1.6 has no word for it: not sent).
FIRMWARE_STATUS = {"downloading": "Downloading", "downloaded": "Downloaded", "download_failed": "DownloadFailed",
                   "installing": "Installing", "installed": "Installed", "installation_failed": "InstallationFailed",
                   "install_verification_failed": "InstallationFailed", "invalid_signature": "InstallationFailed",
                   "idle": "Idle"}
SIGNED_STATUS = {"downloading": "Downloading", "downloaded": "Downloaded", "download_failed": "DownloadFailed",
                 "download_scheduled": "DownloadScheduled", "signature_verified": "SignatureVerified",
                 "invalid_signature": "InvalidSignature", "install_scheduled": "InstallScheduled",
                 "installing": "Installing", "install_rebooting": "InstallRebooting", "installed": "Installed",
                 "installation_failed": "InstallationFailed",
                 "install_verification_failed": "InstallVerificationFailed", "idle": "Idle"}
ANSWER = {"accepted": "Accepted", "accepted_canceled": "AcceptedCanceled", "rejected": "Rejected",
          "invalid_certificate": "InvalidCertificate"}


def status_message(kind: str, word: str, request_id):
    """The 1.6 message reporting ``word`` for an update of ``kind``, None when it has no word."""
    if kind == SIGNED:
        status = SIGNED_STATUS.get(word)
        return call.SignedFirmwareStatusNotification(status=status, request_id=request_id) if status else None
    status = FIRMWARE_STATUS.get(word)
    return call.FirmwareStatusNotification(status=status) if status else None


class FirmwareHandlers:
    """UpdateFirmware and SignedUpdateFirmware for Ocpp16Session (``self.client``)."""

    def _notifier(self, kind: str):
        client = self.client

        async def notify(word: str, request_id) -> None:
            message = status_message(kind, word, request_id)
            if message is not None:
                await client.send_quietly(message)
        return notify

    @on(Action.update_firmware)
    async def on_update_firmware(self, location: str, retrieve_date: str, retries: int | None = None,
                                 retry_interval: int | None = None):
        self._firmware_answer = self.client.updates.request(
            location, parse_datetime(retrieve_date), retries=retries or 0, retry_interval_s=retry_interval or 60,
            kind=PLAIN, notify=self._notifier(PLAIN))
        return self._call_result.UpdateFirmware()  # 1.6 answers nothing: the statuses tell

    @after(Action.update_firmware)
    async def after_update_firmware(self, **_kwargs):
        if self._firmware_answer.startswith("accepted"):
            self.client.updates.start()
        else:  # refused (no install root): say so the only way 1.6 can
            await self.client.send_quietly(call.FirmwareStatusNotification(status="InstallationFailed"))

    @on(Action.signed_update_firmware)
    async def on_signed_update_firmware(self, request_id: int, firmware: dict, retries: int | None = None,
                                        retry_interval: int | None = None):
        self._firmware_answer = self.client.updates.request(
            firmware["location"], parse_datetime(firmware["retrieve_date_time"]), retries=retries or 0,
            retry_interval_s=retry_interval or 60, request_id=request_id, signature=firmware.get("signature"),
            signing_certificate=firmware.get("signing_certificate"), kind=SIGNED, notify=self._notifier(SIGNED),
            install_at=parse_datetime(firmware["install_date_time"]) if firmware.get("install_date_time") else None)
        return self._call_result.SignedUpdateFirmware(status=ANSWER[self._firmware_answer])

    @after(Action.signed_update_firmware)
    async def after_signed_update_firmware(self, **_kwargs):
        if self._firmware_answer.startswith("accepted"):
            self.client.updates.start()
