"""OCTT 2.0.1 block H (reservations, H01-H04): TC_H_01 … TC_H_24 as they apply to this station
(one connector per EVSE, connector type cType2). The agent on the simulated board against the
test central system over real websockets, in virtual time; every agent frame is schema-checked.

Each test follows its case in spec/OCPP-2.0.1_edition3_part6-testcases.txt with the 2025-01
errata (H03: a presented matching idToken consumes the reservation, the connector is Available
until the cable comes; G01.FR.09: an EV plugged in does not make a reserved connector Occupied).
"""

from agent.core import model
from agent.core.isotime import format_datetime
from tests.harness import assert_charging_hw, assert_no_power, hw, quiet, until
from tests.ocpp201.octt201 import TAG, configure, errors, harness, received, tx_events, wait_connector

TAG2 = "11223344"
GROUP = "GROUP-77"
TWO = {"evse": {"connectors": 2}}


def token(tag: str = TAG) -> dict:
    return {"idToken": tag, "type": "ISO14443"}


async def reserve(h, reservation_id: int = 1, evse_id: int | None = 1, tag: str = TAG, seconds: float = 600,
                  **extra) -> dict:
    payload = dict({"id": reservation_id, "expiryDateTime": format_datetime(h.clock.time() + seconds),
                    "idToken": token(tag)}, **extra)
    if evse_id is not None:
        payload["evseId"] = evse_id
    return await h.cs.call("ReserveNow", **payload)


async def reserved(h, evse_id: int | None = 1, **kw) -> dict:
    """Reusable state Reserved: Accepted, StatusNotification Reserved (evse None: of EVSE 1)."""
    m = h.mark()
    assert await reserve(h, evse_id=evse_id, **kw) == {"status": "Accepted"}
    return await wait_connector(h, "Reserved", evse_id or 1, start=m)


async def energy_transfer_started(h, evse_id: int = 1) -> None:
    await until(lambda: hw(h, evse_id)["power_w"] > 0, clock=h.clock, step_s=1)
    assert_charging_hw(h, evse_id)


async def authorized_then_plug(h, tag: str = TAG, evse_id: int = 1) -> dict:
    """Reusable states Authorized (a badge) and EnergyTransferStarted: the Started event."""
    m = h.mark()
    h.sim.swipe(tag)
    auth = await h.cs.wait_for("Authorize", lambda p: p["idToken"]["idToken"] == tag, start_index=m)
    assert auth["idToken"] == token(tag)
    await until(lambda: h.station.connector(evse_id).pending_auth is not None)
    h.sim.plug(evse_id)
    started = await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Started"
                                  and p["evse"]["id"] == evse_id, start_index=m)
    await energy_transfer_started(h, evse_id)
    return started


async def refused(h, tag: str, evse_id: int = 1) -> None:
    """A badge of another idToken at a reserved EVSE: no transaction, no energy, still Reserved."""
    m = h.mark()
    h.sim.swipe(tag)
    await quiet(h, 0.2)
    await h.clock.advance(5)
    await quiet(h)
    assert h.station.connector(evse_id).pending_auth is None
    assert not [e for e in tx_events(h, m) if e["transactionInfo"].get("chargingState") == "Charging"]
    assert h.station.status_of(evse_id)[0] == model.RESERVED
    assert hw(h, evse_id)["power_w"] == 0


# ---------------------------------------------------------------------- H01 S2: a specific EVSE

async def test_tc_h_01_reserve_specific_evse_valid_idtoken(tmp_path):
    """Reserved; Authorized with the reserved idToken: Reserved -> Available (the reservation is
    consumed, H03.FR.09), then EnergyTransferStarted; Started carries the reservationId."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        await reserved(h, reservation_id=101)
        m = h.mark()
        started = await authorized_then_plug(h)
        await wait_connector(h, "Occupied", start=m)
        statuses = [p["connectorStatus"] for p in received(h, "StatusNotification", m)]
        assert statuses == ["Available", "Occupied"]
        assert started["reservationId"] == 101 and started["idToken"] == token()
        assert len(h.station.reservations) == 0 and not errors(h)


async def test_tc_h_02_a_reserved_evse_other_idtoken_local(tmp_path):
    """Main A: reserved for idToken 1, an EV plugged in first (the connector stays Reserved,
    G01.FR.09), idToken 2 badged: it does not charge."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        await reserved(h)
        m = h.mark()
        h.sim.plug(1)
        await quiet(h, 0.2)
        assert received(h, "StatusNotification", m) == []
        await refused(h, TAG2)
        assert received(h, "Authorize", m) == []  # no group in the reservation: refused locally
        assert_no_power(h)


