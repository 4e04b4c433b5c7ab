"""The root certificates the charger trusts, by neutral kind, persisted as PEM files.

``hash_data`` gives OCPP's CertificateHashData (the OCSP CertID of RFC 6960, as
the 1.6 security whitepaper edition 3 and 2.0.1 define it), computed by
``cryptography``'s OCSP request builder rather than by hand. The OCPP adapters
map their certificate types to the kind words below and the store's answers to
their statuses. CPython-only (``cryptography``).
"""

import logging
import os

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from hal.runtime.storage import read_json, write_bytes_atomic, write_json_atomic

log = logging.getLogger(__name__)

CSMS_ROOT = "csms_root"  # 1.6 CentralSystemRootCertificate, 2.0.1 CSMSRootCertificate
MANUFACTURER_ROOT = "manufacturer_root"
V2G_ROOT = "v2g_root"
MO_ROOT = "mo_root"
ROOT_KINDS = (CSMS_ROOT, MANUFACTURER_ROOT, V2G_ROOT, MO_ROOT)

HASH_ALGORITHMS = {"SHA256": hashes.SHA256, "SHA384": hashes.SHA384, "SHA512": hashes.SHA512}

_INDEX = "index.json"
_SUFFIX = ".pem"


class CertificateProblem(ValueError):
    """Why a certificate was refused: short, and free of secrets."""


def load_pem_chain(text: str) -> list:
    """The X.509 certificates in PEM ``text``, in order (CertificateProblem if none)."""
    if not isinstance(text, str) or "-----BEGIN CERTIFICATE-----" not in text:
        raise CertificateProblem("not a PEM X.509 certificate")
    try:
        return x509.load_pem_x509_certificates(text.encode())
    except ValueError:
        raise CertificateProblem("not a PEM X.509 certificate") from None


def fingerprint(cert: x509.Certificate) -> str:
    """The SHA-256 fingerprint of ``cert``'s DER, lowercase hex."""
    return cert.fingerprint(hashes.SHA256()).hex()


def is_self_issued(cert: x509.Certificate) -> bool:
    """Whether ``cert`` is signed by its own key (its own issuer)."""
    return issued_by(cert, cert)


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer``'s name and key signed ``cert``."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):  # name mismatch, unsupported key, bad signature
        return False
    return True


def validity_problem(cert: x509.Certificate, now_s: float) -> str:
    """"" if ``cert`` is valid at ``now_s`` (epoch seconds), else why not."""
    if now_s < cert.not_valid_before_utc.timestamp():
        return "certificate not valid yet"
    if now_s > cert.not_valid_after_utc.timestamp():
        return "certificate expired"
    return ""


def is_ca(cert: x509.Certificate) -> bool:
    """Whether ``cert`` may sign certificates (basicConstraints cA, keyCertSign if key usage is given)."""
    try:
        if not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            return False
    except x509.ExtensionNotFound:
        return False
    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    except x509.ExtensionNotFound:
        return True


def hash_data(cert: x509.Certificate, issuer: x509.Certificate | None = None, algorithm: str = "SHA256") -> dict:
    """OCPP's CertificateHashData of ``cert``: hashes of its issuer's DER name and of
    its issuer's public key (the subjectPublicKey BIT STRING contents), and its serial
    as lowercase hex without leading zeros. ``issuer`` may be left out for a
    self-issued certificate (a root is its own issuer)."""
    algorithm = algorithm.upper()
    if algorithm not in HASH_ALGORITHMS:
        raise CertificateProblem("unsupported hash algorithm")
    if issuer is None:
        if not is_self_issued(cert):
            raise CertificateProblem("issuer certificate needed for the hash of a certificate not self-issued")
        issuer = cert
    request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, HASH_ALGORITHMS[algorithm]()).build()
    return {"hash_algorithm": algorithm, "issuer_name_hash": request.issuer_name_hash.hex(),
            "issuer_key_hash": request.issuer_key_hash.hex(), "serial_number": format(cert.serial_number, "x")}


def same_hash(a: dict, b: dict) -> bool:
    """Whether two CertificateHashData name one certificate (case-insensitive,
    serials compared without leading zeros)."""
    def norm(h):
        serial = str(h.get("serial_number", "")).lower().lstrip("0") or "0"
        return (str(h.get("hash_algorithm", "")).upper(), str(h.get("issuer_name_hash", "")).lower(),
                str(h.get("issuer_key_hash", "")).lower(), serial)
    return norm(a) == norm(b)


