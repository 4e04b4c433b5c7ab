"""Which central system the charger talks to, and the record of moving it.

``EndpointSettings`` is one way to reach a central system: its URL, the
station identity, the HTTP Basic auth password and the CA bundle. Its
``key`` (the connect URL, ``{url}/{id}``) names the backend: transactions and
their queued messages belong to the backend whose key was current when the
transaction started.

``EndpointState`` is the state machine of a switch, persisted in
``data_dir/endpoint.json`` (mode 0600: it holds passwords) after every change,
so a reboot in the middle of a switch ends in a working state:

* ``current`` — the settings in use, or being tried;
* ``last_accepted`` — the settings that last got BootNotification Accepted
  (None before the first accepted boot: there is then nothing to return to);
* ``pending`` — while ``current`` is being tried: since when (wall time),
  who asked, and the first local transaction id started meanwhile;
* ``rollback`` — the last rollback: from where, to where, why, when, and
  whether the central system was told (SecurityEventNotification);
* ``config_seen`` — the ``[csms]`` settings the configuration file held when
  the agent last read or wrote it: a difference at start means the owner
  edited the file while the agent was stopped, which starts a switch;
* ``held`` — the settings of earlier backends that still have queued
  messages, so they can be delivered there (agent/link/switch.py);
* ``auth_backend`` — the backend the authorization cache and local list
  belong to; ``auth_stash`` — the backend whose cache and list are kept aside
  until a move is confirmed (a rollback puts them back).

Portable core: no I/O but the atomic JSON file.
"""

import logging
import os
import urllib.parse

from agent.security import profiles
from hal.runtime.storage import read_json, write_json_atomic

log = logging.getLogger(__name__)

STATE_FILE = "endpoint.json"
_FIELDS = ("url", "station_id", "password", "ca_file", "security_profile", "certificate")


class EndpointSettings:
    """How to reach one central system. Immutable by convention."""

    __slots__ = _FIELDS

    def __init__(self, url: str, station_id: str, password: str = "", ca_file: str = "",
                 security_profile: int = 0, certificate: str = "") -> None:
        self.url = url
        self.station_id = station_id
        self.password = password
        self.ca_file = ca_file
        self.security_profile = security_profile  # 0: what the URL and password give (profiles.level_of)
        self.certificate = certificate  # profile 3: the fingerprint of the charger certificate presented

    @classmethod
    def from_config(cls, config) -> "EndpointSettings":
        return cls(config.csms["url"], config.station["id"], config.csms["password"], config.csms["ca_file"],
                   config.csms.get("security_profile", 0))

    @classmethod
    def from_dict(cls, d) -> "EndpointSettings | None":
        if not isinstance(d, dict) or not isinstance(d.get("url"), str) or not isinstance(d.get("station_id"), str):
            return None
        level = d.get("security_profile")
        return cls(d["url"], d["station_id"], str(d.get("password") or ""), str(d.get("ca_file") or ""),
                   level if level in profiles.LEVELS else 0, str(d.get("certificate") or ""))

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in _FIELDS}

    def replace(self, **changes) -> "EndpointSettings":
        d = self.to_dict()
        d.update({k: v for k, v in changes.items() if v is not None})
        return EndpointSettings(**d)

    @property
    def connect_url(self) -> str:
        """The websocket URL: ``{url}/{station id}``, the id URL-encoded."""
        return self.url.rstrip("/") + "/" + urllib.parse.quote(self.station_id, safe="")

    @property
    def key(self) -> str:
        """The backend's name: one central system and one identity on it."""
        return self.connect_url

    @property
    def level(self) -> int:
        """The security profile (0-3) these settings connect with."""
        return profiles.level_of(self.url, self.password, self.security_profile)

    def public(self) -> dict:
        """For display: everything but the password."""
        level = self.level
        words = profiles.WORDS[level]
        if level == profiles.TLS_BASIC and not self.password:
            words = "2 (TLS, no Basic auth password set)"
        return {"url": self.url, "station_id": self.station_id, "password_set": bool(self.password),
                "ca_file": self.ca_file, "security_profile": words, "security_profile_level": level,
                "certificate": self.certificate}

    def __eq__(self, other) -> bool:
        return isinstance(other, EndpointSettings) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:  # never the password
        return "EndpointSettings(%s, password %s)" % (self.key, "set" if self.password else "not set")


def same_origin(a: str, b: str) -> bool:
    """Whether two URLs reach the same server (scheme, host and port)."""
    pa, pb = urllib.parse.urlsplit(a), urllib.parse.urlsplit(b)
    try:
        return (pa.scheme, (pa.hostname or "").lower(), pa.port) == (pb.scheme, (pb.hostname or "").lower(), pb.port)
    except ValueError:
        return False