async def test_tc_h_02_a_tx_start_point_ev_connected(tmp_path):
    """Main A with TxStartPoint EVConnected: the plug-in starts a transaction, the connector stays
    Reserved (errata H03 S1 #2); idToken 2 does not charge; the reserved idToken does."""
    async with harness(tmp_path) as h:
        await configure(h, {"TxCtrlr.TxStartPoint": "EVConnected"})
        await wait_connector(h, "Available")
        await reserved(h, reservation_id=102)
        m = h.mark()
        h.sim.plug(1)
        await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Started", start_index=m)
        await quiet(h)
        assert received(h, "StatusNotification", m) == []
        await refused(h, TAG2)
        h.sim.swipe(TAG)
        await energy_transfer_started(h)
        await wait_connector(h, "Occupied", start=m)
        assert len(h.station.reservations) == 0


async def test_tc_h_02_b_reserved_evse_other_idtoken_remote(tmp_path):
    """Main B: RequestStartTransaction for idToken 2 on the reserved EVSE: Rejected."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        await reserved(h)
        got = await h.cs.call("RequestStartTransaction", idToken=token(TAG2), evseId=1, remoteStartId=2)
        assert got["status"] == "Rejected"
        got = await h.cs.call("RequestStartTransaction", idToken=token(TAG), evseId=1, remoteStartId=3)
        assert got["status"] == "Accepted"  # the reserved idToken may (H03.FR.09 note)
        m = h.mark()
        h.sim.plug(1)
        started = await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Started", start_index=m)
        assert started["reservationId"] == 1 and started["transactionInfo"]["remoteStartId"] == 3


async def test_tc_h_03_reserve_reserved_evse_occupied(tmp_path):
    """The EVSE is reserved: another reservation of it is Occupied."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        await reserved(h, reservation_id=1)
        assert await reserve(h, reservation_id=2, tag=TAG2) == {"status": "Occupied"}


async def test_tc_h_04_reserve_occupied_evse(tmp_path):
    """EnergyTransferStarted on the EVSE: Occupied."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        await authorized_then_plug(h)
        assert await reserve(h, tag=TAG2) == {"status": "Occupied"}


async def test_tc_h_06_reserve_unavailable_evse(tmp_path):
    """The EVSE is Unavailable: Unavailable."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        got = await h.cs.call("ChangeAvailability", operationalStatus="Inoperative", evse={"id": 1})
        assert got["status"] == "Accepted"
        await wait_connector(h, "Unavailable")
        assert await reserve(h, tag=TAG2) == {"status": "Unavailable"}


async def test_tc_h_07_reservation_expires(tmp_path):
    """Not used before expiryDateTime (60 s): StatusNotification Available, then
    ReservationStatusUpdate Expired; then idToken 2 charges."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        await reserved(h, reservation_id=107, seconds=60)
        m = h.mark()
        await h.clock.advance(59)
        await quiet(h)
        assert received(h, "ReservationStatusUpdate", m) == []
        await h.clock.advance(2)
        update = await h.cs.wait_for("ReservationStatusUpdate", start_index=m)
        assert update == {"reservationId": 107, "reservationUpdateStatus": "Expired"}
        available = [i for i, msg in enumerate(h.cs.messages[m:]) if msg.action == "StatusNotification"]
        sent = [i for i, msg in enumerate(h.cs.messages[m:]) if msg.action == "ReservationStatusUpdate"]
        assert available and available[0] < sent[0]
        assert received(h, "StatusNotification", m)[0]["connectorStatus"] == "Available"
        started = await authorized_then_plug(h, TAG2)
        assert "reservationId" not in started


# ---------------------------------------------------------------------- H01 S1: an unspecified EVSE

async def test_tc_h_08_reserve_unspecified_evse(tmp_path):
    """No evseId on a one-EVSE station: Accepted, that EVSE Reserved; the reserved idToken
    charges, the Started with the reservationId."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        await reserved(h, evse_id=None, reservation_id=108)
        await refused(h, TAG2)
        started = await authorized_then_plug(h)
        assert started["reservationId"] == 108


async def test_tc_h_08_two_evses_one_kept_free(tmp_path):
    """No evseId on two EVSEs: both stay Available; idToken 2 takes one, the other becomes
    Reserved (H01.FR.20) and only the reserved idToken may use it."""
    async with harness(tmp_path, board=TWO) as h:
        await wait_connector(h, "Available", 2)
        m = h.mark()
        assert await reserve(h, reservation_id=8, evse_id=None) == {"status": "Accepted"}
        await quiet(h)
        assert received(h, "StatusNotification", m) == []
        other = await authorized_then_plug(h, TAG2, 1)
        assert "reservationId" not in other
        await wait_connector(h, "Reserved", 2, start=m)
        got = await h.cs.call("RequestStartTransaction", idToken=token("99887766"), evseId=2, remoteStartId=5)
        assert got["status"] == "Rejected"
        started = await authorized_then_plug(h, TAG, 2)
        assert started["reservationId"] == 8 and started["evse"]["id"] == 2


