"""Build an update bundle (agent/update/bundle.py, docs/updates.md) from this repository.

    python -m tools.build_bundle                          # dist/ocpp-agent-<pyproject version>.bundle
    python -m tools.build_bundle --version 0.2.0 --out /srv/updates \\
        --sign-key signer.key --sign-cert signer.pem       # + ocpp-agent-0.2.0.bundle.sig
    python -m tools.build_bundle --platform manylinux2014_aarch64 --python-version 3.11   # for a Pi (arm64)

What it does, none of it touching the source tree:

1. copies the source (``--source``, default: this repository; its git-tracked and untracked,
   not ignored files) to a temporary directory and, with ``--version``, replaces the version
   in the copy's pyproject.toml (the installed agent then reports it:
   ``importlib.metadata.version("ocpp-agent")``);
2. builds the agent's wheel there with ``pip wheel --no-deps``, its build requirements
   (setuptools, wheel) taken from ``<wheels>/build/`` only;
3. takes the dependencies' wheels from the wheel directory (``--wheels``, default
   ``~/.cache/ocpp-agent/wheels/<python>-<platform>``): ``pip download --no-index`` resolves
   the agent wheel's dependencies from that directory alone, so the bundle holds exactly
   what the agent needs. When the directory lacks something (the first build: it is empty
   or missing) the tool fills it — ``pip wheel`` of the agent's dependencies for this
   Python and platform, or ``pip download --only-binary=:all:`` for the ``--platform`` /
   ``--python-version`` target, and ``pip download`` of the build requirements — through
   pip's usual index configuration, then resolves again. Later builds need no network;
   ``--offline`` makes a missing wheel an error instead of a download;
4. writes ``<out>/ocpp-agent-<version>.bundle`` (manifest.json, then wheels/) and, with
   ``--sign-key``/``--sign-cert``, ``<bundle>.sig``: the base64 signature of the bundle file
   (ECDSA or RSA with SHA-256) that the central system sends in UpdateFirmware with the
   signing certificate.

Prints the bundle's path (and the signature's). Exit 1 with the reason on failure.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import tomllib

from agent.update.bundle import BundleError, bundle_name, make_manifest, sign_file, write_bundle
from agent.update.installer import clean_env

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_IGNORED = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", "build", "dist", "node_modules",
                                  ".pytest_cache", ".hypothesis")
_TIMEOUT_S = 900


class BuildError(RuntimeError):
    """The bundle could not be built: why."""


def default_wheels_dir(platforms=(), python_version: str | None = None) -> str:
    """The wheel cache of a target: ``$XDG_CACHE_HOME/ocpp-agent/wheels/<python>-<platform>``."""
    py = "cp" + (python_version or "%d.%d" % sys.version_info[:2]).replace(".", "")
    plat = "+".join(platforms) if platforms else sysconfig.get_platform().replace("-", "_").replace(".", "_")
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "ocpp-agent", "wheels", "%s-%s" % (py, plat))


def _pip(args: list, what: str, isolated: bool, say) -> str:
    """Run ``python -m pip ARGS``; ``isolated``: without the caller's pip configuration (offline steps)."""
    argv = [sys.executable, "-m", "pip"] + args
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=_TIMEOUT_S, env=clean_env() if isolated else None)
    except subprocess.TimeoutExpired:
        raise BuildError("%s took more than %d s" % (what, _TIMEOUT_S)) from None
    if done.returncode != 0:
        raise BuildError("%s failed:\n%s" % (what, "\n".join(done.stdout.strip().splitlines()[-15:])))
    say("  %s: ok" % what)
    return done.stdout


def _copy_source(source: str, dest: str) -> None:
    if os.path.isdir(os.path.join(source, ".git")):
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=source,
                                check=True, capture_output=True, timeout=60).stdout.decode().split("\0")
        for rel in filter(None, listed):
            src = os.path.join(source, rel)
            if os.path.isfile(src):  # a tracked file deleted in the work tree is left out
                os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
                shutil.copy2(src, os.path.join(dest, rel))
    else:
        shutil.copytree(source, dest, ignore=_IGNORED, dirs_exist_ok=True)


