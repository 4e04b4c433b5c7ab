"""OCTT 1.6 SmartCharging scenarios and smart charging end to end.

The real agent on the simulated board against the test central system on
loopback, in virtual time. Each OCTT test names its ID and follows the steps
and tool validations of spec/octt-1.6-test-case-document-2024-04.txt §2.22
with "Configured max time deviation" 0 (virtual time stands still unless a
test moves it); where the document calls the time between the second
SetChargingProfile and the scheduleStart *x*, the test advances the clock by
a non-zero x so the shifted startPeriods are checked. The end-to-end tests
check what the hardware does: the limit at the simulated EVSE controller, the
EV's power, SuspendedEVSE below the controller's 6 A minimum, the limit
changing exactly at a period boundary, and profiles surviving a restart.
"""

import json
import os

import pytest
from ocpp.exceptions import PropertyConstraintViolationError

from agent.core.isotime import format_datetime, parse_datetime
from hal.sim_control import send_command
from tests.harness import TAG, TX_ID, AgentHarness, fixed_transaction_id, hw, reach_charging, statuses

VOLTAGE_V = 230.0
PHASES = 3
LOCAL_LIMIT_A = 32.0  # the simulated board's rating
UNITS = [("A", 1), ("W", 1000)]  # <Configured chargingRateUnit>: "if W, the limit field is multiplied by 1000"


# ---------------------------------------------------------------------- helpers

def profile(pid: int, purpose: str, stack: int, periods, *, unit: str = "A", start: float | None = None,
            duration: int | None = None, kind: str = "Absolute", valid: tuple | None = None,
            transaction_id: int | None = None, phases: int | None = PHASES, **extra) -> dict:
    """A csChargingProfiles object; ``periods`` are (startPeriod, limit) in A (x1000 for W)."""
    scale = 1000 if unit == "W" else 1
    sch = {"chargingRateUnit": unit,
           "chargingSchedulePeriod": [dict({"startPeriod": s, "limit": round(lim * scale, 1)},
                                           **({"numberPhases": phases} if phases else {}))
                                      for s, lim in periods]}
    if start is not None:
        sch["startSchedule"] = format_datetime(start)
    if duration is not None:
        sch["duration"] = duration
    sch.update(extra.pop("schedule", {}))
    cp = {"chargingProfileId": pid, "stackLevel": stack, "chargingProfilePurpose": purpose,
          "chargingProfileKind": kind, "chargingSchedule": sch}
    if valid is not None:
        cp["validFrom"], cp["validTo"] = format_datetime(valid[0]), format_datetime(valid[1])
    if transaction_id is not None:
        cp["transactionId"] = transaction_id
    cp.update(extra)
    return cp


async def set_profile(h, connector_id: int, cp: dict, expect: str = "Accepted") -> None:
    reply = await h.cs.call("SetChargingProfile", connectorId=connector_id, csChargingProfiles=cp)
    assert reply == {"status": expect}, (reply, h.station.charging_profiles.last_rejection)


async def composite(h, connector_id: int, duration: int, unit: str | None = None) -> dict:
    """GetCompositeSchedule, checked against the OCTT validations common to every scenario."""
    req = {"connectorId": connector_id, "duration": duration}
    if unit is not None:
        req["chargingRateUnit"] = unit
    conf = await h.cs.call("GetCompositeSchedule", **req)
    assert conf["status"] == "Accepted" and conf["connectorId"] == connector_id, conf
    sch = conf["chargingSchedule"]
    assert sch["duration"] == duration
    if unit is not None:
        assert sch["chargingRateUnit"] == unit
    # "Between startSchedule and the current time should be equal or fewer seconds than <Max Time Deviation>"
    assert abs(parse_datetime(conf["scheduleStart"]) - h.clock.time()) <= 1
    assert sch["startSchedule"] == conf["scheduleStart"]
    return conf


def periods_of(conf: dict, scale: int = 1) -> list:
    """[(startPeriod, limit in A or kW)] of a GetCompositeSchedule.conf."""
    return [(p["startPeriod"], p["limit"] / scale) for p in conf["chargingSchedule"]["chargingSchedulePeriod"]]


