"""A local test central system for OCPP 1.6J and 2.0.1, built on the ``ocpp`` library.

It accepts any charger at ``ws://HOST:PORT/ocpp/<station id>``, speaking the
subprotocol it prefers among those the charger offers (``protocols``, default
``ocpp2.0.1`` then ``ocpp1.6``), answers every charger-initiated request with a
sensible default, prints each message on one line and keeps a record that
tests can wait on::

    async with TestCentralSystem(quiet=True) as cs:
        ...  # point the agent at cs.url
        station = await cs.wait_for_station("CP001", timeout_s=5)
        await station.wait_for("StatusNotification", lambda p: p["status"] == "Available")
        reply = await station.call("RemoteStartTransaction", idTag="ABC", connectorId=1)

Defaults can be overridden per action with ``handlers`` (on the central system
for every station, or on one ``StationHandle``): a callable taking the request
payload (camelCase dict) and returning the reply payload (camelCase dict), or
raising an ``ocpp.exceptions.OCPPError`` to answer with a CALLERROR.
Payloads are those of the station's version (``StationHandle.version``, "1.6"
or "2.0.1"); the 2.0.1 side (charge point class, default replies) is in
``tools/csms201.py``. Every request a charger sends is schema-checked by the
library: a violation is answered with a CALLERROR, recorded as ``<Action>.error``.

From the command line (``python -m tools.csms --port 9000``) it serves until
Ctrl-C and reads commands from stdin, one per line::

    CP001 RemoteStartTransaction {"idTag": "ABC", "connectorId": 1}
    CP002 RequestStartTransaction {"idToken": {"idToken": "ABC", "type": "ISO14443"}, "remoteStartId": 1}
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import inspect
import itertools
import json
import logging
import re
import signal
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from http import HTTPStatus
from types import ModuleType
from typing import Any, NamedTuple, TextIO
from urllib.parse import unquote, urlsplit

from ocpp.exceptions import OCPPError
from ocpp.v16 import ChargePoint as _V16ChargePoint
from ocpp.v16 import call as v16_call
from ocpp.v16 import call_result as v16_call_result
from ocpp.v16.enums import Action
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.typing import Subprotocol

from agent.core.isotime import format_datetime
from tools.ocpp_peer import recording_charge_point

log = logging.getLogger(__name__)
_library_log = log.getChild("ocpp")  # what the ocpp library logs for our connections

IN = "→"
"""Direction of a frame from the charger to the central system."""
OUT = "←"
"""Direction of a frame from the central system to the charger."""

SUBPROTOCOL = "ocpp1.6"
SUBPROTOCOL_201 = "ocpp2.0.1"
PROTOCOLS: tuple[str, ...] = (SUBPROTOCOL_201, SUBPROTOCOL)
"""The subprotocols served by default, most preferred first."""

Payload = dict[str, Any]
Handler = Callable[[Payload], "Payload | Awaitable[Payload]"]

# Requests a charger may send in OCPP 1.6 (core + security whitepaper).
CHARGER_ACTIONS: tuple[str, ...] = (
    Action.authorize,
    Action.boot_notification,
    Action.data_transfer,
    Action.diagnostics_status_notification,
    Action.firmware_status_notification,
    Action.heartbeat,
    Action.log_status_notification,
    Action.meter_values,
    Action.security_event_notification,
    Action.sign_certificate,
    Action.signed_firmware_status_notification,
    Action.start_transaction,
    Action.status_notification,
    Action.stop_transaction,
)

_CALL, _CALL_RESULT, _CALL_ERROR = 2, 3, 4


class _Version(NamedTuple):
    """What differs between the OCPP versions this central system speaks."""

    version: str  # "1.6", "2.0.1"
    subprotocol: str
    call: ModuleType  # the ocpp library's request dataclasses
    call_result: ModuleType
    snake: Callable[[str], str]  # a top-level camelCase key → the dataclass field name
    charge_point: Callable[..., Any]  # (handle, connection, response_timeout_s) → an ocpp ChargePoint


_versions: dict[str, _Version] = {}


def _version_of(subprotocol: str) -> _Version:
    """The table entry of ``ocpp1.6`` or ``ocpp2.0.1`` (the 2.0.1 side is imported on first use)."""
    if not _versions:
        from ocpp.v201 import call as v201_call
        from ocpp.v201 import call_result as v201_call_result

        from tools import csms201

        _versions[SUBPROTOCOL] = _Version(
            "1.6", SUBPROTOCOL, v16_call, v16_call_result, _snake,
            lambda handle, ws, timeout_s: _CentralChargePoint(handle, ws, timeout_s, _library_log),
        )
        _versions[SUBPROTOCOL_201] = _Version(
            csms201.VERSION,
            csms201.SUBPROTOCOL,
            v201_call,
            v201_call_result,
            csms201.snake,
            lambda handle, ws, timeout_s: csms201.CentralChargePoint201(handle, ws, timeout_s, _library_log),
        )
    try:
        return _versions[subprotocol]
    except KeyError:
        raise ValueError(f"unknown OCPP subprotocol {subprotocol!r}; known: {', '.join(PROTOCOLS)}") from None


class Message(NamedTuple):
    """One OCPP message, as recorded by a ``StationHandle``.

    ``action`` is the bare action for a request (``"Heartbeat"``), the action
    plus ``".conf"`` for its result and plus ``".error"`` for a CALLERROR
    (payload ``{"errorCode", "errorDescription", "errorDetails"}``).
    """

    direction: str  # IN or OUT
    action: str
    payload: Any  # a dict for anything well-formed


class CentralSystemError(Exception):
    """Base of this module's errors."""


