"""Detectors that turn what the charger notices into security events.

``SecurityWatch`` checks every ``interval_s``:

- the wall clock against the monotonic one: a jump of more than ``time_jump_s``
  (the 2.0.1 ClockCtrlr.TimeAdjustmentReportingThreshold idea) records
  ``setting_system_time`` with the old and the new time;
- free space of the data directory (below 5 % or 20 MiB) and available memory
  (below 5 %): ``memory_exhaustion``, once per episode (again only after it recovered).

Code that sets the clock on purpose calls ``time_set(old, new)`` afterwards.
Portable: the OS is asked through the small callables passed in (defaults below).
"""

import asyncio
import logging
import os

from agent.core.isotime import format_datetime
from agent.security.events import MEMORY_EXHAUSTION, SETTING_SYSTEM_TIME

log = logging.getLogger(__name__)

MIB = 1024 * 1024


def disk_usage(path: str):
    """(free bytes, total bytes) of the filesystem holding ``path``."""
    try:
        import shutil
    except ImportError:  # MicroPython: statvfs is (bsize, frsize, blocks, bfree, bavail, …)
        st = os.statvfs(path)
        return st[4] * st[1], st[2] * st[1]
    usage = shutil.disk_usage(path)
    return usage.free, usage.total


def memory_available(path: str = "/proc/meminfo"):
    """(available bytes, total bytes) from Linux's MemAvailable/MemTotal; None when unknown."""
    found = {}
    try:
        with open(path) as f:
            for line in f:
                name, _, rest = line.partition(":")
                if name in ("MemAvailable", "MemTotal"):
                    found[name] = int(rest.split()[0]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        return None
    if "MemAvailable" not in found or not found.get("MemTotal"):
        return None
    return found["MemAvailable"], found["MemTotal"]


class SecurityWatch:
    """A task recording clock jumps and exhausted disk or memory in ``log``."""

    def __init__(self, log, clock, *, disk_free=None, memory_available=memory_available,
                 interval_s: float = 60.0, time_jump_s: float = 60.0, disk_min_fraction: float = 0.05,
                 disk_min_bytes: int = 20 * MIB, memory_min_fraction: float = 0.05) -> None:
        self.log = log
        self.clock = clock
        # () -> (free, total): default, the filesystem of the log's directory
        self.disk_free = disk_free if disk_free is not None else (lambda: disk_usage(log.directory))
        self.memory_available = memory_available  # () -> (available, total) or None
        self.interval_s = interval_s
        self.time_jump_s = time_jump_s
        self.disk_min_fraction = disk_min_fraction
        self.disk_min_bytes = disk_min_bytes
        self.memory_min_fraction = memory_min_fraction
        self._wall_ref = None  # (wall, monotonic) at the last check
        self._low = {"disk": False, "memory": False}  # an episode is on
        self._failing: set = set()  # probes whose last read raised (logged once per streak)
        self._task = None
        self._closed = asyncio.Event()

    def start(self) -> None:
        if self._task is None:
            self._closed.clear()
            self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        self._closed.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        while not self._closed.is_set():
            self.check()
            await self.clock.sleep(self.interval_s)

    def check(self) -> None:
        """One round of every detector (the first only notes the time)."""
        self._check_time()
        self._check_space("disk", self.disk_free, self.disk_min_fraction, self.disk_min_bytes)
        self._check_space("memory", self.memory_available, self.memory_min_fraction, 0)

    # ------------------------------------------------------------------ time
    def time_set(self, old: float, new: float):
        """The clock was set on purpose from ``old`` to ``new`` (epoch s): record it when
        it moved more than ``time_jump_s``; the next check will not count it again.
        Returns the event recorded, or None."""
        self._wall_ref = (self.clock.time(), self.clock.monotonic())
        if abs(new - old) <= self.time_jump_s:
            return None
        return self.log.record(SETTING_SYSTEM_TIME, _time_info(old, new))

    def _check_time(self) -> None:
        wall, mono = self.clock.time(), self.clock.monotonic()
        ref, self._wall_ref = self._wall_ref, (wall, mono)
        if ref is None:
            return
        expected = ref[0] + (mono - ref[1])
        if abs(wall - expected) > self.time_jump_s:
            self.log.record(SETTING_SYSTEM_TIME, _time_info(expected, wall))

    # ------------------------------------------------------------------ space
    def _check_space(self, what: str, read, min_fraction: float, min_bytes: int) -> None:
        if read is None:
            return
        try:
            reading = read()
        except Exception as e:  # a probe's failure must not end the watch
            if what not in self._failing:
                log.warning("security watch: cannot read the free %s: %r", what, e)
                self._failing.add(what)
            return
        self._failing.discard(what)
        if reading is None:
            return
        free, total = reading
        low = (total > 0 and free < total * min_fraction) or free < min_bytes
        if low and not self._low[what]:
            pct = 100.0 * free / total if total > 0 else 0.0
            self.log.record(MEMORY_EXHAUSTION, "%s: %.1f MiB free of %.1f MiB (%.1f %%)"
                            % (what, free / MIB, total / MIB, pct))
        elif not low and self._low[what]:
            log.info("%s space recovered: %.1f MiB free", what, free / MIB)
        self._low[what] = low


def _time_info(old: float, new: float) -> str:
    return "from %s to %s (%+.0f s)" % (format_datetime(old), format_datetime(new), new - old)
