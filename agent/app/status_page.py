"""The charger's own web page, served by the agent (h11 over asyncio streams).

Its views are in agent/app/web/ (docs/web-page.md): live (the connection, each
connector's state in words with the running session's chart, pushed with
server-sent events on ``/events``), history (completed sessions, CSV), logs (the
agent log and the OCPP traffic) and setup (a form to move the charger to another
central system — the same validation and rollback as ``ocpp-agent csms set``,
agent/app/admin.py —, the settings through ``Admin.config_set``, ``doctor``'s checks).
``/api/status`` gives the station's state as JSON.

Bound to ``127.0.0.1`` by default (``[status_page] host/port``). Bound to
any other address it needs ``status_page.password`` (the configuration is
refused without one) and asks for it with HTTP Basic auth (any user name);
logins and wrong passwords become security events, and an address that keeps
guessing is turned away for a while (agent/app/page_logins.py). Given an
``ssl_context`` (agent/app/page_tls.py: by default whenever it is bound off
loopback) it serves HTTPS only. On loopback it accepts only loopback host
names (``Host:`` header), which keeps DNS-rebinding pages out, and every form carries a per-process token
(no cross-site form posts).

HTTP is h11's state machine (no I/O of its own, a fraction of a web
framework's memory) on ``asyncio.start_server``: one request per connection
(every response says ``Connection: close``), the whole request within
``read_timeout_s``, request line and headers up to ``MAX_HEADER_BYTES``, a
body up to ``MAX_BODY_BYTES``, at most ``MAX_CLIENTS`` connections at once.
``close()`` hangs up on every client and waits for its task.

CPython only (h11). What only serving a request needs (h11, html, email.utils,
hmac, http, secrets) is imported at the first request: a page nobody opens costs
no memory for them.
"""

import asyncio
import base64
import binascii
import json
import logging
import math
import time
import urllib.parse


from agent.app.config import is_loopback_host
from agent.app.page_logins import LoginTracker
from agent.app.web.http import Response, _text
from agent.core.isotime import format_datetime
from hal.runtime.aio import wait_for
from hal.errors import HalError

log = logging.getLogger(__name__)

TRAFFIC_SHOWN = 40
METER_CACHE_S = 2.0
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")

READ_TIMEOUT_S = 10.0  # to receive a whole request (a slow client cannot hold a task); also per write
MAX_HEADER_BYTES = 16 * 1024  # request line + headers (h11: 431 beyond)
MAX_BODY_BYTES = 64 * 1024  # 413 beyond
MAX_CLIENTS = 16  # connections served at once; more are answered 503 and closed
READ_CHUNK_BYTES = 8192

# Path -> method -> handler name: a method of the page, or "web." and one of its views
# (agent/app/web/views.py) that takes the request. HEAD is answered wherever GET is (headers only).
ROUTES = {"/": {"GET": "web.live"}, "/api/status": {"GET": "_api_status"}, "/csms": {"POST": "_post_csms"},
          "/events": {"GET": "web.events"}, "/history": {"GET": "web.history"},
          "/history/session": {"GET": "web.session"}, "/history.csv": {"GET": "web.history_csv"},
          "/logs": {"GET": "web.logs_view"}, "/logs/agent.log": {"GET": "web.download_log"},
          "/logs/ocpp-traffic.log": {"GET": "web.download_log"},
          "/setup": {"GET": "_setup"}, "/setup/config": {"POST": "_post_config"},
          "/setup/restart": {"POST": "_post_restart"}, "/setup/doctor": {"POST": "_post_doctor"},
          "/static/page.css": {"GET": "_static"}, "/static/page.js": {"GET": "_static"}}
BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 17\r\nConnection: close\r\n\r\ntoo many clients\n")


