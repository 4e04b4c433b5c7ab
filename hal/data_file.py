"""Reading the TOML data files of boards and meter maps, with errors that name the file.

CPython (``tomllib``); a MicroPython port feeds the parsed tables from JSON instead.
"""

from hal.errors import HalConfigurationError


def read_toml(path: str, what: str) -> dict:
    """The parsed file at ``path``; ``what`` names it in errors ("board file", "meter map")."""
    import tomllib

    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise HalConfigurationError("cannot read %s %s: %s" % (what, path, e.strerror or e)) from None
    except tomllib.TOMLDecodeError as e:
        raise HalConfigurationError("%s %s is not valid TOML: %s" % (what, path, e)) from None
