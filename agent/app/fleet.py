"""A fleet of simulated stations in one process against one central system
(``ocpp-agent fleet``, docs/fleet.md): each station is a whole ``Agent`` on the sim
board with its own data_dir, connection, journal and random generator; the driver
starts them on a ramp and applies the scenario's events (agent/app/scenario.py) to
their simulated hardware and network on the fleet's clock.

``Fleet`` is what benches and the CLI use: ``start()``, ``stop()``, ``snapshot()``
(the live figures) and ``report()`` (the final ones), or ``run()`` for all of it.
With a ``VirtualClock`` the caller advances time; the stations still talk over real
sockets.
"""

import asyncio
import copy
import logging
import os
import random

from agent.app.config import ConfigError, parse_config
from agent.app.fleet_stats import CallStats, Histogram, StationStats
from agent.app.runner import Agent
from agent.app.scenario import DEFAULT, Scenario, ScenarioError, fleet_events
from hal.runtime.aio import wait_for
from hal.runtime.clock import Clock

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 10.0  # per station: a stop that hangs is logged and left behind, the fleet still ends
NETWORK_DOWN = "network down (simulated by the fleet scenario)"


def station_ids(prefix: str, count: int) -> list:
    """``CP001``… : zero-padded to the fleet size (at least 3 digits), so they sort."""
    width = max(3, len(str(count)))
    return ["%s%0*d" % (prefix, width, n) for n in range(1, count + 1)]


class FleetStation:
    """One station of the fleet: its agent, its figures, its simulated network."""

    def __init__(self, index: int, station_id: str, config, clock, seed, validate_replies: bool) -> None:
        self.index = index  # 1-based
        self.id = station_id
        self.stats = StationStats(version=self._version, validate_replies=validate_replies)
        self.agent = Agent(config, clock=clock, rng=random.Random("%s/%d/backoff" % (seed, index)),
                           traffic_log=self.stats.frame, local_access=False)
        self.started = False
        self.start_energy_wh = 0.0
        self.delivered_wh = 0.0  # set at stop

    def _version(self):
        return self.agent.connection.version

    @property
    def sim(self):
        return self.agent.loaded.sim

    def energy_wh(self) -> float:
        total = 0.0
        for c in self.sim.connectors:
            c.advance()
            total += c.meter.energy_wh
        return total

    async def start(self) -> None:
        await self.agent.start()
        self.start_energy_wh = self.energy_wh()
        self.started = True

    async def stop(self) -> None:
        if not self.started:
            return
        self.started = False
        self.delivered_wh = self.energy_wh() - self.start_energy_wh
        await self.agent.stop()

    # What the live view counts.
    @property
    def connected(self) -> bool:
        return self.agent.connection.connected

    @property
    def booted(self) -> bool:
        client = self.agent.client
        return client is not None and client.online

    @property
    def charging(self) -> bool:
        return any(c.power_w() > 0 for c in self.sim.connectors)

    def network(self, up: bool) -> None:
        conn = self.agent.connection
        conn.network_down = "" if up else NETWORK_DOWN
        if not up:
            conn.drop()


