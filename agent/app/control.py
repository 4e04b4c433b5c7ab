"""The agent's own control socket (``data_dir/control.sock``).

``csms-show``, ``csms-set``, ``config-set``, used by ``ocpp-agent csms`` and
``ocpp-agent config`` to change a running agent without a restart; built on
the JSON-line server of hal/runtime/jsonline.py.
"""

from hal.runtime.jsonline import JsonLineServer

CONTROL_SOCKET_FILE = "control.sock"


class AgentControlServer(JsonLineServer):
    """The agent's own control socket (``data_dir/control.sock``).

    ``admin`` is the agent's ``Admin`` (agent/app/admin.py); every command goes
    through it, so the CLI, the status page and OCPP share one validation path.
    """

    what = "agent control socket"

    def __init__(self, admin, path: str) -> None:
        super().__init__(path, max_line_bytes=16384)
        self.admin = admin

    async def handle_request(self, req: dict):
        command = req["command"]
        if command == "csms-show":
            return self.admin.csms_show()
        if command == "csms-set":
            return await self.admin.csms_set(
                _opt_str(req, "url"), station_id=_opt_str(req, "station_id"),
                password=_opt_str(req, "password"), ca_file=_opt_str(req, "ca_file"), source="cli")
        if command == "config-set":
            key, value = _opt_str(req, "key"), _opt_str(req, "value")
            if key is None or value is None:
                raise ValueError("config-set needs key and value")
            return await self.admin.config_set(key, value, source="cli")
        if command == "update":
            return await self.admin.update(_opt_str(req, "location"), rollback=bool(req.get("rollback")))
        raise ValueError("unknown command %r; commands: csms-show, csms-set, config-set, update" % command)


def _opt_str(req: dict, name: str):
    value = req.get(name)
    if value is not None and not isinstance(value, str):
        raise ValueError("%s must be a string" % name)
    return value
