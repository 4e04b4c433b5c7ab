"""The recent OCPP traffic, for the status page: a bounded list of frames, and a
note for each connection opened naming the OCPP version it speaks.

Secrets never enter it: the value of a ChangeConfiguration for
AuthorizationKey is replaced before the frame is kept or passed on.
"""

import json

REDACTED = "(hidden)"
OPENED = "open"  # the direction of a note: a connection opened (with its OCPP version)
SECRET_CONFIGURATION_KEYS = ("AuthorizationKey",)


def redact(text: str) -> str:
    """``text`` with the value of a ChangeConfiguration of a secret key hidden."""
    if not isinstance(text, str) or not any(k in text for k in SECRET_CONFIGURATION_KEYS):
        return text
    try:
        msg = json.loads(text)
    except ValueError:
        return REDACTED  # unreadable and names a secret key: keep none of it
    if (isinstance(msg, list) and len(msg) == 4 and msg[2] == "ChangeConfiguration"
            and isinstance(msg[3], dict) and msg[3].get("key") in SECRET_CONFIGURATION_KEYS):
        msg[3] = dict(msg[3], value=REDACTED)
        return json.dumps(msg, separators=(",", ":"))
    return text


class TrafficLog:
    """The last ``max_frames`` frames: (wall time, direction, via, text). The direction is
    ``"in"`` or ``"out"`` for a frame, ``"open"`` for the note of a connection opening."""

    def __init__(self, clock, max_frames: int = 200, forward=None) -> None:
        self.clock = clock
        self.max_frames = max_frames
        self.forward = forward  # another traffic_log(direction, text), e.g. the demo's printer
        self.frames: list = []

    def record(self, direction: str, text: str, via: str = "") -> None:
        text = redact(text)
        self.frames.append((self.clock.time(), direction, via, text))
        if len(self.frames) > self.max_frames:
            del self.frames[:len(self.frames) - self.max_frames]
        if self.forward is not None and not via:
            self.forward(direction, text)

    def connection_opened(self, url: str, version: str | None, subprotocol: str, via: str = "") -> None:
        """A note in the log (direction ``"open"``, never forwarded as a frame): a connection
        opened, and the OCPP version the central system selected for it."""
        self.frames.append((self.clock.time(), OPENED, via, "connection opened to %s: OCPP %s (subprotocol %s)"
                            % (url, version or "?", subprotocol)))
        if len(self.frames) > self.max_frames:
            del self.frames[:len(self.frames) - self.max_frames]

    def recent(self, n: int = 50) -> list:
        return self.frames[-n:]
