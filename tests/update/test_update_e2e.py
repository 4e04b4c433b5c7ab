"""The agent updated by its central system, for real: version 0.9.1 installed in an install
root runs under its supervisor (``<root>/current/bin/ocpp-agent run``) on the simulated
board; the central system (tools/csms.py, in this process) sends UpdateFirmware for a
bundle built from this repository as 0.9.2, served over HTTP on 127.0.0.1. The agent
downloads, checks and installs it beside 0.9.1, restarts into it, and 0.9.2 boots and
reports Installed (TC_044_1). Then a bundle whose agent fails at start (0.9.3): the
supervisor switches back to 0.9.2 by itself, which reports InstallationFailed (TC_044_3).
The statuses the central system saw, with their times, are printed (``-s``) for the record.
"""

import datetime
import os
import subprocess
import time

import pytest

from agent.update.installer import InstallRoot
from tests.transfer.servers import FileServer
from tools.csms import TestCentralSystem

CONFIG = """[station]
id = "CP001"
board = "sim"
data_dir = "%(data)s"

[csms]
url = "%(url)s"
ocpp_version = "%(version)s"
reconnect_initial_s = 0.2
reconnect_max_s = 1.0

[status_page]
enabled = false

[update]
verify_timeout_s = 90
healthy_start_s = 5
"""


def iso_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


class Seen:
    """What the central system received, with the seconds since the test began."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.log: list = []  # (seconds, action, status or firmwareVersion)

    def handler(self, action: str, reply):
        def take(payload: dict) -> dict:
            what = payload.get("status") or payload.get("firmwareVersion") or \
                (payload.get("chargingStation") or {}).get("firmwareVersion")
            self.log.append((round(time.monotonic() - self.t0, 1), action, what))
            return reply(payload)
        return take

    def statuses(self, since: int = 0) -> list:
        return [what for _t, action, what in self.log[since:] if action.endswith("StatusNotification")
                and action.startswith(("Firmware", "SignedFirmware"))]


async def until(condition, timeout_s: float, what: str) -> None:
    import asyncio

    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("%s not reached within %s s" % (what, timeout_s))
        await asyncio.sleep(0.1)


def clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


@pytest.mark.timeout_s(300)
async def test_tc_044_1_update_by_the_backend_and_tc_044_3_a_broken_one_rolled_back(bundles, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    for version in ("0.9.2", "0.9.3"):
        os.link(bundles[version], served / ("agent-%s.bundle" % version))
    root = InstallRoot(str(tmp_path / "root"))
    root.activate(root.install(bundles["0.9.1"]))
    seen = Seen()
    boot = {"status": "Accepted", "currentTime": iso_now(), "interval": 300}
    cs = TestCentralSystem(quiet=True, protocols=("ocpp1.6",), handlers={
        "BootNotification": seen.handler("BootNotification", lambda p: dict(boot, currentTime=iso_now())),
        "FirmwareStatusNotification": seen.handler("FirmwareStatusNotification", lambda p: {})})
    await cs.start()
    files = FileServer(str(served))
    config = tmp_path / "agent.toml"
    config.write_text(CONFIG % {"data": tmp_path / "data", "url": cs.url, "version": "1.6"})
    log_file = open(tmp_path / "agent.log", "w")
    agent = subprocess.Popen([root.executable(), "run", "--config", str(config)], cwd=str(tmp_path),
                             env=clean_env(), stdout=log_file, stderr=subprocess.STDOUT)
    try:
        h = await cs.wait_for_station("CP001", timeout_s=60)
        await until(lambda: ("BootNotification", "0.9.1") in [(a, w) for _t, a, w in seen.log], 60, "0.9.1 booted")

        # TC_044_1: the update, from the backend's point of view.
        mark = len(seen.log)
        assert await h.call("UpdateFirmware", location=files.url("agent-0.9.2.bundle"), retrieveDate=iso_now()) == {}
        await until(lambda: "Installed" in seen.statuses(mark), 120, "0.9.2 Installed")
        assert seen.statuses(mark) == ["Downloading", "Downloaded", "Installing", "Installed"]
        assert ("BootNotification", "0.9.2") in [(a, w) for _t, a, w in seen.log[mark:]]
        assert root.current_version() == "0.9.2" and root.previous_version() == "0.9.1"
        print("\nupdate 0.9.1 -> 0.9.2 as the central system saw it:")
        for t, action, what in seen.log[mark:]:
            print("  %6.1f s  %s %s" % (t, action, what))

        # TC_044_3: the broken version fails at start; the supervisor returns to 0.9.2.
        mark = len(seen.log)
        assert await h.call("UpdateFirmware", location=files.url("agent-0.9.3.bundle"), retrieveDate=iso_now()) == {}
        await until(lambda: "InstallationFailed" in seen.statuses(mark), 150, "InstallationFailed")
        assert seen.statuses(mark) == ["Downloading", "Downloaded", "Installing", "InstallationFailed"]
        assert root.current_version() == "0.9.2" and root.previous_version() == "0.9.3"
        boots = [w for _t, a, w in seen.log[mark:] if a == "BootNotification"]
        assert boots == ["0.9.2"]  # 0.9.3 never got as far as a boot
        print("update 0.9.2 -> 0.9.3 (broken) as the central system saw it:")
        for t, action, what in seen.log[mark:]:
            print("  %6.1f s  %s %s" % (t, action, what))
        versions = subprocess.run([root.executable(), "version"], capture_output=True, text=True, timeout=60,
                                  cwd=str(tmp_path), env=clean_env())
        assert "0.9.2" in versions.stdout and "current" in versions.stdout and "0.9.3" in versions.stdout
    finally:
        agent.terminate()
        try:
            agent.wait(30)
        except subprocess.TimeoutExpired:
            agent.kill()
        log_file.close()
        files.close()
        await cs.stop()
    assert agent.returncode == 0, open(tmp_path / "agent.log").read()[-3000:]
