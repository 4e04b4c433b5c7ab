"""``ocpp-agent doctor``: probe every configured device and the central system.

Each device of the board is opened on its own, asked one harmless question
and closed again: the meter is read, the EVSE controller is opened (which puts
it in its safe, non-delivering state) and its pilot state reported, the
contactor's output is requested *off* and its feedback read (it is never
switched on), the RFID reader is woken and asked its firmware version. Then
the central system: name lookup, TCP connection, TLS handshake (wss://) and
the websocket handshake with the configured credentials, offering the
subprotocols of ``csms.ocpp_version`` as the agent does (``ocpp1.6``), and the
OCPP version the central system selects — no BootNotification is sent, so the
backend sees nothing but a connection that closes at once.

Run it with the agent stopped: the probes need the serial ports and GPIO
lines the agent would hold, and opening a controller stops any charging.

Every problem is one row of the table with what it means in words an
installer can act on: a missing port, permission denied, no answer from a
device at the configured address and line settings, garbled answers (wrong
parity or baud rate suspected), a device that answers as another model would,
a GPIO chip that does not exist, a TLS certificate that does not verify, a
401 from the backend. Last, the file modes of the secrets (the warnings the
agent gives at start, agent/app/file_modes.py). Exit status: 0 when every check passed, 1 when one
failed (2 for a configuration file that cannot be read, from the CLI).
"""

import asyncio
import socket
import ssl
import time
import urllib.parse

from boards import NONE, build_device, controller_meter, read_definition
from hal.runtime.aio import wait_for
from hal.errors import CommunicationError, HalConfigurationError
from hal.interfaces import NO_ERROR

OK, FAIL, WARN, SKIP = "OK", "FAIL", "WARN", "SKIP"
DEVICE_ORDER = ("meter", "evse", "contactor", "reader", "lock")
PROBE_LIMIT_S = 15.0  # no single device probe may take longer than this


class Check:
    """One row of the doctor's table."""

    __slots__ = ("check", "where", "result", "details")

    def __init__(self, check: str, where: str, result: str, details: str = "") -> None:
        self.check = check
        self.where = where
        self.result = result
        self.details = details

    def __repr__(self) -> str:
        return "Check(%r, %r, %r, %r)" % (self.check, self.where, self.result, self.details)


def format_table(rows: list, title: str = "") -> str:
    headers = ("CHECK", "WHERE", "RESULT", "DETAILS")
    cells = [headers] + [(r.check, r.where, r.result, r.details) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(3)]
    lines = [title, ""] if title else []
    for c in cells:
        lines.append(("%-*s  %-*s  %-*s  %s" % (widths[0], c[0], widths[1], c[1], widths[2], c[2], c[3])).rstrip())
    failed = sum(1 for r in rows if r.result == FAIL)
    warned = sum(1 for r in rows if r.result == WARN)
    lines.append("")
    if failed:
        lines.append("%d of %d checks failed%s." % (failed, len(rows), ", %d warnings" % warned if warned else ""))
    else:
        lines.append("All %d checks passed%s." % (len(rows), " (%d warnings)" % warned if warned else ""))
    return "\n".join(lines)


# ------------------------------------------------------------------------------ devices

def _fmt(v, spec: str) -> str:
    return "?" if v is None else spec % v


def describe_reading(r) -> str:
    parts = ["%s kWh" % _fmt(None if r.energy_wh is None else r.energy_wh / 1000.0, "%.3f")]
    if r.power_w is not None:
        parts.append("%.0f W" % r.power_w)
    for values, unit in ((r.voltage_v, "V"), (r.current_a, "A")):
        values = list(values or ())
        while values and values[-1] is None:  # a single-phase meter: L1 only
            values.pop()
        if values:
            parts.append("/".join(_fmt(v, "%.1f") for v in values) + " " + unit)
    if r.frequency_hz is not None:
        parts.append("%.2f Hz" % r.frequency_hz)
    return ", ".join(parts)


def _line_settings(bus) -> str:
    return "%d %d%s%d" % (bus.baudrate, bus.bytesize, bus.parity, bus.stopbits)