async def test_tc_h_09_unspecified_all_evses_reserved(tmp_path):
    """Every EVSE reserved: a reservation without evseId is Occupied."""
    async with harness(tmp_path, board=TWO) as h:
        await wait_connector(h, "Available", 2)
        await reserved(h, 1, reservation_id=1)
        await reserved(h, 2, reservation_id=2, tag="55667788")
        assert await reserve(h, reservation_id=3, evse_id=None, tag=TAG2) == {"status": "Occupied"}


async def test_tc_h_10_unspecified_all_evses_occupied(tmp_path):
    """EnergyTransferStarted on every EVSE: Occupied."""
    async with harness(tmp_path, board=TWO) as h:
        await wait_connector(h, "Available", 2)
        await authorized_then_plug(h, TAG, 1)
        await authorized_then_plug(h, "55667788", 2)
        assert await reserve(h, evse_id=None, tag=TAG2) == {"status": "Occupied"}


async def test_tc_h_12_unspecified_station_unavailable(tmp_path):
    """The station is Unavailable: Unavailable."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        got = await h.cs.call("ChangeAvailability", operationalStatus="Inoperative")
        assert got["status"] == "Accepted"
        await wait_connector(h, "Unavailable")
        assert await reserve(h, evse_id=None) == {"status": "Unavailable"}


async def test_tc_h_13_unspecified_not_supported(tmp_path):
    """ReservationCtrlr.NonEvseSpecific false: a reservation without evseId is Rejected."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        await configure(h, {"ReservationCtrlr.NonEvseSpecific": False})
        assert await reserve(h, evse_id=None) == {"status": "Rejected"}
        assert await reserve(h, evse_id=1) == {"status": "Accepted"}


async def test_tc_h_14_as_many_reservations_as_evses(tmp_path):
    """A reservation without evseId per EVSE (different idTokens): each Accepted; once there are
    as many as available EVSEs every connector is Reserved."""
    async with harness(tmp_path, board=TWO) as h:
        await wait_connector(h, "Available", 2)
        m = h.mark()
        assert await reserve(h, reservation_id=1, evse_id=None, tag=TAG) == {"status": "Accepted"}
        assert await reserve(h, reservation_id=2, evse_id=None, tag=TAG2) == {"status": "Accepted"}
        await wait_connector(h, "Reserved", 1, start=m)
        await wait_connector(h, "Reserved", 2, start=m)
        assert await reserve(h, reservation_id=3, evse_id=None, tag="55667788") == {"status": "Occupied"}


# ---------------------------------------------------------------------- H01 S3: a connector type

async def test_tc_h_15_reserve_connector_type(tmp_path):
    """connectorType cType2 (the station's, Connector.ConnectorType): Accepted, Reserved; the
    reserved idToken charges. A type the station does not have: Rejected, UnknownConnectorType."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        got = await reserve(h, reservation_id=14, evse_id=None, connectorType="cCCS2")
        assert got == {"status": "Rejected", "statusInfo": {"reasonCode": "UnknownConnectorType"}}
        await reserved(h, evse_id=None, reservation_id=15, connectorType="cType2")
        started = await authorized_then_plug(h)
        assert started["reservationId"] == 15


async def test_tc_h_16_connector_type_all_reserved(tmp_path):
    """Every EVSE reserved: a reservation of the connector type is Occupied."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        await reserved(h, 1, reservation_id=1)
        assert await reserve(h, reservation_id=2, evse_id=None, tag=TAG2, connectorType="cType2") == {
            "status": "Occupied"}


# ---------------------------------------------------------------------- H02: cancel

async def test_tc_h_17_cancel_reservation(tmp_path):
    """CancelReservation of the reservation: Accepted, StatusNotification Available, no
    ReservationStatusUpdate (the CSMS asked for it)."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        await reserved(h, reservation_id=17)
        m = h.mark()
        assert await h.cs.call("CancelReservation", reservationId=17) == {"status": "Accepted"}
        got = await wait_connector(h, "Available", start=m)
        assert (got["evseId"], got["connectorId"]) == (1, 1)
        await quiet(h)
        assert received(h, "ReservationStatusUpdate", m) == []


async def test_tc_h_18_cancel_unknown_reservation(tmp_path):
    """CancelReservation with reservationId 1 and no reservation: Rejected."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        assert await h.cs.call("CancelReservation", reservationId=1) == {"status": "Rejected"}


# ---------------------------------------------------------------------- H03: groupIdToken

