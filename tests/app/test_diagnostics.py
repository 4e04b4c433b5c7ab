"""The agent's log files and the diagnostics archive (agent/app/log_files.py,
agent/app/diagnostics.py): rotation with a size bound, secrets hidden in the traffic
file, ``ocpp-agent run`` writing both files, and the archive of a running agent —
its members, no configured secret anywhere in it (the whole zip searched), the time
window, the size bound cutting the oldest lines first, and nothing left behind by a
canceled build."""

import asyncio
import io
import json
import logging
import os
import signal
import stat
import sys
import zipfile

from agent.app.config import parse_config
from agent.app.diagnostics import (HIDDEN, README_RESERVE, _Guard, build_archive, hidden_config_text,
                                   secret_values, shares)
from agent.app.log_files import (add_agent_log_file, line_time, log_files, open_traffic_file)
from agent.core.isotime import format_datetime
from agent.link.traffic import TrafficLog
from hal.runtime.clock import VirtualClock
from tests.harness import AgentHarness, until
from tools.csms import TestCentralSystem

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
T0 = 1_796_652_000.0  # 2026-12-07T14:00:00Z
CSMS_PASSWORD = "csms-Secret-0123456789"
PAGE_PASSWORD = "page-Secret-9876543210"
AUTH_KEY = "0A1B2C3D4E5F60718293"
BASIC_AUTH = "BasicAuth-Secret-0123456789"
BOARD_TOKEN = "board-Token-abcdef"


def config_for(tmp_path, **station):
    return parse_config(str(tmp_path / "agent.toml"), {
        "station": dict({"id": "CP-D", "data_dir": str(tmp_path / "data")}, **station),
        "csms": {"url": "ws://127.0.0.1:9/ocpp"}})


def stamp(t: float) -> str:
    return format_datetime(t, millis=True)


def members(path) -> dict:
    with zipfile.ZipFile(path) as z:
        return {name: z.read(name).decode() for name in z.namelist()}


# ---------------------------------------------------------------------------- log files

def test_the_agent_log_rotates_within_its_bound(tmp_path):
    config = config_for(tmp_path, log_file_max_bytes=2000, log_files_kept=2)
    logger = logging.getLogger("test.diagnostics.rotation")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = add_agent_log_file(config, logger)
    try:
        for n in range(200):
            logger.info("line %03d of the agent log, padded to make it longer", n)
    finally:
        logger.removeHandler(handler)
        handler.close()
    directory = tmp_path / "data" / "logs"
    assert sorted(os.listdir(directory)) == ["agent.log", "agent.log.1", "agent.log.2"]
    assert [os.path.basename(p) for p in log_files(str(directory), "agent.log")] == [
        "agent.log.2", "agent.log.1", "agent.log"]
    for name in os.listdir(directory):
        assert (directory / name).stat().st_size <= 2000
        assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    last = (directory / "agent.log").read_text().splitlines()[-1]
    assert last.endswith("INFO test.diagnostics.rotation: line 199 of the agent log, padded to make it longer")
    assert abs(line_time(last) - __import__("time").time()) < 60  # a UTC time the archive can select by


def test_no_log_files_with_a_zero_bound(tmp_path):
    config = config_for(tmp_path, log_file_max_bytes=0)
    assert add_agent_log_file(config, logging.getLogger("test.diagnostics.none")) is None
    assert open_traffic_file(config) is None
    assert not (tmp_path / "data" / "logs").exists()