def _bus_where(bus, device_id) -> str:
    if bus.transport == "rtu":
        return "%s %s id %d" % (bus.port, _line_settings(bus), device_id)
    return "tcp://%s:%d id %d" % (bus.host, bus.tcp_port, device_id)


def _table_where(table: dict) -> str:
    if table.get("transport") == "tcp" or (table.get("host") and not table.get("port")):
        return "tcp://%s:%s" % (table.get("host", "?"), table.get("tcp_port", 502))
    out = str(table.get("port", ""))
    if table.get("baudrate"):
        out += " %s" % table["baudrate"]
    if table.get("device_id") is not None:
        out += " id %s" % table["device_id"]
    return out.strip()


def explain_modbus_error(e: Exception, bus, device_id: int, model: str = "") -> str:
    """An installer's reading of a Modbus failure."""
    from hal.modbus import ModbusConnectionError, ModbusExceptionError, ModbusFrameError, ModbusTimeoutError

    if isinstance(e, ModbusConnectionError):
        return str(e)
    if isinstance(e, ModbusTimeoutError):
        if bus.transport == "rtu":
            return ("no answer from device %d at %s (check device_id, baudrate and parity against the device's "
                    "settings, and the A/B wiring)" % (device_id, _line_settings(bus)))
        return ("no answer from unit %d at %s:%d (the connection works: check device_id, the unit id of a "
                "gateway)" % (device_id, bus.host, bus.tcp_port))
    if isinstance(e, ModbusFrameError):
        return ("garbled answers from device %d (CRC/framing errors): wrong parity or baud rate suspected "
                "(configured %s), or noise: check termination and the A/B wiring"
                % (device_id, _line_settings(bus) if bus.transport == "rtu" else "tcp"))
    if isinstance(e, ModbusExceptionError):
        return ("device %d answers but refuses the request: %s%s" % (
            device_id, str(e).split(": ")[-1], " (is it really a %s?)" % model if model else ""))
    return str(e)


def _config_text(e: HalConfigurationError) -> str:
    """A configuration error for the table: the row names the device, the key ends the text."""
    msg = str(e)
    if msg.startswith("board ") and "] " in msg:
        msg = msg.split("] ", 1)[1]
    return "%s (%s)" % (msg, e.key) if e.key else msg


def serial_port_problem(port: str) -> str:
    """Why a serial ``port`` cannot be opened, or '' (URLs such as socket:// are not checked)."""
    import os

    if "://" in port:
        return ""
    if not os.path.exists(port):
        return "%s: port does not exist (is the adapter plugged in? see ls /dev/serial/by-id/)" % port
    if not os.access(port, os.R_OK | os.W_OK):
        return "%s: permission denied (is the user in the dialout group?)" % port
    return ""


class _NotAnswering(CommunicationError):
    """A controller driver opened its port, but the controller never answered."""


def explain_silence(last_error: str, bus, device_id) -> str:
    """The reading of a driver's last error text (drivers keep the text, not the exception)."""
    if bus is not None and device_id is not None:
        from hal.modbus import ModbusFrameError, ModbusTimeoutError

        if "no answer within" in last_error:
            return explain_modbus_error(ModbusTimeoutError(last_error), bus, device_id)
        if "garbled answer" in last_error:
            return explain_modbus_error(ModbusFrameError(last_error), bus, device_id)
    return "controller not answering: %s" % last_error


async def _close_quietly(device) -> None:
    try:
        await device.close()
    except Exception:  # the probe's result matters more than a failing close
        pass


async def probe_meter(table: dict, clock, timeout_s: float, label: str = "meter") -> list:
    from hal.modbus import BusRegistry, ModbusTimeoutError

    check = "%s %s" % (label, table.get("driver", "?"))
    table = dict(table)
    table.setdefault("timeout_s", timeout_s)
    table.setdefault("retries", 1)
    try:
        meter = build_device("meter", table, BusRegistry(), clock)
    except HalConfigurationError as e:
        return [Check(check, _table_where(table), FAIL, _config_text(e))]
    if meter is None:
        return [Check(check, "-", SKIP, "no meter (driver = \"none\")")]
    bus = meter.bus
    where = _bus_where(bus, meter.device_id)
    try:
        await meter.open()
        reading = await meter.read()
    except CommunicationError as e:
        details = explain_modbus_error(e, bus, meter.device_id, meter.register_map.model)
        await _close_quietly(meter)
        if isinstance(e, ModbusTimeoutError):
            hint = await _hint_alternatives(meter, table, clock, timeout_s)
            if hint:
                details += "; " + hint
        return [Check(check, where, FAIL, details)]
    finally:
        await _close_quietly(meter)
    missing = [f for f in ("energy_wh",) if getattr(reading, f) is None]
    if missing:
        return [Check(check, where, WARN, "answers, but the energy register is not available: " +
                      describe_reading(reading))]
    return [Check(check, where, OK, describe_reading(reading) + _unverified(meter))]


