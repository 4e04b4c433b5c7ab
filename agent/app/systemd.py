"""The agent's side of systemd's service notification protocol (``sd_notify``), for the unit
``Type=notify`` + ``WatchdogSec=`` of the Debian package (tools/deb/ocpp-agent.service):

* ``READY=1`` once the agent has started (the worker: hardware opened and safe, station
  running, connection under way) — sent again after each restart by the supervisor, which
  systemd takes as a no-op;
* ``WATCHDOG=1`` from the event loop, every third of ``WATCHDOG_USEC``, and only while the
  station is healthy (``Station.hardware_alive()``: the loop turns and the hardware watchers
  run); a hung loop or a dead watcher stops the pings and systemd restarts the service;
* ``STOPPING=1`` from the process that ends the service (the supervisor, or an agent run
  without one); ``STATUS=…`` lines for ``systemctl status``.

The unit has ``NotifyAccess=all``: the supervisor is the main process, its child (the worker)
sends READY and the pings. Nothing is sent without ``$NOTIFY_SOCKET`` (a run outside systemd),
and a failure to send is never an error. Written over ``socket.AF_UNIX`` datagrams (an
abstract socket when the path starts with ``@``): a dozen lines, no dependency.
CPython-only (AF_UNIX datagram sockets, the environment).
"""

import asyncio
import logging
import os
import socket

log = logging.getLogger(__name__)

_SOCKET_ENV = "NOTIFY_SOCKET"
_WATCHDOG_ENV = "WATCHDOG_USEC"


class Notifier:
    """Sends notifications to ``socket_path`` (default: ``$NOTIFY_SOCKET``); does nothing
    without one. The constructor does no I/O."""

    def __init__(self, socket_path: str | None = None, *, environ=None) -> None:
        env = os.environ if environ is None else environ
        self.socket_path = socket_path if socket_path is not None else env.get(_SOCKET_ENV, "")
        try:
            usec = int(env.get(_WATCHDOG_ENV, "") or 0)
        except ValueError:
            usec = 0
        # WATCHDOG_PID names the main process (the supervisor): its child pings too (NotifyAccess=all).
        self.watchdog_s = usec / 1e6 if usec > 0 else 0.0

    @property
    def enabled(self) -> bool:
        return bool(self.socket_path)

    def notify(self, *lines: str) -> bool:
        """Send ``KEY=value`` lines as one datagram; True when it was sent."""
        if not self.socket_path:
            return False
        address = self.socket_path
        if address.startswith("@"):  # the abstract namespace
            address = "\0" + address[1:]
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.connect(address)
                s.sendall("\n".join(lines).encode())
            return True
        except OSError as e:
            log.debug("sd_notify %s to %s failed: %s", lines, self.socket_path, e)
            return False

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1", *(["STATUS=" + status] if status else []))

    def status(self, text: str) -> bool:
        return self.notify("STATUS=" + text)

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")


async def ping_while_healthy(notifier: Notifier, healthy, *, interval_s: float | None = None,
                             sleep=asyncio.sleep) -> None:
    """Send WATCHDOG=1 every ``interval_s`` (default a third of WatchdogSec) while
    ``healthy()`` says so; an unhealthy turn sends nothing (logged once per spell), so
    systemd's watchdog restarts the service when it lasts. Returns at once when systemd
    asked for no watchdog. Runs until cancelled."""
    interval_s = interval_s if interval_s is not None else notifier.watchdog_s / 3
    if not notifier.enabled or interval_s <= 0:
        return
    sick = False
    while True:
        try:
            ok = bool(healthy())
        except Exception:
            log.exception("health check failed")
            ok = False
        if ok:
            notifier.watchdog()
            if sick:
                log.info("healthy again: watchdog pings resumed")
            sick = False
        elif not sick:
            log.error("the station is not healthy (a hardware watcher ended): watchdog pings stopped")
            sick = True
        await sleep(interval_s)
