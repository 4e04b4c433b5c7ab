"""``ocpp-agent fleet``: the scenario model and its parser (agent/app/scenario.py), the
per-station figures (agent/app/fleet_stats.py), and small fleets against the test central
system on loopback in virtual time (agent/app/fleet.py)."""

import asyncio
import glob
import json

import pytest

from agent.app.fleet import Fleet, station_ids
from agent.app.fleet_stats import Histogram, StationStats
from agent.app.fleet_view import format_report, parse_duration
from agent.app.scenario import (DEFAULT, Event, ScenarioError, fleet_events, load_scenario, parse_scenario,
                                station_events)
from hal.runtime.clock import VirtualClock
from tools.csms import TestCentralSystem

BUSY = {
    "arrivals": {"rate_per_h": 20},
    "session": {"length_s": [200, 400], "energy_wh": [500, 1500], "ev_max_current_a": [16, 32],
                "start_delay_s": [2, 5], "badge_stop_share": 0.5},
    "tags": {"pool_size": 20, "blocked": ["BLOCKED-1"], "blocked_share": 0.2},
    "faults": {"rate_per_h": 2, "duration_s": [10, 30]},
    "network": {"drops_per_h": 2, "duration_s": [5, 15]},
    "board": {"evse": {"speed": 10}},
    "ocpp": {"MeterValueSampleInterval": 60},
}


# ------------------------------------------------------------------ the parser

@pytest.mark.parametrize("data, key, words", [
    ({"sesion": {}}, "sesion", "unknown section"),
    ({"session": {"lenght_s": 10}}, "session.lenght_s", "unknown key"),
    ({"session": {"length_s": [10]}}, "session.length_s", "[low, high]"),
    ({"session": {"length_s": [100, 10]}}, "session.length_s", "above high"),
    ({"session": {"energy_wh": "lots"}}, "session.energy_wh", "must be a number"),
    ({"session": {"remote_share": 1.5}}, "session.remote_share", "<= 1"),
    ({"arrivals": {"daily_profile": [1] * 23}}, "arrivals.daily_profile", "24 hourly rates"),
    ({"arrivals": {"daily_profile": [1] * 24, "rate_per_h": 1}}, "arrivals.daily_profile", "not both"),
    ({"arrivals": {"rate_per_h": -1}}, "arrivals.rate_per_h", ">= 0"),
    ({"tags": {"blocked_share": 0.1}}, "tags.blocked_share", "needs tags.blocked"),
    ({"tags": {"unknown_share": 0.8, "blocked": ["B"], "blocked_share": 0.5}}, "tags.unknown_share", "above 1"),
    ({"tags": {"known": ["X" * 21]}}, "tags.known", "20 characters"),
    ({"faults": {"codes": ["Bogus"]}}, "faults.codes", "unknown error code"),
    ({"timeline": {"events": ["at ten s station 1 plug 1"]}}, "timeline.events[0]", "expected 'at <time>"),
    ({"timeline": {"events": ["at 1 s station 1 plug 1", "at 2 s station 1 dance 1"]}},
     "timeline.events[1]", "unknown action 'dance'"),
    ({"timeline": {"events": ["at 1 s station 1 swipe"]}}, "timeline.events[0]", "takes 1 argument"),
    ({"timeline": {"events": ["at 1 fortnight station 1 plug 1"]}}, "timeline.events[0]", "unknown time unit"),
    ({"timeline": {"events": ["at 1 s station 0 plug 1"]}}, "timeline.events[0]", "count from 1"),
    ({"board": 3}, "board", "must be a table"),
])
def test_bad_scenario_names_the_key(data, key, words):
    with pytest.raises(ScenarioError) as e:
        parse_scenario("s.toml", data)
    assert e.value.key == key
    assert str(e.value).startswith("s.toml: %s: " % key) and words in str(e.value), str(e.value)


def test_bad_file(tmp_path):
    (tmp_path / "s.toml").write_text("[session\n")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_scenario(str(tmp_path / "s.toml"))
    with pytest.raises(ScenarioError, match="file"):
        load_scenario(str(tmp_path / "missing.toml"))


@pytest.mark.parametrize("section, key, word", [
    ({"board": {"evse": {"sped": 10}}}, "board.evse", "sped"),
    ({"ocpp": {"HeartbeatIntervall": 10}}, "ocpp.HeartbeatIntervall", "unknown"),
])
def test_bad_station_keys_of_a_scenario_are_named_there(tmp_path, section, key, word):
    sc = parse_scenario("s.toml", section)
    with pytest.raises(ScenarioError) as e:
        Fleet(csms_url="ws://127.0.0.1:9/ocpp", count=2, data_dir=str(tmp_path), scenario=sc)
    assert e.value.key == key and str(e.value).startswith("s.toml: %s: " % key) and word in str(e.value)


def test_cli_reports_a_bad_scenario(tmp_path, capsys):
    from agent.app.cli import main

    (tmp_path / "s.toml").write_text("[session]\nlength_s = [100, 10]\n")
    assert main(["fleet", "--csms", "ws://127.0.0.1:9/ocpp", "--scenario", str(tmp_path / "s.toml")]) == 2
    assert capsys.readouterr().err == "error: %s: session.length_s: low 100 is above high 10\n" % (tmp_path / "s.toml")


