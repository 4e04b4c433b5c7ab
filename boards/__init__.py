"""Board definitions: TOML files that wire hal drivers together.

A board is named (``sim`` → ``boards/sim.toml``) or given as a path. Its
sections each name a ``driver``:

- ``[meter]``: ``sdm630``, ``sdm120``, ``sdm72``, ``abb_b23``, ``em340``,
  ``orno_we516``, ``pro380``, ``phoenix_em_cp_pp_eth`` (any map in
  ``hal/meters``; Modbus RTU or TCP);
- ``[evse]``: ``sim``, ``simpleevse_wb``, ``openevse_rapi``,
  ``phoenix_em_cp_pp_eth`` (``hal/evse_drivers.py``);
- ``[contactor]``: ``gpio`` (libgpiod v2, ``hal/gpio_relay.py``);
- ``[reader]``: ``pn532`` (HSU serial, ``hal/pn532.py``);
- any section: ``none`` removes the device the board file declares.

Transport keys are common to every section: ``transport`` (``"rtu"`` or
``"tcp"``), ``port``, ``baudrate``, ``parity``, ``device_id``, ``host``,
``tcp_port``. In ``[evse]``, ``phases``, ``voltage_v`` (the connector's
wiring), ``vendor`` and ``model`` (BootNotification) belong to the board; the
other keys go to the controller's driver.

The station config overrides any key with ``[board.<section>]``; a section
present only in the override is added (a sim board with a real meter, an
OpenEVSE with a Modbus meter instead of the controller's energy counter).

Energy: without a ``[meter]`` section the connector uses the meter its EVSE
controller provides (a driver that measures energy exposes a ``Meter`` as the
controller's ``meter`` attribute). A board with neither is refused: the
station cannot bill a transaction without an energy register.

All devices of one board share one ``BusRegistry``: a meter and a SimpleEVSE
on one RS-485 line use one ``ModbusBus`` (one owner, one lock). Building does
no I/O; ``board.open()`` does. Drivers are imported only for the devices a
board has: the simulated board alone loads no Modbus, serial or GPIO code. A
bad board is a ``HalConfigurationError`` whose ``key`` is the station-config
name of the setting at fault (``board.meter.port``), so the CLI reports it as
a configuration error.
"""

import os

from hal.data_file import read_toml
from hal.errors import HalConfigurationError

BOARD_DIR = os.path.dirname(os.path.abspath(__file__))
SECTIONS = ("meter", "evse", "contactor", "reader", "lock")
NONE = "none"  # driver name that removes a section's device
EVSE_DRIVERS = ("simpleevse_wb", "openevse_rapi", "phoenix_em_cp_pp_eth", "sim")
CONTACTOR_DRIVERS = ("gpio",)
READER_DRIVERS = ("pn532",)
EVSE_BOARD_KEYS = ("phases", "voltage_v", "vendor", "model")  # in [evse], but the board's
METER_KEYS = ("driver", "map", "transport", "port", "baudrate", "parity", "stopbits", "bytesize",
              "device_id", "host", "tcp_port", "timeout_s", "retries")


class LoadedBoard:
    """A built board plus, for the simulated one, the simulator's command object."""

    def __init__(self, board, sim=None, definition: dict | None = None, buses=None) -> None:
        self.board = board
        self.sim = sim
        self.definition = definition or {}
        self.buses = buses  # the BusRegistry of the board's Modbus lines (stats, benchmarks); None: no real device


def board_names() -> list:
    return sorted(f[:-5] for f in os.listdir(BOARD_DIR) if f.endswith(".toml"))


def board_path(name_or_path: str) -> str:
    if os.sep in name_or_path or name_or_path.endswith(".toml"):
        return name_or_path
    path = os.path.join(BOARD_DIR, name_or_path + ".toml")
    if not os.path.isfile(path):
        raise HalConfigurationError("unknown board %r (known: %s)" % (name_or_path, ", ".join(board_names())))
    return path


def board_name(name_or_path: str) -> str:
    base = os.path.basename(name_or_path)
    return base[:-5] if base.endswith(".toml") else base