def test_the_traffic_file_hides_secrets_and_rotates(tmp_path):
    config = config_for(tmp_path, log_file_max_bytes=1500, log_files_kept=1)
    clock = VirtualClock(start=T0)
    shown = []
    traffic_file = open_traffic_file(config, clock=clock, forward=lambda d, t: shown.append(t))
    traffic = TrafficLog(clock, forward=traffic_file.record)
    traffic.record("in", json.dumps([2, "1", "ChangeConfiguration", {"key": "AuthorizationKey", "value": AUTH_KEY}]))
    traffic.record("in", json.dumps([2, "2", "SetVariables", {"setVariableData": [{
        "attributeValue": BASIC_AUTH, "component": {"name": "SecurityCtrlr"},
        "variable": {"name": "BasicAuthPassword"}}]}]))
    traffic.record("in", json.dumps([2, "3", "SetNetworkProfile", {"configurationSlot": 1, "connectionData": {
        "vpn": {"server": "vpn", "user": "u", "password": CSMS_PASSWORD, "key": PAGE_PASSWORD, "type": "IPSec"},
        "apn": {"apn": "apn", "apnPassword": BOARD_TOKEN, "simPin": 1234, "apnAuthentication": "AUTO"}}}]))
    text = (tmp_path / "data" / "logs" / "ocpp-traffic.log").read_text()
    for secret in (AUTH_KEY, BASIC_AUTH, CSMS_PASSWORD, PAGE_PASSWORD, BOARD_TOKEN, "1234"):
        assert secret not in text and not any(secret in t for t in shown)
    lines = text.splitlines()
    assert lines[0].startswith("2026-12-07T14:00:00.000Z in  [2,\"1\",\"ChangeConfiguration\"")
    assert '"value":"(hidden)"' in lines[0] and '"attributeValue":"(hidden)"' in lines[1]
    for n in range(40):
        traffic.record("out", json.dumps([2, str(n), "Heartbeat", {}]))
    traffic_file.close()
    assert sorted(os.listdir(tmp_path / "data" / "logs")) == ["ocpp-traffic.log", "ocpp-traffic.log.1"]


async def test_ocpp_agent_run_writes_both_log_files(tmp_path):
    """The real command line: data_dir/logs/agent.log and ocpp-traffic.log while it runs."""
    csms = TestCentralSystem(quiet=True, protocols=("ocpp1.6",))
    await csms.start()
    try:
        path = tmp_path / "agent.toml"
        path.write_text('[station]\nid = "CP-RUN"\ndata_dir = "data"\n\n[csms]\nurl = "%s"\npassword = "%s"\n\n'
                        '[status_page]\nenabled = false\n' % (csms.url, CSMS_PASSWORD))
        path.chmod(0o600)
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "agent.app.cli", "run", "--config",
                                                    str(path), cwd=ROOT, stderr=asyncio.subprocess.PIPE)
        try:
            station = await csms.wait_for_station("CP-RUN", timeout_s=15)
            await station.wait_for("BootNotification")
            logs = tmp_path / "data" / "logs"
            await until(lambda: (logs / "ocpp-traffic.log").exists()
                        and "BootNotification" in (logs / "ocpp-traffic.log").read_text(), timeout_s=10)
        finally:
            proc.send_signal(signal.SIGTERM)
            _out, err = await asyncio.wait_for(proc.communicate(), 15)
    finally:
        await csms.stop()
    assert proc.returncode == 0, err.decode()[-2000:]
    agent_log = (logs / "agent.log").read_text()
    assert "agent CP-RUN running on board sim" in agent_log and line_time(agent_log) is not None
    for text in (agent_log, (logs / "ocpp-traffic.log").read_text()):
        assert CSMS_PASSWORD not in text


# ---------------------------------------------------------------------------- the configuration

def test_the_configuration_keeps_its_layout_and_loses_its_secrets():
    text = '''# the charger in the garage
[station]
id = "CP-D"   # as the backend knows it

[csms]
url = "wss://csms.example.com/ocpp"
# password = "an-old-password-1"
password = "%s"
ca_file = "ca.pem"

[status_page]
password = ""
key_file = "page.key"

[ocpp]
AuthorizationKey = "%s"
HeartbeatInterval = 300

[ocpp201]
"SecurityCtrlr.BasicAuthPassword" = "%s"

[board.meter]
api_token = "%s"
port = "/dev/ttyUSB0"
''' % (CSMS_PASSWORD, AUTH_KEY, BASIC_AUTH, BOARD_TOKEN)
    out = hidden_config_text(text)
    for secret in (CSMS_PASSWORD, AUTH_KEY, BASIC_AUTH, BOARD_TOKEN, "an-old-password-1"):
        assert secret not in out
    lines = out.splitlines()
    assert lines[0] == "# the charger in the garage"
    assert 'id = "CP-D"   # as the backend knows it' in lines
    assert 'password = "<hidden>"' in lines and 'AuthorizationKey = "<hidden>"' in lines
    assert '"SecurityCtrlr.BasicAuthPassword" = "<hidden>"' in lines and 'api_token = "<hidden>"' in lines
    assert 'password = ""' in lines  # none set: nothing to hide, and worth knowing
    assert 'key_file = "page.key"' in lines and "HeartbeatInterval = 300" in lines and "# <hidden>" in lines


# ---------------------------------------------------------------------------- the archive of a running agent

