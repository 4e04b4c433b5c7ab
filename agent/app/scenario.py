"""Fleet scenarios as data: what the EV drivers, the hardware and the network of
simulated stations do, read from a TOML file, and the seeded event sequence it
gives (docs/fleet.md).

Pure: no I/O beyond reading the file, no clock, no global random. Station ``n``
(1-based) draws from ``random.Random("<seed>/<n>")``, each of its streams (one per
connector, faults, network) from a generator seeded by it in a fixed order, so the
same seed gives the same events whatever the fleet size or the order they are read.

Two forms, combinable: statistical (``[arrivals]``, ``[session]``, ``[tags]``,
``[faults]``, ``[network]``) and a scripted ``[timeline]`` of lines such as
``"at 10 s station 3 plug 1"`` for reproducing an incident.
"""

import heapq
import itertools
import random
import re
import tomllib
from typing import NamedTuple

from hal.sim import check_error_code

ERROR_CODES_DEFAULT = ("GroundFailure", "HighTemperature", "PowerMeterFailure")
TIMELINE_ACTIONS = {  # action -> argument kinds (c: connector, s: seconds, t: text)
    "plug": "c", "unplug": "c", "ev-full": "c", "swipe": "t", "remote-start": "ct",
    "fault": "ct", "clear": "c", "drop": "s", "net-down": "", "net-up": "",
}


class ScenarioError(ValueError):
    """A bad scenario: ``str()`` names the file, the key and the problem."""

    def __init__(self, path: str, key: str, problem: str) -> None:
        self.path, self.key, self.problem = path, key, problem
        super().__init__("%s: %s: %s" % (path, key, problem))


class Event(NamedTuple):
    """One thing that happens to station ``station`` (1-based) at ``at_s`` seconds from the
    fleet's start. ``action`` is a TIMELINE_ACTIONS word; plug's args are (connector,
    needs_wh, ev_max_current_a), the others' as in the timeline."""
    at_s: float
    station: int
    action: str
    args: tuple


class Scenario(NamedTuple):
    name: str
    start_hour: float  # hour of day at the fleet's start, for daily_profile
    rates_per_h: tuple  # 24 arrival rates per connector, one per hour of day
    length_s: tuple  # (low, high), uniform
    energy_wh: tuple
    ev_max_current_a: tuple
    start_delay_s: tuple  # plug -> badge or remote start
    remote_share: float
    badge_stop_share: float  # badge sessions ended by a second badge before the unplug
    tags: tuple
    unknown_share: float
    blocked: tuple
    blocked_share: float
    fault_rate_per_h: float  # per station
    fault_codes: tuple
    fault_duration_s: tuple
    drops_per_h: float  # per station
    drop_duration_s: tuple
    timeline: tuple  # Events, in time order
    board: dict  # passed to each station's configuration ([board.evse] …)
    ocpp: dict
    ocpp201: dict
    path: str = ""  # the file, for errors found later (the [board] and [ocpp] sections, checked by the stations)


_SECTIONS = {
    "scenario": ("name", "start_hour"),
    "arrivals": ("rate_per_h", "daily_profile"),
    "session": ("length_s", "energy_wh", "ev_max_current_a", "start_delay_s", "remote_share", "badge_stop_share"),
    "tags": ("known", "pool_size", "prefix", "unknown_share", "blocked", "blocked_share"),
    "faults": ("rate_per_h", "codes", "duration_s"),
    "network": ("drops_per_h", "duration_s"),
    "timeline": ("events",),
}
_PASSED = ("board", "ocpp", "ocpp201")  # validated by the station's configuration


