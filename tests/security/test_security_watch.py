"""The security watch (agent/security/watch.py): clock jumps, low disk and memory, in virtual time."""

import os

from agent.security import events as ev
from agent.security.events import SecurityLog
from agent.security.watch import MIB, SecurityWatch, disk_usage, memory_available
from hal.runtime.clock import VirtualClock

GIB = 1024 * MIB


class Gauge:
    """A settable (free, total) reading, as the OS probes return."""

    def __init__(self, free: int, total: int) -> None:
        self.reading = (free, total)

    def __call__(self):
        return self.reading


def make(tmp_path, **kw):
    clock = VirtualClock()
    log = SecurityLog(str(tmp_path / "log"), clock)
    disk, memory = Gauge(10 * GIB, 16 * GIB), Gauge(800 * MIB, 1024 * MIB)
    watch = SecurityWatch(log, clock, disk_free=disk, memory_available=memory, **kw)
    return clock, log, watch, disk, memory


def kinds(log) -> list:
    return [e.kind for e in log.events()]


async def test_a_clock_jump_is_recorded_once(tmp_path):
    clock, log, watch, _, _ = make(tmp_path, interval_s=60)
    watch.start()
    try:
        await clock.advance(600)
        assert kinds(log) == []  # time passing is no jump
        clock.step_wall(3600)
        await clock.advance(60)
        [event] = log.events()
        assert event.kind == ev.SETTING_SYSTEM_TIME
        assert "2026-01-01T00:11:00Z" in event.tech_info and "2026-01-01T01:11:00Z" in event.tech_info
        assert "+3600 s" in event.tech_info
        await clock.advance(600)
        assert len(log.events()) == 1
        clock.step_wall(-30)  # within the threshold
        await clock.advance(120)
        assert len(log.events()) == 1
        clock.step_wall(-90)
        await clock.advance(60)
        assert kinds(log) == [ev.SETTING_SYSTEM_TIME] * 2 and "-90 s" in log.events()[-1].tech_info
    finally:
        await watch.close()


async def test_time_set_on_purpose_is_recorded_and_not_counted_again(tmp_path):
    clock, log, watch, _, _ = make(tmp_path, time_jump_s=60)
    watch.start()
    try:
        await clock.advance(60)
        old = clock.time()
        clock.step_wall(-7200)
        event = watch.time_set(old, clock.time())
        assert event.kind == ev.SETTING_SYSTEM_TIME and "-7200 s" in event.tech_info
        assert watch.time_set(clock.time(), clock.time() + 5) is None  # a small correction
        await clock.advance(300)
        assert kinds(log) == [ev.SETTING_SYSTEM_TIME]
    finally:
        await watch.close()


async def test_low_disk_is_recorded_once_per_episode(tmp_path):
    clock, log, watch, disk, _ = make(tmp_path, interval_s=60)
    watch.start()
    try:
        await clock.advance(120)
        assert kinds(log) == []
        disk.reading = (500 * MIB, 16 * GIB)  # 3 %
        await clock.advance(600)
        [event] = log.events()
        assert event.kind == ev.MEMORY_EXHAUSTION and event.tech_info.startswith("disk: 500.0 MiB free")
        disk.reading = (4 * GIB, 16 * GIB)  # recovered
        await clock.advance(60)
        disk.reading = (10 * MIB, 100 * MIB)  # 10 %, but under 20 MiB
        await clock.advance(300)
        assert kinds(log) == [ev.MEMORY_EXHAUSTION] * 2
    finally:
        await watch.close()


async def test_low_memory_is_recorded_once_per_episode(tmp_path):
    clock, log, watch, _, memory = make(tmp_path, interval_s=60)
    watch.start()
    try:
        memory.reading = (40 * MIB, 1024 * MIB)  # under 5 %
        await clock.advance(300)
        assert [e.tech_info.split(":")[0] for e in log.events()] == ["memory"]
        memory.reading = (200 * MIB, 1024 * MIB)
        await clock.advance(60)
        memory.reading = (10 * MIB, 1024 * MIB)
        await clock.advance(60)
        assert kinds(log) == [ev.MEMORY_EXHAUSTION] * 2
        memory.reading = None  # unknown: nothing to say
        await clock.advance(300)
        assert len(log.events()) == 2
    finally:
        await watch.close()


async def test_a_failing_probe_does_not_stop_the_watch(tmp_path, caplog):
    clock, log, watch, _, _ = make(tmp_path, interval_s=60)

    def broken():
        raise OSError("no such filesystem")

    watch.disk_free = broken
    watch.start()
    try:
        await clock.advance(300)
        assert caplog.text.count("cannot read the free disk") == 1
        clock.step_wall(600)
        await clock.advance(60)
        assert kinds(log) == [ev.SETTING_SYSTEM_TIME]
    finally:
        await watch.close()


async def test_the_task_stops_on_close(tmp_path):
    clock, _, watch, _, _ = make(tmp_path)
    watch.start()
    watch.start()  # a second start does not start a second task
    await clock.advance(1)
    assert clock.pending == 1
    await watch.close()
    assert clock.pending == 0
    await watch.close()  # twice is fine (tests/conftest.py fails the test if a task is left)


def test_the_default_probes_read_the_os(tmp_path):
    free, total = disk_usage(str(tmp_path))
    assert 0 < free <= total
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:        1000 kB\nMemFree:          100 kB\nMemAvailable:     250 kB\n")
    assert memory_available(str(meminfo)) == (250 * 1024, 1000 * 1024)
    meminfo.write_text("MemTotal:        1000 kB\n")
    assert memory_available(str(meminfo)) is None
    assert memory_available(str(tmp_path / "missing")) is None
    if os.path.exists("/proc/meminfo"):
        available, total = memory_available()
        assert 0 < available <= total


def test_the_default_disk_probe_watches_the_log_directory(tmp_path):
    clock = VirtualClock()
    watch = SecurityWatch(SecurityLog(str(tmp_path), clock), clock, memory_available=None)
    free, total = watch.disk_free()
    assert 0 < free <= total
    watch.check()  # no error without a memory probe
