"""The configuration file, the ``ocpp-agent`` command line and the transport
options (TLS with ``ca_file``, HTTP Basic auth, the station id in the URL).

Bad configurations are run through the real CLI in a subprocess; the ``sim``
subcommand talks to an agent running in this process (AgentHarness) over its
control socket; TLS and Basic auth run against tools/csms.py on loopback.
"""

import asyncio
import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys

import pytest

from agent.app.config import load_config
from tests.harness import AgentHarness, tls_proxy_for, until
from tools.csms import TestCentralSystem

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLI = [sys.executable, "-m", "agent.app.cli"]


def toml_str(value: str) -> str:
    return json.dumps(value)  # a TOML basic string for what we write here


def write_config(path, station: dict, csms: dict, extra: str = "") -> str:
    lines = ["[station]"] + ["%s = %s" % (k, v) for k, v in station.items()]
    lines += ["", "[csms]"] + ["%s = %s" % (k, v) for k, v in csms.items()]
    path.write_text("\n".join(lines) + "\n" + extra)
    return str(path)


def run_cli(*args, timeout_s: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + list(args), cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)


async def run_cli_async(*args, timeout_s: float = 10) -> tuple[int, str, str]:
    """The CLI in a subprocess while this event loop keeps the in-process agent running."""
    proc = await asyncio.create_subprocess_exec(*CLI, *args, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode, out.decode(), err.decode()


# ---------------------------------------------------------------------------- bad configurations

GOOD_STATION = {"id": toml_str("CP-CLI-1")}
GOOD_CSMS = {"url": toml_str("ws://127.0.0.1:9/ocpp")}


def _bad_configs(tmp_path) -> dict:
    """name -> (station table, csms table, extra TOML, key named in the message, words of the problem)"""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    return {
        "unknown key": (dict(GOOD_STATION, colour=toml_str("red")), GOOD_CSMS, "",
                        "station.colour", "unknown key"),
        "unknown section": (GOOD_STATION, GOOD_CSMS, "\n[extras]\nx = 1\n", "extras", "unknown section"),
        "wrong type": (GOOD_STATION, dict(GOOD_CSMS, response_timeout_s=toml_str("fast")), "",
                       "csms.response_timeout_s", "must be a number"),
        "wrong type bool for string": (dict(GOOD_STATION, board="true"), GOOD_CSMS, "",
                                       "station.board", "must be a string"),
        "bad url scheme": (GOOD_STATION, {"url": toml_str("http://127.0.0.1:9/ocpp")}, "",
                           "csms.url", "must start with ws:// or wss://"),
        "url without host": (GOOD_STATION, {"url": toml_str("ws:///ocpp")}, "", "csms.url", "has no host"),
        "missing station.id": ({"vendor": toml_str("Acme")}, GOOD_CSMS, "", "station.id", "required key is missing"),
        "missing csms.url": (GOOD_STATION, {"password": toml_str("x")}, "", "csms.url", "required key is missing"),
        "station id with a trailing space": ({"id": toml_str("CP1 ")}, GOOD_CSMS, "", "station.id", "leading/trailing spaces"),
        "station id too long": ({"id": toml_str("C" * 49)}, GOOD_CSMS, "", "station.id", "longer than 48"),
        "colon in id with basic auth": ({"id": toml_str("CP:1")}, dict(GOOD_CSMS, password=toml_str("secret")), "",
                                        "station.id", "must not contain ':'"),
        "unwritable data_dir": (dict(GOOD_STATION, data_dir=toml_str(str(blocker / "data"))), GOOD_CSMS, "",
                                "station.data_dir", "cannot create directory"),
        "unknown board": (dict(GOOD_STATION, board=toml_str("no-such-board")), GOOD_CSMS, "",
                          "station.board", "unknown board 'no-such-board'"),
        "ca_file missing": (GOOD_STATION, {"url": toml_str("wss://127.0.0.1:9/ocpp"),
                                           "ca_file": toml_str(str(tmp_path / "nope.pem"))}, "",
                            "csms.ca_file", "no such file"),
        "negative timeout": (GOOD_STATION, dict(GOOD_CSMS, connect_timeout_s="-1"), "",
                             "csms.connect_timeout_s", "must be greater than 0"),
        "unknown ocpp key": (GOOD_STATION, GOOD_CSMS, "\n[ocpp]\nNoSuchKey = 1\n",
                             "ocpp.NoSuchKey", "unknown OCPP configuration key"),
        "bad ocpp value": (GOOD_STATION, GOOD_CSMS, "\n[ocpp]\nHeartbeatInterval = -5\n",
                           "ocpp.HeartbeatInterval", "invalid value -5: out of range"),
        "bad ocpp list value": (GOOD_STATION, GOOD_CSMS, '\n[ocpp]\nMeterValuesSampledData = ["Voltage", "Bogus"]\n',
                                "ocpp.MeterValuesSampledData", "unsupported item"),
    }


BAD_CONFIG_NAMES = ["unknown key", "unknown section", "wrong type", "wrong type bool for string",
                    "bad url scheme", "url without host", "missing station.id", "missing csms.url",
                    "station id with a trailing space", "station id too long", "colon in id with basic auth",
                    "unwritable data_dir", "unknown board", "ca_file missing", "negative timeout",
                    "unknown ocpp key", "bad ocpp value", "bad ocpp list value"]


# The [ocpp] table is checked once the board is built (it sets the number of connectors),
# so its errors may follow the board's INFO log lines; nothing else may be printed.
INFO_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ INFO ")


def assert_one_clear_message(result, config_path: str, key: str, problem: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if not INFO_LOG_LINE.match(line)]
    assert len(errors) == 1 and lines[-1] == errors[0], "expected one message, got:\n%s" % result.stderr
    if not key.startswith("ocpp") and "board" not in key:
        assert len(lines) == 1, "expected only the message, got:\n%s" % result.stderr
    message = errors[0]
    assert "Traceback" not in result.stderr
    assert message.startswith("error: ")
    assert config_path in message, message
    assert key in message, message
    assert problem in message, message


@pytest.mark.parametrize("name", BAD_CONFIG_NAMES)
def test_bad_config_exits_2_with_one_message_and_starts_nothing(tmp_path, name):
    station, csms, extra, key, problem = _bad_configs(tmp_path)[name]
    data_dir = tmp_path / "data"
    station = dict(station)
    station.setdefault("data_dir", toml_str(str(data_dir)))
    path = write_config(tmp_path / "agent.toml", station, csms, extra)
    result = run_cli("run", "--config", path)
    assert_one_clear_message(result, path, key, problem)
    # Nothing started: no control socket, no state written.
    if data_dir.exists():
        assert sorted(os.listdir(data_dir)) == [], os.listdir(data_dir)


def test_bad_config_names_match_the_cases(tmp_path):
    assert sorted(BAD_CONFIG_NAMES) == sorted(_bad_configs(tmp_path))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_data_dir_exits_2(tmp_path):
    data_dir = tmp_path / "ro"
    data_dir.mkdir()
    data_dir.chmod(0o500)
    try:
        path = write_config(tmp_path / "agent.toml", dict(GOOD_STATION, data_dir=toml_str(str(data_dir))),
                            GOOD_CSMS)
        result = run_cli("run", "--config", path)
        assert_one_clear_message(result, path, "station.data_dir", "not writable")
    finally:
        data_dir.chmod(0o700)


def test_missing_and_malformed_config_files_exit_2(tmp_path):
    missing = str(tmp_path / "missing.toml")
    result = run_cli("run", "--config", missing)
    assert result.returncode == 2 and result.stderr.strip() == "error: %s: no such file" % missing
    broken = tmp_path / "broken.toml"
    broken.write_text('[station]\nid = "CP1\n')
    result = run_cli("run", "--config", str(broken))
    assert result.returncode == 2
    assert result.stderr.startswith("error: %s: not valid TOML" % broken)
    assert len(result.stderr.strip().splitlines()) == 1


def test_valid_config_parses(tmp_path):
    """The control case for the bad ones: the same file without the mistake loads."""
    data_dir = tmp_path / "data"
    path = write_config(tmp_path / "agent.toml", dict(GOOD_STATION, data_dir=toml_str(str(data_dir))),
                        dict(GOOD_CSMS, password=toml_str("secret"), response_timeout_s="5"),
                        "\n[ocpp]\nHeartbeatInterval = 60\n")
    cfg = load_config(path)
    assert cfg.station["id"] == "CP-CLI-1" and cfg.csms["response_timeout_s"] == 5.0
    assert cfg.ocpp == {"HeartbeatInterval": 60}
    assert cfg.connect_url() == "ws://127.0.0.1:9/ocpp/CP-CLI-1"


# ---------------------------------------------------------------------------- ocpp-agent sim

STATUS_KEYS = {"id", "cp_state", "contactor_closed", "current_limit_a", "power_w", "energy_wh", "station_status"}


async def test_sim_cli_status_plug_swipe_against_a_running_agent(tmp_path):
    async with AgentHarness(tmp_path, station_id="CP-SIM") as h:
        path = write_config(tmp_path / "agent.toml",
                            {"id": toml_str("CP-SIM"), "data_dir": toml_str(str(tmp_path / "data"))},
                            {"url": toml_str(h.cs_server.url)})
        await h.wait_status(1, "Available")

        rc, out, err = await run_cli_async("sim", "--config", path, "status")
        assert rc == 0, err
        status = json.loads(out)
        assert len(status["connectors"]) == 1
        c = status["connectors"][0]
        assert STATUS_KEYS <= set(c)
        assert {k: c[k] for k in STATUS_KEYS - {"energy_wh"}} == {
            "id": 1, "cp_state": "A", "contactor_closed": False, "current_limit_a": 0.0, "power_w": 0.0,
            "station_status": "available"}

        m = h.mark()
        rc, out, err = await run_cli_async("sim", "--config", path, "plug", "1")
        assert rc == 0, err
        assert json.loads(out)["connectors"][0]["cp_state"] == "B"
        await h.wait_status(1, "Preparing", m)

        rc, out, err = await run_cli_async("sim", "--config", path, "swipe", "TAG-CLI")
        assert rc == 0, err
        assert await h.cs.wait_for("Authorize", start_index=m) == {"idTag": "TAG-CLI"}
        await h.wait_status(1, "Charging", m)
        await h.clock.advance(60)  # one minute at 3 × 32 A × 230 V

        rc, out, err = await run_cli_async("sim", "--config", path, "status")
        assert rc == 0, err
        status = json.loads(out)
        c = status["connectors"][0]
        assert {k: c[k] for k in STATUS_KEYS - {"energy_wh"}} == {
            "id": 1, "cp_state": "C", "contactor_closed": True, "current_limit_a": 32.0, "power_w": 22080.0,
            "station_status": "charging"}
        assert c["energy_wh"] == pytest.approx(22080.0 / 60, abs=1.0)
        assert isinstance(c["energy_wh"], float)

        # Bad arguments: the agent answers with an error, the CLI says so and exits 1.
        rc, out, err = await run_cli_async("sim", "--config", path, "plug", "7")
        assert rc == 1 and out == ""
        assert err.startswith("error: ") and "bad connector" in err and "7" in err
        rc, out, err = await run_cli_async("sim", "--config", path, "swipe")
        assert rc == 1 and "usage: swipe TAG" in err
        assert h.sim.status()["connectors"][0]["contactor_closed"] is True  # nothing changed


def test_sim_cli_without_a_running_agent(tmp_path):
    data_dir = tmp_path / "data"
    path = write_config(tmp_path / "agent.toml", dict(GOOD_STATION, data_dir=toml_str(str(data_dir))), GOOD_CSMS)
    result = run_cli("sim", "--config", path, "status")
    assert result.returncode != 0 and result.returncode != 2
    assert result.stdout == ""
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in result.stderr
    assert message.startswith("error: no agent running")
    assert str(data_dir) in message and "sim.sock" in message

    # A socket file left by a dead agent: the same clear message, not a hang or a traceback.
    data_dir.mkdir(exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(data_dir / "sim.sock"))
    sock.close()
    result = run_cli("sim", "--config", path, "plug", "1")
    assert result.returncode not in (0, 2) and result.stdout == ""
    assert result.stderr.startswith("error: no agent running") and "Traceback" not in result.stderr


def test_console_script_is_installed(tmp_path):
    script = shutil.which("ocpp-agent", path=os.path.dirname(sys.executable))
    if script is None:
        pytest.skip("ocpp-agent console script not installed in this environment")
    result = subprocess.run([script, "sim", "--config", str(tmp_path / "none.toml"), "status"],
                            capture_output=True, text=True, timeout=20)
    assert result.returncode == 2 and "none.toml: no such file" in result.stderr


# ---------------------------------------------------------------------------- TLS

async def test_tls_self_signed_server_fails_verification_by_default(tmp_path, caplog):
    cs = TestCentralSystem(quiet=True, protocols=("ocpp1.6",))
    async with tls_proxy_for(cs, tmp_path) as proxy:
        url = proxy.url
        async with AgentHarness(tmp_path, csms=cs, csms_extra={"url": url}, wait_boot=False) as h:
            conn = h.agent.connection
            await until(lambda: conn.last_error, what="the connection attempt to fail")
            assert conn.last_error.startswith("TLS certificate verification failed"), conn.last_error
            await h.settle(0.1)
            assert not conn.connected and conn.connect_count == 0
            assert cs.stations == {} and proxy.handshakes == 0
            assert any(r.levelname == "WARNING" and "TLS certificate verification failed" in r.getMessage()
                       and url in r.getMessage() for r in caplog.records), caplog.text


async def test_tls_with_ca_file_connects_and_runs_a_session(tmp_path):
    cs = TestCentralSystem(quiet=True, protocols=("ocpp1.6",))
    async with tls_proxy_for(cs, tmp_path) as proxy:
        url = proxy.url
        async with AgentHarness(tmp_path, csms=cs, csms_extra={"url": url, "ca_file": proxy.cert}) as h:
            assert h.agent.connection.connected and proxy.handshakes == 1
            assert h.agent.config.connect_url() == url + "/CP001"
            await h.wait_status(1, "Available")
            reply = await h.cs.call("GetConfiguration", key=["NumberOfConnectors"])
            assert reply["configurationKey"][0]["value"] == "1"


# ---------------------------------------------------------------------------- HTTP Basic auth

async def test_basic_auth_password_and_url_encoded_station_id(tmp_path):
    station_id = "Site/CP#1?ä%"
    password = "pw-0123456789abcdef"
    cs = TestCentralSystem(quiet=True, protocols=("ocpp1.6",), password=password)
    async with AgentHarness(tmp_path, station_id=station_id, csms=cs, csms_extra={"password": password}) as h:
        expected = "Basic " + base64.b64encode(("%s:%s" % (station_id, password)).encode()).decode()
        assert h.cs.request_headers.get("Authorization") == expected
        # The id is one path segment, percent-encoded (OCPP-J 1.6 §3.1.1): the central
        # system found the whole id in the last segment.
        assert h.agent.config.connect_url() == cs.url + "/Site%2FCP%231%3F%C3%A4%25"
        assert list(cs.stations) == [station_id] and cs.rejections == []
        await h.wait_status(1, "Available")


@pytest.mark.parametrize("sent, reason", [("pw-WRONG-9876543210", "wrong credentials"),
                                          ("", "missing Basic credentials")])
async def test_basic_auth_wrong_or_missing_password_is_refused_and_not_logged(tmp_path, caplog, sent, reason):
    password = "pw-right-0123456789"
    cs = TestCentralSystem(quiet=True, protocols=("ocpp1.6",), password=password)
    async with AgentHarness(tmp_path, csms=cs, csms_extra={"password": sent}, wait_boot=False) as h:
        conn = h.agent.connection
        await until(lambda: conn.last_error, what="the handshake to be refused")
        assert conn.last_error == "HTTP 401 from the central system (wrong password?)"
        await h.settle(0.1)
        assert not conn.connected and conn.connect_count == 0
        assert cs.rejections == [("CP001", reason)] and cs.stations == {}
        assert any("HTTP 401" in r.getMessage() for r in caplog.records), caplog.text
    if sent:
        assert sent not in caplog.text
    assert password not in caplog.text
