"""Moving the charger to another central system, safely (OCPP 1.6J and 2.0.1).

``EndpointManager`` owns the main connection's task and the endpoint state
(agent/link/endpoint.py). Every change of endpoint or credentials — ``ocpp-agent
csms set``, the status page, ChangeConfiguration of CentralSystemUrl or
AuthorizationKey (1.6), SetVariables of BasicAuthPassword or a NetworkConfigurationPriority
applied at a start (2.0.1, agent/link/network_profiles.py), or a configuration file
edited while the agent was stopped —
goes through ``switch()``:

1. the new settings are recorded (``endpoint.json``) before anything moves;
2. messages queued for the old central system are given up to
   ``drain_timeout_s`` to reach it over the still-open connection;
3. the authorization cache and local list (they belong to the old central
   system) are cleared when the backend changes — kept aside until the move
   is confirmed, and put back by a rollback;
4. the agent connects with the new settings and boots again (a new backend
   needs a BootNotification of its own);
5. if BootNotification is not Accepted within ``csms.fallback_timeout_s``
   (unreachable, TLS failure, HTTP 401, Rejected or Pending), it returns to
   the last accepted settings, logs why, shows it in ``csms show`` and sends a
   SecurityEventNotification to the central system it returned to.

Queued transaction messages belong to the central system that was current
when their transaction started (``OutboxEntry.backend``). The main connection
sends only the current backend's; a ``DrainClient`` over its own connection,
with the old backend's settings, delivers the rest and then closes. Both send
with the OCPP adapter's ``OutboxSender`` (agent/ocpp16/outbox_sender.py): the
drain's confirms its transactions without touching the current backend's
authorization cache. A
backend that never accepted the charger owns nothing: transactions started
while it was being tried go with the backend the charger ends up with.

CPython only (wraps websockets through CsmsConnection, and the ocpp library).
"""

import asyncio
import logging
import os
import shutil

import ocpp.messages
from ocpp.exceptions import OCPPError
from websockets.exceptions import InvalidMessage

from agent.core.auth import FULL
from agent.core.isotime import format_datetime
from agent.link.connection import CsmsConnection, failure_kind
from agent.link.endpoint import EndpointSettings, EndpointState, validate_csms_url
from agent.link.network_profiles import FILE as NETWORK_PROFILES_FILE, NetworkProfiles, lower_problem
from agent.ocpp16.config_keys import ACCEPTED, REJECTED, KeyDef
from agent.security import profiles
from hal.runtime.aio import sleep_or_event, wait_for

log = logging.getLogger(__name__)

DRAIN_TIMEOUT_S = 30.0  # before moving away: time the old central system gets for its queued messages
ANSWER_WAIT_S = 5.0  # ChangeConfiguration: the answer goes out before the move (real seconds at most)
SECURITY_EVENT = "ReconfigurationOfSecurityParameters"  # whitepaper §8
RECONFIGURED = "reconfiguration_of_security_parameters"  # its neutral kind in the security log
AUTHORIZATION_KEY_LENGTH = (16, 40)  # whitepaper §7.2: at least 16 bytes, at most 40 hex digits
AUTH_STASH_SUFFIX = ".before-switch"


class SwitchError(ValueError):
    """A switch request that cannot be carried out (bad settings)."""


def check_authorization_key(value: str) -> bool:
    low, high = AUTHORIZATION_KEY_LENGTH
    return low <= len(value) <= high and all(0x21 <= ord(c) <= 0x7E for c in value)


