"""``ocpp-agent log security``: the real command line in a subprocess, on a temporary
configuration whose data_dir holds a security log written here."""

import json
import os
import subprocess
import sys

from agent.security import events as ev
from agent.security.context import SecurityContext
from hal.runtime.clock import VirtualClock

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLI = [sys.executable, "-m", "agent.app.cli"]
T0 = 1_796_652_000.0  # 2026-12-07T14:00:00Z


def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + list(args), cwd=ROOT, capture_output=True, text=True, timeout=20)


def setup(tmp_path):
    data_dir = tmp_path / "data"
    config = tmp_path / "agent.toml"
    config.write_text('[station]\nid = "CP-LOG"\ndata_dir = "data"\n\n[csms]\nurl = "ws://127.0.0.1:9/ocpp"\n')
    log = SecurityContext(str(data_dir), VirtualClock(start=T0)).log
    return str(config), log


def test_lists_events_oldest_first_with_2_0_1_names(tmp_path):
    config, log = setup(tmp_path)
    log.record(ev.STARTUP)
    log.record(ev.INVALID_CSMS_CERTIFICATE, "unknown issuer", at=T0 + 60)
    log.record("vendor_thing", at=T0 + 120)
    result = run_cli("log", "security", "--config", config)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "2026-12-07T14:00:00Z  #1  StartupOfTheDevice",
        "2026-12-07T14:01:00Z  #2  InvalidCsmsCertificate  unknown issuer",
        "2026-12-07T14:02:00Z  #3  vendor_thing",
    ]
    since = run_cli("log", "security", "--config", config, "--since", "2026-12-07T14:01:00Z", "--json")
    assert since.returncode == 0, since.stderr
    rows = [json.loads(line) for line in since.stdout.splitlines()]
    assert [r["seq"] for r in rows] == [2, 3]
    assert rows[0] == {"seq": 2, "time": "2026-12-07T14:01:00Z", "at": T0 + 60, "kind": ev.INVALID_CSMS_CERTIFICATE,
                       "type": "InvalidCsmsCertificate", "tech_info": "unknown issuer"}


def test_clear_removes_the_events_and_records_the_clearing(tmp_path):
    config, log = setup(tmp_path)
    for _ in range(3):
        log.record(ev.RESET)
    result = run_cli("log", "security", "--config", config, "--clear")
    assert result.returncode == 0, result.stderr
    assert "3 event(s) removed" in result.stdout and "#4  SecurityLogWasCleared" in result.stdout
    assert [(e.seq, e.kind) for e in log.events()] == [(4, ev.SECURITY_LOG_CLEARED)]
    assert log.record(ev.STARTUP).seq == 5  # a running agent carries on after the clearing


def test_an_empty_data_dir_lists_nothing_and_creates_nothing(tmp_path):
    config, log = setup(tmp_path)
    result = run_cli("log", "security", "--config", config)
    assert (result.returncode, result.stdout) == (0, "")
    assert not os.path.exists(log.directory)


def test_bad_since_and_bad_config_exit_2(tmp_path):
    config, _ = setup(tmp_path)
    result = run_cli("log", "security", "--config", config, "--since", "yesterday")
    assert result.returncode == 2 and "--since" in result.stderr
    result = run_cli("log", "security", "--config", str(tmp_path / "missing.toml"))
    assert result.returncode == 2 and result.stderr.startswith("error:")
