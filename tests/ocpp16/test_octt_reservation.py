"""OCTT 1.6 Reservation profile: TC_046_1 … TC_053 (spec/octt-1.6-test-case-document-2024-04.txt,
§2.20), and a reservation kept over a restart of the agent.

The real agent on the simulated board against the test central system on loopback, in
virtual time (expiry waits on the agent's clock); every frame the agent sends is checked
against the 1.6 schemas when the harness closes.
"""

from agent.core.isotime import format_datetime
from tests.harness import TAG, AgentHarness, assert_no_power, keys, quiet, statuses, until

TAG_2 = "TAG-2"
PARENT = "GROUP-1"
TWO = {"evse": {"connectors": 2}}


def expiry(h, seconds: float) -> str:
    return format_datetime(h.clock.time() + seconds)


async def reserve(h, connector_id: int = 1, id_tag: str = TAG, reservation_id: int = 7, seconds: float = 600,
                  **extra) -> str:
    reply = await h.cs.call("ReserveNow", connectorId=connector_id, expiryDate=expiry(h, seconds), idTag=id_tag,
                            reservationId=reservation_id, **extra)
    return reply["status"]


async def reserved(h, connector_id: int = 1, **kw) -> None:
    """The reusable state Reserved: ReserveNow Accepted, StatusNotification Reserved (connectorId 0:
    of connector 1)."""
    m = h.mark()
    assert await reserve(h, connector_id, **kw) == "Accepted"
    await h.wait_status(connector_id or 1, "Reserved", m)


async def refused_locally(h, id_tag: str, connector_id: int = 1) -> None:
    """``id_tag`` presented at a connector reserved for another: nothing asked, nothing changes."""
    m = h.mark()
    h.sim.swipe(id_tag)
    await quiet(h, 0.2)
    assert h.received("Authorize", m) == [] and statuses(h, connector_id, m) == []
    assert h.station.connector(connector_id).pending_auth is None
    assert h.station.status_of(connector_id)[0] == "reserved"


async def badge_then_plug(h, id_tag: str, connector_id: int = 1) -> dict:
    """A card presented (Authorize, Preparing), then the cable: the StartTransaction, then Charging."""
    m = h.mark()
    h.sim.swipe(id_tag)
    await h.wait_status(connector_id, "Preparing", m)
    h.sim.plug(connector_id)
    start = await h.cs.wait_for("StartTransaction", start_index=m)
    await h.wait_status(connector_id, "Charging", m)
    return start


async def plug_then_remote_start(h, id_tag: str, connector_id: int = 1) -> dict:
    """The reusable state Charging with a remote start (the cable first)."""
    m = h.mark()
    h.sim.plug(connector_id)
    await quiet(h)
    assert await h.cs.call("RemoteStartTransaction", connectorId=connector_id, idTag=id_tag) == {"status": "Accepted"}
    start = await h.cs.wait_for("StartTransaction", start_index=m)
    await h.wait_status(connector_id, "Charging", m)
    return start


# ---------------------------------------------------------------------- reservation of a connector

async def test_tc_046_1_reserved_connector_local_start(tmp_path):
    """TC_046_1_CS: Reserved; another card is refused (no Authorize, still Reserved); the reserved
    card: Authorize, Preparing; the cable: StartTransaction with idTag and reservationId, Charging."""
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        m = h.mark()
        await reserved(h)
        assert h.received("StatusNotification", m)[-1]["status"] == "Reserved"
        await refused_locally(h, TAG_2)
        m2 = h.mark()
        start = await badge_then_plug(h, TAG)
        assert h.received("Authorize", m2) == [{"idTag": TAG}]
        assert start["idTag"] == TAG and start["reservationId"] == 7 and start["connectorId"] == 1
        assert statuses(h, 1, m) == ["Reserved", "Preparing", "Charging"]
        assert len(h.station.reservations) == 0  # used: it ended with the transaction's start