def _unverified(meter) -> str:
    """A note for a meter whose register map is marked ``verified = false``."""
    register_map = getattr(meter, "register_map", None)
    if register_map is None or register_map.verified:
        return ""
    return " (register map %s unverified: compare with the meter's own display)" % register_map.name


async def _hint_alternatives(meter, table: dict, clock, timeout_s: float) -> str:
    """After silence: does the meter answer at its factory address, or with another parity?"""
    from hal.modbus import BusRegistry

    tries = []
    factory_id = meter.register_map.defaults.get("device_id", 1)
    if meter.device_id != factory_id:
        tries.append(("device_id", factory_id, dict(table, device_id=factory_id)))
    if meter.bus.transport == "rtu":
        for parity in ("N", "E", "O"):
            if parity != meter.bus.parity:
                tries.append(("parity", parity, dict(table, parity=parity)))
    for key, value, alt in tries:
        alt.update(timeout_s=min(timeout_s, 0.5), retries=0)
        try:
            other = build_device("meter", alt, BusRegistry(), clock)
            await other.open()
            await other.read_values()
        except (CommunicationError, HalConfigurationError):
            continue
        finally:
            try:
                await other.close()
            except Exception:
                pass
        return "but a %s answers with %s = %r: set board.meter.%s = %r?" % (
            meter.register_map.model, key, value, key, value)
    return ""


async def probe_evse(table: dict, clock, timeout_s: float, has_meter_section: bool) -> list:
    from hal.modbus import BusRegistry

    driver = table.get("driver", "?")
    check = "evse %s" % driver
    if driver == "sim":
        return [Check(check, "simulated", OK, "simulated controller and EV (no hardware)")]
    table = dict(table)
    if table.get("port") and table.get("transport", "rtu") == "rtu":
        problem = serial_port_problem(table["port"])
        if problem:
            return [Check(check, _table_where(table), FAIL, problem)]
    try:
        evse = build_device("evse", table, BusRegistry(), clock)
    except HalConfigurationError as e:
        return [Check(check, _table_where(table), FAIL, _config_text(e))]
    bus = getattr(evse, "bus", None)
    device_id = getattr(evse, "device_id", table.get("device_id"))
    where = _bus_where(bus, device_id) if bus is not None and device_id is not None else _table_where(table)
    rows = []
    try:
        await wait_for(evse.open(), PROBE_LIMIT_S)
        if getattr(evse, "online", True) is False:  # opened, but the controller never answered
            raise _NotAnswering(getattr(evse, "last_error", "") or "controller not answering")
        st = evse.status
        details = "pilot state %s%s, %s, offers %g..%g A" % (
            st.cp_state, {"A": " (no EV)", "B": " (EV connected)", "C": " (EV charging)"}.get(st.cp_state, ""),
            st.error_code, evse.min_current_a, evse.max_current_a)
        if st.vendor_error_code:
            details += " (%s)" % st.vendor_error_code
        rows.append(Check(check, where, OK if st.error_code == NO_ERROR else FAIL, details))

        meter = None if has_meter_section else controller_meter(table, evse)
        if meter is not None:
            try:
                reading = await wait_for(meter.read(), PROBE_LIMIT_S)
                rows.append(Check("meter (controller)", where, OK, describe_reading(reading) + _unverified(meter)))
            except CommunicationError as e:
                rows.append(Check("meter (controller)", where, FAIL, str(e)))
    except _NotAnswering as e:
        rows.append(Check(check, where, FAIL, explain_silence(str(e), bus, device_id)))
    except CommunicationError as e:
        text = explain_modbus_error(e, bus, device_id) if bus is not None and device_id is not None else str(e)
        rows.append(Check(check, where, FAIL, text))
    except asyncio.TimeoutError:
        rows.append(Check(check, where, FAIL, "no answer within %g s" % PROBE_LIMIT_S))
    finally:
        await _close_quietly(evse)
    return rows


