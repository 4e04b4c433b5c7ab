"""Injectable clocks: everything that waits for time takes one.

``Clock`` is the real one. ``VirtualClock`` lets tests and fleet simulations
run hours of charger time in milliseconds: ``await clock.advance(3600)``
wakes every sleeper whose deadline falls inside that hour, in deadline order.
With ``instant_sleep`` a sleep passes its time at once (it advances the clock
itself), for tests of code that sleeps in line (a settle time, say) where
nobody else would call ``advance``. It is the only clock tests need.
Built from ``Event`` only, so it is portable to MicroPython.
"""

import asyncio
import time


class Clock:
    """Wall time for timestamps, monotonic time for intervals, and sleep."""

    def time(self) -> float:
        """Seconds since the epoch (UTC), for OCPP timestamps."""
        return time.time()

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back, for intervals."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class VirtualClock(Clock):
    """A clock that only moves when told to."""

    def __init__(self, start: float = 1_767_225_600.0, instant_sleep: bool = False) -> None:
        self._wall = start  # default: 2026-01-01T00:00:00Z
        self._mono = 0.0
        self.instant_sleep = instant_sleep
        self._seq = 0
        self._sleepers: list = []  # [deadline, seq, Event]

    def time(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        if self.instant_sleep:
            await self.advance(seconds)  # earlier sleepers wake on the way, in order
            return
        self._seq += 1
        entry = [self._mono + seconds, self._seq, asyncio.Event()]
        self._sleepers.append(entry)
        self._sleepers.sort()
        try:
            await entry[2].wait()
        finally:
            if entry in self._sleepers:
                self._sleepers.remove(entry)

    async def settle(self, rounds: int = 20) -> None:
        """Let every runnable task run until it blocks again."""
        for _ in range(rounds):
            await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking sleepers in deadline order."""
        target = self._mono + seconds
        await self.settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _seq, event = self._sleepers.pop(0)
            self._move_to(deadline)
            event.set()
            await self.settle()
        self._move_to(target)
        await self.settle()

    def step_wall(self, seconds: float) -> None:
        """Set the wall clock forward (or back) without time passing, as NTP
        does to a board without a real-time clock; sleepers are not woken."""
        self._wall += seconds

    def _move_to(self, mono: float) -> None:
        if mono > self._mono:
            self._wall += mono - self._mono
            self._mono = mono

    @property
    def pending(self) -> int:
        """Number of tasks sleeping on this clock."""
        return len(self._sleepers)
