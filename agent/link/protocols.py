"""The OCPP versions the link can speak: one entry per protocol adapter, newest first.

Each entry is a version (``"1.6"``), its OCPP-J websocket subprotocol
(``"ocpp1.6"``) and a loader for its adapter. ``load()`` imports the adapter's
modules — and through them the ``ocpp`` library's messages and schemas for
that version — only when it is called, for the version a charger uses: a
version that is not in use costs no memory and no start-up time.

``csms.ocpp_version`` (agent/app/config.py) chooses what the connection offers
in Sec-WebSocket-Protocol: ``"auto"`` offers every adapter marked ``auto`` in
order of preference, newest first, and the central system selects one; a
version offers only that one. An adapter with ``auto=False`` (none today; for a
version still experimental) is spoken only when its version is pinned.

An adapter builds the station's link with ``build_client(station, context)``:
``context`` (``ClientContext``) carries what the application has for any
version (configuration, clock, traffic log, data_dir) and the 1.6 configuration
keys, which only the 1.6 client takes.

Portable: no I/O, nothing imported until an adapter is loaded.
"""

AUTO = "auto"
PLANNED = ("2.1",)  # the versions whose adapters are not written yet


class ClientContext:
    """What the application hands an adapter to build the station's link with."""

    __slots__ = ("station_id", "clock", "response_timeout_s", "serial_number", "firmware_version", "traffic_log",
                 "data_dir", "keys", "ocpp201", "security", "certificates", "logs", "updates")

    def __init__(self, station_id: str, clock, response_timeout_s: float = 30.0, serial_number: str = "",
                 firmware_version: str = "", traffic_log=None, data_dir: str | None = None, keys=None,
                 ocpp201: dict | None = None, security=None, certificates=None, logs=None, updates=None) -> None:
        self.station_id = station_id
        self.clock = clock
        self.response_timeout_s = response_timeout_s
        self.serial_number = serial_number
        self.firmware_version = firmware_version
        self.traffic_log = traffic_log  # callable(direction, text)
        self.data_dir = data_dir  # where an adapter keeps its own state (2.0.1: device-model.json)
        self.keys = keys  # the 1.6 ConfigurationStore (only the 1.6 client takes it)
        self.ocpp201 = ocpp201 or {}  # the configuration's [ocpp201] table: initial device model values
        self.security = security  # the SecurityContext: certificates, identity, security log
        self.certificates = certificates  # the CertificateService (agent/security/service.py)
        self.logs = logs  # the LogService serving GetLog (agent/transfer/logs.py)
        self.updates = updates  # the UpdateService (agent/update/service.py), None without one

    def attach_services(self, client):
        """Give ``client`` the station's services: security, certificates, logs, updates."""
        client.attach_security(self.security, self.certificates)
        client.logs = self.logs
        client.updates = self.updates
        return client


class Adapter:
    """A loaded protocol adapter: the station's link to the central system
    (``client_class``, built by ``build_client``) and the handling of one
    connection (``session_class``)."""

    __slots__ = ("client_class", "session_class", "_build", "charge_point_class", "drain_sender")

    def __init__(self, client_class, session_class, build=None, charge_point_class=None, drain_sender=None) -> None:
        self.client_class = client_class
        self.session_class = session_class
        self._build = build  # (station, ClientContext) -> client
        self.charge_point_class = charge_point_class  # the ocpp library's ChargePoint of the version
        # (station, session_getter, clock, wake, backend, on_idle) -> an outbox sender delivering an
        # earlier backend's entries over a drain connection (agent/link/drain.py)
        self.drain_sender = drain_sender

    def build_client(self, station, context: ClientContext):
        """The station's link for this version."""
        if self._build is not None:
            return self._build(station, context)
        return self.client_class(station, context.station_id, context.clock,
                                 response_timeout_s=context.response_timeout_s)


class Protocol:
    """One OCPP version the agent can speak; ``auto`` False: only when pinned."""

    __slots__ = ("version", "subprotocol", "_loader", "auto")

    def __init__(self, version: str, subprotocol: str, loader, auto: bool = True) -> None:
        self.version = version
        self.subprotocol = subprotocol
        self._loader = loader  # () -> Adapter, importing the adapter's modules
        self.auto = auto  # offered by csms.ocpp_version = "auto"

    def load(self) -> Adapter:
        return self._loader()

    def __repr__(self) -> str:
        return "Protocol(%s, %s)" % (self.version, self.subprotocol)


