"""Versions of the agent side by side under an install root, one switched on at a time.

Layout (docs/updates.md)::

    <root>/versions/<version>/     a virtual environment holding that version
    <root>/versions/<version>/ocpp-agent-install.json   written last: the version is complete
    <root>/current  -> versions/<version>      what the service runs (bin/ocpp-agent)
    <root>/previous -> versions/<version>      what a rollback goes back to
    <root>/.lock                               one change at a time (flock)

A version is installed from a bundle (bundle.py) with no network: ``python -m venv``,
then the venv's pip installs ``ocpp-agent==<version>`` from the bundle's wheels only
(``--no-index``, no pip configuration or PIP_* variables of the caller). The switch is
one atomic ``os.replace`` of a symlink, relative so that the root can be moved or built
in a staging tree (a Debian package). CPython-only (venv, pip, subprocesses, flock).
"""

import asyncio
import contextlib
import datetime
import fcntl
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile

from agent.update.bundle import BundleError, check_compatible, extract
from agent.update.state import install_root_of
from hal.runtime.storage import sync_directory, write_json_atomic

log = logging.getLogger(__name__)

CURRENT = "current"
PREVIOUS = "previous"
VERSIONS = "versions"
MARKER = "ocpp-agent-install.json"
PROGRAM = "ocpp-agent"
_LOCK = ".lock"
_TAIL_LINES = 15


class InstallError(RuntimeError):
    """An install or a switch that did not happen: why, with the tail of pip's output."""