async def probe_contactor(table: dict, clock) -> list:

    check = "contactor %s" % table.get("driver", "?")
    if table.get("driver") == "sim":
        return [Check(check, "simulated", OK, "simulated contactor")]
    where = "%s line %s" % (table.get("chip", "/dev/gpiochip0"), table.get("line", "?"))
    try:
        relay = build_device("contactor", table, None, clock)
    except HalConfigurationError as e:
        return [Check(check, where, FAIL, _config_text(e))]
    if relay is None:
        return [Check(check, "-", SKIP, "no contactor (driver = \"none\")")]
    where = relay.describe()
    from hal.gpio_relay import gpio_chip_problem

    for chip in {relay.chip, relay.feedback_chip}:
        problem = gpio_chip_problem(chip)
        if problem:
            return [Check(check, where, FAIL, problem)]
    try:
        await relay.open()
        feedback = relay.read_feedback_now()
    except CommunicationError as e:
        return [Check(check, where, FAIL, str(e))]
    except HalConfigurationError as e:
        return [Check(check, where, FAIL, str(e))]
    finally:
        await _close_quietly(relay)
    if feedback is None:
        return [Check(check, where, OK, "output requested and off (not switched); no feedback contact")]
    if feedback:
        return [Check(check, where, FAIL, "feedback reads CLOSED with the output off: welded contactor, "
                      "or feedback wiring / feedback_active_low wrong")]
    return [Check(check, where, OK, "output requested and off (not switched); feedback reads open")]


async def probe_reader(table: dict, clock) -> list:

    check = "reader %s" % table.get("driver", "?")
    if table.get("driver") == "sim":
        return [Check(check, "simulated", OK, "simulated reader (swipe with ocpp-agent sim swipe)")]
    where = "%s %s" % (table.get("port", "?"), table.get("baudrate", 115200))
    if table.get("port"):
        problem = serial_port_problem(table["port"])
        if problem:
            return [Check(check, where, FAIL, problem)]
    try:
        reader = build_device("reader", table, None, clock)
    except HalConfigurationError as e:
        return [Check(check, where, FAIL, _config_text(e))]
    if reader is None:
        return [Check(check, "-", SKIP, "no reader (driver = \"none\")")]
    try:
        uid = await wait_for(reader.poll(), PROBE_LIMIT_S)
    except CommunicationError as e:
        return [Check(check, where, FAIL, str(e))]
    except asyncio.TimeoutError:
        return [Check(check, where, FAIL, "no answer within %g s" % PROBE_LIMIT_S)]
    finally:
        await _close_quietly(reader)
    card = "card %s in the field" % uid if uid else "no card in the field"
    return [Check(check, where, OK, "PN532 firmware %s, %s" % (reader.firmware_version, card))]


async def probe_devices(definition: dict, clock, timeout_s: float) -> list:
    rows = []
    for section in DEVICE_ORDER:
        table = definition.get(section)
        if table is None:
            continue
        driver = table.get("driver")
        if section == "meter" and driver == "sim":
            rows.append(Check("meter sim", "simulated", OK, "simulated meter"))
        elif section == "meter":
            rows.extend(await probe_meter(table, clock, timeout_s))
        elif section == "evse":
            has_meter = definition.get("meter", {}).get("driver", NONE) != NONE
            rows.extend(await probe_evse(table, clock, timeout_s, has_meter))
        elif section == "contactor":
            rows.extend(await probe_contactor(table, clock))
        elif section == "reader":
            rows.extend(await probe_reader(table, clock))
        else:
            rows.append(Check("%s %s" % (section, driver), "-", OK if driver in ("sim", "none") else WARN,
                              "not probed"))
    return rows


# ------------------------------------------------------------------------------ central system

