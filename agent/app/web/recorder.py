"""The running sessions' power/current samples and the completed sessions' history.

The journal forgets a transaction once the central system confirmed its end, so
the page keeps its own record: while a session runs ``SessionRecorder`` looks at
every connector each ``sample_s`` (on the agent's clock; idle, it waits for the
outbox to change instead of waking up), appends a point (time, power, current, the
offered limit, energy) to the running session's series, and when the session ends
writes a record — start, stop, tag, energy, stop reason, which central system, the
series — to ``data_dir/page_sessions.json`` (atomic writes, the last
``MAX_SESSIONS`` sessions, each series at most ``MAX_POINTS`` points: halved in
resolution when full, so memory and the file stay bounded).

Whether every message of a session was delivered is read from the outbox when the
history is shown (a confirmed session has nothing queued any more).

A session the agent did not see end — the agent killed or the power cut while it
ran, ended at the next start by the journal's recovery (stop reason PowerLoss, or
Reboot after a clean stop of the agent) — is recorded at that start
(``record_recovered``), with the points sampled before the agent went down: the
running sessions' series are kept in ``data_dir/page_running.json``, written at a
session's first sample, every ``RUNNING_SAVE_EVERY`` samples after and when the page
closes (not synced: at most a minute of points is lost to a power cut, and the card is
not worn by writes every few seconds).
"""

import asyncio
import logging
import os

from agent.core.isotime import format_datetime
from agent.core.outbox import STOP
from hal.runtime.storage import read_json, write_json_atomic

log = logging.getLogger(__name__)

HISTORY_FILE = "page_sessions.json"
RUNNING_FILE = "page_running.json"
RUNNING_SAVE_EVERY = 12  # samples: a minute at SAMPLE_S
SAMPLE_S = 5.0
MAX_POINTS = 240  # per session; halved when full
MAX_SESSIONS = 50
LIVE_POINTS_SENT = 240


class Series:
    """A bounded list of points [t, power_w, current_a, limit_a, energy_wh]."""

    __slots__ = ("points", "step")

    def __init__(self, points=None) -> None:
        self.points = list(points or [])
        self.step = 1  # keep every step-th sample (doubles whenever the series is halved)

    def add(self, point: list, count: int) -> None:
        if count % self.step:
            return
        self.points.append(point)
        if len(self.points) > MAX_POINTS:
            self.points = self.points[::2]
            self.step *= 2


def _max_current(reading):
    if reading is None or not reading.current_a:
        return None
    values = [a for a in reading.current_a if a is not None]
    return max(values) if values else None


