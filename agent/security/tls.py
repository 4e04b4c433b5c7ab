"""TLS for the connection to the central system (security profiles 2 and 3).

TLS 1.2 or newer, with the TLS 1.2 cipher suites the 1.6 security whitepaper and
OCPP 2.0.1 A00 allow (TLS 1.3's own suites are all acceptable); the server's
certificate is checked, host name included, against the CSMS root certificates
installed over OCPP plus ``csms.ca_file`` — or the system's CAs when there is
neither (a central system with a public certificate). Profile 3 presents the
charger's certificate chain.

A failed handshake is sorted into the security event it is (``failure_kind``).

CPython-only (``ssl``).
"""

import ssl

# OpenSSL names of TLS_ECDHE_ECDSA/ECDHE_RSA/RSA_WITH_AES_128/256_GCM_SHA256/384.
TLS12_CIPHERS = ":".join(("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
                          "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384",
                          "AES128-GCM-SHA256", "AES256-GCM-SHA384"))
_VERSION_REASONS = ("UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION", "WRONG_VERSION_NUMBER",
                    "NO_PROTOCOLS_AVAILABLE", "TLSV1_ALERT_PROTOCOL_VERSION_ALERT")
_REFUSED_REASONS = ("SSLV3_ALERT_BAD_CERTIFICATE", "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
                    "TLSV13_ALERT_CERTIFICATE_REQUIRED", "SSLV3_ALERT_CERTIFICATE_EXPIRED",
                    "TLSV1_ALERT_UNKNOWN_CA", "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE")
_CIPHER_REASONS = ("NO_SHARED_CIPHER", "NO_CIPHERS_AVAILABLE", "SSLV3_ALERT_HANDSHAKE_FAILURE",
                   "TLSV1_ALERT_INSUFFICIENT_SECURITY")


def client_context(ca_file: str = "", roots_pem: str = "", client_files: tuple | None = None) -> ssl.SSLContext:
    """A client context trusting ``roots_pem`` (installed CSMS roots) and ``ca_file``, or
    the system's CAs when both are empty; ``client_files``: (chain file, key file) to
    present (profile 3)."""
    if ca_file or roots_pem:
        context = ssl.create_default_context(cafile=ca_file or None, cadata=roots_pem or None)
    else:
        context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    if client_files is not None:
        context.load_cert_chain(*client_files)
    return context


def failure_kind(e: BaseException) -> str | None:
    """The security event a failed TLS handshake is (neutral kind), None if none."""
    if isinstance(e, ssl.SSLCertVerificationError):
        return "invalid_csms_certificate"
    if isinstance(e, ssl.SSLError):
        reason = (e.reason or "").upper()
        if reason in _VERSION_REASONS:
            return "invalid_tls_version"
        if reason in _CIPHER_REASONS:
            return "invalid_tls_cipher_suite"
        if reason in _REFUSED_REASONS:  # the central system refused the charger's certificate
            return "failed_to_authenticate_at_csms"
    return None