class EndpointState:
    """The switch state machine; every transition is written at once (``save``)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.current: EndpointSettings | None = None
        self.last_accepted: EndpointSettings | None = None
        self.pending: dict | None = None  # {"since": wall, "source": str, "first_local_id": int}
        self.rollback: dict | None = None
        self.config_seen: EndpointSettings | None = None
        self.held: dict = {}  # backend key -> EndpointSettings
        self.last_boot: float | None = None
        self.auth_backend = ""
        self.auth_stash: str | None = None

    @staticmethod
    def path_in(data_dir: str) -> str:
        return os.path.join(data_dir, STATE_FILE)

    # ------------------------------------------------------------------ persistence
    def load(self) -> bool:
        """Read the file; False when there is none (or it was corrupt: set aside)."""
        data = read_json(self.path, None) if self.path else None
        if not isinstance(data, dict):
            return False
        self.current = EndpointSettings.from_dict(data.get("current"))
        if self.current is None:
            return False
        self.last_accepted = EndpointSettings.from_dict(data.get("last_accepted"))
        pending = data.get("pending")
        self.pending = pending if isinstance(pending, dict) and isinstance(pending.get("since"), (int, float)) else None
        rollback = data.get("rollback")
        self.rollback = rollback if isinstance(rollback, dict) else None
        self.config_seen = EndpointSettings.from_dict(data.get("config_seen"))
        self.held = {}
        for key, d in (data.get("held") or {}).items():
            s = EndpointSettings.from_dict(d)
            if s is not None:
                self.held[key] = s
        last_boot = data.get("last_boot")
        self.last_boot = last_boot if isinstance(last_boot, (int, float)) else None
        self.auth_backend = data.get("auth_backend") if isinstance(data.get("auth_backend"), str) else ""
        self.auth_stash = data.get("auth_stash") if isinstance(data.get("auth_stash"), str) else None
        return True

    def save(self) -> None:
        if not self.path:
            return
        write_json_atomic(self.path, {
            "version": 1,
            "current": self.current.to_dict() if self.current else None,
            "last_accepted": self.last_accepted.to_dict() if self.last_accepted else None,
            "pending": self.pending,
            "rollback": self.rollback,
            "config_seen": self.config_seen.to_dict() if self.config_seen else None,
            "held": {k: s.to_dict() for k, s in self.held.items()},
            "last_boot": self.last_boot,
            "auth_backend": self.auth_backend,
            "auth_stash": self.auth_stash,
        }, mode=0o600)

    # ------------------------------------------------------------------ transitions
    def begin(self, new: EndpointSettings, source: str, now: float, first_local_id) -> EndpointSettings:
        """Start using ``new`` (its fallback time counts from ``now``); returns the
        settings it replaces. While a switch is pending, the first transaction id
        started meanwhile is kept, and the rollback goes back to the last accepted
        settings whatever was tried in between."""
        old = self.current
        if old is not None and old.key != new.key and self.last_accepted is not None \
                and self.last_accepted.key == old.key:
            # Its queued messages still go there, with the settings it last accepted.
            self.held[old.key] = old if old == self.last_accepted else self.last_accepted
        self.current = new
        if self.last_accepted is None or new == self.last_accepted:
            self.pending = None  # nothing to return to, or returning to what works
        elif self.pending is None:
            self.pending = {"since": now, "source": source, "first_local_id": first_local_id}
        else:
            self.pending = dict(self.pending, since=now, source=source)
        return old

    def accepted(self, now: float) -> None:
        """BootNotification Accepted with ``current``."""
        self.last_accepted = self.current
        self.pending = None
        self.last_boot = now
        self.held.pop(self.current.key, None)

    def roll_back(self, reason: str, now: float) -> EndpointSettings:
        """Return to the last accepted settings; returns the settings given up."""
        failed = self.current
        self.rollback = {"from": failed.public(), "to": self.last_accepted.public(), "reason": reason,
                         "at": now, "reported": False}
        self.current = self.last_accepted
        self.pending = None
        self.held.pop(self.current.key, None)
        return failed


def validate_csms_url(url: str) -> str:
    """Check a central system URL; return a problem description, or '' if it is fine."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as e:
        return "not a valid URL (%s)" % e
    if parts.scheme not in ("ws", "wss"):
        return "must start with ws:// or wss:// (got %r)" % url
    if not parts.hostname:
        return "has no host (got %r)" % url
    if port is not None and not 0 < port < 65536:
        return "port out of range (got %r)" % url
    if parts.query or parts.fragment:
        return "must not have a query or fragment (got %r)" % url
    if parts.username or parts.password:
        return "must not carry credentials; use csms.password (got a URL with user info)"
    return ""
