"""``ocpp-agent config import``: a whole TOML file of keys in one validated, atomic edit — how
the Raspberry Pi image's first boot applies the owner's ``ocpp-agent.toml`` from the boot
partition to the package's ``/etc/ocpp-agent/agent.toml`` (which has no station id or URL yet)."""

import os
import stat
import subprocess

from agent.app.config import load_config
from tests.app.test_config_and_cli import CLI, ROOT, run_cli_async, toml_str, write_config
from tests.harness import AgentHarness

PACKAGE_FILE = os.path.join(ROOT, "tools", "deb", "agent.toml")
OWNER_FILE = """\
[station]
id = "CP-IMPORT-1"
board = "sim"

[csms]
url = "ws://10.0.2.2:9000/ocpp"
password = "s3cret-on-the-card"

[limits]
max_current_a = 20
"""


def packaged_config(tmp_path) -> str:
    """The Debian package's commented file, its data_dir moved into tmp_path."""
    with open(PACKAGE_FILE) as f:
        text = f.read().replace('"/var/lib/ocpp-agent"', toml_str(str(tmp_path / "data")))
    path = tmp_path / "agent.toml"
    path.write_text(text)
    os.chmod(path, 0o640)
    return str(path)


def run_import(config: str, text: str) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + ["config", "import", "--config", config, "-"], cwd=ROOT, input=text,
                          capture_output=True, text=True, timeout=20)


def test_import_completes_the_packaged_file_keeps_its_comments_and_hides_the_secret(tmp_path):
    path = packaged_config(tmp_path)
    done = run_import(path, OWNER_FILE)
    assert done.returncode == 0, done.stderr
    assert "s3cret" not in done.stdout + done.stderr
    assert "csms.password (hidden)" in done.stdout and "station.id" in done.stdout
    cfg = load_config(path, check_data_dir=False)
    assert (cfg.station["id"], cfg.csms["url"], cfg.csms["password"]) == (
        "CP-IMPORT-1", "ws://10.0.2.2:9000/ocpp", "s3cret-on-the-card")
    assert cfg.limits["max_current_a"] == 20
    text = open(path).read()
    assert "# The identity the central system knows this charger by" in text  # the package's comments stay
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600  # it holds a password now


def test_a_bad_file_changes_nothing_and_names_the_key(tmp_path):
    path = packaged_config(tmp_path)
    before = open(path).read()
    cases = {
        "[wifi]\nssid = \"garage\"\n": "wifi.ssid: unknown section",
        "[station]\nid = \"CP\"\n[csms]\nurl = \"http://example.invalid/\"\n": "csms.url",
        "[station]\nid = \"CP\"\n": "csms.url: required key is missing",
        "[station\nid = 1\n": "not valid TOML",
        "[csms]\nnot_a_key = 1\n": "csms.not_a_key: unknown key",
        "": "no keys to import",
    }
    for text, problem in cases.items():
        done = run_import(path, text)
        assert done.returncode == 2, (text, done.stdout)
        assert problem in done.stderr, (text, done.stderr)
        assert open(path).read() == before


def test_a_new_server_without_a_password_does_not_inherit_the_old_one(tmp_path):
    path = write_config(tmp_path / "agent.toml",
                        {"id": toml_str("CP-1"), "data_dir": toml_str(str(tmp_path / "data"))},
                        {"url": toml_str("ws://old.example.invalid/ocpp"), "password": toml_str("old-secret")})
    done = run_import(path, '[csms]\nurl = "ws://new.example.invalid/ocpp"\n')
    assert done.returncode == 0, done.stderr
    assert "is not sent to another server" in done.stdout
    cfg = load_config(path, check_data_dir=False)
    assert (cfg.csms["url"], cfg.csms["password"]) == ("ws://new.example.invalid/ocpp", "")


async def test_import_is_refused_while_the_agent_runs(tmp_path):
    async with AgentHarness(tmp_path, station_id="CP-RUN") as h:
        path = write_config(tmp_path / "agent.toml",
                            {"id": toml_str("CP-RUN"), "data_dir": toml_str(str(tmp_path / "data"))},
                            {"url": toml_str(h.cs_server.url)})
        await h.wait_status(1, "Available")
        before = open(path).read()
        source = tmp_path / "owner.toml"
        source.write_text(OWNER_FILE)
        code, out, err = await run_cli_async("config", "import", "--config", path, str(source))
        assert code == 2 and "the agent is running" in err
        assert open(path).read() == before


def test_sections_another_program_reads_can_be_ignored(tmp_path):
    path = packaged_config(tmp_path)
    done = subprocess.run(CLI + ["config", "import", "--config", path, "--ignore-section", "wifi", "-"], cwd=ROOT,
                          input=OWNER_FILE + '\n[wifi]\nssid = "garage"\n', capture_output=True, text=True,
                          timeout=20)
    assert done.returncode == 0, done.stderr
    assert load_config(path, check_data_dir=False).station["id"] == "CP-IMPORT-1"