def _tail(text: str, lines: int = _TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def clean_env() -> dict:
    """The environment of the installer's subprocesses: no pip configuration (no index, no
    extra find-links: only the bundle's wheels count), no user site, no venv of the caller."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PIP_") and k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONUSERBASE")}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PYTHONNOUSERSITE"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


class InstallRoot:
    """The install root at ``path``; ``python``: the interpreter new virtual environments
    are made with (default: this one's base); ``timeout_s``: the limit of each subprocess.
    The constructor does no I/O."""

    def __init__(self, path: str, *, python: str | None = None, timeout_s: float = 900.0) -> None:
        self.path = os.path.abspath(path)
        self.base_python = python or getattr(sys, "_base_executable", None) or sys.executable
        self.timeout_s = timeout_s

    def __repr__(self) -> str:
        return "InstallRoot(%r)" % self.path

    @classmethod
    def of_running(cls, prefix: str | None = None) -> "InstallRoot | None":
        """The install root this interpreter lives in (``sys.prefix`` is
        ``<root>/versions/<version>``, also when reached through ``<root>/current``, and
        ``<root>/current`` exists), or None (a development checkout, a system install)."""
        root = install_root_of(prefix or sys.prefix)
        return cls(root) if root is not None else None

    # --- reading --------------------------------------------------------------------------

    def version_path(self, version: str) -> str:
        if not version or "/" in version or version in (".", "..") or version.startswith("."):
            raise InstallError("bad version %r" % (version,))
        return os.path.join(self.path, VERSIONS, version)

    def _link_version(self, name: str) -> str | None:
        link = os.path.join(self.path, name)
        try:
            target = os.readlink(link)
        except OSError:
            return None
        version = os.path.basename(os.path.normpath(target))
        return version if self._complete(version) else None

    def _complete(self, version: str) -> bool:
        try:
            return os.path.isfile(os.path.join(self.version_path(version), MARKER))
        except InstallError:
            return False

    def current_version(self) -> str | None:
        """The version ``current`` points to, or None."""
        return self._link_version(CURRENT)

    def previous_version(self) -> str | None:
        """The version ``previous`` points to, or None."""
        return self._link_version(PREVIOUS)

    def _installed_info(self, version: str) -> dict:
        try:
            with open(os.path.join(self.version_path(version), MARKER)) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def versions(self) -> list[dict]:
        """The complete versions, oldest install first: {version, path, current, previous,
        installed} (``installed``: ISO time of the install)."""
        try:
            names = os.listdir(os.path.join(self.path, VERSIONS))
        except FileNotFoundError:
            return []
        current, previous = self.current_version(), self.previous_version()
        out = []
        for v in names:
            if not v.startswith(".") and self._complete(v):
                out.append({"version": v, "path": self.version_path(v), "current": v == current,
                            "previous": v == previous, "installed": self._installed_info(v).get("installed", "")})
        return sorted(out, key=lambda e: (e["installed"], e["version"]))

    def executable(self, version: str | None = None) -> str:
        """``bin/ocpp-agent`` of ``version``, or of ``current`` (through the link: what a
        restart after a switch runs)."""
        return os.path.join(self._home(version), "bin", PROGRAM)

    def python(self, version: str | None = None) -> str:
        """``bin/python`` of ``version``, or of ``current``."""
        return os.path.join(self._home(version), "bin", "python")

    def _home(self, version: str | None) -> str:
        if version is None:
            if self.current_version() is None:
                raise InstallError("no current version in %s" % self.path)
            return os.path.join(self.path, CURRENT)
        if not self._complete(version):
            raise InstallError("version %s is not installed in %s" % (version, self.path))
        return self.version_path(version)

    # --- changing ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self):
        os.makedirs(os.path.join(self.path, VERSIONS), exist_ok=True)
        fd = os.open(os.path.join(self.path, _LOCK), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise InstallError("another update is changing %s" % self.path) from None
            yield
        finally:
            os.close(fd)  # releases the lock

    def install(self, bundle_path: str, log=None) -> str:
        """Install the bundle's version beside the others (not switched on: ``activate``);
        the version. BundleError for a bundle that is bad or not for this interpreter,
        InstallError (with pip's last lines) for an install that failed: its directory is
        removed. The current version is never replaced; another existing one is.
        ``log``: called with each progress line (and the tail of pip's output)."""
        say = log or (lambda line: None)
        with self._locked():
            staging = tempfile.mkdtemp(prefix=".bundle-", dir=os.path.join(self.path, VERSIONS))
            try:
                say("checking %s" % bundle_path)
                manifest = extract(bundle_path, staging)
                version = manifest["version"]
                problem = check_compatible(manifest)
                if problem:
                    raise BundleError(problem)
                if version == self.current_version():
                    raise InstallError("version %s is the current one: it is not reinstalled" % version)
                home = self.version_path(version)
                if os.path.lexists(home):
                    say("replacing the existing %s" % version)
                    shutil.rmtree(home)
                try:
                    self._make_version(home, version, os.path.join(staging, "wheels"), manifest, say)
                except BaseException:
                    shutil.rmtree(home, ignore_errors=True)
                    raise
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        say("installed %s in %s" % (version, home))
        return version

    async def install_async(self, bundle_path: str, log=None) -> str:
        """``install`` in a worker thread: the agent keeps running while pip works."""
        return await asyncio.to_thread(self.install, bundle_path, log)

    def _run(self, argv: list, what: str, say) -> str:
        try:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, env=clean_env(), timeout=self.timeout_s, cwd=self.path)
        except subprocess.TimeoutExpired as e:
            out = e.output.decode(errors="replace") if isinstance(e.output, bytes) else (e.output or "")
            raise InstallError("%s took more than %d s:\n%s" % (what, self.timeout_s, _tail(out))) from None
        except OSError as e:
            raise InstallError("%s: cannot run %s: %s" % (what, argv[0], e.strerror)) from None
        if done.returncode != 0:
            say(_tail(done.stdout))
            raise InstallError("%s failed (exit %d):\n%s" % (what, done.returncode, _tail(done.stdout)))
        return done.stdout

    def _make_version(self, home: str, version: str, wheels: str, manifest: dict, say) -> None:
        say("creating the virtual environment %s" % home)
        self._run([self.base_python, "-m", "venv", home], "python -m venv", say)
        python = os.path.join(home, "bin", "python")
        say("installing %s %s from the bundle's %d wheels" % (PROGRAM, version, len(manifest["wheels"])))
        out = self._run([python, "-m", "pip", "install", "--no-index", "--find-links", wheels, "--only-binary=:all:",
                         "--no-cache-dir", "--disable-pip-version-check", "%s==%s" % (PROGRAM, version)],
                        "pip install", say)
        say(_tail(out, 3))
        check = "import importlib.metadata as m; print(m.version(%r))" % PROGRAM
        got = self._run([python, "-I", "-c", check], "checking the installed version", say).strip()
        if got != version:
            raise InstallError("the installed version is %r, not %s" % (got, version))
        if not os.access(os.path.join(home, "bin", PROGRAM), os.X_OK):
            raise InstallError("the install has no bin/%s" % PROGRAM)
        info = {"version": version, "installed": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                "created": manifest.get("created", ""), "wheels": [w["file"] for w in manifest["wheels"]]}
        write_json_atomic(os.path.join(home, MARKER), info, mode=0o644)

    def _point(self, name: str, version: str) -> None:
        """Point the link ``name`` at ``version``: a temp symlink renamed over it (atomic)."""
        link = os.path.join(self.path, name)
        tmp = "%s.new-%d" % (link, os.getpid())
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.symlink(os.path.join(VERSIONS, version), tmp)
        os.replace(tmp, link)
        sync_directory(self.path)

    def _unlink(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.path, name))
        sync_directory(self.path)

    def activate(self, version: str) -> None:
        """Switch ``current`` to ``version`` atomically; ``previous`` becomes the old current
        (written first: a power cut between the two leaves both on the old one)."""
        with self._locked():
            if not self._complete(version):
                raise InstallError("version %s is not installed in %s" % (version, self.path))
            old = self.current_version()
            if old == version:
                return
            if old is not None:
                self._point(PREVIOUS, old)
            self._point(CURRENT, version)
        log.info("switched %s to %s (previous: %s)", self.path, version, old)

    def roll_back(self) -> str:
        """Switch ``current`` back to ``previous``; ``previous`` then holds the failed version
        (kept for inspection). The version now current; InstallError when there is none to go
        back to. ``current`` is written first: a power cut between leaves both on the good one."""
        with self._locked():
            good, failed = self.previous_version(), self.current_version()
            if good is None:
                raise InstallError("no previous version to roll back to in %s" % self.path)
            self._point(CURRENT, good)
            if failed is not None and failed != good:
                self._point(PREVIOUS, failed)
        log.warning("rolled %s back from %s to %s", self.path, failed, good)
        return good

    def remove(self, version: str) -> None:
        """Remove ``version`` (never the current or the previous one)."""
        with self._locked():
            self._remove(version)

    def _remove(self, version: str) -> None:
        if version in (self.current_version(), self.previous_version()):
            raise InstallError("version %s is the current or the previous one: it is kept" % version)
        home = self.version_path(version)
        if not os.path.lexists(home):
            raise InstallError("version %s is not installed in %s" % (version, self.path))
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(home, MARKER))  # first: a removal cut short leaves a half install
        shutil.rmtree(home)

    def prune(self, keep: int = 3) -> list[str]:
        """Remove the oldest installs until ``keep`` versions are left (current and previous
        always stay), and every half-installed directory; the versions removed."""
        removed = []
        with self._locked():
            kept = {self.current_version(), self.previous_version()} - {None}
            complete = [e["version"] for e in reversed(self.versions())]  # newest install first
            for v in complete:
                if v in kept:
                    continue
                if len(kept) < keep:
                    kept.add(v)
                else:
                    self._remove(v)
                    removed.append(v)
            for name in os.listdir(os.path.join(self.path, VERSIONS)):
                path = os.path.join(self.path, VERSIONS, name)
                if name not in kept and name not in removed and os.path.isdir(path) and not self._complete(name):
                    shutil.rmtree(path, ignore_errors=True)  # an install cut short (power cut, killed)
        return removed