CONFIG_TEXT = '''# the charger in the garage
[station]
id = "CP001"
data_dir = "data"

[csms]
url = "%%s"
password = "%s"  # from the backend's portal

[status_page]
enabled = false
password = "%s"

# password = "%s" (the old one)

[ocpp]
WebSocketPingInterval = 0
''' % (CSMS_PASSWORD, PAGE_PASSWORD, BOARD_TOKEN)


class FileHarness(AgentHarness):
    """The agent built from a configuration file on disk, its traffic written as ``run`` does."""

    def make_config(self):
        from agent.app.config import load_config

        path = self.tmp_path / "agent.toml"
        path.write_text(CONFIG_TEXT % (self.cs_server.url if self.cs_server._server else self.csms_url))
        path.chmod(0o600)
        return load_config(str(path))

    async def start_agent(self):
        from agent.app.runner import Agent

        config = self.make_config()
        self.traffic_file = open_traffic_file(config, clock=self.clock)
        self.agent = Agent(config, clock=self.clock, traffic_log=self.traffic_file.record)
        await self.agent.start()
        return self.agent

    async def __aexit__(self, *exc) -> None:
        try:
            await super().__aexit__(*exc)
        finally:
            self.traffic_file.close()


async def test_the_archive_holds_the_facts_and_no_secret(tmp_path):
    async with FileHarness(tmp_path) as h:
        data_dir = h.agent.config.data_dir
        # an accident: a secret in a log line; and a Python traceback
        with open(os.path.join(data_dir, "logs", "agent.log"), "w") as f:
            f.write("%s INFO agent: connecting with %s\n%s ERROR agent: boom\nTraceback (most recent call last):\n"
                    "  ValueError: x\n" % (stamp(T0), CSMS_PASSWORD, stamp(T0 + 1)))
        await until(lambda: h.agent.client.online)
        path = os.path.join(str(tmp_path), "archive.zip")
        await h.agent.diagnostics.write(path, None, None)
        with open(path, "rb") as f:
            raw = f.read()
    got = members(path)
    assert sorted(got) == ["README.txt", "config/agent.toml", "doctor.txt", "logs/agent.log",
                           "logs/ocpp-traffic.log", "status.json"]
    for secret in (CSMS_PASSWORD, PAGE_PASSWORD, BOARD_TOKEN):
        assert secret.encode() not in raw
        for name, text in got.items():
            assert secret not in text, name
    assert "connecting with %s" % HIDDEN in got["logs/agent.log"] and "ValueError: x" in got["logs/agent.log"]
    assert '"BootNotification"' in got["logs/ocpp-traffic.log"]
    assert got["config/agent.toml"].startswith("# the charger in the garage\n[station]\nid = \"CP001\"\n")
    assert 'password = "<hidden>"' in got["config/agent.toml"]
    status = json.loads(got["status.json"])
    assert status["hardware"]["connectors"][0]["status"] == "available"
    assert status["connection"]["online"] is True and status["connection"]["password_set"] is True
    assert status["journal"]["healthy"] is True and status["journal"]["queued_messages"] == 0
    assert status["versions"]["running"] and status["versions"]["python"]
    doctor = got["doctor.txt"]
    assert "csms tcp" in doctor and "csms connection" in doctor and "file modes" in doctor
    assert "csms websocket" not in doctor  # no second connection with the station's identity
    assert "evse" not in doctor and "meter" not in doctor  # no device probed
    assert "logs/agent.log" in got["README.txt"]


async def test_secret_values_include_what_the_central_system_set(tmp_path):
    async with FileHarness(tmp_path) as h:
        m = h.mark()
        got = await h.cs.call("ChangeConfiguration", key="AuthorizationKey", value=AUTH_KEY)
        assert got["status"] == "Accepted"
        await h.cs.wait_for("BootNotification", start_index=m)  # reconnected with the new key
        assert AUTH_KEY in secret_values(h.agent.config, h.agent.endpoint)
        path = os.path.join(str(tmp_path), "archive.zip")
        await h.agent.diagnostics.write(path, None, None)
    got = members(path)
    assert '"value":"(hidden)"' in got["logs/ocpp-traffic.log"]
    for text in got.values():
        assert AUTH_KEY not in text and CSMS_PASSWORD not in text


# ---------------------------------------------------------------------------- window and size

def write_log(path, times, text="line", pad: int = 0) -> None:
    with open(path, "w") as f:
        for n, t in enumerate(times):
            f.write("%s INFO agent: %s %d%s\n" % (stamp(t), text, n, "." * pad))


