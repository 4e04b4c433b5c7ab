"""The websocket to the central system: connect, authenticate, keep alive, reconnect.

CPython-only (wraps ``websockets``). One ``CsmsConnection`` owns the socket;
the OCPP adapter runs a session over each connection it opens.
"""

import asyncio
import base64
import logging
import random
import ssl

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidHandshake, InvalidStatus, WebSocketException

from hal.runtime.aio import wait_for

log = logging.getLogger(__name__)


def backoff_delays(initial_s: float, maximum_s: float, rng: random.Random):
    """Capped exponential backoff with jitter: each delay is drawn from
    [d/2, d] where d doubles from ``initial_s`` up to ``maximum_s``."""
    d = initial_s
    while True:
        yield rng.uniform(d / 2, d)
        d = min(d * 2, maximum_s)


def basic_auth_header(station_id: str, password: str) -> str:
    token = base64.b64encode(("%s:%s" % (station_id, password)).encode()).decode()
    return "Basic " + token


def ssl_context(url: str, ca_file: str = ""):
    """TLS with certificate and host name verification (always on for wss://)."""
    if not url.startswith("wss://"):
        return None
    return ssl.create_default_context(cafile=ca_file or None)


def describe_error(e: BaseException) -> str:
    """A short, secret-free description of why a connection failed."""
    if isinstance(e, InvalidStatus):
        code = e.response.status_code
        return "HTTP %d from the central system%s" % (code, " (wrong password?)" if code == 401 else "")
    if isinstance(e, ssl.SSLCertVerificationError):
        return "TLS certificate verification failed: %s" % e.verify_message
    if isinstance(e, ssl.SSLError):
        return "TLS failure: %s" % e.reason
    if isinstance(e, asyncio.TimeoutError):
        return "timed out"
    if isinstance(e, OSError):
        return "%s" % (e.strerror or e)
    return "%s: %s" % (type(e).__name__, e)


class CsmsConnection:
    """Keeps one OCPP websocket open to ``url`` + station id, reconnecting with backoff."""

    def __init__(self, client, settings: dict, clock, subprotocol: str, session_factory,
                 rng: random.Random | None = None) -> None:
        self.client = client
        self.settings = settings  # url (full, with station id), station_id, password, ca_file, timeouts
        self.clock = clock
        self.subprotocol = subprotocol
        self.session_factory = session_factory  # (station_id, ws) -> session
        self.rng = rng or random.Random()
        self.connected = False
        self.last_error = ""
        self.connect_count = 0
        self._ping_task = None
        self._ws = None

    async def open(self):
        s = self.settings
        headers = {}
        if s.get("password"):
            headers["Authorization"] = basic_auth_header(s["station_id"], s["password"])
        return await connect(
            s["url"], subprotocols=[self.subprotocol], additional_headers=headers,
            ssl=ssl_context(s["url"], s.get("ca_file", "")), open_timeout=s.get("connect_timeout_s", 10),
            ping_interval=None, close_timeout=5, max_size=1 << 20)

    async def run(self) -> None:
        """Connect, run sessions, and reconnect forever (until cancelled)."""
        delays = backoff_delays(self.settings.get("reconnect_initial_s", 1.0),
                                self.settings.get("reconnect_max_s", 120.0), self.rng)
        while True:
            try:
                ws = await self.open()
            except (OSError, asyncio.TimeoutError, InvalidHandshake, WebSocketException, ssl.SSLError) as e:
                self.last_error = describe_error(e)
                delay = next(delays)
                log.warning("cannot connect to %s: %s; retrying in %.1f s", self.settings["url"],
                            self.last_error, delay)
                await self.clock.sleep(delay)
                continue
            if ws.subprotocol != self.subprotocol:
                self.last_error = "central system did not accept subprotocol %s" % self.subprotocol
                log.error("%s", self.last_error)
                await ws.close()
                await self.clock.sleep(next(delays))
                continue
            self.connect_count += 1
            self.connected, self.last_error, self._ws = True, "", ws
            log.info("connected to %s", self.settings["url"])
            self.restart_ping()
            try:
                await self.client.run_session(self.session_factory(self.settings["station_id"], ws))
            finally:
                self.connected, self._ws = False, None
                if self._ping_task is not None:
                    self._ping_task.cancel()
                    await asyncio.gather(self._ping_task, return_exceptions=True)
                    self._ping_task = None
                await ws.close()
            if self.client.boot_accepted:
                delays = backoff_delays(self.settings.get("reconnect_initial_s", 1.0),
                                        self.settings.get("reconnect_max_s", 120.0), self.rng)
            delay = next(delays)
            log.warning("connection to the central system lost; reconnecting in %.1f s", delay)
            await self.clock.sleep(delay)

    def restart_ping(self) -> None:
        """(Re)arm the websocket ping at WebSocketPingInterval (0 = off)."""
        if self._ping_task is not None:
            self._ping_task.cancel()
            self._ping_task = None
        interval = self.client.station.keys.get("WebSocketPingInterval")
        if self._ws is not None and interval > 0:
            self._ping_task = asyncio.create_task(self._ping(self._ws, interval))

    async def _ping(self, ws, interval: float) -> None:
        while True:
            await self.clock.sleep(interval)
            try:
                pong = await ws.ping()
                await wait_for(pong, max(5.0, interval))
            except asyncio.TimeoutError:
                log.warning("no pong within %d s: closing the connection", max(5, interval))
                await ws.close()
                return
            except WebSocketException:
                return
