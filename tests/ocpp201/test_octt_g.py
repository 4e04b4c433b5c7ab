"""OCTT 2.0.1 block G (availability): ChangeAvailability of the station, an EVSE or its
connector, to the state it already has, during a transaction (Scheduled until it ends), and
persisted over a reboot. The agent on the simulated board (two EVSEs, one connector each)
against the test central system over real websockets (tests/ocpp201/octt201.py).

Each test follows its OCTT case (spec/OCPP-2.0.1_edition3_part6-testcases.txt) and checks
that case's tool validations; the station reports states with StatusNotification (the
alternative to NotifyEvent AvailabilityState the cases allow).
"""

from tests.harness import assert_charging_hw, assert_no_power, hw, quiet, until
from tests.ocpp201.octt201 import TAG, errors, harness, local_start, received, tx_events, wait_connector
from tools.csms import IN

TWO = {"evse": {"connectors": 2}}
EVSE_1 = {"id": 1}
CONNECTOR_1 = {"id": 1, "connectorId": 1}


def last_status(h, evse_id: int, start: int = 0) -> str | None:
    got = [p["connectorStatus"] for p in received(h, "StatusNotification", start) if p["evseId"] == evse_id]
    return got[-1] if got else None


async def change(h, status: str, evse: dict | None = None) -> str:
    payload = {"operationalStatus": status}
    if evse is not None:
        payload["evse"] = evse
    return (await h.cs.call("ChangeAvailability", **payload))["status"]


async def booted(h) -> None:
    await wait_connector(h, "Available", 1)
    await wait_connector(h, "Available", 2)


async def cannot_charge(h, evse_id: int = 1) -> None:
    """An inoperative EVSE starts nothing: plug and badge, no transaction, nothing offered."""
    h.sim.plug(evse_id)
    h.sim.swipe(TAG)
    await quiet(h)
    await h.clock.advance(2)
    await quiet(h)
    assert h.station.connector(evse_id).transaction is None
    assert_no_power(h, evse_id)
    h.sim.unplug(evse_id)
    await quiet(h)


async def test_tc_g_03_04_evse_operative_to_inoperative_and_back(tmp_path):
    async with harness(tmp_path, board=TWO) as h:
        await booted(h)
        m = h.mark()
        assert await change(h, "Inoperative", EVSE_1) == "Accepted"  # TC_G_03 (reusable state Unavailable)
        status = await wait_connector(h, "Unavailable", 1, start=m)
        assert status["connectorId"] == 1
        await quiet(h)
        assert last_status(h, 2, m) is None  # the other EVSE is untouched
        await cannot_charge(h, 1)
        m = h.mark()
        assert await change(h, "Operative", EVSE_1) == "Accepted"  # TC_G_04 step 2
        status = await wait_connector(h, "Available", 1, start=m)  # step 3
        assert status["connectorId"] == 1
        await local_start(h)  # it charges again
        assert not errors(h)


async def test_tc_g_05_06_station_operative_to_inoperative_and_back(tmp_path):
    async with harness(tmp_path, board=TWO) as h:
        await booted(h)
        m = h.mark()
        assert await change(h, "Inoperative") == "Accepted"  # TC_G_05
        await until(lambda: last_status(h, 1, m) == "Unavailable" and last_status(h, 2, m) == "Unavailable")
        await cannot_charge(h, 1)
        await cannot_charge(h, 2)
        m = h.mark()
        assert await change(h, "Operative") == "Accepted"  # TC_G_06 step 2
        await until(lambda: last_status(h, 1, m) == "Available" and last_status(h, 2, m) == "Available")  # step 3
        await local_start(h)


async def test_tc_g_07_08_connector_operative_to_inoperative_and_back(tmp_path):
    async with harness(tmp_path, board=TWO) as h:
        await booted(h)
        m = h.mark()
        assert await change(h, "Inoperative", CONNECTOR_1) == "Accepted"  # TC_G_07
        status = await wait_connector(h, "Unavailable", 1, start=m)
        assert (status["evseId"], status["connectorId"]) == (1, 1)
        await quiet(h)
        assert last_status(h, 2, m) is None
        await cannot_charge(h, 1)
        m = h.mark()
        assert await change(h, "Operative", CONNECTOR_1) == "Accepted"  # TC_G_08
        status = await wait_connector(h, "Available", 1, start=m)
        assert (status["evseId"], status["connectorId"]) == (1, 1)
        assert await change(h, "Inoperative", {"id": 1, "connectorId": 2}) == "Rejected"  # no such connector
        assert await change(h, "Inoperative", {"id": 3}) == "Rejected"  # no such EVSE