def _number(path, key, value, low=0.0, high=None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ScenarioError(path, key, "must be a number (got %r)" % (value,))
    if value < low or (high is not None and value > high):
        raise ScenarioError(path, key, "must be %s%s (got %r)" % (
            ">= %g" % low, "" if high is None else " and <= %g" % high, value))
    return float(value)


def _range(path, key, value, low=0.0) -> tuple:
    """A number (fixed) or ``[low, high]`` (uniform)."""
    if isinstance(value, list):
        if len(value) != 2:
            raise ScenarioError(path, key, "must be a number or [low, high] (got %d items)" % len(value))
        lo, hi = (_number(path, key, v, low) for v in value)
        if lo > hi:
            raise ScenarioError(path, key, "low %g is above high %g" % (lo, hi))
        return lo, hi
    v = _number(path, key, value, low)
    return v, v


def _strings(path, key, value) -> tuple:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ScenarioError(path, key, "must be a list of non-empty strings")
    for v in value:
        if len(v) > 20:
            raise ScenarioError(path, key, "%r is longer than 20 characters (an OCPP idTag)" % v)
    return tuple(value)


def parse_scenario(path: str, data: dict) -> Scenario:
    """Validate ``data`` (a parsed TOML document); ``path`` names it in errors."""
    for section, value in data.items():
        if section not in _SECTIONS and section not in _PASSED:
            raise ScenarioError(path, section, "unknown section (expected one of %s)"
                                % ", ".join(list(_SECTIONS) + list(_PASSED)))
        if not isinstance(value, dict):
            raise ScenarioError(path, section, "must be a table")
        for key in value if section in _SECTIONS else ():
            if key not in _SECTIONS[section]:
                raise ScenarioError(path, "%s.%s" % (section, key), "unknown key (expected one of %s)"
                                    % ", ".join(_SECTIONS[section]))

    def get(section, key, default):
        return data.get(section, {}).get(key, default)

    name = get("scenario", "name", path)
    if not isinstance(name, str):
        raise ScenarioError(path, "scenario.name", "must be a string")
    start_hour = _number(path, "scenario.start_hour", get("scenario", "start_hour", 0), 0, 23.999)
    profile = get("arrivals", "daily_profile", None)
    if profile is not None:
        if "rate_per_h" in data.get("arrivals", {}):
            raise ScenarioError(path, "arrivals.daily_profile", "give rate_per_h or daily_profile, not both")
        if not isinstance(profile, list) or len(profile) != 24:
            raise ScenarioError(path, "arrivals.daily_profile", "must be a list of 24 hourly rates")
        rates = tuple(_number(path, "arrivals.daily_profile[%d]" % i, v) for i, v in enumerate(profile))
    else:
        rates = (_number(path, "arrivals.rate_per_h", get("arrivals", "rate_per_h", 0)),) * 24

    known = _strings(path, "tags.known", get("tags", "known", []))
    pool_size = get("tags", "pool_size", 0 if known else 100)
    if isinstance(pool_size, bool) or not isinstance(pool_size, int) or not 0 <= pool_size <= 1_000_000:
        raise ScenarioError(path, "tags.pool_size", "must be an integer 0..1000000 (got %r)" % (pool_size,))
    prefix = get("tags", "prefix", "TAG-")
    if not isinstance(prefix, str) or len(prefix) > 12:
        raise ScenarioError(path, "tags.prefix", "must be a string of at most 12 characters")
    tags = known + tuple("%s%06d" % (prefix, i) for i in range(1, pool_size + 1))
    unknown = _number(path, "tags.unknown_share", get("tags", "unknown_share", 0), 0, 1)
    blocked = _strings(path, "tags.blocked", get("tags", "blocked", []))
    blocked_share = _number(path, "tags.blocked_share", get("tags", "blocked_share", 0), 0, 1)
    if blocked_share and not blocked:
        raise ScenarioError(path, "tags.blocked_share", "needs tags.blocked (the tags the backend refuses)")
    if unknown + blocked_share > 1:
        raise ScenarioError(path, "tags.unknown_share", "unknown_share + blocked_share is above 1")
    if not tags and unknown + blocked_share < 1 and any(rates):
        raise ScenarioError(path, "tags.known", "no tags: give tags.known or tags.pool_size")

    codes = _strings(path, "faults.codes", get("faults", "codes", list(ERROR_CODES_DEFAULT)))
    if not codes:
        raise ScenarioError(path, "faults.codes", "must name at least one error code")
    try:
        for code in codes:
            check_error_code(code)
    except ValueError as e:
        raise ScenarioError(path, "faults.codes", str(e)) from None

    return Scenario(
        name=name, start_hour=start_hour, rates_per_h=rates,
        length_s=_range(path, "session.length_s", get("session", "length_s", [1800, 7200]), 1),
        energy_wh=_range(path, "session.energy_wh", get("session", "energy_wh", [5000, 30000])),
        ev_max_current_a=_range(path, "session.ev_max_current_a", get("session", "ev_max_current_a", [16, 32]), 1),
        start_delay_s=_range(path, "session.start_delay_s", get("session", "start_delay_s", [5, 30])),
        remote_share=_number(path, "session.remote_share", get("session", "remote_share", 0), 0, 1),
        badge_stop_share=_number(path, "session.badge_stop_share", get("session", "badge_stop_share", 0.5), 0, 1),
        tags=tags, unknown_share=unknown, blocked=blocked, blocked_share=blocked_share,
        fault_rate_per_h=_number(path, "faults.rate_per_h", get("faults", "rate_per_h", 0)),
        fault_codes=codes, fault_duration_s=_range(path, "faults.duration_s", get("faults", "duration_s", [30, 300])),
        drops_per_h=_number(path, "network.drops_per_h", get("network", "drops_per_h", 0)),
        drop_duration_s=_range(path, "network.duration_s", get("network", "duration_s", [5, 60])),
        timeline=parse_timeline(path, get("timeline", "events", [])),
        board=dict(data.get("board", {})), ocpp=dict(data.get("ocpp", {})), ocpp201=dict(data.get("ocpp201", {})),
        path=path)


def load_scenario(path: str) -> Scenario:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise ScenarioError(path, "file", e.strerror or str(e)) from None
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(path, "file", "not valid TOML: %s" % e) from None
    return parse_scenario(path, data)


_UNITS_S = {"s": 1.0, "sec": 1.0, "ms": 0.001, "m": 60.0, "min": 60.0, "h": 3600.0}
_LINE = re.compile(r"^at\s+([0-9.]+)\s*([a-z]*)\s+station\s+(\d+)\s+([a-z-]+)((?:\s+\S+)*)\s*$")


def parse_timeline(path: str, lines) -> tuple:
    """``["at 10 s station 3 plug 1", …]`` -> Events in time order (stable for equal times)."""
    if not isinstance(lines, list):
        raise ScenarioError(path, "timeline.events", "must be a list of strings")
    events = []
    for i, line in enumerate(lines):
        key = "timeline.events[%d]" % i
        m = _LINE.match(line.strip()) if isinstance(line, str) else None
        if m is None:
            raise ScenarioError(path, key, "expected 'at <time> [s|min|h] station <n> <action> [args]' (got %r)"
                                % (line,))
        number, unit, station, action, rest = m.groups()
        if unit not in _UNITS_S and unit != "":
            raise ScenarioError(path, key, "unknown time unit %r (s, ms, min, h)" % unit)
        try:
            at_s = float(number) * _UNITS_S.get(unit or "s")
        except ValueError:
            raise ScenarioError(path, key, "bad time %r" % number) from None
        if action not in TIMELINE_ACTIONS or int(station) < 1:
            raise ScenarioError(path, key, "unknown action %r (expected one of %s)" % (
                action, ", ".join(TIMELINE_ACTIONS)) if action not in TIMELINE_ACTIONS else "stations count from 1")
        kinds, words = TIMELINE_ACTIONS[action], rest.split()
        if len(words) != len(kinds):
            raise ScenarioError(path, key, "%s takes %d argument(s) (got %d)" % (action, len(kinds), len(words)))
        args = []
        for kind, word in zip(kinds, words):
            if kind == "t":
                args.append(word)
            elif kind == "c" and word.isdigit():
                args.append(int(word))
            elif kind == "s" and re.fullmatch(r"[0-9.]+", word):
                args.append(float(word))
            else:
                raise ScenarioError(path, key, "bad argument %r of %s" % (word, action))
        if action == "plug":
            args += [0.0, 0.0]  # needs_wh and ev_max_current_a: the board's
        if action == "drop":
            events.append(Event(at_s, int(station), "net-down", ()))
            events.append(Event(at_s + args[0], int(station), "net-up", ()))
        else:
            events.append(Event(at_s, int(station), action, tuple(args)))
    return tuple(sorted(events, key=lambda e: e.at_s))


# ---------------------------------------------------------------- the event sequence

def station_rng(seed, station: int) -> random.Random:
    """Station ``station``'s generator: from the seed and its index only (str seeds hash stably)."""
    return random.Random("%s/%d" % (seed, station))


def _uniform(rng, bounds) -> float:
    lo, hi = bounds
    return lo if lo == hi else rng.uniform(lo, hi)


def _poisson_times(rng, start_s: float, until_s: float, rate_at, max_rate_per_h: float):
    """Arrival times of a Poisson process with the hourly rate ``rate_at(t)`` (thinning)."""
    t = start_s
    while max_rate_per_h > 0:
        t += rng.expovariate(max_rate_per_h / 3600.0)
        if t >= until_s:
            return
        if rng.random() * max_rate_per_h <= rate_at(t):
            yield t


def _pick_tag(sc: Scenario, rng) -> str:
    u = rng.random()
    if u < sc.unknown_share or not sc.tags and not sc.blocked:
        return "UNKNOWN-%06d" % rng.randrange(1_000_000)
    if u < sc.unknown_share + sc.blocked_share or not sc.tags:
        return rng.choice(sc.blocked)
    return rng.choice(sc.tags)


def _sessions(sc: Scenario, rng, station: int, connector: int, start_s: float, until_s: float):
    def rate_at(t: float) -> float:
        return sc.rates_per_h[int((sc.start_hour + t / 3600.0) % 24)]

    t = start_s
    max_rate = max(sc.rates_per_h)
    while True:
        arrival = next(_poisson_times(rng, t, until_s, rate_at, max_rate), None)
        if arrival is None:
            return
        length_s = _uniform(rng, sc.length_s)
        needs_wh, max_a = _uniform(rng, sc.energy_wh), _uniform(rng, sc.ev_max_current_a)
        delay_s = min(_uniform(rng, sc.start_delay_s), length_s / 2)
        tag = _pick_tag(sc, rng)
        remote = rng.random() < sc.remote_share
        badge_stop = not remote and rng.random() < sc.badge_stop_share
        yield Event(arrival, station, "plug", (connector, round(needs_wh, 1), round(max_a, 1)))
        yield Event(arrival + delay_s, station, "remote-start" if remote else "swipe",
                    (connector, tag) if remote else (tag,))
        if badge_stop and length_s - delay_s > 10:
            yield Event(arrival + length_s - 5, station, "swipe", (tag,))
        yield Event(arrival + length_s, station, "unplug", (connector,))
        t = arrival + length_s


def _faults(sc: Scenario, rng, station: int, connectors: int, start_s: float, until_s: float):
    t = start_s
    while True:
        at = next(_poisson_times(rng, t, until_s, lambda _t: sc.fault_rate_per_h, sc.fault_rate_per_h), None)
        if at is None:
            return
        connector, code = rng.randint(1, connectors), rng.choice(sc.fault_codes)
        t = at + _uniform(rng, sc.fault_duration_s)
        yield Event(at, station, "fault", (connector, code))
        yield Event(t, station, "clear", (connector,))


def _drops(sc: Scenario, rng, station: int, start_s: float, until_s: float):
    t = start_s
    while True:
        at = next(_poisson_times(rng, t, until_s, lambda _t: sc.drops_per_h, sc.drops_per_h), None)
        if at is None:
            return
        t = at + _uniform(rng, sc.drop_duration_s)
        yield Event(at, station, "net-down", ())
        yield Event(t, station, "net-up", ())


def station_events(sc: Scenario, seed, station: int, connectors: int, start_s: float, until_s: float):
    """Station ``station``'s random events from ``start_s`` (its start), in time order: arrivals
    until ``until_s``, and the end of what began before it (the caller cuts at ``until_s``)."""
    rng = station_rng(seed, station)
    seeds = [rng.getrandbits(64) for _ in range(connectors + 2)]  # fixed order: one per stream
    streams = [_sessions(sc, random.Random(seeds[c - 1]), station, c, start_s, until_s)
               for c in range(1, connectors + 1)]
    streams.append(_faults(sc, random.Random(seeds[connectors]), station, connectors, start_s, until_s))
    streams.append(_drops(sc, random.Random(seeds[connectors + 1]), station, start_s, until_s))
    return heapq.merge(*streams, key=lambda e: e.at_s)


def fleet_events(sc: Scenario, seed, count: int, connectors: int, until_s: float, start_of=lambda n: 0.0):
    """Every station's events and the timeline's (for stations 1..count) before ``until_s``, merged
    in time order.
    ``start_of(n)`` is when station n starts (the ramp): its random events begin then."""
    streams = [station_events(sc, seed, n, connectors, start_of(n), until_s) for n in range(1, count + 1)]
    streams.append(e for e in sc.timeline if e.station <= count)
    return itertools.takewhile(lambda e: e.at_s < until_s, heapq.merge(*streams, key=lambda e: e.at_s))


DEFAULT = parse_scenario("(built-in scenario)", {
    "scenario": {"name": "default: a session per connector every 2 h, short sessions"},
    "arrivals": {"rate_per_h": 0.5},
    "session": {"length_s": [600, 3600], "energy_wh": [2000, 20000], "remote_share": 0.0},
    "tags": {"pool_size": 100, "unknown_share": 0.02},
})
