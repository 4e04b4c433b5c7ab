"""Board files and the board loader: the fixed section contract, overrides from the
station config, one bus registry per board, the controller's own meter, and
configuration errors that name the key (exit status 2 from the CLI)."""

import os
import sys

import pytest

import boards
from hal.runtime.clock import Clock
from boards import LoadedBoard, board_names, load_board, read_definition
from hal.errors import HalConfigurationError
from hal.gpio_fake import FakeGpiod
from hal.gpio_relay import GpioContactor
from hal.interfaces import EvseController, Meter, MeterReading
from hal.modbus import bus_settings
from hal.modbus_meter import ModbusMeter, meter_names
from hal.pn532 import Pn532Reader
from tests.app.test_config_and_cli import GOOD_CSMS, GOOD_STATION, assert_one_clear_message, run_cli, toml_str, \
    write_config

SHIPPED = ("sim", "rpi-sdm630-simpleevse", "openevse", "phoenix-em-cp-pp-eth")
CONTRACT = {
    "meter": ("sdm630", "sdm120", "sdm72", "abb_b23", "em340", "orno_we516", "pro380"),
    "evse": ("simpleevse_wb", "openevse_rapi", "phoenix_em_cp_pp_eth", "sim"),
    "contactor": ("gpio",),
    "reader": ("pn532",),
}
TRANSPORT_KEYS = ("transport", "port", "baudrate", "parity", "device_id", "host", "tcp_port")


class FakeController(EvseController):
    """Stands in for a controller driver: takes its bus from the board's registry, as the
    Modbus drivers do, and may carry its own energy counter."""

    def __init__(self, table: dict, buses, meter=None) -> None:
        super().__init__()
        self.table = table
        self.bus = buses.get(**bus_settings(table)) if table.get("port") or table.get("host") else None
        if meter is not None:
            self.meter = meter

    async def set_current_limit(self, current_a: float) -> None:
        self.current_limit_a = current_a


class ControllerMeter(Meter):
    async def read(self) -> MeterReading:
        return MeterReading(energy_wh=1.0)


@pytest.fixture
def fake_controllers(monkeypatch):
    """build_evse from hal/evse_drivers.py replaced: the loader is tested on its own."""
    built = []

    def build(table, buses, clock):
        with_meter = table["driver"] in ("openevse_rapi", "phoenix_em_cp_pp_eth")
        if table["driver"] not in CONTRACT["evse"]:
            raise HalConfigurationError("unknown", key="driver")
        c = FakeController(table, buses, ControllerMeter() if with_meter else None)
        built.append(c)
        return c

    monkeypatch.setattr(boards, "build_evse_section", lambda table, buses, clock: build(
        boards.driver_params(table), buses, clock))
    return built


@pytest.fixture
def gpiod(monkeypatch):
    g = FakeGpiod()
    g.add_chip("/dev/gpiochip0")
    monkeypatch.setitem(sys.modules, "gpiod", g)
    return g


def test_shipped_boards_follow_the_contract():
    assert set(SHIPPED) <= set(board_names())
    for name in SHIPPED:
        definition = read_definition(name)
        assert "evse" in definition, name
        for section, table in definition.items():
            assert section in CONTRACT, (name, section)
            assert table["driver"] in CONTRACT[section], (name, section, table["driver"])
            if table.get("transport") is not None:
                assert table["transport"] in ("rtu", "tcp")
            if table.get("transport") == "rtu":
                assert table["port"] and table["baudrate"] and table["parity"] in ("N", "E", "O")
            if table.get("transport") == "tcp":
                assert table["host"] and 0 < table["tcp_port"] < 65536
    assert set(CONTRACT["meter"]) <= set(meter_names())
    # OpenEVSE: energy from the controller unless a meter is configured.
    assert "meter" not in read_definition("openevse")