def _load_ocpp16() -> Adapter:
    from ocpp.v16 import ChargePoint

    from agent.ocpp16.client import Ocpp16Client, call_on
    from agent.ocpp16.outbox_sender import OutboxSender
    from agent.ocpp16.session import Ocpp16Session

    def build(station, ctx: ClientContext):
        client = Ocpp16Client(station, ctx.station_id, ctx.clock, response_timeout_s=ctx.response_timeout_s,
                            serial_number=ctx.serial_number, firmware_version=ctx.firmware_version,
                            traffic_log=ctx.traffic_log, keys=ctx.keys)
        return ctx.attach_services(client)

    def drain_sender(station, session_of, clock, wake, backend, on_idle):
        return OutboxSender(station, lambda payload: call_on(session_of(), payload), clock, wake,
                            backend=backend, update_auth_cache=False, on_idle=on_idle)

    return Adapter(Ocpp16Client, Ocpp16Session, build, ChargePoint, drain_sender)


def _load_ocpp201() -> Adapter:
    from ocpp.v201 import ChargePoint

    from agent.ocpp201.client import Ocpp201Client, call_on
    from agent.ocpp201.outbox_sender import OutboxSender
    from agent.ocpp201.session import Ocpp201Session

    def build(station, ctx: ClientContext):
        client = Ocpp201Client(station, ctx.station_id, ctx.clock, response_timeout_s=ctx.response_timeout_s,
                             serial_number=ctx.serial_number, firmware_version=ctx.firmware_version,
                             traffic_log=ctx.traffic_log, data_dir=ctx.data_dir, initial=ctx.ocpp201)
        return ctx.attach_services(client)

    def drain_sender(station, session_of, clock, wake, backend, on_idle):
        return OutboxSender(station, lambda action, payload: call_on(session_of(), action, payload), clock, wake,
                            backend=backend, update_auth_cache=False, on_idle=on_idle)

    return Adapter(Ocpp201Client, Ocpp201Session, build, ChargePoint, drain_sender)


# Enabled adapters, newest first: the order "auto" offers them in.
PROTOCOLS = (
    Protocol("2.0.1", "ocpp2.0.1", _load_ocpp201),
    Protocol("1.6", "ocpp1.6", _load_ocpp16),
)


def choices() -> tuple:
    """The values ``csms.ocpp_version`` accepts: "auto" and every enabled version."""
    return (AUTO,) + tuple(p.version for p in PROTOCOLS)


def version_problem(value: str) -> str:
    """Why ``value`` cannot be ``csms.ocpp_version`` ("" when it can)."""
    if value == AUTO or any(p.version == value for p in PROTOCOLS):
        return ""
    possible = ", ".join('"%s"' % c for c in choices())
    if value in PLANNED:
        return "OCPP %s is not available yet (possible values: %s)" % (value, possible)
    return "unknown OCPP version %r (possible values: %s)" % (value, possible)


def offered(ocpp_version: str = AUTO) -> tuple:
    """The protocols a connection offers for ``csms.ocpp_version``, in order of preference."""
    if ocpp_version == AUTO:
        return tuple(p for p in PROTOCOLS if p.auto)
    chosen = tuple(p for p in PROTOCOLS if p.version == ocpp_version)
    if not chosen:
        raise ValueError(version_problem(ocpp_version))
    return chosen


def by_subprotocol(subprotocol: str | None):
    """The enabled protocol with websocket subprotocol ``subprotocol``, or None."""
    for p in PROTOCOLS:
        if p.subprotocol == subprotocol:
            return p
    return None


def show(ocpp_version: str, selected: str | None = None) -> dict:
    """The fields ``csms show`` and the status page report: the OCPP version and
    subprotocol in use (``selected``: the open or the last connection's; None
    before one opened), the setting and what it offers."""
    protocol = by_subprotocol(selected)
    return {"ocpp_version": protocol.version if protocol is not None else None, "subprotocol": selected,
            "ocpp_version_setting": ocpp_version,
            "subprotocols_offered": [p.subprotocol for p in offered(ocpp_version)]}


def describe(fields: dict, connected: bool) -> str:
    """``show()``'s fields in words: "1.6 (subprotocol ocpp1.6; csms.ocpp_version = auto: offers ocpp1.6)"."""
    setting = "csms.ocpp_version = %s: offers %s" % (fields["ocpp_version_setting"],
                                                     ", ".join(fields["subprotocols_offered"]))
    if fields.get("subprotocol") is None:
        return "not negotiated yet (%s)" % setting
    return "%s%s (subprotocol %s; %s)" % (fields["ocpp_version"] or "unknown",
                                          "" if connected else " at the last connection", fields["subprotocol"],
                                          setting)