class SessionRecorder:
    """Records the sessions of ``station`` with readings from ``read`` (an async
    callable(connector) -> MeterReading or None)."""

    def __init__(self, station, clock, data_dir: str | None, read, *, sample_s: float = SAMPLE_S) -> None:
        self.station = station
        self.clock = clock
        self.path = os.path.join(data_dir, HISTORY_FILE) if data_dir else None
        self.running_path = os.path.join(data_dir, RUNNING_FILE) if data_dir else None
        self.read = read
        self.sample_s = sample_s
        self.running: dict = {}  # connector id -> {"tx": Transaction, "series": Series, "count": int}
        self.revision = 0  # counts every change (a new point, a session ended)
        self._history: list | None = None

    # ------------------------------------------------------------------ history
    def history(self) -> list:
        """The completed sessions, newest first (read once from the file)."""
        if self._history is None:
            data = read_json(self.path, []) if self.path else []
            self._history = [s for s in data if isinstance(s, dict)] if isinstance(data, list) else []
        return list(reversed(self._history))

    def find(self, session_id: str) -> dict | None:
        for s in self.history():
            if s.get("id") == session_id:
                return s
        return None

    def _save(self, record: dict) -> None:
        self.history()
        self._history.append(record)
        del self._history[:-MAX_SESSIONS]
        if self.path is None:
            return
        try:
            write_json_atomic(self.path, self._history, durable=False)
        except OSError as e:
            log.error("cannot save the session history to %s: %s", self.path, e)

    # ------------------------------------------------------------------ sampling
    def _busy(self) -> bool:
        """A session runs, or one that ended is still to be recorded."""
        return bool(self.running) or any(c.transaction is not None and not c.transaction.stopped
                                         for c in self.station.connectors)

    async def run(self) -> None:
        """Sample every ``sample_s`` while a session runs, until cancelled. Idle, it sleeps on
        no clock: the outbox wakes it (a session's start or end is queued there first)."""
        outbox = self.station.outbox
        wake = asyncio.Event()

        def changed(_entry=None) -> None:
            wake.set()

        outbox.listeners.append(changed)
        try:
            self.record_recovered()
            while True:
                wake.clear()
                if not self._busy():
                    await wake.wait()
                try:
                    await self.sample()
                except Exception:
                    log.exception("session recorder: sampling failed")
                if self._busy():
                    await self.clock.sleep(self.sample_s)
        finally:
            if changed in outbox.listeners:
                outbox.listeners.remove(changed)

    async def sample(self) -> None:
        now = self.clock.time()
        for c in self.station.connectors:
            tx = c.transaction
            rec = self.running.get(c.id)
            if rec is not None and (rec["tx"] is not tx or tx.stopped):
                self._finish(c, rec)
                rec = None
            if tx is None or tx.stopped:
                continue
            if rec is None:
                rec = self.running[c.id] = {"tx": tx, "series": Series(), "count": 0}
            reading = await self.read(c)
            energy = reading.energy_wh if reading is not None and reading.energy_wh is not None else tx.last_meter_wh
            points = rec["series"].points
            if points and points[-1][0] >= now:
                continue  # the clock did not move (a virtual one in tests)
            rec["series"].add([round(now, 1), None if reading is None or reading.power_w is None
                               else round(reading.power_w, 1), _round(_max_current(reading)),
                               round(c.offered_current_a, 1), round(float(energy) - tx.meter_start_wh, 1)],
                              rec["count"])
            rec["count"] += 1
            self.revision += 1
            if rec["count"] % RUNNING_SAVE_EVERY == 1:
                self.save_running()

    def _finish(self, c, rec: dict) -> None:
        del self.running[c.id]
        self._save(self._record(rec["tx"], c.id, rec["series"].points))
        self.save_running()

    def _record(self, tx, connector_id: int, points: list) -> dict:
        """The history's record of the ended transaction ``tx``."""
        stop = tx.stop_time if tx.stop_time is not None else self.clock.time()
        meter_stop = tx.meter_stop_wh if tx.meter_stop_wh is not None else tx.last_meter_wh
        self.revision += 1
        return {
            "id": tx.id, "local_id": tx.local_id, "backend_id": tx.backend_id, "connector": connector_id,
            "id_tag": tx.id_tag, "start": format_datetime(tx.start_time), "stop": format_datetime(stop),
            "start_time": tx.start_time, "stop_time": stop, "duration_s": max(0, int(stop - tx.start_time)),
            "meter_start_wh": tx.meter_start_wh, "meter_stop_wh": meter_stop,
            "energy_wh": max(0, meter_stop - tx.meter_start_wh), "stop_reason": tx.stop_reason or "",
            "backend": tx.backend, "points": points,
        }

    # ------------------------------------------------------------------ sessions ended by recovery
    def save_running(self) -> None:
        """Keep the running sessions' series (``RUNNING_FILE``) for a session the agent will
        not see end (killed, power cut): ``record_recovered`` takes them at the next start."""
        if self.running_path is None:
            return
        data = {rec["tx"].id: rec["series"].points for rec in self.running.values()}
        try:
            if data:
                write_json_atomic(self.running_path, data, durable=False)
            elif os.path.exists(self.running_path):
                os.remove(self.running_path)
        except OSError as e:
            log.error("cannot save the running sessions to %s: %s", self.running_path, e)

    def record_recovered(self) -> int:
        """Record the sessions the last run left unrecorded: those the journal's recovery
        ended at this start (``station.recovered``) and any other whose end is still queued
        (it ended within a sample of the agent going down), with the points kept of them.
        Returns how many were recorded."""
        saved = read_json(self.running_path, {}) if self.running_path else {}
        if not isinstance(saved, dict):
            saved = {}
        known = {s.get("id") for s in self.history()}
        ended = list(self.station.recovered)
        ended += [e.tx for e in self.station.outbox.entries() if e.kind == STOP and e.tx.stopped]
        count = 0
        for tx in ended:
            if tx.id in known or not tx.stopped:
                continue
            known.add(tx.id)
            points = saved.get(tx.id)
            self._save(self._record(tx, tx.connector_id, points if isinstance(points, list) else []))
            count += 1
        if count:
            log.info("session history: %d session(s) ended while the agent was down recorded", count)
        self.save_running()  # what the file held is recorded now or belongs to no session
        return count

    def live_points(self, connector_id: int) -> list:
        rec = self.running.get(connector_id)
        return rec["series"].points[-LIVE_POINTS_SENT:] if rec is not None else []


def _round(value):
    return None if value is None else round(value, 2)


def queued_counts(outbox) -> dict:
    """{transaction id (the station's own): how many of its messages are still queued}; a
    transaction not in it has had every message delivered. One pass over the queue for a whole
    history page, however many sessions it shows."""
    counts: dict = {}
    for entry in outbox.entries():
        counts[entry.tx.id] = counts.get(entry.tx.id, 0) + 1
    return counts
