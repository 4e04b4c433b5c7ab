"""OCTT 2.0.1 block J, meter values: clock-aligned values (AlignedDataCtrlr) as MeterValues
outside transactions and as TransactionEvent Updated (MeterValueClock) during one, sampled
values (SampledDataCtrlr) in the Started, Updated and Ended events, and the values kept for
the Ended event at their own intervals (TxEndedInterval). The agent on the simulated board
(virtual time) against the test central system; every frame schema-checked.
"""

from hal.runtime.clock import VirtualClock
from tests.harness import assert_charging_hw, calls_from_agent, epoch, hw, quiet, until
from tests.ocpp201.octt201 import TAG, errors, harness, local_start, received, tx_events, wait_connector

MIDNIGHT = 1_767_225_600.0  # 2026-01-01T00:00:00Z
REGISTER = "Energy.Active.Import.Register"


async def set_variables(h, *items) -> None:
    """SetVariables of (component, variable, value) items, every one Accepted."""
    got = await h.cs.call("SetVariables", setVariableData=[
        {"component": {"name": c}, "variable": {"name": v}, "attributeValue": value} for c, v, value in items])
    assert [r["attributeStatus"] for r in got["setVariableResult"]] == ["Accepted"] * len(items), got


def measurands(meter_value: dict) -> list:
    """(measurand, phase) of each sampledValue; an absent measurand is the register (the default)."""
    return [(s.get("measurand", REGISTER), s.get("phase")) for s in meter_value["sampledValue"]]


def contexts(meter_value: dict) -> set:
    return {s.get("context", "Sample.Periodic") for s in meter_value["sampledValue"]}


VOLTAGE = [("Voltage", "L1-N"), ("Voltage", "L2-N"), ("Voltage", "L3-N")]


async def energy_transfer_started(h) -> dict:
    """Reusable state EnergyTransferStarted (a local start, the EV drawing): the Started event."""
    started = await local_start(h)
    await until(lambda: hw(h)["power_w"] > 0, clock=h.clock, step_s=1)
    assert_charging_hw(h)
    return started


async def test_tc_j_01_clock_aligned_meter_values_no_transaction(tmp_path):
    """AlignedDataCtrlr.Interval 900 s, Measurands register, power and voltage: a MeterValues
    per EVSE at every quarter hour (timestamps on the boundary, all the same per boundary),
    context Sample.Clock, one element per configured measurand; none in between."""
    clock = VirtualClock(start=MIDNIGHT + 1000.25)
    async with harness(tmp_path, clock=clock, board={"evse": {"connectors": 2}}) as h:
        await wait_connector(h, "Available", evse_id=2)
        await set_variables(h, ("AlignedDataCtrlr", "Measurands", "%s,Power.Active.Import,Voltage" % REGISTER),
                            ("AlignedDataCtrlr", "Interval", "900"))
        m = h.mark()
        boundaries = [MIDNIGHT + 1800, MIDNIGHT + 2700, MIDNIGHT + 3600]
        for at in boundaries:
            n = h.mark()
            await h.clock.advance(at - h.clock.time() - 1)
            await quiet(h)
            assert "MeterValues" not in calls_from_agent(h, n)
            await h.clock.advance(1)
            await h.cs.wait_for("MeterValues", lambda p: p["evseId"] == 2, start_index=n)
        sent = received(h, "MeterValues", m)
        assert sorted((p["evseId"], epoch(p["meterValue"][0]["timestamp"])) for p in sent) == sorted(
            (evse, at) for at in boundaries for evse in (1, 2))
        for p in sent:
            (mv,) = p["meterValue"]
            assert p["meterValue"][0]["sampledValue"][0]["context"] == "Sample.Clock"
            assert contexts(mv) == {"Sample.Clock"}
            assert measurands(mv) == [(REGISTER, None), ("Power.Active.Import", None)] + VOLTAGE
            assert mv["sampledValue"][1]["value"] == 0  # no EV: no power
        assert not tx_events(h) and not errors(h)