class Request:
    """One request as the handlers see it: method, path (decoded), query and form as
    {name: first value}, headers as {lower-case name: first value}, and the body."""

    __slots__ = ("method", "path", "query", "headers", "body", "client")

    def __init__(self, event, body: bytes = b"", client: str = "") -> None:
        self.method = event.method.decode("ascii")
        target = event.target.decode("latin-1")
        if target.startswith("/"):
            path, _, query = target.partition("?")
        else:  # absolute form (http://host/path?query), which a server must accept
            parts = urllib.parse.urlsplit(target)
            path, query = parts.path or "/", parts.query
        self.path = urllib.parse.unquote(path)
        self.query = _first_values(query)
        self.headers: dict = {}
        for name, value in event.headers:
            self.headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
        self.body = body
        self.client = client  # the client's IP address

    @property
    def host(self) -> str:
        return self.headers.get("host", "")

    def form(self) -> dict:
        """The fields of an application/x-www-form-urlencoded body (what the page's form posts)."""
        content_type = self.headers.get("content-type", "").partition(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            return {}
        return _first_values(self.body.decode("utf-8", "replace"))


class _Refused(Exception):
    """A request answered before it was read whole (too large, too slow, malformed)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


class StatusPage:
    """The page of one running ``Agent``; ``start()`` listens, ``close()`` stops."""

    def __init__(self, agent, admin, host: str = "127.0.0.1", port: int = 8080, password: str = "", *,
                 read_timeout_s: float = READ_TIMEOUT_S, ssl_context=None, security_log=None) -> None:
        self.agent = agent
        self.admin = admin
        self.host = host
        self.port = port
        self.password = password
        self.read_timeout_s = read_timeout_s
        self.ssl_context = ssl_context  # HTTPS when given (agent/app/page_tls.py)
        self.logins = LoginTracker(security_log)
        self._token = ""
        self._server = None
        self._serving = False
        self._clients: dict = {}  # connection task -> its StreamWriter
        self._meter_cache: dict = {}  # connector id -> (monotonic time, reading)
        self.background = None  # the session recorder and log buffer (agent/app/web/background.py), from start()
        self._web = None  # the views (agent/app/web/views.py), made at the first request that needs them
        if not is_loopback_host(host) and not password:
            raise ValueError("the status page needs a password when bound to %s" % host)

    @property
    def token(self) -> str:
        """The per-process form token, made when a page first needs it."""
        if not self._token:
            import secrets

            self._token = secrets.token_urlsafe(24)
        return self._token

    @property
    def web(self):
        """The views (agent/app/web/views.py) of a started page with an agent behind it, else None."""
        if self._web is None and self.background is not None:
            from agent.app.web.views import WebViews

            self._web = WebViews(self)
        return self._web

    @property
    def url(self) -> str:
        host = "[%s]" % self.host if ":" in self.host else self.host
        return "%s://%s:%d/" % ("https" if self.ssl_context is not None else "http", host, self.port)

    async def start(self) -> None:
        self._serving = True
        try:
            tls = {} if self.ssl_context is None else {"ssl": self.ssl_context,
                                                       "ssl_handshake_timeout": self.read_timeout_s}
            self._server = await asyncio.start_server(self._accept, self.host, self.port, reuse_address=True, **tls)
        except BaseException:
            self._serving = False
            raise
        if self.port == 0:
            self.port = self._server.sockets[0].getsockname()[1]
        if self.agent is not None and self.background is None:
            from agent.app.web.background import Background

            self.background = Background(self.agent, self._reading)
            self.background.start()
        log.info("status page at %s%s", self.url, " (password required)" if self.password else "")
        if self.ssl_context is None and not is_loopback_host(self.host):
            log.warning("status page served over plain HTTP on %s: its password crosses the network in the "
                        "clear (set [status_page] tls = \"auto\" or \"on\")", self.host)

    async def close(self) -> None:
        """Stop listening, hang up on every client and wait for their tasks. Safe to call twice."""
        self._serving = False
        web, self._web = self._web, None
        if web is not None:
            web.close()  # ends the event streams
        background, self.background = self.background, None
        if background is not None:
            await background.close()
        server, self._server = self._server, None
        if server is not None:
            server.close()
        # Hang up rather than cancel: the task's read returns at once, and a handler already
        # running (a central system switch writing the configuration file) is never cut short.
        clients, self._clients = self._clients, {}
        for writer in clients.values():
            writer.transport.abort()
        for task in clients:
            await task
        if server is not None:
            await server.wait_closed()  # after the hang-ups: from Python 3.12.1 it waits for every connection

    # ------------------------------------------------------------------ HTTP
    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """start_server's callback, a plain function: the connection's task is created and
        recorded here, at once, so close() always sees it."""
        if not self._serving or len(self._clients) >= MAX_CLIENTS:
            writer.write(BUSY)
            writer.close()
            return
        self._clients[asyncio.create_task(self._serve(reader, writer))] = writer

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        import h11

        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        try:
            try:
                request = await self._read_request(conn, reader, writer)
                if request is not None:
                    request.client = (writer.get_extra_info("peername") or ("",))[0]
            except _Refused as e:
                request, response = None, _text(e.status, str(e))
            else:
                response = None if request is None else await self._respond(request)
            if response is not None and conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                await self._send(conn, writer, response, head=request is not None and request.method == "HEAD",
                                 reader=reader)
        except (OSError, asyncio.TimeoutError):  # the client went away, or did not read its response
            pass
        except Exception:
            log.exception("status page: connection failed")
        finally:
            await self._hang_up(writer)
            self._clients.pop(asyncio.current_task(), None)

    async def _read_request(self, conn, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> Request | None:
        """The next request, read whole; None if the client left before sending one."""
        import h11

        deadline = time.monotonic() + self.read_timeout_s
        try:
            event = await self._next_event(conn, reader, deadline)
            if not isinstance(event, h11.Request):  # ConnectionClosed
                return None
            length = dict(event.headers).get(b"content-length")
            if length is not None and int(length) > MAX_BODY_BYTES:
                raise _Refused(413, "request body larger than %d bytes\n" % MAX_BODY_BYTES)
            if conn.they_are_waiting_for_100_continue:
                go_on = h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue")
                await self._write(writer, conn.send(go_on))
            body = bytearray()
            while True:
                part = await self._next_event(conn, reader, deadline)
                if isinstance(part, h11.EndOfMessage):
                    return Request(event, bytes(body))
                if not isinstance(part, h11.Data):  # ConnectionClosed
                    return None
                body += part.data
                if len(body) > MAX_BODY_BYTES:
                    raise _Refused(413, "request body larger than %d bytes\n" % MAX_BODY_BYTES)
        except h11.RemoteProtocolError as e:
            raise _Refused(e.error_status_hint, "bad request: %s\n" % e) from None
        except asyncio.TimeoutError:
            if conn.our_state is h11.IDLE and not conn.trailing_data[0]:
                return None  # an idle connection (a browser's preconnect): just close it
            raise _Refused(408, "request not received within %g s\n" % self.read_timeout_s) from None

    async def _next_event(self, conn, reader: asyncio.StreamReader, deadline: float):
        import h11

        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            left = deadline - time.monotonic()
            if left <= 0:
                raise asyncio.TimeoutError
            conn.receive_data(await wait_for(reader.read(READ_CHUNK_BYTES), left))

    async def _respond(self, request: Request) -> Response:
        """Guard, route and run the handler (500 if it fails)."""
        refused = self._guard(request)
        if refused is not None:
            return refused
        methods = ROUTES.get(request.path)
        if methods is None:
            return _text(404, "404: Not Found\n")
        name = methods.get("GET" if request.method == "HEAD" else request.method)
        if name is None:
            allowed = ",".join(sorted(methods) + (["HEAD"] if "GET" in methods else []))
            return _text(405, "405: Method Not Allowed\n", [("Allow", allowed)])
        try:
            if name.startswith("web."):  # (a page with no agent behind it has no views: 500)
                return await getattr(self.web, name[4:])(request)
            return await getattr(self, name)(request)
        except Exception:
            log.exception("status page: %s %s failed", request.method, request.path)
            return _text(500, "500: Internal Server Error\n")

    async def _send(self, conn, writer: asyncio.StreamWriter, response: Response,
                    head: bool = False, reader: asyncio.StreamReader | None = None) -> None:
        import h11

        import email.utils
        from http import HTTPStatus

        length = [] if response.stream is not None else [("Content-Length", str(len(response.body)))]
        headers = [("Content-Type", response.content_type)] + length + [
            ("Date", email.utils.formatdate(usegmt=True)), ("Connection", "close")] + response.headers
        try:
            reason = HTTPStatus(response.status).phrase.encode()
        except ValueError:
            reason = b""
        data = conn.send(h11.Response(status_code=response.status, headers=headers, reason=reason))
        if response.body and not head:
            data += conn.send(h11.Data(data=response.body))
        if response.stream is not None and not head:
            await self._write(writer, data)

            async def send(chunk: bytes) -> None:
                """Write a chunk (b"": only check that the client is still there)."""
                if writer.transport.is_closing() or (reader is not None and reader.at_eof()):
                    raise ConnectionResetError("the client left")
                if chunk:
                    await self._write(writer, conn.send(h11.Data(data=chunk)))

            await response.stream(send)
            data = b""
        data += conn.send(h11.EndOfMessage())
        await self._write(writer, data)

    async def _write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        await wait_for(writer.drain(), self.read_timeout_s)

    async def _hang_up(self, writer: asyncio.StreamWriter) -> None:
        writer.close()
        try:
            await wait_for(writer.wait_closed(), self.read_timeout_s)
        except (OSError, asyncio.TimeoutError):  # the peer went first, or never read its response
            writer.transport.abort()

    # ------------------------------------------------------------------ access
    def _guard(self, request: Request) -> Response | None:
        if is_loopback_host(self.host):
            host = request.host.rsplit(":", 1)[0] if not request.host.startswith("[") else \
                request.host.split("]")[0] + "]"
            if host not in LOOPBACK_NAMES:
                return _text(403, "this page answers only to 127.0.0.1 / localhost\n")
        if self.password:
            return self._login(request)
        return None

    def _login(self, request: Request) -> Response | None:
        """None when the request carries the password; else 401 (ask for it) or 429 (too many wrong ones)."""
        now = time.monotonic()
        wait_s = self.logins.blocked_s(request.client, now)
        if wait_s:
            return _too_many(wait_s)
        header = request.headers.get("authorization")
        if header is None:  # a browser's first request: not an attempt yet
            return _ask_password()
        user, right = self._check_password(header)
        if right:
            self.logins.accepted(request.client, user, now)
            return None
        if self.logins.failed(request.client, user, now):
            return _too_many(self.logins.block_s)
        return _ask_password()

    def _check_password(self, header: str) -> tuple:
        """(user name, whether the password is right) of a Basic ``Authorization`` header."""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            return "", False
        try:
            decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return "", False
        import hmac

        user, _, password = decoded.partition(":")
        return user, hmac.compare_digest(password.encode(), self.password.encode())

    # ------------------------------------------------------------------ data
    async def status(self) -> dict:
        agent = self.agent
        station = agent.station
        connectors = []
        for c in station.connectors:
            reading = await self._reading(c)
            tx = c.transaction
            connectors.append({
                "id": c.id, "status": c.status, "error_code": c.status_error_code,
                "cp_state": c.evse.cp_state, "offered_current_a": c.offered_current_a,
                "contactor_closed": c.contactor_closed,
                "energy_wh": reading.energy_wh if reading is not None else None,
                "power_w": reading.power_w if reading is not None else None,
                "current_a": list(reading.current_a) if reading is not None and reading.current_a else None,
                "voltage_v": list(reading.voltage_v) if reading is not None and reading.voltage_v else None,
                "transaction": None if tx is None else {
                    "id": tx.backend_id, "id_tag": tx.id_tag, "meter_start_wh": tx.meter_start_wh,
                    "started": _iso(tx.start_time), "central_system": tx.backend},
            })
        traffic = [{"time": _iso(t), "clock": _hms(t), "direction": d, "via": via, "text": text}
                   for t, d, via, text in agent.traffic.recent(TRAFFIC_SHOWN)]
        return {"csms": self.admin.csms_show(), "station": {"status": station.charger_status,
                                                            "error_code": station.charger_error_code},
                "connectors": connectors, "traffic": traffic}

    async def _reading(self, c):
        meter = c.hw.meter
        if meter is None or (self._web is not None and self._web.checking):
            return c.last_reading  # none, or the board closed for the checks (agent/app/web/checks.py)
        now = self.agent.clock.monotonic()  # the agent's clock (a virtual one in tests)
        cached = self._meter_cache.get(c.id)
        if cached is not None and now - cached[0] < METER_CACHE_S:
            return cached[1]
        try:
            reading = await meter.read()
        except HalError:
            reading = c.last_reading
        self._meter_cache[c.id] = (now, reading)
        return reading

    # ------------------------------------------------------------------ handlers
    async def _api_status(self, request: Request) -> Response:
        data = await self.status()
        if request.query.get("html"):
            from agent.app.web.views import status_html

            data["html"] = status_html(data)
        return Response(200, json.dumps(data).encode(), "application/json; charset=utf-8",
                        [("Cache-Control", "no-store")])

    async def _setup(self, request: Request) -> Response:
        return self.web.setup(message=request.query.get("message", ""))

    async def _static(self, request: Request) -> Response:
        return self.web.static(request.path) if self.web is not None else _text(404, "404: Not Found\n")

    def _check_form(self, request: Request, form: dict) -> Response | None:
        """None for a form posted by this page (its Origin, the per-process token); else 403."""
        origin = request.headers.get("origin")
        if origin not in (None, "null") and origin.split("://", 1)[-1] != request.host:
            return _text(403, "cross-site request refused\n")
        import hmac

        if not hmac.compare_digest(form.get("token", "").encode(), self.token.encode()):
            return _text(403, "stale or missing form token: reload the page\n")
        return None

    async def _post_config(self, request: Request) -> Response:
        form = request.form()
        return self._check_form(request, form) or await self.web.post_config(form)

    async def _post_restart(self, request: Request) -> Response:
        form = request.form()
        return self._check_form(request, form) or await self.web.post_restart(form)

    async def _post_doctor(self, request: Request) -> Response:
        form = request.form()
        return self._check_form(request, form) or await self.web.post_doctor(form)

    async def _post_csms(self, request: Request) -> Response:
        form = request.form()
        refused = self._check_form(request, form)
        if refused is not None:
            return refused
        url = form.get("url", "").strip()
        station_id = form.get("station_id", "").strip() or None
        password = form.get("password", "") or None
        if form.get("clear_password"):
            password = ""
        ca_file = form.get("ca_file", "").strip() or None
        if form.get("clear_ca_file"):
            ca_file = ""
        fields = {"url": url, "station_id": station_id or "", "ca_file": ca_file or ""}
        if not url:
            return self.web.setup(error="give the central system's URL", fields=fields, status=400)
        try:
            result = await self.admin.csms_set(url, station_id=station_id, password=password, ca_file=ca_file,
                                               source="status page")
        except ValueError as e:
            if "@" in url.partition("://")[2].partition("/")[0]:  # user info: a password never goes back
                fields["url"] = ""
            return self.web.setup(error=str(e), fields=fields, status=400)
        message = "; ".join([result["message"]] + result["notes"])
        return _text(303, "303: See Other\n", [("Location", "/setup?message=" + _quote(message))])


def _ask_password() -> Response:
    return _text(401, "password required\n", [("WWW-Authenticate", 'Basic realm="ocpp-agent", charset="UTF-8"')])


def _too_many(wait_s: float) -> Response:
    seconds = max(1, math.ceil(wait_s))
    return _text(429, "too many wrong passwords: try again in %d s\n" % seconds, [("Retry-After", str(seconds))])


def _iso(ts) -> str | None:
    if ts is None:
        return None
    return format_datetime(ts)


def _hms(ts) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(ts)) if ts is not None else ""


def _first_values(text: str) -> dict:
    """{name: first value} of a query string or urlencoded form (blank values kept)."""
    out: dict = {}
    for name, value in urllib.parse.parse_qsl(text, keep_blank_values=True):
        out.setdefault(name, value)
    return out


def _quote(text: str) -> str:
    return urllib.parse.quote(text[:500], safe="")
