"""The charger's own key pair and certificate, for TLS client authentication
(security profile 3): a new key for each CSR (OCPP A02/A03), the signed chain
checked against the CSMS roots, the newest two certificates kept for a rollback.

Files under ``directory`` (0700, all files 0600): ``pending.key`` (the key of the
CSR in flight, so a restart before CertificateSigned loses nothing),
``<fingerprint>.crt`` (leaf then intermediates) and ``<fingerprint>.key`` per
certificate, and ``index.json`` (oldest first, with each one's hash data).
Private keys are PKCS8 PEM, unencrypted: the directory is the agent user's alone.
They are never logged. CPython-only (``cryptography``).
"""

import logging
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.security.certificates import (HASH_ALGORITHMS, CertificateProblem, fingerprint, hash_data, is_ca,
                                         issued_by, load_pem_chain, same_hash, validity_problem)
from hal.runtime.storage import read_json, write_bytes_atomic, write_json_atomic

log = logging.getLogger(__name__)

KEPT_CERTIFICATES = 2  # the newest and the one before, for a rollback
_PENDING = "pending.key"
_INDEX = "index.json"


def new_ec_p256_key():
    """An EC P-256 (secp256r1) private key, the default key factory."""
    return ec.generate_private_key(ec.SECP256R1())


class ChargerIdentity:
    """The charger's key pairs and certificates under ``directory``.

    ``key_factory()`` makes each new private key (default: EC P-256 in software).
    It is the hook for a key that lives in a TPM or behind PKCS#11: such a factory
    returns a ``cryptography`` private-key object that signs there; the PEM
    persistence here would then store a handle instead of the key.
    The constructor reads the directory; nothing else is read later.
    """

    def __init__(self, directory: str, clock, key_factory=None) -> None:
        self.directory = directory
        self.clock = clock
        self.key_factory = key_factory or new_ec_p256_key
        self._pending_key = self._load_pending()
        self._entries = self._load_entries()  # [{"fingerprint", "hashes", "cert"}], oldest first

    @property
    def pending(self) -> bool:
        """Whether a CSR awaits its signed certificate."""
        return self._pending_key is not None

    @property
    def latest(self) -> str | None:
        """The fingerprint of the newest certificate, None if there is none."""
        return self._entries[-1]["fingerprint"] if self._entries else None

    def make_csr(self, common_name: str, organization: str = "") -> str:
        """A CSR (PEM, SHA-256) for a NEW key pair, which is kept as the pending key
        (replacing any earlier one) until ``accept_signed``."""
        key = self.key_factory()
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        if organization:
            attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
        csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs)).sign(key, hashes.SHA256())
        self._make_directory()
        write_bytes_atomic(self._path(_PENDING), _key_pem(key), mode=0o600)
        self._pending_key = key
        log.info("new key pair and CSR for CN=%s", common_name)
        return csr.public_bytes(serialization.Encoding.PEM).decode()

    def accept_signed(self, chain_pem: str, anchors: list, max_chain_chars: int = 10000) -> str:
        """Take the signed certificate chain for the pending key: "" when accepted
        and stored as the newest certificate, else the problem. The chain is the
        leaf then intermediates, each issued by the next, the last one issued by
        (or being) one of ``anchors``; all of them valid now. OSError on a disk failure."""
        if len(chain_pem) > max_chain_chars:
            return "certificate chain longer than %d characters" % max_chain_chars
        if self._pending_key is None:
            return "no pending certificate signing request"
        try:
            chain = load_pem_chain(chain_pem)
        except CertificateProblem as e:
            return str(e)
        leaf = chain[0]
        if _spki(leaf.public_key()) != _spki(self._pending_key.public_key()):
            return "certificate is not for the pending key"
        now_s = self.clock.time()
        for cert in chain:
            problem = validity_problem(cert, now_s)
            if problem:
                return problem
        for cert, issuer in zip(chain, chain[1:]):
            if not (is_ca(issuer) and issued_by(cert, issuer)):
                return "broken certificate chain"
        if not anchors:
            return "no CSMS root certificate to check it against"
        anchor = _anchor_of(chain[-1], anchors)
        if anchor is None:
            return "not issued by an installed CSMS root certificate"
        issuer = chain[1] if len(chain) > 1 else anchor
        self._store(chain, issuer)
        return ""

    def files(self, fingerprint: str) -> tuple | None:
        """(chain file, key file) of a certificate, for ``ssl.SSLContext.load_cert_chain``."""
        if self._entry(fingerprint) is None:
            return None
        return self._path(fingerprint + ".crt"), self._path(fingerprint + ".key")

    def certificate(self, fingerprint: str) -> x509.Certificate | None:
        entry = self._entry(fingerprint)
        return entry["cert"] if entry is not None else None

    def not_after(self, fingerprint: str) -> float:
        """When the certificate expires, epoch seconds (KeyError if unknown)."""
        entry = self._entry(fingerprint)
        if entry is None:
            raise KeyError(fingerprint)
        return entry["cert"].not_valid_after_utc.timestamp()

    def forget(self, fingerprint: str) -> None:
        """Drop a certificate (one the CSMS did not accept); unknown ones are ignored."""
        entry = self._entry(fingerprint)
        if entry is None:
            return
        entries = [e for e in self._entries if e is not entry]
        self._remove_files(fingerprint)  # files first: index names without files are skipped on load
        self._write_index(entries)
        self._entries = entries
        log.info("forgot charger certificate %s", fingerprint)

    def matches(self, hash: dict) -> bool:
        """Whether CertificateHashData ``hash`` names one of the charger's certificates."""
        algorithm = str(hash.get("hash_algorithm", "")).upper()
        return any(algorithm in e["hashes"] and same_hash(e["hashes"][algorithm], hash) for e in self._entries)

    def _store(self, chain: list, issuer: x509.Certificate) -> None:
        leaf = chain[0]
        fp = fingerprint(leaf)
        self._make_directory()
        write_bytes_atomic(self._path(fp + ".key"), _key_pem(self._pending_key), mode=0o600)
        write_bytes_atomic(self._path(fp + ".crt"),
                           b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain), mode=0o600)
        entry = {"fingerprint": fp, "cert": leaf,
                 "hashes": {alg: hash_data(leaf, issuer, alg) for alg in HASH_ALGORITHMS}}
        entries = [e for e in self._entries if e["fingerprint"] != fp] + [entry]
        dropped, entries = entries[:-KEPT_CERTIFICATES], entries[-KEPT_CERTIFICATES:]
        self._write_index(entries)
        self._entries = entries
        try:
            os.remove(self._path(_PENDING))
        except FileNotFoundError:
            pass
        self._pending_key = None
        for e in dropped:
            self._remove_files(e["fingerprint"])
        log.info("accepted charger certificate %s (expires %s)", fp, leaf.not_valid_after_utc.isoformat())

    def _entry(self, fingerprint: str) -> dict | None:
        for e in self._entries:
            if e["fingerprint"] == fingerprint:
                return e
        return None

    def _path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def _make_directory(self) -> None:
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        os.chmod(self.directory, 0o700)  # makedirs' mode is masked by the umask and skips an existing directory

    def _write_index(self, entries: list) -> None:
        write_json_atomic(self._path(_INDEX), [{"fingerprint": e["fingerprint"], "hashes": e["hashes"]}
                                               for e in entries], mode=0o600)

    def _remove_files(self, fp: str) -> None:
        for name in (fp + ".crt", fp + ".key"):
            try:
                os.remove(self._path(name))
            except FileNotFoundError:
                pass

    def _load_pending(self):
        path = self._path(_PENDING)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        try:
            return serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            log.warning("pending key %s is unreadable; keeping it as %s.corrupt", path, path)
            _set_aside(path)
            return None

    def _load_entries(self) -> list:
        index = read_json(self._path(_INDEX), [])
        entries = []
        for item in index if isinstance(index, list) else []:
            try:
                fp, hashes_ = item["fingerprint"], item["hashes"]
                chain_path, key_path = self._path(fp + ".crt"), self._path(fp + ".key")
                if not os.path.exists(key_path):
                    raise CertificateProblem("key file missing")
                with open(chain_path) as f:
                    leaf = load_pem_chain(f.read())[0]
                if fingerprint(leaf) != fp:
                    raise CertificateProblem("fingerprint does not match the file name")
            except FileNotFoundError:
                continue  # removed just before a crash, the index not yet rewritten
            except (KeyError, TypeError, ValueError) as e:  # CertificateProblem and UnicodeDecodeError too
                log.warning("charger certificate %r in %s is unusable (%s); skipped", item, self.directory, e)
                continue
            entries.append({"fingerprint": fp, "hashes": hashes_, "cert": leaf})
        return entries[-KEPT_CERTIFICATES:]


def _anchor_of(cert: x509.Certificate, anchors: list) -> x509.Certificate | None:
    """The anchor that is ``cert`` or issued it, None if none."""
    fp = fingerprint(cert)
    for anchor in anchors:
        if fingerprint(anchor) == fp or issued_by(cert, anchor):
            return anchor
    return None


def _spki(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _set_aside(path: str) -> None:
    try:
        os.replace(path, path + ".corrupt")
    except OSError:
        pass
