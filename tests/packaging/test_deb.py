"""The Debian package (tools/build_deb.py, tools/deb/): built for this machine's architecture
and Python, its control data, files and maintainer scripts checked, its unit verified with
systemd-analyze; then installed with dpkg into a minimal Debian tree (mmdebstrap, this
machine's architecture: no emulation) where ``ocpp-agent --version`` and a sim session against
a test central system run (tools/check_deb.py), and removed and purged again.

The tree is made once and kept in the venv (``<venv>/.cache/ocpp-agent-deb-tree-<arch>``; the
package is purged at the end, so the next run finds it clean). The arm64 check under qemu-user
is the separate command ``python -m tools.check_deb --arch arm64`` (docs/raspberry-pi.md).
Tools missing here (dpkg-deb, shellcheck, systemd-analyze, mmdebstrap, root) skip their test,
except in CI (``OCPP_AGENT_CI=1``), where .ci/run installs them and a missing one fails.
"""

import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from tools import build_deb, check_deb

ARCH = build_deb.host_arch()
PY = "%d.%d" % sys.version_info[:2]
TIMINGS = {}


def need(ok: bool, why: str) -> None:
    if not ok:
        if os.environ.get("OCPP_AGENT_CI"):
            pytest.fail(why)
        pytest.skip(why)


@pytest.fixture(scope="module")
def deb(tmp_path_factory) -> str:
    need(shutil.which("dpkg-deb") is not None, "no dpkg-deb")
    t0 = time.monotonic()
    path = build_deb.build_deb(str(tmp_path_factory.mktemp("deb")), arch=ARCH, pythons=(PY,), say=lambda line: None)
    TIMINGS["build"] = time.monotonic() - t0
    return path


def _deb(*args) -> str:
    return subprocess.run(["dpkg-deb"] + list(args), capture_output=True, text=True, check=True).stdout


def test_the_package_holds_the_install_root_s_bundle_the_unit_and_a_conffile(deb):
    version = build_deb.tomllib.load(open(os.path.join(build_deb.REPO, "pyproject.toml"), "rb"))["project"]["version"]
    assert os.path.basename(deb) == "ocpp-agent_%s_%s.deb" % (version, ARCH)
    fields = dict(re.findall(r"^ ?([A-Za-z-]+): (.*)$", _deb("-f", deb), re.M))
    assert fields["Package"] == "ocpp-agent" and fields["Version"] == version and fields["Architecture"] == ARCH
    assert "python3-venv" in fields["Depends"] and "python3 (>= %s~)" % PY in fields["Depends"]
    listing = _deb("-c", deb)
    names = {line.split()[5].lstrip(".") for line in listing.splitlines()}
    tag = "cp" + PY.replace(".", "")
    for path in ("/usr/lib/systemd/system/ocpp-agent.service", "/etc/ocpp-agent/agent.toml",
                 "/usr/lib/ocpp-agent/install-bundle", "/usr/lib/ocpp-agent/bundles/%s/ocpp-agent-%s.bundle"
                 % (tag, version), "/usr/bin/ocpp-agent", "/usr/share/doc/ocpp-agent/copyright"):
        assert path in names, listing
    assert "/usr/bin/ocpp-agent -> /opt/ocpp-agent/current/bin/ocpp-agent" in listing
    assert all(line.split()[1] == "root/root" for line in listing.splitlines())
    assert not any(n.startswith("/opt/") for n in names)  # the install root is made by postinst
    assert _deb("-f", deb, "Installed-Size").strip().isdigit()