def read_definition(name_or_path: str, overrides: dict | None = None) -> dict:
    """The board's sections after applying ``[board.<section>]`` overrides."""
    path = board_path(name_or_path)
    data = read_toml(path, "board file")
    for section, table in data.items():
        if section not in SECTIONS or not isinstance(table, dict):
            raise HalConfigurationError("%s: unknown section [%s] (known: %s)" % (path, section, ", ".join(SECTIONS)))
    for section, table in (overrides or {}).items():
        if section not in SECTIONS:
            raise HalConfigurationError("unknown board section (known: %s)" % ", ".join(SECTIONS),
                                        key="board.%s" % section)
        data.setdefault(section, {}).update(table)
    for section in data:
        if "driver" not in data[section]:
            raise HalConfigurationError("board %s: section [%s] has no driver (set board.%s.driver)"
                                        % (board_name(path), section, section), key="board.%s.driver" % section)
        if not isinstance(data[section]["driver"], str):
            raise HalConfigurationError("driver must be a string", key="board.%s.driver" % section)
    if "evse" not in data:
        raise HalConfigurationError("%s: a board needs an [evse] section" % path, key="board.evse")
    if data["evse"]["driver"] == NONE:
        raise HalConfigurationError("a charger needs an EVSE controller: [evse] cannot be none",
                                    key="board.evse.driver")
    return data


def _fail(section: str, e: HalConfigurationError, board: str):
    """Re-raise a driver's configuration error naming the station-config key."""
    key = e.key or ""
    if not key.startswith("board."):
        key = "board.%s.%s" % (section, key) if key else "board.%s" % section
    msg = str(e)
    if not msg.startswith("board "):
        msg = "board %s: %s%s" % (board, "" if msg.startswith("[%s]" % section) else "[%s] " % section, msg)
    raise HalConfigurationError(msg, key=key) from None


def _unknown_driver(section: str, driver: str, known) -> HalConfigurationError:
    return HalConfigurationError("unknown %s driver %r (known: %s)" % (section, driver, ", ".join(known)),
                                 key="board.%s.driver" % section)


def build_meter_section(table: dict, buses, clock):
    """A meter from a ``[meter]`` section (``none``: None)."""
    from hal.modbus_meter import build_meter, meter_names

    driver = table["driver"]
    if driver == NONE:
        return None
    known = meter_names()
    if driver not in known and not table.get("map"):
        raise _unknown_driver("meter", driver, known + [NONE])
    for k in table:
        if k not in METER_KEYS:
            raise HalConfigurationError("unknown key %r (known: %s)" % (k, ", ".join(METER_KEYS)), key=k)
    _require_transport(table)
    return build_meter(table, buses, clock)


def _require_transport(table: dict) -> None:
    transport = table.get("transport", "rtu")
    if transport not in ("rtu", "tcp"):
        raise HalConfigurationError("transport must be \"rtu\" or \"tcp\", not %r" % (transport,), key="transport")
    if transport == "rtu" and not table.get("port"):
        raise HalConfigurationError("missing key port: the serial port of the RS-485 adapter "
                                    "(e.g. /dev/ttyUSB0), or transport = \"tcp\" with host", key="port")
    if transport == "tcp" and not table.get("host"):
        raise HalConfigurationError("missing key host: the device's address for Modbus TCP", key="host")


def build_contactor_section(table: dict, clock):
    driver = table["driver"]
    if driver == NONE:
        return None
    if driver != "gpio":
        raise _unknown_driver("contactor", driver, CONTACTOR_DRIVERS + (NONE,))
    from hal.gpio_relay import build_contactor

    return build_contactor(table, clock=clock)


def build_reader_section(table: dict, clock):
    driver = table["driver"]
    if driver == NONE:
        return None
    if driver != "pn532":
        raise _unknown_driver("reader", driver, READER_DRIVERS + (NONE,))
    from hal.pn532 import build_reader

    return build_reader(table, clock=clock)


def build_evse_section(table: dict, buses, clock):
    """The EVSE controller of a ``[evse]`` section (not ``sim``), board keys removed."""
    try:
        from hal.evse_drivers import build_evse
    except ImportError:
        raise HalConfigurationError("evse driver %r is not available in this version" % table["driver"],
                                    key="driver") from None
    return build_evse(driver_params(table), buses, clock)


def driver_params(evse_table: dict) -> dict:
    """The ``[evse]`` keys that go to the controller's driver (the board's own removed)."""
    return {k: v for k, v in evse_table.items() if k not in EVSE_BOARD_KEYS}


def controller_meter(evse_table: dict, evse):
    """The meter an EVSE controller offers from its own counters, or None: its ``meter``
    attribute, else what ``hal.evse_drivers.build_evse_meter`` makes for it."""
    meter = getattr(evse, "meter", None)
    if meter is not None:
        return meter
    try:
        from hal.evse_drivers import build_evse_meter
    except ImportError:
        return None
    return build_evse_meter(driver_params(evse_table), evse)