class NotConnectedError(CentralSystemError, ConnectionError):
    """The station has no open websocket."""


def _snake(key: str) -> str:
    """``connectorId`` → ``connector_id`` (snake_case keys pass unchanged)."""
    key = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", key)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key).lower()


def _utc_now_iso() -> str:
    return format_datetime(time.time(), millis=True)


def _parse_frame(text: str | bytes) -> tuple[int, str, str | None, Any] | None:
    """Return (type, unique id, action or None, payload) of a frame, None if malformed."""
    try:
        frame = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(frame, list) or len(frame) < 3 or not isinstance(frame[1], str):
        return None
    kind = frame[0]
    if kind == _CALL and len(frame) == 4 and isinstance(frame[2], str):
        return kind, frame[1], frame[2], frame[3]
    if kind == _CALL_RESULT and len(frame) == 3:
        return kind, frame[1], None, frame[2]
    if kind == _CALL_ERROR and len(frame) == 5:
        error = {"errorCode": frame[2], "errorDescription": frame[3], "errorDetails": frame[4]}
        return kind, frame[1], None, error
    return None


_ALIASES: dict[str, str] = {
    "connectorId": "connector", "errorCode": "error", "transactionId": "tx", "evseId": "evse",
}
_FIRST = (  # printed before other keys (evseId and after errorCode: 2.0.1 only)
    "evseId", "connectorId", "transactionId", "idTag", "status", "errorCode", "eventType", "connectorStatus",
)


def _flatten(name: str, value: Any, out: list[str]) -> None:
    """Append ``name=value`` to ``out``; nested objects as ``name.key=value``."""
    if isinstance(value, dict) and value:
        for key, item in value.items():
            _flatten(f"{name}.{key}", item, out)
    elif isinstance(value, (dict, list)):
        out.append(f"{name}={json.dumps(value, separators=(',', ':'))}")
    else:
        out.append(f"{name}={value}")


def _format_meter_values(meter_values: list[Any]) -> str:
    """``Energy.Active.Import.Register=1234Wh Power.Active.Import.L1=7000W`` for every sample."""
    parts = []
    for meter_value in meter_values:
        samples = meter_value.get("sampledValue", []) if isinstance(meter_value, dict) else []
        for sample in samples if isinstance(samples, list) else []:
            if not isinstance(sample, dict):
                continue
            name = str(sample.get("measurand", "Energy.Active.Import.Register"))
            if "phase" in sample:
                name += "." + str(sample["phase"])
            unit = sample.get("unit") or (sample.get("unitOfMeasure") or {}).get("unit", "")  # 1.6 / 2.0.1
            parts.append(f"{name}={sample.get('value')}{unit}")
    return " ".join(parts) or "meterValue=[]"


def format_payload(payload: Any) -> str:
    """A compact one-line rendering: ``connector=1 status=Charging error=NoError``."""
    if not isinstance(payload, dict):
        return json.dumps(payload, separators=(",", ":"))
    parts: list[str] = []
    first = [key for key in _FIRST if key in payload]
    for key in first + [key for key in payload if key not in first]:
        value = payload[key]
        if key == "meterValue" and isinstance(value, list):
            parts.append(_format_meter_values(value))
        else:
            _flatten(_ALIASES.get(str(key), str(key)), value, parts)
    return " ".join(parts)