def power_at(current_a: float) -> float:
    return round(current_a * VOLTAGE_V * PHASES, 3)


def amps(limit: float, unit: str) -> float:
    """The current per phase of a limit in A, or in kW (the test's W limits / 1000) over 3 phases at 230 V."""
    return limit if unit == "A" else limit * 1000 / (VOLTAGE_V * PHASES)


async def charging(h, connector_id: int = 1, charging_profile: dict | None = None, tx_id: int = TX_ID) -> int:
    """The OCTT reusable state Charging: plug in, RemoteStartTransaction (optionally
    with a chargingProfile), StartTransaction answered with ``tx_id``, Charging. Returns the transactionId."""
    fixed_transaction_id(h, tx_id)
    await reach_charging(h, connector_id, charging_profile=charging_profile)
    return tx_id


def record_limits(h, connector_id: int = 1) -> list:
    """Instrument the hal boundary: every set_current_limit on the simulated
    controller as (virtual time, amperes)."""
    evse = h.sim.connectors[connector_id - 1].evse
    calls = []
    real = evse.set_current_limit

    async def recording(current_a: float) -> None:
        calls.append((h.clock.time(), float(current_a)))
        await real(current_a)

    evse.set_current_limit = recording
    return calls


# ---------------------------------------------------------------------- OCTT 2.22.1 Central Smart Charging

@pytest.mark.parametrize("unit, scale", UNITS)
async def test_tc_056_tx_default_profile(tmp_path, unit, scale):
    """TC_056_CS Central Smart Charging - TxDefaultProfile."""
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        now = h.clock.time()
        # Steps 1-2: SetChargingProfile TxDefaultProfile, Absolute, limit 6 A / 6000 W -> Accepted.
        await set_profile(h, 1, profile(1, "TxDefaultProfile", 0, [(0, 6)], unit=unit, start=now, duration=300))
        # Steps 3-4: GetCompositeSchedule with the configured duration and unit.
        conf = await composite(h, 1, 300, unit)
        assert periods_of(conf, scale) == [(0, 6)]
        assert conf["chargingSchedule"]["chargingSchedulePeriod"][0]["numberPhases"] == PHASES
        assert hw(h)["current_limit_a"] == 0  # no transaction: nothing offered
        assert h.station.sim_status(1)["station_limit_a"] == pytest.approx(amps(6, unit), abs=1e-3)


@pytest.mark.parametrize("unit, scale", UNITS)
async def test_tc_057_tx_profile(tmp_path, unit, scale):
    """TC_057_CS Central Smart Charging - TxProfile."""
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        tx_id = await charging(h)  # reusable state Charging
        assert hw(h)["current_limit_a"] == LOCAL_LIMIT_A
        now = h.clock.time()
        await set_profile(h, 1, profile(2, "TxProfile", 0, [(0, 6)], unit=unit, start=now, duration=300,
                                        transaction_id=tx_id))
        conf = await composite(h, 1, 300, unit)
        assert periods_of(conf, scale) == [(0, 6)]
        s = hw(h)  # enforced: the EV draws 6 A, or 6 kW
        assert s["current_limit_a"] == amps(6, unit) and s["power_w"] == power_at(amps(6, unit)), s


async def test_tc_058_1_tx_profile_without_transaction(tmp_path):
    """TC_058_1_CS Central Smart Charging - No ongoing transaction: Rejected."""
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        await set_profile(h, 1, profile(3, "TxProfile", 0, [(0, 6)], start=h.clock.time(), transaction_id=TX_ID),
                          expect="Rejected")
        assert len(h.station.charging_profiles) == 0


async def test_tc_058_2_tx_profile_for_another_transaction(tmp_path):
    """TC_058_2_CS Central Smart Charging - Wrong transactionId: Rejected."""
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        tx_id = await charging(h)
        await set_profile(h, 1, profile(4, "TxProfile", 0, [(0, 6)], start=h.clock.time(),
                                        transaction_id=tx_id + 1), expect="Rejected")
        assert len(h.station.charging_profiles) == 0
        assert hw(h)["current_limit_a"] == LOCAL_LIMIT_A  # nothing changed at the hardware