async def probe_csms(url: str, station_id: str, password: str = "", ca_file: str = "",
                     timeout_s: float = 5.0, ocpp_version: str = "auto", roots_pem: str = "",
                     client_files: tuple | None = None, websocket: bool = True) -> list:
    """DNS, TCP, TLS and the websocket handshake offering the subprotocols of
    ``ocpp_version`` (``csms.ocpp_version``); no OCPP message is sent. ``roots_pem``: the
    CSMS root certificates installed over OCPP; ``client_files``: the charger certificate
    presented on security profile 3 (then without Basic auth). ``websocket=False`` stops
    before the handshake: a running agent (the diagnostics archive) is connected already,
    and a second connection with its identity could make the central system drop the first."""
    from websockets.exceptions import InvalidHandshake, InvalidStatus, WebSocketException

    from agent.link import protocols
    from agent.link.connection import SubprotocolError, basic_auth_header, open_websocket, ssl_context

    offered = [p.subprotocol for p in protocols.offered(ocpp_version)]

    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    secure = parts.scheme == "wss"
    port = parts.port or (443 if secure else 80)
    full_url = url.rstrip("/") + "/" + urllib.parse.quote(station_id, safe="")
    rows = []

    # 1. name lookup
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        address = host
        rows.append(Check("csms dns", host, OK, "an IP address: no lookup needed"))
    except OSError:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as e:
            rows.append(Check("csms dns", host, FAIL, "cannot resolve %s: %s (check the host name in csms.url, "
                              "and the DNS settings)" % (host, e.strerror or e)))
            return rows + _skipped(("csms tcp", "csms tls" if secure else None, "csms websocket"))
        addresses = sorted({i[4][0] for i in infos})
        address = addresses[0]
        rows.append(Check("csms dns", host, OK, ", ".join(addresses)))

    # 2. TCP
    where = "%s:%d" % (address, port)
    started = time.monotonic()
    try:
        _r, writer = await wait_for(asyncio.open_connection(address, port), timeout_s)
        writer.close()
        rows.append(Check("csms tcp", where, OK, "connected in %.0f ms" % ((time.monotonic() - started) * 1000)))
    except asyncio.TimeoutError:
        rows.append(Check("csms tcp", where, FAIL, "no answer within %g s (a firewall, or the wrong port?)"
                          % timeout_s))
        return rows + _skipped(("csms tls" if secure else None, "csms websocket"))
    except OSError as e:
        what = "connection refused: nothing listens on port %d" % port if isinstance(e, ConnectionRefusedError) \
            else (e.strerror or str(e))
        rows.append(Check("csms tcp", where, FAIL, what))
        return rows + _skipped(("csms tls" if secure else None, "csms websocket"))

    # 3. TLS
    context = ssl_context(url, ca_file, roots_pem, client_files)
    trusted = "CA from csms.ca_file" if ca_file else "installed CSMS root" if roots_pem else ""
    if secure:
        try:
            _r, writer = await wait_for(
                asyncio.open_connection(address, port, ssl=context, server_hostname=host), timeout_s)
            tls = writer.get_extra_info("ssl_object")
            version = tls.version() if tls is not None else "TLS"
            writer.close()
            rows.append(Check("csms tls", host, OK, "%s, certificate valid for %s%s%s" % (
                version, host, " (%s)" % trusted if trusted else "",
                ", charger certificate presented" if client_files else "")))
        except ssl.SSLCertVerificationError as e:
            rows.append(Check("csms tls", host, FAIL, "certificate verification failed: %s%s" % (
                e.verify_message, "" if trusted else " (a private CA? set csms.ca_file)")))
            return rows + _skipped(("csms websocket",))
        except (ssl.SSLError, OSError, asyncio.TimeoutError) as e:
            reason = getattr(e, "reason", None) or str(e) or "timed out"
            rows.append(Check("csms tls", host, FAIL, "TLS handshake failed: %s (is it really wss://?)" % reason))
            return rows + _skipped(("csms websocket",))

    if not websocket:
        return rows

    # 4. websocket handshake, no BootNotification
    headers = {"Authorization": basic_auth_header(station_id, password)} if password and not client_files else {}
    try:
        ws = await open_websocket(full_url, offered, headers=headers, ssl_context=context, open_timeout=timeout_s,
                                  close_timeout=2)
        try:
            version = protocols.by_subprotocol(ws.subprotocol).version
            rows.append(Check("csms websocket", full_url, OK, "handshake OK, OCPP %s (subprotocol %s)%s (no "
                              "BootNotification sent)" % (version, ws.subprotocol, ", Basic auth" if password else "")))
        finally:
            await ws.close()
    except SubprotocolError as e:
        rows.append(Check("csms websocket", full_url, FAIL, "handshake OK but %s" % e.describe()))
    except InvalidStatus as e:
        code = e.response.status_code
        if code == 401:
            text = ("HTTP 401 Unauthorized: the central system refused %s (station.id %r, csms.password)"
                    % ("the password" if password else "a connection without a password", station_id))
        elif code == 403:
            text = "HTTP 403 Forbidden: the central system does not accept station %r" % station_id
        elif code == 404:
            text = "HTTP 404 Not Found: check the path in csms.url and station.id %r" % station_id
        else:
            text = "HTTP %d from the central system" % code
        rows.append(Check("csms websocket", full_url, FAIL, text))
    except (InvalidHandshake, WebSocketException, OSError, asyncio.TimeoutError) as e:
        rows.append(Check("csms websocket", full_url, FAIL, "handshake failed: %s" % (
            "timed out" if isinstance(e, asyncio.TimeoutError) else e)))
    return rows