async def test_tc_j_02_clock_aligned_meter_values_transaction_ongoing(tmp_path):
    """During a transaction on EVSE 1 the clock-aligned values of EVSE 1 go as TransactionEvent
    Updated, triggerReason MeterValueClock, context Sample.Clock, at each boundary; the idle
    EVSE 2 still sends MeterValues with the same timestamp."""
    clock = VirtualClock(start=MIDNIGHT + 1000.25)
    async with harness(tmp_path, clock=clock, board={"evse": {"connectors": 2}}) as h:
        await wait_connector(h, "Available", evse_id=2)
        await set_variables(h, ("AlignedDataCtrlr", "Measurands", "%s,Current.Import" % REGISTER),
                            ("AlignedDataCtrlr", "Interval", "600"), ("SampledDataCtrlr", "TxUpdatedInterval", "0"))
        started = await energy_transfer_started(h)
        tx_id = started["transactionInfo"]["transactionId"]
        m = h.mark()
        boundaries = [MIDNIGHT + 1200, MIDNIGHT + 1800, MIDNIGHT + 2400]
        for at in boundaries:
            n = h.mark()
            await h.clock.advance(at - h.clock.time())
            await h.cs.wait_for("TransactionEvent", lambda p: p["triggerReason"] == "MeterValueClock", start_index=n)
            await h.cs.wait_for("MeterValues", start_index=n)
        clocked = [p for p in tx_events(h, m) if p["triggerReason"] == "MeterValueClock"]
        assert [epoch(p["meterValue"][0]["timestamp"]) for p in clocked] == boundaries
        for p in clocked:
            assert p["eventType"] == "Updated" and p["transactionInfo"]["transactionId"] == tx_id
            assert p["evse"]["id"] == 1
            (mv,) = p["meterValue"]
            assert mv["sampledValue"][0]["context"] == "Sample.Clock" and contexts(mv) == {"Sample.Clock"}
            assert measurands(mv) == [(REGISTER, None), ("Current.Import", "L1"), ("Current.Import", "L2"),
                                      ("Current.Import", "L3")]
            assert mv["sampledValue"][1]["value"] > 0  # the EV draws
        idle = received(h, "MeterValues", m)
        assert [(p["evseId"], epoch(p["meterValue"][0]["timestamp"])) for p in idle] == [(2, at) for at in boundaries]
        assert all(p["meterValue"][0]["sampledValue"][0]["context"] == "Sample.Clock" for p in idle)
        assert not any(p["triggerReason"] == "MeterValuePeriodic" for p in tx_events(h, m))  # TxUpdatedInterval 0
        assert not errors(h)


async def test_tc_j_03_clock_aligned_values_in_the_ended_event(tmp_path):
    """AlignedDataCtrlr.TxEndedInterval 300 s and TxEndedMeasurands (register, power), with no
    clock-aligned messages (Interval 0) and SampledDataCtrlr.TxEndedMeasurands empty: the Ended
    event holds one Sample.Clock meterValue per 5-minute boundary of the transaction, with the
    configured measurands."""
    clock = VirtualClock(start=MIDNIGHT + 100.5)
    async with harness(tmp_path, clock=clock) as h:
        await wait_connector(h, "Available")
        await set_variables(h, ("AlignedDataCtrlr", "Interval", "0"), ("AlignedDataCtrlr", "TxEndedInterval", "300"),
                            ("AlignedDataCtrlr", "TxEndedMeasurands", "%s,Power.Active.Import" % REGISTER),
                            ("SampledDataCtrlr", "TxEndedMeasurands", ""),
                            ("SampledDataCtrlr", "TxUpdatedInterval", "0"))
        await energy_transfer_started(h)
        m = h.mark()
        await h.clock.advance(MIDNIGHT + 1000 - h.clock.time())  # the configured transaction duration
        await quiet(h)
        assert not received(h, "MeterValues", m)  # Interval 0: nothing sent meanwhile
        assert not [p for p in tx_events(h, m) if "meterValue" in p]
        h.sim.swipe(TAG)
        ended = await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Ended", start_index=m)
        clocked = [mv for mv in ended["meterValue"] if contexts(mv) == {"Sample.Clock"}]
        assert [epoch(mv["timestamp"]) for mv in clocked] == [MIDNIGHT + 300, MIDNIGHT + 600, MIDNIGHT + 900]
        for mv in clocked:
            assert mv["sampledValue"][0]["context"] == "Sample.Clock"
            assert measurands(mv) == [(REGISTER, None), ("Power.Active.Import", None)]
        others = [mv for mv in ended["meterValue"] if mv not in clocked]
        assert all(contexts(mv) == {"Transaction.End"} for mv in others)  # only the end register besides
        assert not errors(h)


