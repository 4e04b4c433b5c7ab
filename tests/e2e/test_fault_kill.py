"""Fault test: kill -9 of the agent at random points of charging sessions
(seeded), with link flaps and central system outages, against a central system
that counts every transaction message - StartTransaction / StopTransaction /
MeterValues on OCPP 1.6, TransactionEvent by (transactionId, seqNo) on 2.0.1:
zero lost, zero duplicated, the end's meter register never below the start's. A
small count of the soak in tools/soak.py (its definitions are in that module's
docstring); the soak itself runs thousands:

    python -m tools.soak --runs 300 --seed 1
    python -m tools.soak --ocpp 2.0.1 --runs 100 --seed 1
"""

import asyncio

from tools import soak

SEED = "ci-1"


def run_small_soak(*extra: str) -> None:
    """Two stations, five lives each, many targeted kills and clean stops: nothing lost or duplicated."""
    opts = soak.parse_args(["--runs", "5", "--seed", SEED, "--stations", "2", "--max-run-s", "3",
                            "--targeted", "0.4", "--clean-stops", "0.2", "--outage-every-s", "4",
                            "--drain-timeout-s", "30", "--timeout-s", "90", *extra])
    result = asyncio.run(soak.soak(opts))
    report = soak.render(result)
    assert result["error"] is None, report
    assert result["kills"] >= 5, report
    assert result["transactions"] > 0 and result["stop_messages"] > 0, report
    assert result["lost"] == 0, report
    assert result["duplicated"] == 0, report
    assert not [v for v in result["violations"] if ": meter:" in v], report
    assert result["violations"] == [], report


def test_kill_9_at_random_points_loses_and_duplicates_nothing():
    run_small_soak()


def test_kill_9_at_random_points_on_201_loses_and_duplicates_nothing():
    run_small_soak("--ocpp", "2.0.1")


class FakeHandle:
    """What a ledger reads of the central system's station handle."""

    def __init__(self) -> None:
        self.connections = 1
        self.messages = []


def test_redelivery_rule():
    """A repeat is a redelivery only if the station sent nothing else over the first copy's connection."""
    ledger = soak.Ledger("CP")
    ledger.handle = FakeHandle()
    start = {"connectorId": 1, "idTag": "T1", "meterStart": 10, "timestamp": "2026-01-01T00:00:00.000Z"}
    assert ledger._on_start(start)["transactionId"] == 1
    ledger.handle.connections = 2  # killed before recording the answer: sent again after the reconnect
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


def event_201(event_type: str, tid: str, seq_no: int, wh: float | None = None, tag: str | None = None,
              t: str = "2026-01-01T00:00:00.000Z") -> dict:
    """A TransactionEventRequest as the agent sends it (the parts the ledger reads)."""
    payload = {"eventType": event_type, "timestamp": t, "triggerReason": "MeterValuePeriodic", "seqNo": seq_no,
               "transactionInfo": {"transactionId": tid}, "offline": False, "evse": {"id": 1, "connectorId": 1}}
    if wh is not None:
        payload["meterValue"] = [{"timestamp": t, "sampledValue": [
            {"value": wh, "measurand": "Energy.Active.Import.Register", "unitOfMeasure": {"unit": "Wh"}}]}]
    if tag is not None:
        payload["idToken"] = {"idToken": tag, "type": "ISO14443"}
    return payload


def ledger_201() -> soak.Ledger201:
    ledger = soak.Ledger201("CP")
    ledger.handle = FakeHandle()
    ledger.new_life()
    return ledger


def test_201_ledger_gap_or_missing_end_is_lost():
    ledger = ledger_201()
    for payload in (event_201("Started", "A", 0, 100, "T1"), event_201("Updated", "A", 2, 110),
                    event_201("Ended", "A", 3, 120), event_201("Started", "B", 0, 200, "T2")):
        ledger._on_event(payload)
    assert ledger.open_ids() == {"B"} and ledger.started_tags() == {"T1", "T2"}
    r = soak.analyze(ledger, seen_tags={"T1", "T2", "T3"})
    text = "\n".join(r["violations"])
    assert r["lost"] == 3, text  # A's seqNo 1, B's end, T3 never reported
    assert "seqNo [1] never received" in text and "B (T2 on EVSE 1) never got an Ended event" in text
    assert r["duplicated"] == 0 and r["transactions"] == 2, text


def test_201_ledger_repeat_is_duplicate_unless_redelivery():
    ledger = ledger_201()
    ledger._on_event(event_201("Started", "A", 0, 100, "T1"))
    ledger.handle.connections = 2  # a link flap before the answer was recorded: sent again
    ledger._on_event(event_201("Started", "A", 0, 100, "T1"))
    ledger._on_event(event_201("Updated", "A", 1, 110))
    ledger._on_event(event_201("Ended", "A", 2, 120))
    ledger._on_event(event_201("Ended", "A", 2, 120))  # same connection, nothing in between: a retry
    ledger.new_life()  # kill -9: an Updated's confirmation had not reached the journal
    ledger.handle.connections = 3
    ledger._on_event(event_201("Updated", "A", 1, 110))
    ledger._on_event(event_201("Ended", "A", 2, 120))  # nothing over connection 2 after its copy there
    r = soak.analyze(ledger)
    assert r["violations"] == [], r["violations"]
    assert (r["redelivered_starts"], r["redelivered_stops"], r["redelivered_meter_values"]) == (1, 2, 1)
    ledger._on_event(event_201("Started", "B", 0, 120, "T2"))
    ledger._on_event(event_201("Ended", "A", 2, 120))  # the agent had moved on (B's start): a duplicate
    ledger._on_event(event_201("Updated", "A", 1, 110))  # no restart since its last copy: a duplicate
    ledger._on_event(event_201("Ended", "B", 1, 130))
    ledger._on_event(event_201("Updated", "A", 1, 111))  # another event under a seqNo already used
    r = soak.analyze(ledger)
    text = "\n".join(r["violations"])
    assert r["duplicated"] == 3 and r["lost"] == 0, text
    assert "seqNo 2 sent again after the agent had moved on" in text and "two different events with seqNo 1" in text


def test_201_ledger_register_going_backwards_is_a_meter_violation():
    ledger = ledger_201()
    for payload in (event_201("Started", "A", 0, 100, "T1"), event_201("Updated", "A", 1, 150),
                    event_201("Updated", "A", 2, 140), event_201("Ended", "A", 3, 160),
                    event_201("Started", "B", 0, 200.4, "T2"), event_201("Ended", "B", 1, 200),  # rounded to Wh
                    event_201("Started", "C", 0, 300, "T3"), event_201("Ended", "C", 1, 290)):
        ledger._on_event(payload)
    r = soak.analyze(ledger)
    meter = [v for v in r["violations"] if ": meter:" in v]
    assert len(meter) == 2 and r["lost"] == 0 and r["duplicated"] == 0, r["violations"]
    assert "transaction A: register 140.0 Wh at seqNo 2 below 150.0 Wh at seqNo 1" in meter[0]
    assert "transaction C: Ended register 290.0 < Started register 300.0" in meter[1]