async def test_tc_046_1_plug_in_first_keeps_reserved(tmp_path):
    """An EV plugged in at a reserved connector does not take it: still Reserved, nothing offered
    (OCPP 1.6 §4.9: Reserved leaves only on the reservation's identifier, G2)."""
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        await reserved(h)
        m = h.mark()
        h.sim.plug(1)
        await quiet(h, 0.2)
        assert statuses(h, 1, m) == [] and h.station.status_of(1)[0] == "reserved"
        assert_no_power(h)
        await refused_locally(h, TAG_2)
        h.sim.swipe(TAG)
        start = await h.cs.wait_for("StartTransaction", start_index=m)
        assert start["reservationId"] == 7
        await h.wait_status(1, "Charging", m)
        assert statuses(h, 1, m) == ["Charging"]


async def test_tc_046_2_reserved_connector_remote_start(tmp_path):
    """TC_046_2_CS: Reserved; a remote start for another idTag is Rejected; for the reserved one it
    charges and the StartTransaction carries the idTag and reservationId."""
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        await reserved(h, reservation_id=46)
        assert await h.cs.call("RemoteStartTransaction", connectorId=1, idTag=TAG_2) == {"status": "Rejected"}
        assert await h.cs.call("RemoteStartTransaction", idTag=TAG_2) == {"status": "Rejected"}  # no connector named
        start = await plug_then_remote_start(h, TAG)
        assert start["idTag"] == TAG and start["reservationId"] == 46


async def test_tc_047_reservation_expires(tmp_path):
    """TC_047_CS: not used before the expiry date: Available again at the expiry (virtual time);
    then another tag charges, without a reservationId."""
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        m = h.mark()
        await reserved(h, seconds=120)
        await h.clock.advance(119)
        await quiet(h)
        assert statuses(h, 1, m) == ["Reserved"]
        await h.clock.advance(2)
        await h.wait_status(1, "Available", m)
        assert statuses(h, 1, m) == ["Reserved", "Available"]
        assert len(h.station.reservations) == 0
        start = await plug_then_remote_start(h, TAG_2)
        assert "reservationId" not in start


async def test_tc_048_1_reserve_faulted_connector(tmp_path):
    """TC_048_1_CS: the connector is Faulted: ReserveNow answers Faulted."""
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        m = h.mark()
        h.sim.fault(1, "ground_failure")
        await h.wait_status(1, "Faulted", m)
        assert await reserve(h) == "Faulted"
        assert len(h.station.reservations) == 0


async def test_tc_048_2_reserve_occupied_connector(tmp_path):
    """TC_048_2_CS: the connector is occupied (an EV plugged in, then charging): Occupied; a
    connector reserved under another id is Occupied too."""
    async with AgentHarness(tmp_path, board=TWO) as h:
        await h.wait_status(1, "Available")
        m = h.mark()
        h.sim.plug(1)
        await h.wait_status(1, "Preparing", m)
        assert await reserve(h, 1) == "Occupied"
        await plug_then_remote_start(h, TAG, 2)
        assert await reserve(h, 2) == "Occupied"
        h.sim.unplug(1)
        await h.wait_status(1, "Available")
        await reserved(h, 1, reservation_id=3)
        assert await reserve(h, 1, TAG_2, reservation_id=4) == "Occupied"


async def test_tc_048_3_reserve_unavailable_connector(tmp_path):
    """TC_048_3_CS: the connector is Unavailable: Unavailable."""
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        assert await h.cs.call("ChangeAvailability", connectorId=1, type="Inoperative") == {"status": "Accepted"}
        await h.wait_status(1, "Unavailable")
        assert await reserve(h) == "Unavailable"


async def test_tc_048_4_reservations_configured_off(tmp_path):
    """TC_048_4_CS: a charge point configured not to take reservations answers Rejected."""
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        h.station.settings.set("reservations_enabled", False)
        assert await reserve(h) == "Rejected"
        assert await reserve(h, 0) == "Rejected"
        assert h.station.status_of(1)[0] == "available"


# ---------------------------------------------------------------------- reservation of the charge point

async def test_tc_049_reserve_charge_point(tmp_path):
    """TC_049_CS: ReserveNow connectorId 0 on a one-connector charge point: Accepted, that
    connector Reserved; the reserved idTag charges there, its StartTransaction with reservationId."""
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        assert await get_key_value(h, "ReserveConnectorZeroSupported") == "true"
        await reserved(h, 0, reservation_id=49)
        await refused_locally(h, TAG_2)
        start = await plug_then_remote_start(h, TAG)
        assert start["reservationId"] == 49 and start["idTag"] == TAG


