"""The package for a Raspberry Pi's CPU in an arm64 Debian tree under qemu-user (tools/check_deb.py):
built for arm64 (the wheels of that CPU), installed with dpkg and no network, ``ocpp-agent
--version`` and a simulated session against a test central system on this machine's loopback,
then purged. The whole image and its boot under QEMU are the separate, slow proof
(tools/build_image.py, tools/boot_image.py; docs/raspberry-pi.md).

The arm64 tree is made once and kept in the venv (``<venv>/.cache/ocpp-agent-deb-tree-arm64``).
Needs root, mmdebstrap, qemu-user-static (binfmt_misc); skipped without them, except in CI."""

import os
import subprocess
import time

import pytest

from tests.packaging.test_deb import need, tree_cache
from tools import build_deb, check_deb

ARCH = "arm64"


@pytest.mark.timeout_s(1800)
def test_the_arm64_package_installs_and_runs_a_session_under_qemu_user(tmp_path):
    need(os.geteuid() == 0, "needs root (chroot)")
    missing = check_deb.missing_tools(ARCH)
    need(not missing, "missing: %s" % ", ".join(missing))
    if build_deb.host_arch() == ARCH:
        pytest.skip("this machine is arm64: tests/packaging/test_deb.py covers it natively")
    tree = tree_cache(ARCH) or str(tmp_path / "tree")
    # the tree's python3 is bookworm's 3.11: the package carries that Python's bundle
    deb = build_deb.build_deb(str(tmp_path / "deb"), arch=ARCH, pythons=(check_deb.SUITE_PYTHON,),
                              say=lambda line: None)
    t0 = time.monotonic()
    times = check_deb.check(ARCH, deb=deb, tree=tree, say=lambda line: None)
    try:
        assert times["version"] == "ocpp-agent " + build_deb.tomllib.load(
            open(os.path.join(build_deb.REPO, "pyproject.toml"), "rb"))["project"]["version"]
        machine = subprocess.run(["chroot", tree, "/opt/ocpp-agent/current/bin/python", "-c",
                                  "import platform; print(platform.machine())"], capture_output=True, text=True,
                                 timeout=300).stdout.strip()
        assert machine == "aarch64"  # the agent ran as an arm64 program, not this machine's
        print("\narm64 under qemu-user: %s; total %.0f s" % (", ".join(
            "%s %.0f s" % kv for kv in times.items() if isinstance(kv[1], float)), time.monotonic() - t0))
    finally:
        subprocess.run(["chroot", tree, "dpkg", "-P", "ocpp-agent"], capture_output=True, timeout=600)
