"""Control socket of the simulated board (CPython only: unix sockets).

Benches and tests drive the simulated hardware over ``data_dir/sim.sock``:
one JSON line per request, ``{"command": "plug", "args": ["1"]}``, one JSON
line per reply, ``{"ok": true, "result": {status}}`` or
``{"ok": false, "error": "message"}``. Commands: ``plug N``, ``unplug N``,
``swipe TAG``, ``ev-full N``, ``fault N CODE``, ``clear N``, ``status``.
"""

import asyncio
import errno
import json
import logging
import os
import socket
import stat

from hal.sim import SimHardware

log = logging.getLogger(__name__)

SOCKET_FILE = "sim.sock"
MAX_LINE_BYTES = 4096
MAX_UNIX_PATH_BYTES = 107  # sun_path is 108 bytes on Linux, NUL included

# command: (argument names, SimHardware method name or None for status only)
COMMANDS = (
    ("plug", ("N",), "plug"),
    ("unplug", ("N",), "unplug"),
    ("swipe", ("TAG",), "swipe"),
    ("ev-full", ("N",), "ev_full"),
    ("fault", ("N", "CODE"), "fault"),
    ("clear", ("N",), "clear"),
    ("status", (), None),
)


class SimControlServer:
    """Serves the control protocol for ``sim`` on the unix socket ``path``.

    ``extra_status(connector_id) -> dict`` (optional, from the station) adds
    keys such as ``ocpp_status`` to each connector's status.
    """

    def __init__(self, sim: SimHardware, path: str, extra_status=None) -> None:
        self.sim = sim
        self.path = path
        self.extra_status = extra_status
        self._server = None
        self._clients: dict = {}  # handler task -> its StreamWriter

    async def start(self) -> None:
        """Listen on ``path`` (mode 0600), replacing a stale socket file of a dead agent."""
        if len(os.fsencode(self.path)) > MAX_UNIX_PATH_BYTES:
            raise OSError(errno.ENAMETOOLONG, "unix socket path longer than %d bytes: %s"
                          % (MAX_UNIX_PATH_BYTES, self.path))
        await _remove_stale_socket(self.path)
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
        self._server = await asyncio.start_unix_server(self._serve, sock=sock, limit=MAX_LINE_BYTES)
        log.info("sim control socket at %s", self.path)

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

    def status(self) -> dict:
        """The sim's status with the station's extra keys merged into each connector."""
        result = self.sim.status()
        if self.extra_status is not None:
            for c in result["connectors"]:
                try:
                    extra = self.extra_status(c["id"])
                except Exception:  # the station's view is a bonus; never fail a command for it
                    log.exception("extra_status(%d) failed", c["id"])
                    continue
                for key, value in extra.items():
                    c.setdefault(key, value)
        return result

    def handle(self, line: bytes) -> dict:
        """Run one request line and return the reply (never raises for bad input)."""
        try:
            request = json.loads(line)
            if not isinstance(request, dict) or not isinstance(request.get("command"), str):
                raise ValueError('a request is a JSON object like {"command": "plug", "args": ["1"]}')
            args = request.get("args", [])
            if not isinstance(args, list) or not all(isinstance(a, (str, int)) for a in args):
                raise ValueError("args must be a list of strings")
            self._run(request["command"], [str(a) for a in args])
            return {"ok": True, "result": self.status()}
        except ValueError as e:
            return {"ok": False, "error": str(e)}
        except Exception as e:
            log.exception("sim control command failed")
            return {"ok": False, "error": "internal error: %s" % e}

    def _run(self, command: str, args: list) -> None:
        for name, arg_names, method in COMMANDS:
            if name == command:
                if len(args) != len(arg_names):
                    raise ValueError("usage: %s" % " ".join((name,) + arg_names))
                if method is not None:
                    getattr(self.sim, method)(*args)
                return
        raise ValueError("unknown command %r; commands: %s" % (command, ", ".join(c[0] for c in COMMANDS)))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._clients[task] = writer
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:  # longer than MAX_LINE_BYTES: the stream is out of step
                    error = "request longer than %d bytes" % MAX_LINE_BYTES
                    await _reply(writer, {"ok": False, "error": error})
                    break
                if not line:
                    break
                await _reply(writer, self.handle(line))
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


async def _remove_stale_socket(path: str) -> None:
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


async def send_command(path: str, command: str, args: list[str], timeout_s: float = 5.0) -> dict:
    """Send one command to the agent serving ``path``; return its reply
    (``{"ok": True, "result": …}`` or ``{"ok": False, "error": …}``).

    Raises ``ConnectionError`` when no agent serves ``path``, ``TimeoutError``
    when it does not answer within ``timeout_s``.
    """
    data_dir = os.path.dirname(path) or "."
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(path), timeout_s)
    except (FileNotFoundError, ConnectionRefusedError) as e:
        raise ConnectionError("no agent running with data_dir %s (%s: %s)"
                              % (data_dir, path, e.strerror)) from e
    except asyncio.TimeoutError:
        raise TimeoutError("no answer from the agent at %s within %.1f s" % (path, timeout_s)) from None
    try:
        request = {"command": command, "args": [str(a) for a in args]}
        writer.write(json.dumps(request).encode() + b"\n")
        line = await asyncio.wait_for(_drain_and_readline(reader, writer), timeout_s)
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
