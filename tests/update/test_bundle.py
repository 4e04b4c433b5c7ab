"""The update bundle (agent/update/bundle.py) and its builder (tools/build_bundle.py), on real
bundles built from this repository (conftest.py): the manifest, extraction, the bundles
that are refused (tampered wheel, path traversal, missing manifest, another Python or
platform) and signatures against a manufacturer root made at test time (tests/pki.py)."""

import base64
import datetime
import hashlib
import io
import json
import os
import sys
import tarfile
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from agent.update import bundle as b
from tests import pki
from tools import build_bundle as builder


def _members(path) -> list:
    """[(name, bytes)] of a bundle, in order."""
    with tarfile.open(path) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]


def _write(path, members, mode="w", links=()) -> str:
    with tarfile.open(path, mode) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in links:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return str(path)


def _with_manifest(members, **changes) -> list:
    manifest = json.loads(members[0][1])
    manifest.update(changes)
    return [("manifest.json", json.dumps(manifest).encode())] + members[1:]


def _refused(path) -> str:
    with pytest.raises(b.BundleError) as e:
        b.read_manifest(str(path))
    return str(e.value)


# --- the format -----------------------------------------------------------------------------

def test_a_bundle_holds_the_manifest_first_and_every_wheel_the_agent_needs(bundles):
    path = bundles["0.9.1"]
    assert os.path.basename(path) == "ocpp-agent-0.9.1.bundle"
    manifest = b.read_manifest(path)
    assert (manifest["format"], manifest["name"], manifest["version"]) == (1, "ocpp-agent", "0.9.1")
    assert manifest["requires_python"] == ">=3.11"
    assert "py3" in manifest["python_tags"] and "any" in manifest["platform_tags"]
    datetime.datetime.strptime(manifest["created"], "%Y-%m-%dT%H:%M:%SZ")
    names = [m[0] for m in _members(path)]
    assert names[0] == "manifest.json"
    assert sorted(names[1:]) == sorted("wheels/" + w["file"] for w in manifest["wheels"])
    projects = {w["file"].split("-")[0].lower() for w in manifest["wheels"]}
    # the agent, its dependencies and theirs: nothing is fetched on the charger
    assert {"ocpp_agent", "websockets", "ocpp", "pymodbus", "pyserial", "tomlkit", "h11", "cryptography",
            "jsonschema", "cffi"} <= projects
    assert "ocpp_agent-0.9.1-py3-none-any.whl" in {w["file"] for w in manifest["wheels"]}
    assert b.check_compatible(manifest) == ""


def test_extract_checks_and_unpacks_the_wheels(bundles, tmp_path):
    manifest = b.extract(bundles["0.9.2"], str(tmp_path / "x"))
    assert manifest["version"] == "0.9.2"
    for w in manifest["wheels"]:
        assert b.file_sha256(str(tmp_path / "x" / "wheels" / w["file"])) == w["sha256"]
    with open(tmp_path / "x" / "manifest.json") as f:
        assert json.load(f) == manifest


def test_a_gzip_compressed_bundle_is_read_too(bundles, tmp_path):
    path = _write(tmp_path / "z.bundle", _members(bundles["0.9.1"]), mode="w:gz")
    assert b.read_manifest(path)["version"] == "0.9.1"


def test_file_sha256():
    path = os.path.abspath(__file__)
    with open(path, "rb") as f:
        assert b.file_sha256(path) == hashlib.sha256(f.read()).hexdigest()


# --- refused -------------------------------------------------------------------------------

def test_a_tampered_wheel_is_refused(bundles, tmp_path):
    members = _members(bundles["0.9.1"])
    i = next(i for i, (n, _) in enumerate(members) if n.startswith("wheels/ocpp_agent-"))
    members[i] = (members[i][0], members[i][1][:-1] + bytes([members[i][1][-1] ^ 1]))
    problem = _refused(_write(tmp_path / "t.bundle", members))
    assert "checksum mismatch" in problem and "ocpp_agent-0.9.1" in problem


def test_a_member_outside_the_bundle_is_refused(bundles, tmp_path):
    members = _members(bundles["0.9.1"])
    assert "outside" in _refused(_write(tmp_path / "a.bundle", members + [("wheels/../../evil.whl", b"x")]))
    assert "outside" in _refused(_write(tmp_path / "b.bundle", members + [("/etc/evil.whl", b"x")]))
    assert "not a regular file" in _refused(_write(tmp_path / "c.bundle", members,
                                                   links=[("wheels/link.whl", "/etc/passwd")]))
    assert "neither manifest.json nor a wheel" in _refused(_write(tmp_path / "d.bundle", members + [("run.sh", b"x")]))


