"""Delivering what is queued for an earlier central system, over a connection of its own.

After the charger moved (agent/link/switch.py), transaction messages of
transactions that started under the earlier central system still belong to
it. A ``Drain`` connects there with that backend's settings and delivers them
in order with the OCPP adapter's ``OutboxSender`` (the same sending code and
retry rules as the main connection), then closes. Its answers confirm the
transactions but stay out of the current central system's authorization cache;
requests from that central system get CALLERROR NotSupported (``DrainSession``).
"""

import asyncio
import logging

from agent.link.connection import CsmsConnection
from agent.link.endpoint import EndpointSettings
from agent.link.protocols import by_subprotocol
from agent.ocppj.link import first_of
from agent.ocppj.session import FramedSession, call_error

log = logging.getLogger(__name__)


class Drain:
    """One connection to an earlier backend, delivering what is queued for it."""

    def __init__(self, manager, settings: EndpointSettings) -> None:
        """``manager``: the EndpointManager (agent/link/switch.py) whose backend this was."""
        self.settings = settings
        cfg = manager.config.csms
        self.client = DrainClient(manager.station, settings.key, manager.clock, traffic=manager.traffic,
                                  on_idle=manager._kick)
        conn_settings = dict(cfg)
        conn_settings.update(url=settings.connect_url, station_id=settings.station_id,
                             password=settings.password, ca_file=settings.ca_file)
        self._session_classes: dict = {}  # subprotocol -> DrainSession class of that version
        self.connection = CsmsConnection(self.client, conn_settings, manager.clock, manager.connection.offered,
                                         self._session, rng=manager.rng)
        manager.station.outbox.listeners.append(self.client.wake)
        self._outbox = manager.station.outbox
        self.task = asyncio.create_task(self.connection.run())

    def _session(self, station_id: str, ws):
        """A DrainSession in the version the earlier backend selected (it may differ from the
        current backend's: a move between a 1.6 and a 2.0.1 central system)."""
        adapter = by_subprotocol(ws.subprotocol).load()
        cls = self._session_classes.get(ws.subprotocol)
        if cls is None:
            cls = self._session_classes[ws.subprotocol] = type(
                "DrainSession", (DrainSession, adapter.charge_point_class), {})
        self.client.use(adapter, ws.subprotocol)
        return cls(station_id, ws, self.client, self.connection.settings["response_timeout_s"])

    async def close(self) -> None:
        if self.client.wake in self._outbox.listeners:
            self._outbox.listeners.remove(self.client.wake)
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


class DrainClient:
    """Delivers the transaction messages held for one earlier central system, in order
    and with the usual retry rules (the adapter's ``OutboxSender``, in the version that
    central system speaks), over a connection of its own. It does not boot (that central
    system accepted this charger before), sends nothing else and runs no commands from
    that central system (``DrainSession``). Its answers confirm the transactions but stay
    out of the current central system's authorization cache."""

    boot_accepted = True  # for CsmsConnection: a session ending resets the reconnect backoff

    def __init__(self, station, backend: str, clock, traffic=None, on_idle=None) -> None:
        self.station = station  # CsmsConnection reads its settings (WebSocketPingInterval)
        self.backend = backend
        self.clock = clock
        self.traffic = traffic
        self.on_idle = on_idle
        self.session = None
        self.sender = None  # the selected version's OutboxSender (``use``)
        self._senders: dict = {}  # subprotocol -> sender

    def use(self, adapter, subprotocol: str) -> None:
        """Send with ``adapter``'s OutboxSender (the version the connection selected)."""
        sender = self._senders.get(subprotocol)
        if sender is None:
            sender = self._senders[subprotocol] = adapter.drain_sender(
                self.station, lambda: self.session, self.clock, asyncio.Event(), self.backend, self.on_idle)
        self.sender = sender

    def wake(self, entry=None) -> None:
        """An outbox listener: something may have changed for this backend."""
        if self.sender is not None:
            self.sender.wake.set()

    def record(self, direction: str, text: str) -> None:
        if self.traffic is not None:
            self.traffic.record(direction, text, via=self.backend)

    async def run_session(self, session) -> None:
        self.session = session
        reader = asyncio.create_task(session.start())
        sender = asyncio.create_task(self.sender.run(lambda: self.session is session))
        try:
            await first_of(reader, sender)
        except Exception as e:
            log.info("drain session to %s ended: %s", self.backend, e)
        finally:
            self.session = None
            for t in (reader, sender):
                t.cancel()
            await asyncio.gather(reader, sender, return_exceptions=True)


class DrainSession(FramedSession):
    """An OCPP connection that only carries the drain client's calls and their answers;
    a request from the central system gets CALLERROR NotSupported. Mixed with the
    version's ChargePoint (``Drain._session``)."""

    def __init__(self, station_id: str, connection, client: DrainClient, response_timeout: float) -> None:
        super().__init__(station_id, connection, response_timeout=response_timeout, logger=log)
        self.client = client

    async def handle_call(self, uid: str, action: str, payload: dict) -> None:
        await self._send(call_error(uid, "NotSupported", "this connection only delivers queued transaction messages"))
