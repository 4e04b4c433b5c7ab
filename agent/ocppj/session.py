"""OCPP-J framing shared by every adapter's session: reading frames, answering malformed
ones with a CALLERROR (the ``ocpp`` library would only log them and leave the central
system waiting), handing CALLs to the adapter and answers to the library's call waiting
for them. Each OCPP version names the errors its own way (class attributes).

CPython-only (a mixin for the ``ocpp`` library's ChargePoint).
"""

import json
import logging

import ocpp.messages

log = logging.getLogger(__name__)


def call_error(unique_id: str, code: str, description: str) -> str:
    """A CALLERROR frame (the description cut to 255 characters)."""
    return json.dumps([4, unique_id, code, description[:255], {}], separators=(",", ":"))


class FramedSession:
    """Mix in before the library's ChargePoint; ``self.client`` records traffic (and marks
    activity, when it has ``mark_activity``). Subclasses implement ``handle_call``."""

    NOT_JSON = "FormationViolation"  # 1.6 names; 2.0.1: RpcFrameworkError
    NOT_A_CALL = "FormationViolation"  # 2.0.1: FormatViolation
    UNKNOWN_TYPE = "FormationViolation"  # 2.0.1: MessageTypeNotSupported

    async def start(self) -> None:
        """Read frames until the connection closes (raises ConnectionClosed)."""
        while True:
            await self.route_message(await self._connection.recv())

    async def _send(self, message: str) -> None:
        mark = getattr(self.client, "mark_activity", None)
        if mark is not None:
            mark()
        self.client.record("out", message)
        await self._connection.send(message)

    async def route_message(self, raw_msg) -> None:
        self.client.record("in", raw_msg)
        try:
            msg = json.loads(raw_msg)
        except (ValueError, TypeError):
            self._invalid_message("not JSON", raw_msg)
            await self._send(call_error("-1", self.NOT_JSON, "Message is not valid JSON"))
            return
        if not isinstance(msg, list) or len(msg) < 3 or not isinstance(msg[1], str) or not isinstance(msg[0], int):
            uid = msg[1] if isinstance(msg, list) and len(msg) > 1 and isinstance(msg[1], str) else "-1"
            self._invalid_message("not an OCPP-J array", raw_msg)
            await self._send(call_error(uid, self.NOT_JSON, "Not an OCPP-J message array"))
            return
        type_id, uid = msg[0], msg[1]
        if type_id == 2:
            if len(msg) != 4 or not isinstance(msg[2], str) or not isinstance(msg[3], dict):
                self._invalid_message("a malformed CALL", raw_msg)
                await self._send(call_error(uid, self.NOT_A_CALL, "CALL must be [2, id, action, {payload}]"))
                return
            await self.handle_call(uid, msg[2], msg[3])
        elif type_id in (3, 4):
            try:
                self._response_queue.put_nowait(ocpp.messages.unpack(raw_msg))
            except Exception as e:  # an answer nobody can use: the call waiting for it times out
                log.warning("ignoring malformed response %s: %s", str(raw_msg)[:200], e)
        else:
            self._invalid_message("an unknown message type", raw_msg)
            await self._send(call_error(uid, self.UNKNOWN_TYPE, "Unknown message type %r" % type_id))

    def _invalid_message(self, what: str, raw_msg) -> None:
        """A frame that is not OCPP-J: the security event InvalidMessages, once a connection
        (a peer sending garbage in a loop must not fill the security log)."""
        if getattr(self, "_invalid_reported", False):
            return
        self._invalid_reported = True
        security_log = getattr(self.client, "security_log", None)
        if security_log is not None:
            security_log.record("invalid_messages", "%s: %s" % (what, str(raw_msg)[:120]))

    async def handle_call(self, uid: str, action: str, payload: dict) -> None:
        """Answer one well-formed CALL (a CALLRESULT or a CALLERROR, always)."""
        raise NotImplementedError