def test_shipped_scenarios_parse():
    files = glob.glob("tools/scenarios/*.toml")
    assert len(files) >= 3
    for path in files:
        sc = load_scenario(path)
        list(fleet_events(sc, 1, 3, 2, 3600))


def test_timeline_parses_units_and_drop():
    sc = parse_scenario("t", {"timeline": {"events": [
        "at 2 min station 3 drop 30", "at 10 s station 3 plug 1", "at 12 station 3 swipe TAG-1",
        "at 500 ms station 1 fault 0 GroundFailure", "at 1 h station 2 remote-start 2 T"]}})
    assert sc.timeline == (
        Event(0.5, 1, "fault", (0, "GroundFailure")), Event(10.0, 3, "plug", (1, 0.0, 0.0)),
        Event(12.0, 3, "swipe", ("TAG-1",)), Event(120.0, 3, "net-down", ()), Event(150.0, 3, "net-up", ()),
        Event(3600.0, 2, "remote-start", (2, "T")))
    assert list(fleet_events(sc, 0, 2, 1, 200)) == [e for e in sc.timeline if e.station <= 2 and e.at_s < 200]


# ------------------------------------------------------------------ the event sequence

def test_same_seed_same_events_and_stations_are_independent():
    sc = parse_scenario("busy", BUSY)
    a = list(fleet_events(sc, 42, 5, 2, 7200))
    assert a == list(fleet_events(sc, 42, 5, 2, 7200))
    assert a != list(fleet_events(sc, 43, 5, 2, 7200))
    assert {e.action for e in a} >= {"plug", "swipe", "unplug", "fault", "clear", "net-down", "net-up"}
    assert all(x.at_s <= y.at_s for x, y in zip(a, a[1:]))
    # a station's events depend on the seed and its index only, not on the fleet's size
    assert [e for e in a if e.station == 3] == [e for e in fleet_events(sc, 42, 9, 2, 7200) if e.station == 3]


def test_sessions_are_well_formed():
    sc = parse_scenario("busy", BUSY)
    on = {}
    for e in station_events(sc, 7, 1, 2, 0.0, 20000):
        if e.action == "plug":
            assert e.args[0] not in on, "a connector is free before the next EV arrives"
            on[e.args[0]] = e.at_s
            assert 500 <= e.args[1] <= 1500 and 16 <= e.args[2] <= 32
        elif e.action == "unplug":
            assert 200 <= e.at_s - on.pop(e.args[0]) <= 400


def test_daily_profile_and_tag_shares():
    profile = [0.0] * 24
    profile[9] = 50.0  # only 09:00-10:00
    sc = parse_scenario("p", {"scenario": {"start_hour": 8}, "arrivals": {"daily_profile": profile},
                              "session": {"length_s": 60}, "tags": {"known": ["K"], "pool_size": 0,
                                                                   "unknown_share": 0.5}})
    plugs = [e.at_s for e in fleet_events(sc, 1, 20, 1, 24 * 3600) if e.action == "plug"]
    assert plugs and all(3600 <= t < 7200 for t in plugs)
    tags = [e.args[0] for e in fleet_events(sc, 1, 20, 1, 24 * 3600) if e.action == "swipe"]
    unknown = sum(t.startswith("UNKNOWN-") for t in tags)
    assert set(tags) - {"K"} and 0.3 < unknown / len(tags) < 0.7


def test_histogram_and_stats_from_frames():
    h = Histogram()
    for ms in range(1, 101):
        h.add(ms / 1000.0)
    assert 0.047 < h.percentile(50) < 0.053 and 0.092 < h.percentile(95) < 0.098 and h.percentile(100) == 0.1
    s = StationStats(version=lambda: "1.6", now=iter([0.0, 0.010, 1.0, 1.002, 2.0, 3.0, 3.1, 4.0, 4.5]).__next__)
    s.frame("out", '[2,"a","Heartbeat",{}]')
    s.frame("in", '[3,"a",{"currentTime":"2026-01-01T00:00:00Z"}]')
    s.frame("out", '[2,"b","Authorize",{"idTag":"X"}]')
    s.frame("in", '[4,"b","InternalError","oops",{}]')
    s.frame("out", '[2,"c","Heartbeat",{}]')  # never answered
    s.frame("out", '[2,"d","Heartbeat",{}]')
    s.frame("in", '[3,"d",{"currentTime":5}]')  # breaks the schema
    s.frame("out", '[2,"e","StopTransaction",{"transactionId":1,"meterStop":5,"timestamp":"x"}]')
    s.frame("in", '[3,"e",{"idTagInfo":{"status":"Blocked"}}]')
    s.frame("in", '[2,"f","Reset",{"type":"Soft"}]')
    s.frame("out", '[4,"f","NotSupported","",{}]')
    hb, auth, stop = s.calls["Heartbeat"], s.calls["Authorize"], s.calls["StopTransaction"]
    assert (hb.sent, hb.answered, hb.unanswered, hb.invalid) == (3, 2, 1, 1)
    assert abs(hb.latency.max_s - 0.1) < 1e-9 and auth.errors == 1 and s.callerrors_received == {"InternalError": 1}
    assert stop.rejected == 1 and s.sessions_completed == 1
    assert s.backend_calls == {"Reset": 1} and s.callerrors_sent == {"NotSupported": 1}
    assert s.invalid_examples and "Heartbeat.conf" in s.invalid_examples[0]


