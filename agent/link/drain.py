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

from ocpp.v16 import ChargePoint

from agent.link.connection import CsmsConnection
from agent.link.endpoint import EndpointSettings
from agent.ocppj.link import first_of
from agent.ocppj.session import FramedSession, call_error
from agent.ocpp16.codec import SUBPROTOCOL
from agent.ocpp16.outbox_sender import OutboxSender

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
        self.connection = CsmsConnection(
            self.client, conn_settings, manager.clock, SUBPROTOCOL,
            lambda sid, ws: DrainSession(sid, ws, self.client, cfg["response_timeout_s"]), rng=manager.rng)
        manager.station.outbox.listeners.append(self.client.wake)
        self._outbox = manager.station.outbox
        self.task = asyncio.create_task(self.connection.run())

    async def close(self) -> None:
        if self.client.wake in self._outbox.listeners:
            self._outbox.listeners.remove(self.client.wake)
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


class DrainClient:
    """Delivers the transaction messages held for one earlier central system, in order
    and with the usual retry rules (the adapter's ``OutboxSender``), over a connection
    of its own. It does not boot (that central system accepted this charger before),
    sends nothing else and runs no commands from that central system (``DrainSession``).
    Its answers confirm the transactions but stay out of the current central system's
    authorization cache."""

    boot_accepted = True  # for CsmsConnection: a session ending resets the reconnect backoff

    def __init__(self, station, backend: str, clock, traffic=None, on_idle=None) -> None:
        self.station = station  # CsmsConnection reads its settings (WebSocketPingInterval)
        self.backend = backend
        self.traffic = traffic
        self.session = None
        self.sender = OutboxSender(station, self._call, clock, asyncio.Event(), backend=backend,
                                   update_auth_cache=False, on_idle=on_idle)

    def wake(self, entry=None) -> None:
        """An outbox listener: something may have changed for this backend."""
        self.sender.wake.set()

    def record(self, direction: str, text: str) -> None:
        if self.traffic is not None:
            self.traffic.record(direction, text, via=self.backend)

    async def _call(self, payload):
        if self.session is None:
            raise ConnectionError("not connected")
        return await self.session.call(payload, suppress=False)

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


class DrainSession(FramedSession, ChargePoint):
    """An OCPP connection that only carries the drain client's calls and their answers;
    a request from the central system gets CALLERROR NotSupported."""

    def __init__(self, station_id: str, connection, client: DrainClient, response_timeout: float) -> None:
        super().__init__(station_id, connection, response_timeout=response_timeout, logger=log)
        self.client = client

    async def handle_call(self, uid: str, action: str, payload: dict) -> None:
        await self._send(call_error(uid, "NotSupported", "this connection only delivers queued transaction messages"))
