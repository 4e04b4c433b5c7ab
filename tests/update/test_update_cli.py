"""``ocpp-agent update BUNDLE`` and ``ocpp-agent update --rollback`` from a shell, for real: the
installed agent (0.9.1 in an install root, under its supervisor, at the 1.6 test central
system) takes the bundle over its control socket and restarts into 0.9.2; ``--rollback``
brings 0.9.1 back. With the agent stopped, ``update`` installs and activates the bundle at
once, and the next start is on trial: offline (the central system gone), a healthy start of
``update.healthy_start_s`` verifies it.
"""

import asyncio
import json
import signal
import subprocess

import pytest

from agent.update.installer import InstallRoot
from tests.update.test_octt_l import Installed, events_seen
from tests.update.test_update_e2e import Seen, clean_env, iso_now
from tests.update.test_update_e2e import until as until_real
from tools.csms import TestCentralSystem


async def cli(root: InstallRoot, tmp_path, *args) -> subprocess.CompletedProcess:
    """``<root>/current/bin/ocpp-agent ARGS`` as an operator runs it."""
    return await asyncio.to_thread(subprocess.run, [root.executable()] + list(args), capture_output=True, text=True,
                                   timeout=120, cwd=str(tmp_path), env=clean_env())


def update_state(tmp_path) -> dict:
    try:
        return json.loads((tmp_path / "data" / "update.json").read_text())
    except (OSError, ValueError):
        return {}


@pytest.mark.timeout_s(300)
async def test_update_and_rollback_from_the_command_line(bundles, tmp_path, venv_works):
    root = InstallRoot(str(tmp_path / "root"))
    root.activate(root.install(bundles["0.9.1"]))
    seen = Seen()
    boot = {"status": "Accepted", "currentTime": iso_now(), "interval": 300}
    cs = TestCentralSystem(quiet=True, protocols=("ocpp1.6",), handlers={
        "BootNotification": seen.handler("BootNotification", lambda p: dict(boot, currentTime=iso_now()))})
    await cs.start()
    agent = Installed(tmp_path, root, cs.url, version="1.6")
    agent.start()
    try:
        await until_real(lambda: ("BootNotification", "0.9.1") in events_seen(seen), 60, "0.9.1 booted")

        # The running agent takes the bundle: installed beside 0.9.1, restarted into it, verified.
        mark = len(seen.log)
        done = await cli(root, tmp_path, "update", "--config", str(agent.config), bundles["0.9.2"])
        assert done.returncode == 0, done.stderr
        await until_real(lambda: ("BootNotification", "0.9.2") in events_seen(seen, mark), 90, "0.9.2 booted")
        await until_real(lambda: update_state(tmp_path).get("status") in ("verified", "reported"), 30, "verified")
        assert root.current_version() == "0.9.2" and root.previous_version() == "0.9.1"

        # --rollback: 0.9.1 active again, the agent restarted into it.
        mark = len(seen.log)
        done = await cli(root, tmp_path, "update", "--config", str(agent.config), "--rollback")
        assert done.returncode == 0, done.stderr
        assert "0.9.1" in done.stdout
        await until_real(lambda: ("BootNotification", "0.9.1") in events_seen(seen, mark), 60, "0.9.1 back")
        assert root.current_version() == "0.9.1" and root.previous_version() == "0.9.2"
        versions = await cli(root, tmp_path, "version")
        assert "0.9.1" in versions.stdout and "0.9.2" in versions.stdout

        # Stopped: the bundle is installed and made active here; the next start is on trial.
        assert agent.stop() == 0, agent.log()
        await cs.stop()  # offline from now on: a healthy start is the proof
        done = await cli(root, tmp_path, "update", "--config", str(agent.config), bundles["0.9.2"])
        assert done.returncode == 0, done.stderr
        assert root.current_version() == "0.9.2"
        assert update_state(tmp_path)["status"] == "trial" and update_state(tmp_path)["deadline"] is None
        agent.start()
        await until_real(lambda: update_state(tmp_path).get("deadline") is not None, 30, "the trial started")
        await until_real(lambda: update_state(tmp_path).get("status") == "verified", 60, "a healthy start")
        assert "healthy start" in update_state(tmp_path)["verified_by"]
        assert root.current_version() == "0.9.2"
    finally:
        code = agent.stop()
        await cs.stop()
    assert code == 0, agent.log()


class FakeRoot:
    """The install root as the supervisor sees it: two versions, ``current`` and ``previous``."""

    def __init__(self) -> None:
        self.current, self.previous, self.rollbacks = "0.9.2", "0.9.1", 0

    def current_version(self) -> str:
        return self.current

    def roll_back(self) -> str:
        self.current, self.previous = self.previous, self.current
        self.rollbacks += 1
        return self.current

    def executable(self) -> str:
        return "/opt/ocpp-agent/current/bin/ocpp-agent"


class FakeChild:
    def __init__(self, on_poll) -> None:
        self.on_poll = on_poll

    def poll(self):
        return self.on_poll()

    def send_signal(self, _signum) -> None:
        pass


def test_a_rollback_by_hand_during_a_trial_is_not_rolled_back_again(tmp_path):
    """``ocpp-agent update --rollback`` while the version on trial runs (verified or not): the
    agent switched back itself and ends with EXIT_UPDATE; the supervisor must start the
    version rolled back to, not take the exit for a failed trial and switch once more (to
    the version just left)."""
    from agent.update import state
    from agent.update.supervisor import EXIT_UPDATE, Supervisor

    path = str(tmp_path / "update.json")
    root, started = FakeRoot(), []
    state.begin_trial(path, from_version="0.9.1", to_version="0.9.2", now=1000.0, deadline=1300.0, needs_boot=True)
    sup = None

    def by_hand():  # what UpdateService.roll_back_by_hand does in the running 0.9.2
        root.roll_back()
        state.write_state(path, {"status": state.ROLLED_BACK, "from": "0.9.1", "to": "0.9.2", "reason": "by hand",
                                 "reason_kind": "installation", "request_id": None, "protocol": "cli"})
        return EXIT_UPDATE

    def stop():
        sup.stopping = True
        return 0

    def spawn(argv):
        started.append(root.current_version())
        return FakeChild(by_hand if len(started) == 1 else stop)

    sup = Supervisor(root, ["--config", "agent.toml"], path, now=lambda: 1100.0, sleep=lambda s: None, spawn=spawn)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        assert sup.run() == 0
    finally:  # run() takes SIGTERM and SIGINT over: give them back to pytest
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    assert started == ["0.9.2", "0.9.1"]
    assert root.rollbacks == 1 and root.current_version() == "0.9.1"
    assert state.read_state(path)["reason"] == "by hand"
