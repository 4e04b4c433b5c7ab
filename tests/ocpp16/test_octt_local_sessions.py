"""OCTT 1.6 conformance scenarios for local sessions, boot and metering, end to end.

Each test runs the real agent on the simulated board against the test central
system on loopback and follows the steps and tool validations of one test case
of the OCTT 1.6 test case document (spec/octt-1.6-test-case-document-2024-04.txt).
Clock-driven steps run in virtual time. The "Charging" reusable state is the
document's: plug in, GetConfiguration(AuthorizeRemoteTxRequests), remote start.
"""

from hal.runtime.clock import VirtualClock
from tests.harness import (TAG, AgentHarness, assert_charging_hw, assert_no_power, calls_from_agent, epoch, hw, keys,
                           quiet, reach_charging, replies_to_agent, statuses, until)
from tools.csms import TestCentralSystem

TAG_2 = "TAG-2"
MIDNIGHT = 1_767_225_600.0  # 2026-01-01T00:00:00Z, the VirtualClock's default start


async def charging(h: AgentHarness, id_tag: str = TAG, connector_id: int = 1) -> dict:
    """Reusable state "Charging" (OCTT table 105): GetConfiguration(AuthorizeRemoteTxRequests),
    plug in, remote start, Charging. Returns the StartTransaction.req payload with the
    assigned ``transactionId`` added."""
    conf = await h.cs.call("GetConfiguration", key=["AuthorizeRemoteTxRequests"])
    remote_auth = conf["configurationKey"][0]["value"] == "true"
    await h.wait_status(connector_id, "Available")
    return await reach_charging(h, connector_id, id_tag, authorize_remote=remote_auth)


async def ev_side_disconnect(h: AgentHarness) -> tuple:
    """Charging for 30 s, then the cable is pulled out at the EV side.
    Returns (the StartTransaction.req payload with its id, the record index before the unplug)."""
    start = await charging(h)
    await h.clock.advance(30)
    m = h.mark()
    h.sim.unplug(1)
    return start, m


# ---------------------------------------------------------------------------- boot


async def test_tc_002_cold_boot_pending(tmp_path):
    """TC_002_CS Cold Boot Charge Point - Pending: configuration is read and set while
    Pending, BootNotification is repeated after the Pending interval, then statuses
    and heartbeats at the Accepted interval; nothing else is sent before Accepted."""
    cs = TestCentralSystem(quiet=True, protocols=("ocpp1.6",), boot_status="Pending", boot_interval_s=20)
    async with AgentHarness(tmp_path, csms=cs, ocpp=keys()) as h:
        # Steps 1-2: BootNotification, answered Pending with a 20 s interval.
        await until(lambda: h.agent.client.registration == "Pending")
        assert replies_to_agent(h, "BootNotification")[0]["status"] == "Pending"
        # Steps 3-6: the central system reads and sets configuration while Pending.
        conf = await h.cs.call("GetConfiguration")
        config = {k["key"]: k for k in conf["configurationKey"]}
        assert config["MeterValueSampleInterval"]["value"] == "60"
        assert config["MeterValueSampleInterval"]["readonly"] is False
        assert {"HeartbeatInterval", "ConnectionTimeOut", "NumberOfConnectors"} <= set(config)
        assert "unknownKey" not in conf
        reply = await h.cs.call("ChangeConfiguration", key="MeterValueSampleInterval", value="30")
        assert reply == {"status": "Accepted"}
        assert h.agent.keys.get("MeterValueSampleInterval") == 30

        # A card swiped while Pending must not make the agent send an Authorize.req either.
        h.sim.swipe(TAG)
        # Step 7: the next BootNotification comes after the Pending interval, not before.
        cs.boot_status, cs.boot_interval_s = "Accepted", 120
        await h.clock.advance(19)
        await quiet(h)
        assert calls_from_agent(h) == ["BootNotification"]  # nothing but the boot while Pending
        m = h.mark()
        await h.clock.advance(1)
        await h.cs.wait_for("BootNotification", start_index=m)
        # Step 8: Accepted. Steps 9-10: a StatusNotification Available per connector and for 0.
        await h.wait_status(0, "Available", m)
        await h.wait_status(1, "Available", m)
        assert calls_from_agent(h, 0)[:2] == ["BootNotification", "BootNotification"]
        assert h.agent.keys.get("HeartbeatInterval") == 120  # the interval from step 8

        # Steps 11-12: a Heartbeat every 120 s (virtual time).
        for _ in range(2):
            m = h.mark()
            await h.clock.advance(119)
            await quiet(h)
            assert "Heartbeat" not in calls_from_agent(h, m)
            await h.clock.advance(1)
            await h.cs.wait_for("Heartbeat", start_index=m, timeout_s=2)
        # The value set while Pending was kept.
        conf = await h.cs.call("GetConfiguration", key=["MeterValueSampleInterval"])
        assert conf["configurationKey"][0]["value"] == "30"


