"""What the central system's certificate messages do, in neutral words, for every
OCPP version: install, delete and list root certificates (1.6 whitepaper M03-M05,
2.0.1 M03-M05), and get the charger a certificate of its own (A02/A03: a CSR,
SignCertificate, CertificateSigned), resending a CSR the central system did not
sign and renewing the certificate before it expires.

Every change is a security event in the security log; a certificate the
central system sends that is not valid is refused and logged as
invalid_csms_certificate or invalid_charging_station_certificate (critical in
2.0.1: pushed to the CSMS).

Portable: the MicroPython asyncio subset (the certificate objects underneath
wrap ``cryptography``).
"""

import asyncio
import logging

from agent.security.context import MAX_CHAIN_CHARS
from hal.runtime.aio import sleep_or_event

log = logging.getLogger(__name__)

ACCEPTED, REJECTED, FAILED, NOT_FOUND = "accepted", "rejected", "failed", "not_found"
CSMS_ROOT = "csms_root"  # as agent/security/certificates.py names it (imported there with cryptography)
RECONFIGURED = "reconfiguration_of_security_parameters"
RENEW_BEFORE_S = 30 * 86400  # ask for a new charger certificate this long before the current one expires
RENEWAL_CHECK_S = 86400  # how often the expiry is looked at