async def test_tc_j_07_sampled_values_in_the_started_event(tmp_path):
    """SampledDataCtrlr.TxStartedMeasurands (register, power, current offered): the Started
    event's meterValue, context Transaction.Begin, one element per measurand."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        await set_variables(h, ("SampledDataCtrlr", "TxStartedMeasurands",
                                "%s,Power.Active.Import,Current.Offered" % REGISTER))
        got = await h.cs.call("GetVariables", getVariableData=[
            {"component": {"name": "SampledDataCtrlr"}, "variable": {"name": "TxStartedMeasurands"}}])
        assert got["getVariableResult"][0]["attributeValue"] == "%s,Power.Active.Import,Current.Offered" % REGISTER
        started = await energy_transfer_started(h)
        (mv,) = started["meterValue"]
        assert mv["sampledValue"][0]["context"] == "Transaction.Begin" and contexts(mv) == {"Transaction.Begin"}
        assert measurands(mv) == [(REGISTER, None), ("Power.Active.Import", None), ("Current.Offered", None)]
        assert mv["sampledValue"][0]["value"] == h.station.connector(1).transaction.meter_start_wh
        assert epoch(mv["timestamp"]) == epoch(started["timestamp"])
        assert not errors(h)


async def test_tc_j_09_sampled_values_in_updated_events(tmp_path):
    """SampledDataCtrlr.TxUpdatedInterval 30 s, TxUpdatedMeasurands register, power, voltage:
    Updated events, triggerReason MeterValuePeriodic, context Sample.Periodic, 30 s apart."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        await set_variables(h, ("SampledDataCtrlr", "TxUpdatedInterval", "30"),
                            ("SampledDataCtrlr", "TxUpdatedMeasurands", "%s,Power.Active.Import,Voltage" % REGISTER))
        started = await energy_transfer_started(h)
        m = h.mark()
        await until(lambda: len([p for p in tx_events(h, m) if p["triggerReason"] == "MeterValuePeriodic"]) >= 3,
                    clock=h.clock, step_s=5)
        periodic = [p for p in tx_events(h, m) if p["triggerReason"] == "MeterValuePeriodic"]
        stamps = [epoch(p["meterValue"][0]["timestamp"]) for p in periodic]
        assert [b - a for a, b in zip(stamps, stamps[1:])] == [30.0] * (len(stamps) - 1)
        for p in periodic:
            assert p["eventType"] == "Updated"
            assert p["transactionInfo"]["transactionId"] == started["transactionInfo"]["transactionId"]
            (mv,) = p["meterValue"]
            assert mv["sampledValue"][0]["context"] == "Sample.Periodic" and contexts(mv) == {"Sample.Periodic"}
            assert measurands(mv) == [(REGISTER, None), ("Power.Active.Import", None)] + VOLTAGE
        registers = [p["meterValue"][0]["sampledValue"][0]["value"] for p in periodic]
        assert registers == sorted(registers) and registers[-1] > registers[0]  # energy flows
        assert not errors(h)