@pytest.mark.parametrize("unit, scale", UNITS)
async def test_tc_082_tx_default_profile_with_ongoing_transaction(tmp_path, unit, scale):
    """TC_082_CS Central Smart Charging - TxDefaultProfile - with ongoing transaction."""
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        await charging(h)
        await set_profile(h, 1, profile(5, "TxDefaultProfile", 0, [(0, 6)], unit=unit, start=h.clock.time(),
                                        duration=300))
        conf = await composite(h, 1, 300, unit)
        assert periods_of(conf, scale) == [(0, 6)]
        s = hw(h)  # the running transaction follows the new default at once
        assert s["current_limit_a"] == amps(6, unit) and s["power_w"] == power_at(amps(6, unit)), s


# ---------------------------------------------------------------------- OCTT 2.22.2 - 2.22.4

@pytest.mark.parametrize("unit, scale", UNITS)
async def test_tc_066_get_composite_schedule(tmp_path, unit, scale):
    """TC_066_CS Get Composite Schedule: ChargePointMax, TxDefault and TxProfile combined."""
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        await charging(h)  # "The reusable state Charging is executed before the memory states"
        now = h.clock.time()
        valid = (now, now + 401)
        await set_profile(h, 0, profile(1, "ChargePointMaxProfile", 0, [(0, 10)], unit=unit, start=now,
                                        duration=86400))
        await set_profile(h, 1, profile(2, "TxDefaultProfile", 0, [(0, 6), (60, 10), (120, 8), (180, 15), (260, 8)],
                                        unit=unit, start=now, duration=300, valid=valid))
        await set_profile(h, 1, profile(3, "TxProfile", 0, [(0, 8), (50, 11), (140, 16), (200, 6), (240, 12)],
                                        unit=unit, start=now, duration=260, valid=valid))
        assert hw(h)["current_limit_a"] == amps(8, unit)
        x = 20
        await h.clock.advance(x)
        conf = await composite(h, 1, 400, unit)
        assert periods_of(conf, scale) == [(0, 8), (50 - x, 10), (200 - x, 6), (240 - x, 10)]


async def test_tc_067_clear_charging_profile(tmp_path):
    """TC_067_CS Clear Charging Profile: by id, by purpose and stack level, then all."""
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        now = h.clock.time()
        valid = (now, now + 401)
        await set_profile(h, 1, profile(1, "TxDefaultProfile", 1, [(0, 6), (60, 8), (200, 10)], start=now,
                                        duration=400))
        await set_profile(h, 1, profile(2, "TxDefaultProfile", 0, [(0, 7), (100, 9)], start=now, duration=400,
                                        valid=valid))
        await set_profile(h, 0, profile(3, "ChargePointMaxProfile", 0, [(0, 11), (200, 12)], start=now,
                                        duration=86400, valid=valid))
        x = 10
        await h.clock.advance(x)
        # Steps 1-4: clear by id (all other fields omitted).
        assert await h.cs.call("ClearChargingProfile", id=1) == {"status": "Accepted"}
        assert periods_of(await composite(h, 1, 350, "A")) == [(0, 7), (100 - x, 9)]
        # Steps 5-8: clear by purpose and stack level of the second profile.
        reply = await h.cs.call("ClearChargingProfile", chargingProfilePurpose="TxDefaultProfile", stackLevel=0)
        assert reply == {"status": "Accepted"}
        assert periods_of(await composite(h, 1, 350, "A")) == [(0, 11), (200 - x, 12)]
        # Steps 9-12: clear everything: the local limit of the charging station.
        assert await h.cs.call("ClearChargingProfile") == {"status": "Accepted"}
        assert periods_of(await composite(h, 1, 350, "A")) == [(0, LOCAL_LIMIT_A)]
        assert len(h.station.charging_profiles) == 0
        assert await h.cs.call("ClearChargingProfile") == {"status": "Unknown"}  # nothing left to clear


