"""The OCPP versions the link can speak: one entry per protocol adapter, newest first.

Each entry is a version (``"1.6"``), its OCPP-J websocket subprotocol
(``"ocpp1.6"``) and a loader for its adapter. ``load()`` imports the adapter's
modules — and through them the ``ocpp`` library's messages and schemas for
that version — only when it is called, for the version a charger uses: a
version that is not in use costs no memory and no start-up time.

``csms.ocpp_version`` (agent/app/config.py) chooses what the connection offers
in Sec-WebSocket-Protocol: ``"auto"`` offers every enabled adapter in order of
preference, newest first, and the central system selects one; a version
offers only that one.

Portable: no I/O, nothing imported until an adapter is loaded.
"""

AUTO = "auto"
PLANNED = ("2.0.1", "2.1")  # the versions whose adapters are not written yet


class Adapter:
    """A loaded protocol adapter: the station's link to the central system
    (``client_class``) and the handling of one connection (``session_class``)."""

    __slots__ = ("client_class", "session_class")

    def __init__(self, client_class, session_class) -> None:
        self.client_class = client_class
        self.session_class = session_class


class Protocol:
    """One OCPP version the agent can speak."""

    __slots__ = ("version", "subprotocol", "_loader")

    def __init__(self, version: str, subprotocol: str, loader) -> None:
        self.version = version
        self.subprotocol = subprotocol
        self._loader = loader  # () -> Adapter, importing the adapter's modules

    def load(self) -> Adapter:
        return self._loader()

    def __repr__(self) -> str:
        return "Protocol(%s, %s)" % (self.version, self.subprotocol)


def _load_ocpp16() -> Adapter:
    from agent.ocpp16.client import Ocpp16Client
    from agent.ocpp16.session import Ocpp16Session

    return Adapter(Ocpp16Client, Ocpp16Session)


# Enabled adapters, newest first: the order "auto" offers them in.
PROTOCOLS = (
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
        return PROTOCOLS
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