async def test_tc_049_two_connectors_keep_one_free(tmp_path):
    """Connector 0 on two connectors: both stay Available until a session of another tag takes
    one; then the last free one is Reserved, another tag is refused there, the reserved tag
    charges there with the reservationId (§5.13: one connector remains available for it)."""
    async with AgentHarness(tmp_path, board=TWO) as h:
        await h.wait_status(2, "Available")
        m = h.mark()
        assert await reserve(h, 0, reservation_id=50) == "Accepted"
        await quiet(h)
        assert statuses(h, 1, m) == [] and statuses(h, 2, m) == []
        other = await plug_then_remote_start(h, TAG_2, 1)
        assert "reservationId" not in other
        await h.wait_status(2, "Reserved", m)
        assert await h.cs.call("RemoteStartTransaction", connectorId=2, idTag="TAG-3") == {"status": "Rejected"}
        await refused_locally(h, "TAG-3", 2)
        start = await badge_then_plug(h, TAG, 2)
        assert start["reservationId"] == 50 and start["connectorId"] == 2


async def test_tc_050_1_reserve_faulted_charge_point(tmp_path):
    """TC_050_1_CS: the charge point is Faulted: ReserveNow connectorId 0 answers Faulted."""
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        m = h.mark()
        h.sim.fault(0, "ground_failure")
        await h.wait_status(1, "Faulted", m)
        assert await reserve(h, 0) == "Faulted"


async def test_tc_050_2_reserve_occupied_charge_point(tmp_path):
    """TC_050_2_CS: every connector occupied: Occupied."""
    async with AgentHarness(tmp_path, board=TWO) as h:
        await h.wait_status(2, "Available")
        await plug_then_remote_start(h, TAG, 1)
        m = h.mark()
        h.sim.plug(2)
        await h.wait_status(2, "Preparing", m)
        assert await reserve(h, 0) == "Occupied"


async def test_tc_050_3_reserve_unavailable_charge_point(tmp_path):
    """TC_050_3_CS: the charge point is Unavailable: Unavailable."""
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        assert await h.cs.call("ChangeAvailability", connectorId=0, type="Inoperative") == {"status": "Accepted"}
        await h.wait_status(1, "Unavailable")
        assert await reserve(h, 0) == "Unavailable"


async def test_tc_050_4_reserve_charge_point_not_supported(tmp_path):
    """TC_050_4_CS: connectorId 0 without ReserveConnectorZeroSupported (the [ocpp] table sets the
    read-only key to false) is Rejected; a connector still is Accepted."""
    async with AgentHarness(tmp_path, ocpp=keys(ReserveConnectorZeroSupported=False)) as h:
        await h.wait_status(1, "Available")
        assert await get_key_value(h, "ReserveConnectorZeroSupported") == "false"
        assert await reserve(h, 0) == "Rejected"
        assert await reserve(h, 1) == "Accepted"


# ---------------------------------------------------------------------- cancel, parentIdTag, replace

async def test_tc_051_cancel_reservation(tmp_path):
    """TC_051_CS: CancelReservation of the reservation: Accepted, Available; then another tag
    charges without a reservationId."""
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        await reserved(h, reservation_id=51)
        m = h.mark()
        assert await h.cs.call("CancelReservation", reservationId=51) == {"status": "Accepted"}
        await h.wait_status(1, "Available", m)
        start = await plug_then_remote_start(h, TAG_2)
        assert "reservationId" not in start


async def test_tc_052_cancel_unknown_reservation(tmp_path):
    """TC_052_CS: CancelReservation of an unknown reservationId: Rejected, the reservation stays."""
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        await reserved(h, reservation_id=52)
        m = h.mark()
        assert await h.cs.call("CancelReservation", reservationId=53) == {"status": "Rejected"}
        await quiet(h)
        assert statuses(h, 1, m) == [] and h.station.reservations.get(52) is not None