# ---------------------------------------------------------------------------- start


async def test_tc_004_1_identification_first(tmp_path):
    """TC_004_1_CS Regular Charging Session - Identification First: swipe (Authorize,
    Preparing), then plug in: StartTransaction and Charging, no second Authorize."""
    async with AgentHarness(tmp_path, ocpp=keys(MeterValueSampleInterval=60)) as h:
        await h.wait_status(1, "Available")
        m = h.mark()
        # Reusable state Authorized: Authorize.req with the tag, then Preparing.
        h.sim.swipe(TAG)
        assert await h.cs.wait_for("Authorize", start_index=m) == {"idTag": TAG}
        await h.wait_status(1, "Preparing", m)
        assert replies_to_agent(h, "Authorize", m)[0]["idTagInfo"]["status"] == "Accepted"
        await quiet(h)
        assert "StartTransaction" not in calls_from_agent(h, m)  # no EV yet: no transaction
        assert_no_power(h)  # authorized but no EV: nothing offered
        # Steps 2-6: plug in; StartTransaction and Charging (either order).
        h.sim.plug(1)
        start = await h.cs.wait_for("StartTransaction", start_index=m)
        assert start["connectorId"] == 1 and start["idTag"] == TAG and start["meterStart"] == 0
        assert epoch(start["timestamp"]) == h.clock.time()
        await h.wait_status(1, "Charging", m)
        await until(lambda: replies_to_agent(h, "StartTransaction", m))
        assert replies_to_agent(h, "StartTransaction", m)[0]["idTagInfo"]["status"] == "Accepted"
        assert calls_from_agent(h, m).count("Authorize") == 1  # plugging in does not re-authorize
        assert statuses(h, 1, m) == ["Preparing", "Charging"]
        assert_charging_hw(h)
        assert hw(h)["current_limit_a"] == 32.0


async def test_tc_004_2_identification_first_connection_timeout(tmp_path):
    """TC_004_2_CS Regular Charging Session - Identification First - ConnectionTimeOut:
    authorized but no EV within ConnectionTimeOut: back to Available, no transaction."""
    async with AgentHarness(tmp_path, ocpp=keys(ConnectionTimeOut=30)) as h:
        await h.wait_status(1, "Available")
        m = h.mark()
        h.sim.swipe(TAG)  # reusable state Authorized
        assert await h.cs.wait_for("Authorize", start_index=m) == {"idTag": TAG}
        await h.wait_status(1, "Preparing", m)
        # Just before the timeout nothing happens yet.
        await h.clock.advance(29)
        await quiet(h)
        assert statuses(h, 1, m) == ["Preparing"]
        assert_no_power(h)
        # Steps 2-3: when ConnectionTimeOut expires the connector is Available again.
        await h.clock.advance(1)
        await h.wait_status(1, "Available", m, timeout_s=2)
        assert statuses(h, 1, m) == ["Preparing", "Available"]
        assert h.station.connector(1).pending_auth is None
        # The authorization is gone: an EV plugged in now does not start a transaction.
        m2 = h.mark()
        h.sim.plug(1)
        await h.wait_status(1, "Preparing", m2)
        await quiet(h)
        assert "StartTransaction" not in calls_from_agent(h, m)
        assert h.station.connector(1).transaction is None
        assert_no_power(h)


