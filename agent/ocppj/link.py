"""What every OCPP-J adapter's link to the central system shares, whatever the version:
its identity, the session's life (boot, first messages, the outbox sender, the heartbeat),
counters and the traffic record. ``OcppjLink`` is the base of Ocpp16Client and
Ocpp201Client; each brings its messages through the hooks ``_boot``, ``_first_messages``,
``_session_started``, ``_heartbeat_call`` and ``outbox_sender``.

The security log's critical events (agent/security/events.py) go out as
SecurityEventNotifications, in order and once each, whichever central system is
connected: the log's delivery cursor is the queue. The adapter says which events
are critical in its version and how they are called (``security_words``).

CPython-only (it runs the ocpp library's sessions).
"""

import asyncio
import logging

from ocpp.exceptions import NotImplementedError as CallNotImplemented, NotSupportedError

from agent.core.station import CentralSystemLink

log = logging.getLogger(__name__)

SECURITY_EVENT_RETRY_S = 30.0  # after a SecurityEventNotification without an answer
RENEWAL_CHECK_S = 86400.0  # how often the charger certificate's expiry is looked at


async def first_of(a, b) -> None:
    """Until task ``a`` or task ``b`` is done; ``b``'s exception, if it ended with one, is raised."""
    done = asyncio.Event()
    for t in (a, b):
        t.add_done_callback(lambda _t: done.set())
    await done.wait()
    if b.done() and not b.cancelled() and b.exception() is not None:
        raise b.exception()