@pytest.mark.parametrize("unit, scale", UNITS)
async def test_tc_072_stacking_charging_profiles(tmp_path, unit, scale):
    """TC_072_CS Stacking Charging Profiles: a higher stack level until its duration ends."""
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        now = h.clock.time()
        valid = (now, now + 401)
        await set_profile(h, 1, profile(1, "TxDefaultProfile", 0, [(0, 6), (100, 8), (200, 10)], unit=unit,
                                        start=now, duration=400, valid=valid))
        await set_profile(h, 1, profile(2, "TxDefaultProfile", 1, [(0, 7), (100, 9)], unit=unit, start=now,
                                        duration=150, valid=valid))
        x = 5
        await h.clock.advance(x)
        conf = await composite(h, 1, 350, unit)
        assert periods_of(conf, scale) == [(0, 7), (100 - x, 9), (150 - x, 8), (200 - x, 10)]


# ---------------------------------------------------------------------- OCTT 2.22.5 Remote start with a profile

async def test_tc_059_remote_start_with_charging_profile(tmp_path):
    """TC_059_CS Remote Start Transaction with Charging Profile: the TxProfile is followed."""
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        cp = profile(7, "TxProfile", 0, [(0, 6), (120, 10)], kind="Relative", duration=300)
        tx_id = await charging(h, charging_profile=cp)  # step 1: Charging with a TxProfile
        s = hw(h)
        assert s["current_limit_a"] == 6 and s["power_w"] == power_at(6), s
        # The profile belongs to the transaction: bound to its id once StartTransaction.conf brought it.
        [entry] = h.station.charging_profiles.entries()  # the core's neutral form
        assert entry["evse_id"] == 1 and entry["transaction_id"] == tx_id
        # Steps 2-3: the composite schedule follows the profile (Relative: from the transaction start).
        conf = await composite(h, 1, 300, "A")
        assert periods_of(conf) == [(0, 6), (120, 10)]
        await h.clock.advance(120)
        assert hw(h)["current_limit_a"] == 10
        # The TxProfile ends with the transaction.
        m = h.mark()
        assert await h.cs.call("RemoteStopTransaction", transactionId=tx_id) == {"status": "Accepted"}
        await h.cs.wait_for("StopTransaction", start_index=m)
        assert len(h.station.charging_profiles) == 0


@pytest.mark.parametrize("purpose", ["TxDefaultProfile", "ChargePointMaxProfile"])
async def test_tc_060_remote_start_with_charging_profile_rejected(tmp_path, purpose):
    """TC_060_CS Remote Start Transaction with Charging Profile - Rejected (purpose not TxProfile)."""
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        m = h.mark()
        reply = await h.cs.call("RemoteStartTransaction", connectorId=1, idTag=TAG,
                                chargingProfile=profile(8, purpose, 0, [(0, 6)], kind="Relative"))
        assert reply == {"status": "Rejected"}
        await h.settle(0.1)
        assert h.received("StartTransaction", m) == [] and h.received("Authorize", m) == []
        assert len(h.station.charging_profiles) == 0


# ---------------------------------------------------------------------- errors, keys

async def test_malformed_requests_get_the_callerror_code_and_unknown_connector_is_rejected(tmp_path):
    async with AgentHarness(tmp_path, allowed_errors=("PropertyConstraintViolation",)) as h:
        await h.wait_status(1, "Available")
        with pytest.raises(PropertyConstraintViolationError):  # errata 3.39: unknown connectorId
            await h.cs.call("SetChargingProfile", connectorId=2,
                            csChargingProfiles=profile(1, "TxDefaultProfile", 0, [(0, 6)]))
        # Rejected, not an error: a first startPeriod other than 0 (errata 3.45), a stack level too high.
        await set_profile(h, 1, profile(1, "TxDefaultProfile", 0, [(10, 6)]), expect="Rejected")
        await set_profile(h, 1, profile(1, "TxDefaultProfile", 9, [(0, 6)]), expect="Rejected")
        await set_profile(h, 1, profile(1, "ChargePointMaxProfile", 0, [(0, 6)]), expect="Rejected")
        assert await h.cs.call("GetCompositeSchedule", connectorId=2, duration=60) == {"status": "Rejected"}
        # Connector 0: the grid view, ChargePointMax capped by the local limits.
        conf = await composite(h, 0, 60, "A")
        assert periods_of(conf) == [(0, LOCAL_LIMIT_A)]


