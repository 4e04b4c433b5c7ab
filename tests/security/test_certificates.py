"""The trusted root certificates (agent/security/certificates.py) with real
certificates from tests/pki.py, on a virtual clock."""

import datetime
import hashlib
import json
import logging
import os
import stat
import time

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from agent.security.certificates import (CSMS_ROOT, MANUFACTURER_ROOT, MO_ROOT, ROOT_KINDS, V2G_ROOT,
                                         CertificateProblem, CertificateStore, hash_data, load_pem_chain)
from hal.runtime.clock import VirtualClock
from tests import pki


@pytest.fixture
def clock():
    return VirtualClock(start=time.time())


def store_in(tmp_path, clock, **kwargs) -> CertificateStore:
    return CertificateStore(str(tmp_path / "roots"), clock, **kwargs)


def test_kinds_are_neutral_words():
    assert ROOT_KINDS == (CSMS_ROOT, MANUFACTURER_ROOT, V2G_ROOT, MO_ROOT) == (
        "csms_root", "manufacturer_root", "v2g_root", "mo_root")


def test_load_pem_chain_reads_certificates_in_order_and_refuses_garbage():
    root = pki.Authority()
    sub = pki.Authority("Sub CA", parent=root)
    assert [c.subject for c in load_pem_chain(sub.pem + root.pem)] == [sub.name, root.name]
    for garbage in ("", "hello", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", None):
        with pytest.raises(CertificateProblem):
            load_pem_chain(garbage)


@pytest.mark.parametrize("algorithm,hash_cls", [("SHA256", hashes.SHA256), ("SHA384", hashes.SHA384),
                                                ("SHA512", hashes.SHA512)])
def test_hash_data_is_the_ocsp_cert_id(algorithm, hash_cls):
    root = pki.Authority()
    sub = pki.Authority("Sub CA", parent=root)
    leaf, _ = sub.server()
    for cert, issuer in ((root.cert, None), (sub.cert, root.cert), (leaf, sub.cert)):
        got = hash_data(cert, issuer, algorithm)
        issuer = issuer or cert
        req = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hash_cls()).build()
        assert got == {"hash_algorithm": algorithm, "issuer_name_hash": req.issuer_name_hash.hex(),
                       "issuer_key_hash": req.issuer_key_hash.hex(), "serial_number": "%x" % cert.serial_number}
        # Derived independently: the DER of the issuer name, and for an EC key the
        # subjectPublicKey BIT STRING contents are the uncompressed point.
        point = issuer.public_key().public_bytes(serialization.Encoding.X962,
                                                 serialization.PublicFormat.UncompressedPoint)
        h = getattr(hashlib, algorithm.lower())
        assert got["issuer_name_hash"] == h(cert.issuer.public_bytes()).hexdigest()
        assert got["issuer_key_hash"] == h(point).hexdigest()
    assert not hash_data(root.cert)["serial_number"].startswith("0")


def test_hash_data_needs_the_issuer_of_a_certificate_not_self_issued():
    root = pki.Authority()
    leaf, _ = root.server()
    with pytest.raises(CertificateProblem):
        hash_data(leaf)
    with pytest.raises(CertificateProblem):
        hash_data(root.cert, algorithm="MD5")


def test_install_a_valid_root_and_read_it_back(tmp_path, clock):
    store = store_in(tmp_path, clock)
    root = pki.Authority("CSMS Root")
    assert store.install(CSMS_ROOT, root.pem) == ""
    assert store.count() == 1
    assert store.certificates(CSMS_ROOT) == [root.cert] and store.certificates(V2G_ROOT) == []
    assert store.pem(CSMS_ROOT) == root.pem and store.pem(MO_ROOT) == ""
    assert store.installed() == [{"kind": CSMS_ROOT, "hash": hash_data(root.cert)}]
    assert store.install(CSMS_ROOT, root.pem) == ""  # idempotent
    assert store.count() == 1
    assert store.install(MANUFACTURER_ROOT, root.pem) == ""  # the same root may serve two kinds
    assert [i["kind"] for i in store.installed()] == [CSMS_ROOT, MANUFACTURER_ROOT]
    assert store.installed(MANUFACTURER_ROOT, "SHA384") == [{"kind": MANUFACTURER_ROOT,
                                                            "hash": hash_data(root.cert, algorithm="SHA384")}]
    assert store.installed([V2G_ROOT, MO_ROOT]) == []
    with pytest.raises(ValueError):
        store.install("ChargingStationCertificate", root.pem)