def test_a_bundle_without_a_manifest_or_not_a_tar_is_refused(bundles, tmp_path):
    members = _members(bundles["0.9.1"])
    assert "no manifest.json" in _refused(_write(tmp_path / "m.bundle", members[1:]))
    assert "not the bundle's first member" in _refused(_write(tmp_path / "f.bundle", members[1:] + members[:1]))
    (tmp_path / "n.bundle").write_bytes(b"PK\x03\x04 not a tar at all" * 100)
    assert "not a tar archive" in _refused(tmp_path / "n.bundle")
    assert "no bundle at" in _refused(tmp_path / "missing.bundle")


def test_a_manifest_that_does_not_match_its_wheels_is_refused(bundles, tmp_path):
    members = _members(bundles["0.9.1"])
    manifest = json.loads(members[0][1])
    unlisted = _with_manifest(members, wheels=manifest["wheels"][1:])
    assert "is not listed" in _refused(_write(tmp_path / "u.bundle", unlisted))
    assert "is missing" in _refused(_write(tmp_path / "g.bundle", members[:1] + members[2:]))
    assert "unknown bundle format" in _refused(_write(tmp_path / "v.bundle", _with_manifest(members, format=2)))
    assert "bad version" in _refused(_write(tmp_path / "p.bundle", _with_manifest(members, version="../x")))
    assert "no wheel of ocpp-agent 0.9.9" in _refused(_write(tmp_path / "o.bundle",
                                                             _with_manifest(members, version="0.9.9")))
    assert "not valid JSON" in _refused(_write(tmp_path / "j.bundle", [("manifest.json", b"{")] + members[1:]))


def test_a_bundle_for_another_python_or_platform_is_not_compatible(bundles):
    manifest = b.read_manifest(bundles["0.9.1"])
    assert "needs Python >=3.99" in b.check_compatible(dict(manifest, requires_python=">=3.99"))
    assert "this is Python %d.%d" % sys.version_info[:2] in b.check_compatible(dict(manifest, requires_python="<3.11"))
    other = [dict(w) for w in manifest["wheels"]]
    other.append({"file": "rpds_py-1.0-cp311-cp311-manylinux_2_17_aarch64.whl", "sha256": "0" * 64})
    assert "rpds_py-1.0-cp311-cp311-manylinux_2_17_aarch64.whl is for another Python or platform" in (
        b.check_compatible(dict(manifest, wheels=other)))
    cp312 = [dict(w) for w in manifest["wheels"]] + [{"file": "x-1.0-cp312-cp312-linux_x86_64.whl", "sha256": "0" * 64}]
    assert "another Python" in b.check_compatible(dict(manifest, wheels=cp312))


# --- the builder ------------------------------------------------------------------------------

def test_the_builder_never_changes_the_source_and_sets_the_version_in_a_copy(bundles):
    with open(os.path.join(builder.REPO, "pyproject.toml")) as f:
        text = f.read()
    bundles["0.9.1"]  # built with --version 0.9.1 from the repository
    with open(os.path.join(builder.REPO, "pyproject.toml")) as f:
        assert f.read() == text
    assert '\nversion = "1.2.3"\n' in builder._set_version(text, "1.2.3")
    assert builder._set_version(text, "1.2.3").count("1.2.3") == 1
    with pytest.raises(builder.BuildError, match="normal form, 1.2.3rc1"):
        builder._check_version("1.2.3-rc1")
    with pytest.raises(builder.BuildError, match="not a version"):
        builder._check_version("../1")


def test_the_command_builds_and_signs_a_bundle_offline(bundle_wheels, tmp_path, capsys):
    root = pki.Authority("Manufacturer Root")
    signer_key = pki.new_key()
    cert = root.issue(signer_key.public_key(), pki.name("Firmware Signing"), server=False)
    cert_path, key_path = pki.write_pair(tmp_path, "signer", cert, signer_key)
    assert builder.main(["--version", "0.9.5", "--wheels", bundle_wheels, "--out", str(tmp_path / "out"),
                         "--offline", "--quiet", "--sign-key", key_path, "--sign-cert", cert_path]) == 0
    path, sig_path = capsys.readouterr().out.split()
    assert path == str(tmp_path / "out" / "ocpp-agent-0.9.5.bundle") and sig_path == path + ".sig"
    assert b.read_manifest(path)["version"] == "0.9.5"
    with open(sig_path) as f:
        signature = f.read().strip()
    assert b.verify_signature(path, signature, pki.pem(cert), [root.cert], time.time()) == ""
    # a key that is not the certificate's
    other_path, _ = pki.write_pair(tmp_path, "other", root.issue(pki.new_key().public_key(), pki.name("x")),
                                   pki.new_key())
    with pytest.raises(builder.BuildError, match="is not the key of the certificate"):
        builder.write_signature(path, key_path, other_path)


def test_offline_without_the_wheels_says_what_to_do(tmp_path, capsys):
    assert builder.main(["--wheels", str(tmp_path / "empty"), "--out", str(tmp_path / "out"), "--offline"]) == 1
    err = capsys.readouterr().err
    assert "--offline: fill" in err and str(tmp_path / "empty") in err


# --- signatures -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pki_set():
    root = pki.Authority("Manufacturer Root")
    signer_key = pki.new_key()
    signer = root.issue(signer_key.public_key(), pki.name("Firmware Signing"), server=False)
    return root, signer, signer_key


def test_a_valid_ecdsa_signature_by_a_certificate_of_the_manufacturer_root(bundles, pki_set):
    root, signer, key = pki_set
    path = bundles["0.9.1"]
    signature = b.sign_file(path, key)
    assert b.verify_signature(path, signature, pki.pem(signer), [root.cert], time.time()) == ""
    # OCPP carries base64 that may be wrapped over lines
    wrapped = "\n".join(signature[i:i + 40] for i in range(0, len(signature), 40))
    assert b.verify_signature(path, wrapped, pki.pem(signer), [pki.Authority("Other").cert, root.cert],
                              time.time()) == ""


def test_a_valid_rsa_signature_through_an_intermediate(bundles):
    root = pki.Authority("Manufacturer Root")
    intermediate = pki.Authority("Manufacturer Signing CA", parent=root)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signer = intermediate.issue(key.public_key(), pki.name("Firmware Signing RSA"), server=False)
    path = bundles["0.9.1"]
    signature = b.sign_file(path, key)
    assert b.verify_signature(path, signature, intermediate.chain_pem(signer), [root.cert], time.time()) == ""
    # without the intermediate in the PEM the certificate leads nowhere
    problem = b.verify_signature(path, signature, pki.pem(signer), [root.cert], time.time())
    assert problem.kind == b.INVALID_CERTIFICATE and "not issued by an installed manufacturer root" in problem


def test_a_wrong_signature_is_an_invalid_signature(bundles, pki_set, tmp_path):
    root, signer, key = pki_set
    path = bundles["0.9.1"]
    other = tmp_path / "other"
    other.write_bytes(b"another file")
    for signature in (b.sign_file(str(other), key), "not base64!", "",
                      base64.b64encode(b"\x30\x06\x02\x01\x01\x02\x01\x01").decode()):
        problem = b.verify_signature(path, signature, pki.pem(signer), [root.cert], time.time())
        assert problem and problem.kind == b.INVALID_SIGNATURE, signature
    # a bundle changed after signing
    signature = b.sign_file(path, key)
    changed = _write(tmp_path / "c.bundle", _members(path))
    problem = b.verify_signature(changed, signature, pki.pem(signer), [root.cert], time.time())
    assert problem.kind == b.INVALID_SIGNATURE and "does not match" in problem


def test_a_signing_certificate_not_from_the_root_or_expired_is_an_invalid_certificate(bundles, pki_set):
    root, signer, key = pki_set
    path = bundles["0.9.1"]
    signature = b.sign_file(path, key)
    now = time.time()

    def problem(pem, roots=(root.cert,), at=now):
        p = b.verify_signature(path, signature, pem, list(roots), at)
        assert p.kind == b.INVALID_CERTIFICATE, p
        return str(p)

    stranger = pki.Authority("Someone Else")
    forged = stranger.issue(key.public_key(), pki.name("Firmware Signing"), server=False)
    assert "not issued by an installed manufacturer root" in problem(pki.pem(forged))
    expired = root.issue(key.public_key(), pki.name("Firmware Signing"), server=False,
                         not_before=pki.now() - 30 * pki.DAY, not_after=pki.now() - pki.DAY)
    assert "expired" in problem(pki.pem(expired))
    assert "expired" in problem(pki.pem(signer), at=now + 400 * 86400)  # the root too, by then
    assert "not valid yet" in problem(pki.pem(signer), at=now - 2 * 86400)
    assert "no manufacturer root" in problem(pki.pem(signer), roots=())
    assert "not a PEM" in problem("garbage")
    assert b.signing_certificate_problem(pki.pem(signer), [root.cert], now) == ""