class CertificateService:
    """The station's certificate operations, shared by the OCPP adapters."""

    def __init__(self, security, settings, clock, endpoint=None) -> None:
        self.security = security  # SecurityContext
        self.settings = settings  # organization_name, cert_signing_wait_minimum_s, cert_signing_repeat_times
        self.clock = clock
        self.endpoint = endpoint  # EndpointManager: the profile in use, the settings to connect with
        self.signed = asyncio.Event()  # set when a CertificateSigned was accepted
        self._round = 0  # the SignCertificate round running (a new request supersedes an older one)
        self._wake = asyncio.Event()  # a round waiting for CertificateSigned looks again

    # ------------------------------------------------------------------ root certificates
    def install(self, kind: str, pem_text: str) -> str:
        """InstallCertificate: accepted, rejected (not a valid root: a security event for a
        CSMS root, TC_078 / M05) or failed (the store could not be written)."""
        try:
            problem = self.security.certificates.install(kind, pem_text)
        except OSError as e:
            log.error("certificate store not written: %s", e)
            return FAILED
        if problem:
            log.warning("InstallCertificate %s refused: %s", kind, problem)
            if kind == CSMS_ROOT:
                self.security.log.record("invalid_csms_certificate", "InstallCertificate: %s" % problem)
            return REJECTED
        log.info("security: %s certificate installed", kind)
        self.security.log.record(RECONFIGURED, "%s certificate installed" % kind)
        return ACCEPTED

    def delete(self, hash_data: dict) -> str:
        """DeleteCertificate: accepted, not_found, or failed — the charger's own certificate
        (2.0.1 M04.FR.06) and the last CSMS root while the connection relies on it."""
        security = self.security
        if security.latest_certificate() is not None and security.identity.matches(hash_data):
            log.warning("DeleteCertificate refused: that is the charger's own certificate")
            return FAILED
        try:
            result = security.certificates.delete(hash_data, keep_last_csms_root=self._relies_on_csms_root())
        except OSError as e:
            log.error("certificate store not written: %s", e)
            return FAILED
        if result == "refused":
            log.warning("DeleteCertificate refused: the last CSMS root certificate, used by the connection")
            return FAILED
        if result == "not_found":
            return NOT_FOUND
        security.log.record(RECONFIGURED, "certificate %s deleted" % hash_data.get("serial_number", ""))
        return ACCEPTED

    def _relies_on_csms_root(self) -> bool:
        endpoint = self.endpoint
        return endpoint is not None and endpoint.security_profile_level >= 2 and not endpoint.current.ca_file

    def installed(self, kinds=None, algorithm: str = "SHA256") -> list:
        """[{"kind", "hash"}] of the installed root certificates of ``kinds`` (all when None)."""
        return self.security.certificates.installed(kinds, algorithm)

    def count(self) -> int:
        """Certificates installed (roots and the charger's own)."""
        own = 1 if self.security.latest_certificate() is not None else 0
        return self.security.certificates.count() + own

    # ------------------------------------------------------------------ the charger's certificate
    def csr(self) -> str:
        """A new key pair and its CSR: the station id as CN, the organization name as O."""
        station_id = self.endpoint.current.station_id if self.endpoint is not None else ""
        return self.security.identity.make_csr(station_id, self.settings.get("organization_name"))

    def certificate_signed(self, chain_pem: str) -> str:
        """CertificateSigned: accepted (stored; used from the next connection) or rejected
        (A02.FR.07: a security event)."""
        anchors = self._anchors()
        problem = self.security.identity.accept_signed(chain_pem, anchors, MAX_CHAIN_CHARS)
        if problem:
            log.warning("CertificateSigned refused: %s", problem)
            self.security.log.record("invalid_charging_station_certificate", problem)
            return REJECTED
        self.signed.set()
        self._wake.set()
        log.info("security: new charger certificate %s", self.security.identity.latest)
        self.security.log.record(RECONFIGURED, "charger certificate %s installed" % self.security.identity.latest)
        return ACCEPTED

    def after_signed(self) -> None:
        """The CertificateSigned answer went out: on profile 3 the next connection presents the
        new certificate (a switch, with its rollback to the old one if refused)."""
        if self.endpoint is not None and self.endpoint.security_profile_level == 3:
            self.endpoint.use_certificate(self.security.identity.latest)

    def _anchors(self) -> list:
        """What a charger certificate chain must lead to: the installed CSMS roots and csms.ca_file."""
        from agent.security.certificates import load_pem_chain

        anchors = list(self.security.certificates.certificates(CSMS_ROOT))
        ca_file = self.endpoint.current.ca_file if self.endpoint is not None else ""
        if ca_file:
            try:
                with open(ca_file) as f:
                    anchors += load_pem_chain(f.read())
            except (OSError, ValueError) as e:
                log.warning("csms.ca_file %s not usable as a trust anchor: %s", ca_file, e)
        return anchors

    async def sign(self, send) -> bool:
        """Get a certificate signed: ``send(csr)`` sends SignCertificate and returns accepted
        or rejected (raises when not delivered). Without a CertificateSigned within
        CertSigningWaitMinimum a new CSR goes out (2.0.1 A02.FR.17/18, as OCTT TC_A_23 runs it:
        a resend after the wait, then
        CertSigningRepeatTimes more with the wait doubled each time). A new request (a trigger,
        a renewal) supersedes a round still waiting. True when signed."""
        self._round += 1
        mine = self._round
        self._wake.set()  # an older round stops waiting
        wait_s = self.settings.get("cert_signing_wait_minimum_s")
        for attempt in range(self.settings.get("cert_signing_repeat_times") + 2):
            self.signed.clear()
            self._wake = asyncio.Event()
            status = await send(self.csr())
            if mine != self._round:
                return False
            if status != ACCEPTED:
                log.warning("SignCertificate answered %s: no new certificate", status)
                return False
            await sleep_or_event(self.clock, self._wake, wait_s)
            if mine != self._round:
                return False
            if self.signed.is_set():
                return True
            log.warning("no CertificateSigned within %d s (attempt %d)", wait_s, attempt + 1)
            wait_s *= 2
        return False

    def renewal_due(self) -> bool:
        """Whether the charger certificate in use expires within RENEW_BEFORE_S."""
        fingerprint = self.security.latest_certificate()
        if fingerprint is None:
            return False
        return self.security.identity.not_after(fingerprint) - self.clock.time() < RENEW_BEFORE_S