def test_small_pieces():
    assert station_ids("CP", 5) == ["CP001", "CP002", "CP003", "CP004", "CP005"]
    assert station_ids("X-", 1000)[-1] == "X-1000"
    assert parse_duration("10m") == 600 and parse_duration("90") == 90 and parse_duration("1.5h") == 5400
    with pytest.raises(ValueError):
        parse_duration("soon")


# ------------------------------------------------------------------ fleets on loopback

async def run_fleet(fleet: Fleet, clock: VirtualClock, step_s: float = 2.0) -> dict:
    await fleet.start()
    try:
        while not fleet.done.is_set():
            await clock.advance(step_s)
            await asyncio.sleep(0.004)  # the stations' frames cross real sockets
    finally:
        await fleet.stop()
    return fleet.report()


async def test_fleet_runs_a_seeded_scenario_with_sessions(tmp_path):
    cs = TestCentralSystem(quiet=True, protocols=("ocpp1.6",), reject_tags=("BLOCKED-1",))
    await cs.start()
    try:
        clock = VirtualClock()
        fleet = Fleet(csms_url=cs.url, count=5, data_dir=str(tmp_path), scenario=parse_scenario("busy", BUSY),
                      seed=42, duration_s=1200, ramp_per_s=5, clock=clock)
        report = await run_fleet(fleet, clock)
    finally:
        await cs.stop()
    assert fleet.applied == list(fleet.events()), "every event applied, in the generated order"
    assert fleet.skipped == 0
    assert report["sessions_completed"] >= 3 and report["energy_wh"] > 0
    assert report["calls"]["StopTransaction"]["answered"] == report["sessions_completed"]
    assert report["calls"]["BootNotification"]["sent"] == 5
    assert report["total"]["sent"] == report["total"]["answered"] + report["total"]["unanswered"]
    assert report["total"]["latency_ms"]["p99"] is not None and report["total"]["latency_ms"]["n"] > 0
    assert report["calls"]["Authorize"]["rejected"] >= 1  # BLOCKED-1, refused by the central system
    assert report["events"]["net-down"] >= 1 and report["reconnects"] >= 1
    assert report["violations"] == {"callerrors_received": {}, "invalid_replies": 0, "invalid_examples": []}
    for key in ("fleet", "frames", "calls", "total", "events", "events_skipped", "backend_requests",
                "callerrors_sent"):
        assert key in report
    assert json.loads(json.dumps(report)) == report
    text = format_report(report)
    assert "StopTransaction" in text and "sessions completed %d" % report["sessions_completed"] in text
    # Each station kept its own data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CP001", "CP002", "CP003", "CP004", "CP005"]


async def test_timeline_does_exactly_what_it_says(tmp_path):
    sc = parse_scenario("incident", {"timeline": {"events": [
        "at 5 s station 2 plug 1", "at 7 s station 2 swipe TAG-2", "at 30 s station 2 drop 20",
        "at 120 s station 2 unplug 1", "at 150 s station 2 remote-start 1 APP-1", "at 160 s station 2 plug 1",
        "at 250 s station 2 unplug 1"]}, "board": {"evse": {"speed": 10}}})
    cs = TestCentralSystem(quiet=True)  # 2.0.1
    await cs.start()
    remote = []

    async def remote_start(station_id, connector_id, tag, version):
        remote.append((station_id, connector_id, tag, version))
        await cs.stations[station_id].call("RequestStartTransaction", evseId=connector_id, remoteStartId=1,
                                           idToken={"idToken": tag, "type": "Central"})

    try:
        clock = VirtualClock()
        fleet = Fleet(csms_url=cs.url, count=2, data_dir=str(tmp_path), scenario=sc, seed=1, duration_s=300,
                      clock=clock, remote_start=remote_start)
        report = await run_fleet(fleet, clock, step_s=1.0)
        calm, incident = cs.stations["CP001"], cs.stations["CP002"]
    finally:
        await cs.stop()
    assert fleet.applied == list(sc.timeline)
    assert remote == [("CP002", 1, "APP-1", "2.0.1")]
    ended = [m.payload for m in incident.messages if m.action == "TransactionEvent"
             and m.payload.get("eventType") == "Ended"]
    assert len(ended) == 2 and report["sessions_completed"] == 2
    assert not any(m.action == "TransactionEvent" for m in calm.messages)
    assert report["reconnects"] == 1 and report["energy_wh"] > 0
    assert report["backend_requests"] == {"RequestStartTransaction": 1}
