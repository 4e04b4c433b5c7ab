"""A throwaway public key infrastructure made at test time with ``cryptography``:
certificate authorities, server certificates (valid, expired, for another host,
self-signed), client certificates and CSR signing, as PEM text or files.

Every key is an EC P-256 key (fast to make) unless asked for RSA (``rsa=True``);
nothing is kept between tests.
"""

import datetime
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DAY = datetime.timedelta(days=1)


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def new_key(rsa_key: bool = False):
    if rsa_key:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def key_pem(key) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


class Authority:
    """A certificate authority: a root, or an intermediate signed by ``parent``."""

    def __init__(self, common_name: str = "Test Root CA", parent: "Authority | None" = None,
                 not_before: datetime.datetime | None = None, not_after: datetime.datetime | None = None) -> None:
        self.key = new_key()
        self.parent = parent
        self.name = name(common_name)
        signer_key = parent.key if parent is not None else self.key
        issuer = parent.name if parent is not None else self.name
        builder = (x509.CertificateBuilder().subject_name(self.name).issuer_name(issuer)
                   .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(not_before or now() - DAY).not_valid_after(not_after or now() + 365 * DAY)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                                key_encipherment=False, data_encipherment=False,
                                                key_agreement=False, key_cert_sign=True, crl_sign=True,
                                                encipher_only=False, decipher_only=False), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False))
        self.cert = builder.sign(signer_key, hashes.SHA256())

    @property
    def pem(self) -> str:
        return pem(self.cert)

    def chain(self) -> list:
        """This authority's certificate and its parents' (not including the root when self is one)."""
        out, a = [], self
        while a is not None:
            out.append(a.cert)
            a = a.parent
        return out

    def issue(self, public_key, subject: x509.Name, *, hosts=(), server: bool = True, client: bool = False,
              not_before: datetime.datetime | None = None,
              not_after: datetime.datetime | None = None) -> x509.Certificate:
        """A leaf certificate for ``public_key``."""
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(self.name).public_key(public_key)
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(not_before or now() - DAY).not_valid_after(not_after or now() + 30 * DAY)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True))
        usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + ([ExtendedKeyUsageOID.CLIENT_AUTH]
                                                                          if client else [])
        if usages:
            builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        if hosts:
            names = []
            for h in hosts:
                try:
                    names.append(x509.IPAddress(ipaddress.ip_address(h)))
                except ValueError:
                    names.append(x509.DNSName(h))
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def server(self, hosts=("127.0.0.1", "localhost"), rsa: bool = False, **kwargs) -> tuple:
        """(certificate, key) for a TLS server reached as ``hosts``; ``rsa``: an RSA key."""
        key = new_key(rsa)
        return self.issue(key.public_key(), name(hosts[0]), hosts=hosts, **kwargs), key

    def sign_csr(self, csr_pem: str, **kwargs) -> x509.Certificate:
        """The certificate a CSMS's CA gives for a charger's CSR (a TLS client certificate)."""
        csr = x509.load_pem_x509_csr(csr_pem.encode())
        assert csr.is_signature_valid
        return self.issue(csr.public_key(), csr.subject, server=False, client=True, **kwargs)

    def chain_pem(self, leaf: x509.Certificate) -> str:
        """``leaf`` followed by the intermediates up to (not including) the root."""
        certs = [leaf] + [a.cert for a in self._ancestors() if a.parent is not None]
        return "".join(pem(c) for c in certs)

    def _ancestors(self):
        a = self
        while a is not None:
            yield a
            a = a.parent

    def root(self) -> "Authority":
        a = self
        while a.parent is not None:
            a = a.parent
        return a


def self_signed(hosts=("127.0.0.1", "localhost")) -> tuple:
    """(certificate, key) signed by its own key, not a CA."""
    key = new_key()
    subject = name(hosts[0])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now() - DAY)
            .not_valid_after(now() + 30 * DAY)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def write_pair(directory, stem: str, cert: x509.Certificate, key, chain=()) -> tuple[str, str]:
    """(certificate file, key file) in ``directory``: the certificate followed by ``chain``."""
    cert_path, key_path = str(directory / (stem + ".crt")), str(directory / (stem + ".key"))
    with open(cert_path, "w") as f:
        f.write(pem(cert) + "".join(pem(c) for c in chain))
    with open(key_path, "w") as f:
        f.write(key_pem(key))
    return cert_path, key_path


def write_pem(directory, filename: str, *certs) -> str:
    path = str(directory / filename)
    with open(path, "w") as f:
        f.write("".join(pem(c) for c in certs))
    return path