class OcppjLink(CentralSystemLink):
    """The station's link to a central system over one connection at a time."""

    def __init__(self, station, station_id: str, clock, response_timeout_s: float = 30.0, vendor: str = "",
                 model_name: str = "", serial_number: str = "", firmware_version: str = "",
                 traffic_log=None) -> None:
        self.station = station
        self.station_id = station_id
        self.clock = clock
        self.response_timeout_s = response_timeout_s
        self.vendor = vendor or station.board.vendor
        self.model_name = model_name or station.board.model
        self.serial_number = serial_number
        self.firmware_version = firmware_version
        self.traffic_log = traffic_log  # callable(direction, text) for the status page and the demo
        self.session = None
        self.registration = None  # None until the first BootNotification answer
        self.boot_accepted = False
        self.last_boot_time: float | None = None
        self.on_boot = None  # callable(status) after each BootNotification answer (agent/link/switch.py)
        self.messages_sent = 0
        self.messages_received = 0
        self.outbox_sender = None  # the adapter's sender of transaction messages (set by the subclass)
        self._last_activity = 0.0
        self._wake = station.outbox.changed
        self._heartbeat_task = None
        self._tasks: list = []  # work started for the current session (cancelled when it ends)
        self.security = None  # the station's SecurityContext (agent/security/context.py), once attached
        self.security_log = None  # its SecurityLog: the critical events are pushed
        self.certificates = None  # the CertificateService (agent/security/service.py)
        self.security_words = None  # the adapter's module: EVENT_TYPE and is_critical (set by the subclass)
        self.logs = None  # the LogService (agent/transfer/logs.py) serving GetLog, once attached
        self.updates = None  # the UpdateService (agent/update/service.py) updating the agent, once attached
        station.link = self
        station.settings.on_change(self._on_setting_changed)

    # ------------------------------------------------------------------ hooks
    async def _boot(self) -> None:
        """Boot until the central system accepts the charger (BootNotification)."""
        raise NotImplementedError

    def _first_messages(self) -> list:
        """What goes out first on a new session, before queued messages (status notifications)."""
        return []

    def _session_started(self) -> None:
        """The first messages are queued: anything else to queue behind them."""

    async def _heartbeat_call(self) -> None:
        """Send one Heartbeat (failures logged, not raised)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ shared
    @property
    def online(self) -> bool:
        return self.session is not None and self.boot_accepted

    def mark_activity(self) -> None:
        self._last_activity = self.clock.monotonic()

    def record(self, direction: str, text: str) -> None:
        if direction == "out":
            self.messages_sent += 1
        else:
            self.messages_received += 1
        if self.traffic_log is not None:
            self.traffic_log(direction, text)

    def spawn(self, coro) -> None:
        """Run ``coro`` for the current session (cancelled when it ends)."""
        self._tasks = [t for t in self._tasks if not t.done()]
        self._tasks.append(asyncio.create_task(coro))

    async def run_session(self, session) -> None:
        """Run the protocol over one open connection until it closes."""
        self.session = session
        reader = asyncio.create_task(session.start())
        workers: list = []
        try:
            boot = asyncio.create_task(self._boot())
            workers.append(boot)
            await first_of(reader, boot)
            if reader.done():
                return
            self.outbox_sender.reset_others(self._first_messages())
            self._session_started()
            workers.append(asyncio.create_task(self.outbox_sender.run(lambda: self.session is session)))
            if self.security_log is not None and self.security_words is not None:
                workers.append(asyncio.create_task(self._deliver_security_events(session)))
            if self.certificates is not None:
                workers.append(asyncio.create_task(self._renew_certificate(session)))
            if self.updates is not None:
                workers.append(asyncio.create_task(self._report_update_quietly()))
            self._heartbeat_task = asyncio.create_task(self._heartbeat(session))
            await reader
        except Exception as e:  # the connection ended: the caller reconnects
            log.info("session ended: %s", e)
        finally:
            # Loops also check ``self.session`` and wake on ``_wake``: a cancellation
            # can be swallowed inside asyncio.wait_for on Python 3.11 (bpo-42130).
            self.session = None
            if self._heartbeat_task is not None:
                workers.append(self._heartbeat_task)
                self._heartbeat_task = None
            workers.extend(self._tasks)
            self._tasks = []
            self._wake.set()
            for t in workers + [reader]:
                t.cancel()
            await asyncio.gather(*workers, reader, return_exceptions=True)

    def attach_security(self, security, certificates=None) -> None:
        """The station's certificates, identity and security log (None: none kept), and the
        certificate operations the central system's requests use."""
        self.security = security
        self.security_log = security.log if security is not None else None
        self.certificates = certificates

    async def security_event(self, kind: str, at: float, tech_info: str = "") -> None:
        """Send one SecurityEventNotification of type ``kind`` (the version's word); raises
        when it is not delivered."""
        raise NotImplementedError

    async def _deliver_security_events(self, session) -> None:
        """Push the security log's critical events not delivered yet, then each new one."""
        events, words = self.security_log, self.security_words
        wake = asyncio.Event()

        def listener(_event) -> None:
            wake.set()

        events.listeners.append(listener)
        try:
            while self.session is session:
                wake.clear()
                for event in events.undelivered(words.is_critical):
                    if self.session is not session:  # ended while a send swallowed the cancellation
                        return
                    try:
                        await self.security_event(words.EVENT_TYPE.get(event.kind, event.kind), event.at,
                                                  event.tech_info)
                    except (CallNotImplemented, NotSupportedError) as e:  # a backend without them: logged here only
                        log.info("the central system does not take SecurityEventNotification (%s): %s kept in "
                                 "the security log only", e, event.kind)
                    except Exception as e:
                        if self.session is not session:
                            return
                        log.warning("SecurityEventNotification %s not delivered (%s): retrying", event.kind, e)
                        await self.clock.sleep(SECURITY_EVENT_RETRY_S)
                        wake.set()
                        break
                    events.delivered(event.seq)
                if not wake.is_set() and self.session is session:
                    await wake.wait()
        finally:
            events.listeners.remove(listener)

    async def report_update(self) -> None:
        """Tell the central system how the last update ended (raises when not delivered)."""

    async def _report_update_quietly(self) -> None:
        try:
            await self.report_update()
        except Exception as e:  # kept: told at the next connection
            log.warning("update status not delivered: %s", e)

    async def sign_certificate(self, csr_pem: str) -> str:
        """Send SignCertificate with ``csr_pem``; "accepted" or "rejected" (raises when not
        delivered)."""
        raise NotImplementedError

    def request_certificate(self) -> None:
        """Start getting a new charger certificate signed (a trigger from the central system)."""
        if self.certificates is not None:
            self.spawn(self.certificates.sign(self.sign_certificate))

    async def _renew_certificate(self, session) -> None:
        """Once a day: a charger certificate about to expire is renewed (A02 initiated by the station)."""
        while self.session is session:
            if self.certificates.renewal_due():
                log.warning("the charger certificate expires soon: asking for a new one")
                try:
                    await self.certificates.sign(self.sign_certificate)
                except Exception as e:
                    log.warning("certificate renewal failed: %s", e)
            await self.clock.sleep(RENEWAL_CHECK_S)

    async def _heartbeat(self, session) -> None:
        while self.session is session:
            interval = self.station.settings.get("heartbeat_interval_s")
            if interval <= 0:
                await asyncio.Event().wait()  # disabled until the setting changes (the task is restarted)
            due = self._last_activity + interval
            now = self.clock.monotonic()
            if now < due:
                await self.clock.sleep(due - now)
                continue
            await self._heartbeat_call()
            self.mark_activity()

    def _on_setting_changed(self, name: str, value) -> None:
        if name == "heartbeat_interval_s" and self._heartbeat_task is not None and self.session is not None:
            self._heartbeat_task.cancel()
            self._heartbeat_task = asyncio.create_task(self._heartbeat(self.session))
