"""OCPP 1.6 charging profiles and the core's neutral form (agent/ocpp16/profiles.py):
wire-format checks and their CALLERROR codes, the composite schedule in 1.6 form,
and the migration of charging-profiles.json written by releases before 0.2
(tests/fixtures/charging-profiles-v1.json, made with that release's store)."""

import json
import os
import shutil

import pytest
from ocpp.exceptions import PropertyConstraintViolationError, TypeConstraintViolationError

from tests.harness import AgentHarness

from agent.core import smart_charging as sc
from agent.core.profile_store import ChargingProfileStore
from agent.core.smart_charging import ProfileError, composite_schedule, limit_at
from agent.ocpp16 import profiles
from agent.ocpp16.codec import profile_error
from agent.ocpp16.profiles import ProfileFormatError, from_stored_16, profile_from_16, profile_to_16

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
FIXTURE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "charging-profiles-v1.json")


def cp16(**changes) -> dict:
    cp = {"chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
          "chargingProfileKind": "Absolute",
          "chargingSchedule": {"chargingRateUnit": "A", "startSchedule": "2026-01-01T00:00:00Z",
                               "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16}]}}
    cp.update(changes)
    return cp


def test_a_full_profile_reads_into_the_neutral_form_and_back():
    cp = cp16(chargingProfileId=9, stackLevel=3, chargingProfilePurpose="TxProfile", transactionId=42,
              chargingProfileKind="Recurring", recurrencyKind="Weekly", validFrom="2025-12-31T23:59:50Z",
              validTo="2026-01-08T00:00:00.500Z",
              chargingSchedule={"chargingRateUnit": "W", "startSchedule": "2026-01-01T00:00:00Z", "duration": 7200,
                                "minChargingRate": 1200.5,
                                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 11000, "numberPhases": 3},
                                                           {"startPeriod": 3600, "limit": 4000.5}]})
    p = profile_from_16(cp)
    assert p == {"id": 9, "evse_id": None, "purpose": sc.TX, "stack_level": 3, "kind": sc.RECURRING,
                 "recurrency": sc.WEEKLY, "valid_from": T0 - 10, "valid_to": T0 + 7 * 86400 + 0.5,
                 "transaction_id": 42,
                 "schedule": {"start": T0, "duration_s": 7200, "rate_unit": "W", "min_rate": 1200.5,
                              "periods": [[0, 11000.0, 3], [3600, 4000.5, None]]}}
    assert json.loads(json.dumps(p)) == p
    assert profile_to_16(p) == cp


@pytest.mark.parametrize("purpose, neutral", [("ChargePointMaxProfile", sc.STATION_MAX),
                                              ("TxDefaultProfile", sc.TX_DEFAULT), ("TxProfile", sc.TX)])
def test_purposes(purpose, neutral):
    assert profile_from_16(cp16(chargingProfilePurpose=purpose))["purpose"] == neutral
    assert profiles.purpose_from_16(purpose) == neutral
    assert profiles.purpose_from_16(None) is None


def test_relative_profile_ignores_its_start_schedule():
    p = profile_from_16(cp16(chargingProfileKind="Relative"))
    assert p["kind"] == sc.RELATIVE and p["schedule"]["start"] is None


@pytest.mark.parametrize("mutate, code", [
    (lambda cp: cp.update(chargingProfilePurpose="Whatever"), "PropertyConstraintViolation"),
    (lambda cp: cp.update(chargingProfileKind="Sometimes"), "PropertyConstraintViolation"),
    (lambda cp: cp.update(recurrencyKind="Monthly"), "PropertyConstraintViolation"),
    (lambda cp: cp["chargingSchedule"].update(chargingRateUnit="kW"), "PropertyConstraintViolation"),
    (lambda cp: cp.pop("stackLevel"), "ProtocolError"),
    (lambda cp: cp.pop("chargingSchedule"), "ProtocolError"),
    (lambda cp: cp["chargingSchedule"].pop("chargingSchedulePeriod"), "ProtocolError"),
    (lambda cp: cp["chargingSchedule"]["chargingSchedulePeriod"][0].pop("limit"), "ProtocolError"),
    (lambda cp: cp.update(stackLevel="1"), "TypeConstraintViolation"),
    (lambda cp: cp.update(stackLevel=True), "TypeConstraintViolation"),
    (lambda cp: cp.update(validFrom="tomorrow"), "TypeConstraintViolation"),
    (lambda cp: cp["chargingSchedule"].update(startSchedule=5), "TypeConstraintViolation"),
    (lambda cp: cp["chargingSchedule"].update(chargingSchedulePeriod=[5]), "TypeConstraintViolation"),
    (lambda cp: cp["chargingSchedule"].update(chargingSchedulePeriod=[]), "OccurenceConstraintViolation"),
])
def test_malformed_profiles_raise_with_an_ocpp_error_code(mutate, code):
    cp = cp16()
    mutate(cp)
    with pytest.raises(ProfileFormatError) as e:
        profile_from_16(cp)
    assert e.value.error_code == code
    assert profile_error(e.value).code == code


def test_whole_number_floats_are_integers():
    cp = cp16(stackLevel=2.0)
    assert profile_from_16(cp)["stack_level"] == 2


