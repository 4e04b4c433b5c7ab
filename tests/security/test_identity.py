"""The charger's key pairs and certificates (agent/security/identity.py): CSRs
signed by a test CA from tests/pki.py, checked against its root, on a virtual clock."""

import os
import ssl
import stat
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.security.certificates import hash_data
from agent.security.identity import ChargerIdentity
from hal.runtime.clock import VirtualClock
from tests import pki


@pytest.fixture
def clock():
    return VirtualClock(start=time.time())


@pytest.fixture
def ca():
    """A CSMS CA: an intermediate under the root the charger trusts."""
    return pki.Authority("CSMS Sub CA", parent=pki.Authority("CSMS Root"))


def identity_in(tmp_path, clock, **kwargs) -> ChargerIdentity:
    return ChargerIdentity(str(tmp_path / "identity"), clock, **kwargs)


def signed(identity: ChargerIdentity, ca: pki.Authority, **kwargs) -> tuple[str, x509.Certificate]:
    """(chain PEM, leaf) for a fresh CSR of ``identity`` signed by ``ca``."""
    leaf = ca.sign_csr(identity.make_csr("CP-0001", "Example Charging"), **kwargs)
    return ca.chain_pem(leaf), leaf


def fp(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def test_csr_round_trip_through_an_intermediate(tmp_path, clock, ca):
    identity = identity_in(tmp_path, clock)
    assert not identity.pending and identity.latest is None
    csr_pem = identity.make_csr("CP-0001", "Example Charging")
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    assert csr.is_signature_valid and isinstance(csr.signature_hash_algorithm, hashes.SHA256)
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "CP-0001"
    assert csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Example Charging"
    assert isinstance(csr.public_key(), ec.EllipticCurvePublicKey) and csr.public_key().curve.name == "secp256r1"
    assert identity.pending
    leaf = ca.sign_csr(csr_pem)
    assert identity.accept_signed(ca.chain_pem(leaf), [ca.root().cert]) == ""
    assert not identity.pending and identity.latest == fp(leaf)
    assert identity.certificate(fp(leaf)) == leaf
    assert identity.not_after(fp(leaf)) == leaf.not_valid_after_utc.timestamp()
    chain_path, key_path = identity.files(fp(leaf))
    ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(chain_path, key_path)
    with open(chain_path) as f:
        assert f.read() == ca.chain_pem(leaf)
    assert identity.files("0" * 64) is None and identity.certificate("0" * 64) is None
    with pytest.raises(KeyError):
        identity.not_after("0" * 64)


def test_csr_without_organization_and_a_new_key_each_time(tmp_path, clock):
    identity = identity_in(tmp_path, clock)
    first = x509.load_pem_x509_csr(identity.make_csr("CP-0001", "").encode())
    second = x509.load_pem_x509_csr(identity.make_csr("CP-0001", "").encode())
    assert first.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME) == []
    assert first.public_key() != second.public_key()


def test_a_root_signed_leaf_and_a_chain_that_includes_the_root(tmp_path, clock):
    root = pki.Authority("CSMS Root")
    identity = identity_in(tmp_path, clock)
    chain, leaf = signed(identity, root)
    assert identity.accept_signed(chain, [pki.Authority("Other").cert, root.cert]) == ""
    sub = pki.Authority("Sub", parent=root)
    chain, leaf = signed(identity, sub)
    assert identity.accept_signed(chain + root.pem, [root.cert]) == ""
    assert identity.latest == fp(leaf)


def test_a_key_factory_makes_the_keys(tmp_path, clock, ca):
    made = []

    def factory():
        made.append(ec.generate_private_key(ec.SECP384R1()))
        return made[-1]

    identity = identity_in(tmp_path, clock, key_factory=factory)
    chain, leaf = signed(identity, ca)
    assert leaf.public_key() == made[0].public_key()
    assert identity.accept_signed(chain, [ca.root().cert]) == ""


def test_refusals(tmp_path, clock, ca):
    identity = identity_in(tmp_path, clock)
    anchors = [ca.root().cert]
    chain, leaf = signed(identity, ca)
    assert identity.accept_signed(chain, anchors, max_chain_chars=len(chain) - 1) == \
        "certificate chain longer than %d characters" % (len(chain) - 1)
    assert identity.accept_signed("garbage", anchors) == "not a PEM X.509 certificate"
    other_leaf, _ = ca.server()  # somebody else's key
    assert identity.accept_signed(ca.chain_pem(other_leaf), anchors) == "certificate is not for the pending key"
    assert identity.accept_signed(pki.pem(leaf), anchors) == "not issued by an installed CSMS root certificate"
    stranger = pki.Authority("Stranger")
    assert identity.accept_signed(pki.pem(leaf) + stranger.pem, anchors) == "broken certificate chain"
    assert identity.accept_signed(chain, [stranger.cert]) == "not issued by an installed CSMS root certificate"
    assert identity.accept_signed(chain, []) == "no CSMS root certificate to check it against"
    assert identity.pending and identity.latest is None  # nothing consumed by a refusal
    assert identity.accept_signed(chain, anchors) == ""
    assert identity.accept_signed(chain, anchors) == "no pending certificate signing request"


