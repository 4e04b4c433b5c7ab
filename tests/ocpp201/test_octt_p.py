"""OCTT 2.0.1 block P, data transfer and custom data: DataTransfer from the CSMS (the
station implements no vendor extension), customData in requests (ignored, never refused),
and DataTransfer from the station (P02). The agent against the test central system; every
frame schema-checked, no CALLERROR allowed.
"""

import pytest
from ocpp.exceptions import OCPPError

from tests.harness import hw, quiet
from tests.ocpp201.octt201 import errors, harness, local_start, received, wait_connector

CUSTOM = {"vendorId": "org.openchargealliance.octt", "note": "ignored by the station"}


async def test_tc_p_01_data_transfer_unknown_vendor_id(tmp_path):
    async with harness(tmp_path) as h:
        m = h.mark()
        got = await h.cs.call("DataTransfer", vendorId="org.openchargealliance.octt", messageId="TestMessage",
                              data={"any": ["json", 1]})
        assert got == {"status": "UnknownVendorId"}
        got = await h.cs.call("DataTransfer", vendorId="org.openchargealliance.octt")
        assert got == {"status": "UnknownVendorId"}
        await quiet(h)
        assert not errors(h) and h.agent.client.online
        assert received(h, "DataTransfer", m) == []  # nothing sent back but the answers


async def test_tc_p_03_custom_data_in_set_and_get_variables(tmp_path):
    """SetVariables OfflineThreshold = 200 with customData on the request and on the item:
    Accepted; GetVariables gives 200 (Actual or omitted)."""
    async with harness(tmp_path) as h:
        got = await h.cs.call("SetVariables", customData=CUSTOM, setVariableData=[
            {"component": {"name": "OCPPCommCtrlr", "customData": CUSTOM},
             "variable": {"name": "OfflineThreshold", "customData": CUSTOM},
             "attributeValue": "200", "attributeType": "Actual", "customData": CUSTOM}])
        assert got["setVariableResult"][0]["attributeStatus"] == "Accepted"
        got = await h.cs.call("GetVariables", customData=CUSTOM, getVariableData=[
            {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "OfflineThreshold"},
             "attributeType": "Actual", "customData": CUSTOM}])
        result = got["getVariableResult"][0]
        assert result["attributeStatus"] == "Accepted"
        assert result.get("attributeType", "Actual") == "Actual"
        assert result["attributeValue"] == "200"
        assert h.agent.client.device_model.get("OCPPCommCtrlr.OfflineThreshold") == 200
        assert not errors(h)


async def test_tc_p_04_custom_data_in_a_charging_profile(tmp_path):
    """SetChargingProfile TxDefaultProfile with customData on the profile and on its period:
    Accepted, and its 6 A limit reaches the EVSE controller once a transaction runs."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        profile = {"id": 31, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
                   "chargingProfileKind": "Absolute", "customData": CUSTOM,
                   "chargingSchedule": [{"id": 1, "duration": 300, "chargingRateUnit": "A",
                                         "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 6,
                                                                     "numberPhases": 3, "customData": CUSTOM}]}]}
        got = await h.cs.call("SetChargingProfile", evseId=1, chargingProfile=profile)
        assert got == {"status": "Accepted"}
        assert len(h.station.charging_profiles) == 1
        await local_start(h)
        await quiet(h)
        assert hw(h)["current_limit_a"] == pytest.approx(6, abs=1e-3)
        assert not errors(h)


async def test_data_transfer_from_the_station_p02(tmp_path):
    """The station's DataTransfer: vendorId, messageId and any JSON data go out as given, the
    answer's status and data come back; a CALLERROR answer is raised and the link stays up."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        h.cs.handlers["DataTransfer"] = lambda p: {"status": "Accepted", "data": {"echoData": p.get("data")}}
        status, data = await h.agent.client.data_transfer("org.example", "ping", {"someValue": 42})
        assert (status, data) == ("Accepted", {"echoData": {"someValue": 42}})  # JSON data kept as it is
        assert received(h, "DataTransfer") == [
            {"vendorId": "org.example", "messageId": "ping", "data": {"someValue": 42}}]

        def refuse(_p):
            raise RuntimeError("the CSMS fails")

        h.cs.handlers["DataTransfer"] = refuse
        with pytest.raises(OCPPError):
            await h.agent.client.data_transfer("org.example")
        assert received(h, "DataTransfer")[-1] == {"vendorId": "org.example"}
        assert h.agent.client.online