async def test_tc_023_authorize_invalid(tmp_path):
    """TC_023_CS Start Charging Session - Authorize invalid: plug in (Preparing), an
    invalid tag is presented: Authorize answered Invalid, no transaction, no energy."""
    cs = TestCentralSystem(quiet=True, protocols=("ocpp1.6",), reject_tags=["BAD-TAG"])
    async with AgentHarness(tmp_path, csms=cs, ocpp=keys(LocalPreAuthorize=True)) as h:
        await h.wait_status(1, "Available")
        m = h.mark()
        h.sim.plug(1)  # step 1: Preparing
        await h.wait_status(1, "Preparing", m)
        h.sim.swipe("BAD-TAG")  # steps 3-4
        assert await h.cs.wait_for("Authorize", start_index=m) == {"idTag": "BAD-TAG"}
        await until(lambda: replies_to_agent(h, "Authorize", m))
        assert replies_to_agent(h, "Authorize", m)[0]["idTagInfo"]["status"] == "Invalid"
        # Expected: no transaction, now or later (past ConnectionTimeOut), and no energy.
        await quiet(h)
        await h.clock.advance(120)
        await quiet(h)
        assert calls_from_agent(h, m) == ["StatusNotification", "Authorize"]
        assert statuses(h, 1, m) == ["Preparing"]
        assert h.station.connector(1).transaction is None
        assert_no_power(h)
        assert hw(h)["cp_state"] == "B" and hw(h)["energy_wh"] == 0


# ---------------------------------------------------------------------------- stop


async def test_tc_068_stop_with_same_id_tag(tmp_path):
    """TC_068_CS Stop transaction - IdTag in StopTransaction matches IdTag in
    StartTransaction: another tag neither authorizes nor stops; the starting tag stops
    (no Authorize), StopTransaction carries it, the connector goes Finishing."""
    async with AgentHarness(tmp_path, ocpp=keys()) as h:
        start = await charging(h)
        await h.clock.advance(600)  # ten minutes of charging
        # Step 1: a different tag: no Authorize.req and no StopTransaction.req.
        m = h.mark()
        h.sim.swipe(TAG_2)
        await quiet(h)
        sent = calls_from_agent(h, m)
        assert "Authorize" not in sent and "StopTransaction" not in sent, sent
        assert h.station.connector(1).transaction is not None
        assert_charging_hw(h)
        # Steps 3-6: the starting tag stops it: StopTransaction and Finishing (either order).
        h.sim.swipe(TAG)
        stop = await h.cs.wait_for("StopTransaction", start_index=m)
        await h.wait_status(1, "Finishing", m)
        assert stop["idTag"] == start["idTag"] == TAG
        assert stop["transactionId"] == start["transactionId"]
        assert stop.get("reason", "Local") == "Local"
        assert stop["meterStop"] == round(hw(h)["energy_wh"]) > 0  # 22 kW for 600 s: ~3680 Wh
        assert abs(stop["meterStop"] - 3680) <= 1
        assert "Authorize" not in calls_from_agent(h, m)  # the starting tag needs no Authorize
        assert statuses(h, 1, m) == ["Finishing"]  # EV still plugged in
        assert_no_power(h)


PARENT = "GROUP-1"


def with_parent(reply: dict, tags=(TAG, TAG_2)):
    """A central system handler answering ``reply`` plus an idTagInfo Accepted, with
    parentIdTag PARENT for the request's idTag if it is one of ``tags`` (one group)."""
    return lambda p: dict(reply, idTagInfo=dict(
        {"status": "Accepted"}, **({"parentIdTag": PARENT} if p["idTag"] in tags else {})))


