"""The image's boot-time configuration (tools/image/bootconfig.py) on folders standing for the
FAT and data partitions, with the agent's real CLI: what the owner writes on the card becomes the
agent's configuration, Wi-Fi and SSH files, and the card is left without secrets. The machine
side (machine id, growing the partition, starting services) runs in the QEMU boot proof
(tools/boot_image.py)."""

import hashlib
import os
import shutil
import stat
import sys

import pytest

from agent.app.config import load_config
from tools.image import bootconfig

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl owner@pc"
OWNER = """\
[station]
id = "CP-CARD-7"
board = "sim"

[csms]
url = "wss://csms.example.com/ocpp"
password = "card-secret-123"

[wifi]
country = "de"
ssid = "garage \\"north\\""
password = "wpa-pass-phrase"

[ssh]
authorized_keys = ["%s"]
""" % KEY


@pytest.fixture
def card(tmp_path):
    boot, data = tmp_path / "boot", tmp_path / "data"
    boot.mkdir()
    (data / "ocpp-agent").mkdir(parents=True)
    config = tmp_path / "agent.toml"
    with open(os.path.join(ROOT, "tools", "deb", "agent.toml")) as f:
        config.write_text(f.read().replace('"/var/lib/ocpp-agent"', '"%s"' % (tmp_path / "state")))
    lines = []
    run = bootconfig.BootConfig(str(boot), str(data), str(config), "%s -m agent.app.cli" % sys.executable,
                                system=False, say=lines.append)
    return boot, data, config, run, lines


def result(boot) -> str:
    return (boot / bootconfig.RESULT_FILE).read_text()


def test_the_owner_file_becomes_the_configuration_and_leaves_the_card(card):
    boot, data, config, run, lines = card
    (boot / bootconfig.OWNER_FILE).write_text(OWNER)
    assert run.run() == 0
    assert not (boot / bootconfig.OWNER_FILE).exists()
    cfg = load_config(str(config), check_data_dir=False)
    assert (cfg.station["id"], cfg.csms["url"], cfg.csms["password"]) == (
        "CP-CARD-7", "wss://csms.example.com/ocpp", "card-secret-123")
    assert stat.S_IMODE(os.stat(config).st_mode) == 0o600

    wifi = (data / bootconfig.WIFI_FILE).read_text()
    assert "country=DE" in wifi
    assert "ssid=%s" % 'garage "north"'.encode().hex() in wifi
    psk = hashlib.pbkdf2_hmac("sha1", b"wpa-pass-phrase", 'garage "north"'.encode(), 4096, 32).hex()
    assert "psk=%s" % psk in wifi and "wpa-pass-phrase" not in wifi
    assert (data / bootconfig.SSH_KEYS_FILE).read_text() == KEY + "\n"
    for path in (data / bootconfig.WIFI_FILE, data / bootconfig.SSH_KEYS_FILE):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600

    report = result(boot)
    assert "station.id" in report and "[wifi]" in report and "[ssh]" in report and "deleted" in report
    for secret in ("card-secret-123", "wpa-pass-phrase"):
        assert secret not in report and secret not in "\n".join(lines)


@pytest.mark.parametrize("change, problem", [
    (lambda t: t.replace('url = "wss://csms.example.com/ocpp"', 'url = "http://csms.example.com"'), "csms.url"),
    (lambda t: t.replace('country = "de"', 'country = "Germany"'), "wifi.country"),
    (lambda t: t.replace('"wpa-pass-phrase"', '"short"'), "wifi.password"),
    (lambda t: t.replace(KEY, "not a key"), "ssh.authorized_keys: key 1"),
    (lambda t: t.replace("[station]", "[station"), "not valid TOML"),
    (lambda t: t + "\n[limits]\nmax_current_a = \"lots\"\n", "limits.max_current_a"),
])
def test_a_file_with_a_problem_stays_on_the_card_with_the_reason_beside_it(card, change, problem):
    boot, data, config, run, lines = card
    before = config.read_text()
    (boot / bootconfig.OWNER_FILE).write_text(change(OWNER))
    assert run.run() == 1
    assert (boot / bootconfig.OWNER_FILE).exists()  # for the owner to fix
    report = result(boot)
    assert "NOT APPLIED" in report and problem in report, report
    assert "card-secret-123" not in report
    if problem in ("csms.url", "not valid TOML", "limits.max_current_a"):
        assert config.read_text() == before


def test_fixed_at_the_next_boot_and_nothing_to_do_without_a_file(card):
    boot, data, config, run, lines = card
    (boot / bootconfig.OWNER_FILE).write_text(OWNER.replace("wss://", "https://"))
    assert run.run() == 1
    (boot / bootconfig.OWNER_FILE).write_text(OWNER)
    assert run.run() == 0
    assert load_config(str(config), check_data_dir=False).station["id"] == "CP-CARD-7"
    applied = result(boot)
    assert run.run() == 0  # later boots: nothing on the card, nothing changes
    assert result(boot) == applied


def test_an_empty_key_list_turns_ssh_off_and_an_open_network_has_no_psk(card):
    boot, data, config, run, lines = card
    (boot / bootconfig.OWNER_FILE).write_text('[ssh]\nauthorized_keys = []\n[wifi]\ncountry = "NL"\nssid = "cafe"\n')
    assert run.run() == 0
    assert (data / bootconfig.SSH_KEYS_FILE).read_text() == ""
    wifi = (data / bootconfig.WIFI_FILE).read_text()
    assert "key_mgmt=NONE" in wifi and "psk=" not in wifi


def test_the_script_needs_only_the_standard_library():
    """It runs with the image's system python3, before and apart from the agent's venv."""
    with open(bootconfig.__file__) as f:
        source = f.read()
    imported = {line.split()[1].split(".")[0] for line in source.splitlines()
                if line.startswith(("import ", "from "))}
    assert imported <= set(sys.stdlib_module_names), imported - set(sys.stdlib_module_names)
    assert shutil.which("python3")