def _skipped(checks) -> list:
    return [Check(c, "-", SKIP, "not tried (the step before failed)") for c in checks if c]


# ------------------------------------------------------------------------------ the whole run

async def diagnose(config, *, timeout_s: float = 1.0, csms_timeout_s: float = 5.0, clock=None) -> list:
    """Every check for ``config`` (an ``agent.app.config.Config``), in table order."""
    from hal.runtime.clock import Clock

    clock = clock or Clock()
    board = config.station["board"]
    rows = []
    try:
        definition = read_definition(board, config.board)
    except HalConfigurationError as e:
        rows.append(Check("board %s" % board, config.path, FAIL, _config_text(e)))
        definition = {}
    rows.extend(await probe_devices(definition, clock, timeout_s))
    endpoint = endpoint_in_use(config)
    from agent.security.context import SecurityContext

    security = SecurityContext(config.data_dir, clock)  # the roots and certificate the agent would use
    client_files = security.certificate_files(endpoint.certificate or None) if endpoint.level == 3 else None
    rows.extend(await probe_csms(endpoint.url, endpoint.station_id, endpoint.password,
                                 endpoint.ca_file, csms_timeout_s, ocpp_version=config.csms["ocpp_version"],
                                 roots_pem=security.csms_roots_pem(), client_files=client_files))
    rows.append(check_file_modes(config))
    return rows


def check_file_modes(config) -> Check:
    """The findings the agent warns about at start (agent/app/file_modes.py), as one row."""
    from agent.app.file_modes import file_mode_findings

    findings = file_mode_findings(config)
    if findings:
        return Check("file modes", config.data_dir, WARN, "; ".join(findings))
    return Check("file modes", config.data_dir, OK, "secrets readable by the owner only")


def endpoint_in_use(config):
    """The central system settings the agent runs with: those in data_dir/endpoint.json
    (a move made over OCPP or a rollback lives there), unless the configuration file was
    edited since the agent last read it — then the file's, as the agent would switch to them."""
    from agent.link.endpoint import EndpointSettings, EndpointState

    from_file = EndpointSettings.from_config(config)
    state = EndpointState(EndpointState.path_in(config.data_dir))
    if state.load() and state.config_seen == from_file:
        return state.current
    return from_file


async def run_doctor(config, *, out=None, timeout_s: float = 1.0, csms_timeout_s: float = 5.0) -> int:
    """Print the table; 0 when every check passed, 1 otherwise."""
    import sys

    rows = await diagnose(config, timeout_s=timeout_s, csms_timeout_s=csms_timeout_s)
    title = "ocpp-agent doctor: %s (board %s, station %s)" % (config.path, config.station["board"],
                                                              config.station["id"])
    print(format_table(rows, title), file=out if out is not None else sys.stdout)
    return 1 if any(r.result == FAIL for r in rows) else 0