async def test_tc_069_stop_with_tag_of_same_parent(tmp_path):
    """TC_069_CS Stop transaction - ParentIdTag in StopTransaction matches ParentIdTag in
    StartTransaction: a different tag is sent to Authorize; its Authorize.conf has the
    starting tag's parentIdTag (known from the StartTransaction.conf), so it stops the
    transaction: StopTransaction with that tag, the connector goes Finishing."""
    async with AgentHarness(tmp_path, ocpp=keys()) as h:
        h.cs.handlers["StartTransaction"] = with_parent({"transactionId": 69})
        h.cs.handlers["Authorize"] = with_parent({})
        start = await charging(h)
        await until(lambda: h.station.connector(1).transaction.parent_id_tag == PARENT)
        await h.clock.advance(60)
        # Steps 1-2: a different tag of the same group: Authorize.req, Accepted with the same parent.
        m = h.mark()
        h.sim.swipe(TAG_2)
        auth = await h.cs.wait_for("Authorize", start_index=m)
        assert auth == {"idTag": TAG_2} and auth["idTag"] != start["idTag"]
        await until(lambda: replies_to_agent(h, "Authorize", m))
        assert replies_to_agent(h, "Authorize", m)[0]["idTagInfo"] == {"status": "Accepted", "parentIdTag": PARENT}
        # Steps 3-6: StopTransaction with the tag of step 1, and Finishing (either order).
        stop = await h.cs.wait_for("StopTransaction", start_index=m)
        await h.wait_status(1, "Finishing", m)
        assert stop["idTag"] == TAG_2
        assert stop["transactionId"] == start["transactionId"] == 69
        assert stop.get("reason", "Local") == "Local"
        assert statuses(h, 1, m) == ["Finishing"]  # EV still plugged in
        assert h.station.connector(1).transaction is None
        assert_no_power(h)


async def test_tc_069_a_tag_of_another_group_does_not_stop(tmp_path):
    """TC_069_CS's counterpart: a different tag whose Authorize.conf has another (or no)
    parentIdTag is authorized but neither stops the transaction nor starts one."""
    async with AgentHarness(tmp_path, ocpp=keys()) as h:
        h.cs.handlers["StartTransaction"] = with_parent({"transactionId": 69})
        h.cs.handlers["Authorize"] = with_parent({}, tags=(TAG,))
        await charging(h)
        await until(lambda: h.station.connector(1).transaction.parent_id_tag == PARENT)
        m = h.mark()
        h.sim.swipe(TAG_2)
        assert await h.cs.wait_for("Authorize", start_index=m) == {"idTag": TAG_2}
        await quiet(h)
        assert calls_from_agent(h, m) == ["Authorize"]
        assert h.station.connector(1).transaction is not None
        assert_charging_hw(h)


async def test_tc_069_offline_parent_from_the_local_list(tmp_path):
    """TC_069_CS while the central system is unreachable: the different tag's parentIdTag
    comes from the Local Authorization List (LocalAuthorizeOffline); it stops the
    transaction, and the StopTransaction with that tag is delivered after the reconnect."""
    cfg = keys(LocalAuthListEnabled=True, LocalAuthorizeOffline=True)
    async with AgentHarness(tmp_path, ocpp=cfg) as h:
        h.cs.handlers["StartTransaction"] = with_parent({"transactionId": 69})
        entry = {"idTag": TAG_2, "idTagInfo": {"status": "Accepted", "parentIdTag": PARENT}}
        reply = await h.cs.call("SendLocalList", listVersion=1, updateType="Full", localAuthorizationList=[entry])
        assert reply == {"status": "Accepted"}
        start = await charging(h)
        await until(lambda: h.station.connector(1).transaction.parent_id_tag == PARENT)
        port = await h.go_offline()
        m = h.mark()
        h.sim.swipe(TAG_2)
        await until(lambda: h.station.connector(1).transaction is None)
        assert_no_power(h)
        await h.go_online(port)
        stop = await h.cs.wait_for("StopTransaction", start_index=m)
        assert stop["idTag"] == TAG_2 and stop["transactionId"] == start["transactionId"] == 69
        assert "Authorize" not in calls_from_agent(h, m)