async def test_smart_charging_keys_are_read_only_and_configure_the_store(tmp_path):
    ocpp = {"ChargeProfileMaxStackLevel": 3, "MaxChargingProfilesInstalled": 2,
            "ChargingScheduleAllowedChargingRateUnit": "Current"}
    async with AgentHarness(tmp_path, ocpp=ocpp) as h:
        await h.wait_status(1, "Available")
        conf = await h.cs.call("GetConfiguration", key=[
            "SupportedFeatureProfiles", "ChargeProfileMaxStackLevel", "ChargingScheduleAllowedChargingRateUnit",
            "ChargingScheduleMaxPeriods", "MaxChargingProfilesInstalled"])
        keys = {k["key"]: (k["readonly"], k["value"]) for k in conf["configurationKey"]}
        assert "SmartCharging" in keys["SupportedFeatureProfiles"][1].split(",")
        assert keys["ChargeProfileMaxStackLevel"] == (True, "3")
        assert keys["ChargingScheduleAllowedChargingRateUnit"] == (True, "Current")
        assert keys["ChargingScheduleMaxPeriods"] == (True, "24")
        assert keys["MaxChargingProfilesInstalled"] == (True, "2")
        reply = await h.cs.call("ChangeConfiguration", key="ChargeProfileMaxStackLevel", value="5")
        assert reply == {"status": "Rejected"}
        now = h.clock.time()
        await set_profile(h, 1, profile(1, "TxDefaultProfile", 4, [(0, 6)], start=now), expect="Rejected")
        await set_profile(h, 1, profile(1, "TxDefaultProfile", 0, [(0, 6)], unit="W", start=now), expect="Rejected")
        await set_profile(h, 1, profile(1, "TxDefaultProfile", 0, [(0, 6)], start=now))
        await set_profile(h, 1, profile(2, "TxDefaultProfile", 1, [(0, 6)], start=now))
        await set_profile(h, 1, profile(3, "TxDefaultProfile", 2, [(0, 6)], start=now), expect="Rejected")


# ---------------------------------------------------------------------- enforcement end to end

async def test_peer_sets_a_profile_and_the_ev_power_follows(tmp_path):
    """Through the sim control socket (``ocpp-agent sim status``): current_limit_a and power_w."""
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        sock = os.path.join(h.agent.config.data_dir, "sim.sock")
        await charging(h)
        [c] = (await send_command(sock, "status", []))["result"]["connectors"]
        assert c["current_limit_a"] == LOCAL_LIMIT_A and c["power_w"] == power_at(LOCAL_LIMIT_A)
        calls = record_limits(h)
        # In W: 11040 W over 3 phases at 230 V is 16 A per phase.
        await set_profile(h, 1, profile(1, "TxProfile", 0, [(0, 11.04)], unit="W", start=h.clock.time()))
        assert calls == [(h.clock.time(), 16.0)]  # at the controller before SetChargingProfile.conf
        [c] = (await send_command(sock, "status", []))["result"]["connectors"]
        assert c["current_limit_a"] == 16 and c["power_w"] == power_at(16) and c["station_limit_a"] == 16, c
        assert c["station_status"] == "charging"
        # A ChargePointMax below it caps the connector; clearing it restores the TxProfile's limit.
        await set_profile(h, 0, profile(2, "ChargePointMaxProfile", 0, [(0, 10)], start=h.clock.time()))
        assert hw(h)["power_w"] == power_at(10)
        assert await h.cs.call("ClearChargingProfile", id=2) == {"status": "Accepted"}
        assert hw(h)["power_w"] == power_at(16)
        assert [a for _t, a in calls] == [16.0, 10.0, 16.0]