async def test_tc_g_09_12_15_operative_to_operative_is_accepted_and_changes_nothing(tmp_path):
    async with harness(tmp_path, board=TWO) as h:
        await booted(h)
        m = h.mark()
        assert await change(h, "Operative", EVSE_1) == "Accepted"  # TC_G_09
        assert await change(h, "Operative") == "Accepted"  # TC_G_12
        assert await change(h, "Operative", CONNECTOR_1) == "Accepted"  # TC_G_15
        await quiet(h)
        assert {last_status(h, 1, m), last_status(h, 2, m)} <= {None, "Available"}
        await local_start(h)


async def test_tc_g_10_13_16_inoperative_to_inoperative_is_accepted_and_stays_unavailable(tmp_path):
    async with harness(tmp_path, board=TWO) as h:
        await booted(h)
        m = h.mark()
        assert await change(h, "Inoperative", EVSE_1) == "Accepted"
        await wait_connector(h, "Unavailable", 1, start=m)
        assert await change(h, "Inoperative", EVSE_1) == "Accepted"  # TC_G_10
        assert await change(h, "Inoperative", CONNECTOR_1) == "Accepted"  # TC_G_16
        await quiet(h)
        assert last_status(h, 1, m) == "Unavailable"
        await cannot_charge(h, 1)
        assert await change(h, "Inoperative") == "Accepted"  # TC_G_13 (the station)
        await until(lambda: last_status(h, 2, m) == "Unavailable")
        await quiet(h)
        m = h.mark()
        assert await change(h, "Inoperative") == "Accepted"  # TC_G_13 from the state Unavailable
        await until(lambda: last_status(h, 1, m) and last_status(h, 2, m))  # step 3: every connector
        assert last_status(h, 1, m) == last_status(h, 2, m) == "Unavailable"
        await cannot_charge(h, 2)


async def _inoperative_during_a_transaction(h, evse: dict | None) -> None:
    """TC_G_11 / TC_G_14 / TC_G_17: Scheduled while the transaction runs; it goes on,
    charging; StopAuthorized ends it (TxStopPoint Authorized) and the connector goes
    Unavailable with the EV still plugged in; unplugged, it stays Unavailable."""
    await booted(h)
    await local_start(h)
    await until(lambda: h.sim.status()["connectors"][0]["power_w"] > 0, clock=h.clock, step_s=1)
    m = h.mark()
    assert await change(h, "Inoperative", evse) == "Scheduled"  # step 2
    if evse is None:  # TC_G_14 step 3: the EVSEs without a transaction go at once
        await wait_connector(h, "Unavailable", 2, start=m)
    await h.clock.advance(30)  # <Configured Transaction Duration>
    await quiet(h)
    assert h.station.connector(1).transaction is not None
    assert_charging_hw(h)
    assert last_status(h, 1, m) is None  # still Occupied
    h.sim.swipe(TAG)  # StopAuthorized
    ended = await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Ended", start_index=m)
    assert ended["transactionInfo"]["stoppedReason"] == "Local"
    status = await wait_connector(h, "Unavailable", 1, start=m)  # the step after the one that ended it
    assert (status["evseId"], status["connectorId"]) == (1, 1)
    assert_no_power(h)
    m2 = h.mark()
    h.sim.unplug(1)
    await quiet(h)
    assert last_status(h, 1, m2) in (None, "Unavailable")
    await cannot_charge(h, 1)
    assert not [p for p in tx_events(h, m) if p["eventType"] == "Started"]
    assert not errors(h)


async def test_tc_g_11_evse_inoperative_with_a_transaction_is_scheduled(tmp_path):
    async with harness(tmp_path, board=TWO) as h:
        await _inoperative_during_a_transaction(h, EVSE_1)
        assert last_status(h, 2, 0) == "Available"


async def test_tc_g_14_station_inoperative_with_a_transaction_is_scheduled(tmp_path):
    async with harness(tmp_path, board=TWO) as h:
        await _inoperative_during_a_transaction(h, None)


async def test_tc_g_17_connector_inoperative_with_a_transaction_is_scheduled(tmp_path):
    async with harness(tmp_path, board=TWO) as h:
        await _inoperative_during_a_transaction(h, CONNECTOR_1)
        assert last_status(h, 2, 0) == "Available"