def test_rpi_board_shares_one_rs485_line_between_meter_and_controller(fake_controllers, gpiod, tmp_path):
    loaded = load_board("rpi-sdm630-simpleevse", None, str(tmp_path), None)
    assert isinstance(loaded, LoadedBoard) and loaded.sim is None
    board = loaded.board
    hw = board.connectors[0]
    evse = fake_controllers[0]
    assert hw.evse is evse and "phases" not in evse.table and "vendor" not in evse.table
    assert isinstance(hw.meter, ModbusMeter) and hw.meter.device_id == 2
    assert hw.meter.bus is evse.bus and len(loaded.buses.buses()) == 1  # one owner, one lock
    assert hw.meter.bus.describe() == "/dev/ttyUSB0 at 9600 8N1"
    assert isinstance(hw.contactor, GpioContactor) and hw.contactor.has_feedback
    assert isinstance(board.reader, Pn532Reader)
    assert (hw.phases, board.vendor, board.model) == (3, "OpenCharge", "rpi-simpleevse")


def test_station_config_overrides_any_key_and_adds_sections(fake_controllers, gpiod, tmp_path):
    overrides = {"meter": {"port": "/dev/ttyUSB1", "baudrate": 19200}, "contactor": {"line": 22},
                 "reader": {"driver": "none"}}
    board = load_board("rpi-sdm630-simpleevse", overrides, str(tmp_path), None).board
    hw = board.connectors[0]
    assert hw.meter.bus.describe() == "/dev/ttyUSB1 at 19200 8N1"
    assert hw.meter.bus is not fake_controllers[0].bus  # now on its own line
    assert hw.contactor.line == 22 and board.reader is None


def test_openevse_energy_comes_from_the_controller_unless_a_meter_is_configured(fake_controllers, tmp_path):
    board = load_board("openevse", None, str(tmp_path), None).board
    hw = board.connectors[0]
    assert isinstance(hw.meter, ControllerMeter) and hw.meter is fake_controllers[0].meter
    assert hw.phases == 1 and hw.contactor is None and board.reader is None
    overrides = {"meter": {"driver": "sdm120", "port": "/dev/ttyUSB1", "baudrate": 2400}}
    hw = load_board("openevse", overrides, str(tmp_path), None).board.connectors[0]
    assert isinstance(hw.meter, ModbusMeter) and hw.meter.bus.describe() == "/dev/ttyUSB1 at 2400 8N1"


def test_phoenix_board_over_modbus_tcp(fake_controllers, tmp_path):
    hw = load_board("phoenix-em-cp-pp-eth", None, str(tmp_path), None).board.connectors[0]
    assert fake_controllers[0].bus.describe() == "tcp://192.168.1.100:502"
    assert fake_controllers[0].table["device_id"] == 180


def test_a_controller_without_energy_and_no_meter_is_refused(fake_controllers, tmp_path):
    with pytest.raises(HalConfigurationError, match="no energy meter") as e:
        load_board("rpi-sdm630-simpleevse", {"meter": {"driver": "none"}, "contactor": {"driver": "none"}},
                   str(tmp_path), None)
    assert e.value.key == "board.meter"


@pytest.mark.parametrize("overrides, key, words", [
    ({"meter": {"driver": "sdm999"}}, "board.meter.driver", "unknown meter driver 'sdm999'"),
    ({"meter": {"port": ""}}, "board.meter.port", "missing key port"),
    ({"meter": {"transport": "tcp"}}, "board.meter.host", "missing key host"),
    ({"meter": {"prot": "/dev/ttyUSB1"}}, "board.meter.prot", "unknown key"),
    ({"evse": {"driver": "acme"}}, "board.evse.driver", "unknown evse driver 'acme'"),
    ({"contactor": {"driver": "relay"}}, "board.contactor.driver", "unknown contactor driver"),
    ({"contactor": {"line": "  "[:0]}}, "board.contactor.line", "line offset"),
    ({"reader": {"driver": "rc522"}}, "board.reader.driver", "unknown reader driver"),
    ({"reader": {"port": ""}}, "board.reader.port", "needs port"),
    ({"lock": {"port": "/dev/x"}}, "board.lock.driver", "has no driver"),
    ({"meter": {"baudrate": 19200, "port": "/dev/ttyUSB0"}}, "board.meter", "different settings"),
    ({"contactor": {"driver": "sim"}}, "board.contactor.driver", "only works with"),
    ({"colour": {"driver": "red"}}, "board.colour", "unknown board section"),
])
def test_configuration_errors_name_the_key(fake_controllers, gpiod, tmp_path, overrides, key, words):
    with pytest.raises(HalConfigurationError) as e:
        load_board("rpi-sdm630-simpleevse", overrides, str(tmp_path), None)
    assert e.value.key == key, (e.value.key, str(e.value))
    assert words in str(e.value)


