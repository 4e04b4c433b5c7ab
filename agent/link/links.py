"""The station's link to the central system, per OCPP version.

With ``csms.ocpp_version = "auto"`` the connection offers every version and the
central system selects one, so the station may speak 1.6 on one connection and
2.0.1 on the next (a move to another backend, a backend upgraded in place).
``StationLinks`` holds one client per adapter (agent/link/protocols.py), built
the first time its version is selected, and makes the client of the selected
version the ``active`` one: the station's ``link``, the connection's client and
the one the endpoint manager boots and watches. Each client keeps its own
protocol state (boot, device model, sender); the station, its journal and its
outbox are shared, and a queued entry is sent by whichever client is active.

Portable: no I/O; adapters are loaded through the registry when first needed.
"""


class StationLinks:
    """The station's clients by OCPP version; ``active`` follows the negotiated one."""

    def __init__(self, station, context, eager=()) -> None:
        """``context``: the ClientContext every client is built with; ``eager``: the
        protocols (``Protocol``) whose clients are built now, the first of them active
        until a connection selects a version. Without one, no adapter is loaded before
        the first connection and the station's link is its default, never online."""
        self.station = station
        self.context = context
        self.adapters: dict = {}  # subprotocol -> Adapter
        self.clients: dict = {}  # subprotocol -> that adapter's client
        self.on_built: list = []  # callables(client): a new client to wire up (on_boot, …)
        self.on_activated: list = []  # callables(client): the active client changed
        self.active = None
        for protocol in eager:
            self.client_for(protocol)
        if eager:
            self.activate(eager[0])

    def adapter_for(self, protocol):
        adapter = self.adapters.get(protocol.subprotocol)
        if adapter is None:
            adapter = self.adapters[protocol.subprotocol] = protocol.load()
        return adapter

    def client_for(self, protocol):
        """The client speaking ``protocol``'s version, built on first use."""
        client = self.clients.get(protocol.subprotocol)
        if client is None:
            client = self.adapter_for(protocol).build_client(self.station, self.context)
            self.clients[protocol.subprotocol] = client
            if self.active is not None:
                self.station.link = self.active  # building a client claims the link: give it back
            for callback in self.on_built:
                callback(client)
        return client

    def activate(self, protocol):
        """Make ``protocol``'s client the active one (a connection selected its version)."""
        client = self.client_for(protocol)
        if client is not self.active:
            self.active = client
            self.station.link = client
            for callback in self.on_activated:
                callback(client)
        return client

    def all(self) -> list:
        return list(self.clients.values())