async def test_tc_j_10_sampled_values_in_the_ended_event(tmp_path):
    """SampledDataCtrlr.TxEndedInterval 20 s (its own: TxUpdatedInterval 0 sends no Updated
    values), TxEndedMeasurands register and current import, AlignedDataCtrlr.TxEndedMeasurands
    empty: the Ended event holds Transaction.Begin, a Sample.Periodic value every 20 s and
    Transaction.End, each with the configured measurands."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        await set_variables(h, ("SampledDataCtrlr", "TxUpdatedInterval", "0"),
                            ("SampledDataCtrlr", "TxEndedInterval", "20"),
                            ("SampledDataCtrlr", "TxEndedMeasurands", "%s,Current.Import" % REGISTER),
                            ("AlignedDataCtrlr", "TxEndedMeasurands", ""))
        started = await energy_transfer_started(h)
        t0 = epoch(started["timestamp"])
        m = h.mark()
        await h.clock.advance(t0 + 70 - h.clock.time())
        await quiet(h)
        assert not [p for p in tx_events(h, m) if "meterValue" in p]  # TxUpdatedInterval 0
        t_stop = h.clock.time()
        h.sim.swipe(TAG)
        ended = await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Ended", start_index=m)
        values = ended["meterValue"]
        assert [mv["sampledValue"][0]["context"] for mv in values] == (
            ["Transaction.Begin"] + ["Sample.Periodic"] * 3 + ["Transaction.End"])
        assert [epoch(mv["timestamp"]) for mv in values] == [t0, t0 + 20, t0 + 40, t0 + 60, t_stop]
        currents = [("Current.Import", "L1"), ("Current.Import", "L2"), ("Current.Import", "L3")]
        for mv in values[1:]:
            assert measurands(mv) == [(REGISTER, None)] + currents
        assert values[0]["sampledValue"][0]["measurand"] == REGISTER
        assert values[2]["sampledValue"][1]["value"] > 0  # the EV draws
        assert not errors(h)


async def test_tx_ended_interval_follows_tx_updated_interval_until_set(tmp_path):
    """SampledDataCtrlr.TxEndedInterval shows TxUpdatedInterval (1.6 has one interval for both)
    until written; written, it keeps its own value."""
    async with harness(tmp_path) as h:
        await set_variables(h, ("SampledDataCtrlr", "TxUpdatedInterval", "45"))

        async def get(variable: str) -> str:
            got = await h.cs.call("GetVariables", getVariableData=[
                {"component": {"name": "SampledDataCtrlr"}, "variable": {"name": variable}}])
            return got["getVariableResult"][0]["attributeValue"]

        assert await get("TxEndedInterval") == "45"
        await set_variables(h, ("SampledDataCtrlr", "TxEndedInterval", "15"))
        await set_variables(h, ("SampledDataCtrlr", "TxUpdatedInterval", "50"))
        assert (await get("TxUpdatedInterval"), await get("TxEndedInterval")) == ("50", "15")
        assert h.station.settings.get("sample_end_interval_s") == 15


async def test_tc_j_07_started_values_of_a_start_while_offline_survive_a_restart(tmp_path):
    """The TxStartedMeasurands of a transaction started offline are journaled with its start:
    after a reboot the Started event (offline true) still carries them, Transaction.Begin."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        await set_variables(h, ("SampledDataCtrlr", "TxStartedMeasurands", "%s,Current.Offered" % REGISTER))
        await h.cs.call("SendLocalList", versionNumber=1, updateType="Full", localAuthorizationList=[
            {"idToken": {"idToken": TAG, "type": "ISO14443"}, "idTokenInfo": {"status": "Accepted"}}])
        port = await h.go_offline()
        h.sim.plug(1)
        h.sim.swipe(TAG)  # known from the local list: starts offline
        await until(lambda: h.station.connector(1).transaction is not None, clock=h.clock, step_s=1)
        (start,) = [e for e in h.station.outbox.entries() if e.kind == "start"]
        assert [s.measurand for s in start.samples[0].samples] == [REGISTER, "Current.Offered"]
        await h.restart_agent()
        m = h.mark()
        await h.go_online(port)
        started = await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Started", start_index=m)
        assert started["offline"] is True
        (mv,) = started["meterValue"]
        assert contexts(mv) == {"Transaction.Begin"}
        assert measurands(mv) == [(REGISTER, None), ("Current.Offered", None)]
        assert not errors(h)


