"""sd_notify (agent/app/systemd.py) over a real AF_UNIX datagram socket, the watchdog pings
that follow the station's health, and what the supervisor tells systemd."""

import asyncio
import os
import socket
import subprocess

import pytest

from agent.app.systemd import Notifier, ping_while_healthy
from agent.update import supervisor as sup


@pytest.fixture
def notify_socket(tmp_path):
    path = str(tmp_path / "notify")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(2)
    yield path, s
    s.close()


def received(s) -> list:
    out = []
    s.settimeout(0.2)
    try:
        while True:
            out.append(s.recv(4096).decode())
    except (socket.timeout, BlockingIOError):
        return out


def test_nothing_is_sent_without_notify_socket():
    n = Notifier(environ={})
    assert not n.enabled and n.watchdog_s == 0
    assert n.ready() is False and n.watchdog() is False and n.stopping() is False


def test_ready_status_watchdog_and_stopping_reach_the_socket(notify_socket):
    path, s = notify_socket
    n = Notifier(environ={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "90000000"})
    assert n.watchdog_s == 90.0
    assert n.ready("station CP1 running")
    assert n.watchdog() and n.stopping()
    assert received(s) == ["READY=1\nSTATUS=station CP1 running", "WATCHDOG=1", "STOPPING=1"]


def test_an_abstract_socket_is_reached_through_the_at_sign():
    name = "ocpp-agent-test-%d" % os.getpid()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("\0" + name)
    try:
        assert Notifier(environ={"NOTIFY_SOCKET": "@" + name}).ready()
        s.settimeout(2)
        assert s.recv(100) == b"READY=1"
    finally:
        s.close()


def test_a_socket_that_is_gone_is_no_error(tmp_path):
    assert Notifier(environ={"NOTIFY_SOCKET": str(tmp_path / "none")}).watchdog() is False


async def test_pings_only_while_healthy(notify_socket):
    path, s = notify_socket
    health = [True, True, False, False, True]
    turns = []

    async def sleep(seconds):
        turns.append(seconds)
        if len(turns) == len(health):
            raise asyncio.CancelledError
        await asyncio.sleep(0)

    n = Notifier(environ={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000"})
    with pytest.raises(asyncio.CancelledError):
        await ping_while_healthy(n, lambda: health[len(turns)], sleep=sleep)
    assert turns == [10.0] * 5  # a third of WatchdogSec
    assert received(s) == ["WATCHDOG=1"] * 3  # none on the two unhealthy turns


async def test_no_watchdog_asked_no_pings(notify_socket):
    path, _s = notify_socket
    await asyncio.wait_for(ping_while_healthy(Notifier(environ={"NOTIFY_SOCKET": path}), lambda: True), 1)


class FakeChild:
    def __init__(self, codes):
        self.codes = list(codes)
        self.signals = []

    def poll(self):
        return self.codes.pop(0) if self.codes else None

    def send_signal(self, signum):
        self.signals.append(signum)


class FakeRoot:
    def current_version(self):
        return "1.0"

    def executable(self):
        return "/opt/ocpp-agent/current/bin/ocpp-agent"


class Recorder:
    def __init__(self):
        self.sent = []

    def notify(self, *lines):
        self.sent.append(lines)


def test_the_supervisor_pings_as_it_starts_a_child_and_before_a_crash_pause_and_says_stopping(tmp_path):
    children = [FakeChild([1]), FakeChild([sup.EXIT_RESTART]), FakeChild([None])]
    rec = Recorder()
    s = sup.Supervisor(FakeRoot(), ["--config", "x"], str(tmp_path / "update.json"), sleep=lambda _s: None,
                       spawn=lambda argv: children.pop(0), notifier=rec)

    def spawn(argv):
        child = children.pop(0)
        if not children:  # the third run: systemd stops the service (SIGTERM), the child then ends
            def poll():
                if not s.stopping:
                    s.stop()
                    return None
                return 0
            child.poll = poll
        return child

    s.spawn = spawn
    assert s.run() == 0
    kinds = [lines[0] for lines in rec.sent]
    assert kinds == ["WATCHDOG=1", "WATCHDOG=1", "WATCHDOG=1", "WATCHDOG=1", "STOPPING=1"]
    assert rec.sent[0][1] == "STATUS=starting ocpp-agent 1.0"
    assert "stopped with exit status 1" in rec.sent[1][1]


def test_the_cli_has_a_version_option():
    done = subprocess.run([os.path.join(os.path.dirname(os.path.abspath(os.sys.executable)), "ocpp-agent"),
                           "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("ocpp-agent ")