async def test_tc_005_1_ev_side_disconnect_stop_and_unlock(tmp_path):
    """TC_005_1_CS EV Side Disconnected - StopTransactionOnEVSideDisconnect = true -
    UnlockConnectorOnEVSideDisconnect = true: StopTransaction EVDisconnected, Finishing."""
    ocpp = keys(StopTransactionOnEVSideDisconnect=True, UnlockConnectorOnEVSideDisconnect=True)
    async with AgentHarness(tmp_path, ocpp=ocpp) as h:
        start, m = await ev_side_disconnect(h)
        stop = await h.cs.wait_for("StopTransaction", start_index=m)
        await h.wait_status(1, "Finishing", m)
        assert stop["reason"] == "EVDisconnected"
        assert stop["transactionId"] == start["transactionId"]
        assert stop["meterStop"] >= start["meterStart"]
        assert_no_power(h)
        await h.wait_status(1, "Available", m)
        assert statuses(h, 1, m) == ["Finishing", "Available"]  # Finishing before Available
        # Plugging in again does not resume the stopped transaction.
        m2 = h.mark()
        h.sim.plug(1)
        await h.wait_status(1, "Preparing", m2)
        await quiet(h)
        assert "StartTransaction" not in calls_from_agent(h, m2)
        assert_no_power(h)


async def test_tc_005_2_ev_side_disconnect_stop_no_unlock(tmp_path):
    """TC_005_2_CS EV Side Disconnected - StopTransactionOnEVSideDisconnect = true -
    UnlockConnectorOnEVSideDisconnect = false: StopTransaction EVDisconnected,
    Finishing or Available, then UnlockConnector is Unlocked."""
    ocpp = keys(StopTransactionOnEVSideDisconnect=True, UnlockConnectorOnEVSideDisconnect=False)
    async with AgentHarness(tmp_path, ocpp=ocpp) as h:
        start, m = await ev_side_disconnect(h)
        stop = await h.cs.wait_for("StopTransaction", start_index=m)
        assert stop["reason"] == "EVDisconnected"
        assert stop["transactionId"] == start["transactionId"]
        first = await h.cs.wait_for("StatusNotification", lambda p: p["connectorId"] == 1, start_index=m)
        assert first["status"] in ("Finishing", "Available")
        await h.wait_status(1, "Available", m)
        assert_no_power(h)
        # Steps 5-6: UnlockConnector answered Unlocked (the sim board has a lock).
        reply = await h.cs.call("UnlockConnector", connectorId=1)
        assert reply == {"status": "Unlocked"}
        assert not hw(h)["locked"]
        assert len(h.received("StopTransaction", m)) == 1  # unlocking stops nothing more


async def test_tc_005_3_ev_side_disconnect_transaction_continues(tmp_path):
    """TC_005_3_CS EV Side Disconnected - StopTransactionOnEVSideDisconnect = false -
    UnlockConnectorOnEVSideDisconnect = false: the transaction continues SuspendedEV
    with info "EV side disconnected" until RemoteStop: Finishing and reason Remote."""
    ocpp = keys(StopTransactionOnEVSideDisconnect=False, UnlockConnectorOnEVSideDisconnect=False)
    async with AgentHarness(tmp_path, ocpp=ocpp) as h:
        start, m = await ev_side_disconnect(h)
        # Step 1: SuspendedEV and/or SuspendedEVSE, info "EV side disconnected".
        suspended = await h.cs.wait_for("StatusNotification", lambda p: p["connectorId"] == 1, start_index=m)
        assert suspended["status"] in ("SuspendedEV", "SuspendedEVSE")
        assert suspended["info"] == "EV side disconnected"
        await quiet(h)
        assert "StopTransaction" not in calls_from_agent(h, m)  # the transaction goes on
        assert h.station.connector(1).transaction.backend_id == start["transactionId"]
        status = hw(h)
        assert not status["contactor_closed"] and status["power_w"] == 0  # no EV: contactor open
        # Steps 3-8: RemoteStopTransaction; Finishing and StopTransaction reason Remote.
        m2 = h.mark()
        reply = await h.cs.call("RemoteStopTransaction", transactionId=start["transactionId"])
        assert reply == {"status": "Accepted"}
        stop = await h.cs.wait_for("StopTransaction", start_index=m2)
        assert stop["reason"] == "Remote" and stop["transactionId"] == start["transactionId"]
        await h.wait_status(1, "Finishing", m2)
        await h.wait_status(1, "Available", m2)
        assert statuses(h, 1, m2) == ["Finishing", "Available"]
        assert_no_power(h)


# ---------------------------------------------------------------------------- metering


