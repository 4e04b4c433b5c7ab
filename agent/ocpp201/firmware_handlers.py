"""OCPP 2.0.1 agent updates (L01 secure firmware update, installDateTime honoured):
UpdateFirmware translated to the UpdateService (agent/update/service.py),
FirmwareStatusNotification with the requestId. A request without a signature and a
signing certificate (L02, non-secure) is Rejected: a station that supports the secure
update must not take the other (TC_L_18). A mixin of Ocpp201Session.

CPython-only (runs in the ocpp library's session).
"""

from agent.core.isotime import parse_datetime

KIND = "ocpp201"
STATUS = {"downloading": "Downloading", "downloaded": "Downloaded", "download_failed": "DownloadFailed",
          "download_scheduled": "DownloadScheduled", "signature_verified": "SignatureVerified",
          "invalid_signature": "InvalidSignature", "install_scheduled": "InstallScheduled",
          "installing": "Installing", "install_rebooting": "InstallRebooting", "installed": "Installed",
          "installation_failed": "InstallationFailed", "install_verification_failed": "InstallVerificationFailed",
          "idle": "Idle"}
ANSWER = {"accepted": "Accepted", "accepted_canceled": "AcceptedCanceled", "rejected": "Rejected",
          "invalid_certificate": "InvalidCertificate"}


def status_payload(word: str, request_id) -> dict | None:
    status = STATUS.get(word)
    if status is None:
        return None
    return {"status": status, "requestId": request_id} if request_id is not None else {"status": status}


class FirmwareHandlers:
    """UpdateFirmware for Ocpp201Session (``self.client``)."""

    async def on_UpdateFirmware(self, p: dict) -> dict:
        firmware, client = p["firmware"], self.client
        if not firmware.get("signature") or not firmware.get("signingCertificate"):
            # TC_L_18: a station that supports the secure update (L01) refuses the non-secure one.
            return {"status": "Rejected", "statusInfo": {
                "reasonCode": "UnsignedUpdate", "additionalInfo": "signature and signingCertificate required"}}

        async def notify(word: str, request_id) -> None:
            payload = status_payload(word, request_id)
            if payload is not None:
                await client.send_quietly("FirmwareStatusNotification", payload)

        answer = client.updates.request(
            firmware["location"], parse_datetime(firmware["retrieveDateTime"]), retries=p.get("retries", 0),
            retry_interval_s=p.get("retryInterval", 60), request_id=p["requestId"],
            signature=firmware.get("signature"), signing_certificate=firmware.get("signingCertificate"),
            kind=KIND, notify=notify,
            install_at=parse_datetime(firmware["installDateTime"]) if firmware.get("installDateTime") else None)
        return {"status": ANSWER[answer]}

    async def after_UpdateFirmware(self, p: dict, response: dict) -> None:
        if response["status"] in ("Accepted", "AcceptedCanceled"):
            self.client.updates.start()