def test_install_refuses_what_is_not_a_valid_root(tmp_path, clock):
    store = store_in(tmp_path, clock)
    past = pki.now() - 10 * pki.DAY
    expired = pki.Authority("Old", not_before=past - pki.DAY, not_after=past)
    future = pki.Authority("Future", not_before=pki.now() + 10 * pki.DAY, not_after=pki.now() + 20 * pki.DAY)
    leaf, _ = pki.Authority().server()
    self_signed_leaf, _ = pki.self_signed()
    intermediate = pki.Authority("Sub CA", parent=pki.Authority())
    assert store.install(CSMS_ROOT, "garbage") == "not a PEM X.509 certificate"
    assert store.install(CSMS_ROOT, expired.pem) == "certificate expired"
    assert store.install(CSMS_ROOT, future.pem) == "certificate not valid yet"
    assert store.install(CSMS_ROOT, pki.pem(leaf)) == "not a CA certificate"
    assert store.install(CSMS_ROOT, pki.pem(self_signed_leaf)) == "not a CA certificate"
    assert store.install(CSMS_ROOT, intermediate.pem) == "not a self-signed root certificate"
    assert store.install(CSMS_ROOT, intermediate.pem + intermediate.parent.pem) == "expected one certificate, got 2"
    assert store.count() == 0


def test_validity_follows_the_clock(tmp_path, clock):
    store = store_in(tmp_path, clock)
    future = pki.Authority("Future", not_before=pki.now() + 10 * pki.DAY, not_after=pki.now() + 20 * pki.DAY)
    assert store.install(V2G_ROOT, future.pem) == "certificate not valid yet"
    clock.step_wall(11 * 86400)
    assert store.install(V2G_ROOT, future.pem) == ""
    clock.step_wall(10 * 86400)
    assert store.install(MO_ROOT, future.pem) == "certificate expired"


def test_store_full(tmp_path, clock):
    store = store_in(tmp_path, clock, max_entries=2)
    roots = [pki.Authority("Root %d" % i) for i in range(3)]
    assert store.install(CSMS_ROOT, roots[0].pem) == ""
    assert store.install(V2G_ROOT, roots[1].pem) == ""
    assert store.install(MO_ROOT, roots[2].pem) == "certificate store full (2 certificates)"
    assert store.install(V2G_ROOT, roots[1].pem) == ""  # already there: not a new entry


@pytest.mark.parametrize("algorithm", ["SHA256", "SHA384", "SHA512"])
def test_delete_by_hash(tmp_path, clock, algorithm):
    store = store_in(tmp_path, clock)
    a, b = pki.Authority("A"), pki.Authority("B")
    store.install(CSMS_ROOT, a.pem)
    store.install(V2G_ROOT, b.pem)
    wanted = hash_data(b.cert, algorithm=algorithm)
    shouting = {k: v.upper() for k, v in wanted.items()}
    shouting["serial_number"] = "00" + shouting["serial_number"]
    assert store.installed(algorithm=algorithm)[1]["hash"] == wanted
    assert store.delete(shouting, keep_last_csms_root=True) == "deleted"
    assert store.certificates(V2G_ROOT) == [] and store.count() == 1
    assert store.delete(wanted, keep_last_csms_root=True) == "not_found"
    other = hash_data(b.cert, algorithm="SHA256" if algorithm != "SHA256" else "SHA384")
    assert store.delete(dict(other, hash_algorithm=algorithm), keep_last_csms_root=False) == "not_found"
    assert store.delete(dict(wanted, hash_algorithm="MD5"), keep_last_csms_root=False) == "not_found"


def test_the_last_csms_root_is_kept_when_asked(tmp_path, clock):
    store = store_in(tmp_path, clock)
    a, b = pki.Authority("A"), pki.Authority("B")
    store.install(CSMS_ROOT, a.pem)
    assert store.delete(hash_data(a.cert), keep_last_csms_root=True) == "refused"
    store.install(CSMS_ROOT, b.pem)
    assert store.delete(hash_data(a.cert), keep_last_csms_root=True) == "deleted"
    assert store.delete(hash_data(b.cert), keep_last_csms_root=True) == "refused"
    assert store.delete(hash_data(b.cert), keep_last_csms_root=False) == "deleted"
    assert store.count() == 0


def test_persisted_in_private_files_across_restarts(tmp_path, clock):
    directory = tmp_path / "roots"
    store = CertificateStore(str(directory), clock)
    assert not directory.exists()  # nothing written until something is installed
    roots = [pki.Authority("Root %d" % i) for i in range(3)]
    for kind, root in zip((MO_ROOT, CSMS_ROOT, V2G_ROOT), roots):
        assert store.install(kind, root.pem) == ""
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    files = sorted(os.listdir(directory))
    assert len(files) == 4 and "index.json" in files
    assert all(stat.S_IMODE(os.stat(directory / f).st_mode) == 0o600 for f in files)
    assert "%s-%s.pem" % (CSMS_ROOT, roots[1].cert.fingerprint(hashes.SHA256()).hex()) in files
    again = CertificateStore(str(directory), clock)
    assert again.installed() == store.installed()  # install order too
    store.delete(hash_data(roots[0].cert), keep_last_csms_root=True)
    assert CertificateStore(str(directory), clock).installed() == store.installed()


