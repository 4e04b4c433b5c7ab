"""The recent OCPP traffic, for the status page: a bounded list of frames, and a
note for each connection opened naming the OCPP version it speaks.

Secrets never enter it: before a frame is kept or passed on (to the traffic log
file, agent/app/log_files.py), the values of secret settings are replaced: a 1.6
ChangeConfiguration (or GetConfiguration answer) of AuthorizationKey, a 2.0.1
SetVariables / GetVariables / NotifyReport of a variable named like a password
or secret (SecurityCtrlr.BasicAuthPassword), and the passwords, VPN key and SIM
PIN of a SetNetworkConnectionProfile.
"""

import json

REDACTED = "(hidden)"
OPENED = "open"  # the direction of a note: a connection opened (with its OCPP version)
SECRET_CONFIGURATION_KEYS = ("AuthorizationKey",)
SECRET_FIELDS = ("password", "apnPassword", "simPin")  # 2.0.1 NetworkConnectionProfile (VPN, APN)
# A frame is parsed only when it holds one of these (most frames do not).
_TRIGGERS = ("assword", "ASSWORD", "ecret", "ECRET", "AuthorizationKey", "simPin", '"vpn"')


def is_secret_name(name) -> bool:
    """Whether a configuration key or device model variable ``name`` holds a secret."""
    if not isinstance(name, str):
        return False
    low = name.lower()
    return low in ("authorizationkey",) or "password" in low or "passwd" in low or "secret" in low


def redact(text: str) -> str:
    """``text`` with the values of secret settings hidden (see the module's text)."""
    if not isinstance(text, str) or not any(t in text for t in _TRIGGERS):
        return text
    try:
        msg = json.loads(text)
    except ValueError:
        return REDACTED  # unreadable and names a secret: keep none of it
    if not _hide(msg):
        return text
    return json.dumps(msg, separators=(",", ":"))


def _hide(node, parent_key: str = "") -> bool:
    """Replace the secret values in the parsed frame ``node`` in place; True if any was."""
    hidden = False
    if isinstance(node, list):
        for item in node:
            hidden = _hide(item) or hidden
        return hidden
    if not isinstance(node, dict):
        return False
    if is_secret_name(node.get("key")) and "value" in node:  # ChangeConfiguration, a GetConfiguration key
        node["value"] = REDACTED
        hidden = True
    variable = node.get("variable")
    if isinstance(variable, dict) and is_secret_name(variable.get("name")):
        if "attributeValue" in node:  # SetVariables / GetVariables
            node["attributeValue"] = REDACTED
            hidden = True
        for attribute in node.get("variableAttribute") or ():  # NotifyReport
            if isinstance(attribute, dict) and "value" in attribute:
                attribute["value"] = REDACTED
                hidden = True
    for name, value in node.items():
        if (name in SECRET_FIELDS or (parent_key == "vpn" and name == "key")) and not isinstance(value, (dict, list)):
            node[name] = REDACTED
            hidden = True
        elif isinstance(value, (dict, list)):
            hidden = _hide(value, name) or hidden
    return hidden


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