class StationHandle:
    """One charger as seen by the central system; it outlives reconnections.

    ``messages`` holds every well-formed OCPP message in both directions in
    order, ``raw`` every frame as text. ``handlers`` overrides the default
    reply per action for this station only.
    """

    def __init__(self, station_id: str, central: TestCentralSystem) -> None:
        self.id = station_id
        self.messages: list[Message] = []
        self.raw: list[tuple[str, str]] = []  # (direction, frame text)
        self.handlers: dict[str, Handler] = {}
        # action -> how many of its next requests get no answer at all (recorded, never routed):
        # a central system that lost them, for the charger's response timeout and retries
        self.unanswered: dict[str, int] = {}
        self.connections = 0  # how many websockets this station has opened
        self._central = central
        self._ws: ServerConnection | None = None
        self._cp: Any = None  # the ocpp ChargePoint of the current connection
        self._version: _Version | None = None  # of the current or last connection
        self._changed = asyncio.Event()
        self._actions_in: dict[str, str] = {}  # unique id → action, calls from the charger
        self._payloads_in: dict[str, Any] = {}  # unique id → payload, calls being handled
        self._actions_out: dict[str, str] = {}  # unique id → action, calls to the charger
        self._pending: set[str] = set()  # unique ids of call() awaiting a reply
        self._results: dict[str, Any] = {}  # unique id → raw result payload for call()

    def __repr__(self) -> str:
        state = "connected" if self.connected else "disconnected"
        return f"<StationHandle {self.id} {state} messages={len(self.messages)}>"

    @property
    def connected(self) -> bool:
        """Whether the station has an open websocket now."""
        return self._ws is not None and self._ws.state is State.OPEN

    @property
    def version(self) -> str | None:
        """The OCPP version of the current (or last) connection: "1.6", "2.0.1"; None before any."""
        return self._version.version if self._version is not None else None

    @property
    def subprotocol(self) -> str | None:
        """The negotiated websocket subprotocol of the current connection."""
        return self._ws.subprotocol if self._ws is not None else None

    @property
    def request_headers(self) -> dict[str, str]:
        """HTTP headers of the current connection's opening handshake."""
        if self._ws is None or self._ws.request is None:
            return {}
        return dict(self._ws.request.headers.raw_items())

    async def call(self, action: str, /, **payload: Any) -> Payload:
        """Send a CS→CP request and return the charger's result payload (camelCase).

        Keys may be camelCase or snake_case. The request is schema-checked by
        the ``ocpp`` library before sending; a CALLERROR reply is raised as the
        matching ``ocpp.exceptions.OCPPError``; no reply raises TimeoutError
        after ``response_timeout_s``, a dropped connection NotConnectedError.
        """
        cp = self._require_cp()
        ws = self._require_ws()
        assert self._version is not None
        request_cls = getattr(self._version.call, action, None)
        if request_cls is None or not isinstance(request_cls, type):
            raise ValueError(f"not an OCPP {self._version.version} request: {action!r}")
        request = request_cls(**{self._version.snake(key): value for key, value in payload.items()})
        unique_id = str(uuid.uuid4())
        self._pending.add(unique_id)
        calling = asyncio.create_task(cp.call(request, suppress=False, unique_id=unique_id))
        closed = asyncio.create_task(ws.wait_closed())
        try:
            await asyncio.wait({calling, closed}, return_when=asyncio.FIRST_COMPLETED)
            if not calling.done():
                raise NotConnectedError(f"station {self.id} disconnected before answering {action}")
            try:
                calling.result()  # raises the CallError, a validation error or TimeoutError
            except ConnectionClosed as exc:
                raise NotConnectedError(f"station {self.id} disconnected before answering {action}") from exc
            return self._results.pop(unique_id, {})
        finally:
            for task in (calling, closed):
                task.cancel()
            await asyncio.gather(calling, closed, return_exceptions=True)
            self._pending.discard(unique_id)
            self._results.pop(unique_id, None)

    async def send_raw(self, text: str) -> None:
        """Send any frame, well-formed or not, to the charger as it is."""
        ws = self._require_ws()
        self._frame_out(text)
        await ws.send(text)

    async def wait_for(
        self,
        action: str,
        predicate: Callable[[Payload], bool] | None = None,
        timeout_s: float = 10,
        start_index: int | None = None,
    ) -> Payload:
        """Return the payload of the first message received from the charger
        with this action (and matching ``predicate``), at or after index
        ``start_index`` of ``messages`` (default: from the start of the record).

        Pass ``start_index=len(station.messages)`` to wait only for new ones.
        """

        def match(message: Message) -> bool:
            return (
                message.direction == IN
                and message.action == action
                and (predicate is None or bool(predicate(message.payload)))
            )

        found = await self._wait(self.messages, match, start_index, timeout_s, action)
        return found.payload

    async def wait_raw(
        self,
        predicate: Callable[[str], bool],
        timeout_s: float = 10,
        start_index: int | None = None,
    ) -> str:
        """Return the first raw frame the charger sent that matches ``predicate``,
        at or after index ``start_index`` of ``raw`` (default: from the start)."""

        def match(entry: tuple[str, str]) -> bool:
            return entry[0] == IN and bool(predicate(entry[1]))

        found = await self._wait(self.raw, match, start_index, timeout_s, "raw frame")
        return found[1]

    async def disconnect(self, code: int = 1000, reason: str = "", timeout_s: float = 10) -> None:
        """Close the station's websocket and wait until the central system has let go of it."""
        ws = self._ws
        if ws is None:
            return
        await ws.close(code, reason)
        deadline = time.monotonic() + timeout_s
        while True:
            changed = self._changed
            remaining = deadline - time.monotonic()
            if self._ws is not ws or remaining <= 0:
                return
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                pass

    async def _wait(
        self,
        records: list[Any],
        match: Callable[[Any], bool],
        start_index: int | None,
        timeout_s: float,
        what: str,
    ) -> Any:
        index = start_index or 0
        deadline = time.monotonic() + timeout_s
        while True:
            changed = self._changed
            while index < len(records):
                record = records[index]
                index += 1
                if match(record):
                    return record
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{self.id}: no {what} within {timeout_s}s")
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                pass

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _require_ws(self) -> ServerConnection:
        if self._ws is None or self._ws.state is not State.OPEN:
            raise NotConnectedError(f"station {self.id} is not connected")
        return self._ws

    def _require_cp(self) -> Any:
        self._require_ws()
        assert self._cp is not None
        return self._cp

    def _record(self, direction: str, action: str, payload: Any) -> None:
        self.messages.append(Message(direction, action, payload))
        self._central._print(self.id, direction, action, format_payload(payload))

    def _frame_in(self, text: str) -> bool:
        """Record a frame from the charger; True if the ocpp library should route it."""
        self.raw.append((IN, text))
        frame = _parse_frame(text)
        if frame is None:
            self._central._print(self.id, IN, "<malformed>", text[:200])
            self._notify()
            return True  # the library logs it and drops it
        kind, unique_id, action, payload = frame
        forward = True
        if kind == _CALL:
            assert action is not None
            self._actions_in[unique_id] = action
            self._payloads_in[unique_id] = payload
            self._record(IN, action, payload)
            if self.unanswered.get(action, 0) > 0:
                self.unanswered[action] -= 1
                return False
        else:
            suffix = ".conf" if kind == _CALL_RESULT else ".error"
            self._record(IN, self._actions_out.pop(unique_id, "?") + suffix, payload)
            # Replies to send_raw() frames must not reach the library's queue.
            forward = unique_id in self._pending
            if forward and kind == _CALL_RESULT:
                self._results[unique_id] = payload
        self._notify()
        return forward

    def _frame_out(self, text: str) -> None:
        """Record a frame about to be sent to the charger."""
        self.raw.append((OUT, text))
        frame = _parse_frame(text)
        if frame is None:
            self._central._print(self.id, OUT, "<malformed>", text[:200])
        else:
            kind, unique_id, action, payload = frame
            if kind == _CALL:
                assert action is not None
                self._actions_out[unique_id] = action
                self._record(OUT, action, payload)
            else:
                self._payloads_in.pop(unique_id, None)
                suffix = ".conf" if kind == _CALL_RESULT else ".error"
                self._record(OUT, self._actions_in.pop(unique_id, "?") + suffix, payload)
        self._notify()

    async def _respond(self, action: str, unique_id: str) -> Any:
        """Reply payload for a charger request, as the ocpp library's dataclass."""
        payload = self._payloads_in.get(unique_id, {})
        handler = self.handlers.get(action) or self._central.handlers.get(action)
        if handler is not None:
            reply = handler(payload)
            if inspect.isawaitable(reply):
                reply = await reply
        else:
            reply = self._central.default_reply(self, action, payload)
        version = self._version or _version_of(SUBPROTOCOL)
        result_cls = getattr(version.call_result, action)
        return result_cls(**{version.snake(key): value for key, value in reply.items()})