async def test_local_limit_caps_the_profiles(tmp_path):
    async with AgentHarness(tmp_path, limits={"max_current_a": 13.0}) as h:
        await h.wait_status(1, "Available")
        await charging(h)
        assert hw(h)["current_limit_a"] == 13
        await set_profile(h, 1, profile(1, "TxDefaultProfile", 0, [(0, 20)], start=h.clock.time()))
        assert hw(h)["current_limit_a"] == 13
        await set_profile(h, 1, profile(1, "TxDefaultProfile", 0, [(0, 8)], start=h.clock.time()))
        assert hw(h)["current_limit_a"] == 8
        assert periods_of(await composite(h, 1, 60, "A")) == [(0, 8)]
        assert h.received("StopTransaction") == []


async def test_limit_changes_exactly_at_the_period_boundary(tmp_path):
    """A timer armed for the next boundary on the injected clock, not polling."""
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        await charging(h)
        calls = record_limits(h)
        t0 = h.clock.time()
        await set_profile(h, 1, profile(1, "TxProfile", 0, [(0, 16), (60, 10), (3600, 20)], start=t0,
                                        duration=7200))
        assert calls == [(t0, 16.0)]
        assert h.station._profile_timer_at[1] == t0 + 60  # one timer, for the next boundary
        await h.clock.advance(59.999)
        assert calls == [(t0, 16.0)] and hw(h)["current_limit_a"] == 16
        await h.clock.advance(0.001)
        assert calls == [(t0, 16.0), (t0 + 60, 10.0)]  # exactly at the boundary
        assert hw(h)["power_w"] == power_at(10)
        assert h.station._profile_timer_at[1] == t0 + 3600
        await h.clock.advance(3540)
        assert calls[-1] == (t0 + 3600, 20.0)
        await h.clock.advance(3600)  # the schedule's duration ends: no profile limit, the local one
        assert calls[-1] == (t0 + 7200, LOCAL_LIMIT_A)
        assert h.station._profile_timer_at.get(1) is None  # nothing left to wait for
        assert len(calls) == 4


async def test_a_stepped_wall_clock_re_evaluates_the_limit(tmp_path):
    """A board without an RTC sets its clock by NTP after boot: the limit follows within a minute."""
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        await charging(h)
        calls = record_limits(h)
        t0 = h.clock.time()
        await set_profile(h, 1, profile(1, "TxProfile", 0, [(0, 16), (7200, 10), (14400, 12)], start=t0))
        assert h.station._profile_timer_at[1] == t0 + 7200
        h.clock.step_wall(7200 + 30)  # now past the boundary, still 2 h away in monotonic time
        await h.clock.advance(60)
        assert calls[-1] == (t0 + 7200 + 30 + 60, 10.0) and hw(h)["current_limit_a"] == 10
        assert h.station._profile_timer_at[1] == t0 + 14400
        h.clock.step_wall(-7200)  # and back before it
        await h.clock.advance(60)
        assert calls[-1] == (t0 + 30 + 120, 16.0) and hw(h)["current_limit_a"] == 16
        assert [a for _t, a in calls] == [16.0, 10.0, 16.0]


