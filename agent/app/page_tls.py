"""HTTPS for the status page: the owner's certificate, or one the agent makes for itself.

``[status_page] tls`` is ``"auto"`` (HTTPS when bound off loopback, where the
password would otherwise cross the network in the clear), ``"on"`` or ``"off"``.
With ``cert_file``/``key_file`` the owner's certificate is served; without them
the agent makes a self-signed EC P-256 certificate for the names it is reached
by and keeps it in ``data_dir/security/`` (key 0600, directory 0700), the same
one across restarts until it is within ``RENEW_BEFORE_DAYS`` of expiry. A
browser cannot vouch for a self-signed certificate, so its SHA-256 fingerprint
is logged at start: the owner compares it with what the browser shows once.

CPython only (``ssl``, ``cryptography``); imported only when the page serves HTTPS.
"""

import datetime
import hashlib
import ipaddress
import logging
import os
import socket
import ssl

from agent.app.config import is_loopback_host
from hal.runtime.storage import write_bytes_atomic

log = logging.getLogger(__name__)

SECURITY_DIR = "security"  # under data_dir
CERT_FILE = "status-page.crt"
KEY_FILE = "status-page.key"
VALID_DAYS = 825  # Apple's limit for TLS server certificates, also those a user trusts by hand
RENEW_BEFORE_DAYS = 30
WILDCARD_HOSTS = ("", "0.0.0.0", "::")


def wants_tls(tls: str, host: str) -> bool:
    """Whether the page serves HTTPS: ``tls`` as configured, "auto" meaning off loopback."""
    if tls == "auto":
        return not is_loopback_host(host)
    return tls == "on"


def served_names(host: str) -> list:
    """The names and addresses a browser may reach the page by: the machine's name (and
    its mDNS ``.local`` name), the bound address unless it is a wildcard, and localhost."""
    names = []
    hostname = socket.gethostname()
    for name in (hostname, hostname + ".local" if hostname and "." not in hostname else "",
                 "" if host in WILDCARD_HOSTS else host.strip("[]"), "localhost"):
        if name and name not in names:
            names.append(name)
    return names


def server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A server context for TLS 1.2 and later with the given certificate (chain) and key."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context


def fingerprint_sha256(cert_file: str) -> str:
    """The SHA-256 fingerprint of the first certificate in a PEM file, as browsers show it (AB:CD:…)."""
    with open(cert_file, encoding="ascii") as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    return ":".join("%02X" % b for b in hashlib.sha256(der).digest())


def page_context(page: dict, data_dir: str, now: datetime.datetime | None = None) -> ssl.SSLContext:
    """The context for the ``[status_page]`` table ``page``: the owner's certificate, or the
    agent's own (made or renewed as needed). Logs the fingerprint the browser should show."""
    if page["cert_file"]:
        cert_file, key_file = page["cert_file"], page["key_file"]
    else:
        cert_file, key_file = ensure_certificate(os.path.join(data_dir, SECURITY_DIR), served_names(page["host"]),
                                                 now=now)
    context = server_context(cert_file, key_file)
    log.info("status page certificate %s, SHA-256 fingerprint %s (check it in the browser)",
             cert_file, fingerprint_sha256(cert_file))
    return context


def ensure_certificate(directory: str, names: list, now: datetime.datetime | None = None) -> tuple:
    """(cert_file, key_file) in ``directory``: the ones there if they cover ``names`` and stay
    valid beyond ``RENEW_BEFORE_DAYS``, else a new self-signed pair."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    cert_file, key_file = os.path.join(directory, CERT_FILE), os.path.join(directory, KEY_FILE)
    problem = _reuse_problem(cert_file, key_file, names, now)
    if not problem:
        return cert_file, key_file
    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)  # it may have been made before with the umask's mode
    cert_pem, key_pem = make_self_signed(names, now)
    write_bytes_atomic(key_file, key_pem, 0o600)
    write_bytes_atomic(cert_file, cert_pem, 0o644)  # public: the owner may copy it to a browser
    log.warning("status page: made a new self-signed certificate for %s (%s)", ", ".join(names), problem)
    return cert_file, key_file


def _reuse_problem(cert_file: str, key_file: str, names: list, now: datetime.datetime) -> str:
    """Why the stored certificate cannot serve (its absence included); "" when it can."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        with open(cert_file, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        with open(key_file, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), None)
    except FileNotFoundError:
        return "none yet"
    except (OSError, ValueError, TypeError) as e:
        return "the stored one is unreadable: %s" % e
    if key.public_key() != cert.public_key():  # a crash between writing the key and the certificate
        return "the stored key does not match it"
    if cert.not_valid_after_utc - now < datetime.timedelta(days=RENEW_BEFORE_DAYS):
        return "the stored one expires %s" % cert.not_valid_after_utc.date().isoformat()
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return "the stored one names no hosts"
    covered = {str(n) for n in san.get_values_for_type(x509.DNSName)}
    covered |= {str(a) for a in san.get_values_for_type(x509.IPAddress)}
    missing = [n for n in names if n not in covered]
    return "the stored one does not cover %s" % ", ".join(missing) if missing else ""


def make_self_signed(names: list, now: datetime.datetime) -> tuple:
    """(certificate PEM, key PEM): an EC P-256 key and a certificate for ``names``
    (host names and IP addresses), signed by that key, valid ``VALID_DAYS``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0]),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ocpp-agent status page")])
    alt_names = []
    for name in names:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt_names.append(x509.DNSName(name))
    public = key.public_key()
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))  # a clock slightly behind still accepts it
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem
