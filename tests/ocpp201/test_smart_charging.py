"""OCPP 2.0.1 smart charging (K01 SetChargingProfile, K05 RequestStartTransaction with
a TxProfile, K08 GetCompositeSchedule, K09 GetChargingProfiles, K10 ClearChargingProfile)
over the wire, the agent pinned to 2.0.1 against the test central system serving only
``ocpp2.0.1`` (every frame validated against the 2.0.1 schemas by the harness), and
agent/ocpp201/profiles.py on its own.

Tests named after an OCTT case (spec/OCPP-2.0.1_edition3_part6-testcases.txt) follow
that case's steps and check its tool validations; the limits are checked where they
matter, on the simulated EVSE controller.
"""

import pytest

from agent.core import smart_charging as sc
from agent.core.isotime import format_datetime, parse_datetime
from agent.ocpp201 import profiles
from tests.harness import assert_charging_hw, hw, quiet, until
from tests.ocpp201.octt201 import errors, harness, local_start, received, wait_connector

LOCAL_LIMIT_A = 32.0  # the simulated board's rating
UNITS = [("A", 1), ("W", 1000)]  # <Configured chargingRateUnit>: W limits are the A ones x 1000
VOLTAGE_V, PHASES = 230.0, 3


def amps(limit: float, unit: str) -> float:
    return limit if unit == "A" else limit * 1000 / (VOLTAGE_V * PHASES)


def cp(pid: int, purpose: str, periods=((0, 6),), *, stack: int = 0, unit: str = "A", kind: str = "Absolute",
       start: float | None = None, duration: int | None = None, transaction_id: str | None = None,
       phases: int | None = PHASES, **extra) -> dict:
    """A 2.0.1 ChargingProfileType; ``periods`` are (startPeriod, limit in A) (x1000 for W)."""
    scale = 1000 if unit == "W" else 1
    sch = {"id": pid * 10, "chargingRateUnit": unit,
           "chargingSchedulePeriod": [dict({"startPeriod": s, "limit": lim * scale},
                                           **({"numberPhases": phases} if phases else {}))
                                      for s, lim in periods]}
    if start is not None:
        sch["startSchedule"] = format_datetime(start)
    if duration is not None:
        sch["duration"] = duration
    out = {"id": pid, "stackLevel": stack, "chargingProfilePurpose": purpose, "chargingProfileKind": kind,
           "chargingSchedule": [sch]}
    if transaction_id is not None:
        out["transactionId"] = transaction_id
    out.update(extra)
    return out


async def set_profile(h, evse_id: int, profile: dict, expect: str = "Accepted") -> dict:
    got = await h.cs.call("SetChargingProfile", evseId=evse_id, chargingProfile=profile)
    assert got["status"] == expect, (got, h.station.charging_profiles.last_rejection)
    return got


async def get_profiles(h, request_id: int, expect: str = "Accepted", evse_id: int | None = None,
                       **criterion) -> list:
    """GetChargingProfiles, then every ReportChargingProfiles of ``request_id`` (until tbc is false)."""
    m = h.mark()
    req = {"requestId": request_id, "chargingProfile": criterion}
    if evse_id is not None:
        req["evseId"] = evse_id
    got = await h.cs.call("GetChargingProfiles", **req)
    assert got == {"status": expect}, got
    if expect != "Accepted":
        await quiet(h)
        assert not received(h, "ReportChargingProfiles", m)
        return []
    await h.cs.wait_for("ReportChargingProfiles", lambda p: p["requestId"] == request_id and not p.get("tbc"),
                        start_index=m)
    reports = [p for p in received(h, "ReportChargingProfiles", m) if p["requestId"] == request_id]
    assert all(p["chargingLimitSource"] == "CSO" for p in reports)
    return reports


def reported(reports: list) -> list:
    """(evseId, profile id) of every reported profile."""
    return sorted((r["evseId"], p["id"]) for r in reports for p in r["chargingProfile"])


async def composite(h, evse_id: int, duration: int, unit: str | None = None) -> dict:
    req = {"evseId": evse_id, "duration": duration}
    if unit is not None:
        req["chargingRateUnit"] = unit
    got = await h.cs.call("GetCompositeSchedule", **req)
    assert got["status"] == "Accepted", got
    s = got["schedule"]
    assert s["evseId"] == evse_id and s["duration"] == duration
    if unit is not None:
        assert s["chargingRateUnit"] == unit
    assert abs(parse_datetime(s["scheduleStart"]) - h.clock.time()) <= 1
    return s


def periods_of(schedule: dict, scale: int = 1) -> list:
    return [(p["startPeriod"], p["limit"] / scale) for p in schedule["chargingSchedulePeriod"]]


async def charging_201(h) -> str:
    """Reusable state EnergyTransferStarted (local start): the transactionId."""
    started = await local_start(h)
    await until(lambda: hw(h)["power_w"] > 0)
    assert_charging_hw(h)
    return started["transactionInfo"]["transactionId"]


# ---------------------------------------------------------------------- K01 SetChargingProfile

@pytest.mark.parametrize("unit, scale", UNITS)
async def test_tc_k_01_set_tx_default_profile_specific_evse(tmp_path, unit, scale):
    """TC_K_01_CS: TxDefaultProfile on EVSE 1 Accepted, then reported as sent (K09 by chargingProfileId)."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        sent = cp(11, "TxDefaultProfile", unit=unit, duration=300)
        got = await set_profile(h, 1, sent)
        assert got == {"status": "Accepted"}
        reports = await get_profiles(h, 99, chargingProfileId=[11])
        assert len(reports) == 1 and reports[0]["evseId"] == 1 and reports[0]["tbc"] is False
        (back,) = reports[0]["chargingProfile"]
        start = back["chargingSchedule"][0].pop("startSchedule")  # filled in with the installation time
        assert abs(parse_datetime(start) - h.clock.time()) <= 1
        assert back == sent
        # the default reaches the controller once a transaction runs
        await charging_201(h)
        assert hw(h)["current_limit_a"] == pytest.approx(amps(6, unit), abs=1e-3)
        assert not errors(h)


async def test_tc_k_02_tx_profile_without_transaction_rejected(tmp_path):
    """TC_K_02_CS: a TxProfile on an EVSE without a transaction: Rejected (K01.FR.09)."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        got = await set_profile(h, 1, cp(12, "TxProfile", transaction_id="nope"), expect="Rejected")
        assert got["statusInfo"]["reasonCode"] == "TxNotFound"
        assert len(h.station.charging_profiles) == 0


@pytest.mark.parametrize("unit, scale", UNITS)
async def test_tc_k_03_charging_station_max_profile(tmp_path, unit, scale):
    """TC_K_03_CS: ChargingStationMaxProfile on EVSE 0 Accepted; it caps a running transaction."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        await charging_201(h)
        assert hw(h)["current_limit_a"] == LOCAL_LIMIT_A
        await set_profile(h, 0, cp(13, "ChargingStationMaxProfile", [(0, 10)], unit=unit))
        assert hw(h)["current_limit_a"] == pytest.approx(amps(10, unit), abs=1e-3)
        # on an EVSE > 0 it is rejected
        await set_profile(h, 1, cp(14, "ChargingStationMaxProfile", [(0, 8)], unit=unit), expect="Rejected")


async def test_tc_k_04_replace_by_id_and_tc_k_28_tx_default_with_transaction_ongoing(tmp_path):
    """TC_K_04_CS / TC_K_28_CS: a TxDefaultProfile during a transaction applies at once;
    the same chargingProfileId replaces it."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        await charging_201(h)
        await set_profile(h, 1, cp(15, "TxDefaultProfile", [(0, 8)]))
        assert hw(h)["current_limit_a"] == 8
        await set_profile(h, 1, cp(15, "TxDefaultProfile", [(0, 7)], stack=1))
        assert hw(h)["current_limit_a"] == 7
        assert [p["id"] for p in h.station.charging_profiles.entries()] == [15]


async def test_tc_k_10_tx_default_all_evses_and_tc_k_11_tx_profile_on_evse_0(tmp_path):
    """TC_K_10_CS: a TxDefaultProfile on evseId 0 Accepted; TC_K_11_CS: a TxProfile on evseId 0 Rejected."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        await set_profile(h, 0, cp(16, "TxDefaultProfile", [(0, 9)]))
        await set_profile(h, 0, cp(17, "TxProfile", [(0, 9)]), expect="Rejected")
        await charging_201(h)
        assert hw(h)["current_limit_a"] == 9


async def test_tc_k_12_k_42_rate_unit_rejected(tmp_path):
    """TC_K_12_CS: a chargingRateUnit the station does not support (RateUnit A only): Rejected.
    TC_K_42_CS: GetCompositeSchedule in that unit: Rejected, no schedule."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        h.station.charging_profiles.allowed_units = ("A",)  # a station configured for A only
        got = await set_profile(h, 1, cp(18, "TxDefaultProfile", unit="W"), expect="Rejected")
        assert got["statusInfo"]["reasonCode"] == "UnsupportedRateUnit"
        got = await h.cs.call("GetCompositeSchedule", evseId=1, duration=60, chargingRateUnit="W")
        assert got["status"] == "Rejected" and "schedule" not in got


async def test_tc_k_14_unknown_evse_and_more_schedules_than_supported(tmp_path):
    """TC_K_14_CS: evseId <EVSECount + 1>: Rejected. A profile with 2 chargingSchedules
    (ISO 15118 offers) is Rejected too, saying why."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        n = len(h.station.connectors)
        got = await set_profile(h, n + 1, cp(19, "TxDefaultProfile"), expect="Rejected")
        assert got["statusInfo"]["reasonCode"] == "UnknownEvse"
        two = cp(20, "TxDefaultProfile")
        two["chargingSchedule"].append(dict(two["chargingSchedule"][0], id=201))
        got = await set_profile(h, 1, two, expect="Rejected")
        assert got["statusInfo"]["reasonCode"] == "TooManySchedules"
        got = await set_profile(h, 1, cp(21, "ChargingStationExternalConstraints"), expect="Rejected")
        assert len(h.station.charging_profiles) == 0 and not errors(h)


async def test_tc_k_16_unknown_transaction_id_and_tc_k_60_tx_profile_with_transaction(tmp_path):
    """TC_K_16_CS: a TxProfile naming an unknown transactionId: Rejected. TC_K_60_CS: one
    naming the running transaction: Accepted, enforced on the controller, reported
    with its transactionId, gone when the transaction ends."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        tx_id = await charging_201(h)
        await set_profile(h, 1, cp(22, "TxProfile", transaction_id="UNKNOWN-TRANSACTION-ID"), expect="Rejected")
        assert hw(h)["current_limit_a"] == LOCAL_LIMIT_A
        await set_profile(h, 1, cp(23, "TxProfile", [(0, 6)], transaction_id=tx_id))
        s = hw(h)
        assert s["current_limit_a"] == 6 and s["power_w"] == pytest.approx(6 * VOLTAGE_V * PHASES, rel=1e-3), s
        (report,) = await get_profiles(h, 5, evse_id=1)
        assert report["chargingProfile"][0]["transactionId"] == tx_id
        sch = await composite(h, 1, 300, "A")
        assert periods_of(sch) == [(0, 6)]
        m = h.mark()
        assert await h.cs.call("RequestStopTransaction", transactionId=tx_id) == {"status": "Accepted"}
        await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Ended", start_index=m)
        await until(lambda: len(h.station.charging_profiles) == 0)


async def test_tx_profile_set_before_the_start_is_confirmed_applies(tmp_path):
    """A TxProfile for a transaction whose Started event is not answered yet names the
    station's own transactionId, which the station knows from the start: it applies."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        tx_id = await charging_201(h)
        h.station.connector(1).transaction.backend_id = None  # as if the Started event were still queued
        await set_profile(h, 1, cp(24, "TxProfile", [(0, 7)], transaction_id=tx_id))
        assert hw(h)["current_limit_a"] == 7


async def test_tc_k_13_profiles_persist_over_reboot(tmp_path):
    """TC_K_13_CS: an installed profile survives a reboot and is reported as before."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        await set_profile(h, 0, cp(25, "ChargingStationMaxProfile", [(0, 12)]))
        await h.restart_agent()
        h.cs = await h.cs_server.wait_for_station(h.station_id)
        await h.cs.wait_for("BootNotification")
        assert reported(await get_profiles(h, 6, evse_id=0)) == [(0, 25)]


# ---------------------------------------------------------------------- K05 RequestStartTransaction

@pytest.mark.parametrize("unit, scale", UNITS)
async def test_tc_k_37_remote_start_with_tx_profile(tmp_path, unit, scale):
    """TC_K_37_CS: RequestStartTransaction with a Relative TxProfile without transactionId:
    Accepted, the transaction starts limited by it, and it is reported by its id."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        m = h.mark()
        h.sim.plug(1)
        await wait_connector(h, "Occupied", start=m)
        profile = cp(31, "TxProfile", kind="Relative", unit=unit)
        got = await h.cs.call("RequestStartTransaction", idToken={"idToken": "REMOTE1", "type": "Central"},
                              evseId=1, remoteStartId=3, chargingProfile=profile)
        assert got == {"status": "Accepted"}
        started = await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Started", start_index=m)
        tx_id = started["transactionInfo"]["transactionId"]
        await until(lambda: hw(h)["power_w"] > 0)
        assert hw(h)["current_limit_a"] == pytest.approx(amps(6, unit), abs=1e-3)
        (report,) = await get_profiles(h, 7, chargingProfileId=[31])
        (back,) = report["chargingProfile"]
        assert report["evseId"] == 1 and back["chargingProfilePurpose"] == "TxProfile"
        await until(lambda: h.station.connector(1).transaction.backend_id is not None)
        (report,) = await get_profiles(h, 8, chargingProfileId=[31])
        assert report["chargingProfile"][0]["transactionId"] == tx_id  # bound once the start was confirmed


async def test_k05_remote_start_with_another_purpose_or_a_transaction_id_rejected(tmp_path):
    """K05: the profile of a RequestStartTransaction must be a TxProfile without transactionId."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        for profile in (cp(32, "TxDefaultProfile"), cp(33, "TxProfile", transaction_id="x")):
            got = await h.cs.call("RequestStartTransaction", idToken={"idToken": "REMOTE1", "type": "Central"},
                                  evseId=1, remoteStartId=4, chargingProfile=profile)
            assert got["status"] == "Rejected" and got["statusInfo"]["reasonCode"], got
        await quiet(h)
        assert h.station.connector(1).transaction is None and len(h.station.charging_profiles) == 0


# ---------------------------------------------------------------------- K10 ClearChargingProfile

async def test_tc_k_05_clear_by_id_tc_k_08_without_profile(tmp_path):
    """TC_K_05_CS: ClearChargingProfile by chargingProfileId Accepted, then GetChargingProfiles
    NoProfiles; TC_K_08_CS: clearing again: Unknown."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        await charging_201(h)
        await set_profile(h, 1, cp(41, "TxDefaultProfile", [(0, 6)]))
        assert hw(h)["current_limit_a"] == 6
        assert await h.cs.call("ClearChargingProfile", chargingProfileId=41) == {"status": "Accepted"}
        assert hw(h)["current_limit_a"] == LOCAL_LIMIT_A  # the limit is lifted at once
        await get_profiles(h, 1, expect="NoProfiles", chargingProfileId=[41])
        assert await h.cs.call("ClearChargingProfile", chargingProfileId=41) == {"status": "Unknown"}


async def test_tc_k_06_07_09_24_clear_by_criteria(tmp_path):
    """TC_K_06_CS by stackLevel/purpose; TC_K_07_CS an unknown combination: Unknown;
    TC_K_09_CS a TxDefaultProfile with a transaction ongoing; TC_K_24_CS several at once."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        await charging_201(h)
        await set_profile(h, 0, cp(42, "ChargingStationMaxProfile", [(0, 20)], stack=1))
        await set_profile(h, 1, cp(43, "TxDefaultProfile", [(0, 8)], stack=2))
        await set_profile(h, 0, cp(44, "TxDefaultProfile", [(0, 9)], stack=2))
        assert hw(h)["current_limit_a"] == 8
        criteria = {"chargingProfilePurpose": "ChargingStationMaxProfile", "stackLevel": 5}
        assert await h.cs.call("ClearChargingProfile", chargingProfileCriteria=criteria) == {"status": "Unknown"}
        criteria = {"chargingProfilePurpose": "ChargingStationMaxProfile", "stackLevel": 1}
        assert await h.cs.call("ClearChargingProfile", chargingProfileCriteria=criteria) == {"status": "Accepted"}
        criteria = {"chargingProfilePurpose": "TxDefaultProfile", "stackLevel": 2}
        assert await h.cs.call("ClearChargingProfile", chargingProfileCriteria=criteria) == {"status": "Accepted"}
        assert len(h.station.charging_profiles) == 0
        assert hw(h)["current_limit_a"] == LOCAL_LIMIT_A
        criteria = {"chargingProfilePurpose": "ChargingStationExternalConstraints"}
        assert await h.cs.call("ClearChargingProfile", chargingProfileCriteria=criteria) == {"status": "Unknown"}


