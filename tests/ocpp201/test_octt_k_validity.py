"""OCPP 2.0.1 charging profiles in time (K01): a Recurring profile (TC_K_19), validFrom
(TC_K_21), validTo (TC_K_22) and startSchedule (TC_K_23), over the wire against the test
central system serving only ``ocpp2.0.1``, in virtual time.

Each test follows its OCTT case's steps (spec/OCPP-2.0.1_edition3_part6-testcases.txt)
and checks its tool validations: the SetChargingProfile answer and the composite
schedule the station reports (``x``, the time between SetChargingProfile and the
composite's scheduleStart, is 0 in virtual time). Where the profile matters, the limit
is also checked where it acts: on the simulated EVSE controller of a running
transaction, before and after each moment the profile's time fields name.
"""

import pytest

from agent.core.isotime import parse_datetime
from tests.harness import hw, quiet, until
from tests.ocpp201.octt201 import errors, harness, received, wait_connector
from tests.ocpp201.test_smart_charging import (LOCAL_LIMIT_A, UNITS, amps, charging_201, composite, cp,
                                               periods_of, set_profile)
from hal.runtime.clock import VirtualClock

MIDNIGHT = 1_767_225_600.0  # 2026-01-01T00:00:00Z, a Thursday
DAY_S, WEEK_S = 86400, 7 * 86400
QUIET_VARIABLES = [  # long virtual stretches without a meter TransactionEvent or a Heartbeat every minute
    {"component": {"name": "SampledDataCtrlr"}, "variable": {"name": "TxUpdatedInterval"}, "attributeValue": "0"},
    {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}, "attributeValue": "0"}]


async def quiet_station(h) -> None:
    got = await h.cs.call("SetVariables", setVariableData=QUIET_VARIABLES)
    assert [r["attributeStatus"] for r in got["setVariableResult"]] == ["Accepted", "Accepted"]


async def advance_to(h, t: float) -> None:
    """Virtual time on to wall time ``t``, then let the station act on it."""
    await h.clock.advance(t - h.clock.time())
    await quiet(h)


async def limit_settles(h, amps_expected: float) -> None:
    await until(lambda: hw(h)["current_limit_a"] == pytest.approx(amps_expected, abs=1e-3),
                what="current limit %.3f A" % amps_expected)


# ---------------------------------------------------------------------- TC_K_19 Recurring

@pytest.mark.parametrize("unit, scale", UNITS)
async def test_tc_k_19_recurring_daily_profile_repeats_on_the_hardware(tmp_path, unit, scale):
    """TC_K_19_CS: chargingProfileKind Recurring, recurrencyKind Daily: Accepted (step 2); the
    schedule starts again every day: 16 A from 00:00, 8 A from 06:00, 16 A again the next
    00:00, on the EVSE controller of a running transaction and in the composite schedule."""
    clock = VirtualClock(start=MIDNIGHT + 1000.0)
    async with harness(tmp_path, clock=clock) as h:
        await wait_connector(h, "Available")
        await quiet_station(h)
        await charging_201(h)
        profile = cp(19, "TxDefaultProfile", ((0, 16), (6 * 3600, 8)), unit=unit, kind="Recurring",
                     recurrencyKind="Daily", start=MIDNIGHT - DAY_S)  # started yesterday: recurring today
        assert await set_profile(h, 1, profile) == {"status": "Accepted"}
        await limit_settles(h, amps(16, unit))
        # composite from now (00:16:40): 16 until 06:00, then 8
        s = await composite(h, 1, 6 * 3600, unit)
        assert periods_of(s, scale) == [(0, 16), (6 * 3600 - 1000, 8)]
        await advance_to(h, MIDNIGHT + 6 * 3600 - 1)
        assert hw(h)["current_limit_a"] == pytest.approx(amps(16, unit), abs=1e-3)
        await advance_to(h, MIDNIGHT + 6 * 3600 + 1)
        await limit_settles(h, amps(8, unit))
        await advance_to(h, MIDNIGHT + DAY_S - 1)
        assert hw(h)["current_limit_a"] == pytest.approx(amps(8, unit), abs=1e-3)
        await advance_to(h, MIDNIGHT + DAY_S + 1)  # the next day: the schedule from its start again
        await limit_settles(h, amps(16, unit))
        s = await composite(h, 1, 7 * 3600, unit)
        assert periods_of(s, scale) == [(0, 16), (6 * 3600 - 1, 8)]
        assert not errors(h)


async def test_tc_k_19_recurring_weekly_profile_repeats_in_the_composite_schedule(tmp_path):
    """TC_K_19_CS with recurrencyKind Weekly: Accepted; the composite schedule starts the
    schedule again a week after its startSchedule (6 A on its first day, 10 A after)."""
    clock = VirtualClock(start=MIDNIGHT + 3600.0)
    async with harness(tmp_path, clock=clock) as h:
        await wait_connector(h, "Available")
        profile = cp(20, "ChargingStationMaxProfile", ((0, 6), (DAY_S, 10)), kind="Recurring",
                     recurrencyKind="Weekly", start=MIDNIGHT)
        assert await set_profile(h, 0, profile) == {"status": "Accepted"}
        s = await composite(h, 0, DAY_S, "A")
        assert periods_of(s) == [(0, 6), (DAY_S - 3600, 10)]
        await h.clock.advance(WEEK_S - 2 * 3600)  # one hour before the week is over
        s = await composite(h, 0, 2 * 3600, "A")
        assert periods_of(s) == [(0, 10), (3600, 6)]
        assert not errors(h)