def test_sim_board_takes_real_devices_and_none(gpiod, tmp_path):
    overrides = {"meter": {"driver": "sdm630", "transport": "tcp", "host": "127.0.0.1", "tcp_port": 5020},
                 "contactor": {"driver": "gpio", "line": 17}, "reader": {"driver": "none"}}
    loaded = load_board("sim", overrides, str(tmp_path), Clock())
    hw = loaded.board.connectors[0]
    assert loaded.sim is not None
    assert isinstance(hw.meter, ModbusMeter) and isinstance(hw.contactor, GpioContactor)
    assert loaded.board.reader is None
    with pytest.raises(HalConfigurationError) as e:
        load_board("sim", {"evse": {"connectors": 2}, "contactor": {"driver": "gpio", "line": 17}}, str(tmp_path),
                   Clock())
    assert e.value.key == "board.evse.connectors"
    with pytest.raises(HalConfigurationError) as e:
        load_board("sim", {"evse": {"speed": -1}}, str(tmp_path), Clock())
    assert e.value.key == "board.evse"


def test_real_controller_drivers_when_present(gpiod, tmp_path):
    """With hal/evse_drivers.py in place, the shipped boards build with the real drivers."""
    pytest.importorskip("hal.evse_drivers")
    loaded = load_board("rpi-sdm630-simpleevse", None, str(tmp_path), None)
    hw = loaded.board.connectors[0]
    assert isinstance(hw.evse, EvseController) and isinstance(hw.meter, ModbusMeter)
    assert len(loaded.buses.buses()) == 1  # the meter and the SimpleEVSE share the line
    hw = load_board("openevse", None, str(tmp_path), None).board.connectors[0]
    assert isinstance(hw.meter, Meter)
    load_board("phoenix-em-cp-pp-eth", None, str(tmp_path), None)


def test_cli_reports_a_bad_board_key_as_a_config_error(tmp_path):
    data_dir = tmp_path / "data"
    path = write_config(tmp_path / "agent.toml", dict(GOOD_STATION, data_dir=toml_str(str(data_dir))), GOOD_CSMS,
                        '\n[board.meter]\ndriver = "sdm999"\nport = "/dev/ttyUSB0"\n')
    result = run_cli("run", "--config", path)
    assert_one_clear_message(result, path, "board.meter.driver", "unknown meter driver 'sdm999'")
    path = write_config(tmp_path / "agent2.toml", dict(GOOD_STATION, data_dir=toml_str(str(data_dir))), GOOD_CSMS,
                        '\n[board.meter]\ndriver = "sdm630"\n')
    result = run_cli("run", "--config", path)
    assert_one_clear_message(result, path, "board.meter.port", "missing key port")
    assert not os.path.exists(data_dir / "sim.sock")


def test_unreadable_board_files_and_meter_maps_are_configuration_errors(tmp_path):
    from hal.modbus_meter import load_register_map

    broken = tmp_path / "broken.toml"
    broken.write_text("[evse\ndriver = 'sim'\n")
    with pytest.raises(HalConfigurationError, match="board file .*broken.toml is not valid TOML"):
        read_definition(str(broken))
    with pytest.raises(HalConfigurationError, match="meter map .*broken.toml is not valid TOML"):
        load_register_map(str(broken))
    with pytest.raises(HalConfigurationError, match="cannot read meter map .*absent.toml: No such file"):
        load_register_map(str(tmp_path / "absent.toml"))
