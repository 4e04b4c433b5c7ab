"""EVSE controller drivers by name, for the board loader.

``build_evse(section, registry, clock)`` builds the controller a board's
``[evse]`` section describes (no I/O: the board's ``open()`` does it);
``build_evse_meter(section, evse)`` the meter a controller offers from its
own counters (OpenEVSE) or from the meter wired to it (Phoenix EM-CP-PP-ETH,
``hal/meters/phoenix_em_cp_pp_eth.toml``), for boards without a ``[meter]``.

Section keys (unknown keys are an error, so that a typo cannot silently leave
a default in place):

Every driver
    ``driver``; ``poll_interval_s`` (1.0: how often the controller is read);
    ``offline_after`` (2: failed polls in a row before the controller is
    reported "not answering"); ``max_current_a`` (32: the most this
    connector may offer, A, 6..80).

``simpleevse_wb`` (SimpleEVSE-WB / EVSE-DIN, Modbus RTU)
    ``transport`` ("rtu"; "tcp" through a Modbus gateway), ``port``,
    ``baudrate`` (9600), ``parity`` ("N"), ``stopbits`` (1), ``bytesize`` (8),
    ``host``, ``tcp_port`` (502), ``device_id`` (1), ``timeout_s`` (0.5),
    ``retries`` (1), ``boot_current_zero`` (true: set the controller's
    "current after boot" register to 0 so it cannot charge after a reboot
    before the agent allows it). The bus is shared with other devices on the
    same port through ``registry``.

``openevse_rapi`` (OpenEVSE, RAPI over serial)
    ``transport`` ("serial"; "tcp": RAPI over a serial-to-TCP bridge at
    ``host``:``tcp_port``, both required then), ``port`` (e.g. "/dev/ttyUSB0", or
    "socket://host:port"), ``baudrate`` (115200), ``timeout_s`` (1.0: reply
    timeout per command), ``retries`` (2), ``heartbeat_interval_s`` (10,
    whole seconds, 0 = off: ``$SY`` supervision; the controller falls back to
    ``heartbeat_current_a`` by itself when the agent stops feeding it),
    ``heartbeat_current_a`` (0), ``sequence_ids`` (true; false for firmware
    before RAPI 3.0), ``meter_phases`` (1 or 3: phases for the meter from the
    controller's counters).

``phoenix_em_cp_pp_eth`` (Phoenix Contact EM-CP-PP-ETH, Modbus TCP)
    ``transport`` ("tcp"), ``host`` (required), ``tcp_port`` (502),
    ``device_id`` (180), ``timeout_s`` (0.5), ``retries`` (1).
"""

from hal.errors import HalConfigurationError

DRIVERS = ("simpleevse_wb", "openevse_rapi", "phoenix_em_cp_pp_eth")

COMMON_KEYS = ("driver", "poll_interval_s", "offline_after", "max_current_a")
MODBUS_KEYS = ("transport", "port", "baudrate", "parity", "stopbits", "bytesize", "host", "tcp_port",
               "device_id", "timeout_s", "retries")
KEYS = {
    "simpleevse_wb": COMMON_KEYS + MODBUS_KEYS + ("boot_current_zero",),
    "openevse_rapi": COMMON_KEYS + ("transport", "port", "baudrate", "host", "tcp_port", "timeout_s", "retries",
                                    "heartbeat_interval_s", "heartbeat_current_a", "sequence_ids",
                                    "meter_phases"),
    "phoenix_em_cp_pp_eth": COMMON_KEYS + MODBUS_KEYS,
}
SIMPLEEVSE_BUS_DEFAULTS = {"transport": "rtu", "baudrate": 9600, "parity": "N", "stopbits": 1, "timeout_s": 0.5,
                           "retries": 1}
PHOENIX_BUS_DEFAULTS = {"transport": "tcp", "tcp_port": 502, "timeout_s": 0.5, "retries": 1}


