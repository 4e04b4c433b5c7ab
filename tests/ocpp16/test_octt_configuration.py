"""OCTT 1.6 configuration cases: TC_019_CS, TC_021_CS, TC_040_1_CS, TC_040_2_CS.

The central system (tools/csms.py) drives the agent on the simulated board
over loopback; steps and tool validations follow the OCTT test case document
(spec/octt-1.6-test-case-document-2024-04.txt) and OCPP 1.6 §9.1.
"""

import pytest
from ocpp.exceptions import OCPPError

from tests.harness import AgentHarness

# TC_019_CS step 4: the Core keys and their accessibility (OCPP 1.6 §9.1).
# True = read-only, False = read-write, None = either (the spec lets the charge point choose).
CORE_KEYS = {
    "AuthorizeRemoteTxRequests": None,
    "ClockAlignedDataInterval": False,
    "ConnectionTimeOut": False,
    "ConnectorPhaseRotation": False,
    "GetConfigurationMaxKeys": True,
    "HeartbeatInterval": False,
    "LocalAuthorizeOffline": False,
    "LocalPreAuthorize": False,
    "MeterValuesAlignedData": False,
    "MeterValuesSampledData": False,
    "MeterValueSampleInterval": False,
    "NumberOfConnectors": True,
    "ResetRetries": False,
    "StopTransactionOnEVSideDisconnect": False,
    "StopTransactionOnInvalidId": False,
    "StopTxnAlignedData": False,
    "StopTxnSampledData": False,
    "SupportedFeatureProfiles": True,
    "TransactionMessageAttempts": False,
    "TransactionMessageRetryInterval": False,
    "UnlockConnectorOnEVSideDisconnect": None,
}
# Optional keys, when present (OCPP 1.6 §9.1 and §9.2): True = R, False = RW.
OPTIONAL_KEYS = {
    "AllowOfflineTxForUnknownId": False,
    "AuthorizationCacheEnabled": False,
    "ConnectorPhaseRotationMaxLength": True,
    "MaxEnergyOnInvalidId": False,
    "MeterValuesAlignedDataMaxLength": True,
    "MeterValuesSampledDataMaxLength": True,
    "StopTxnAlignedDataMaxLength": True,
    "StopTxnSampledDataMaxLength": True,
    "SupportedFeatureProfilesMaxLength": True,
    "WebSocketPingInterval": False,
}
# TC_019_CS step 4, optional profiles: their required keys.
PROFILE_KEYS = {
    "LocalAuthListManagement": {"LocalAuthListEnabled": False, "LocalAuthListMaxLength": True,
                                "SendLocalListMaxLength": True},
    "SmartCharging": {"ChargeProfileMaxStackLevel": True, "ChargingScheduleAllowedChargingRateUnit": True,
                      "ChargingScheduleMaxPeriods": True, "MaxChargingProfilesInstalled": True},
}


async def get_configuration(h, keys=None) -> tuple[dict, list]:
    """({key: (readonly, value)}, unknownKey) from a GetConfiguration."""
    reply = await (h.cs.call("GetConfiguration", key=keys) if keys is not None
                   else h.cs.call("GetConfiguration"))
    entries = reply.get("configurationKey", [])
    known = {e["key"]: (e["readonly"], e.get("value")) for e in entries}
    assert len(known) == len(entries), "a key is listed twice: %r" % entries
    return known, reply.get("unknownKey", [])


async def change(h, key: str, value: str) -> str:
    return (await h.cs.call("ChangeConfiguration", key=key, value=value))["status"]