class Fleet:
    """N stations against ``csms_url``, driven by ``scenario`` for ``duration_s`` (fleet clock)."""

    def __init__(self, *, csms_url: str, count: int, data_dir: str, scenario: Scenario = DEFAULT, seed=0,
                 id_prefix: str = "CP", ocpp_version: str = "auto", duration_s: float = 600.0,
                 ramp_per_s: float = 20.0, clock: Clock | None = None, remote_start=None,
                 validate_replies: bool = True, csms_options: dict | None = None) -> None:
        if count < 1:
            raise ValueError("count must be at least 1")
        if ramp_per_s <= 0:
            raise ValueError("ramp_per_s must be positive")
        self.csms_url = csms_url
        self.count = count
        self.data_dir = data_dir
        self.scenario = scenario
        self.seed = seed
        self.ocpp_version = ocpp_version
        self.duration_s = duration_s
        self.ramp_per_s = ramp_per_s
        self.clock = clock or Clock()
        # async (station_id, connector_id, tag, ocpp_version) -> None: asks the backend for a remote start.
        # Without one a remote-start event leaves the EV plugged in for the backend to start it.
        self.remote_start = remote_start
        self.stations: list = []
        self.applied: list = []  # the events applied, in order (Event tuples)
        self.event_counts: dict = {}
        self.skipped = 0  # events for a station not started yet (the ramp) or refused by the simulator
        self.done = asyncio.Event()
        self._t0 = None
        self._ended_s = None
        self._tasks: list = []
        self._remote_tasks: list = []  # remote starts asked of the backend, not answered yet
        csms = {"url": csms_url, "ocpp_version": ocpp_version}
        csms.update(csms_options or {})
        for n, sid in enumerate(station_ids(id_prefix, count), 1):
            data = {"station": {"id": sid, "data_dir": os.path.join(data_dir, sid), "log_level": "WARNING"},
                    "csms": dict(csms), "status_page": {"enabled": False},
                    # copies: nothing of one station's configuration is another's
                    "board": copy.deepcopy(scenario.board), "ocpp": dict(scenario.ocpp),
                    "ocpp201": dict(scenario.ocpp201)}
            try:
                config = parse_config(os.path.join(data_dir, "fleet.toml"), data)
                self.stations.append(FleetStation(n, sid, config, self.clock, seed, validate_replies))
            except ConfigError as e:  # a [board], [ocpp] or [ocpp201] key of the scenario: name it there
                if e.key.split(".")[0] in ("board", "ocpp", "ocpp201"):
                    raise ScenarioError(scenario.path or scenario.name, e.key, e.problem) from None
                raise
        self.connectors = len(self.stations[0].sim.connectors)

    def start_offset_s(self, n: int) -> float:
        """When station ``n`` starts, from the fleet's start (the ramp)."""
        return (n - 1) / self.ramp_per_s

    def events(self):
        """The scenario's events for this fleet, in time order (the same for the same seed)."""
        return fleet_events(self.scenario, self.seed, self.count, self.connectors, self.duration_s,
                            start_of=self.start_offset_s)

    @property
    def elapsed_s(self) -> float:
        return 0.0 if self._t0 is None else self.clock.monotonic() - self._t0

    async def start(self) -> None:
        """Start the ramp and the scenario driver; returns at once."""
        self._t0 = self.clock.monotonic()
        self._tasks = [asyncio.create_task(self._ramp()), asyncio.create_task(self._drive())]

    async def run(self) -> None:
        """Start, run until ``duration_s`` (or ``done`` is set, e.g. by Ctrl-C) and stop."""
        await self.start()
        try:
            await self.done.wait()
        finally:
            await self.stop()

    async def stop(self) -> None:
        """Stop the driver, then every station at once (each bounded by STOP_TIMEOUT_S)."""
        self.done.set()
        if self._t0 is not None and self._ended_s is None:
            self._ended_s = self.elapsed_s  # the run, without the time the stations take to stop
        tasks, self._tasks, self._remote_tasks = self._tasks + self._remote_tasks, [], []
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

        async def stop_one(st: FleetStation) -> None:
            try:
                await wait_for(st.stop(), STOP_TIMEOUT_S)
            except asyncio.TimeoutError:
                log.error("station %s did not stop within %.0f s", st.id, STOP_TIMEOUT_S)
            except Exception:
                log.exception("stopping station %s failed", st.id)

        await asyncio.gather(*(stop_one(st) for st in self.stations))

    async def _sleep_until(self, at_s: float) -> None:
        delay = self._t0 + at_s - self.clock.monotonic()
        if delay > 0:
            await self.clock.sleep(delay)

    async def _ramp(self) -> None:
        for st in self.stations:
            await self._sleep_until(self.start_offset_s(st.index))
            try:
                await st.start()
            except Exception:
                log.exception("station %s did not start", st.id)

    async def _drive(self) -> None:
        for event in self.events():
            await self._sleep_until(event.at_s)
            self.apply(event)
        await self._sleep_until(self.duration_s)
        self.done.set()

    def apply(self, event) -> None:
        """Apply one event to its station's simulated hardware or network."""
        st = self.stations[event.station - 1]
        if not st.started:
            self.skipped += 1
            log.warning("event %s for %s skipped: the station has not started (ramp)", event, st.id)
            return
        sim, action, args = st.sim, event.action, event.args
        try:
            if action == "plug":
                connector = sim.connector(args[0])
                if args[1] or args[2]:  # the arriving EV's needs (0: the board's)
                    connector.ev.needs_wh = args[1]
                    connector.ev.max_current_a = args[2]
                sim.plug(args[0])
            elif action == "unplug":
                sim.unplug(args[0])
            elif action == "ev-full":
                sim.ev_full(args[0])
            elif action == "swipe":
                sim.swipe(args[0])
            elif action == "fault":
                sim.fault(args[0], args[1])
            elif action == "clear":
                sim.clear(args[0])
            elif action in ("net-down", "net-up"):
                st.network(up=action == "net-up")
            elif action == "remote-start":
                if self.remote_start is not None:
                    self._remote_tasks = [t for t in self._remote_tasks if not t.done()]
                    self._remote_tasks.append(asyncio.create_task(self._remote(st, args[0], args[1])))
            else:
                raise ValueError("unknown action %r" % action)
        except ValueError as e:  # the simulator refused it (an EV already gone, say)
            self.skipped += 1
            log.warning("event %s for %s refused: %s", event, st.id, e)
            return
        self.applied.append(event)
        self.event_counts[action] = self.event_counts.get(action, 0) + 1

    async def _remote(self, st: FleetStation, connector_id: int, tag: str) -> None:
        try:
            await self.remote_start(st.id, connector_id, tag, st.agent.connection.version)
        except Exception as e:  # the backend's business: counted in its call's figures, not fatal
            log.warning("remote start on %s failed: %s", st.id, e)

    # ------------------------------------------------------------------ figures
    def snapshot(self) -> dict:
        """The live figures; takes the round trips since the last snapshot (p50/p95/p99 of those)."""
        window = Histogram()
        out = {"elapsed_s": round(self.elapsed_s, 1), "duration_s": self.duration_s, "stations": self.count,
               "started": 0, "connected": 0, "booted": 0, "charging": 0, "frames": 0, "callerrors": 0,
               "reconnects": 0, "sessions_completed": 0}
        for st in self.stations:
            s = st.stats
            window.merge(s.take_window())
            out["frames"] += s.frames_in + s.frames_out
            out["callerrors"] += sum(s.callerrors_received.values())
            out["sessions_completed"] += s.sessions_completed
            out["reconnects"] += max(0, st.agent.connection.connect_count - 1)
            if st.started:
                out["started"] += 1
                out["connected"] += st.connected
                out["booted"] += st.booted
                out["charging"] += st.charging
        out["latency_ms"] = window.summary_ms()
        return out

    def report(self) -> dict:
        """The final figures (call after ``stop()``): JSON-ready."""
        calls: dict = {}
        total = CallStats()
        violations = {"callerrors_received": {}, "invalid_replies": 0, "invalid_examples": []}
        refused_by_station, backend_calls = {}, {}
        sessions = frames_in = frames_out = reconnects = 0
        energy_wh = 0.0
        for st in self.stations:
            s = st.stats
            for action, cs in s.calls.items():
                calls.setdefault(action, CallStats()).merge(cs)
                total.merge(cs)
            for code, n in s.callerrors_received.items():
                violations["callerrors_received"][code] = violations["callerrors_received"].get(code, 0) + n
            for code, n in s.callerrors_sent.items():
                refused_by_station[code] = refused_by_station.get(code, 0) + n
            for action, n in s.backend_calls.items():
                backend_calls[action] = backend_calls.get(action, 0) + n
            for example in s.invalid_examples:
                if len(violations["invalid_examples"]) < 10:
                    violations["invalid_examples"].append("%s: %s" % (st.id, example))
            sessions += s.sessions_completed
            frames_in += s.frames_in
            frames_out += s.frames_out
            reconnects += max(0, st.agent.connection.connect_count - 1)
            energy_wh += st.energy_wh() - st.start_energy_wh if st.started else st.delivered_wh
        violations["invalid_replies"] = total.invalid
        return {
            "fleet": {"csms": self.csms_url, "stations": self.count, "seed": self.seed,
                      "scenario": self.scenario.name, "ocpp_version": self.ocpp_version,
                      "duration_s": self.duration_s,
                      "elapsed_s": round(self._ended_s if self._ended_s is not None else self.elapsed_s, 1),
                      "ramp_per_s": self.ramp_per_s},
            "frames": {"sent": frames_out, "received": frames_in},
            "reconnects": reconnects,
            "calls": {a: calls[a].as_dict() for a in sorted(calls)},
            "total": total.as_dict(),
            "sessions_completed": sessions,
            "energy_wh": round(energy_wh, 1),
            "events": dict(sorted(self.event_counts.items())),
            "events_skipped": self.skipped,
            "backend_requests": dict(sorted(backend_calls.items())),
            "callerrors_sent": dict(sorted(refused_by_station.items())),
            "violations": violations,
        }
