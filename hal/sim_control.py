"""Control socket of the simulated board (CPython only: unix sockets).

Benches and tests drive the simulated hardware over ``data_dir/sim.sock``:
one JSON line per request, ``{"command": "plug", "args": ["1"]}``, one JSON
line per reply, ``{"ok": true, "result": {status}}`` or
``{"ok": false, "error": "message"}``. Commands: ``plug N``, ``unplug N``,
``swipe TAG``, ``ev-full N``, ``fault N CODE``, ``clear N``, ``status``.
"""

import json
import logging

from hal.runtime.jsonline import MAX_LINE_BYTES, MAX_UNIX_PATH_BYTES, JsonLineServer, request  # noqa: F401
from hal.sim import SimHardware

log = logging.getLogger(__name__)

SOCKET_FILE = "sim.sock"

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


class SimControlServer(JsonLineServer):
    """Serves the control protocol for ``sim`` on the unix socket ``path``
    (the generic line server of agent/app/control.py).

    ``extra_status(connector_id) -> dict`` (optional, from the station) adds
    keys such as ``station_status`` to each connector's status.
    """

    what = "sim control socket"

    def __init__(self, sim: SimHardware, path: str, extra_status=None) -> None:
        super().__init__(path, max_line_bytes=MAX_LINE_BYTES)
        self.sim = sim
        self.extra_status = extra_status

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

    async def handle_line(self, line: bytes) -> dict:
        return self.handle(line)

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


async def send_command(path: str, command: str, args: list[str], timeout_s: float = 5.0) -> dict:
    """Send one command to the agent serving ``path``; return its reply
    (``{"ok": True, "result": …}`` or ``{"ok": False, "error": …}``).

    Raises ``ConnectionError`` when no agent serves ``path``, ``TimeoutError``
    when it does not answer within ``timeout_s``.
    """
    return await request(path, {"command": command, "args": [str(a) for a in args]}, timeout_s)