def test_connector_id_and_core_errors_map_to_callerrors():
    assert profiles.connector_id(2) == 2
    with pytest.raises(ProfileFormatError) as e:
        profiles.connector_id("1")
    assert isinstance(profile_error(e.value), TypeConstraintViolationError)
    store = ChargingProfileStore(connector_count=2)
    with pytest.raises(ProfileError) as e:  # the core's own: an unknown connector (errata 3.39)
        store.install(3, profile_from_16(cp16()), now=T0)
    assert isinstance(profile_error(e.value), PropertyConstraintViolationError)
    with pytest.raises(ProfileFormatError):
        profiles.purpose_from_16("Nonsense")


def test_statuses():
    assert [profiles.status_16(s) for s in (sc.ACCEPTED, sc.REJECTED, sc.UNKNOWN)] == [
        "Accepted", "Rejected", "Unknown"]


def test_composite_schedule_in_1_6_form():
    p = dict(profile_from_16(cp16(chargingSchedule={
        "chargingRateUnit": "W", "startSchedule": "2026-01-01T00:00:00Z",
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 11000, "numberPhases": 3},
                                   {"startPeriod": 100, "limit": 2300, "numberPhases": 1}]})), evse_id=1)
    cs = composite_schedule([p], 1, T0 + 0.7, 300, "W", local_limit_a=32)
    assert profiles.schedule_to_16(cs) == {
        "duration": 300, "startSchedule": "2026-01-01T00:00:00Z", "chargingRateUnit": "W",
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 11000, "numberPhases": 3},
                                   {"startPeriod": 100, "limit": 2300, "numberPhases": 1}]}
    cs = composite_schedule([], 1, T0, 60, "A", local_limit_a=16)
    assert profiles.schedule_to_16(cs)["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 16}]


# --------------------------------------------------------------------------- migration of the 0.1 store


def _fixture() -> dict:
    with open(FIXTURE) as f:
        return json.load(f)


# limit_at(profiles, connector, T0 + offset, tx_start=T0 - 100, tx_id=77) with the 0.1 store that wrote the
# fixture: (connector, offset) -> (limit, next change)
OLD_LIMITS = {
    (0, 0): (None, T0 + 12), (0, 700): (32.0, T0 + 3612), (0, 3700): (20.5, None), (0, 82800): (20.5, None),
    (1, 0): (6.0, T0 + 12), (1, 700): (10.0, T0 + 3612), (1, 3700): (10.0, None), (1, 82800): (10.0, None),
    (2, 0): (8.0, T0 + 12), (2, 700): (8.0, T0 + 3612), (2, 3700): (8.0, None), (2, 82800): (8.0, None),
}


def test_from_stored_16_keeps_every_field():
    old = _fixture()
    assert old["version"] == 1
    new = from_stored_16(old)
    assert new["version"] == sc.STORE_VERSION
    assert [(p["id"], p["evse_id"], p["purpose"]) for p in new["profiles"]] == [
        (1, 0, sc.STATION_MAX), (2, 0, sc.TX_DEFAULT), (3, 1, sc.TX_DEFAULT), (4, 2, sc.TX), (5, 1, sc.TX)]
    for entry, p in zip(old["profiles"], new["profiles"]):
        assert profile_to_16(p) == entry["csChargingProfiles"]  # nothing lost
    by_id = {p["id"]: p for p in new["profiles"]}
    assert by_id[1]["schedule"]["start"] == T0 + 12  # the installation time the old store filled in
    assert by_id[4]["transaction_id"] == 77 and by_id[5]["transaction_id"] is None
    assert by_id[2]["recurrency"] == sc.DAILY and by_id[2]["schedule"]["min_rate"] == 4140.0


def test_migrated_store_gives_the_limits_of_the_old_one():
    s = ChargingProfileStore(connector_count=2)
    assert s.load(_fixture(), migrate=from_stored_16) == 5
    for (connector, offset), expected in OLD_LIMITS.items():
        assert limit_at(s.profiles(), connector, T0 + offset, T0 - 100, 77) == expected, (connector, offset)
    again = ChargingProfileStore(connector_count=2)
    assert again.load(json.loads(json.dumps(s.to_dict()))) == 5  # the new format needs no migration
    assert again.entries() == s.entries()


def test_from_stored_16_drops_what_does_not_read():
    old = _fixture()
    old["profiles"][0]["csChargingProfiles"]["chargingProfileKind"] = "Bogus"
    old["profiles"][1]["connectorId"] = "0"
    old["profiles"].append("junk")
    assert [p["id"] for p in from_stored_16(old)["profiles"]] == [3, 4, 5]


async def test_agent_migrates_the_file_of_the_earlier_release(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    path = data_dir / "charging-profiles.json"
    shutil.copy(FIXTURE, path)
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        # connector 1 has no transaction at boot: its tx profile (5) ends; the rest is as the old release had it
        ids = sorted(p["id"] for p in h.station.charging_profiles.entries())
        assert ids == [1, 2, 3, 4]
        with open(path) as f:
            saved = json.load(f)
        assert saved["version"] == sc.STORE_VERSION and sorted(p["id"] for p in saved["profiles"]) == ids
        conf = await h.cs.call("GetCompositeSchedule", connectorId=0, duration=3700, chargingRateUnit="A")
        assert conf["status"] == "Accepted"
        assert [(p["startPeriod"], p["limit"]) for p in conf["chargingSchedule"]["chargingSchedulePeriod"]] == [
            (0, 32), (3612, 20.5)]