async def test_tc_j_08_started_before_the_cable_carries_the_begin_values(tmp_path):
    """TC_J_08_CS: TxStartPoint Authorized: the transaction starts at the badge, before the cable.
    The first TransactionEvent with an evse (on this one-EVSE station the EVSE is known at the
    badge: the Started event) has a meterValue with context Transaction.Begin and one element per
    TxStartedMeasurands; then the EV is plugged in and energy flows (EnergyTransferStarted)."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        await set_variables(h, ("TxCtrlr", "TxStartPoint", "Authorized"),
                            ("SampledDataCtrlr", "TxStartedMeasurands", "%s,Power.Active.Import" % REGISTER))
        m = h.mark()
        h.sim.swipe(TAG)
        started = await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Started", start_index=m)
        assert not hw(h)["plugged"] and hw(h)["power_w"] == 0  # before the cable
        with_evse = [p for p in tx_events(h, m) if p.get("evse")]
        assert with_evse and with_evse[0]["seqNo"] == started["seqNo"] == 0
        (mv,) = with_evse[0]["meterValue"]
        assert mv["sampledValue"][0]["context"] == "Transaction.Begin" and contexts(mv) == {"Transaction.Begin"}
        assert measurands(mv) == [(REGISTER, None), ("Power.Active.Import", None)]
        h.sim.plug(1)
        await until(lambda: hw(h)["power_w"] > 0, clock=h.clock, step_s=1, what="energy flowing")
        assert_charging_hw(h)
        assert not errors(h)


async def test_tc_j_06_send_during_idle_no_clock_aligned_values_during_a_transaction(tmp_path):
    """TC_J_06_CS: AlignedDataCtrlr.SendDuringIdle true: clock-aligned MeterValues while idle
    (step 1), none at the boundaries during the transaction (step 4: no MeterValueClock event, no
    MeterValues), and again once it ended and the EV left (step 7)."""
    clock = VirtualClock(start=MIDNIGHT + 1000.25)
    async with harness(tmp_path, clock=clock) as h:
        await wait_connector(h, "Available")
        await set_variables(h, ("AlignedDataCtrlr", "Interval", "600"), ("AlignedDataCtrlr", "SendDuringIdle", "true"),
                            ("SampledDataCtrlr", "TxUpdatedInterval", "0"))
        m = h.mark()
        await h.clock.advance(MIDNIGHT + 1200 - h.clock.time())
        idle = await h.cs.wait_for("MeterValues", start_index=m)
        assert epoch(idle["meterValue"][0]["timestamp"]) == MIDNIGHT + 1200
        await energy_transfer_started(h)
        during = h.mark()
        await h.clock.advance(MIDNIGHT + 2400 + 5 - h.clock.time())  # two boundaries in the transaction
        await quiet(h)
        assert received(h, "MeterValues", during) == []
        assert not [p for p in tx_events(h, during) if p["triggerReason"] == "MeterValueClock"]
        h.sim.swipe(TAG)
        await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Ended", start_index=during)
        h.sim.unplug(1)
        await wait_connector(h, "Available", start=during)
        after = h.mark()
        await h.clock.advance(MIDNIGHT + 3000 - h.clock.time())
        again = await h.cs.wait_for("MeterValues", start_index=after)
        assert epoch(again["meterValue"][0]["timestamp"]) == MIDNIGHT + 3000
        assert not errors(h)