def test_a_corrupt_file_is_set_aside_and_an_orphan_adopted(tmp_path, clock, caplog):
    directory = tmp_path / "roots"
    store = CertificateStore(str(directory), clock)
    a, b, c = pki.Authority("A"), pki.Authority("B"), pki.Authority("C")
    store.install(CSMS_ROOT, a.pem)
    store.install(V2G_ROOT, b.pem)
    bad = "%s-%s.pem" % (V2G_ROOT, b.cert.fingerprint(hashes.SHA256()).hex())
    (directory / bad).write_text("not a certificate")
    orphan = "%s-%s.pem" % (MO_ROOT, c.cert.fingerprint(hashes.SHA256()).hex())
    (directory / orphan).write_text(c.pem)  # written just before a crash, the index not yet
    (directory / "index.json").write_text(json.dumps(json.loads((directory / "index.json").read_text())
                                                     + ["mo_root-%s.pem" % ("0" * 64)]))  # file gone
    with caplog.at_level(logging.WARNING):
        again = CertificateStore(str(directory), clock)
    assert [i["kind"] for i in again.installed()] == [CSMS_ROOT, MO_ROOT]
    assert (directory / (bad + ".corrupt")).exists() and "corrupt" in caplog.text
    (directory / "index.json").write_text("{broken")
    assert CertificateStore(str(directory), clock).count() == 2


def test_disk_failure_raises(tmp_path, clock):
    (tmp_path / "file").write_text("")
    store = CertificateStore(str(tmp_path / "file" / "roots"), clock)
    with pytest.raises(OSError):
        store.install(CSMS_ROOT, pki.Authority().pem)
    assert store.count() == 0


def test_additional_root_check_one_root_plus_a_fallback(tmp_path, clock):
    store = store_in(tmp_path, clock, additional_root_check=True)
    first = pki.Authority("CSMS Root 1")
    second = pki.Authority("CSMS Root 2", parent=first)  # signed by the one it replaces
    third = pki.Authority("CSMS Root 3", parent=second)
    stranger = pki.Authority("Stranger Root")
    assert store.install(CSMS_ROOT, first.pem) == ""
    assert store.install(CSMS_ROOT, stranger.pem) == "not signed by the installed CSMS root certificate"
    assert store.install(CSMS_ROOT, second.pem) == ""
    assert store.certificates(CSMS_ROOT) == [first.cert, second.cert]  # the old one is the fallback
    assert store.install(CSMS_ROOT, pki.Authority("Sub", parent=first).pem) == \
        "not signed by the installed CSMS root certificate"  # only the current one may sign
    assert store.install(CSMS_ROOT, third.pem) == ""
    assert store.certificates(CSMS_ROOT) == [second.cert, third.cert]
    assert store.install(V2G_ROOT, stranger.pem) == ""  # other kinds are not limited
    # The hash data of a root signed by its predecessor names that predecessor, even once it is gone.
    assert store.drop_csms_fallback() is True and store.drop_csms_fallback() is False
    assert store.certificates(CSMS_ROOT) == [third.cert]
    reloaded = CertificateStore(str(tmp_path / "roots"), clock, additional_root_check=True)
    assert reloaded.installed([CSMS_ROOT]) == [{"kind": CSMS_ROOT, "hash": hash_data(third.cert, second.cert)}]
    assert reloaded.delete(hash_data(third.cert, second.cert), keep_last_csms_root=True) == "refused"


def test_additional_root_check_counts_the_replaced_root(tmp_path, clock):
    store = store_in(tmp_path, clock, max_entries=2, additional_root_check=True)
    first = pki.Authority("CSMS Root 1")
    second = pki.Authority("CSMS Root 2", parent=first)
    third = pki.Authority("CSMS Root 3", parent=second)
    assert store.install(CSMS_ROOT, first.pem) == "" and store.install(CSMS_ROOT, second.pem) == ""
    assert store.install(CSMS_ROOT, third.pem) == ""  # replaces the fallback: still two
    assert store.count() == 2


def test_without_the_check_csms_roots_are_independent(tmp_path, clock):
    store = store_in(tmp_path, clock)
    first, stranger = pki.Authority("CSMS Root 1"), pki.Authority("Stranger Root")
    assert store.install(CSMS_ROOT, first.pem) == "" and store.install(CSMS_ROOT, stranger.pem) == ""
    assert store.install(CSMS_ROOT, pki.Authority("Sub", parent=first).pem) == "not a self-signed root certificate"
    assert store.drop_csms_fallback() is False and store.count() == 2


def test_an_expired_root_stays_listed(tmp_path, clock):
    store = store_in(tmp_path, clock)
    root = pki.Authority("Short", not_after=pki.now() + datetime.timedelta(days=2))
    assert store.install(CSMS_ROOT, root.pem) == ""
    clock.step_wall(3 * 86400)
    assert CertificateStore(str(tmp_path / "roots"), clock).certificates(CSMS_ROOT) == [root.cert]