def _check_version(version: str) -> None:
    try:
        from packaging.version import InvalidVersion, Version
    except ImportError:
        if not re.match(r"^\d+(\.\d+)*$", version):
            raise BuildError("version %r: use the form X.Y.Z (without packaging no other form is checked)" % version)
        return
    try:
        normal = str(Version(version))
    except InvalidVersion:
        raise BuildError("%r is not a version (PEP 440)" % version) from None
    if normal != version:
        raise BuildError("version %r: write it in its normal form, %s" % (version, normal))


def _set_version(pyproject: str, version: str) -> str:
    """pyproject.toml's text with the [project] table's version replaced."""
    m = re.search(r"(?ms)^\[project\][ \t]*$(.*?)(?=^\[|\Z)", pyproject)
    if not m:
        raise BuildError("pyproject.toml has no [project] table")
    section, n = re.subn(r'(?m)^version\s*=\s*"[^"]*"', 'version = "%s"' % version, m.group(1), count=1)
    if n != 1:
        raise BuildError("pyproject.toml's [project] table has no version = \"…\" line")
    return pyproject[:m.start(1)] + section + pyproject[m.end(1):]


def _target_args(platforms, python_version) -> list:
    args = ["--only-binary=:all:"]
    for p in platforms:
        args += ["--platform", p]
    if python_version:
        args += ["--python-version", python_version, "--implementation", "cp"]
    return args


def fill_wheels(wheels_dir: str, project: dict, *, platforms=(), python_version: str | None = None,
                say=print) -> None:
    """Put the wheels of ``project``'s dependencies (pyproject's [project] table) and of its
    build requirements into ``wheels_dir`` (and ``wheels_dir/build``), through pip's index."""
    os.makedirs(os.path.join(wheels_dir, "build"), exist_ok=True)
    deps = project["project"].get("dependencies", [])
    build = project.get("build-system", {}).get("requires", ["setuptools"]) + ["wheel"]
    say("filling %s (pip: dependencies and build requirements)" % wheels_dir)
    _pip(["download", "--only-binary=:all:", "-d", os.path.join(wheels_dir, "build")] + build,
         "pip download of the build requirements", False, say)
    if platforms or python_version:
        _pip(["download", "-d", wheels_dir] + _target_args(platforms, python_version) + deps,
             "pip download of the dependencies", False, say)
    else:
        _pip(["wheel", "--wheel-dir", wheels_dir] + deps, "pip wheel of the dependencies", False, say)


def _resolve(agent_wheel: str, wheels_dir: str, dest: str, platforms, python_version, say) -> list:
    """The agent wheel and its dependencies' wheels from ``wheels_dir`` alone, copied to ``dest``."""
    os.makedirs(dest, exist_ok=True)
    _pip(["download", "--no-index", "--find-links", wheels_dir, "-d", dest] + _target_args(platforms, python_version)
         + [agent_wheel], "resolving the dependencies from %s" % wheels_dir, True, say)
    return sorted(os.path.join(dest, f) for f in os.listdir(dest) if f.endswith(".whl"))


