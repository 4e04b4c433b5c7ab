"""Board definitions: TOML files that wire hal drivers together.

A board is named (``sim`` → ``boards/sim.toml``) or given as a path. Its
sections (``[meter]``, ``[evse]``, ``[contactor]``, ``[reader]``) each name a
``driver``. The station config overrides any key with ``[board.<section>]``;
a section present only in the override is added.
"""

import os
import tomllib

from hal.errors import HalConfigurationError

BOARD_DIR = os.path.dirname(os.path.abspath(__file__))
SECTIONS = ("meter", "evse", "contactor", "reader", "lock")


class LoadedBoard:
    """A built board plus, for the simulated one, the simulator's command object."""

    def __init__(self, board, sim=None, definition: dict | None = None) -> None:
        self.board = board
        self.sim = sim
        self.definition = definition or {}


def board_names() -> list:
    return sorted(f[:-5] for f in os.listdir(BOARD_DIR) if f.endswith(".toml"))


def board_path(name_or_path: str) -> str:
    if os.sep in name_or_path or name_or_path.endswith(".toml"):
        return name_or_path
    path = os.path.join(BOARD_DIR, name_or_path + ".toml")
    if not os.path.isfile(path):
        raise HalConfigurationError("unknown board %r (known: %s)" % (name_or_path, ", ".join(board_names())))
    return path


def read_definition(name_or_path: str, overrides: dict | None = None) -> dict:
    """The board's sections after applying ``[board.<section>]`` overrides."""
    path = board_path(name_or_path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise HalConfigurationError("cannot read board file %s: %s" % (path, e.strerror or e)) from None
    except tomllib.TOMLDecodeError as e:
        raise HalConfigurationError("board file %s is not valid TOML: %s" % (path, e)) from None
    for section, table in (overrides or {}).items():
        if section not in SECTIONS:
            raise HalConfigurationError("board.%s: unknown section (known: %s)" % (section, ", ".join(SECTIONS)))
        data.setdefault(section, {}).update(table)
    for section in data:
        if section not in SECTIONS:
            raise HalConfigurationError("%s: unknown section [%s]" % (path, section))
        if "driver" not in data[section]:
            raise HalConfigurationError("board section [%s] has no driver" % section)
    if "evse" not in data:
        raise HalConfigurationError("%s: a board needs an [evse] section" % path)
    return data


def load_board(name_or_path: str, overrides: dict | None, data_dir: str, clock) -> LoadedBoard:
    """Build the hal objects a board describes (no I/O until ``board.open()``)."""
    definition = read_definition(name_or_path, overrides)
    evse = definition["evse"]
    if evse["driver"] == "sim":
        from hal.sim import build_sim_board

        params = {k: v for k, v in evse.items() if k != "driver"}
        board, sim = build_sim_board(params, data_dir, clock)
        meter = definition.get("meter")
        if meter is not None and meter["driver"] != "sim":  # a sim board with a real meter
            from hal.modbus import BusRegistry
            from hal.modbus_meter import build_meter

            board.connectors[0].meter = build_meter(meter, BusRegistry(), clock)
        return LoadedBoard(board, sim, definition)
    raise HalConfigurationError("evse driver %r is not available in this version" % evse["driver"])
