"""JSON-line servers on unix sockets: one JSON line per request, one per reply.

CPython only (unix sockets). A ``JsonLineServer`` listens on a unix socket
(mode 0600: only the owner's user reaches it; there is no network port), and
``request()`` is its client. The simulated board's ``sim.sock``
(hal/sim_control.py) and the agent's ``control.sock`` (agent/app/control.py)
are both built on it.

A request is ``{"command": "...", ...}``; a reply ``{"ok": true, "result": …}``
or ``{"ok": false, "error": "message"}``.
"""

import asyncio
import errno
import json
import logging
import os
import socket
import stat

from hal.runtime.aio import wait_for

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 4096
MAX_UNIX_PATH_BYTES = 107  # sun_path is 108 bytes on Linux, NUL included


class JsonLineServer:
    """Serves one JSON request line → one JSON reply line on the unix socket ``path``.

    Subclasses implement ``handle_line(line) -> reply dict`` (or ``handle_request``
    for parsed requests); a handler never raises for bad input.
    """

    what = "control socket"

    def __init__(self, path: str, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self.path = path
        self.max_line_bytes = max_line_bytes
        self._server = None
        self._clients: dict = {}  # handler task -> its StreamWriter

    async def start(self) -> None:
        """Listen on ``path`` (mode 0600), replacing a stale socket file of a dead agent."""
        if len(os.fsencode(self.path)) > MAX_UNIX_PATH_BYTES:
            raise OSError(errno.ENAMETOOLONG, "unix socket path longer than %d bytes: %s"
                          % (MAX_UNIX_PATH_BYTES, self.path))
        await remove_stale_socket(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)  # never reachable by others, not even between bind and chmod
        try:
            sock.bind(self.path)
        except OSError:
            sock.close()
            raise
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)
        self._server = await asyncio.start_unix_server(self._serve, sock=sock, limit=self.max_line_bytes)
        log.info("%s at %s", self.what, self.path)

    async def close(self) -> None:
        """Stop listening, drop clients and remove the socket file. Safe to call twice."""
        if self._server is None:
            return
        self._server.close()
        await self._server.wait_closed()
        self._server = None
        # Hang up rather than cancel: Python 3.11's stream server logs cancelled handlers as errors.
        clients, self._clients = self._clients, {}
        for writer in clients.values():
            writer.transport.abort()
        for task in clients:
            await task
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    async def __aenter__(self):
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def handle_line(self, line: bytes) -> dict:
        """Parse one request line and run it; the reply (never raises for bad input)."""
        try:
            request = json.loads(line)
            if not isinstance(request, dict) or not isinstance(request.get("command"), str):
                raise ValueError('a request is a JSON object like {"command": "status"}')
            return {"ok": True, "result": await self.handle_request(request)}
        except ValueError as e:
            return {"ok": False, "error": str(e)}
        except Exception as e:
            log.exception("%s command failed", self.what)
            return {"ok": False, "error": "internal error: %s" % e}

    async def handle_request(self, request: dict):
        """Run a parsed request; return its result or raise ValueError with a message."""
        raise ValueError("unknown command %r" % request.get("command"))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._clients[task] = writer
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:  # longer than max_line_bytes: the stream is out of step
                    error = "request longer than %d bytes" % self.max_line_bytes
                    await _reply(writer, {"ok": False, "error": error})
                    break
                if not line:
                    break
                await _reply(writer, await self.handle_line(line))
        except ConnectionError:
            pass
        finally:
            self._clients.pop(task, None)
            await _close(writer)


async def _reply(writer: asyncio.StreamWriter, reply: dict) -> None:
    writer.write(json.dumps(reply).encode() + b"\n")
    await writer.drain()


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:  # the peer went first
        pass


async def _drain_and_readline(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    await writer.drain()
    return await reader.readline()


async def remove_stale_socket(path: str) -> None:
    """Remove ``path`` if it is a socket nobody listens on; refuse to steal a live one."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(errno.EEXIST, "%s exists and is not a socket" % path)
    try:
        _reader, writer = await asyncio.open_unix_connection(path)
    except ConnectionRefusedError:
        log.info("removing stale control socket %s", path)
        os.unlink(path)
        return
    await _close(writer)
    raise OSError(errno.EADDRINUSE, "another agent already serves %s" % path)


async def request(path: str, message: dict, timeout_s: float = 5.0) -> dict:
    """Send one request to the agent serving ``path``; return its reply
    (``{"ok": True, "result": …}`` or ``{"ok": False, "error": …}``).

    Raises ``ConnectionError`` when no agent serves ``path``, ``TimeoutError``
    when it does not answer within ``timeout_s``.
    """
    data_dir = os.path.dirname(path) or "."
    try:
        reader, writer = await wait_for(asyncio.open_unix_connection(path), timeout_s)
    except (FileNotFoundError, ConnectionRefusedError) as e:
        raise ConnectionError("no agent running with data_dir %s (%s: %s)"
                              % (data_dir, path, e.strerror)) from e
    except asyncio.TimeoutError:
        raise TimeoutError("no answer from the agent at %s within %.1f s" % (path, timeout_s)) from None
    try:
        writer.write(json.dumps(message).encode() + b"\n")
        line = await wait_for(_drain_and_readline(reader, writer), timeout_s)
    except asyncio.TimeoutError:
        raise TimeoutError("no answer from the agent at %s within %.1f s" % (path, timeout_s)) from None
    finally:
        await _close(writer)
    if not line:
        raise ConnectionError("the agent at %s closed the connection without answering" % path)
    try:
        reply = json.loads(line)
    except ValueError as e:
        raise ConnectionError("garbled answer from the agent at %s: %s" % (path, e)) from e
    if not isinstance(reply, dict) or "ok" not in reply:
        raise ConnectionError("garbled answer from the agent at %s: %r" % (path, reply))
    return reply