def test_the_window_selects_lines_across_rotated_files(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    write_log(logs / "agent.log.1", [T0 + 60 * n for n in range(5)], "old")
    with open(logs / "agent.log", "w") as f:
        f.write("%s ERROR agent: failed\nTraceback (most recent call last):\n  ValueError: x\n" % stamp(T0 + 330))
        f.write("%s INFO agent: late\n" % stamp(T0 + 900))
    write_log(logs / "ocpp-traffic.log", [T0 + 60 * n for n in range(10)], "frame")
    path = str(tmp_path / "a.zip")
    summary = build_archive(path, [("status.json", "{}")], logs_directory=str(logs), start=T0 + 120,
                            stop=T0 + 400, made_at=T0 + 1000, station_id="CP-D")
    got = members(path)
    assert [line.split(": ")[1] for line in got["logs/agent.log.1"].splitlines()] == ["old 2", "old 3", "old 4"]
    assert got["logs/agent.log"].splitlines()[1:] == ["Traceback (most recent call last):", "  ValueError: x"]
    assert [line.split(": ")[1] for line in got["logs/ocpp-traffic.log"].splitlines()] == [
        "frame %d" % n for n in range(2, 7)]
    assert summary["window"] == ["2026-12-07T14:02:00Z", "2026-12-07T14:06:40Z"]
    assert "Time window: 2026-12-07T14:02:00Z to 2026-12-07T14:06:40Z" in got["README.txt"]


def test_the_size_bound_cuts_the_oldest_lines_first(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    for name, start in (("agent.log.3", 0), ("agent.log.2", 100), ("agent.log.1", 200), ("agent.log", 300)):
        write_log(logs / name, [T0 + start + n for n in range(100)], name, pad=60)  # ~10 KB each
    write_log(logs / "ocpp-traffic.log", [T0 + n for n in range(20)], "frame")  # small: kept whole
    max_bytes = README_RESERVE + 2 + 25_000
    path = str(tmp_path / "a.zip")
    summary = build_archive(path, [("status.json", "{}")], logs_directory=str(logs), max_bytes=max_bytes,
                            made_at=T0)
    got = members(path)
    assert sum(len(text.encode()) for name, text in got.items() if name != "README.txt") <= max_bytes - README_RESERVE
    assert len(got["logs/ocpp-traffic.log"].splitlines()) == 20
    assert "logs/agent.log.3" not in got  # the oldest file: left out, not even read
    assert len(got["logs/agent.log"].splitlines()) == len(got["logs/agent.log.1"].splitlines()) == 100
    kept_old = got["logs/agent.log.2"].splitlines()  # the oldest kept: its newest lines only
    assert 0 < len(kept_old) < 100 and kept_old[-1].split(": ")[1].startswith("agent.log.2 99")
    facts = summary["logs"]["agent.log"]
    assert facts["lines_cut"] > 0 and facts["older_files_left_out"] >= 1
    assert "left out for size" in got["README.txt"]


def test_shares_are_fair():
    assert shares([100, 100], 1000) == [100, 100]
    assert shares([10, 1000], 200) == [10, 190]
    assert shares([1000, 1000], 200) == [100, 100]
    assert shares([0, 0], 0) == [0, 0]


def test_a_canceled_build_leaves_no_file(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    guard = _Guard()
    guard.cancel()
    path = str(tmp_path / "a.zip")
    build_archive(path, [("status.json", "{}")], logs_directory=str(logs), made_at=T0, guard=guard)
    assert os.listdir(tmp_path) == ["logs"]


async def test_a_failing_build_is_an_upload_failure(tmp_path):
    from agent.security.events import SecurityLog
    from agent.transfer.logs import LogService

    clock = VirtualClock()
    service = LogService(SecurityLog(str(tmp_path / "security"), clock), clock, str(tmp_path / "uploads"))
    uploads = []

    async def upload(path, location, filename):
        uploads.append(filename)

    async def broken(path, start, stop):
        raise OSError(28, "No space left on device")

    service._upload = upload
    service.add_source("diagnostics", "diagnostics", write=broken, extension="zip")
    told = []

    async def notify(word, request_id):
        told.append(word)

    answer = service.request("diagnostics", "http://h/", 1, notify=notify, retries=3)
    assert answer.status == "accepted" and answer.filename.endswith(".zip")
    service.start(1)
    await until(lambda: service.status() == ("idle", None))
    assert told == ["uploading", "upload_failure"] and uploads == []
    assert os.listdir(tmp_path / "uploads") == []
