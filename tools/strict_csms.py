"""Drive ``tools/strict_csms`` (Node.js, ocpp-rpc in strict mode) from Python tests.

The agent and ``tools.csms`` share the Python ``ocpp`` library, so a bug in
it (its schema check, its camelCase conversion) could hide on both ends. This
central system comes from another ecosystem: ocpp-rpc validates every request
and every reply against the OCPP 1.6J or 2.0.1 schemas (including ``date-time``
formats, which the Python library does not check) and reports each failure as
an event; a station's invalid request is answered with ocpp-rpc's CALLERROR
(e.g. TypeConstraintViolation)::

    async with StrictCentralSystem() as cs:  # protocols=("ocpp2.0.1",) for 2.0.1
        ...  # point the agent at cs.url
        await cs.wait_for("BootNotification", timeout_s=10)
        assert cs.station_errors() == []

``events`` holds the server's JSON lines in order; see ``server.js`` for them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SERVER_DIR = Path(__file__).resolve().parent / "strict_csms"
"""The Node.js project: ``package.json``, ``package-lock.json``, ``server.js``."""

PROTOCOLS: tuple[str, ...] = ("ocpp1.6", "ocpp2.0.1")
"""The subprotocols server.js can serve."""

Event = dict[str, Any]


def available() -> bool:
    """Whether Node.js is installed (and npm too, while node_modules is missing)."""
    if shutil.which("node") is None:
        return False
    return (SERVER_DIR / "node_modules").is_dir() or shutil.which("npm") is not None


class StrictCsmsError(Exception):
    """The strict central system could not be installed, started or driven."""


class StrictCallError(StrictCsmsError):
    """A command sent to a station failed: a CALLERROR, a timeout or a schema error."""

    def __init__(self, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details


class StrictCentralSystem:
    """One ``node server.js`` process on an ephemeral port of ``host``.

    ``protocols`` are the subprotocols it serves, most preferred first (default
    ``("ocpp1.6",)``; ``("ocpp2.0.1",)`` for 2.0.1, ``("ocpp2.0.1", "ocpp1.6")``
    for both); a station offering none of them is closed after the handshake.
    Payloads are those of the version negotiated (the ``connect`` event's
    ``protocol``; ``protocol_of(station)``). ``reject_tags`` apply to ``idTag``
    (1.6) and ``idToken.idToken`` (2.0.1). ``replies`` replaces the reply to a charger action by a fixed payload
    (e.g. ``{"Authorize": {"idTagInfo": {"status": "Blocked"}}}``); it is
    schema-checked like every other reply.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        password: str | None = None,
        boot_interval_s: int = 300,
        boot_status: str = "Accepted",
        reject_tags: Iterable[str] = (),
        replies: dict[str, Any] | None = None,
        call_timeout_s: float = 30,
        start_timeout_s: float = 20,
        install_timeout_s: float = 300,
        node: str = "node",
        npm: str = "npm",
        echo: bool = False,
        protocols: Sequence[str] = ("ocpp1.6",),
    ) -> None:
        if isinstance(protocols, str) or not protocols or set(protocols) - set(PROTOCOLS):
            raise ValueError(f"protocols must be some of {PROTOCOLS}, got {protocols!r}")
        self.protocols = tuple(protocols)
        self.host = host
        self.password = password
        self.boot_interval_s = boot_interval_s
        self.boot_status = boot_status
        self.reject_tags = list(reject_tags)
        self.replies = dict(replies or {})
        self.call_timeout_s = call_timeout_s
        self.start_timeout_s = start_timeout_s
        self.install_timeout_s = install_timeout_s
        self.node = node
        self.npm = npm
        self.echo = echo
        self.events: list[Event] = []
        self.stderr: list[str] = []
        self.port: int | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._readers: list[asyncio.Task[None]] = []
        self._changed = asyncio.Event()
        self._exited = False

    async def __aenter__(self) -> StrictCentralSystem:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """The endpoint a charger appends ``/<station id>`` to."""
        if self.port is None:
            raise StrictCsmsError("not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}/ocpp"

    @property
    def errors(self) -> list[Event]:
        """Every ``{"dir": "error"}`` event so far (ours and the station's)."""
        return [event for event in self.events if event.get("dir") == "error"]

    def protocol_of(self, station: str) -> str | None:
        """The subprotocol of the station's last connection, None if it never connected."""
        connects = [e for e in self.events if e.get("dir") == "connect" and e.get("station") == station]
        return connects[-1].get("protocol") if connects else None

    def station_errors(self) -> list[Event]:
        """Error events caused by a station: invalid requests or results, bad frames, CALLERRORs."""
        return [event for event in self.errors if event.get("origin") == "station"]

    async def start(self) -> None:
        """Install the node modules if missing, start the server, wait until it listens."""
        if self._proc is not None:
            raise StrictCsmsError("already started")
        if shutil.which(self.node) is None:
            raise StrictCsmsError(f"{self.node!r} is not installed")
        await self._install()
        args = [str(SERVER_DIR / "server.js"), "--port", "0", "--host", self.host]
        args += ["--boot-interval", str(self.boot_interval_s), "--boot-status", self.boot_status]
        args += ["--call-timeout-ms", str(int(self.call_timeout_s * 1000))]
        args += ["--protocols", ",".join(self.protocols)]
        for tag in self.reject_tags:
            args += ["--reject-tag", tag]
        for action, reply in self.replies.items():
            args += ["--reply", f"{action}={json.dumps(reply)}"]
        env = dict(os.environ)
        env.pop("STRICT_CSMS_PASSWORD", None)
        if self.password is not None:
            env["STRICT_CSMS_PASSWORD"] = self.password  # not on the command line
        self._proc = await asyncio.create_subprocess_exec(
            self.node,
            *args,
            cwd=SERVER_DIR,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=1 << 22,
        )
        assert self._proc.stdout is not None and self._proc.stderr is not None
        self._readers = [
            asyncio.create_task(self._read_stdout(self._proc.stdout)),
            asyncio.create_task(self._read_stderr(self._proc.stderr)),
        ]
        try:
            listening = await self.wait_event(lambda e: e.get("dir") == "listening", self.start_timeout_s)
        except BaseException:
            await self.stop()
            raise
        self.port = int(listening["port"])
        log.info("strict central system listening on %s", self.url)

    async def stop(self) -> None:
        """Close stdin (the server exits on EOF), then make sure it is gone."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 3)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        for reader in self._readers:
            try:
                await asyncio.wait_for(reader, 5)
            except TimeoutError:
                pass  # wait_for has cancelled and awaited it
        self._readers = []

    async def wait_event(
        self,
        predicate: Callable[[Event], bool],
        timeout_s: float = 10,
        start_index: int | None = None,
    ) -> Event:
        """Return the first event matching ``predicate`` at or after ``start_index``."""
        index = start_index or 0
        deadline = time.monotonic() + timeout_s
        while True:
            changed = self._changed
            while index < len(self.events):
                event = self.events[index]
                index += 1
                if predicate(event):
                    return event
            if self._exited:
                raise StrictCsmsError(f"the server exited; stderr: {''.join(self.stderr[-20:])}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no matching event within {timeout_s}s")
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                pass

    async def wait_for(
        self,
        action: str,
        timeout_s: float = 10,
        *,
        station: str | None = None,
        predicate: Callable[[Any], bool] | None = None,
        start_index: int | None = None,
    ) -> Any:
        """Return the payload of the first request with ``action`` a station sent."""

        def match(event: Event) -> bool:
            return (
                event.get("dir") == "in"
                and event.get("type") == "call"
                and event.get("action") == action
                and (station is None or event.get("station") == station)
                and (predicate is None or bool(predicate(event.get("payload"))))
            )

        event = await self.wait_event(match, timeout_s, start_index)
        return event.get("payload")

    async def send(
        self,
        station: str,
        action: str,
        payload: dict[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> Any:
        """Send a CS→CP request (camelCase payload) and return the station's result.

        Raises StrictCallError for a CALLERROR, a call timeout, a schema error
        on either side, or a station that is not connected.
        """
        proc = self._proc
        if proc is None or proc.stdin is None:
            raise StrictCsmsError("not started")
        command_id = str(uuid.uuid4())
        line = json.dumps({"station": station, "action": action, "payload": payload or {}, "id": command_id})
        start = len(self.events)
        proc.stdin.write(line.encode() + b"\n")
        await proc.stdin.drain()
        result = await self.wait_event(
            lambda e: e.get("dir") == "result" and e.get("id") == command_id,
            timeout_s if timeout_s is not None else self.call_timeout_s + 5,
            start,
        )
        if "error" in result:
            error = result["error"] or {}
            raise StrictCallError(str(error.get("code")), str(error.get("message")), error.get("details"))
        return result.get("payload")

    async def _install(self) -> None:
        if (SERVER_DIR / "node_modules").is_dir():
            return
        if shutil.which(self.npm) is None:
            raise StrictCsmsError(f"node_modules is missing and {self.npm!r} is not installed")
        log.info("installing %s with npm ci", SERVER_DIR)
        proc = await asyncio.create_subprocess_exec(
            self.npm,
            "ci",
            "--prefix",
            str(SERVER_DIR),
            "--no-audit",
            "--no-fund",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            output, _ = await asyncio.wait_for(proc.communicate(), self.install_timeout_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise StrictCsmsError(f"npm ci took over {self.install_timeout_s}s") from None
        if proc.returncode != 0:
            raise StrictCsmsError(
                f"npm ci failed ({proc.returncode}): {output.decode(errors='replace')[-2000:]}"
            )

    async def _read_stdout(self, stream: asyncio.StreamReader) -> None:
        try:
            while line := await stream.readline():
                text = line.decode("utf-8", errors="replace").strip()
                if not text:
                    continue
                if self.echo:
                    print(text, flush=True)
                try:
                    event = json.loads(text)
                except ValueError:
                    event = {"dir": "unparsed", "raw": text}
                self.events.append(event if isinstance(event, dict) else {"dir": "unparsed", "raw": text})
                self._notify()
        finally:
            self._exited = True
            self._notify()

    async def _read_stderr(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            text = line.decode("utf-8", errors="replace")
            self.stderr.append(text)
            log.warning("strict_csms: %s", text.rstrip())

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()
