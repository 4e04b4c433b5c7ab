"""The websocket to the central system: connect, authenticate, negotiate the OCPP
version, keep alive, reconnect.

CPython-only (wraps ``websockets``). One ``CsmsConnection`` owns the socket;
the OCPP adapter runs a session over each connection it opens.

The OCPP version is the websocket subprotocol (OCPP-J): the connection offers
the subprotocols it is given, in order of preference (agent/link/protocols.py
turns ``csms.ocpp_version`` into that list), and the central system selects
one. A central system that selects none, or one that was not offered, is a
``SubprotocolError`` naming both: logged, and retried with backoff like any
other failure to connect.
"""

import asyncio
import base64
import logging
import random
import ssl

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidStatus, NegotiationError, WebSocketException

from agent.link.protocols import by_subprotocol
from agent.security import profiles
from agent.security.tls import client_context, failure_kind as tls_failure_kind
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


def ssl_context(url: str, ca_file: str = "", roots_pem: str = "", client_files: tuple | None = None):
    """TLS 1.2 or newer with certificate and host name verification (always on for wss://;
    OCPP 2.0.1 A00.FR.306, the 1.6 security whitepaper alike): agent/security/tls.py."""
    if not url.startswith("wss://"):
        return None
    return client_context(ca_file, roots_pem, client_files)


def failure_kind(e: BaseException) -> str | None:
    """The security event (neutral kind) a failed connection attempt is, None if none:
    a TLS failure, or HTTP 401 (the central system refused the charger's credentials)."""
    seen = 0
    while e is not None and seen < 4:  # a TLS alert read after the handshake comes wrapped by websockets
        if isinstance(e, InvalidStatus) and e.response.status_code == 401:
            return "failed_to_authenticate_at_csms"
        kind = tls_failure_kind(e)
        if kind is not None:
            return kind
        e, seen = e.__cause__ or e.__context__, seen + 1
    return None


class NoCertificateError(OSError):
    """Security profile 3 without a charger certificate to present."""


class SubprotocolError(InvalidHandshake):
    """The central system selected no OCPP subprotocol, or one that was not offered."""

    def __init__(self, offered, answered) -> None:
        self.offered = tuple(offered)
        self.answered = tuple(answered)  # the Sec-WebSocket-Protocol values of its answer
        super().__init__(self.describe())

    def describe(self) -> str:
        offered = ", ".join(self.offered)
        if not self.answered:
            return ("the central system selected no subprotocol: its handshake answer has no "
                    "Sec-WebSocket-Protocol (offered: %s; is it an OCPP endpoint for this version?)" % offered)
        return "the central system selected subprotocol %s, which was not offered (offered: %s)" % (
            ", ".join(repr(a) for a in self.answered), offered)


class _OcppClientConnection(ClientConnection):
    """A websockets client connection whose failed subprotocol negotiation says what
    was offered and what came back (websockets says only "unsupported subprotocol")."""

    async def handshake(self, *args, **kwargs) -> None:
        try:
            await super().handshake(*args, **kwargs)
        except NegotiationError:
            response = self.response
            headers = response.headers.get_all("Sec-WebSocket-Protocol") if response is not None else []
            answered = [v.strip() for h in headers for v in h.split(",") if v.strip()]
            offered = self.protocol.available_subprotocols or ()
            if len(answered) > 1 or any(a not in offered for a in answered):
                raise SubprotocolError(offered, answered) from None
            raise  # an extension's negotiation failed, not the subprotocol's


async def open_websocket(url: str, subprotocols, *, headers: dict | None = None, ssl_context=None,
                         open_timeout: float = 10, close_timeout: float = 5, max_size: int = 1 << 20):
    """Open an OCPP websocket offering ``subprotocols`` (in order of preference); the
    central system must select one of them (``ws.subprotocol``), else ``SubprotocolError``."""
    offered = list(subprotocols)
    ws = await connect(url, subprotocols=offered, additional_headers=headers or {}, ssl=ssl_context,
                       open_timeout=open_timeout, ping_interval=None, close_timeout=close_timeout,
                       max_size=max_size, create_connection=_OcppClientConnection)
    if ws.subprotocol not in offered:
        await ws.close(1002, "no OCPP subprotocol selected")
        raise SubprotocolError(offered, [ws.subprotocol] if ws.subprotocol else [])
    return ws


def describe_error(e: BaseException) -> str:
    """A short, secret-free description of why a connection failed."""
    if isinstance(e, SubprotocolError):
        return e.describe()
    if isinstance(e, InvalidStatus):
        code = e.response.status_code
        return "HTTP %d from the central system%s" % (code, " (wrong password?)" if code == 401 else "")
    if isinstance(e, ssl.SSLCertVerificationError):
        return "TLS certificate verification failed: %s" % e.verify_message
    if isinstance(e, ssl.SSLError):
        return "TLS failure: %s" % e.reason
    if isinstance(e, asyncio.TimeoutError):
        return "timed out"
    if isinstance(e, OSError):  # a reset during a TLS handshake has no text: say what it is
        return "%s" % (e.strerror or str(e) or "%s (closed by the central system)" % type(e).__name__)
    return "%s: %s" % (type(e).__name__, e)