def test_maintainer_scripts_are_clean_shell_and_know_the_version(deb, tmp_path):
    subprocess.run(["dpkg-deb", "-e", deb, str(tmp_path / "DEBIAN")], check=True)
    meta = tmp_path / "DEBIAN"
    assert (meta / "conffiles").read_text() == "/etc/ocpp-agent/agent.toml\n"
    postinst = (meta / "postinst").read_text()
    assert "@VERSION@" not in postinst and 'VERSION="%s"' % _deb("-f", deb, "Version").strip() in postinst
    for name in ("postinst", "prerm", "postrm"):
        assert os.access(meta / name, os.X_OK)
    need(shutil.which("shellcheck") is not None, "no shellcheck (Debian: shellcheck)")
    done = subprocess.run(["shellcheck", "-s", "sh"] + [str(meta / n) for n in ("postinst", "prerm", "postrm")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_the_unit_is_a_notify_service_with_a_watchdog_and_verifies(tmp_path):
    text = open(os.path.join(build_deb.DEB_DIR, "ocpp-agent.service")).read()
    keys = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            keys.setdefault(k, []).append(v)
    for key, value in (("Type", "notify"), ("NotifyAccess", "all"), ("Restart", "always"), ("User", "ocpp-agent"),
                       ("SupplementaryGroups", "dialout gpio"), ("StateDirectory", "ocpp-agent"),
                       ("ConfigurationDirectory", "ocpp-agent"), ("ProtectSystem", "strict"),
                       ("NoNewPrivileges", "yes"), ("PrivateTmp", "yes"), ("DevicePolicy", "closed"),
                       ("ReadWritePaths", "/opt/ocpp-agent /etc/ocpp-agent"), ("KillMode", "mixed")):
        assert keys[key] == [value], key
    assert int(keys["WatchdogSec"][0]) > 60  # the supervisor's longest crash pause (agent/update/supervisor.py)
    assert "char-ttyUSB rw" in keys["DeviceAllow"] and "char-gpiochip rw" in keys["DeviceAllow"]
    need(shutil.which("systemd-analyze") is not None, "no systemd-analyze (Debian: systemd)")
    # verify checks that ExecStart exists: the install root is not on this machine, /bin/true stands in
    unit = tmp_path / "ocpp-agent.service"
    unit.write_text(text.replace("ExecStart=/opt/ocpp-agent/current/bin/ocpp-agent", "ExecStart=/bin/true"))
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


def tree_cache(arch: str = ARCH) -> str:
    """Where the Debian tree for ``arch`` is kept between runs: in the venv ("" outside one)."""
    if sys.prefix != sys.base_prefix:
        return os.path.join(sys.prefix, ".cache", "ocpp-agent-deb-tree-%s" % arch)
    return ""


@pytest.mark.timeout_s(900)
def test_it_installs_into_a_debian_tree_runs_a_session_and_removes_and_purges_cleanly(deb, tmp_path):
    need(os.geteuid() == 0, "needs root (chroot)")
    missing = check_deb.missing_tools(ARCH)
    need(not missing, "missing: %s" % ", ".join(missing))
    tree = tree_cache() or str(tmp_path / "tree")
    t0 = time.monotonic()
    times = check_deb.check(ARCH, deb=deb, tree=tree, say=lambda line: None)
    TIMINGS.update(times)
    assert times["version"] == "ocpp-agent " + _deb("-f", deb, "Version").strip()
    assert os.path.islink(os.path.join(tree, "opt/ocpp-agent/current"))

    def chroot(*argv):
        return subprocess.run(["chroot", tree] + list(argv), capture_output=True, text=True, timeout=300)

    owner = chroot("stat", "-c", "%U %a", "/etc/ocpp-agent", "/etc/ocpp-agent/agent.toml", "/var/lib/ocpp-agent")
    assert owner.stdout.split("\n")[:3] == ["ocpp-agent 750", "ocpp-agent 600", "ocpp-agent 750"], owner.stdout
    groups = chroot("id", "-nG", "ocpp-agent").stdout.split()
    assert "dialout" in groups and "gpio" in groups
    assert os.path.islink(os.path.join(tree, "etc/systemd/system/multi-user.target.wants/ocpp-agent.service"))
    # remove: the program goes, configuration and state stay
    assert chroot("dpkg", "-r", "ocpp-agent").returncode == 0
    assert not os.path.exists(os.path.join(tree, "opt/ocpp-agent"))
    assert os.path.isfile(os.path.join(tree, "etc/ocpp-agent/agent.toml"))
    assert os.path.isdir(os.path.join(tree, "var/lib/ocpp-agent"))
    # purge: everything
    assert chroot("dpkg", "-P", "ocpp-agent").returncode == 0
    assert not os.path.exists(os.path.join(tree, "etc/ocpp-agent"))
    assert not os.path.exists(os.path.join(tree, "var/lib/ocpp-agent"))
    TIMINGS["install check"] = time.monotonic() - t0


@pytest.fixture(scope="module", autouse=True)
def _print_timings():
    yield
    if TIMINGS:
        print("\ndeb: " + ", ".join("%s %s" % (k, "%.1f s" % v if isinstance(v, float) else v)
                                   for k, v in TIMINGS.items()))