def build_bundle(out_dir: str, *, source: str = REPO, version: str | None = None, wheels_dir: str | None = None,
                 platforms=(), python_version: str | None = None, offline: bool = False,
                 sign_key: str | None = None, sign_cert: str | None = None, say=print) -> str:
    """Build the bundle of ``source`` (see the module's text); the bundle's path."""
    source = os.path.abspath(source)
    if not os.path.isfile(os.path.join(source, "pyproject.toml")):
        raise BuildError("%s has no pyproject.toml: pass the repository as --source" % source)
    wheels_dir = os.path.abspath(wheels_dir or default_wheels_dir(platforms, python_version))
    if version:
        _check_version(version)
    with tempfile.TemporaryDirectory(prefix="ocpp-agent-bundle-") as tmp:
        src = os.path.join(tmp, "src")
        _copy_source(source, src)
        pyproject_path = os.path.join(src, "pyproject.toml")
        with open(pyproject_path) as f:
            text = f.read()
        if version:
            text = _set_version(text, version)
            with open(pyproject_path, "w") as f:
                f.write(text)
        project = tomllib.loads(text)
        version = project["project"]["version"]
        requires_python = project["project"].get("requires-python", "")
        say("building %s %s from %s" % (project["project"]["name"], version, source))

        def build_and_resolve() -> list:
            built = os.path.join(tmp, "agent-wheel")
            shutil.rmtree(built, ignore_errors=True)
            _pip(["wheel", "--no-deps", "--no-index", "--find-links", os.path.join(wheels_dir, "build"),
                  "--wheel-dir", built, src], "pip wheel of the agent", True, say)
            agent_wheel = [os.path.join(built, f) for f in os.listdir(built) if f.endswith(".whl")][0]
            resolved = os.path.join(tmp, "resolved")
            shutil.rmtree(resolved, ignore_errors=True)
            return _resolve(agent_wheel, wheels_dir, resolved, platforms, python_version, say)

        try:
            wheels = build_and_resolve()
        except BuildError as first:
            if offline:
                raise BuildError("%s\n(--offline: fill %s first, or build once without --offline)"
                                 % (first, wheels_dir)) from None
            fill_wheels(wheels_dir, project, platforms=platforms, python_version=python_version, say=say)
            wheels = build_and_resolve()
        manifest = make_manifest(version, wheels, requires_python=requires_python)
        os.makedirs(out_dir, exist_ok=True)
        path = write_bundle(os.path.join(os.path.abspath(out_dir), bundle_name(version)), manifest, wheels)
    if sign_key or sign_cert:
        if not (sign_key and sign_cert):
            raise BuildError("signing needs both --sign-key and --sign-cert")
        write_signature(path, sign_key, sign_cert)
    return path


def write_signature(bundle_path: str, key_path: str, cert_path: str) -> str:
    """Sign the bundle with the private key at ``key_path`` (PEM, unencrypted), after checking
    that it is the key of the certificate at ``cert_path``; writes and returns ``<bundle>.sig``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    with open(key_path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    with open(cert_path, "rb") as f:
        cert = x509.load_pem_x509_certificates(f.read())[0]
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if (cert.public_key().public_bytes(serialization.Encoding.DER, spki)
            != key.public_key().public_bytes(serialization.Encoding.DER, spki)):
        raise BuildError("%s is not the key of the certificate %s" % (key_path, cert_path))
    signature = sign_file(bundle_path, key)
    sig_path = bundle_path + ".sig"
    with open(sig_path, "w") as f:
        f.write(signature + "\n")
    return sig_path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.build_bundle", description=__doc__.split("\n\n")[0])
    p.add_argument("--source", default=REPO, help="the source tree (default: this repository)")
    p.add_argument("--version", help="the bundle's version (default: pyproject.toml's); the source is not changed")
    p.add_argument("--wheels", help="wheel directory: dependencies are taken from it and fetched into it when "
                                    "missing (default: %s)" % default_wheels_dir())
    p.add_argument("--out", default="dist", help="where the bundle is written (default: dist)")
    p.add_argument("--platform", action="append", default=[],
                   help="target platform tag (repeatable), e.g. manylinux2014_aarch64; default: this machine")
    p.add_argument("--python-version", help="target Python, e.g. 3.11 (default: this one)")
    p.add_argument("--offline", action="store_true", help="never download: a missing wheel is an error")
    p.add_argument("--sign-key", help="private key (PEM) that signs the bundle")
    p.add_argument("--sign-cert", help="its signing certificate (PEM)")
    p.add_argument("--quiet", action="store_true", help="print only the paths")
    args = p.parse_args(argv)
    say = (lambda line: None) if args.quiet else (lambda line: print(line, file=sys.stderr))
    try:
        path = build_bundle(args.out, source=args.source, version=args.version, wheels_dir=args.wheels,
                            platforms=args.platform, python_version=args.python_version, offline=args.offline,
                            sign_key=args.sign_key, sign_cert=args.sign_cert, say=say)
    except (BuildError, BundleError, OSError, subprocess.SubprocessError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    print(path)
    if args.sign_key:
        print(path + ".sig")
    return 0


if __name__ == "__main__":
    sys.exit(main())