def _check_keys(section: dict) -> str:
    driver = section.get("driver")
    if driver not in KEYS:
        raise HalConfigurationError("unknown evse driver %r (known: %s)" % (driver, ", ".join(DRIVERS)))
    unknown = sorted(k for k in section if k not in KEYS[driver])
    if unknown:
        raise HalConfigurationError("[evse] driver %s: unknown key(s) %s (known: %s)"
                                    % (driver, ", ".join(unknown), ", ".join(KEYS[driver])))
    return driver


def _common(section: dict, clock) -> dict:
    out = {"clock": clock}
    for k in ("poll_interval_s", "offline_after", "max_current_a"):
        if k in section:
            out[k] = section[k]
    return out


def build_evse(section: dict, registry, clock):
    """The ``EvseController`` of a board's ``[evse]`` section (see the module doc for
    the keys). ``registry`` is the board's ``hal.modbus.BusRegistry`` (Modbus drivers
    share a port with the meter through it); ``clock`` has ``time``, ``monotonic``
    and ``sleep``. No I/O."""
    driver = _check_keys(section)
    if driver == "simpleevse_wb":
        from hal.evse_simpleevse import SimpleEvseWb
        from hal.modbus import bus_settings

        bus = registry.get(**bus_settings(section, SIMPLEEVSE_BUS_DEFAULTS))
        return SimpleEvseWb(bus, section.get("device_id", 1), boot_current_zero=section.get("boot_current_zero", True),
                            **_common(section, clock))
    if driver == "phoenix_em_cp_pp_eth":
        from hal.evse_phoenix import DEFAULT_UNIT, PhoenixEmCpPpEth
        from hal.modbus import bus_settings

        settings = bus_settings(section, PHOENIX_BUS_DEFAULTS)
        if settings.get("transport") == "tcp" and not settings.get("host"):
            raise HalConfigurationError("[evse] driver phoenix_em_cp_pp_eth needs host (the controller's address)")
        bus = registry.get(**settings)
        return PhoenixEmCpPpEth(bus, section.get("device_id", DEFAULT_UNIT), **_common(section, clock))
    from hal.evse_rapi import OpenEvseRapi
    from hal.serial_port import SerialPort

    transport = section.get("transport", "serial")
    if transport == "tcp":
        if not section.get("host") or not section.get("tcp_port"):
            raise HalConfigurationError("[evse] openevse_rapi over tcp needs host and tcp_port")
        port = "socket://%s:%d" % (section["host"], section["tcp_port"])
    elif transport == "serial":
        port = section.get("port")
        if not port:
            raise HalConfigurationError("[evse] openevse_rapi needs port (e.g. /dev/ttyUSB0)")
    else:
        raise HalConfigurationError("[evse] openevse_rapi transport must be serial or tcp, not %r" % (transport,))
    link = SerialPort(port, baudrate=section.get("baudrate", 115200))
    options = _common(section, clock)
    for k in ("timeout_s", "retries", "heartbeat_interval_s", "heartbeat_current_a", "sequence_ids"):
        if k in section:
            options[k] = section[k]
    return OpenEvseRapi(link, **options)


def build_evse_meter(section: dict, evse):
    """The meter ``evse`` provides from its own counters, or None if its driver has
    none. Used by the board loader when the board has no ``[meter]`` section."""
    driver = _check_keys(section)
    if driver == "phoenix_em_cp_pp_eth":
        # The meter wired to the controller, read through it: same endpoint and unit.
        from hal.modbus_meter import ModbusMeter, load_register_map

        return ModbusMeter(evse.bus, evse.device_id, load_register_map("phoenix_em_cp_pp_eth"),
                           clock=evse.clock, name="%s meter" % evse.name)
    if driver != "openevse_rapi":
        return None
    from hal.evse_rapi import OpenEvseMeter

    return OpenEvseMeter(evse, phases=section.get("meter_phases", 1))