# ---------------------------------------------------------------------- K09 GetChargingProfiles

async def _two_profiles(h) -> None:
    """Memory state of TC_K_29..36: a ChargingStationMaxProfile (Id1) and a TxDefaultProfile on EVSE 1 (Id2)."""
    await wait_connector(h, "Available")
    await set_profile(h, 0, cp(1, "ChargingStationMaxProfile", [(0, 20)], stack=1))
    await set_profile(h, 1, cp(2, "TxDefaultProfile", [(0, 10)], stack=2))


async def test_tc_k_29_to_36_get_charging_profiles(tmp_path):
    """TC_K_29_CS evseId 0; TC_K_30_CS evseId > 0; TC_K_31_CS no evseId; TC_K_32_CS
    chargingProfileId; TC_K_33_CS + stackLevel; TC_K_34_CS + chargingLimitSource;
    TC_K_35_CS + purpose; TC_K_36_CS + purpose + stackLevel."""
    async with harness(tmp_path) as h:
        await _two_profiles(h)
        assert reported(await get_profiles(h, 29, evse_id=0)) == [(0, 1)]
        assert reported(await get_profiles(h, 30, evse_id=1)) == [(1, 2)]
        reports = await get_profiles(h, 31)
        assert reported(reports) == [(0, 1), (1, 2)]
        assert [r["tbc"] for r in reports] == [True, False]  # one message per EVSE, the last ends it
        assert reported(await get_profiles(h, 32, chargingProfileId=[2])) == [(1, 2)]
        assert reported(await get_profiles(h, 33, evse_id=1, stackLevel=2)) == [(1, 2)]
        await get_profiles(h, 330, "NoProfiles", evse_id=1, stackLevel=1)
        assert reported(await get_profiles(h, 34, evse_id=1, chargingLimitSource=["CSO"])) == [(1, 2)]
        await get_profiles(h, 340, "NoProfiles", evse_id=1, chargingLimitSource=["EMS", "SO"])
        assert reported(await get_profiles(h, 35, evse_id=1, chargingProfilePurpose="TxDefaultProfile")) == [(1, 2)]
        await get_profiles(h, 350, "NoProfiles", evse_id=1, chargingProfilePurpose="ChargingStationMaxProfile")
        assert reported(await get_profiles(h, 36, evse_id=1, chargingProfilePurpose="TxDefaultProfile",
                                           stackLevel=2)) == [(1, 2)]
        await get_profiles(h, 360, "NoProfiles", evse_id=1, chargingProfilePurpose="TxDefaultProfile", stackLevel=0)
        assert not errors(h)


async def test_entries_variable_counts_installed_profiles(tmp_path):
    """SmartChargingCtrlr.Entries[ChargingProfiles] is the number of installed profiles."""
    async with harness(tmp_path) as h:
        await _two_profiles(h)
        entries = {"name": "Entries", "instance": "ChargingProfiles"}
        got = await h.cs.call("GetVariables", getVariableData=[
            {"component": {"name": "SmartChargingCtrlr"}, "variable": entries}])
        (result,) = got["getVariableResult"]
        assert result["attributeStatus"] == "Accepted" and result["attributeValue"] == "2", result


# ---------------------------------------------------------------------- K08 GetCompositeSchedule

@pytest.mark.parametrize("unit, scale", UNITS)
async def test_tc_k_39_composite_without_profiles(tmp_path, unit, scale):
    """TC_K_39_CS: evseId 0, duration 300, no profile: Accepted, evseId 0, duration 300, startPeriod 0."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        s = await composite(h, 0, 300, unit)
        assert s["chargingSchedulePeriod"][0]["startPeriod"] == 0


@pytest.mark.parametrize("unit, scale", UNITS)
async def test_tc_k_40_41_composite_stacking_and_combining(tmp_path, unit, scale):
    """TC_K_40_CS stacking (a stack-1 profile of 150 s over a stack-0 one) and TC_K_41_CS
    combining purposes (the minimum of ChargingStationMaxProfile and the Tx profile)."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        tx_id = await charging_201(h)
        now = h.clock.time()
        await set_profile(h, 1, cp(51, "TxProfile", [(0, 10)], stack=0, unit=unit, start=now, duration=300,
                                   transaction_id=tx_id))
        await set_profile(h, 1, cp(52, "TxProfile", [(0, 8), (100, 9)], stack=1, unit=unit, start=now,
                                   duration=150, transaction_id=tx_id))
        await set_profile(h, 0, cp(53, "ChargingStationMaxProfile", [(0, 7), (50, 12)], unit=unit, start=now))
        s = await composite(h, 1, 300, unit)
        assert periods_of(s, scale) == [(0, 7), (50, 8), (100, 9), (150, 10)]
        assert hw(h)["current_limit_a"] == pytest.approx(amps(7, unit), abs=1e-3)