async def test_tc_053_reserved_connector_used_with_parent_id_tag(tmp_path):
    """TC_053_CS: reserved for idTag 1 with a parentIdTag; idTag 2 of the same group (Authorize
    tells its parent) charges there with the reservationId. A card of another group is refused
    after its Authorize."""
    async with AgentHarness(tmp_path) as h:
        parents = {TAG_2: PARENT, "TAG-3": "OTHER-GROUP"}
        h.cs.handlers["Authorize"] = lambda p: {"idTagInfo": {"status": "Accepted",
                                                              "parentIdTag": parents.get(p["idTag"])}}
        await h.wait_status(1, "Available")
        await reserved(h, reservation_id=53, parentIdTag=PARENT)
        m = h.mark()
        h.sim.swipe("TAG-3")
        await h.cs.wait_for("Authorize", lambda p: p["idTag"] == "TAG-3", start_index=m)
        await quiet(h, 0.2)
        assert statuses(h, 1, m) == [] and h.station.connector(1).pending_auth is None
        start = await badge_then_plug(h, TAG_2)
        assert start["idTag"] == TAG_2 and start["reservationId"] == 53


async def test_reserve_now_same_id_replaces_the_reservation(tmp_path):
    """§5.13: a ReserveNow with the reservationId of a reservation replaces it: the new idTag
    only, on the new connector; the old connector is Available again."""
    async with AgentHarness(tmp_path, board=TWO) as h:
        await h.wait_status(2, "Available")
        await reserved(h, 1, reservation_id=9)
        m = h.mark()
        assert await reserve(h, 2, TAG_2, reservation_id=9) == "Accepted"
        await h.wait_status(1, "Available", m)
        await h.wait_status(2, "Reserved", m)
        assert len(h.station.reservations) == 1
        assert await h.cs.call("RemoteStartTransaction", connectorId=2, idTag=TAG) == {"status": "Rejected"}
        start = await plug_then_remote_start(h, TAG_2, 2)
        assert start["reservationId"] == 9


async def test_reservation_ends_when_the_connector_becomes_unavailable(tmp_path):
    """§5.13 (3): set Unavailable, the reservation ends; Operative again, Available."""
    async with AgentHarness(tmp_path) as h:
        await h.wait_status(1, "Available")
        await reserved(h)
        m = h.mark()
        assert await h.cs.call("ChangeAvailability", connectorId=1, type="Inoperative") == {"status": "Accepted"}
        await h.wait_status(1, "Unavailable", m)
        assert len(h.station.reservations) == 0
        assert await h.cs.call("ChangeAvailability", connectorId=1, type="Operative") == {"status": "Accepted"}
        await h.wait_status(1, "Available", m)


# ---------------------------------------------------------------------- restart

async def test_reservation_survives_a_restart(tmp_path):
    """A reservation is kept in data_dir: after a restart the connector is reported Reserved,
    another tag is still refused, the reserved one starts with the reservationId; a second one
    that expired while the agent was down ends at the start."""
    async with AgentHarness(tmp_path, board=TWO) as h:
        await h.wait_status(2, "Available")
        await reserved(h, 1, reservation_id=61, seconds=3600)
        await reserved(h, 2, id_tag=TAG_2, reservation_id=62, seconds=60)
        m = h.mark()
        await h.restart_agent()
        await h.cs.wait_for("BootNotification", start_index=m)
        await h.wait_status(1, "Reserved", m)
        await h.wait_status(2, "Reserved", m)
        assert sorted(r.id for r in h.station.reservations.all()) == [61, 62]
        m = h.mark()
        await h.clock.advance(61)
        await h.wait_status(2, "Available", m)
        await h.agent.stop()
        h.clock.step_wall(10)  # down for a while
        m = h.mark()
        await h.start_agent()
        await h.wait_status(1, "Reserved", m)
        await until(lambda: h.agent.client.online)
        assert await h.cs.call("RemoteStartTransaction", connectorId=1, idTag="TAG-3") == {"status": "Rejected"}
        start = await plug_then_remote_start(h, TAG, 1)
        assert start["reservationId"] == 61
        assert len(h.station.reservations) == 0


async def get_key_value(h, key: str) -> str:
    conf = await h.cs.call("GetConfiguration", key=[key])
    return conf["configurationKey"][0]["value"]