async def test_tc_h_19_reserved_evse_used_with_group_id(tmp_path):
    """Reserved for idToken 1 with groupIdToken; idToken 2 of that group (AuthorizeResponse
    groupIdToken) charges there with the reservationId; one of another group does not."""
    async with harness(tmp_path) as h:
        groups = {TAG2: GROUP, "55667788": "OTHER"}
        h.cs.handlers["Authorize"] = lambda p: {"idTokenInfo": {
            "status": "Accepted", "groupIdToken": {"idToken": groups.get(p["idToken"]["idToken"], "NONE"),
                                                   "type": "Central"}}}
        await wait_connector(h, "Available")
        await reserved(h, reservation_id=19, groupIdToken={"idToken": GROUP, "type": "Central"})
        m = h.mark()
        h.sim.swipe("55667788")
        await h.cs.wait_for("Authorize", start_index=m)
        await quiet(h, 0.2)
        assert h.station.connector(1).pending_auth is None and h.station.status_of(1)[0] == model.RESERVED
        started = await authorized_then_plug(h, TAG2)
        assert started["reservationId"] == 19 and started["idToken"] == token(TAG2)


async def test_tc_h_21_reservation_removed_when_unavailable(tmp_path):
    """ChangeAvailability Inoperative of the reserved EVSE: Accepted, Unavailable, then
    ReservationStatusUpdate Removed; Operative: Available; idToken 2 charges."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        await reserved(h, reservation_id=21)
        m = h.mark()
        got = await h.cs.call("ChangeAvailability", operationalStatus="Inoperative", evse={"id": 1})
        assert got["status"] == "Accepted"
        await wait_connector(h, "Unavailable", start=m)
        update = await h.cs.wait_for("ReservationStatusUpdate", start_index=m)
        assert update == {"reservationId": 21, "reservationUpdateStatus": "Removed"}
        got = await h.cs.call("ChangeAvailability", operationalStatus="Operative", evse={"id": 1})
        assert got["status"] == "Accepted"
        await wait_connector(h, "Available", start=m)
        started = await authorized_then_plug(h, TAG2)
        assert "reservationId" not in started


async def test_tc_h_22_reservations_configured_off(tmp_path):
    """ReservationCtrlr.Enabled false: ReserveNow Rejected."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        await configure(h, {"ReservationCtrlr.Enabled": False})
        assert await reserve(h) == {"status": "Rejected"}


async def test_tc_h_23_replace_reservation(tmp_path):
    """A ReserveNow with the id of a valid reservation replaces it: Accepted, still Reserved;
    idToken 2 (the new one) charges with the reservationId, idToken 1 would not."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        await reserved(h, reservation_id=23)
        assert await reserve(h, reservation_id=23, tag=TAG2) == {"status": "Accepted"}
        assert h.station.status_of(1)[0] == model.RESERVED
        got = await h.cs.call("RequestStartTransaction", idToken=token(TAG), evseId=1, remoteStartId=6)
        assert got["status"] == "Rejected"
        started = await authorized_then_plug(h, TAG2)
        assert started["reservationId"] == 23


async def test_tc_h_24_unspecified_evse_group_id(tmp_path):
    """No evseId, groupIdToken: Reserved (one EVSE); idToken 2 of the group charges with the
    reservationId."""
    async with harness(tmp_path) as h:
        h.cs.handlers["Authorize"] = lambda p: {"idTokenInfo": {
            "status": "Accepted", "groupIdToken": {"idToken": GROUP, "type": "Central"}}}
        await wait_connector(h, "Available")
        await reserved(h, evse_id=None, reservation_id=24, groupIdToken={"idToken": GROUP, "type": "Central"})
        started = await authorized_then_plug(h, TAG2)
        assert started["reservationId"] == 24


async def test_reservation_expired_offline_is_reported_at_reconnection(tmp_path):
    """H04 while offline: the ReservationStatusUpdate Expired goes out with the next session."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        await reserved(h, reservation_id=41, seconds=30)
        port = await h.go_offline()
        await h.clock.advance(31)
        await quiet(h)
        assert len(h.station.reservations) == 0
        m = h.mark()
        await h.go_online(port)
        update = await h.cs.wait_for("ReservationStatusUpdate", start_index=m)
        assert update == {"reservationId": 41, "reservationUpdateStatus": "Expired"}


async def test_reservation_survives_a_restart_201(tmp_path):
    """A reservation is kept over a restart: reported Reserved again, and used with its id."""
    async with harness(tmp_path) as h:
        await wait_connector(h, "Available")
        await reserved(h, reservation_id=42)
        m = h.mark()
        await h.restart_agent()
        await wait_connector(h, "Reserved", start=m)
        await until(lambda: h.agent.client.online)
        await refused(h, TAG2)
        started = await authorized_then_plug(h)
        assert started["reservationId"] == 42
