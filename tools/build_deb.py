"""Build the Debian package of the agent (docs/raspberry-pi.md): one file that installs on
Raspberry Pi OS / Debian with no network.

    python -m tools.build_deb                              # dist/ocpp-agent_<version>_arm64.deb
    python -m tools.build_deb --arch amd64 --python 3.11 --out /tmp/deb

The package ships the agent as update bundles (agent/update/bundle.py, built by
tools/build_bundle.py): one per target Python (``--python``, default 3.11 for bookworm and
3.13 for trixie), each holding the agent and every dependency as wheels for the architecture
(pip ``--platform manylinux_2_X_<cpu> --only-binary=:all:`` for every glibc up to 2.36, bookworm's:
pip takes the platforms given, not the older ones they include).
Its postinst creates the user ``ocpp-agent`` and the directories, then runs the agent's own
installer (tools/deb/install-bundle.py → agent/update/installer.py) with the system's python3:
``/opt/ocpp-agent/versions/<version>`` becomes a virtual environment of the bundle's wheels
(``pip --no-index``) and ``current`` points to it — the install root that updates switch
between. An upgrade installs the new version beside the old one and switches ``current``,
like an update from the central system.

Contents::

    /usr/lib/systemd/system/ocpp-agent.service     tools/deb/ocpp-agent.service
    /etc/ocpp-agent/agent.toml                     tools/deb/agent.toml (a conffile)
    /usr/lib/ocpp-agent/install-bundle             tools/deb/install-bundle.py
    /usr/lib/ocpp-agent/bundles/cp311/ocpp-agent-<version>.bundle   (and cp313/…)
    /usr/lib/udev/rules.d/60-ocpp-agent-gpio.rules
    /usr/bin/ocpp-agent -> /opt/ocpp-agent/current/bin/ocpp-agent
    /usr/share/doc/ocpp-agent/                     README.md, raspberry-pi.md, copyright

Needs ``dpkg-deb`` (Debian's dpkg package). The wheel directories are those of
tools/build_bundle.py (one per Python and platform, filled through pip on the first build;
``--offline``: never download). Prints the package's path; exit 1 with the reason on failure.
"""

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import tomllib

from tools import build_bundle

REPO = build_bundle.REPO
DEB_DIR = os.path.join(REPO, "tools", "deb")
PACKAGE = "ocpp-agent"
# glibc up to bookworm's 2.36 (trixie has 2.41): wheels of these install on both
MANYLINUX = ("manylinux2014", "manylinux_2_17", "manylinux_2_28", "manylinux_2_31", "manylinux_2_34",
             "manylinux_2_35", "manylinux_2_36")
CPUS = {"arm64": "aarch64", "armhf": "armv7l", "amd64": "x86_64"}
PYTHONS = ("3.11", "3.13")  # bookworm, trixie
_MACHINES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "armhf"}
MAINTAINER = "OCPP agent maintainers <maintainers@ocpp-agent.invalid>"
DESCRIPTION = """\
Description: open charger-side OCPP agent (1.6 and 2.0.1) as a system service
 Runs a charging station's OCPP link to the central system of the owner's
 choice on a Raspberry Pi-class board: station model, hardware drivers
 (serial, Modbus meters, GPIO contactors, readers), offline transactions,
 smart charging, signed firmware (self) updates with rollback.
 .
 The agent and its Python dependencies are shipped as wheels and installed
 into the agent's own virtual environment under /opt/ocpp-agent (no network,
 never the system Python's site-packages); the service runs as the user
 ocpp-agent under systemd with a watchdog.
"""


class DebError(RuntimeError):
    """The package could not be built: why."""


def host_arch() -> str:
    if shutil.which("dpkg"):
        done = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True)
        if done.returncode == 0 and done.stdout.strip():
            return done.stdout.strip()
    return _MACHINES.get(platform.machine(), platform.machine())


def platforms_for(arch: str) -> list:
    try:
        return ["%s_%s" % (m, CPUS[arch]) for m in MANYLINUX]
    except KeyError:
        raise DebError("unknown architecture %r (one of %s)" % (arch, ", ".join(CPUS))) from None


def py_tag(python_version: str) -> str:
    return "cp" + python_version.replace(".", "")


def deb_name(version: str, arch: str) -> str:
    return "%s_%s_%s.deb" % (PACKAGE, version, arch)


def _python_depends(pythons) -> str:
    """python3 within the built versions: ``python3 (>= 3.11~), python3 (<< 3.14~)``."""
    vs = sorted((int(p.split(".")[0]), int(p.split(".")[1])) for p in pythons)
    low, high = vs[0], vs[-1]
    return "python3 (>= %d.%d~), python3 (<< %d.%d~)" % (low[0], low[1], high[0], high[1] + 1)


def control(version: str, arch: str, pythons, installed_kib: int) -> str:
    return ("Package: %s\nVersion: %s\nArchitecture: %s\nMaintainer: %s\nInstalled-Size: %d\n"
            "Depends: %s, python3-venv, passwd, util-linux, init-system-helpers (>= 1.54)\n"
            "Section: net\nPriority: optional\n%s" % (PACKAGE, version, arch, MAINTAINER, installed_kib,
                                                      _python_depends(pythons), DESCRIPTION))


def _copy(src: str, dest: str, mode: int) -> None:
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    shutil.copyfile(src, dest)
    os.chmod(dest, mode)