async def meter_values_after(h: AgentHarness, seconds: int) -> dict:
    """Nothing for ``seconds`` - 1 s of virtual time, then the MeterValues.req at ``seconds``."""
    m = h.mark()
    await h.clock.advance(seconds - 1)
    await quiet(h)
    assert "MeterValues" not in calls_from_agent(h, m)
    await h.clock.advance(1)
    return await h.cs.wait_for("MeterValues", start_index=m, timeout_s=2)


def sampled(meter_value: dict) -> dict:
    """{(measurand, phase): sampledValue} of one MeterValue."""
    return {(s["measurand"], s.get("phase")): s for s in meter_value["sampledValue"]}


async def test_tc_070_sampled_meter_values(tmp_path):
    """TC_070_CS Sampled Meter Values: MeterValues every MeterValueSampleInterval from
    the transaction start, with each measurand of MeterValuesSampledData, context
    Sample.Periodic and the transactionId; a new interval takes effect at once;
    StopTxnSampledData samples go into StopTransaction.transactionData."""
    measurands = "Energy.Active.Import.Register,Power.Active.Import,Current.Import,Current.Offered"
    ocpp = keys(MeterValueSampleInterval=10, ClockAlignedDataInterval=0, MeterValuesSampledData=measurands,
                StopTxnSampledData="Energy.Active.Import.Register")
    async with AgentHarness(tmp_path, ocpp=ocpp) as h:
        conf = await h.cs.call("GetConfiguration", key=["MeterValuesSampledData"])
        configured = conf["configurationKey"][0]["value"].split(",")
        assert configured == measurands.split(",")
        start = await charging(h)
        t0 = epoch(start["timestamp"])
        assert t0 == h.clock.time()
        expected_keys = {("Energy.Active.Import.Register", None), ("Power.Active.Import", None),
                         ("Current.Import", "L1"), ("Current.Import", "L2"), ("Current.Import", "L3"),
                         ("Current.Offered", None)}
        times, energies = [], []
        for _ in range(3):  # three times the interval after the start
            mv = await meter_values_after(h, 10)
            assert mv["connectorId"] == 1 and mv["transactionId"] == start["transactionId"]
            assert len(mv["meterValue"]) == 1
            values = sampled(mv["meterValue"][0])
            assert set(values) == expected_keys
            assert {s["context"] for s in mv["meterValue"][0]["sampledValue"]} == {"Sample.Periodic"}
            assert values[("Power.Active.Import", None)]["value"] == "22080"
            assert values[("Current.Import", "L1")]["value"] == "32"
            assert values[("Current.Offered", None)]["value"] == "32"
            times.append(epoch(mv["meterValue"][0]["timestamp"]))
            energies.append(float(values[("Energy.Active.Import.Register", None)]["value"]))
        assert times == [t0 + 10, t0 + 20, t0 + 30]
        assert energies[0] > 0 and energies[1] > energies[0] and energies[2] > energies[1]
        assert abs(energies[2] - 22080 * 30 / 3600) < 0.2

        # A new interval re-arms the sampler at once: nothing at the old t0 + 40.
        await h.clock.advance(4)
        reply = await h.cs.call("ChangeConfiguration", key="MeterValueSampleInterval", value="25")
        assert reply == {"status": "Accepted"}
        mv = await meter_values_after(h, 25)
        assert epoch(mv["meterValue"][0]["timestamp"]) == t0 + 59

        # StopTransaction.transactionData: Begin, each periodic sample, End (StopTxnSampledData).
        await h.clock.advance(5)
        m = h.mark()
        h.sim.swipe(TAG)
        stop = await h.cs.wait_for("StopTransaction", start_index=m)
        data = stop["transactionData"]
        contexts = [d["sampledValue"][0]["context"] for d in data]
        assert contexts == ["Transaction.Begin"] + ["Sample.Periodic"] * 4 + ["Transaction.End"]
        assert [epoch(d["timestamp"]) for d in data] == [t0, t0 + 10, t0 + 20, t0 + 30, t0 + 59, t0 + 64]
        for d in data:
            assert [s["measurand"] for s in d["sampledValue"]] == ["Energy.Active.Import.Register"]
        assert abs(float(data[-1]["sampledValue"][0]["value"]) - stop["meterStop"]) <= 0.5


