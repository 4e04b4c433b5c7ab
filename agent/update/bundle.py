"""The update bundle: one file, ``ocpp-agent-<version>.bundle``, that installs the agent
with no network on the charger (docs/updates.md).

It is an uncompressed tar archive (the wheels in it are zip files, compressed already;
``read_manifest`` also opens a gzip-compressed one) whose first member is
``manifest.json``, followed by ``wheels/*.whl``: the agent's wheel and one wheel for each
of its dependencies, for the target's Python and platform. The manifest::

    {"format": 1, "name": "ocpp-agent", "version": "0.2.0", "requires_python": ">=3.11",
     "python_tags": ["cp311", "py3"], "platform_tags": ["any", "manylinux_2_17_x86_64"],
     "created": "2026-12-07T15:00:00Z",
     "wheels": [{"file": "ocpp_agent-0.2.0-py3-none-any.whl", "sha256": "…"}, …]}

A signed update carries a signature over the bundle file's bytes (SHA-256 with ECDSA, DER
encoded, or RSA PKCS#1 v1.5), base64 as OCPP carries it, and the signing certificate,
which must lead to one of the installed manufacturer roots. CPython-only (tarfile,
``cryptography``).
"""

import base64
import binascii
import datetime
import hashlib
import io
import json
import logging
import os
import re
import sys
import sysconfig
import tarfile

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from agent.security.certificates import CertificateProblem, is_ca, issued_by, load_pem_chain, validity_problem

log = logging.getLogger(__name__)

FORMAT = 1
NAME = "ocpp-agent"
MANIFEST = "manifest.json"
WHEELS = "wheels/"
SUFFIX = ".bundle"