class _Entry:
    __slots__ = ("kind", "cert", "issuer", "name", "_hashes")

    def __init__(self, kind: str, cert: x509.Certificate, issuer: x509.Certificate | None) -> None:
        self.kind, self.cert, self.issuer = kind, cert, issuer  # issuer: only if not self-issued
        self.name = "%s-%s%s" % (kind, fingerprint(cert), _SUFFIX)
        self._hashes = {}

    def hash(self, algorithm: str) -> dict:
        if algorithm not in self._hashes:
            self._hashes[algorithm] = hash_data(self.cert, self.issuer, algorithm)
        return self._hashes[algorithm]


class CertificateStore:
    """The installed root certificates, by kind, in install order, as PEM files
    named by kind and SHA-256 fingerprint under ``directory`` (0700, files 0600)
    with an index for the order. At most ``max_entries`` in all.

    With ``additional_root_check`` (1.6 AdditionalRootCertificateCheck, 2.0.1
    M05.FR.08-13) there is one CSMS root plus a fallback: a new one must be signed
    by the current one, replaces it, and the old one is kept as the fallback until
    ``drop_csms_fallback()`` (called once connected with the new one). Such a root
    is stored followed by its signer, so its hash data survives the signer's removal.
    """

    def __init__(self, directory: str, clock, max_entries: int = 20, additional_root_check: bool = False) -> None:
        self.directory = directory
        self.clock = clock
        self.max_entries = max_entries
        self.additional_root_check = additional_root_check
        self._entries = self._load()

    def install(self, kind: str, pem_text: str) -> str:
        """Install a root certificate of ``kind``: "" when installed (or already
        there), else the problem. OSError when the disk fails."""
        _check_kind(kind)
        try:
            certs = load_pem_chain(pem_text)
        except CertificateProblem as e:
            return str(e)
        if len(certs) != 1:
            return "expected one certificate, got %d" % len(certs)
        cert = certs[0]
        problem = validity_problem(cert, self.clock.time())
        if problem:
            return problem
        if not is_ca(cert):
            return "not a CA certificate"
        new = _Entry(kind, cert, None)
        if any(e.name == new.name for e in self._entries):
            return ""
        replaced = []
        current = self._csms_roots()[-1:] if kind == CSMS_ROOT and self.additional_root_check else []
        if current:
            if not issued_by(cert, current[0].cert):
                return "not signed by the installed CSMS root certificate"
            if not is_self_issued(cert):
                new.issuer = current[0].cert
            replaced = self._csms_roots()[:-1]  # only the current one stays, as the fallback
        elif not is_self_issued(cert):
            return "not a self-signed root certificate"
        if len(self._entries) - len(replaced) >= self.max_entries:
            return "certificate store full (%d certificates)" % self.max_entries
        self._write_entry(new)
        entries = [e for e in self._entries if e not in replaced] + [new]
        self._remove_files(replaced)
        try:
            self._write_index(entries)
        except OSError:
            _remove_quietly(self._path(new.name))
            raise
        self._entries = entries
        log.info("installed %s certificate %s", kind, new.name)
        return ""

    def delete(self, hash: dict, keep_last_csms_root: bool) -> str:
        """Delete the certificates matching CertificateHashData ``hash``: "deleted",
        "not_found", or "refused" (it is the last CSMS root and ``keep_last_csms_root``)."""
        algorithm = str(hash.get("hash_algorithm", "")).upper()
        if algorithm not in HASH_ALGORITHMS:
            return "not_found"
        matching = [e for e in self._entries if same_hash(e.hash(algorithm), hash)]
        if not matching:
            return "not_found"
        csms_left = [e for e in self._csms_roots() if e not in matching]
        if keep_last_csms_root and self._csms_roots() and not csms_left:
            return "refused"
        self._drop(matching)
        return "deleted"

    def drop_csms_fallback(self) -> bool:
        """Remove the fallback CSMS root once the new one proved itself (M05.FR.12);
        False if there is none. Only with ``additional_root_check``."""
        roots = self._csms_roots()
        if not self.additional_root_check or len(roots) < 2:
            return False
        self._drop(roots[:-1])
        return True

    def installed(self, kinds=None, algorithm: str = "SHA256") -> list:
        """``{"kind", "hash"}`` for each installed certificate of ``kinds`` (all
        if None), in install order."""
        if isinstance(kinds, str):
            kinds = (kinds,)
        return [{"kind": e.kind, "hash": e.hash(algorithm.upper())} for e in self._entries
                if kinds is None or e.kind in kinds]

    def certificates(self, kind: str) -> list:
        """The installed certificates of ``kind``, oldest first."""
        return [e.cert for e in self._entries if e.kind == kind]

    def pem(self, kind: str) -> str:
        """The installed certificates of ``kind`` as concatenated PEM (``ssl`` cadata)."""
        return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in self.certificates(kind))

    def count(self) -> int:
        return len(self._entries)

    def _csms_roots(self) -> list:
        return [e for e in self._entries if e.kind == CSMS_ROOT]

    def _drop(self, gone: list) -> None:
        # Files first, then the index: a crash in between leaves index names
        # without files, which loading skips (an orphan file would be adopted).
        self._remove_files(gone)
        entries = [e for e in self._entries if e not in gone]
        self._write_index(entries)
        self._entries = entries
        for e in gone:
            log.info("deleted %s certificate %s", e.kind, e.name)

    def _path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def _write_entry(self, entry: _Entry) -> None:
        _make_private_directory(self.directory)
        certs = [entry.cert] + ([entry.issuer] if entry.issuer is not None else [])
        data = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
        write_bytes_atomic(self._path(entry.name), data, mode=0o600)

    def _write_index(self, entries: list) -> None:
        write_json_atomic(self._path(_INDEX), [e.name for e in entries], mode=0o600)

    def _remove_files(self, entries: list) -> None:
        for e in entries:
            try:
                os.remove(self._path(e.name))
            except FileNotFoundError:
                pass

    def _load(self) -> list:
        """The entries on disk: those in the index in its order, then any certificate
        file the index lacks (written just before a crash). A corrupt file is set aside."""
        try:
            names = [n for n in os.listdir(self.directory) if _parse_name(n) is not None]
        except FileNotFoundError:
            return []
        except OSError as e:  # trust nothing rather than stop the agent
            log.warning("cannot read the certificate directory %s (%s); no certificates loaded", self.directory, e)
            return []
        try:
            indexed = read_json(self._path(_INDEX), [])
        except OSError as e:
            log.warning("cannot read %s (%s); certificates loaded in name order", self._path(_INDEX), e)
            indexed = []
        if not isinstance(indexed, list):
            indexed = []
        ordered = [n for n in indexed if n in names] + sorted(n for n in names if n not in indexed)
        entries = []
        for name in dict.fromkeys(ordered):
            entry = self._load_entry(name)
            if entry is not None:
                entries.append(entry)
        return entries

    def _load_entry(self, name: str) -> _Entry | None:
        path = self._path(name)
        try:
            with open(path) as f:
                certs = load_pem_chain(f.read())
            entry = _Entry(_parse_name(name), certs[0], certs[1] if len(certs) > 1 else None)
            if entry.name != name:
                raise CertificateProblem("fingerprint does not match the file name")
            if not issued_by(entry.cert, entry.issuer or entry.cert):
                raise CertificateProblem("neither self-issued nor issued by the certificate after it")
            return entry
        except OSError as e:
            log.warning("cannot read certificate file %s (%s); skipped", path, e)
            return None
        except (CertificateProblem, UnicodeDecodeError) as e:
            log.warning("certificate file %s is corrupt (%s); keeping it as %s.corrupt", path, e, path)
            try:
                os.replace(path, path + ".corrupt")
            except OSError:
                pass
            return None


def _check_kind(kind: str) -> None:
    if kind not in ROOT_KINDS:
        raise ValueError("unknown certificate kind %r" % (kind,))


def _parse_name(name: str) -> str | None:
    """The kind in a certificate file name, None if not one."""
    if not name.endswith(_SUFFIX):
        return None
    kind, _, digest = name[:-len(_SUFFIX)].rpartition("-")
    if kind not in ROOT_KINDS or len(digest) != 64:
        return None
    return kind


def _make_private_directory(directory: str) -> None:
    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)  # makedirs' mode is masked by the umask and skips an existing directory


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass
