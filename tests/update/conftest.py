"""Real update bundles built from this repository, once per test session.

``bundle_wheels``: the dependency wheel directory, filled once and kept across sessions in
the venv (``<venv>/.cache/ocpp-agent-bundle-wheels``; a temporary one outside a venv):
``tools.build_bundle`` fills it through pip's index when it lacks a wheel, then every build
resolves from it offline. ``bundles``: bundles of the repository's source as 0.9.1 and 0.9.2
and a broken 0.9.3 (its ``agent/app/cli.py`` ``main`` raises at start: a copy of the
source is changed, never the repository), built on first use.

Timings (the 2-core development machine; printed at the end of a run that used them):
filling an empty wheel directory 3.5-6 s (pip fetches 16 wheels, setuptools and wheel),
0 s once filled; each bundle about 3 s (the agent's wheel is built, the dependencies
resolved offline); each install about 6 s (a venv with pip, then 16 wheels). The whole of
tests/update: about 50 s.

The installs need ``python -m venv`` with ensurepip (Debian: python3-venv): without it the
tests that install skip, except in CI (``OCPP_AGENT_CI=1``), where they fail.
"""

import contextlib
import fcntl
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib

import pytest

from tools import build_bundle as builder

ROOT = builder.REPO
BROKEN = '''

def main(argv=None):  # test bundle: this build fails at start
    raise RuntimeError("broken on purpose: the agent fails at start")
'''
TIMINGS = {}


def _venv_missing() -> str:
    with tempfile.TemporaryDirectory() as d:
        done = subprocess.run([sys.executable, "-m", "venv", "--without-pip", os.path.join(d, "v")],
                              capture_output=True, text=True, timeout=120)
        if done.returncode:
            return "python -m venv does not work: %s" % done.stdout[-200:]
    if importlib.util.find_spec("ensurepip") is None:  # a venv's pip comes from it
        return "no ensurepip (python3-venv)"
    return ""


@pytest.fixture(scope="session")
def venv_works() -> None:
    """Skip a test that installs when ``python -m venv`` cannot make a venv with pip; in CI fail."""
    missing = _venv_missing()
    if missing and os.environ.get("OCPP_AGENT_CI"):
        pytest.fail(missing)
    if missing:
        pytest.skip(missing)


def _cache_dir(tmp_path_factory) -> str:
    if sys.prefix != sys.base_prefix:  # a venv (the README's .venv, CI's): keep across sessions
        return os.path.join(sys.prefix, ".cache", "ocpp-agent-bundle-wheels")
    return str(tmp_path_factory.mktemp("bundle-wheels"))


@contextlib.contextmanager
def _locked(directory: str):
    """One session at a time fills or reads the shared wheel directory."""
    os.makedirs(directory, exist_ok=True)
    fd = os.open(os.path.join(directory, ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class Bundles:
    """Bundles built on first use and kept for the session: ``bundles["0.9.1"]``."""

    VERSIONS = {"0.9.1": False, "0.9.2": False, "0.9.3": True}  # version: broken
    BROKEN_VERSION = "0.9.3"

    def __init__(self, wheels: str, out: str) -> None:
        self.wheels, self.out, self._built = wheels, out, {}

    def __getitem__(self, version: str) -> str:
        if version not in self._built:
            self._built[version] = self._build(version, self.VERSIONS[version])
        return self._built[version]

    def _build(self, version: str, broken: bool) -> str:
        source = ROOT
        if broken:
            source = tempfile.mkdtemp(prefix="broken-src-", dir=self.out)
            builder._copy_source(ROOT, source)
            with open(os.path.join(source, "agent", "app", "cli.py"), "a") as f:
                f.write(BROKEN)
        t0 = time.monotonic()
        with _locked(self.wheels):
            path = builder.build_bundle(os.path.join(self.out, version), source=source, version=version,
                                        wheels_dir=self.wheels, say=lambda line: None)
        TIMINGS["build %s" % version] = time.monotonic() - t0
        if broken:
            shutil.rmtree(source)
        return path


@pytest.fixture(scope="session")
def bundle_wheels(tmp_path_factory) -> str:
    """The dependency wheel directory: filled through pip when it holds no wheel (the
    first session on a machine), as it is otherwise (a build that misses a wheel fetches it)."""
    wheels = _cache_dir(tmp_path_factory)
    t0 = time.monotonic()
    with _locked(wheels):
        if not any(f.endswith(".whl") for f in os.listdir(wheels)):
            with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
                project = tomllib.load(f)
            builder.fill_wheels(wheels, project, say=lambda line: None)
    TIMINGS["wheel directory"] = time.monotonic() - t0
    return wheels


@pytest.fixture(scope="session")
def bundles(bundle_wheels, tmp_path_factory) -> Bundles:
    return Bundles(bundle_wheels, str(tmp_path_factory.mktemp("bundles")))


def pytest_terminal_summary(terminalreporter):
    if TIMINGS:
        terminalreporter.write_line("update bundles: " + ", ".join("%s %.1f s" % kv for kv in TIMINGS.items()))