_MAX_MANIFEST_BYTES = 1 << 20
_MAX_CHAIN = 8  # certificates between a signing certificate and its root, at most
# A version is also a directory name under the install root: no separators, no "..".
_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_!-]{0,63}$")
_WHEEL_FILE = re.compile(r"^[A-Za-z0-9_.+!-]+\.whl$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

# The two ways a signed update is refused (verify_signature's SignatureProblem.kind):
# 1.6 SignedUpdateFirmware answers InvalidCertificate / 2.0.1 UpdateFirmware InvalidCertificate
# for the first; both report the status InvalidSignature for the second.
INVALID_CERTIFICATE = "invalid_certificate"
INVALID_SIGNATURE = "invalid_signature"


class BundleError(ValueError):
    """A bundle that cannot be used: what is wrong with it, in one line."""


class SignatureProblem(str):
    """Why a signed bundle is refused (a non-empty string) and which kind of refusal it is:
    ``kind`` is INVALID_CERTIFICATE or INVALID_SIGNATURE."""

    kind: str

    def __new__(cls, kind: str, text: str) -> "SignatureProblem":
        self = super().__new__(cls, text)
        self.kind = kind
        return self


def bundle_name(version: str) -> str:
    return "%s-%s%s" % (NAME, version, SUFFIX)


def file_sha256(path: str) -> str:
    """The SHA-256 of the file at ``path``, lowercase hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --- reading ---------------------------------------------------------------------------

def _open(path: str) -> tarfile.TarFile:
    if not os.path.isfile(path):
        raise BundleError("no bundle at %s" % path)
    try:
        return tarfile.open(path, "r:*")
    except (tarfile.TarError, EOFError, OSError) as e:
        raise BundleError("%s is not an update bundle (not a tar archive: %s)" % (os.path.basename(path), e)) from None


def _check_member(member: tarfile.TarInfo) -> None:
    name = member.name
    if name.startswith("/") or "\\" in name or ".." in name.split("/"):
        raise BundleError("bundle member %r points outside the bundle" % name)
    if name == MANIFEST:
        pass
    elif not (name.startswith(WHEELS) and _WHEEL_FILE.match(name[len(WHEELS):])):
        raise BundleError("bundle member %r is neither manifest.json nor a wheel in wheels/" % name)
    if not member.isfile():
        raise BundleError("bundle member %r is not a regular file" % name)


def _check_manifest(manifest) -> None:
    if not isinstance(manifest, dict):
        raise BundleError("manifest.json is not a JSON object")
    if manifest.get("format") != FORMAT:
        raise BundleError("unknown bundle format %r (this agent reads format %d)" % (manifest.get("format"), FORMAT))
    if manifest.get("name") != NAME:
        raise BundleError("the bundle holds %r, not %s" % (manifest.get("name"), NAME))
    version = manifest.get("version")
    if not isinstance(version, str) or not _VERSION.match(version):
        raise BundleError("bad version %r in manifest.json" % (version,))
    for key in ("requires_python", "created"):
        if not isinstance(manifest.get(key), str):
            raise BundleError("manifest.json has no %s" % key)
    for key in ("python_tags", "platform_tags"):
        if not isinstance(manifest.get(key), list) or not all(isinstance(t, str) for t in manifest[key]):
            raise BundleError("manifest.json has no %s list" % key)
    wheels = manifest.get("wheels")
    if not isinstance(wheels, list) or not wheels:
        raise BundleError("manifest.json lists no wheels")
    seen = set()
    for w in wheels:
        if not (isinstance(w, dict) and isinstance(w.get("file"), str) and _WHEEL_FILE.match(w["file"])
                and isinstance(w.get("sha256"), str) and _SHA256.match(w["sha256"])):
            raise BundleError("bad wheel entry %r in manifest.json" % (w,))
        if w["file"] in seen:
            raise BundleError("wheel %s listed twice in manifest.json" % w["file"])
        seen.add(w["file"])
    own = "%s-%s-" % (NAME.replace("-", "_"), version)
    if not any(w["file"].startswith(own) for w in wheels):
        raise BundleError("the bundle has no wheel of %s %s" % (NAME, version))


def read_manifest(path: str) -> dict:
    """The manifest of the bundle at ``path``, after checking the whole bundle: a tar
    archive whose members are manifest.json (first) and wheels/*.whl only, regular files
    with no path leaving the archive, each wheel listed with its SHA-256 and matching it.
    BundleError says what is wrong otherwise."""
    with _open(path) as tar:
        try:
            members = tar.getmembers()
        except (tarfile.TarError, EOFError, OSError) as e:
            raise BundleError("damaged bundle: %s" % e) from None
        if not members or members[0].name != MANIFEST:
            if any(m.name == MANIFEST for m in members):
                raise BundleError("manifest.json is not the bundle's first member")
            raise BundleError("the bundle has no manifest.json")
        names = set()
        for m in members:
            _check_member(m)
            if m.name in names:
                raise BundleError("bundle member %r appears twice" % m.name)
            names.add(m.name)
        if members[0].size > _MAX_MANIFEST_BYTES:
            raise BundleError("manifest.json is too large")
        try:
            manifest = json.loads(tar.extractfile(members[0]).read().decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise BundleError("manifest.json is not valid JSON: %s" % e) from None
        _check_manifest(manifest)
        listed = {WHEELS + w["file"]: w["sha256"] for w in manifest["wheels"]}
        present = names - {MANIFEST}
        if present - set(listed):
            raise BundleError("wheel %s is not listed in manifest.json" % sorted(present - set(listed))[0][len(WHEELS):])
        if set(listed) - present:
            raise BundleError("wheel %s listed in manifest.json is missing" % sorted(set(listed) - present)[0][len(WHEELS):])
        for m in members[1:]:
            h = hashlib.sha256()
            f = tar.extractfile(m)
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
            if h.hexdigest() != listed[m.name]:
                raise BundleError("checksum mismatch: %s does not match its sha256 in manifest.json" % m.name[len(WHEELS):])
    return manifest


def extract(path: str, directory: str) -> dict:
    """Check the bundle (``read_manifest``), extract it into ``directory`` (tarfile's
    "data" filter) and check the extracted wheels' SHA-256 again; the manifest."""
    manifest = read_manifest(path)
    os.makedirs(directory, exist_ok=True)
    # Python before 3.11.4 (Debian bookworm's 3.11.2) has no extraction filters: there each member,
    # checked again here (a regular file wheels/<name>.whl), is extracted without one.
    safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    with _open(path) as tar:
        try:
            if safe:
                tar.extractall(directory, **safe)
            else:
                for member in tar.getmembers():
                    _check_member(member)
                    tar.extract(member, directory, set_attrs=False)
        except (tarfile.TarError, OSError) as e:
            raise BundleError("cannot extract the bundle: %s" % e) from None
    for w in manifest["wheels"]:
        if file_sha256(os.path.join(directory, "wheels", w["file"])) != w["sha256"]:
            raise BundleError("checksum mismatch: %s changed while it was extracted" % w["file"])
    return manifest


# --- compatibility -----------------------------------------------------------------------

def _python_problem(requires: str) -> str:
    here = "%d.%d.%d" % sys.version_info[:3]
    try:
        from packaging.specifiers import InvalidSpecifier, SpecifierSet
    except ImportError:
        SpecifierSet = None
    if SpecifierSet is not None:
        try:
            ok = SpecifierSet(requires).contains(here, prereleases=True)
        except InvalidSpecifier:
            return "bad requires_python %r in manifest.json" % requires
    else:  # the simple forms without packaging: >=X.Y[.Z], with commas
        ok = True
        for part in filter(None, (p.strip() for p in requires.split(","))):
            m = re.match(r"^(>=|<|==)\s*(\d+(?:\.\d+)*)$", part)
            if not m:
                return "cannot check requires_python %r without the packaging library" % requires
            want = tuple(int(x) for x in m.group(2).split("."))
            have = sys.version_info[:len(want)]
            ok = ok and {">=": have >= want, "<": have < want, "==": have == want}[m.group(1)]
    return "" if ok else "the bundle needs Python %s; this is Python %s" % (requires, here)


def _supported_tags() -> set | None:
    """The (python, abi, platform) tags this interpreter installs, or None without packaging."""
    try:
        from packaging.tags import sys_tags
    except ImportError:
        return None
    return {(t.interpreter, t.abi, t.platform) for t in sys_tags()}


def wheel_tags(filename: str) -> set:
    """The (python, abi, platform) tags of a wheel file name (compressed tag sets expanded)."""
    parts = filename[:-len(".whl")].split("-")
    if len(parts) not in (5, 6):
        raise BundleError("%s is not a wheel file name" % filename)
    py, abi, plat = parts[-3:]
    return {(p, a, q) for p in py.split(".") for a in abi.split(".") for q in plat.split(".")}


def check_compatible(manifest: dict) -> str:
    """"" if the bundle's wheels install on this interpreter, else why not: Python's version
    against ``requires_python``, and each wheel's tags against the interpreter's (with
    ``packaging``; without it, the platform tags against this platform)."""
    problem = _python_problem(manifest.get("requires_python", ""))
    if problem:
        return problem
    supported = _supported_tags()
    if supported is not None:
        for w in manifest["wheels"]:
            if not wheel_tags(w["file"]) & supported:
                return "wheel %s is for another Python or platform than this one (%s, %s)" % (
                    w["file"], sys.implementation.cache_tag, sysconfig.get_platform())
        return ""
    here = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    tags = set(manifest.get("platform_tags", []))
    if tags - {"any"} and not any(t == here or t.endswith("_" + here.rpartition("_")[2]) for t in tags - {"any"}):
        return "the bundle is for %s, not %s" % (", ".join(sorted(tags)), here)
    return ""


# --- writing (tools/build_bundle.py) ------------------------------------------------------

def make_manifest(version: str, wheel_paths: list, requires_python: str = ">=3.11", created: str | None = None) -> dict:
    """The manifest of a bundle holding ``wheel_paths``."""
    tags = set()
    for p in wheel_paths:
        tags |= wheel_tags(os.path.basename(p))
    manifest = {
        "format": FORMAT, "name": NAME, "version": version, "requires_python": requires_python,
        "python_tags": sorted({t[0] for t in tags}), "platform_tags": sorted({t[2] for t in tags}),
        "created": created or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "wheels": [{"file": os.path.basename(p), "sha256": file_sha256(p)} for p in sorted(wheel_paths)],
    }
    _check_manifest(manifest)
    return manifest


def write_bundle(path: str, manifest: dict, wheel_paths: list) -> str:
    """Write the bundle ``path`` (manifest.json first, then the wheels; via a temp file
    renamed into place); ``path``."""
    by_name = {os.path.basename(p): p for p in wheel_paths}
    if sorted(by_name) != sorted(w["file"] for w in manifest["wheels"]):
        raise BundleError("the wheels given are not the manifest's")
    tmp = path + ".part"
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        data = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mode, info.mtime = len(data), 0o644, int(datetime.datetime.now().timestamp())
        tar.addfile(info, io.BytesIO(data))
        for w in manifest["wheels"]:
            info = tar.gettarinfo(by_name[w["file"]], WHEELS + w["file"])
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = 0o644
            with open(by_name[w["file"]], "rb") as f:
                tar.addfile(info, f)
    os.replace(tmp, path)
    return path


def sign_file(path: str, private_key) -> str:
    """The base64 signature of the file at ``path`` by ``private_key`` (EC: ECDSA with
    SHA-256, DER; RSA: PKCS#1 v1.5 with SHA-256), as OCPP carries it."""
    digest = _digest(path)
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        signature = private_key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    elif isinstance(private_key, rsa.RSAPrivateKey):
        signature = private_key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
    else:
        raise BundleError("signing keys are EC or RSA keys")
    return base64.b64encode(signature).decode()


# --- signatures ------------------------------------------------------------------------------

def _digest(path: str) -> bytes:
    return bytes.fromhex(file_sha256(path))


def _chain_problem(chain: list, roots: list, now: float) -> str:
    """"" if ``chain[0]`` leads through CA certificates of ``chain[1:]`` to one of ``roots``,
    every certificate on the way valid at ``now``; else why not."""
    cert, others = chain[0], chain[1:]
    for _ in range(_MAX_CHAIN):
        problem = validity_problem(cert, now)
        if problem:
            return "signing certificate chain: %s (%s)" % (problem, cert.subject.rfc4514_string())
        for root in roots:
            if issued_by(cert, root):
                problem = validity_problem(root, now)
                return "manufacturer root: %s" % problem if problem else ""
        parents = [c for c in others if c is not cert and is_ca(c) and issued_by(cert, c)]
        if not parents:
            return "the signing certificate is not issued by an installed manufacturer root certificate"
        cert = parents[0]
    return "the signing certificate chain is too long"


def signing_certificate_problem(signing_certificate_pem: str, manufacturer_roots: list, now: float) -> str:
    """"" if the PEM's first certificate may sign updates at ``now``: valid, digital
    signatures allowed by its key usage, issued by one of ``manufacturer_roots`` directly or
    through CA certificates that follow it in the PEM; else why not (checkable when the
    request arrives, before any download)."""
    if not manufacturer_roots:
        return "no manufacturer root certificate is installed"
    try:
        chain = load_pem_chain(signing_certificate_pem)
    except CertificateProblem as e:
        return "signing certificate: %s" % e
    leaf = chain[0]
    try:
        if not leaf.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature:
            return "the signing certificate's key usage does not allow signatures"
    except x509.ExtensionNotFound:
        pass
    if not isinstance(leaf.public_key(), (ec.EllipticCurvePublicKey, rsa.RSAPublicKey)):
        return "the signing certificate's key is neither EC nor RSA"
    return _chain_problem(chain, list(manufacturer_roots), now)


def verify_signature(bundle_path: str, signature_b64: str, signing_certificate_pem: str,
                     manufacturer_roots: list, now: float) -> str:
    """"" if ``signature_b64`` is the signing certificate's signature over the bundle
    file's bytes and that certificate is good (``signing_certificate_problem``); else a
    SignatureProblem whose ``kind`` tells an invalid certificate (INVALID_CERTIFICATE) from
    a signature that does not match (INVALID_SIGNATURE)."""
    problem = signing_certificate_problem(signing_certificate_pem, manufacturer_roots, now)
    if problem:
        return SignatureProblem(INVALID_CERTIFICATE, problem)
    key = load_pem_chain(signing_certificate_pem)[0].public_key()
    try:
        signature = base64.b64decode("".join((signature_b64 or "").split()), validate=True)
    except (binascii.Error, ValueError):
        return SignatureProblem(INVALID_SIGNATURE, "the signature is not base64")
    if not signature:
        return SignatureProblem(INVALID_SIGNATURE, "the signature is empty")
    try:
        digest = _digest(bundle_path)
    except OSError as e:
        return SignatureProblem(INVALID_SIGNATURE, "cannot read the bundle: %s" % e.strerror)
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        else:
            key.verify(signature, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
    except (InvalidSignature, UnsupportedAlgorithm, ValueError):
        return SignatureProblem(INVALID_SIGNATURE, "the signature does not match the bundle and the signing certificate")
    return ""