# ---------------------------------------------------------------------- TC_K_21 validFrom

@pytest.mark.parametrize("unit, scale", UNITS)
async def test_tc_k_21_profile_acts_from_valid_from(tmp_path, unit, scale):
    """TC_K_21_CS: a Relative TxDefaultProfile on EVSE 1 valid from now + 300 s (no
    validTo, no startSchedule): Accepted; GetCompositeSchedule (duration 400) has the
    local limit from 0 and the profile's 6 from 300 - x; on the hardware the limit drops
    to 6 at validFrom and not before."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        await quiet_station(h)
        await charging_201(h)
        t0 = h.clock.time()
        profile = cp(21, "TxDefaultProfile", unit=unit, kind="Relative", validFrom=_iso(t0 + 300))
        assert await set_profile(h, 1, profile) == {"status": "Accepted"}
        s = await composite(h, 1, 400, unit)
        (first_start, _local), (start_300, limit_300) = periods_of(s, scale)
        assert first_start == 0 and start_300 == 300 and limit_300 == 6.0
        assert hw(h)["current_limit_a"] == pytest.approx(LOCAL_LIMIT_A, abs=1e-3)
        await advance_to(h, t0 + 299)
        assert hw(h)["current_limit_a"] == pytest.approx(LOCAL_LIMIT_A, abs=1e-3)
        await advance_to(h, t0 + 301)
        await limit_settles(h, amps(6, unit))
        assert not errors(h)


# ---------------------------------------------------------------------- TC_K_22 validTo

@pytest.mark.parametrize("unit, scale", UNITS)
async def test_tc_k_22_profile_ends_at_valid_to(tmp_path, unit, scale):
    """TC_K_22_CS: an Absolute TxDefaultProfile on EVSE 0 (every EVSE), validFrom now -
    the time deviation, validTo now + 300 s, startSchedule now: Accepted; the composite
    schedule of EVSE 0 and of EVSE 1 (duration 400) is 6 from 0 (EVSE 0: 6 x the
    number of EVSEs) and the local limit from 300; on the hardware 6 A until validTo,
    then the local limit."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        await quiet_station(h)
        await charging_201(h)
        t0 = h.clock.time()
        evses = len(h.station.connectors)
        profile = cp(22, "TxDefaultProfile", unit=unit, start=t0, validFrom=_iso(t0 - 10),
                     validTo=_iso(t0 + 300))
        assert await set_profile(h, 0, profile) == {"status": "Accepted"}
        for evse_id in range(0, evses + 1):
            s = await composite(h, evse_id, 400, unit)
            periods = periods_of(s, scale)
            assert periods[0] == (0, 6 * (evses if evse_id == 0 else 1))
            assert [p[0] for p in periods] == [0, 300]
            assert periods[1][1] > 6  # the local limit (not validated by the OCTT)
        await limit_settles(h, amps(6, unit))
        await advance_to(h, t0 + 299)
        assert hw(h)["current_limit_a"] == pytest.approx(amps(6, unit), abs=1e-3)
        await advance_to(h, t0 + 301)
        await limit_settles(h, LOCAL_LIMIT_A)
        assert not errors(h)


# ---------------------------------------------------------------------- TC_K_23 startSchedule

@pytest.mark.parametrize("unit, scale", UNITS)
async def test_tc_k_23_profile_acts_from_start_schedule(tmp_path, unit, scale):
    """TC_K_23_CS: an Absolute TxDefaultProfile on EVSE 1, validFrom now + 50 s, validTo now +
    400 s, startSchedule now + 60 s (time deviation 0): Accepted; the composite schedule
    (duration 300) has the local limit from 0 and 6 from 60 - x; on the hardware the
    limit stays until startSchedule (valid from 50 s, but its schedule has not begun),
    is 6 from then on and lifts at validTo."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        await quiet_station(h)
        await charging_201(h)
        t0 = h.clock.time()
        profile = cp(23, "TxDefaultProfile", unit=unit, start=t0 + 60, validFrom=_iso(t0 + 50),
                     validTo=_iso(t0 + 400))
        assert await set_profile(h, 1, profile) == {"status": "Accepted"}
        s = await composite(h, 1, 300, unit)
        periods = periods_of(s, scale)
        assert [p[0] for p in periods] == [0, 60] and periods[0][1] > 6 and periods[1][1] == 6
        await advance_to(h, t0 + 55)  # valid, but before startSchedule
        assert hw(h)["current_limit_a"] == pytest.approx(LOCAL_LIMIT_A, abs=1e-3)
        await advance_to(h, t0 + 61)
        await limit_settles(h, amps(6, unit))
        await advance_to(h, t0 + 399)
        assert hw(h)["current_limit_a"] == pytest.approx(amps(6, unit), abs=1e-3)
        await advance_to(h, t0 + 401)
        await limit_settles(h, LOCAL_LIMIT_A)
        assert not received(h, "NotifyChargingLimit") and not errors(h)


def _iso(t: float) -> str:
    from agent.core.isotime import format_datetime
    return format_datetime(t)


assert parse_datetime(_iso(MIDNIGHT)) == MIDNIGHT