def build_device(section: str, table: dict, buses, clock, board: str = "?"):
    """One device of a (non-sim) board, or None for ``driver = "none"``; raises
    ``HalConfigurationError`` naming ``board.<section>.<key>``. Used by the loader
    and by ``ocpp-agent doctor``, which probes each device on its own."""
    try:
        if section == "meter":
            return build_meter_section(table, buses, clock)
        if section == "contactor":
            return build_contactor_section(table, clock)
        if section == "reader":
            return build_reader_section(table, clock)
        if section == "evse":
            if table["driver"] not in EVSE_DRIVERS:
                raise _unknown_driver("evse", table["driver"], EVSE_DRIVERS)
            return build_evse_section(table, buses, clock)
        if table["driver"] == NONE:
            return None
        raise _unknown_driver(section, table["driver"], (NONE,))
    except HalConfigurationError as e:
        _fail(section, e, board)


def _board_keys(evse: dict, board: str) -> dict:
    out = {"phases": evse.get("phases", 3), "voltage_v": evse.get("voltage_v", 230.0),
           "vendor": evse.get("vendor", "OpenCharge"), "model": evse.get("model", "ocpp-agent")}
    if out["phases"] not in (1, 2, 3) or isinstance(out["phases"], bool):
        raise HalConfigurationError("board %s: phases must be 1, 2 or 3" % board, key="board.evse.phases")
    if not isinstance(out["voltage_v"], (int, float)) or not 1 <= out["voltage_v"] <= 1000:
        raise HalConfigurationError("board %s: voltage_v must be a number 1..1000" % board,
                                    key="board.evse.voltage_v")
    for k in ("vendor", "model"):
        if not isinstance(out[k], str) or not 1 <= len(out[k]) <= 20:
            raise HalConfigurationError("board %s: %s must be a string of 1..20 characters" % (board, k),
                                        key="board.evse.%s" % k)
    return out


def _bus_registry():
    from hal.modbus import BusRegistry  # no pymodbus yet: a bus imports it when it opens

    return BusRegistry()


def load_board(name_or_path: str, overrides: dict | None, data_dir: str, clock) -> LoadedBoard:
    """Build the hal objects a board describes (no I/O until ``board.open()``)."""
    definition = read_definition(name_or_path, overrides)
    name = board_name(board_path(name_or_path))

    evse_table = definition["evse"]
    if evse_table["driver"] == "sim":
        from hal.sim import build_sim_board

        params = {k: v for k, v in evse_table.items() if k != "driver"}
        try:
            board, sim = build_sim_board(params, data_dir, clock)
        except HalConfigurationError as e:
            _fail("evse", e, name)
        # Real devices configured next to the simulated EV: they replace the sim's own.
        buses = None  # the simulator alone needs no Modbus bus (nor hal.modbus)
        for section in ("meter", "contactor", "reader", "lock"):
            table = definition.get(section)
            if table is None or table["driver"] == "sim":
                continue
            if buses is None:
                buses = _bus_registry()
            device = build_device(section, table, buses, clock, name)
            if section == "reader":
                board.reader = device
                continue
            if device is not None and len(board.connectors) > 1:
                raise HalConfigurationError("board %s: one real %s cannot serve %d simulated connectors"
                                            % (name, section, len(board.connectors)), key="board.evse.connectors")
            for hw in board.connectors:
                setattr(hw, section, device)
        return LoadedBoard(board, sim, definition, buses)

    from hal.interfaces import Board, ConnectorHardware

    for section, table in definition.items():
        if table["driver"] == "sim":
            raise HalConfigurationError("board %s: the sim %s driver only works with [evse] driver = \"sim\""
                                        % (name, section), key="board.%s.driver" % section)
    buses = _bus_registry()
    keys = _board_keys(evse_table, name)
    devices = {}
    for section in ("evse", "meter", "contactor", "reader", "lock"):
        if section in definition:
            devices[section] = build_device(section, definition[section], buses, clock, name)
    evse = devices["evse"]
    meter = devices.get("meter")
    if meter is None:
        try:
            meter = controller_meter(evse_table, evse)  # the controller's own energy counter
        except HalConfigurationError as e:
            _fail("evse", e, name)
    if meter is None:
        raise HalConfigurationError(
            "board %s: no energy meter: the %s controller does not measure energy and there is no "
            "[meter] section (add [board.meter] with a meter driver); a transaction cannot be billed "
            "without one" % (name, evse_table["driver"]), key="board.meter")
    hw = ConnectorHardware(evse, meter=meter, contactor=devices.get("contactor"), lock=devices.get("lock"),
                           phases=keys["phases"], voltage_v=float(keys["voltage_v"]))
    board = Board(name, [hw], reader=devices.get("reader"), vendor=keys["vendor"], model=keys["model"])
    return LoadedBoard(board, None, definition, buses)
