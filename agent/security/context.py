"""The station's security objects in one place, under ``data_dir/security``:
the root certificates it trusts, its own key pair and certificate, and the
security event log.

The certificate store and the identity import ``cryptography`` (several MiB):
they are built when first used, and a charger that has none installed pays
nothing for them (``csms_roots_pem`` and ``certificate_files`` look at the
directories first).
"""

import os

from agent.security.events import SecurityLog

DIRECTORY = "security"
MAX_CERTIFICATES = 20  # root certificates installed at most (1.6 CertificateStoreMaxLength)
MAX_CHAIN_CHARS = 10000  # a CertificateSigned chain at most (CertificateSignedMaxChainSize, the spec's limit)


class SecurityContext:
    """Certificates, identity and security log of one station."""

    def __init__(self, data_dir: str, clock, *, max_certificates: int = MAX_CERTIFICATES,
                 additional_root_check: bool = False) -> None:
        self.directory = os.path.join(data_dir, DIRECTORY)
        self.clock = clock
        self.max_certificates = max_certificates
        self.additional_root_check = additional_root_check
        self.log = SecurityLog(os.path.join(self.directory, "log"), clock)
        self._certificates = None
        self._identity = None

    @property
    def certificates(self):
        """The root certificates (agent/security/certificates.py), loaded on first use."""
        if self._certificates is None:
            from agent.security.certificates import CertificateStore

            self._certificates = CertificateStore(os.path.join(self.directory, "certificates"), self.clock,
                                                  max_entries=self.max_certificates,
                                                  additional_root_check=self.additional_root_check)
        return self._certificates

    @property
    def identity(self):
        """The charger's key pair and certificate (agent/security/identity.py), loaded on first use."""
        if self._identity is None:
            from agent.security.identity import ChargerIdentity

            self._identity = ChargerIdentity(os.path.join(self.directory, "identity"), self.clock)
        return self._identity

    def _has_files(self, name: str) -> bool:
        try:
            return any(not n.startswith(".") for n in os.listdir(os.path.join(self.directory, name)))
        except OSError:
            return False

    def csms_roots_pem(self) -> str:
        """The installed CSMS root certificates as PEM ("" when none)."""
        if self._certificates is None and not self._has_files("certificates"):
            return ""
        from agent.security.certificates import CSMS_ROOT

        return self.certificates.pem(CSMS_ROOT)

    def has_csms_root(self, ca_file: str = "") -> bool:
        """A trust anchor for the central system: an installed CSMS root or ``ca_file``."""
        return bool(ca_file) or bool(self.csms_roots_pem())

    def latest_certificate(self) -> str | None:
        """The fingerprint of the charger's newest valid certificate, None without one."""
        if self._identity is None and not self._has_files("identity"):
            return None
        fingerprint = self.identity.latest
        if fingerprint is None or self.identity.not_after(fingerprint) <= self.clock.time():
            return None
        return fingerprint

    def summary(self) -> dict:
        """For ``csms show`` and the status page: the roots installed and the charger's
        certificate (fingerprint, expiry as epoch seconds), without loading what is not there."""
        roots = self.certificates.count() if self._certificates is not None or self._has_files("certificates") \
            else 0
        fingerprint = self.latest_certificate()
        return {"roots_installed": roots, "charger_certificate": fingerprint,
                "charger_certificate_expires": self.identity.not_after(fingerprint) if fingerprint else None}

    def certificate_files(self, fingerprint: str | None) -> tuple | None:
        """(chain file, key file) of the charger certificate ``fingerprint`` (its newest when
        None), None when there is no such certificate."""
        if self._identity is None and not self._has_files("identity"):
            return None
        fingerprint = fingerprint or self.identity.latest
        return self.identity.files(fingerprint) if fingerprint else None
