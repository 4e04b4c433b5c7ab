"""The 1.6 security whitepaper's certificate messages (M03-M05, A02/A03): requests from
the central system translated to the CertificateService (agent/security/service.py),
and ExtendedTriggerMessage. A mixin of Ocpp16Session: no certificate logic here.

CPython-only (the ``ocpp`` library's routing).
"""

import logging

from ocpp.routing import after, on
from ocpp.v16.enums import Action

log = logging.getLogger(__name__)

CERTIFICATE_USE = {"CentralSystemRootCertificate": "csms_root", "ManufacturerRootCertificate": "manufacturer_root"}
STATUS = {"accepted": "Accepted", "rejected": "Rejected", "failed": "Failed", "not_found": "NotFound"}
EXTENDED_TRIGGERS = ("BootNotification", "LogStatusNotification", "FirmwareStatusNotification", "Heartbeat",
                     "MeterValues", "SignChargePointCertificate", "StatusNotification")


class SecurityHandlers:
    """InstallCertificate, DeleteCertificate, GetInstalledCertificateIds, CertificateSigned
    and ExtendedTriggerMessage for Ocpp16Session (``self.client``, ``self._call_result``)."""

    @on(Action.install_certificate)
    async def on_install_certificate(self, certificate_type: str, certificate: str):
        status = self.client.certificates.install(CERTIFICATE_USE[certificate_type], certificate)
        return self._call_result.InstallCertificate(status=STATUS[status])

    @on(Action.delete_certificate)
    async def on_delete_certificate(self, certificate_hash_data: dict):
        status = self.client.certificates.delete(certificate_hash_data)
        return self._call_result.DeleteCertificate(status=STATUS[status])

    @on(Action.get_installed_certificate_ids)
    async def on_get_installed_certificate_ids(self, certificate_type: str):
        found = self.client.certificates.installed([CERTIFICATE_USE[certificate_type]])
        if not found:
            return self._call_result.GetInstalledCertificateIds(status="NotFound")
        return self._call_result.GetInstalledCertificateIds(
            status="Accepted", certificate_hash_data=[item["hash"] for item in found])

    @on(Action.certificate_signed)
    async def on_certificate_signed(self, certificate_chain: str):
        status = self.client.certificates.certificate_signed(certificate_chain)
        return self._call_result.CertificateSigned(status=STATUS[status])

    @after(Action.certificate_signed)
    async def after_certificate_signed(self, certificate_chain: str):
        if self.client.certificates.signed.is_set():
            self.client.certificates.after_signed()

    def _extended_trigger(self, requested_message: str, connector_id: int | None) -> str:
        if requested_message not in EXTENDED_TRIGGERS:
            return "NotImplemented"
        if requested_message == "SignChargePointCertificate":
            return "Accepted" if connector_id is None else "Rejected"
        if requested_message == "LogStatusNotification":  # the log upload's state (agent/ocpp16/logs.py)
            return "Accepted"
        return "Accepted" if self._trigger_accepted(requested_message, connector_id) else "Rejected"

    @on(Action.extended_trigger_message)
    async def on_extended_trigger_message(self, requested_message: str, connector_id: int | None = None):
        return self._call_result.ExtendedTriggerMessage(status=self._extended_trigger(requested_message,
                                                                                      connector_id))

    @after(Action.extended_trigger_message)
    async def after_extended_trigger_message(self, requested_message: str, connector_id: int | None = None):
        if self._extended_trigger(requested_message, connector_id) != "Accepted":
            return
        if requested_message == "SignChargePointCertificate":
            self.client.request_certificate()
        elif requested_message == "FirmwareStatusNotification":  # the whitepaper's signed status
            await self.client.send_quietly(self.client.firmware_status(signed=True))
        else:
            await self.client.send_triggered(requested_message, connector_id)
