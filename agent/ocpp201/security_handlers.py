"""OCPP 2.0.1 certificate management (M03-M05) and the station's own certificate (A02,
A03): requests from the CSMS translated to the CertificateService
(agent/security/service.py). A mixin of Ocpp201Session: no certificate logic here.

CPython-only (runs in the ocpp library's session).
"""

INSTALL_USE = {"CSMSRootCertificate": "csms_root", "ManufacturerRootCertificate": "manufacturer_root",
               "V2GRootCertificate": "v2g_root", "MORootCertificate": "mo_root"}
CERTIFICATE_TYPE = {kind: word for word, kind in INSTALL_USE.items()}
STATUS = {"accepted": "Accepted", "rejected": "Rejected", "failed": "Failed", "not_found": "NotFound"}
_HASH_KEYS = (("hashAlgorithm", "hash_algorithm"), ("issuerNameHash", "issuer_name_hash"),
              ("issuerKeyHash", "issuer_key_hash"), ("serialNumber", "serial_number"))


def neutral_hash(data: dict) -> dict:
    """CertificateHashDataType -> the security core's hash dict."""
    return {ours: data[theirs] for theirs, ours in _HASH_KEYS}


def hash_words(data: dict) -> dict:
    return {theirs: data[ours] for theirs, ours in _HASH_KEYS}


class SecurityHandlers:
    """InstallCertificate, DeleteCertificate, GetInstalledCertificateIds and CertificateSigned
    for Ocpp201Session (``self.client``)."""

    async def on_InstallCertificate(self, p: dict) -> dict:
        status = self.client.certificates.install(INSTALL_USE[p["certificateType"]], p["certificate"])
        return {"status": STATUS[status]}

    async def on_DeleteCertificate(self, p: dict) -> dict:
        return {"status": STATUS[self.client.certificates.delete(neutral_hash(p["certificateHashData"]))]}

    async def on_GetInstalledCertificateIds(self, p: dict) -> dict:
        # V2GCertificateChain (ISO 15118) is never installed here: asking for it finds nothing.
        kinds = [INSTALL_USE[t] for t in p.get("certificateType") or () if t in INSTALL_USE]
        asked = bool(p.get("certificateType"))
        found = self.client.certificates.installed(kinds if asked else None) if kinds or not asked else []
        if not found:
            return {"status": "NotFound"}
        return {"status": "Accepted", "certificateHashDataChain": [
            {"certificateType": CERTIFICATE_TYPE[item["kind"]], "certificateHashData": hash_words(item["hash"])}
            for item in found]}

    async def on_CertificateSigned(self, p: dict) -> dict:
        if p.get("certificateType", "ChargingStationCertificate") != "ChargingStationCertificate":
            return {"status": "Rejected", "statusInfo": {"reasonCode": "NotSupported",
                                                         "additionalInfo": "no ISO 15118 certificates here"}}
        return {"status": STATUS[self.client.certificates.certificate_signed(p["certificateChain"])]}

    async def after_CertificateSigned(self, p: dict, response: dict) -> None:
        if response["status"] == "Accepted":
            self.client.certificates.after_signed()  # profile 3: reconnect with it (A02.FR.09)