class EndpointManager:
    """Which central system the agent talks to; switches and rollbacks."""

    def __init__(self, *, config, links, connection: CsmsConnection, station, journal, clock,
                 traffic=None, rng=None, drain_timeout_s: float = DRAIN_TIMEOUT_S, write_config=None,
                 security=None) -> None:
        self.config = config
        self.links = links  # the station's client per OCPP version (agent/link/links.py)
        self.connection = connection
        self.station = station
        self.journal = journal
        self.clock = clock
        self.traffic = traffic
        self.rng = rng
        self.drain_timeout_s = drain_timeout_s
        self.write_config = write_config  # callable(EndpointSettings) -> bool: the file follows a move
        self.security = security  # SecurityContext (agent/security/context.py): certificates, security log
        self._failure_kind = None  # the security event of the current streak of failed attempts
        self.boot_listeners: list = []  # callables(): BootNotification Accepted at the current settings
        connection.security = security
        self.state = EndpointState(EndpointState.path_in(config.data_dir))
        # OCPP 2.0.1 network connection profiles (B09/B10): slots, their priority, the one in use
        self.profiles = NetworkProfiles(os.path.join(config.data_dir, NETWORK_PROFILES_FILE)
                                        if config.data_dir else None)
        self.fallback_timeout_s = config.csms["fallback_timeout_s"]
        self.last_attempt_problem = ""
        self._lock = asyncio.Lock()
        self._conn_task = None
        self._timer = None
        self._apply_tasks: list = []
        self._answered = None  # Event: the ChangeConfiguration.conf was sent
        self._tasks: list = []
        self._drains: dict = {}  # backend key -> Drain
        self._supervisor = None  # a short task that opens and closes drain connections
        self._supervise_again = False
        self._running = False
        self._in_use: EndpointSettings | None = None  # the settings the main connection uses
        for client in links.all():
            self._wire(client)
        links.on_built.append(self._wire)
        links.on_activated.append(self._activated)
        connection.on_attempt_failed = self._attempt_failed

    @property
    def client(self):
        """The client of the version the main connection speaks (or offers first)."""
        return self.links.active

    def _wire(self, client) -> None:
        client.on_boot = self._on_boot
        if self._in_use is not None:
            client.station_id = self._in_use.station_id
        attach = getattr(client, "attach_endpoint", None)  # 2.0.1: network profiles, BasicAuthPassword
        if attach is not None:
            attach(self)

    def _activated(self, client) -> None:
        self.connection.client = client

    # ------------------------------------------------------------------ start / stop
    def load(self) -> None:
        """Decide the settings to start with (before the journal is opened and the station starts)."""
        st = self.state
        from_file = EndpointSettings.from_config(self.config)
        if not st.load():
            st.current = st.config_seen = from_file
            st.auth_backend = from_file.key
            self._save()
        journal_backend = st.current.key  # rows from before backends were recorded belong here
        if st.config_seen != from_file:
            log.warning("the configuration file names other central system settings than the agent last "
                        "used (%s): switching to %s", st.current.key, from_file.key)
            self._begin(from_file, "configuration file", first_local_id=None)
            st.config_seen = from_file
            self._save()
        self._apply_network_priority()
        if self.journal is not None:
            self.journal.default_backend = journal_backend
        self.station.outbox.set_backend(st.current.key)
        self._use(st.current)

    def _apply_network_priority(self) -> None:
        """A NetworkConfigurationPriority set before this start whose first slot is not the
        one in use: move to that slot (a switch like any other, with its rollback)."""
        move = self.profiles.to_apply()
        if move is None:
            return
        slot, profile = move
        st = self.state
        level = profile["security_profile"]
        new = st.current.replace(url=profile["url"], security_profile=level,
                                 certificate=self._certificate_for(level))
        log.warning("NetworkConfigurationPriority: moving to network profile slot %d (%s)", slot, new.url)
        self.profiles.moved(slot, self._profile_of(st.current))
        self._begin(new, "network profile slot %d (NetworkConfigurationPriority)" % slot, first_local_id=None)
        if self.write_config is not None and self.write_config(new):
            st.config_seen = new  # the file follows, as for a move by ChangeConfiguration
        self._save()

    def _profile_of(self, s: EndpointSettings) -> dict:
        return {"url": s.url, "security_profile": max(s.level, 1), "ocpp_version": "2.0.1",
                "transport": "JSON", "message_timeout_s": int(self.config.csms["response_timeout_s"])}

    # ------------------------------------------------------------------ OCPP 2.0.1 network profiles
    @property
    def allow_downgrade(self) -> bool:
        """2.0.1 SecurityCtrlr.AllowSecurityProfileDowngrade: 3 -> 2 over OCPP (errata 2025-01)."""
        return self.station.settings.get("allow_security_profile_downgrade")

    def use_certificate(self, fingerprint: str) -> None:
        """Profile 3 with a new charger certificate: reconnect presenting it (a switch, back to
        the previous certificate if the central system does not accept the charger with it)."""
        current = self.state.current
        if current.level != profiles.TLS_CLIENT or current.certificate == fingerprint:
            return
        self._spawn(self.switch(current.replace(certificate=fingerprint), "new charger certificate"))

    @property
    def security_profile_level(self) -> int:
        """The security profile in use (0-3, agent/security/profiles.py)."""
        return self.state.current.level

    def security_needs(self, level: int) -> str:
        """What profile ``level`` of a 2.0.1 network profile needs and the charger lacks (""
        when nothing): a CSMS root certificate for 2 and 3 (A05.FR.02), a valid charger
        certificate for 3 (A05.FR.03). (The password is 2.0.1's BasicAuthPassword, set apart.)"""
        return profiles.change_problem(level, 0, equal_ok=True, **dict(self._has(), has_password=True))

    def _has(self) -> dict:
        """What the security profiles need that the charger has (change_problem's keywords)."""
        cur, security = self.state.current, self.security
        return {"has_password": bool(cur.password),
                "has_csms_root": security is not None and security.has_csms_root(cur.ca_file),
                "has_certificate": security is not None and security.latest_certificate() is not None}

    def _certificate_for(self, level: int) -> str:
        if level != profiles.TLS_CLIENT or self.security is None:
            return ""
        return self.security.latest_certificate() or ""

    def set_network_profile(self, slot, profile: dict) -> str:
        """SetNetworkProfile: store ``profile`` (neutral words) in ``slot``; the problem, "" if stored."""
        return self.profiles.set_profile(slot, profile, self.security_profile_level, self.allow_downgrade)

    def network_priority(self) -> list:
        return list(self.profiles.priority)

    def set_network_priority(self, slots: list) -> str:
        """NetworkConfigurationPriority: the problem, or "" (applied at the next start)."""
        problem = self.profiles.priority_problem(slots, self.security_profile_level, self.security_needs,
                                                 self.allow_downgrade)
        if problem:
            log.warning("NetworkConfigurationPriority %s refused: %s", slots, problem)
            return problem
        self.profiles.set_priority(slots)
        log.info("NetworkConfigurationPriority %s: used from the next start", slots)
        return ""

    def request_password(self, password: str) -> str:
        """A new Basic auth password from the central system (1.6 AuthorizationKey, 2.0.1
        BasicAuthPassword): Accepted and used from a new connection, or Rejected."""
        return self._ocpp_set_key(password)

    def answered(self) -> None:
        """The answer to the request that changed the settings went out: the move may begin."""
        self._ocpp_answered("")

    def _attempt_failed(self, count: int) -> None:
        """A connection attempt failed (``count`` in a row): a TLS failure or refused credentials
        is a security event (once a streak). While a move is pending, a client with a limit
        (2.0.1 NetworkProfileConnectionAttempts) rolls back after that many, before the
        fallback time (B10.FR.03)."""
        failure = self.connection.last_failure
        kind = failure_kind(failure) if failure is not None else None
        if kind is None and isinstance(failure, InvalidMessage) and self.state.current.level == profiles.TLS_CLIENT:
            # TLS 1.3 checks the client certificate after the handshake: a server that refuses it
            # just closes, and the charger reads no HTTP answer.
            kind = "failed_to_authenticate_at_csms"
        if kind is not None and kind != self._failure_kind:
            self.security_event(kind, "%s: %s" % (self.connection.settings["url"], self.connection.last_error))
        self._failure_kind = kind
        limit = getattr(self.client, "connection_attempts_limit", None)
        limit = limit() if limit is not None else 0
        if self.state.pending is None or not limit or count < limit or self._timer is None:
            return
        self._timer.cancel()
        self._timer = None
        self._spawn(self._roll_back("%d connection attempts failed: %s" % (count, self.connection.last_error)))

    def security_event(self, kind: str, tech_info: str = "") -> None:
        """Record a security event (neutral kind) in the security log, which delivers the
        critical ones to the central system."""
        if self.security is not None:
            self.security.log.record(kind, tech_info)

    def register_keys(self, keys) -> None:
        """CentralSystemUrl (read/write), AuthorizationKey (write-only) and SecurityProfile
        (read/write, only upwards) over OCPP 1.6."""
        keys.add_external(KeyDef("SecurityProfile", "int", 0), read=lambda: self.state.current.level,
                          write=self._ocpp_set_profile, after=self._ocpp_answered)
        keys.add_external(KeyDef("CentralSystemUrl", "str", "", check=lambda v: not validate_csms_url(v)),
                          read=lambda: self.state.current.url, write=self._ocpp_set_url,
                          after=self._ocpp_answered)
        keys.add_external(KeyDef("AuthorizationKey", "str", "", write_only=True, check=check_authorization_key),
                          read=lambda: "", write=self._ocpp_set_key, after=self._ocpp_answered)

    async def start(self) -> None:
        """Connect (after the station started), resume a switch a reboot interrupted."""
        self._running = True
        st = self.state
        if st.pending is not None and st.pending.get("first_local_id") is None:
            st.pending["first_local_id"] = self._next_local_id()
            self._save()
        self._ensure_auth_for(st.current)
        self.station.outbox.listeners.append(self._outbox_changed)
        self._kick()
        if st.pending is not None:
            remaining = self._remaining()
            if remaining <= 0:
                await self._roll_back("no BootNotification Accepted within %d s (the agent restarted "
                                      "during the switch)" % self.fallback_timeout_s)
                return
            log.info("resuming the switch to %s: %.0f s left before returning to %s", st.current.url,
                     remaining, st.last_accepted.url)
            self._timer = asyncio.create_task(self._fallback_after(remaining))
        await self._connect(st.current, new_backend=False)

    async def stop(self) -> None:
        self._running = False
        if self._outbox_changed in self.station.outbox.listeners:
            self.station.outbox.listeners.remove(self._outbox_changed)
        tasks = [t for t in (self._timer, self._supervisor, self._conn_task) if t is not None]
        tasks += self._tasks + self._apply_tasks
        self._timer = self._supervisor = self._conn_task = None
        self._tasks, self._apply_tasks = [], []
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for key in list(self._drains):
            await self._stop_drain(key)

    # ------------------------------------------------------------------ queries
    @property
    def current(self) -> EndpointSettings:
        return self.state.current

    def show(self) -> dict:
        """Everything ``ocpp-agent csms show`` and the status page report (no secrets)."""
        st = self.state
        out = st.current.public()
        out["connected"] = self.connection.connected
        client = self.client  # None before the first connection selected a version
        out["registration"] = client.registration if client is not None else None
        out["online"] = client is not None and client.online
        out["last_error"] = self.connection.last_error
        if self._in_use != st.current:
            out["online"] = False
            out["connection"] = "moving: delivering queued messages to %s first" % (
                self._in_use.url if self._in_use else "the previous central system")
        elif out["online"]:
            out["connection"] = "connected, BootNotification Accepted"
        elif self.connection.connected:
            out["connection"] = "connected, BootNotification %s" % (out["registration"] or "not answered yet")
        else:
            out["connection"] = "not connected" + (": %s" % self.connection.last_error
                                                   if self.connection.last_error else "")
        out["last_boot"] = format_datetime(st.last_boot, millis=True) if st.last_boot else None
        out["last_accepted"] = st.last_accepted.public() if st.last_accepted else None
        out["fallback_timeout_s"] = self.fallback_timeout_s
        if self.security is not None:
            summary = self.security.summary()
            expires = summary["charger_certificate_expires"]
            summary["charger_certificate_expires"] = format_datetime(expires) if expires else None
            out["certificates"] = summary
        if st.pending is not None and st.last_accepted is not None:
            out["pending"] = {"since": format_datetime(st.pending["since"], millis=True),
                              "source": st.pending.get("source", ""),
                              "deadline": format_datetime(st.pending["since"] + self.fallback_timeout_s, millis=True),
                              "seconds_left": max(0, round(self._remaining())),
                              "fallback_to": st.last_accepted.public()}
        else:
            out["pending"] = None
        if st.rollback is not None:
            rb = dict(st.rollback)
            rb["at"] = format_datetime(rb["at"], millis=True)
            out["rollback"] = rb
        else:
            out["rollback"] = None
        outbox = self.station.outbox
        out["queued"] = len(outbox) - sum(outbox.held().values())
        held = []
        for key, count in sorted(outbox.held().items()):
            settings = st.held.get(key)
            drain = self._drains.get(key)
            held.append({"backend": key, "url": settings.url if settings else "",
                         "station_id": settings.station_id if settings else "", "messages": count,
                         "connected": bool(drain and drain.connection.connected),
                         "last_error": drain.connection.last_error if drain else ""})
        out["held"] = held
        return out

    # ------------------------------------------------------------------ requests
    def validate(self, new: EndpointSettings, source: str) -> None:
        """Raise SwitchError when ``new`` cannot be used (the admin checks the file too)."""
        problem = validate_csms_url(new.url)
        if problem:
            raise SwitchError("csms.url: " + problem)
        if new.password and ":" in new.station_id:
            raise SwitchError("station.id: must not contain ':' when a password is set")
        if new.ca_file and not new.url.startswith("wss://"):
            raise SwitchError("csms.ca_file: only used with a wss:// URL")
        problem = profiles.scheme_problem(new.url, new.security_profile)
        if problem:
            raise SwitchError("csms.security_profile: " + problem)
        current = self.state.current.level
        if source == "ocpp" and lower_problem(new.level, current, self.allow_downgrade):
            # Whitepaper A05, 2.0.1 A00.FR.005: never a lower security profile over OCPP.
            raise SwitchError("csms.url: a central system may not lower the security profile (%d to %d)" % (
                current, new.level))
        if new.level == profiles.TLS_CLIENT and not (self.security and self.security.certificate_files(
                new.certificate or None)):
            raise SwitchError("csms.security_profile: 3 needs a charger certificate (none installed)")

    async def switch(self, new: EndpointSettings, source: str, file_written: bool = False,
                     answered: asyncio.Event | None = None) -> str:
        """Start using ``new``; returns a sentence saying what happens. The move itself
        runs in the background (drain, reconnect, boot, rollback timer), after
        ``answered`` is set when given (a ChangeConfiguration is answered first)."""
        self.validate(new, source)
        async with self._lock:
            st = self.state
            old = st.current
            if new == old:
                if file_written:
                    st.config_seen = new
                    self._save()
                return "already using these settings"
            self._begin(new, source, self._next_local_id())
            if file_written:
                st.config_seen = new
            self._save()
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        log.info("central system change requested (%s): %s -> %s%s", source, old.key, new.key,
                 "" if old.password == new.password else " (new password)")
        self._apply_tasks = [t for t in self._apply_tasks if not t.done()]
        self._apply_tasks.append(asyncio.create_task(self._apply(old, new, answered)))
        if st.pending is not None:
            return "moving to %s; back to %s if it does not accept the charger within %d s" % (
                new.url, st.last_accepted.url, self.fallback_timeout_s)
        return "moving to %s" % new.url

    def _begin(self, new: EndpointSettings, source: str, first_local_id) -> None:
        st = self.state
        old = st.current
        if st.pending is not None and old.key != new.key and st.pending.get("first_local_id") is not None:
            # The backend being tried never accepted the charger: what started meanwhile goes along.
            self.station.outbox.reassign(old.key, new.key, st.pending["first_local_id"], self._running_txs())
        st.begin(new, source, self.clock.time(), first_local_id)

    async def _apply(self, old: EndpointSettings, new: EndpointSettings, answered) -> None:
        if answered is not None:
            try:
                await wait_for(answered.wait(), ANSWER_WAIT_S)
            except asyncio.TimeoutError:
                pass
        outbox = self.station.outbox
        if old.key != new.key and self.station.link.online and outbox.head(old.key) is not None:
            log.info("delivering the queued messages of %s before moving (up to %.0f s)", old.url,
                     self.drain_timeout_s)
            await sleep_or_event(self.clock, outbox.emptied, self.drain_timeout_s)
            left = outbox.head(old.key) is not None
            if left:
                log.warning("%d messages for %s still queued: delivered over a connection of their own",
                            sum(1 for e in outbox.entries() if e.backend == old.key), old.url)
        async with self._lock:
            st = self.state
            if st.current != new:
                return  # superseded by a later request
            self._ensure_auth_for(new)
            outbox.set_backend(new.key)
            await self._stop_drain(new.key)
            await self._connect(new)
            if st.pending is not None and self._timer is None:
                self._timer = asyncio.create_task(self._fallback_after(self._remaining()))
        self._kick()

    # ------------------------------------------------------------------ OCPP keys
    def _ocpp_set_url(self, url: str) -> str:
        return self._ocpp_request(self.state.current.replace(url=url))

    def _ocpp_set_profile(self, level: int) -> str:
        """1.6 ChangeConfiguration SecurityProfile (A05): only upwards, with what the new profile
        needs; the URL keeps its host and takes the scheme of the profile."""
        cur = self.state.current
        problem = profiles.change_problem(level, cur.level, **self._has())
        if problem:
            log.warning("ChangeConfiguration SecurityProfile %s rejected: %s", level, problem)
            return REJECTED
        return self._ocpp_request(cur.replace(url=profiles.with_scheme(cur.url, level), security_profile=level,
                                              certificate=self._certificate_for(level)))

    def _ocpp_set_key(self, key: str) -> str:
        status = self._ocpp_request(self.state.current.replace(password=key))
        if status == ACCEPTED:  # whitepaper A01.FR.11/12: the change is logged, never the key
            log.warning("security: the central system changed the AuthorizationKey (Basic auth password)")
            self.security_event(RECONFIGURED, "Basic auth password changed by the central system")
        return status

    def _ocpp_request(self, new: EndpointSettings) -> str:
        try:
            self.validate(new, "ocpp")
        except SwitchError as e:
            log.warning("ChangeConfiguration rejected: %s", e)
            return REJECTED
        if new == self.state.current:
            return ACCEPTED
        written = self.write_config(new) if self.write_config is not None else False
        self._answered = asyncio.Event()
        self._spawn(self.switch(new, "central system (ChangeConfiguration)", file_written=written,
                                answered=self._answered))
        return ACCEPTED

    def _ocpp_answered(self, name: str) -> None:
        if self._answered is not None:
            self._answered.set()
            self._answered = None

    def _spawn(self, coro) -> None:
        self._tasks = [t for t in self._tasks if not t.done()]
        self._tasks.append(asyncio.create_task(coro))

    # ------------------------------------------------------------------ boot, timer, rollback
    def _on_boot(self, status: str) -> None:
        if status != "Accepted":
            self.last_attempt_problem = "BootNotification answered %s" % status
            return
        st = self.state
        if self._in_use != st.current:
            return  # the previous connection, still delivering before a move: it proves nothing
        was_pending = st.pending is not None
        self._failure_kind = None
        if was_pending:
            log.warning("central system %s accepted the charger: the move is complete", st.current.url)
            self.profiles.confirmed()
            before = st.last_accepted.level if st.last_accepted is not None else None
            if before is not None and before != st.current.level:
                self.security_event(RECONFIGURED, "security profile %d -> %d" % (before, st.current.level))
        self.profiles.drop_below(max(st.current.level, 1))
        st.accepted(self.clock.time())
        for listener in self.boot_listeners:
            listener()
        self._drop_auth_stash()
        self._save()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if st.rollback is not None and not st.rollback.get("reported"):
            self._spawn(self._report_rollback())
        self._kick()

    async def _report_rollback(self) -> None:
        """SecurityEventNotification of the rollback, sent at once (ReconfigurationOfSecurityParameters
        is not critical: the security log does not push it)."""
        rb = self.state.rollback
        info = "returned to %s after %s failed: %s" % (rb["to"]["url"], rb["from"]["url"], rb["reason"])
        try:
            await self.client.security_event(SECURITY_EVENT, rb["at"], info)
        except (OCPPError, asyncio.TimeoutError, ConnectionError, ocpp.exceptions.ValidationError) as e:
            log.warning("SecurityEventNotification of the rollback not delivered (%s): retried at the next boot", e)
            return
        if self.state.rollback is rb:
            rb["reported"] = True
            self._save()

    def _remaining(self) -> float:
        since = self.state.pending["since"]
        now = self.clock.time()
        if now < since:  # the clock went back: count from now
            self.state.pending["since"] = since = now
        return self.fallback_timeout_s - (now - since)

    async def _fallback_after(self, seconds: float) -> None:
        await self.clock.sleep(seconds)
        self._timer = None
        await self._roll_back("no BootNotification Accepted within %d s: %s" % (
            self.fallback_timeout_s, self._failure_reason()))

    def _failure_reason(self) -> str:
        registration = self.client.registration if self.client is not None else None
        if registration in ("Rejected", "Pending"):
            return "BootNotification answered %s" % registration
        if self.connection.last_error:
            return self.connection.last_error
        if self.connection.connected:
            return "no answer to BootNotification"
        return self.last_attempt_problem or "no connection"

    async def _roll_back(self, reason: str) -> None:
        async with self._lock:
            st = self.state
            if st.pending is None or st.last_accepted is None:
                return
            first_id = st.pending.get("first_local_id") or 0
            failed = st.roll_back(reason, self.clock.time())
            self.profiles.rolled_back()
            restored = st.current
            log.error("central system %s did not accept the charger (%s): returning to %s", failed.url, reason,
                      restored.url)
            self.security_event(RECONFIGURED, "returned to %s after %s failed: %s" % (restored.url, failed.url,
                                                                                       reason))
            if failed.key != restored.key:
                moved = self.station.outbox.reassign(failed.key, restored.key, first_id, self._running_txs())
                if moved:
                    log.warning("%d transactions started meanwhile now belong to %s", moved, restored.url)
            self._restore_auth(restored)
            if self.write_config is not None and self.write_config(restored):
                st.config_seen = restored
            self._save()
            self.station.outbox.set_backend(restored.key)
            await self._stop_drain(restored.key)
            await self._connect(restored)
        self._kick()

    # ------------------------------------------------------------------ the main connection
    def _use(self, s: EndpointSettings) -> None:
        """Make ``s`` the settings of the main connection and the agent's view of its config."""
        self.connection.settings.update(url=s.connect_url, station_id=s.station_id, password=s.password,
                                        ca_file=s.ca_file, security_profile=s.security_profile,
                                        certificate=s.certificate)
        for client in self.links.all():
            client.station_id = s.station_id
        self._in_use = s
        self.config.csms.update(url=s.url, password=s.password, ca_file=s.ca_file,
                                security_profile=s.security_profile)
        self.config.station["id"] = s.station_id

    async def _connect(self, s: EndpointSettings, new_backend: bool = True) -> None:
        task, self._conn_task = self._conn_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._use(s)
        self.connection.last_error = ""
        self.last_attempt_problem = ""
        if new_backend:
            for client in self.links.all():
                client.new_backend()
        if self._running:
            self._conn_task = asyncio.create_task(self.connection.run())

    # ------------------------------------------------------------------ authorization data
    def _ensure_auth_for(self, s: EndpointSettings) -> None:
        """The authorization cache and local list belong to one backend: cleared (kept
        aside until the move is confirmed) when the agent starts talking to another."""
        st = self.state
        if st.auth_backend == s.key:
            return
        if st.auth_stash == s.key:  # back to the backend they were kept aside for
            self._restore_auth(s)
            log.info("authorization cache and local list of %s restored", s.key)
            self._save()
            return
        if st.auth_backend:
            station = self.station
            for obj in (station.auth_cache, station.local_list):
                path = getattr(obj, "path", None)
                if path and os.path.exists(path):
                    try:
                        shutil.copyfile(path, path + AUTH_STASH_SUFFIX)
                        os.chmod(path + AUTH_STASH_SUFFIX, 0o600)
                    except OSError as e:
                        log.error("cannot keep %s aside: %s", path, e)
            st.auth_stash = st.auth_backend
            self._clear_auth()
            log.warning("authorization cache and local list cleared: they belong to %s", st.auth_backend)
        st.auth_backend = s.key
        self._save()

    def _restore_auth(self, s: EndpointSettings) -> None:
        st = self.state
        if st.auth_backend == s.key:
            return
        station = self.station
        if st.auth_stash == s.key:
            for name in ("auth_cache", "local_list"):
                obj = getattr(station, name)
                path = getattr(obj, "path", None)
                if path and os.path.exists(path + AUTH_STASH_SUFFIX):
                    try:
                        os.replace(path + AUTH_STASH_SUFFIX, path)
                    except OSError as e:
                        log.error("cannot restore %s: %s", path, e)
                        continue
                    kwargs = {"max_entries": obj.max_entries} if hasattr(obj, "max_entries") else {}
                    setattr(station, name, type(obj)(path, **kwargs))
            log.warning("authorization cache and local list of %s restored", s.url)
            st.auth_stash = None
        else:
            self._clear_auth()
        st.auth_backend = s.key

    def _clear_auth(self) -> None:
        """Empty the authorization cache and the local list."""
        self.station.auth_cache.clear()
        self.station.local_list.apply(FULL, 0, [], max_length=1)

    def _drop_auth_stash(self) -> None:
        st = self.state
        if st.auth_stash is None:
            return
        for obj in (self.station.auth_cache, self.station.local_list):
            path = getattr(obj, "path", None)
            if path:
                try:
                    os.unlink(path + AUTH_STASH_SUFFIX)
                except OSError:
                    pass
        st.auth_stash = None

    # ------------------------------------------------------------------ held messages
    def _running_txs(self) -> list:
        return [c.transaction for c in self.station.connectors if c.transaction is not None]

    def _next_local_id(self) -> int:
        ids = [tx.local_id for tx in self._running_txs()] + [e.tx.local_id for e in self.station.outbox.entries()]
        return max(ids, default=0) + 1

    def _outbox_changed(self, entry) -> None:
        if entry is None or self._drains or entry.backend != self.state.current.key:
            self._kick()

    def _kick(self) -> None:
        """Re-check which drain connections are needed (in a short task)."""
        if not self._running:
            return
        if self._supervisor is None or self._supervisor.done():
            self._supervise_again = False
            self._supervisor = asyncio.create_task(self._supervise())
        else:
            self._supervise_again = True

    async def _supervise(self) -> None:
        """Keep a drain connection open to every earlier backend that is owed messages
        or runs a transaction; close it when neither is left."""
        while True:
            self._supervise_again = False
            current = self.state.current.key
            needed = {k for k in self.station.outbox.held() if k != current}
            needed |= {tx.backend for tx in self._running_txs() if tx.backend and tx.backend != current}
            for key in sorted(needed - set(self._drains)):
                settings = self.state.held.get(key)
                if settings is None:
                    # It never accepted this charger (a switch interrupted by a crash): what it
                    # was given to deliver goes to the current central system.
                    moved = self.station.outbox.reassign(key, current, 0, self._running_txs())
                    log.warning("%d transactions queued for %s, which never accepted the charger, now "
                                "belong to %s", moved, key, current)
                    needed.discard(key)
                    continue
                self._start_drain(settings)
            stale = [k for k in self.state.held if k not in needed and k != current]
            if stale:
                for k in stale:
                    del self.state.held[k]
                self._save()
            for key in set(self._drains) - needed:
                await self._stop_drain(key)
            if not self._supervise_again:
                return

    def _start_drain(self, s: EndpointSettings) -> None:
        log.info("delivering messages queued for %s over a connection of their own", s.url)
        from agent.link.drain import Drain  # loaded when an earlier backend still has messages

        self._drains[s.key] = Drain(self, s)

    async def _stop_drain(self, key: str) -> None:
        drain = self._drains.pop(key, None)
        if drain is not None:
            await drain.close()

    # ------------------------------------------------------------------ helpers
    def _save(self) -> None:
        try:
            self.state.save()
        except OSError as e:
            log.error("cannot write %s: %s", self.state.path, e)
