"""One simulated charger for backend tests: the real agent on the sim board, in a thread.

``BenchCharger`` runs an ``Agent`` (sim board, real time) in its own thread
and event loop, so it works the same from sync tests, pytest-asyncio, anyio
or ``asyncio.run``, and a test that blocks (an HTTP call to the backend's
API) does not stall the charger. Commands (``plug``, ``swipe``, ``fault``…)
run on the charger's loop and return once applied; ``wait_status`` and
``wait_frame`` are coroutines for the test's own asyncio loop.

``frames`` are the OCPP frames of the main connection as ``Frame`` tuples,
parsed, with secrets hidden (agent/link/traffic.py). A Reset from the
backend restarts the agent on the same data_dir, as a reboot would.

The pytest fixtures over this are in agent/app/pytest_plugin.py.
"""

import asyncio
import json
import logging
import os
import threading
import time
from typing import Any, NamedTuple

import tomlkit

from agent.app.config import load_config, parse_config
from agent.app.runner import Agent
from agent.core import model
from hal.runtime.storage import write_bytes_atomic
from hal.runtime.words import neutral

log = logging.getLogger(__name__)

CONFIG_FILE = "agent.toml"
MAX_FRAMES = 100_000  # a bench test is short; the bound only keeps a runaway one from eating memory
POLL_S = 0.01  # how often a wait looks again (real time; the frames cross a real socket)

CALL, RESULT, ERROR, UNREADABLE = "call", "result", "error", "unreadable"
_KINDS = {2: CALL, 3: RESULT, 4: ERROR}

# 2.0.1 ConnectorStatusEnumType "Occupied" covers every state with an EV or a transaction.
OCCUPIED = frozenset((model.PREPARING, model.CHARGING, model.SUSPENDED_EV, model.SUSPENDED_EVSE, model.FINISHING))
STATES = frozenset((model.AVAILABLE, model.RESERVED, model.UNAVAILABLE, model.FAULTED)) | OCCUPIED


class WaitTimeoutError(AssertionError):
    """A wait of a bench charger ran out of time: the expectation failed."""


class Frame(NamedTuple):
    """One OCPP-J frame. ``direction``: "out" the charger sent it, "in" it received it.
    ``kind``: "call", "result", "error" (or "unreadable": not an OCPP-J frame). ``action``:
    a result's or error's is that of the call it answers (None if unknown). ``payload``: an
    error's is ``{"errorCode", "errorDescription", "errorDetails"}``."""

    time: float  # time.time() when it crossed
    direction: str
    kind: str
    action: str | None
    unique_id: str | None
    payload: Any
    text: str  # as on the wire (secrets hidden)


def status_words(status: str) -> frozenset:
    """The connector states ``status`` names: a neutral word ("charging"), an OCPP 1.6
    status ("Charging", "SuspendedEV") or a 2.0.1 one ("Occupied": any state with an EV
    or a transaction)."""
    word = neutral(status)
    if word == "occupied":
        return OCCUPIED
    if word not in STATES:
        raise ValueError("unknown connector status %r; expected one of %s, or occupied"
                         % (status, ", ".join(sorted(STATES))))
    return frozenset((word,))


class _FrameLog:
    """Parses the frames as they cross; knows each call's action to name its answer."""

    def __init__(self) -> None:
        self.frames: list = []
        self._actions: dict = {}  # (direction of the call, unique id) -> action

    def record(self, direction: str, text: str) -> None:
        kind, action, unique_id, payload = UNREADABLE, None, None, None
        try:
            msg = json.loads(text)
            kind = _KINDS[msg[0]]
            unique_id = msg[1]
            if kind == CALL:
                action, payload = msg[2], msg[3]
                self._actions[(direction, unique_id)] = action
            else:
                answers = "in" if direction == "out" else "out"
                action = self._actions.pop((answers, unique_id), None)
                payload = msg[2] if kind == RESULT else {"errorCode": msg[2], "errorDescription": msg[3],
                                                        "errorDetails": msg[4]}
        except (ValueError, TypeError, KeyError, IndexError):
            kind = UNREADABLE
        self.frames.append(Frame(time.time(), direction, kind, action, unique_id, payload, text))
        if len(self.frames) > MAX_FRAMES:
            del self.frames[:len(self.frames) - MAX_FRAMES]