def test_validity_follows_the_clock(tmp_path, clock, ca):
    identity = identity_in(tmp_path, clock)
    anchors = [ca.root().cert]
    past = pki.now() - 10 * pki.DAY
    chain, _ = signed(identity, ca, not_before=past - pki.DAY, not_after=past)
    assert identity.accept_signed(chain, anchors) == "certificate expired"
    chain, _ = signed(identity, ca, not_before=pki.now() + pki.DAY)
    assert identity.accept_signed(chain, anchors) == "certificate not valid yet"
    clock.step_wall(2 * 86400)
    assert identity.accept_signed(chain, anchors) == ""


def test_expired_intermediate_refused(tmp_path, clock):
    root = pki.Authority("CSMS Root")
    old_sub = pki.Authority("Old Sub", parent=root, not_after=pki.now() + pki.DAY)
    identity = identity_in(tmp_path, clock)
    chain, _ = signed(identity, old_sub, not_after=pki.now() + 30 * pki.DAY)
    clock.step_wall(2 * 86400)
    assert identity.accept_signed(chain, [root.cert]) == "certificate expired"


def test_a_restart_between_csr_and_certificate(tmp_path, clock, ca):
    identity = identity_in(tmp_path, clock)
    chain, leaf = signed(identity, ca)
    restarted = identity_in(tmp_path, clock)
    assert restarted.pending
    assert restarted.accept_signed(chain, [ca.root().cert]) == ""
    again = identity_in(tmp_path, clock)
    assert not again.pending and again.latest == fp(leaf) and again.certificate(fp(leaf)) == leaf
    ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(*again.files(fp(leaf)))


def test_private_files(tmp_path, clock, ca):
    identity = identity_in(tmp_path, clock)
    directory = tmp_path / "identity"
    assert not directory.exists()  # nothing written until a CSR
    chain, leaf = signed(identity, ca)
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    assert serialization.load_pem_private_key((directory / "pending.key").read_bytes(), None)
    identity.accept_signed(chain, [ca.root().cert])
    names = sorted(os.listdir(directory))
    assert names == sorted(["index.json", fp(leaf) + ".crt", fp(leaf) + ".key"])  # the pending key consumed
    assert all(stat.S_IMODE(os.stat(directory / n).st_mode) == 0o600 for n in names)


def test_two_certificates_kept_and_forget(tmp_path, clock, ca):
    identity = identity_in(tmp_path, clock)
    anchors = [ca.root().cert]
    leaves = []
    for _ in range(3):
        chain, leaf = signed(identity, ca)
        assert identity.accept_signed(chain, anchors) == ""
        leaves.append(leaf)
    assert identity.latest == fp(leaves[2])
    assert identity.certificate(fp(leaves[0])) is None and identity.certificate(fp(leaves[1])) == leaves[1]
    assert len([n for n in os.listdir(tmp_path / "identity") if n.endswith(".key")]) == 2
    identity.forget(fp(leaves[2]))  # the CSMS did not take it: back to the one before
    identity.forget("0" * 64)
    assert identity.latest == fp(leaves[1])
    restarted = identity_in(tmp_path, clock)
    assert restarted.latest == fp(leaves[1]) and restarted.files(fp(leaves[2])) is None
    restarted.forget(fp(leaves[1]))
    assert identity_in(tmp_path, clock).latest is None


@pytest.mark.parametrize("algorithm", ["SHA256", "SHA384", "SHA512"])
def test_matches_the_charger_certificate(tmp_path, clock, ca, algorithm):
    identity = identity_in(tmp_path, clock)
    chain, leaf = signed(identity, ca)
    assert not identity.matches(hash_data(leaf, ca.cert, algorithm))
    identity.accept_signed(chain, [ca.root().cert])
    wanted = hash_data(leaf, ca.cert, algorithm)
    assert identity.matches(wanted)
    assert identity.matches({k: v.upper() for k, v in wanted.items()})
    assert identity_in(tmp_path, clock).matches(wanted)
    assert not identity.matches(hash_data(ca.cert, ca.root().cert, algorithm))
    assert not identity.matches(hash_data(ca.root().cert, algorithm=algorithm))


def test_matches_a_leaf_issued_by_the_anchor_itself(tmp_path, clock):
    root = pki.Authority("CSMS Root")
    identity = identity_in(tmp_path, clock)
    chain, leaf = signed(identity, root)
    identity.accept_signed(chain, [root.cert])
    assert identity.matches(hash_data(leaf, root.cert))


def test_unreadable_files_are_skipped(tmp_path, clock, ca):
    identity = identity_in(tmp_path, clock)
    chain, leaf = signed(identity, ca)
    identity.accept_signed(chain, [ca.root().cert])
    identity.make_csr("CP-0001", "")
    directory = tmp_path / "identity"
    (directory / "pending.key").write_text("garbage")
    (directory / (fp(leaf) + ".crt")).write_text("garbage")
    restarted = identity_in(tmp_path, clock)
    assert not restarted.pending and restarted.latest is None
    assert (directory / "pending.key.corrupt").exists()
    (directory / "index.json").write_text("{broken")
    assert identity_in(tmp_path, clock).latest is None


def test_never_logs_the_private_key(tmp_path, clock, ca, caplog):
    caplog.set_level("DEBUG")
    identity = identity_in(tmp_path, clock)
    chain, _ = signed(identity, ca)
    identity.accept_signed(chain, [ca.root().cert])
    assert "PRIVATE KEY" not in caplog.text and caplog.text  # it does log, just not that

