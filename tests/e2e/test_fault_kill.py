"""Fault test: kill -9 of the agent at random points of charging sessions
(seeded), with link flaps and central system outages, against a central system
that counts every StartTransaction / StopTransaction / MeterValues: zero lost,
zero duplicated, meterStop never below meterStart. A small count of the soak in
tools/soak.py (its definitions are in that module's docstring); the soak itself
runs thousands:

    python -m tools.soak --runs 300 --seed 1
"""

import asyncio

from tools import soak

SEED = "ci-1"


def test_kill_9_at_random_points_loses_and_duplicates_nothing():
    opts = soak.parse_args(["--runs", "5", "--seed", SEED, "--stations", "2", "--max-run-s", "3",
                            "--targeted", "0.4", "--clean-stops", "0.2", "--outage-every-s", "4",
                            "--drain-timeout-s", "30", "--timeout-s", "90"])
    result = asyncio.run(soak.soak(opts))
    report = soak.render(result)
    assert result["error"] is None, report
    assert result["kills"] >= 5, report
    assert result["transactions"] > 0 and result["stop_messages"] > 0, report
    assert result["lost"] == 0, report
    assert result["duplicated"] == 0, report
    assert not [v for v in result["violations"] if ": meter:" in v], report
    assert result["violations"] == [], report


def test_redelivery_rule():
    """A repeat is a redelivery only if the station sent nothing else over the first copy's connection."""
    ledger = soak.Ledger("CP")

    class Handle:
        connections = 1
        messages = []

    ledger.handle = Handle()
    start = {"connectorId": 1, "idTag": "T1", "meterStart": 10, "timestamp": "2026-01-01T00:00:00.000Z"}
    assert ledger._on_start(start)["transactionId"] == 1
    Handle.connections = 2  # killed before recording the answer: sent again after the reconnect
    assert ledger._on_start(dict(start))["transactionId"] == 1  # same session, same id
    ledger._on_meter_values({"connectorId": 1, "transactionId": 1, "meterValue": []})
    stop = {"transactionId": 1, "meterStop": 20, "timestamp": "2026-01-01T00:01:00.000Z", "reason": "PowerLoss"}
    ledger._on_stop(stop)
    ledger._on_stop(dict(stop))  # same connection, nothing in between: a retry
    r = soak.analyze(ledger)
    assert r["violations"] == [] and r["redelivered_starts"] == 1 and r["redelivered_stops"] == 1
    ledger._on_meter_values({"connectorId": 1, "transactionId": 1, "meterValue": [{"x": 1}]})
    ledger._on_stop(dict(stop))  # the agent had moved on: a duplicate
    r = soak.analyze(ledger)
    assert r["duplicated"] == 1, r["violations"]
    assert any("after its StopTransaction" in v for v in r["violations"])


def test_lost_and_meter_checks():
    ledger = soak.Ledger("CP")
    start = {"connectorId": 1, "idTag": "T1", "meterStart": 100, "timestamp": "2026-01-01T00:00:00.000Z"}
    ledger._on_start(start)
    ledger._on_start(dict(start, idTag="T2", timestamp="2026-01-01T00:05:00.000Z"))
    ledger._on_meter_values({"connectorId": 1, "transactionId": 1, "meterValue": [
        {"timestamp": "2026-01-01T00:00:30.000Z",
         "sampledValue": [{"value": "150", "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]}]})
    ledger._on_meter_values({"connectorId": 1, "transactionId": -1, "meterValue": []})
    ledger._on_stop({"transactionId": 1, "meterStop": 90, "timestamp": "2026-01-01T00:01:00.000Z"})
    r = soak.analyze(ledger, seen_tags={"T1", "T3"})
    text = "\n".join(r["violations"])
    assert r["lost"] == 2, text  # transaction 2 never stopped; T3 never reported
    assert "meterStop 90 < meterStart 100" in text
    assert "below a reported register value" in text
    assert "transactionId -1" in text