class CsmsConnection:
    """Keeps one OCPP websocket open to ``url`` + station id, reconnecting with backoff."""

    def __init__(self, client, settings: dict, clock, subprotocols, session_factory,
                 rng: random.Random | None = None, traffic=None, via: str = "") -> None:
        self.client = client
        self.settings = settings  # url (full, with station id), station_id, password, ca_file, timeouts
        self.clock = clock
        # What Sec-WebSocket-Protocol offers, in order of preference ("ocpp1.6", or a list).
        self.offered = (subprotocols,) if isinstance(subprotocols, str) else tuple(subprotocols)
        self.selected: str | None = None  # the subprotocol of the open (or the last) connection
        self.failed_attempts = 0  # connection attempts that failed since the last one that opened
        self.on_attempt_failed = None  # callable(failed_attempts) after each failed attempt
        # (station_id, ws) -> session; ws.subprotocol is the selected one. It may make another client
        # the one that runs the session (agent/link/links.py: the link follows the selected version).
        self.session_factory = session_factory
        self.rng = rng or random.Random()
        self.traffic = traffic  # a TrafficLog (agent/link/traffic.py): notes each opened connection
        self.via = via  # how the traffic log names this connection ("" = the main one)
        self.connected = False
        self.last_error = ""
        self.connect_count = 0
        self.network_down = ""  # why the network is down ("" = up): a fleet's simulated outage fails every attempt
        self.security = None  # the station's SecurityContext: CSMS roots and the charger certificate for TLS
        self.last_failure = None  # the exception of the last failed attempt (None after a success)
        self._ping_task = None
        self._ws = None

    @property
    def version(self) -> str | None:
        """The OCPP version of the open (or the last) connection, None before the first."""
        protocol = by_subprotocol(self.selected)
        return protocol.version if protocol is not None else None

    async def open(self):
        if self.network_down:
            raise OSError(self.network_down)
        s = self.settings
        level = profiles.level_of(s["url"], s.get("password", ""), s.get("security_profile", 0))
        headers = {}
        if s.get("password") and level < profiles.TLS_CLIENT:  # profile 3: the certificate says who it is
            headers["Authorization"] = basic_auth_header(s["station_id"], s["password"])
        return await open_websocket(s["url"], self.offered, headers=headers, ssl_context=self._tls(s, level),
                                    open_timeout=s.get("connect_timeout_s", 10))

    def _tls(self, s: dict, level: int):
        if not s["url"].startswith("wss://"):
            return None
        security = self.security
        client_files = None
        if level == profiles.TLS_CLIENT:
            client_files = security.certificate_files(s.get("certificate") or None) if security else None
            if client_files is None:
                raise NoCertificateError("security profile 3, but the charger has no certificate")
        return ssl_context(s["url"], s.get("ca_file", ""), security.csms_roots_pem() if security else "",
                           client_files)

    async def run(self) -> None:
        """Connect, run sessions, and reconnect forever (until cancelled)."""
        delays = self._delays()
        while True:
            try:
                ws = await self.open()
            except (OSError, asyncio.TimeoutError, InvalidHandshake, WebSocketException, ssl.SSLError) as e:
                self.last_error = describe_error(e)
                self.last_failure = e
                self.failed_attempts += 1
                if self.on_attempt_failed is not None:
                    self.on_attempt_failed(self.failed_attempts)
                delay = next(delays)
                # A subprotocol refused is a setup problem (csms.ocpp_version, or not an OCPP endpoint).
                log.log(logging.ERROR if isinstance(e, SubprotocolError) else logging.WARNING,
                        "cannot connect to %s: %s; retrying in %.1f s", self.settings["url"], self.last_error, delay)
                await self.clock.sleep(delay)
                continue
            self.connect_count += 1
            self.failed_attempts = 0
            self.last_failure = None
            self.selected = ws.subprotocol
            self.connected, self.last_error, self._ws = True, "", ws
            log.info("connected to %s: OCPP %s (subprotocol %s)", self.settings["url"], self.version, ws.subprotocol)
            if self.traffic is not None:
                self.traffic.connection_opened(self.settings["url"], self.version, ws.subprotocol, via=self.via)
            try:
                session = self.session_factory(self.settings["station_id"], ws)  # may change self.client
                self.restart_ping()
                await self.client.run_session(session)
            finally:
                self.connected, self._ws = False, None
                if self._ping_task is not None:
                    self._ping_task.cancel()
                    await asyncio.gather(self._ping_task, return_exceptions=True)
                    self._ping_task = None
                await ws.close()
            if self.client is not None and self.client.boot_accepted:
                delays = self._delays()
            delay = next(delays)
            log.warning("connection to the central system lost; reconnecting in %.1f s", delay)
            await self.clock.sleep(delay)

    def drop(self) -> None:
        """Lose the open connection as a failed network does: no closing handshake."""
        if self._ws is not None and self._ws.transport is not None:
            self._ws.transport.abort()

    def _delays(self):
        """A new series of reconnection delays: the client's own when its protocol defines
        them (2.0.1: the RetryBackOff* variables), else the configured capped exponential."""
        own = getattr(self.client, "reconnect_delays", None)
        if own is not None:
            return own(self.rng)
        return backoff_delays(self.settings.get("reconnect_initial_s", 1.0),
                              self.settings.get("reconnect_max_s", 120.0), self.rng)

    def restart_ping(self) -> None:
        """(Re)arm the websocket ping at WebSocketPingInterval (0 = off)."""
        if self._ping_task is not None:
            self._ping_task.cancel()
            self._ping_task = None
        if self._ws is None:
            return
        interval = self.client.station.settings.get("ws_ping_interval_s")
        if interval > 0:
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