async def test_tc_019_retrieve_configuration(tmp_path):
    """TC_019_CS Retrieve configuration."""
    async with AgentHarness(tmp_path) as h:
        # Steps 1-2: one key.
        known, unknown = await get_configuration(h, ["SupportedFeatureProfiles"])
        assert unknown == []
        assert list(known) == ["SupportedFeatureProfiles"]
        readonly, value = known["SupportedFeatureProfiles"]
        assert readonly is True
        profiles = value.split(",")
        assert "Core" in profiles
        assert set(profiles) <= {"Core", "FirmwareManagement", "LocalAuthListManagement", "Reservation",
                                 "SmartCharging", "RemoteTrigger"}

        # Steps 3-4: all keys; every required Core key with the right accessibility.
        everything, unknown = await get_configuration(h)
        assert unknown == []
        missing = sorted(set(CORE_KEYS) - set(everything))
        assert not missing, "required Core keys missing: %s" % missing
        for key, readonly in CORE_KEYS.items():
            if readonly is not None:
                assert everything[key][0] is readonly, "%s should be %s" % (key, "R" if readonly else "RW")
            assert isinstance(everything[key][1], str), "%s has no value" % key
        for key, readonly in OPTIONAL_KEYS.items():
            if key in everything:
                assert everything[key][0] is readonly, "%s should be %s" % (key, "R" if readonly else "RW")
        for profile, keys in PROFILE_KEYS.items():
            if profile in profiles:
                for key, readonly in keys.items():
                    assert key in everything, "%s needs %s" % (profile, key)
                    assert everything[key][0] is readonly, "%s should be %s" % (key, "R" if readonly else "RW")
        # Values agree with the station: one connector, the interval the boot answer set.
        assert everything["NumberOfConnectors"][1] == "1"
        assert everything["HeartbeatInterval"][1] == "300"
        assert everything["SupportedFeatureProfiles"][1] == value

        # Steps 5-6: GetConfigurationMaxKeys.
        known, unknown = await get_configuration(h, ["GetConfigurationMaxKeys"])
        assert unknown == [] and known["GetConfigurationMaxKeys"][0] is True
        max_keys = int(known["GetConfigurationMaxKeys"][1])
        assert max_keys >= 1

        # Steps 7-8: min(max_keys, all) keys picked from step 4: all of them come back.
        picked = sorted(everything)[:min(max_keys, len(everything))]
        known, unknown = await get_configuration(h, picked)
        assert unknown == []
        assert set(known) == set(picked)
        assert all(known[k] == everything[k] for k in picked)


async def test_tc_019_unknown_keys_are_listed(tmp_path):
    """TC_019_CS, unknown keys: GetConfiguration reports them in unknownKey, known ones as usual."""
    async with AgentHarness(tmp_path) as h:
        known, unknown = await get_configuration(h, ["HeartbeatInterval", "NoSuchKey", "Testing"])
        assert known == {"HeartbeatInterval": (False, "300")}
        assert unknown == ["NoSuchKey", "Testing"]
        known, unknown = await get_configuration(h, ["NoSuchKey"])
        assert known == {} and unknown == ["NoSuchKey"]


async def test_tc_021_change_configuration_persists_across_a_restart(tmp_path):
    """TC_021_CS Change/set Configuration: Accepted, visible in GetConfiguration, kept over a reboot
    (and a value set over OCPP wins over the configuration file's [ocpp] table)."""
    async with AgentHarness(tmp_path, ocpp={"MeterValueSampleInterval": 30}) as h:
        known, _ = await get_configuration(h, ["MeterValueSampleInterval"])
        assert known == {"MeterValueSampleInterval": (False, "30")}
        assert await change(h, "MeterValueSampleInterval", "17") == "Accepted"
        known, _ = await get_configuration(h, ["MeterValueSampleInterval"])
        assert known == {"MeterValueSampleInterval": (False, "17")}
        assert h.agent.keys.get("MeterValueSampleInterval") == 17
        assert await change(h, "LocalPreAuthorize", "TRUE") == "Accepted"
        assert await change(h, "MeterValuesSampledData", "Energy.Active.Import.Register,Voltage") == "Accepted"

        m = h.mark()
        await h.restart_agent()
        await h.cs.wait_for("BootNotification", start_index=m)
        assert h.cs.connections == 2
        known, unknown = await get_configuration(
            h, ["MeterValueSampleInterval", "LocalPreAuthorize", "MeterValuesSampledData"])
        assert unknown == []
        assert known == {"MeterValueSampleInterval": (False, "17"), "LocalPreAuthorize": (False, "true"),
                         "MeterValuesSampledData": (False, "Energy.Active.Import.Register,Voltage")}
        assert h.agent.keys.get("MeterValueSampleInterval") == 17
        assert h.agent.keys.get("LocalPreAuthorize") is True