def stage(tree: str, version: str, arch: str, bundles: dict) -> None:
    """Lay the package's files out in ``tree`` (``bundles``: python version -> bundle path)."""
    _copy(os.path.join(DEB_DIR, "ocpp-agent.service"), os.path.join(tree, "usr/lib/systemd/system/ocpp-agent.service"),
          0o644)
    _copy(os.path.join(DEB_DIR, "agent.toml"), os.path.join(tree, "etc/ocpp-agent/agent.toml"), 0o644)
    _copy(os.path.join(DEB_DIR, "install-bundle.py"), os.path.join(tree, "usr/lib/ocpp-agent/install-bundle"), 0o755)
    _copy(os.path.join(DEB_DIR, "60-ocpp-agent-gpio.rules"),
          os.path.join(tree, "usr/lib/udev/rules.d/60-ocpp-agent-gpio.rules"), 0o644)
    for py, path in bundles.items():
        _copy(path, os.path.join(tree, "usr/lib/ocpp-agent/bundles", py_tag(py), os.path.basename(path)), 0o644)
    os.makedirs(os.path.join(tree, "usr/bin"), exist_ok=True)
    os.symlink("/opt/ocpp-agent/current/bin/ocpp-agent", os.path.join(tree, "usr/bin/ocpp-agent"))
    doc = os.path.join(tree, "usr/share/doc", PACKAGE)
    _copy(os.path.join(REPO, "README.md"), os.path.join(doc, "README.md"), 0o644)
    if os.path.isfile(os.path.join(REPO, "docs", "raspberry-pi.md")):
        _copy(os.path.join(REPO, "docs", "raspberry-pi.md"), os.path.join(doc, "raspberry-pi.md"), 0o644)
    with open(os.path.join(doc, "copyright"), "w") as f:
        f.write("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
                "Upstream-Name: ocpp-agent\n\nFiles: *\nLicense: Apache-2.0\n"
                " On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.\n"
                " The Python dependencies shipped as wheels keep their own licenses (in each wheel).\n")
    os.chmod(os.path.join(doc, "copyright"), 0o644)
    meta = os.path.join(tree, "DEBIAN")
    os.makedirs(meta)
    for script in ("postinst", "prerm", "postrm"):
        with open(os.path.join(DEB_DIR, script)) as f:
            text = f.read().replace("@VERSION@", version)
        with open(os.path.join(meta, script), "w") as f:
            f.write(text)
        os.chmod(os.path.join(meta, script), 0o755)
    with open(os.path.join(meta, "conffiles"), "w") as f:
        f.write("/etc/ocpp-agent/agent.toml\n")
    size = 0
    sums = []
    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames[:] = sorted(d for d in dirnames if not (dirpath == tree and d == "DEBIAN"))
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                continue
            size += os.path.getsize(path)
            rel = os.path.relpath(path, tree)
            if not rel.startswith("etc/"):  # conffiles have their own sums
                with open(path, "rb") as f:
                    sums.append("%s  %s\n" % (hashlib.md5(f.read()).hexdigest(), rel))
    with open(os.path.join(meta, "md5sums"), "w") as f:
        f.writelines(sums)
    with open(os.path.join(meta, "control"), "w") as f:
        f.write(control(version, arch, list(bundles), (size + 1023) // 1024))
    for dirpath, dirnames, _files in os.walk(tree):
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), 0o755)


def build_deb(out_dir: str, *, arch: str | None = None, pythons=PYTHONS, version: str | None = None,
              source: str = REPO, offline: bool = False, wheels_dirs: dict | None = None, say=print) -> str:
    """Build the package (see the module's text); its path. ``wheels_dirs``: python version ->
    wheel directory (default: tools/build_bundle.py's per target)."""
    if shutil.which("dpkg-deb") is None:
        raise DebError("dpkg-deb not found (Debian: apt-get install dpkg)")
    arch = arch or host_arch()
    platforms = platforms_for(arch)
    if not pythons:
        raise DebError("no target Python")
    with open(os.path.join(source, "pyproject.toml"), "rb") as f:
        version = version or tomllib.load(f)["project"]["version"]
    with tempfile.TemporaryDirectory(prefix="ocpp-agent-deb-") as tmp:
        bundles = {}
        for py in pythons:
            say("bundle for Python %s on %s (%s)" % (py, arch, CPUS[arch]))
            try:
                bundles[py] = build_bundle.build_bundle(
                    os.path.join(tmp, "bundles", py_tag(py)), source=source, version=version,
                    wheels_dir=(wheels_dirs or {}).get(py), platforms=platforms, python_version=py,
                    offline=offline, say=say)
            except build_bundle.BuildError as e:
                raise DebError("the bundle for Python %s (%s): %s" % (py, arch, e)) from None
        tree = os.path.join(tmp, "tree")
        stage(tree, version, arch, bundles)
        os.makedirs(out_dir, exist_ok=True)
        path = os.path.join(os.path.abspath(out_dir), deb_name(version, arch))
        done = subprocess.run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", tree, path],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise DebError("dpkg-deb failed: %s" % (done.stderr.strip() or done.stdout.strip()))
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.build_deb", description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", choices=sorted(CPUS), help="Debian architecture (default: this machine's)")
    p.add_argument("--python", action="append", dest="pythons",
                   help="target Python version, repeatable (default: %s)" % " and ".join(PYTHONS))
    p.add_argument("--version", help="the package's version (default: pyproject.toml's)")
    p.add_argument("--out", default="dist", help="where the package is written (default: dist)")
    p.add_argument("--source", default=REPO, help="the source tree (default: this repository)")
    p.add_argument("--offline", action="store_true", help="never download: a missing wheel is an error")
    p.add_argument("--quiet", action="store_true", help="print only the package's path")
    args = p.parse_args(argv)
    say = (lambda line: None) if args.quiet else (lambda line: print(line, file=sys.stderr))
    try:
        path = build_deb(args.out, arch=args.arch, pythons=tuple(args.pythons or PYTHONS), version=args.version,
                         source=args.source, offline=args.offline, say=say)
    except (DebError, build_bundle.BuildError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
