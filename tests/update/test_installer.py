"""Versions side by side under an install root (agent/update/installer.py): real bundles of
this repository (conftest.py) installed into virtual environments with no index, run,
switched, rolled back, removed and pruned. Each install takes about 6 s."""

import asyncio
import json
import os
import subprocess

import pytest

from agent.update import bundle as b
from agent.update.installer import MARKER, InstallError, InstallRoot


def _run(root: InstallRoot, version=None) -> subprocess.CompletedProcess:
    return subprocess.run([root.executable(version), "--help"], capture_output=True, text=True, timeout=60,
                          cwd=root.path)


def _version_of(root: InstallRoot, version=None) -> str:
    code = "import importlib.metadata as m; print(m.version('ocpp-agent'))"
    return subprocess.run([root.python(version), "-I", "-c", code], capture_output=True, text=True, timeout=60,
                          check=True).stdout.strip()


@pytest.mark.usefixtures("venv_works")
def test_two_versions_side_by_side_switched_and_rolled_back(bundles, tmp_path):
    root = InstallRoot(str(tmp_path / "root"))
    assert root.versions() == [] and root.current_version() is None and InstallRoot.of_running() is None
    lines = []
    assert root.install(bundles["0.9.1"], log=lines.append) == "0.9.1"
    assert any("installed 0.9.1" in line for line in lines)
    assert root.current_version() is None  # installed, not switched on
    root.activate("0.9.1")
    assert (root.current_version(), root.previous_version()) == ("0.9.1", None)
    assert os.readlink(tmp_path / "root" / "current") == "versions/0.9.1"  # relative: the root can move
    assert _run(root).returncode == 0 and _version_of(root) == "0.9.1"

    assert root.install(bundles["0.9.2"]) == "0.9.2"
    assert root.current_version() == "0.9.1"
    root.activate("0.9.2")
    assert (root.current_version(), root.previous_version()) == ("0.9.2", "0.9.1")
    assert _version_of(root) == "0.9.2" and _version_of(root, "0.9.1") == "0.9.1"
    assert root.executable() == str(tmp_path / "root" / "current" / "bin" / "ocpp-agent")
    assert [(v["version"], v["current"], v["previous"]) for v in root.versions()] == [
        ("0.9.1", False, True), ("0.9.2", True, False)]
    # the interpreter of a version knows its root (sys.prefix is <root>/current or <root>/versions/<v>)
    assert InstallRoot.of_running(str(tmp_path / "root" / "current")).path == root.path
    assert InstallRoot.of_running(str(tmp_path / "root" / "versions" / "0.9.1")).path == root.path
    code = "from agent.update.installer import InstallRoot; from agent.update.state import running_version; print(InstallRoot.of_running().path, running_version())"
    out = subprocess.run([root.python(), "-I", "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == [root.path, "0.9.2"]

    with pytest.raises(InstallError, match="0.9.2 is the current one"):
        root.install(bundles["0.9.2"])
    assert root.roll_back() == "0.9.1"
    assert (root.current_version(), root.previous_version()) == ("0.9.1", "0.9.2")
    assert _version_of(root) == "0.9.1"
    root.activate("0.9.1")  # already current: nothing changes
    assert root.previous_version() == "0.9.2"


@pytest.mark.usefixtures("venv_works")
def test_a_version_that_fails_at_start_is_rolled_back_and_kept_for_inspection(bundles, tmp_path):
    root = InstallRoot(str(tmp_path / "root"))
    root.install(bundles["0.9.1"])
    root.activate("0.9.1")
    broken = bundles["0.9.3"]
    assert root.install(broken) == "0.9.3"  # it installs: only starting it shows it is broken
    root.activate("0.9.3")
    run = _run(root)
    assert run.returncode != 0 and "broken on purpose" in run.stderr
    assert root.roll_back() == "0.9.1"
    assert _run(root).returncode == 0 and _version_of(root) == "0.9.1"
    assert root.previous_version() == "0.9.3" and os.path.isdir(tmp_path / "root" / "versions" / "0.9.3")
    for version in ("0.9.1", "0.9.3"):
        with pytest.raises(InstallError, match="current or the previous"):
            root.remove(version)
    with pytest.raises(InstallError, match="not installed"):
        root.activate("0.9.9")


@pytest.mark.usefixtures("venv_works")
async def test_install_async_lets_the_loop_run_while_pip_works(bundles, tmp_path):
    path = bundles["0.9.2"]  # built before the timed part
    root = InstallRoot(str(tmp_path / "root"))
    ticks = 0
    stop = asyncio.Event()

    async def ticker():
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.05)

    task = asyncio.create_task(ticker())
    try:
        assert await root.install_async(path) == "0.9.2"
    finally:
        stop.set()
        await task
    assert ticks > 20  # the install took seconds and the loop kept running
    assert [v["version"] for v in root.versions()] == ["0.9.2"]


@pytest.mark.usefixtures("venv_works")
def test_a_failed_install_leaves_no_directory_and_says_why(bundles, tmp_path):
    # A bundle whose wheels lack a dependency (h11): pip cannot install the agent.
    members_dir = tmp_path / "x"
    manifest = b.extract(bundles["0.9.1"], str(members_dir))
    wheels = [str(members_dir / "wheels" / w["file"]) for w in manifest["wheels"] if not w["file"].startswith("h11-")]
    incomplete = b.write_bundle(str(tmp_path / "incomplete.bundle"), b.make_manifest("0.9.1", wheels), wheels)
    root = InstallRoot(str(tmp_path / "root"))
    stale = tmp_path / "root" / "versions" / "0.9.1"
    stale.mkdir(parents=True)  # an install cut short by a power cut: no marker
    (stale / "junk").write_text("x")
    assert root.versions() == []
    with pytest.raises(InstallError) as e:
        root.install(incomplete)
    assert "pip install failed" in str(e.value) and "h11" in str(e.value)
    assert os.listdir(tmp_path / "root" / "versions") == []  # neither the half install nor the staging


@pytest.mark.usefixtures("venv_works")
def test_an_incompatible_or_bad_bundle_is_refused_before_anything_is_installed(bundles, tmp_path):
    x = tmp_path / "x"
    manifest = b.extract(bundles["0.9.1"], str(x))
    wheels = [str(x / "wheels" / w["file"]) for w in manifest["wheels"]]
    future = b.write_bundle(str(tmp_path / "future.bundle"),
                            b.make_manifest("0.9.1", wheels, requires_python=">=3.99"), wheels)
    root = InstallRoot(str(tmp_path / "root"))
    with pytest.raises(b.BundleError, match="needs Python >=3.99"):
        root.install(future)
    (tmp_path / "not.bundle").write_bytes(b"nothing")
    with pytest.raises(b.BundleError, match="not a tar"):
        root.install(str(tmp_path / "not.bundle"))
    assert os.listdir(tmp_path / "root" / "versions") == []


def _fake_version(root: InstallRoot, version: str, installed: str) -> None:
    """A version directory as the installer leaves it (no virtual environment: for the
    bookkeeping tests)."""
    home = root.version_path(version)
    os.makedirs(os.path.join(home, "bin"))
    with open(os.path.join(home, MARKER), "w") as f:
        json.dump({"version": version, "installed": installed}, f)


def test_prune_keeps_current_previous_and_the_newest(tmp_path):
    root = InstallRoot(str(tmp_path / "root"))
    for i, v in enumerate(["1.0", "1.1", "1.2", "1.3", "1.4"]):
        _fake_version(root, v, "2026-01-0%dT00:00:00" % (i + 1))
    os.makedirs(root.version_path("1.5"))  # half installed
    root.activate("1.0")
    root.activate("1.1")  # current 1.1, previous 1.0
    assert root.prune(keep=3) == ["1.3", "1.2"]
    assert [v["version"] for v in root.versions()] == ["1.0", "1.1", "1.4"]
    assert sorted(os.listdir(tmp_path / "root" / "versions")) == ["1.0", "1.1", "1.4"]
    assert root.prune(keep=1) == ["1.4"]  # current and previous always stay
    assert [v["version"] for v in root.versions()] == ["1.0", "1.1"]


def test_remove_and_bad_versions(tmp_path):
    root = InstallRoot(str(tmp_path / "root"))
    for v in ("1.0", "1.1", "1.2"):
        _fake_version(root, v, "2026-01-01T00:00:0" + v[-1])
    root.activate("1.0")
    root.activate("1.1")
    root.remove("1.2")
    assert [v["version"] for v in root.versions()] == ["1.0", "1.1"]
    with pytest.raises(InstallError, match="not installed"):
        root.remove("1.2")
    with pytest.raises(InstallError, match="bad version"):
        root.remove("../etc")
    with pytest.raises(InstallError, match="not installed"):
        root.executable("1.2")
    assert root.python("1.0") == os.path.join(root.version_path("1.0"), "bin", "python")


def test_roll_back_needs_a_previous_version_and_one_change_at_a_time(tmp_path):
    root = InstallRoot(str(tmp_path / "root"))
    _fake_version(root, "1.0", "2026-01-01T00:00:00")
    root.activate("1.0")
    with pytest.raises(InstallError, match="no previous version"):
        root.roll_back()
    with root._locked():  # another process is installing
        with pytest.raises(InstallError, match="another update"):
            root.activate("1.0")
    assert InstallRoot(str(tmp_path / "nowhere")).current_version() is None
    with pytest.raises(InstallError, match="no current version"):
        InstallRoot(str(tmp_path / "nowhere")).executable()
