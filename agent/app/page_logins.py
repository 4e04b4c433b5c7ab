"""Logins to the status page: security events, and a brake on password guessing.

Pure bookkeeping, no I/O of its own: the page passes the client's address, the
user name of its Basic auth and the time (``time.monotonic()``). Basic auth
sends the password with every request, so an accepted login is recorded once
per session: the first request of a user from an address, or the first after
``session_s`` without one. Every wrong password is recorded; ``failures_max``
of them from one address within ``window_s`` close the page to that address
for ``block_s`` (the page answers 429 without looking at the password).

Events go to ``security_log.record(kind, tech_info)`` (agent/security/events.py)
with ``tech_info`` a JSON object: ``user`` and ``origin`` (the client's address),
never the password.
"""

import json
import logging

from agent.security.events import MAINTENANCE_LOGIN_ACCEPTED, MAINTENANCE_LOGIN_FAILED

log = logging.getLogger(__name__)

USER_MAX_CHARS = 64  # of a user name in an event (it is whatever the client sent)


class LoginTracker:
    """The sessions and failed attempts of one status page."""

    def __init__(self, security_log=None, *, failures_max: int = 5, window_s: float = 60.0, block_s: float = 60.0,
                 session_s: float = 600.0, tracked_max: int = 256) -> None:
        self.security_log = security_log
        self.failures_max = failures_max
        self.window_s = window_s
        self.block_s = block_s
        self.session_s = session_s
        self.tracked_max = tracked_max  # addresses (and sessions) remembered: memory stays bounded
        self._failures: dict = {}  # address -> [monotonic time of each recent failure]
        self._blocked: dict = {}  # address -> monotonic time the block ends
        self._sessions: dict = {}  # (address, user) -> monotonic time last seen

    def blocked_s(self, address: str, now: float) -> float:
        """Seconds left of ``address``'s block; 0 when it may try."""
        until = self._blocked.get(address)
        if until is None:
            return 0.0
        if now >= until:
            del self._blocked[address]
            return 0.0
        return until - now

    def failed(self, address: str, user: str, now: float) -> bool:
        """Record a wrong password; True when it blocks ``address``."""
        recent = [t for t in self._failures.pop(address, ()) if now - t < self.window_s] + [now]
        blocked = len(recent) >= self.failures_max
        if blocked:
            self._blocked[address] = now + self.block_s
            log.warning("status page: %d wrong passwords from %s within %g s; refusing it for %g s",
                        len(recent), address, self.window_s, self.block_s)
        else:
            self._failures[address] = recent
        self._bound(self._failures, now, lambda times: now - times[-1] >= self.window_s)
        self._bound(self._blocked, now, lambda until: now >= until)
        extra = {"blocked_s": self.block_s} if blocked else {}
        self._record(MAINTENANCE_LOGIN_FAILED, address, user, extra)
        return blocked

    def accepted(self, address: str, user: str, now: float) -> None:
        """Note a request with the right password; an event when it starts a session."""
        self._failures.pop(address, None)
        key = (address, user)
        last = self._sessions.pop(key, None)
        self._sessions[key] = now  # re-inserted: the dict stays in order of last use
        self._bound(self._sessions, now, lambda seen: now - seen >= self.session_s)
        if last is None or now - last >= self.session_s:
            log.info("status page: %r logged in from %s", user[:USER_MAX_CHARS], address)
            self._record(MAINTENANCE_LOGIN_ACCEPTED, address, user, {})

    def _bound(self, table: dict, now: float, expired) -> None:
        if len(table) <= self.tracked_max:
            return
        for key in [k for k, v in table.items() if expired(v)]:
            del table[key]
        while len(table) > self.tracked_max:  # all still live: forget the oldest
            del table[next(iter(table))]

    def _record(self, kind: str, address: str, user: str, extra: dict) -> None:
        if self.security_log is None:
            return
        info = dict({"user": user[:USER_MAX_CHARS], "origin": address}, **extra)
        try:
            self.security_log.record(kind, json.dumps(info))
        except OSError as e:  # a full disk must not lock the owner out of the page
            log.error("status page: cannot record %s: %s", kind, e)
