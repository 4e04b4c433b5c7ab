"""``csms.ocpp_version`` in the configuration file and where the owner sees the
version in use: ``ocpp-agent csms show`` (agent stopped and running),
``ocpp-agent config set`` and ``ocpp-agent doctor``."""

import asyncio
import json

import pytest

from agent.app.config import ConfigError, parse_config
from agent.app.doctor import FAIL, OK, probe_csms
from tests.app.test_config_and_cli import run_cli, run_cli_async
from tests.harness import AgentHarness, keys, until
from tests.link.test_version_negotiation import HandshakeOnly
from tools.csms import TestCentralSystem


def data(**csms) -> dict:
    return {"station": {"id": "CP001", "data_dir": "data"}, "csms": dict({"url": "ws://127.0.0.1:9/ocpp"}, **csms)}


def write(tmp_path, ocpp_version: str | None = None, url: str = "ws://127.0.0.1:9/ocpp") -> str:
    path = tmp_path / "agent.toml"
    path.write_text('[station]\nid = "CP001"\ndata_dir = "data"\n\n[csms]\nurl = "%s"\n%s' % (
        url, 'ocpp_version = "%s"\n' % ocpp_version if ocpp_version is not None else ""))
    return str(path)


def test_default_is_auto_and_either_version_can_be_pinned(tmp_path):
    assert parse_config(str(tmp_path / "a.toml"), data()).csms["ocpp_version"] == "auto"
    assert parse_config(str(tmp_path / "a.toml"), data(ocpp_version="1.6")).csms["ocpp_version"] == "1.6"
    assert parse_config(str(tmp_path / "a.toml"), data(ocpp_version="2.0.1")).csms["ocpp_version"] == "2.0.1"


POSSIBLE = '(possible values: "auto", "2.0.1", "1.6")'


@pytest.mark.parametrize("value, problem", [
    ("2.1", "OCPP 2.1 is not available yet " + POSSIBLE),
    ("1.5", "unknown OCPP version '1.5' " + POSSIBLE),
    ("ocpp1.6", "unknown OCPP version 'ocpp1.6' " + POSSIBLE),
])
def test_other_versions_are_a_config_error(tmp_path, value, problem):
    with pytest.raises(ConfigError) as e:
        parse_config(str(tmp_path / "a.toml"), data(ocpp_version=value))
    assert e.value.key == "csms.ocpp_version" and e.value.problem == problem


def test_run_with_2_1_exits_2_with_one_message(tmp_path):
    path = write(tmp_path, "2.1")
    result = run_cli("run", "--config", path)
    assert result.returncode == 2
    assert result.stderr.strip() == ('error: %s: csms.ocpp_version: OCPP 2.1 is not available yet ' % path
                                     + POSSIBLE)


def test_csms_show_and_config_set_with_the_agent_stopped(tmp_path):
    path = write(tmp_path, "1.6")
    shown = run_cli("csms", "show", "--config", path)
    assert shown.returncode == 0, shown.stderr
    assert "OCPP version:     not negotiated yet (csms.ocpp_version = 1.6: offers ocpp1.6)" in shown.stdout.splitlines()
    as_json = json.loads(run_cli("csms", "show", "--json", "--config", path).stdout)
    assert as_json["ocpp_version"] is None and as_json["subprotocols_offered"] == ["ocpp1.6"]
    assert as_json["ocpp_version_setting"] == "1.6"

    refused = run_cli("config", "set", "csms.ocpp_version", "2.1", "--config", path)
    assert refused.returncode == 2 and "csms.ocpp_version: OCPP 2.1 is not available yet" in refused.stderr
    pinned = run_cli("config", "set", "csms.ocpp_version", "2.0.1", "--config", path)
    assert pinned.returncode == 0, pinned.stderr
    shown = json.loads(run_cli("csms", "show", "--json", "--config", path).stdout)
    assert shown["subprotocols_offered"] == ["ocpp2.0.1"]
    done = run_cli("config", "set", "csms.ocpp_version", "auto", "--config", path)
    assert done.returncode == 0, done.stderr
    assert run_cli("config", "get", "csms.ocpp_version", "--config", path).stdout.strip() == "auto"


async def test_csms_show_of_a_running_agent_names_the_version_in_use(tmp_path):
    async with AgentHarness(tmp_path, ocpp=keys()) as h:
        await until(lambda: h.agent.client.online)
        path = write(tmp_path, url=h.cs_server.url)  # the harness's station id and data_dir
        code, out, err = await run_cli_async("csms", "show", "--config", path)
        assert code == 0, err
        assert "OCPP version:     1.6 (subprotocol ocpp1.6; csms.ocpp_version = auto: offers ocpp2.0.1, ocpp1.6)" in out
        page = h.agent.admin.csms_show()
        assert page["ocpp_version"] == "1.6"


async def test_doctor_offers_per_the_config_and_reports_the_selected_version(tmp_path):
    async with TestCentralSystem(quiet=True, protocols=("ocpp1.6",)) as cs:
        rows = await probe_csms(cs.url, "CP-DOC", ocpp_version="1.6")
        ws = rows[-1]
        assert ws.check == "csms websocket" and ws.result == OK
        assert ws.details == "handshake OK, OCPP 1.6 (subprotocol ocpp1.6) (no BootNotification sent)"
        assert cs.stations["CP-DOC"].request_headers["Sec-WebSocket-Protocol"] == "ocpp1.6"
    async with HandshakeOnly(answer=None) as server:
        rows = await probe_csms(server.url, "CP-DOC")
        ws = rows[-1]
        assert ws.result == FAIL and ws.details.startswith("handshake OK but the central system selected no "
                                                           "subprotocol")
        assert "offered: ocpp2.0.1, ocpp1.6" in ws.details and server.offers == ["ocpp2.0.1, ocpp1.6"]


async def test_the_status_page_shows_the_version_and_the_traffic_notes_it(tmp_path):
    from agent.app.status_page import StatusPage

    async with AgentHarness(tmp_path, ocpp=keys()) as h:
        await until(lambda: h.agent.client.online)
        page = StatusPage(h.agent, h.agent.admin, port=0)
        await page.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", page.port)
            writer.write(b"GET /api/status?html=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            reply = await reader.read()
            writer.close()
        finally:
            await page.close()
    status = json.loads(reply.partition(b"\r\n\r\n")[2])
    assert status["csms"]["ocpp_version"] == "1.6" and status["csms"]["subprotocol"] == "ocpp1.6"
    assert ('<span id="ocpp-version">1.6 (subprotocol ocpp1.6; csms.ocpp_version = auto: offers ocpp2.0.1, ocpp1.6)</span>'
            in status["html"])
    opened = [t for t in status["traffic"] if t["direction"] == "open"]
    assert [t["text"] for t in opened] == ["connection opened to %s/CP001: OCPP 1.6 (subprotocol ocpp1.6)"
                                           % h.csms_url]
    assert "<td>·</td><td><code>connection opened to" in status["html"]