_CentralChargePoint = recording_charge_point(_V16ChargePoint, CHARGER_ACTIONS, "_CentralChargePoint")


class TestCentralSystem:
    """A permissive OCPP 1.6J and 2.0.1 central system for tests and manual runs.

    ``protocols`` are the subprotocols served, most preferred first: a charger
    gets the first of them it offers (``("ocpp1.6",)`` pins 1.6). If it offers
    none of them, the handshake completes without a subprotocol and the
    connection is closed (code 1002), unless ``require_subprotocol`` is False:
    then it is served as 1.6, or as 2.0.1 if only that is in ``protocols``
    (``protocols=()`` with ``require_subprotocol=False`` selects no subprotocol
    for anyone, for negotiation tests).

    ``boot_status`` (Accepted, Pending, Rejected) and ``boot_interval_s`` set
    the BootNotification reply; tags in ``reject_tags`` are answered Invalid by
    Authorize, StartTransaction and StopTransaction (1.6) and by Authorize and
    TransactionEvent (2.0.1, the ``idToken`` value); with ``password`` set the
    handshake needs HTTP Basic auth ``<station id>:<password>`` (username
    unchecked if ``check_username`` is False) or gets HTTP 401.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        *,
        boot_status: str = "Accepted",
        boot_interval_s: int = 300,
        reject_tags: Iterable[str] = (),
        password: str | None = None,
        check_username: bool = True,
        handlers: dict[str, Handler] | None = None,
        quiet: bool = False,
        out: TextIO | None = None,
        require_subprotocol: bool = True,
        response_timeout_s: float = 30,
        protocols: Sequence[str] = PROTOCOLS,
    ) -> None:
        if isinstance(protocols, str):
            raise TypeError("protocols is a sequence of subprotocols, e.g. ('ocpp1.6',)")
        for subprotocol in protocols:
            _version_of(subprotocol)  # ValueError for an unknown one
        self.protocols: tuple[str, ...] = tuple(protocols)
        self.boot_status = boot_status
        self.boot_interval_s = boot_interval_s
        self.reject_tags: set[str] = set(reject_tags)
        self.password = password
        self.check_username = check_username
        self.handlers: dict[str, Handler] = dict(handlers or {})
        self.quiet = quiet
        self.require_subprotocol = require_subprotocol
        self.response_timeout_s = response_timeout_s
        self.stations: dict[str, StationHandle] = {}
        self.rejections: list[tuple[str, str]] = []  # (station id, reason) refused at the handshake
        self._out = out
        self._transaction_ids = itertools.count(1)
        self._server: Server | None = None
        self._host = "127.0.0.1"
        self._changed = asyncio.Event()

    async def __aenter__(self) -> TestCentralSystem:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The listening port (after ``start()``)."""
        if self._server is None:
            raise CentralSystemError("not started")
        return self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        """The endpoint a charger appends ``/<station id>`` to."""
        return f"ws://{self._host}:{self.port}/ocpp"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on ``host:port``; port 0 picks a free one."""
        if self._server is not None:
            raise CentralSystemError("already started")
        self._host = host
        self._server = await serve(
            self._serve_connection,
            host,
            port,
            subprotocols=[Subprotocol(p) for p in self.protocols],
            select_subprotocol=self._select_subprotocol,
            process_request=self._process_request,
        )
        log.info("central system listening on %s", self.url)

    async def stop(self) -> None:
        """Close every connection and stop listening."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    async def wait_for_station(self, station_id: str, timeout_s: float = 10) -> StationHandle:
        """Return the station once it has an open connection."""
        deadline = time.monotonic() + timeout_s
        while True:
            changed = self._changed
            handle = self.stations.get(station_id)
            if handle is not None and handle.connected:
                return handle
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"station {station_id} did not connect within {timeout_s}s")
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                pass

    def default_reply(self, station: StationHandle, action: str, payload: Payload) -> Payload:
        """The reply to a charger request when no handler overrides it."""
        if station.version == "2.0.1":
            from tools import csms201

            return csms201.default_reply(self, action, payload, _utc_now_iso())
        if action == Action.boot_notification:
            return {
                "status": self.boot_status,
                "currentTime": _utc_now_iso(),
                "interval": self.boot_interval_s,
            }
        if action == Action.heartbeat:
            return {"currentTime": _utc_now_iso()}
        if action == Action.authorize:
            return {"idTagInfo": self._id_tag_info(payload.get("idTag"))}
        if action == Action.start_transaction:
            return {
                "transactionId": next(self._transaction_ids),
                "idTagInfo": self._id_tag_info(payload.get("idTag")),
            }
        if action == Action.stop_transaction:
            return {"idTagInfo": self._id_tag_info(payload["idTag"])} if "idTag" in payload else {}
        if action in (Action.data_transfer, Action.sign_certificate):
            return {"status": "Accepted"}
        return {}

    def _id_tag_info(self, id_tag: Any) -> Payload:
        return {"status": "Invalid" if id_tag in self.reject_tags else "Accepted"}

    def _print(self, station_id: str, direction: str, action: str, text: str) -> None:
        if self.quiet:
            return
        out = self._out if self._out is not None else sys.stdout
        line = f"{time.strftime('%H:%M:%S')} {station_id} {direction} {action}"
        print(f"{line} {text}" if text else line, file=out, flush=True)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _reject(
        self, connection: ServerConnection, station_id: str, status: HTTPStatus, reason: str
    ) -> Response:
        self.rejections.append((station_id, reason))
        self._print(station_id or "-", "✗", "rejected", reason)
        response = connection.respond(status, f"{reason}\n")
        if status == HTTPStatus.UNAUTHORIZED:
            response.headers["WWW-Authenticate"] = 'Basic realm="ocpp", charset="UTF-8"'
        return response

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        station_id = _station_id(request.path)
        if not station_id:
            return self._reject(connection, station_id, HTTPStatus.NOT_FOUND, "no station id in the path")
        if self.password is None:
            return None
        authorization = request.headers.get("Authorization", "")
        scheme, _, token = authorization.partition(" ")
        try:
            credentials = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            credentials = b""
        if scheme.lower() != "basic" or not credentials:
            return self._reject(connection, station_id, HTTPStatus.UNAUTHORIZED, "missing Basic credentials")
        if self.check_username:
            good = credentials == f"{station_id}:{self.password}".encode()
        else:
            good = credentials.partition(b":")[2] == self.password.encode()
        if not good:
            return self._reject(connection, station_id, HTTPStatus.UNAUTHORIZED, "wrong credentials")
        return None

    def _select_subprotocol(
        self, connection: ServerConnection, offered: Sequence[Subprotocol]
    ) -> Subprotocol | None:
        """Our most preferred protocol the charger offers; else none, and the handler
        decides (websockets would answer 400)."""
        return next((Subprotocol(p) for p in self.protocols if p in offered), None)

    async def _serve_connection(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        station_id = _station_id(ws.request.path)
        if ws.subprotocol is not None:
            version = _version_of(ws.subprotocol)
        elif self.require_subprotocol:
            # OCPP-J 1.6 §3.1.2 / 2.0.1 §3.1.2: complete the handshake, then close at once.
            wanted = " or ".join(self.protocols)
            reason = f"no {wanted} subprotocol" if wanted else "no subprotocol served"
            self.rejections.append((station_id, reason))
            self._print(station_id, "✗", "rejected", reason + (" offered" if wanted else ""))
            await ws.close(1002, f"subprotocol {wanted} required" if wanted else reason)
            return
        else:
            only_201 = bool(self.protocols) and SUBPROTOCOL not in self.protocols
            version = _version_of(self.protocols[0] if only_201 else SUBPROTOCOL)
        handle = self.stations.get(station_id)
        if handle is None:
            handle = self.stations[station_id] = StationHandle(station_id, self)
        previous = handle._ws
        if previous is not None:
            self._print(station_id, "✗", "replaced", "a new connection supersedes the open one")
            await previous.close(1000, "replaced by a new connection")
        cp = version.charge_point(handle, ws, self.response_timeout_s)
        handle._ws, handle._cp, handle._version = ws, cp, version
        handle.connections += 1
        self._print(station_id, "·", "connected", f"subprotocol={ws.subprotocol}")
        self._notify()
        try:
            await cp.start()
        except ConnectionClosed:
            pass
        except Exception:
            log.exception("station %s: connection handler failed", station_id)
        finally:
            if handle._ws is ws:
                handle._ws, handle._cp = None, None
            self._print(station_id, "·", "disconnected", f"code={ws.close_code} reason={ws.close_reason!r}")
            handle._notify()
            self._notify()


def _station_id(path: str) -> str:
    """The last segment of the URL path, URL-decoded (``/ocpp/CP%201`` → ``CP 1``)."""
    return unquote(urlsplit(path).path.rpartition("/")[2])


async def run_command(cs: TestCentralSystem, line: str, out: TextIO) -> None:
    """Run one stdin command ``<station> <Action> [<json payload>]`` and print the reply."""
    parts = line.split(maxsplit=2)
    if len(parts) < 2:
        print('usage: <station> <Action> [{"json": "payload"}]', file=out, flush=True)
        return
    station_id, action = parts[0], parts[1]
    try:
        payload = json.loads(parts[2]) if len(parts) == 3 else {}
        if not isinstance(payload, dict):
            raise ValueError("the payload must be a JSON object")
        station = cs.stations.get(station_id)
        if station is None:
            raise NotConnectedError(f"unknown station {station_id}; known: {sorted(cs.stations)}")
        reply = await station.call(action, **payload)
    except Exception as exc:  # report anything to the operator and keep serving
        reason = exc if isinstance(exc, OCPPError) else repr(exc)
        print(f"{station_id} {action} failed: {reason}", file=out, flush=True)
    else:
        print(f"{station_id} {action} result: {json.dumps(reply)}", file=out, flush=True)


def _read_stdin_lines(loop: asyncio.AbstractEventLoop, lines: asyncio.Queue[str | None]) -> None:
    """Thread body: feed stdin lines to the loop, then None at EOF."""
    try:
        for line in sys.stdin:
            loop.call_soon_threadsafe(lines.put_nowait, line)
    finally:
        try:
            loop.call_soon_threadsafe(lines.put_nowait, None)
        except RuntimeError:  # loop already closed
            pass


async def _main_async(args: argparse.Namespace) -> None:
    cs = TestCentralSystem(
        boot_status=args.boot_status,
        boot_interval_s=args.boot_interval,
        reject_tags=args.reject_tag,
        password=args.password,
        quiet=args.quiet,
        protocols=args.protocol or PROTOCOLS,
    )
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    assert main_task is not None
    loop.add_signal_handler(signal.SIGTERM, main_task.cancel)
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    commands: set[asyncio.Task[None]] = set()
    await cs.start(args.host, args.port)
    served = ", ".join(cs.protocols)
    print(f"OCPP central system ({served}) on {cs.url}/<station id> (Ctrl-C to stop)", flush=True)
    threading.Thread(target=_read_stdin_lines, args=(loop, lines), daemon=True).start()
    try:
        while (line := await lines.get()) is not None:
            if line.strip():
                task = asyncio.create_task(run_command(cs, line.strip(), sys.stdout))
                commands.add(task)
                task.add_done_callback(commands.discard)
        await asyncio.Event().wait()  # stdin closed: keep serving until Ctrl-C / SIGTERM
    finally:
        for task in list(commands):
            task.cancel()
        await asyncio.gather(*commands, return_exceptions=True)
        await cs.stop()


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m tools.csms", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--password", help="require HTTP Basic auth <station id>:<password>")
    parser.add_argument(
        "--protocol",
        action="append",
        choices=PROTOCOLS,
        help="serve this subprotocol (repeatable, most preferred first; default: %s)" % " ".join(PROTOCOLS),
    )
    parser.add_argument(
        "--boot-interval", type=int, default=300, help="heartbeat interval sent in BootNotification"
    )
    parser.add_argument("--boot-status", default="Accepted", choices=["Accepted", "Pending", "Rejected"])
    parser.add_argument(
        "--reject-tag", action="append", default=[], help="answer this idTag Invalid (repeatable)"
    )
    parser.add_argument("--quiet", action="store_true", help="do not print messages")
    parser.add_argument("-v", "--verbose", action="store_true", help="log the ocpp library too")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if not args.verbose:  # call errors and bad frames are printed as messages already
        _library_log.setLevel(logging.CRITICAL)
    try:
        asyncio.run(_main_async(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