@pytest.mark.parametrize("key, value", [
    ("NumberOfConnectors", "2"),
    ("GetConfigurationMaxKeys", "5"),
    ("SupportedFeatureProfiles", "Core"),
])
async def test_tc_021_read_only_key_is_rejected(tmp_path, key, value):
    """TC_021_CS, read-only keys: ChangeConfiguration answers Rejected and the value stays."""
    async with AgentHarness(tmp_path) as h:
        before, _ = await get_configuration(h, [key])
        assert before[key][0] is True
        assert await change(h, key, value) == "Rejected"
        after, _ = await get_configuration(h, [key])
        assert after == before
        m = h.mark()
        await h.restart_agent()
        await h.cs.wait_for("BootNotification", start_index=m)
        again, _ = await get_configuration(h, [key])
        assert again == before


async def test_tc_021_heartbeat_interval_change_rearms_the_timer_at_once(tmp_path):
    """TC_021_CS with HeartbeatInterval: the new interval applies from the change on,
    not after the heartbeat that was due under the old one."""
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        await h.settle()
        await h.clock.advance(100)  # well inside the 300 s from the boot answer
        assert h.received("Heartbeat") == []
        assert await change(h, "HeartbeatInterval", "20") == "Accepted"
        m = h.mark()
        await h.clock.advance(19)
        await h.settle(0.1)
        assert h.received("Heartbeat", m) == [], "heartbeat before the new interval elapsed"
        await h.clock.advance(2)
        await h.cs.wait_for("Heartbeat", start_index=m, timeout_s=3)
        await h.settle(0.1)
        # And every 20 s from then on.
        m = h.mark()
        await h.clock.advance(21)
        await h.cs.wait_for("Heartbeat", start_index=m, timeout_s=3)
        assert len(h.received("Heartbeat")) == 2
        # Longer again: no heartbeat within the old 20 s.
        await h.settle(0.1)
        assert await change(h, "HeartbeatInterval", "600") == "Accepted"
        m = h.mark()
        await h.clock.advance(300)
        await h.settle(0.1)
        assert h.received("Heartbeat", m) == []
        await h.clock.advance(301)
        await h.cs.wait_for("Heartbeat", start_index=m, timeout_s=3)


async def test_tc_040_1_unknown_key_is_not_supported(tmp_path):
    """TC_040_1_CS Configuration key - NotSupported."""
    async with AgentHarness(tmp_path) as h:
        assert await change(h, "Testing", "true") == "NotSupported"
        known, unknown = await get_configuration(h, ["Testing"])
        assert known == {} and unknown == ["Testing"]


@pytest.mark.parametrize("key, value", [
    ("MeterValueSampleInterval", "-1"),  # the OCTT step
    ("MeterValueSampleInterval", "ten"),
    ("HeartbeatInterval", "1.5"),
    ("HeartbeatInterval", ""),
    ("LocalPreAuthorize", "yes"),
    ("MeterValuesSampledData", "Energy.Active.Import.Register,Bogus.Measurand"),
    ("MeterValuesSampledData", "Energy.Active.Import.Register,,Voltage"),
    ("ConnectorPhaseRotation", "1.XYZ"),
])
async def test_tc_040_2_invalid_value_is_rejected(tmp_path, key, value):
    """TC_040_2_CS Configuration key - Invalid value: Rejected (or a PropertyConstraintViolation
    CALLERROR, which the OCTT also accepts); the old value stays."""
    async with AgentHarness(tmp_path, allowed_errors=("PropertyConstraintViolation",)) as h:
        before, _ = await get_configuration(h, [key])
        try:
            status = await change(h, key, value)
        except OCPPError as e:
            assert e.code == "PropertyConstraintViolation"
        else:
            assert status == "Rejected"
        after, _ = await get_configuration(h, [key])
        assert after == before