async def test_below_the_minimum_suspends_without_ending_the_transaction_and_resumes(tmp_path):
    """0 A and 4 A (< the controller's 6 A): SuspendedEVSE, contactor open, EV still
    plugged in and the transaction running; then Charging again."""
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        tx_id = await charging(h)
        t0 = h.clock.time()
        m = h.mark()
        await set_profile(h, 1, profile(1, "TxProfile", 0, [(0, 0), (60, 4), (120, 12)], start=t0,
                                        transaction_id=tx_id))
        await h.wait_status(1, "SuspendedEVSE", m)
        s = hw(h)
        assert s["current_limit_a"] == 0 and not s["pwm_on"] and not s["contactor_closed"] and s["power_w"] == 0
        assert s["plugged"] and s["cp_state"] == "B"
        await h.clock.advance(60)  # 4 A: still below the minimum
        assert hw(h)["current_limit_a"] == 0 and h.station.sim_status(1)["station_limit_a"] == 4
        assert h.station.connector(1).status == "suspended_evse"
        await h.clock.advance(60)
        await h.wait_status(1, "Charging", m)
        s = hw(h)
        assert s["current_limit_a"] == 12 and s["contactor_closed"] and s["power_w"] == power_at(12)
        assert statuses(h, 1, m) == ["SuspendedEVSE", "Charging"]
        assert h.received("StopTransaction", m) == []
        assert h.station.connector(1).transaction.backend_id == tx_id
        # A 0 A ChargePointMax pauses too; clearing it resumes.
        m = h.mark()
        await set_profile(h, 0, profile(2, "ChargePointMaxProfile", 0, [(0, 0)], start=h.clock.time()))
        await h.wait_status(1, "SuspendedEVSE", m)
        assert await h.cs.call("ClearChargingProfile", chargingProfilePurpose="ChargePointMaxProfile") == {
            "status": "Accepted"}
        await h.wait_status(1, "Charging", m)
        assert h.received("StopTransaction") == []


async def test_profiles_survive_a_restart_and_tx_profiles_end_with_the_transaction(tmp_path):
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        await charging(h)
        now = h.clock.time()
        await set_profile(h, 0, profile(1, "ChargePointMaxProfile", 0, [(0, 20)], start=now))
        await set_profile(h, 1, profile(2, "TxDefaultProfile", 0, [(0, 12), (600, 8)], start=now, duration=1200))
        await set_profile(h, 1, profile(3, "TxProfile", 0, [(0, 7)], start=now))
        assert hw(h)["current_limit_a"] == 7
        path = os.path.join(h.agent.config.data_dir, "charging-profiles.json")
        with open(path) as f:
            assert [e["id"] for e in json.load(f)["profiles"]] == [1, 2, 3]
        m = h.mark()
        await h.restart_agent()  # the transaction ends with the reboot: its TxProfile with it
        await h.cs.wait_for("BootNotification", start_index=m)
        await h.cs.wait_for("StopTransaction", start_index=m)
        ids = sorted(e["id"] for e in h.station.charging_profiles.entries())
        assert ids == [1, 2]
        with open(path) as f:
            assert len(json.load(f)["profiles"]) == 2
        assert periods_of(await composite(h, 1, 1200, "A")) == [(0, 12), (600, 8)]
        # A new transaction follows the restored TxDefaultProfile.
        h.sim.unplug(1)
        await h.wait_status(1, "Available", m)
        await charging(h, tx_id=TX_ID + 1)
        assert hw(h)["current_limit_a"] == 12


async def test_charge_point_max_is_shared_by_the_charging_connectors(tmp_path):
    async with AgentHarness(tmp_path, board={"evse": {"connectors": 2}}) as h:
        await h.wait_status(1, "Available")
        await h.wait_status(2, "Available")
        await set_profile(h, 0, profile(1, "ChargePointMaxProfile", 0, [(0, 20)], start=h.clock.time()))
        await charging(h, 1, tx_id=1)
        assert hw(h, 1)["current_limit_a"] == 20
        await charging(h, 2, tx_id=2)
        await h.settle(0.05)
        assert hw(h, 1)["current_limit_a"] == 10 and hw(h, 2)["current_limit_a"] == 10
        m = h.mark()
        assert await h.cs.call("RemoteStopTransaction", transactionId=1) == {"status": "Accepted"}
        await h.cs.wait_for("StopTransaction", start_index=m)
        await h.settle(0.05)
        assert hw(h, 1)["current_limit_a"] == 0 and hw(h, 2)["current_limit_a"] == 20
        # The per-connector composite schedule is the profiles' view (ChargePointMax, not the share).
        assert periods_of(await composite(h, 2, 60, "A")) == [(0, 20)]
