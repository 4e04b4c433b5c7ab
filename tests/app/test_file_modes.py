"""Secrets others can read (agent/app/file_modes.py): the warnings at the agent's
start and the doctor's row, for the configuration file, data_dir's files, its
private keys and data_dir itself."""

import logging
import os

from agent.app.config import load_config
from agent.app.doctor import OK, WARN, check_file_modes
from agent.app.file_modes import file_mode_findings, warn_about_file_modes
from tests.app.test_status_page import start_rig


def write_config(tmp_path, secret: bool) -> str:
    path = tmp_path / "agent.toml"
    path.write_text('[station]\nid = "CP001"\ndata_dir = "data"\n\n[csms]\nurl = "ws://127.0.0.1:9/ocpp"\n%s'
                    % ('password = "s3cret-password"\n' if secret else ""))
    return str(path)


def test_a_config_file_with_a_password_must_be_0600(tmp_path, caplog):
    path = write_config(tmp_path, secret=True)
    cfg = load_config(path)
    os.chmod(path, 0o644)
    findings = warn_about_file_modes(cfg)
    assert findings == ["%s holds a password and is readable by group and others (mode 0644); fix: chmod 600 %s"
                        % (path, path)]
    assert "chmod 600 %s" % path in caplog.text and "s3cret" not in caplog.text
    os.chmod(path, 0o640)
    assert "readable by group (mode 0640)" in file_mode_findings(cfg)[0]
    os.chmod(path, 0o600)
    assert file_mode_findings(cfg) == []


def test_a_config_file_without_secrets_may_be_read_by_anyone(tmp_path):
    path = write_config(tmp_path, secret=False)
    os.chmod(path, 0o644)
    assert file_mode_findings(load_config(path)) == []


def test_data_files_keys_and_the_data_directory(tmp_path):
    cfg = load_config(write_config(tmp_path, secret=False))
    data = cfg.data_dir
    endpoint = os.path.join(data, "endpoint.json")
    with open(endpoint, "w") as f:
        f.write("{}")
    os.chmod(endpoint, 0o644)
    os.makedirs(os.path.join(data, "security", "identity"))
    key = os.path.join(data, "security", "identity", "ab12.key")
    with open(key, "w") as f:
        f.write("-----BEGIN PRIVATE KEY-----\n")
    os.chmod(key, 0o604)
    os.chmod(os.path.join(data, "security"), 0o755)
    os.chmod(data, 0o777)
    findings = file_mode_findings(cfg)
    assert findings == [
        "%s is readable by group and others (mode 0644); fix: chmod 600 %s" % (endpoint, endpoint),
        "directory %s is readable by group and others (mode 0755); fix: chmod 700 %s"
        % ((os.path.join(data, "security"),) * 2),
        "private key %s is readable by others (mode 0604); fix: chmod 600 %s" % (key, key),
        "data directory %s is writable by group and others (mode 0777); fix: chmod go-w %s" % (data, data),
    ]
    row = check_file_modes(cfg)
    assert row.result == WARN and row.details == "; ".join(findings)
    for path, mode in ((endpoint, 0o600), (key, 0o600), (os.path.join(data, "security"), 0o700), (data, 0o755)):
        os.chmod(path, mode)
    row = check_file_modes(cfg)
    assert row.result == OK and row.details == "secrets readable by the owner only"


async def test_the_agent_warns_at_start(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="agent.app.file_modes")
    rig = None
    try:
        # The page's password makes the configuration file secret; written by an editor: 0644.
        rig, _cs1, _cs2 = await start_rig(tmp_path, extra_page='password = "page-secret"')
        os.chmod(rig.path, 0o644)
        caplog.clear()
        await rig.restart()
        assert caplog.messages == ["file mode: %s holds a password and is readable by group and others "
                                   "(mode 0644); fix: chmod 600 %s" % (rig.path, rig.path)]
        assert rig.agent.status_page is not None  # the agent runs all the same
    finally:
        if rig is not None:
            await rig.close()