class BenchCharger:
    """A simulated charger against ``csms_url`` (connects to ``{csms_url}/{station_id}``).

    ``ocpp_version``: "auto", "1.6" or "2.0.1" (what the handshake offers). ``board``:
    sim board keys (``connectors``, ``speed``, ``ev_needs_wh``…, boards/sim.toml);
    ``ocpp`` / ``ocpp201``: initial 1.6 keys / 2.0.1 variables; ``config``: more
    configuration sections, merged over the rest (README, Configuration reference).
    The configuration is written to ``data_dir/agent.toml``.
    """

    def __init__(self, *, csms_url: str, station_id: str, data_dir: str, ocpp_version: str = "auto",
                 password: str = "", board: dict | None = None, ocpp: dict | None = None,
                 ocpp201: dict | None = None, config: dict | None = None) -> None:
        data = {"station": {"id": station_id, "data_dir": data_dir},
                # Quick reconnects: a test restarting its backend should not wait the field's 120 s.
                "csms": {"url": csms_url, "ocpp_version": ocpp_version, "password": password,
                         "reconnect_initial_s": 0.5, "reconnect_max_s": 5.0},
                "status_page": {"enabled": False},  # no TCP port opened on the bench machine
                "board": {"evse": dict(board or {})}, "ocpp": dict(ocpp or {}), "ocpp201": dict(ocpp201 or {})}
        for section, table in (config or {}).items():
            data[section] = dict(data.get(section, {}), **table)
        path = os.path.join(os.path.abspath(data_dir), CONFIG_FILE)
        self.config = parse_config(path, data)  # a ConfigError names the key
        # Written out as ``ocpp-agent run`` reads it: the agent keeps a central system change
        # there, and a failed test's charger can be started again by hand from it.
        write_bytes_atomic(path, tomlkit.dumps(data).encode(), mode=0o600)  # it may hold csms.password
        self.station_id = station_id
        self.data_dir = self.config.data_dir
        self.restarts = 0  # agent restarts after a Reset from the backend
        self._log = _FrameLog()
        self._agent: Agent | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._supervisor = None
        self._stopping = False

    # ------------------------------------------------------------------ life cycle (blocking)

    def start(self, *, wait_online: bool = True, timeout_s: float = 30) -> "BenchCharger":
        """Start the agent; with ``wait_online``, until the backend accepted its BootNotification."""
        if self._thread is not None:
            raise RuntimeError("charger %s already started" % self.station_id)
        self._stopping = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ocpp-charger-%s" % self.station_id,
                                        daemon=True)  # daemon: a test interrupted hard must not hang the run
        self._thread.start()
        try:
            self._run(self._start_agent(), timeout_s)
        except BaseException:
            self._end_thread(timeout_s)
            raise
        if wait_online:
            deadline = time.monotonic() + timeout_s
            while not self.online:
                if time.monotonic() > deadline:
                    raise WaitTimeoutError("charger %s not online within %s s: %s"
                                           % (self.station_id, timeout_s, self._why_offline()))
                time.sleep(POLL_S)
        return self

    def stop(self, timeout_s: float = 30) -> None:
        """Stop the agent (hardware left safe, connection closed) and its thread."""
        if self._thread is None:
            return
        try:
            self._run(self._stop_agent(), timeout_s)
        finally:
            self._end_thread(timeout_s)

    def _end_thread(self, timeout_s: float) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout_s)
        if not self._thread.is_alive():
            self._loop.close()
        self._thread = None

    def restart(self, timeout_s: float = 30) -> None:
        """Stop and start again on the same data_dir (a power cycle); waits until online."""
        self.stop(timeout_s)
        self.start(timeout_s=timeout_s)

    def __enter__(self) -> "BenchCharger":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ the simulated hardware

    def plug(self, connector: int = 1) -> None:
        """Plug an EV into ``connector``."""
        self._on_loop(lambda: self._agent.loaded.sim.plug(connector))

    def unplug(self, connector: int = 1) -> None:
        self._on_loop(lambda: self._agent.loaded.sim.unplug(connector))

    def swipe(self, tag: str) -> None:
        """Present an RFID tag (id token) to the reader."""
        self._on_loop(lambda: self._agent.loaded.sim.swipe(tag))

    def ev_full(self, connector: int = 1) -> None:
        """The EV stops taking energy (battery full)."""
        self._on_loop(lambda: self._agent.loaded.sim.ev_full(connector))

    def fault(self, kind: str = "ground_failure", connector: int = 1) -> None:
        """Raise a hardware fault (``ground_failure``, ``over_current_failure``…; the 1.6
        spellings ``GroundFailure``… too) on ``connector``, or with 0 the whole charger."""
        self._on_loop(lambda: self._agent.loaded.sim.fault(connector, kind))

    def clear_fault(self, connector: int = 1) -> None:
        self._on_loop(lambda: self._agent.loaded.sim.clear(connector))

    def hardware(self, connector: int = 1) -> dict:
        """The simulated hardware of ``connector``: plugged, cp_state, contactor_closed,
        current_limit_a, power_w, energy_wh, error_code…"""
        def read() -> dict:
            sim = self._agent.loaded.sim
            number = sim.connector(connector).id  # a ValueError names a bad connector number
            return sim.status()["connectors"][number - 1]
        return self._on_loop(read)

    def meter_wh(self, connector: int = 1) -> float:
        """The energy register of ``connector``'s meter, Wh."""
        return self.hardware(connector)["energy_wh"]

    # ------------------------------------------------------------------ observing

    def status(self, connector: int = 1) -> str:
        """The connector's state in the agent's neutral words (available, preparing,
        charging, suspended_ev, suspended_evse, finishing, reserved, unavailable, faulted)."""
        # A read of one attribute from the test's thread: atomic, no hop to the charger's loop.
        return self._agent.station.connector(connector).status

    @property
    def online(self) -> bool:
        """Connected and BootNotification accepted."""
        client = self._agent.client if self._agent is not None else None
        return bool(client is not None and client.online)

    @property
    def ocpp_version(self) -> str | None:
        """"1.6" or "2.0.1": the version of the open (or the last) connection."""
        return self._agent.connection.version if self._agent is not None else None

    @property
    def frames(self) -> list:
        """Every frame of the main connection so far (a copy), oldest first."""
        return list(self._log.frames)

    def mark(self) -> int:
        """An index into ``frames``: pass it as ``since`` to wait for frames after now."""
        return len(self._log.frames)

    async def wait_status(self, connector: int, status: str, timeout_s: float = 10) -> str:
        """Wait until ``connector``'s state is ``status`` (see ``status_words``); returns the state."""
        wanted = status_words(status)
        await self._until(lambda: self.status(connector) in wanted, timeout_s,
                          lambda: "connector %d of %s is %s, not %s" % (connector, self.station_id,
                                                                         self.status(connector), status))
        return self.status(connector)

    async def wait_frame(self, action: str, predicate=None, timeout_s: float = 10, *, kind: str = CALL,
                         direction: str | None = None, since: int = 0) -> Frame:
        """The first frame from index ``since`` of ``action`` and ``kind`` ("call", "result",
        "error"; None: any), in ``direction`` ("out", "in"; None: either) whose payload
        satisfies ``predicate``; waits for it."""
        def find():
            for f in self._log.frames[since:]:
                if (f.action == action and (kind is None or f.kind == kind)
                        and (direction is None or f.direction == direction)
                        and (predicate is None or predicate(f.payload))):
                    return f
            return None

        found = None

        def seen() -> bool:
            nonlocal found
            found = find()
            return found is not None

        await self._until(seen, timeout_s,
                          lambda: "no %s %s%s from %s; last frames:\n%s" % (
                              kind or "frame", action, " matching the predicate" if predicate else "",
                              self.station_id, "\n".join("  %s %s" % (f.direction, f.text)
                                                         for f in self._log.frames[-8:])))
        return found

    async def wait_online(self, timeout_s: float = 30) -> None:
        await self._until(lambda: self.online, timeout_s,
                          lambda: "charger %s not online: %s" % (self.station_id, self._why_offline()))

    # ------------------------------------------------------------------ inside

    async def _until(self, condition, timeout_s: float, describe) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise WaitTimeoutError("after %s s: %s" % (timeout_s, describe()))
            await asyncio.sleep(POLL_S)

    def _why_offline(self) -> str:
        conn = self._agent.connection if self._agent is not None else None
        boots = [f.payload for f in self._log.frames if f.action == "BootNotification" and f.kind == RESULT]
        if boots:
            return "BootNotification answered %s" % json.dumps(boots[-1])
        if conn is not None and conn.last_error:
            return "cannot connect to %s: %s" % (conn.settings["url"], conn.last_error)
        return "connected: %s, no BootNotification answer" % (conn is not None and conn.connected)

    def _run(self, coro, timeout_s: float):
        """Run ``coro`` on the charger's loop; wait (blocking) for its result."""
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout_s)
        except TimeoutError:
            future.cancel()
            raise WaitTimeoutError("charger %s: no answer from its loop in %s s" % (self.station_id, timeout_s))

    def _on_loop(self, fn):
        """Call ``fn()`` on the charger's loop (the agent's objects belong to it)."""
        if self._thread is None:
            raise RuntimeError("charger %s is not running" % self.station_id)

        async def call():
            return fn()
        return self._run(call(), 10)

    def _new_agent(self) -> Agent:
        # The file, as ``ocpp-agent run`` reads it at each start: with what the agent changed in it.
        self.config = load_config(self.config.path)
        return Agent(self.config, traffic_log=self._log.record)

    async def _start_agent(self) -> None:
        agent = self._new_agent()
        await agent.start()  # on failure it closes what it opened
        self._agent = agent
        self._supervisor = asyncio.create_task(self._supervise())

    async def _supervise(self) -> None:
        """After a Reset the agent asks to be restarted (``ocpp-agent run`` re-executes): do it here."""
        while True:
            kind = await self._agent.wait()
            if self._stopping:
                return
            log.info("charger %s: %s reset: restarting the agent", self.station_id, kind)
            await self._agent.stop()
            self._agent = self._new_agent()
            await self._agent.start()
            self.restarts += 1

    async def _stop_agent(self) -> None:
        self._stopping = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
            self._supervisor = None
        if self._agent is not None:
            await self._agent.stop()
        me = asyncio.current_task()
        left = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
        for t in left:  # none expected: the agent stops its own; cancel so the loop can close
            log.warning("charger %s: task left after stop: %r", self.station_id, t)
            t.cancel()
        await asyncio.gather(*left, return_exceptions=True)