async def _persists_over_a_reboot(h, evse: dict | None, unavailable: set) -> None:
    await booted(h)
    m = h.mark()
    assert await change(h, "Inoperative", evse) == "Accepted"  # step 2
    await until(lambda: all(last_status(h, n, m) == "Unavailable" for n in unavailable))  # step 3
    m = h.mark()
    await h.restart_agent()  # step 5: Booted
    await h.cs.wait_for("BootNotification", start_index=m)
    await until(lambda: last_status(h, 1, m) and last_status(h, 2, m))
    for n in (1, 2):
        assert last_status(h, n, m) == ("Unavailable" if n in unavailable else "Available")
    for n in unavailable:
        await cannot_charge(h, n)


async def test_tc_g_18_evse_unavailable_persists_over_a_reboot(tmp_path):
    async with harness(tmp_path, board=TWO) as h:
        await _persists_over_a_reboot(h, EVSE_1, {1})


async def test_tc_g_19_connector_unavailable_persists_over_a_reboot(tmp_path):
    async with harness(tmp_path, board=TWO) as h:
        await _persists_over_a_reboot(h, CONNECTOR_1, {1})


async def test_tc_g_21_station_unavailable_persists_over_a_reboot_with_startup_security_event(tmp_path):
    async with harness(tmp_path, board=TWO) as h:
        m = h.mark()
        await _persists_over_a_reboot(h, None, {1, 2})
        boots = [i for i in range(m, len(h.cs.messages))
                 if h.cs.messages[i].action == "BootNotification" and h.cs.messages[i].direction == IN]
        event = await h.cs.wait_for("SecurityEventNotification", start_index=boots[-1])  # step 6
        assert event["type"] in ("StartupOfTheDevice", "ResetOrReboot")


# ---------------------------------------------------------------------- G05: faults

async def test_tc_g_20_lock_failure_on_authorization_is_reported_and_nothing_charges(tmp_path):
    """EVConnectedPreSession with a plug the lock cannot hold; Authorized: NotifyEvent
    Delta, ConnectorPlugRetentionLock / Problem "true" for the connector (step 2); the station
    did not start charging (post scenario)."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        h.sim.connector(1).lock.jammed = True  # the cable is not fully plugged in
        m = h.mark()
        h.sim.plug(1)
        await wait_connector(h, "Occupied", start=m)
        h.sim.swipe(TAG)  # Authorized
        event = await h.cs.wait_for("NotifyEvent", lambda p: p["eventData"][0]["component"]["name"]
                                    == "ConnectorPlugRetentionLock", start_index=m)
        data = event["eventData"][0]
        assert (data["trigger"], data["variable"]["name"], data["actualValue"]) == ("Delta", "Problem", "true")
        assert data["component"]["evse"] == {"id": 1, "connectorId": 1}
        await h.clock.advance(5)
        await quiet(h)
        assert not tx_events(h, m) and h.station.connector(1).transaction is None
        assert_no_power(h)
        assert not hw(h)["locked"]


async def test_g05_connector_fault_reports_faulted_and_stops_charging_until_cleared(tmp_path):
    """A fault of the EVSE (ground failure) during a transaction: StatusNotification Faulted,
    NotifyEvent RCD Tripped, no energy; cleared: the status goes back (Occupied, the EV is
    still in) and a NotifyEvent clears the problem."""
    async with harness(tmp_path) as h:
        await local_start(h)
        await until(lambda: hw(h)["power_w"] > 0, clock=h.clock, step_s=1)
        m = h.mark()
        h.sim.fault(1, "GroundFailure")
        await wait_connector(h, "Faulted", start=m)
        event = await h.cs.wait_for("NotifyEvent", lambda p: not p["eventData"][0].get("cleared"), start_index=m)
        data = event["eventData"][0]
        assert (data["component"]["name"], data["variable"]["name"], data["actualValue"]) == ("RCD", "Tripped", "true")
        await quiet(h)
        assert_no_power(h)
        m = h.mark()
        h.sim.clear(1)
        await wait_connector(h, "Occupied", start=m)
        cleared = await h.cs.wait_for("NotifyEvent", lambda p: p["eventData"][0].get("cleared"), start_index=m)
        assert cleared["eventData"][0]["actualValue"] == "false"
        assert not errors(h)