async def test_tc_k_47_composite_unknown_evse(tmp_path):
    """TC_K_47_CS: evseId <number of EVSEs> + 1: Rejected, schedule omitted."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        got = await h.cs.call("GetCompositeSchedule", evseId=len(h.station.connectors) + 1, duration=300,
                              chargingRateUnit="A")
        assert got["status"] == "Rejected" and "schedule" not in got


# ---------------------------------------------------------------------- profiles.py on its own

FULL = {"id": 7, "stackLevel": 2, "chargingProfilePurpose": "TxProfile", "chargingProfileKind": "Recurring",
        "recurrencyKind": "Weekly", "validFrom": "2026-01-01T00:00:00Z", "validTo": "2026-02-01T00:00:00Z",
        "transactionId": "tx-1",
        "chargingSchedule": [{"id": 70, "startSchedule": "2026-01-01T06:00:00Z", "duration": 3600,
                              "chargingRateUnit": "W", "minChargingRate": 1400.5,
                              "chargingSchedulePeriod": [
                                  {"startPeriod": 0, "limit": 11000.0, "numberPhases": 3},
                                  {"startPeriod": 600, "limit": 3680.0, "numberPhases": 1, "phaseToUse": 2},
                                  {"startPeriod": 1200, "limit": 7000.0}]}]}


def test_profile_from_201_reads_every_field():
    p = profiles.profile_from_201(FULL)
    assert p["id"] == 7 and p["stack_level"] == 2 and p["evse_id"] is None
    assert p["purpose"] == sc.TX and p["kind"] == sc.RECURRING and p["recurrency"] == sc.WEEKLY
    assert p["valid_from"] == parse_datetime("2026-01-01T00:00:00Z")
    assert p["valid_to"] == parse_datetime("2026-02-01T00:00:00Z")
    assert p["transaction_id"] == "tx-1"
    s = p["schedule"]
    assert s["start"] == parse_datetime("2026-01-01T06:00:00Z") and s["duration_s"] == 3600
    assert s["rate_unit"] == "W" and s["min_rate"] == 1400.5 and s["id"] == 70
    assert s["periods"] == [[0, 11000.0, 3], [600, 3680.0, 1, 2], [1200, 7000.0, None]]
    sc.compile_profile(dict(p, evse_id=1))  # the engine takes it


def test_profile_round_trip_and_defaults():
    assert profiles.profile_to_201(profiles.profile_from_201(FULL)) == FULL
    minimal = {"id": 1, "stackLevel": 0, "chargingProfilePurpose": "ChargingStationMaxProfile",
               "chargingProfileKind": "Relative",
               "chargingSchedule": [{"id": 3, "chargingRateUnit": "A", "startSchedule": "2026-01-01T00:00:00Z",
                                     "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16}]}]}
    p = profiles.profile_from_201(minimal)
    assert p["purpose"] == sc.STATION_MAX and p["kind"] == sc.RELATIVE
    assert p["schedule"]["start"] is None  # a Relative profile's startSchedule is not read
    assert p["recurrency"] is None and p["valid_from"] is None and p["transaction_id"] is None
    back = profiles.profile_to_201(p)
    assert "startSchedule" not in back["chargingSchedule"][0] and "validFrom" not in back
    assert back["chargingSchedule"][0]["id"] == 3
    # a profile without a schedule id (a store from 1.6) gets the profile's id
    del p["schedule"]["id"]
    assert profiles.profile_to_201(p)["chargingSchedule"][0]["id"] == 1
    assert profiles.profile_from_201(dict(minimal, chargingProfilePurpose="TxDefaultProfile",
                                          chargingProfileKind="Absolute"))["purpose"] == sc.TX_DEFAULT


@pytest.mark.parametrize("change, code", [
    ({"chargingProfilePurpose": "ChargingStationExternalConstraints"}, "UnsupportedParam"),
    ({"validFrom": "yesterday"}, "InvalidValue"),
    ({"chargingSchedule": []}, "InvalidSchedule"),
    ({"chargingSchedule": FULL["chargingSchedule"] * 2}, "TooManySchedules"),
    ({"chargingSchedule": [dict(FULL["chargingSchedule"][0], chargingSchedulePeriod=[])]}, "InvalidSchedule"),
    ({"chargingSchedule": [dict(FULL["chargingSchedule"][0], chargingRateUnit="kW")]}, "UnsupportedRateUnit"),
    ({"chargingProfileKind": None}, "InvalidProfile"),
])
def test_profile_from_201_errors(change, code):
    bad = dict(FULL, **change)
    with pytest.raises(profiles.ProfileFormatError) as e:
        profiles.profile_from_201({k: v for k, v in bad.items() if v is not None})
    assert e.value.reason_code == code and len(code) <= 20
    assert isinstance(e.value, sc.ProfileError)


def test_rejection_info_reason_codes():
    assert profiles.rejection_info("stack level 9 is outside 0..8 (max_stack_level)")["reasonCode"] == \
        "InvalidStackLevel"
    assert profiles.rejection_info("no transaction on EVSE 1")["reasonCode"] == "TxNotFound"
    assert profiles.rejection_info("rate unit W is not one of the allowed_units A")["reasonCode"] == \
        "UnsupportedRateUnit"
    assert profiles.rejection_info("the first period starts at 5, not 0")["reasonCode"] == "InvalidSchedule"
    assert profiles.rejection_info("max_profiles (16) reached")["reasonCode"] == "TooManyElements"
    assert profiles.rejection_info(None) == {"reasonCode": "InvalidProfile", "additionalInfo": "rejected"}


def test_schedule_to_201():
    cs = {"start": parse_datetime("2026-01-01T00:00:00Z"), "duration_s": 300, "rate_unit": "A",
          "periods": [[0, 16.0, 3], [60, 8.0, None]]}
    assert profiles.schedule_to_201(cs, 1) == {
        "evseId": 1, "duration": 300, "scheduleStart": "2026-01-01T00:00:00Z", "chargingRateUnit": "A",
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0, "numberPhases": 3},
                                   {"startPeriod": 60, "limit": 8.0}]}


def test_matches_and_report_messages():
    ps = []
    for pid, evse, purpose, stack in ((1, 0, sc.STATION_MAX, 0), (2, 1, sc.TX_DEFAULT, 1), (3, 1, sc.TX, 2),
                                      (4, 2, sc.TX_DEFAULT, 1)):
        p = sc.new_profile(pid, purpose, stack, [(0, 10)], evse_id=evse, start=0)
        ps.append(p)

    def ids(evse=None, **criterion):
        return [p["id"] for p in ps if profiles.matches(p, evse, criterion)]

    assert ids() == [1, 2, 3, 4]
    assert ids(evse=0) == [1] and ids(evse=1) == [2, 3]
    assert ids(chargingProfileId=[3, 4]) == [3, 4] and ids(evse=1, chargingProfileId=[4]) == []
    assert ids(chargingProfilePurpose="TxDefaultProfile") == [2, 4]
    assert ids(chargingProfilePurpose="ChargingStationExternalConstraints") == []
    assert ids(stackLevel=1) == [2, 4] and ids(chargingProfilePurpose="TxProfile", stackLevel=1) == []
    assert ids(chargingLimitSource=["CSO", "EMS"]) == [1, 2, 3, 4] and ids(chargingLimitSource=["SO"]) == []
    msgs = profiles.report_messages(9, ps, per_message=1)
    assert [(m["evseId"], [p["id"] for p in m["chargingProfile"]], m["tbc"]) for m in msgs] == [
        (0, [1], True), (1, [2], True), (1, [3], True), (2, [4], False)]
    assert all(m["requestId"] == 9 and m["chargingLimitSource"] == "CSO" for m in msgs)
    assert profiles.report_messages(9, []) == []
    (one,) = profiles.report_messages(9, ps[:1])
    assert one["tbc"] is False