async def test_tc_071_clock_aligned_meter_values(tmp_path):
    """TC_071_CS Clock-aligned Meter Values: MeterValues at every ClockAlignedDataInterval
    boundary (timestamps on the boundary), each measurand of MeterValuesAlignedData,
    context Sample.Clock; StopTxnAlignedData and StopTxnSampledData in transactionData."""
    clock = VirtualClock(start=MIDNIGHT + 1000.25)  # 00:16:40.250, between two boundaries
    ocpp = keys(MeterValueSampleInterval=0, ClockAlignedDataInterval=900,
                MeterValuesAlignedData="Energy.Active.Import.Register,Power.Active.Import,Voltage",
                StopTxnAlignedData="Energy.Active.Import.Register",
                StopTxnSampledData="Energy.Active.Import.Register,Current.Offered")
    async with AgentHarness(tmp_path, ocpp=ocpp, clock=clock) as h:
        conf = await h.cs.call("GetConfiguration", key=["MeterValuesAlignedData"])
        assert conf["configurationKey"][0]["value"] == "Energy.Active.Import.Register,Power.Active.Import,Voltage"
        start = await charging(h)
        t0 = epoch(start["timestamp"])
        expected_keys = {("Energy.Active.Import.Register", None), ("Power.Active.Import", None),
                         ("Voltage", "L1-N"), ("Voltage", "L2-N"), ("Voltage", "L3-N")}
        boundaries = [MIDNIGHT + 1800, MIDNIGHT + 2700, MIDNIGHT + 3600]
        for at in boundaries:
            m = h.mark()
            await h.clock.advance(at - h.clock.time() - 1)
            await quiet(h)
            assert "MeterValues" not in calls_from_agent(h, m)
            await h.clock.advance(1)
            mv = await h.cs.wait_for("MeterValues", start_index=m, timeout_s=2)
            assert mv["connectorId"] == 1 and mv["transactionId"] == start["transactionId"]
            stamp = mv["meterValue"][0]["timestamp"]
            assert epoch(stamp) == at and stamp.endswith(("00:00.000Z", "15:00.000Z", "30:00.000Z", "45:00.000Z"))
            values = sampled(mv["meterValue"][0])
            assert set(values) == expected_keys
            assert {s["context"] for s in mv["meterValue"][0]["sampledValue"]} == {"Sample.Clock"}
            assert values[("Voltage", "L1-N")]["value"] == "230"
        assert [epoch(v["meterValue"][0]["timestamp"]) for v in h.received("MeterValues")] == boundaries

        # Stop: transactionData holds Begin/End (StopTxnSampledData) and every boundary
        # of the transaction (StopTxnAlignedData).
        await h.clock.advance(100)
        t_stop = h.clock.time()
        m = h.mark()
        h.sim.swipe(TAG)
        stop = await h.cs.wait_for("StopTransaction", start_index=m)
        data = stop["transactionData"]
        assert [d["sampledValue"][0]["context"] for d in data] == (
            ["Transaction.Begin"] + ["Sample.Clock"] * 3 + ["Transaction.End"])
        assert [epoch(d["timestamp"]) for d in data] == [t0] + boundaries + [t_stop]
        for d in data[1:-1]:
            assert [s["measurand"] for s in d["sampledValue"]] == ["Energy.Active.Import.Register"]
        for d in (data[0], data[-1]):
            assert [s["measurand"] for s in d["sampledValue"]] == ["Energy.Active.Import.Register",
                                                                   "Current.Offered"]
        assert data[0]["sampledValue"][1]["value"] == "0"  # nothing offered before the start
        assert abs(float(data[-1]["sampledValue"][0]["value"]) - stop["meterStop"]) <= 0.5

        # After the transaction, aligned values go on without a transactionId.
        m = h.mark()
        await h.clock.advance(MIDNIGHT + 4500 - h.clock.time())
        mv = await h.cs.wait_for("MeterValues", start_index=m, timeout_s=2)
        assert "transactionId" not in mv and epoch(mv["meterValue"][0]["timestamp"]) == MIDNIGHT + 4500
