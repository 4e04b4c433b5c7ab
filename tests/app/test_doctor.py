"""``ocpp-agent doctor``: the real probes against simulated devices (the Modbus meter
simulator over TCP and over a pty pair, the SimpleEVSE simulator, the PN532
simulator, a fake GPIO chip) and against tools/csms.py (401, accepted, refused,
a TLS certificate that does not verify). Assertions are on the table's rows."""

import os
import sys

import pytest

from agent.app.config import parse_config
from agent.app.doctor import FAIL, OK, SKIP, diagnose, format_table
from hal.gpio_fake import FakeGpiod
from tests.harness import tls_proxy_for
from tests.app.test_config_and_cli import run_cli_async
from tools.csms import TestCentralSystem
from tools.modbus_meter_sim import ModbusMeterSim
from tools.pn532_sim import Pn532Sim
from tools.simpleevse_sim import SimpleEvseSim

STATION = "CP-DOC-1"


def config(tmp_path, url: str, board: dict | None = None, password: str = "", board_name: str = "sim"):
    data = {"station": {"id": STATION, "board": board_name, "data_dir": str(tmp_path / "data")},
            "csms": {"url": url}, "board": board or {}}
    if password:
        data["csms"]["password"] = password
    return parse_config(str(tmp_path / "agent.toml"), data, check_data_dir=False)


async def diagnose_board(tmp_path, closed_port: int, board: dict) -> list:
    """The doctor's rows for ``board``, with nothing listening at the central system's port."""
    return await diagnose(config(tmp_path, "ws://127.0.0.1:%d" % closed_port, board), timeout_s=0.3)


def row(rows, check: str):
    found = [r for r in rows if r.check == check]
    assert len(found) == 1, (check, rows)
    return found[0]


def write_toml(path, url: str, extra: str) -> str:
    path.write_text('[station]\nid = "%s"\ndata_dir = "%s"\n\n[csms]\nurl = "%s"\n%s'
                    % (STATION, path.parent / "data", url, extra))
    return str(path)


@pytest.fixture
def closed_port():
    """A TCP port nobody listens on."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


async def test_meter_over_tcp_and_a_central_system_that_answers_401(tmp_path):
    sim = ModbusMeterSim("sdm630", device_id=1, energy_wh=1_234_567.0)
    sim.set_load(current_a=16.0)
    port = await sim.start_tcp()
    cs = TestCentralSystem(quiet=True, protocols=("ocpp1.6",), password="right")
    await cs.start()
    try:
        extra = ('password = "wrong"\n\n[board.meter]\ndriver = "sdm630"\ntransport = "tcp"\nhost = "127.0.0.1"\n'
                 'tcp_port = %d\n' % port)
        path = write_toml(tmp_path / "agent.toml", cs.url, extra)
        os.chmod(path, 0o644)  # as an editor leaves it: a password others can read, one warning
        rc, out, err = await run_cli_async("doctor", "--config", path)
        assert rc == 1, (out, err)
        lines = out.splitlines()
        assert lines[0] == "ocpp-agent doctor: %s (board sim, station %s)" % (path, STATION)
        assert lines[2].split() == ["CHECK", "WHERE", "RESULT", "DETAILS"]
        meter = next(line for line in lines if line.startswith("meter sdm630"))
        assert "tcp://127.0.0.1:%d id 1" % port in meter and "  OK  " in meter
        assert "1234.5" in meter and "kWh" in meter and "11040 W" in meter
        assert "230.0/230.0/230.0 V" in meter and "16.0/16.0/16.0 A" in meter and "50.00 Hz" in meter
        ws = next(line for line in lines if line.startswith("csms websocket"))
        assert "FAIL" in ws and "HTTP 401 Unauthorized" in ws and "csms.password" in ws
        assert "right" not in out and "wrong" not in out  # never a password in the output
        modes = next(line for line in lines if line.startswith("file modes"))
        assert "WARN" in modes and "chmod 600 %s" % path in modes
        assert lines[-1] == "1 of 6 checks failed, 1 warnings."
        assert cs.rejections == [(STATION, "wrong credentials")]
    finally:
        await cs.stop()
        await sim.stop()


async def test_meter_over_rtu_on_a_pty_and_an_accepting_central_system(tmp_path):
    sim = ModbusMeterSim("orno_we516", energy_wh=500.0)  # an 8E1 meter; the pty runs 8N1
    sim.set_load(power_w=3680.0)
    link = await sim.start_pty(baudrate=9600)
    cs = TestCentralSystem(quiet=True, protocols=("ocpp1.6",), password="pw-1")
    await cs.start()
    try:
        board = {"meter": {"driver": "orno_we516", "port": link.a_path, "parity": "N"}}
        rows = await diagnose(config(tmp_path, cs.url, board, password="pw-1"), timeout_s=0.5)
        meter = row(rows, "meter orno_we516")
        assert meter.result == OK and meter.where == "%s 9600 8N1 id 1" % link.a_path
        assert "0.500 kWh" in meter.details and "3680 W" in meter.details
        ws = row(rows, "csms websocket")
        assert ws.result == OK and ws.where == cs.url + "/" + STATION
        assert ws.details == "handshake OK, OCPP 1.6 (subprotocol ocpp1.6), Basic auth (no BootNotification sent)"
        assert row(rows, "csms tcp").result == OK and row(rows, "csms dns").result == OK
        assert not any(r.check == "csms tls" for r in rows)  # ws://: no TLS step
        handle = cs.stations.get(STATION)
        assert handle is None or not handle.messages  # nothing but the handshake
    finally:
        await cs.stop()
        await sim.stop()


async def test_missing_port_and_a_refused_central_system(tmp_path, closed_port):
    board = {"meter": {"driver": "sdm630", "port": str(tmp_path / "ttyUSB9")},
             "reader": {"driver": "pn532", "port": str(tmp_path / "ttyAMA9")}}
    rows = await diagnose(config(tmp_path, "ws://127.0.0.1:%d/ocpp" % closed_port, board), timeout_s=0.3)
    meter = row(rows, "meter sdm630")
    assert meter.result == FAIL and "ttyUSB9: port does not exist" in meter.details
    reader = row(rows, "reader pn532")
    assert reader.result == FAIL and "ttyAMA9: port does not exist" in reader.details
    tcp = row(rows, "csms tcp")
    assert tcp.result == FAIL and "connection refused: nothing listens on port %d" % closed_port in tcp.details
    assert row(rows, "csms websocket").result == SKIP
    assert "checks failed" in format_table(rows)


async def test_wrong_device_id_is_silence_with_a_hint(tmp_path, closed_port):
    sim = ModbusMeterSim("sdm630", device_id=1)
    link = await sim.start_pty(baudrate=9600)
    try:
        board = {"meter": {"driver": "sdm630", "port": link.a_path, "device_id": 5}}
        rows = await diagnose_board(tmp_path, closed_port, board)
        meter = row(rows, "meter sdm630")
        assert meter.result == FAIL
        assert meter.details.startswith("no answer from device 5 at 9600 8N1")
        assert "answers with device_id = 1: set board.meter.device_id = 1?" in meter.details
    finally:
        await sim.stop()


async def test_wrong_device_id_over_modbus_tcp(tmp_path, closed_port):
    sim = ModbusMeterSim("em340", device_id=1)
    port = await sim.start_tcp()
    try:
        board = {"meter": {"driver": "em340", "transport": "tcp", "host": "127.0.0.1", "tcp_port": port,
                           "device_id": 3}}
        rows = await diagnose_board(tmp_path, closed_port, board)
        meter = row(rows, "meter em340")
        assert meter.result == FAIL and meter.details.startswith("no answer from unit 3 at 127.0.0.1:%d" % port)
    finally:
        await sim.stop()


async def test_garbled_answers_suggest_wrong_parity(tmp_path, closed_port):
    sim = ModbusMeterSim("sdm630")
    link = await sim.start_pty(baudrate=9600)
    try:
        link.corrupt(100)  # every answer arrives with a CRC error, as with a parity mismatch
        board = {"meter": {"driver": "sdm630", "port": link.a_path}}
        rows = await diagnose_board(tmp_path, closed_port, board)
        meter = row(rows, "meter sdm630")
        assert meter.result == FAIL
        assert "garbled answers from device 1 (CRC/framing errors): wrong parity or baud rate suspected" \
               in meter.details and "configured 9600 8N1" in meter.details
    finally:
        await sim.stop()


async def test_a_meter_that_answers_as_another_model(tmp_path, closed_port):
    sim = ModbusMeterSim("sdm630")
    port = await sim.start_tcp()
    try:
        board = {"meter": {"driver": "abb_b23", "transport": "tcp", "host": "127.0.0.1", "tcp_port": port,
                           "device_id": 1}}
        rows = await diagnose_board(tmp_path, closed_port, board)
        meter = row(rows, "meter abb_b23")
        assert meter.result == FAIL and "refuses the request" in meter.details and "ABB" in meter.details
    finally:
        await sim.stop()


async def test_tls_certificate_that_does_not_verify(tmp_path):
    async with tls_proxy_for(TestCentralSystem(quiet=True, protocols=("ocpp1.6",)), tmp_path) as proxy:
        url, cert = proxy.url, proxy.cert
        rows = await diagnose(config(tmp_path, url), timeout_s=0.3)
        tls = row(rows, "csms tls")
        assert tls.result == FAIL and tls.details.startswith("certificate verification failed")
        assert "set csms.ca_file" in tls.details
        assert row(rows, "csms websocket").result == SKIP
        # With the CA: TLS and the handshake pass.
        data = {"station": {"id": STATION, "data_dir": str(tmp_path / "data")},
                "csms": {"url": url, "ca_file": cert}}
        rows = await diagnose(parse_config(str(tmp_path / "a.toml"), data, check_data_dir=False))
        assert row(rows, "csms tls").result == OK and "(CA from csms.ca_file)" in row(rows, "csms tls").details
        assert row(rows, "csms websocket").result == OK


async def test_unresolvable_central_system(tmp_path):
    rows = await diagnose(config(tmp_path, "wss://no-such-host.invalid/ocpp"))
    dns = row(rows, "csms dns")
    assert dns.result == FAIL and dns.details.startswith("cannot resolve no-such-host.invalid")
    assert [r.result for r in rows if r.check.startswith("csms ")] == [FAIL, SKIP, SKIP, SKIP]


async def test_a_whole_real_board_controller_contactor_and_reader(tmp_path, monkeypatch, closed_port):
    """The rpi board's devices, each on its simulator: SimpleEVSE over Modbus TCP, the meter on a pty,
    the contactor on a fake GPIO chip (feedback read, never switched), the PN532 on a pty."""
    gpiod = FakeGpiod()
    chip = gpiod.add_chip("/dev/gpiochip0")
    monkeypatch.setitem(sys.modules, "gpiod", gpiod)
    monkeypatch.setattr("os.path.exists", lambda p, _real=__import__("os").path.exists:
                        True if p == "/dev/gpiochip0" else _real(p))
    monkeypatch.setattr("os.access", lambda p, m, _real=__import__("os").access:
                        True if p == "/dev/gpiochip0" else _real(p, m))
    evse_sim = SimpleEvseSim(device_id=1)
    evse_port = await evse_sim.start_tcp()
    meter_sim = ModbusMeterSim("sdm630", device_id=2)
    link = await meter_sim.start_pty()
    reader_sim = Pn532Sim()
    reader_link = await reader_sim.start_pty()
    reader_sim.present("04A1B2C3D4E5F6")
    try:
        board = {"meter": {"port": link.a_path},
                 "evse": {"transport": "tcp", "host": "127.0.0.1", "tcp_port": evse_port},
                 "reader": {"port": reader_link.a_path}}
        cfg = config(tmp_path, "ws://127.0.0.1:%d" % closed_port, board, board_name="rpi-sdm630-simpleevse")
        rows = await diagnose(cfg, timeout_s=0.5)
        table = format_table(rows)
        assert row(rows, "meter sdm630").result == OK, table
        evse = row(rows, "evse simpleevse_wb")
        assert evse.result == OK and evse.details.startswith("pilot state A (no EV), no_error"), table
        assert evse.where == "tcp://127.0.0.1:%d id 1" % evse_port
        contactor = row(rows, "contactor gpio")
        assert contactor.result == OK and "feedback reads open" in contactor.details, table
        assert set(chip.history(17)) == {0}  # never switched on
        reader = row(rows, "reader pn532")
        assert reader.result == OK and reader.details == "PN532 firmware 1.6, card 04A1B2C3D4E5F6 in the field"
        # A welded contactor: the feedback reads closed with the output off.
        chip.drive(27, 0)
        rows = await diagnose(cfg, timeout_s=0.5)
        contactor = row(rows, "contactor gpio")
        assert contactor.result == FAIL and "feedback reads CLOSED with the output off" in contactor.details
    finally:
        await reader_sim.stop()
        await meter_sim.stop()
        await evse_sim.stop()


async def test_configuration_problems_are_rows_not_crashes(tmp_path, monkeypatch, closed_port):
    monkeypatch.setitem(sys.modules, "gpiod", None)
    board = {"meter": {"driver": "sdm999"}, "contactor": {"driver": "gpio", "line": 17}}
    rows = await diagnose_board(tmp_path, closed_port, board)
    meter = row(rows, "meter sdm999")
    assert meter.result == FAIL and "unknown meter driver 'sdm999'" in meter.details
    assert meter.details.endswith("(board.meter.driver)")
    contactor = row(rows, "contactor gpio")
    assert contactor.result == FAIL and "pip install 'ocpp-agent[gpio]'" in contactor.details
    rows = await diagnose(config(tmp_path, "ws://127.0.0.1:%d" % closed_port, {"colour": {"driver": "x"}}))
    assert rows[0].check == "board sim" and rows[0].result == FAIL and "board.colour" in rows[0].details


def test_readme_shows_the_doctor_table():
    import os

    readme = open(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "README.md"),
                  encoding="utf-8").read()
    assert "## Checking the hardware: ocpp-agent doctor" in readme
    section = readme.split("## Checking the hardware: ocpp-agent doctor")[1].split("\n## ")[0]
    header = format_table([]).splitlines()[0].split()
    assert any(line.split() == header for line in section.splitlines())
    assert "HTTP 401 Unauthorized" in section and "no answer from device" in section


async def test_openevse_board_reads_energy_from_the_controller(tmp_path, closed_port):
    from tools.rapi_sim import RapiSim

    sim = RapiSim()
    link = await sim.start_pty()
    try:
        cfg = config(tmp_path, "ws://127.0.0.1:%d" % closed_port, {"evse": {"port": link.a_path}},
                     board_name="openevse")
        rows = await diagnose(cfg, timeout_s=0.5)
        table = format_table(rows)
        evse = row(rows, "evse openevse_rapi")
        assert evse.result == OK and evse.details.startswith("pilot state A"), table
        meter = row(rows, "meter (controller)")
        assert meter.result == OK and "kWh" in meter.details, table
    finally:
        await sim.stop()


async def test_phoenix_board_without_its_meter_reads_the_meter_behind_the_controller(tmp_path, closed_port):
    from tools.phoenix_sim import PhoenixSim

    sim = PhoenixSim()
    sim.energy_wh = 4321.0
    port = await sim.start_tcp()
    try:
        board = {"evse": {"host": "127.0.0.1", "tcp_port": port}, "meter": {"driver": "none"}}
        cfg = config(tmp_path, "ws://127.0.0.1:%d" % closed_port, board, board_name="phoenix-em-cp-pp-eth")
        rows = await diagnose(cfg, timeout_s=0.5)
        table = format_table(rows)
        assert row(rows, "meter none").result == SKIP, table
        assert row(rows, "evse phoenix_em_cp_pp_eth").result == OK, table
        meter = row(rows, "meter (controller)")
        assert meter.result == OK and "4.320 kWh" in meter.details, table  # 10 Wh steps
        assert "phoenix_em_cp_pp_eth unverified" in meter.details, table
    finally:
        await sim.stop()


async def test_probes_the_central_system_the_agent_moved_to(tmp_path, closed_port):
    """After a move made over OCPP (kept in data_dir/endpoint.json, the file unchanged), doctor
    probes the endpoint the agent uses; once the file is edited, the file's (the agent would
    switch to it)."""
    from agent.link.endpoint import EndpointSettings, EndpointState

    cs = TestCentralSystem(quiet=True, protocols=("ocpp1.6",))
    await cs.start()
    try:
        cfg = config(tmp_path, "ws://127.0.0.1:%d/ocpp" % closed_port)
        os.makedirs(cfg.data_dir)
        state = EndpointState(EndpointState.path_in(cfg.data_dir))
        state.config_seen = EndpointSettings.from_config(cfg)
        state.current = state.last_accepted = EndpointSettings(cs.url, STATION)
        state.save()
        rows = await diagnose(cfg, timeout_s=0.3)
        ws = row(rows, "csms websocket")
        assert ws.result == OK and ws.where == cs.url + "/" + STATION
        edited = config(tmp_path, "ws://127.0.0.1:%d/other" % closed_port)
        rows = await diagnose(edited, timeout_s=0.3)
        assert row(rows, "csms tcp").result == FAIL
    finally:
        await cs.stop()
