"""The ``ocpp`` library's ChargePoint as the central-system side of one connection, for the
test central system (tools/csms.py, 1.6; tools/csms201.py, 2.0.1): every frame is recorded
on the station's handle, and every request a charger sends is answered by the handle."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ocpp.charge_point import camel_to_snake_case
from ocpp.routing import on


def recording_charge_point(base: type, actions: Iterable[str], name: str) -> type:
    """A subclass of the library's ChargePoint ``base`` (of one OCPP version) built as
    ``cls(handle, connection, response_timeout_s, logger)``: frames go through
    ``handle._frame_in`` / ``handle._frame_out``, and each of ``actions`` (the requests a
    charger may send in that version) is answered by ``handle._respond(action, unique_id)``."""

    def __init__(self, handle: Any, connection: Any, response_timeout_s: float, logger: Any) -> None:
        base.__init__(self, handle.id, connection, response_timeout=response_timeout_s, logger=logger)
        self._handle = handle

    async def route_message(self, raw_msg: str) -> None:
        if self._handle._frame_in(raw_msg):
            await base.route_message(self, raw_msg)

    async def _send(self, message: str) -> None:
        self._handle._frame_out(message)
        await self._connection.send(message)

    namespace: dict[str, Any] = {"__init__": __init__, "route_message": route_message, "_send": _send,
                                 "__doc__": "The ocpp library's view of one connection; records every frame "
                                            "on its handle."}
    for action in actions:
        method = "_on_" + next(iter(camel_to_snake_case({action: None})))
        namespace[method] = _answer(action, method)
    return type(name, (base,), namespace)


def _answer(action: str, method: str):
    async def handler(self: Any, call_unique_id: str, **_payload: Any) -> Any:
        return await self._handle._respond(action, call_unique_id)

    handler.__name__ = handler.__qualname__ = method
    return on(action)(handler)
