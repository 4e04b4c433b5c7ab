"""The core's reservations (agent/core/reservations.py): the book as data, and the station's rules
called directly (no protocol words): answers, the reserved status derived with the rest, the tag
rule, reservations for any connector, expiry on the station's clock, removal on a fault, the
reservation used by its holder's transaction, and persistence in data_dir/station.json."""

import json

from agent.core import model
from agent.core.reservations import (ANY_CONNECTOR, EXPIRED, OCCUPIED, REMOVED, Reservation, ReservationBook)
from tests.harness import AgentHarness, keys, quiet, until

TAG, TAG_2, GROUP = "TAG-1", "TAG-2", "GROUP-1"
TWO = {"evse": {"connectors": 2}}


def test_reservation_matches_its_tag_or_group_case_insensitively():
    r = Reservation(1, 1, "abc", 100.0, parent_id_tag="Group")
    assert r.matches("ABC") and r.matches("other", "GROUP") and r.matches("group")
    assert not r.matches("other") and not r.matches("other", "another") and not r.matches(None)
    assert not Reservation(2, 0, "abc", 100.0).matches("x", None)


def test_book_replaces_by_id_orders_expiry_and_round_trips():
    book = ReservationBook()
    assert book.put(Reservation(1, 1, "A", 200.0)) is None
    book.put(Reservation(2, ANY_CONNECTOR, "B", 100.0, parent_id_tag="G", connector_type="cType2",
                         token_kind="iso14443"))
    old = book.put(Reservation(1, 2, "C", 300.0))
    assert old.id_tag == "A" and len(book) == 2 and book.specific_for(2).id_tag == "C" and book.specific_for(1) is None
    assert [r.id for r in book.unspecified()] == [2] and book.next_expiry() == 100.0
    assert [r.id for r in book.expired(150.0)] == [2]
    copy = ReservationBook()
    copy.load(json.loads(json.dumps(book.to_list())) + [{"id": "broken"}])  # a damaged entry is skipped
    assert [r.to_dict() for r in copy.all()] == book.to_list()
    assert book.remove(2).connector_type == "cType2" and book.remove(2) is None and book.next_expiry() == 300.0


class LinkRecorder:
    """Records what the station tells its link about reservations (wrapping the real link)."""

    def __init__(self, station) -> None:
        self.ended = []
        station.link.reservation_ended = lambda rid, why: self.ended.append((rid, why))


async def test_answers_status_and_the_tag_rule(tmp_path):
    async with AgentHarness(tmp_path, ocpp=keys()) as h:
        st, now = h.station, h.clock.time()
        await h.wait_status(1, "Available")
        assert await st.reserve(1, 1, TAG, now - 1) == model.REJECTED  # expiry already past
        assert await st.reserve(1, 2, TAG, now + 60) == model.REJECTED  # no connector 2
        assert await st.reserve(1, 1, TAG, now + 60, parent_id_tag=GROUP) == model.ACCEPTED
        assert st.connector(1).status == model.RESERVED and st.connector(1).reserved
        assert await st.reserve(2, 1, TAG_2, now + 60) == OCCUPIED
        # the tag rule: its holder or its group only (the group as the authorization finds it)
        assert st._connector_for_new_session(TAG_2) is None
        assert st._connector_for_new_session(TAG_2, maybe_group=True) is st.connector(1)
        assert st._connector_for_new_session(TAG_2, GROUP) is st.connector(1)
        assert st._claim(st.connector(1), TAG_2, GROUP) == 1 and st._claim(st.connector(1), TAG_2) is None
        assert not await st.remote_start(TAG_2, 1)
        # an EV plugged in does not take the reserved connector
        h.sim.plug(1)
        await quiet(h)
        assert st.connector(1).status == model.RESERVED
        assert await st.cancel_reservation(1) == model.ACCEPTED and await st.cancel_reservation(1) == model.REJECTED
        await quiet(h)
        assert st.connector(1).status == model.PREPARING  # the EV is there
        assert await st.reserve(3, 1, TAG, now + 60) == OCCUPIED
        h.sim.unplug(1)
        await quiet(h)
        st.settings.set("reservations_enabled", False)
        assert await st.reserve(3, 1, TAG, now + 60) == model.REJECTED


async def test_holder_starts_with_the_reservation_id_and_uses_it_up(tmp_path):
    async with AgentHarness(tmp_path, ocpp=keys()) as h:
        st = h.station
        await h.wait_status(1, "Available")
        assert await st.reserve(5, 1, TAG, h.clock.time() + 600) == model.ACCEPTED
        assert await st.present_tag(TAG_2) == "no-connector"
        assert await st.present_tag(TAG) == "authorized"
        assert st.connector(1).status == model.PREPARING and len(st.reservations) == 1  # until the start
        h.sim.plug(1)
        await until(lambda: st.connector(1).transaction is not None)
        assert st.connector(1).transaction.reservation_id == 5 and len(st.reservations) == 0
        saved = json.loads((tmp_path / "data" / "station.json").read_text())
        assert saved["reservations"] == []


async def test_any_connector_keeps_enough_free_connectors(tmp_path):
    async with AgentHarness(tmp_path, ocpp=keys(), board=TWO) as h:
        st, later = h.station, h.clock.time() + 600
        await h.wait_status(2, "Available")
        assert await st.reserve(1, ANY_CONNECTOR, TAG, later) == model.ACCEPTED
        assert [c.status for c in st.connectors] == [model.AVAILABLE, model.AVAILABLE]
        assert await st.reserve(2, 2, "TAG-3", later) == model.ACCEPTED  # connector 1 is left for reservation 1
        await quiet(h)
        assert [c.status for c in st.connectors] == [model.RESERVED, model.RESERVED]
        assert await st.reserve(3, 1, "TAG-4", later) == OCCUPIED  # it would leave none for reservation 1
        assert await st.cancel_reservation(2) == model.ACCEPTED
        assert await st.reserve(2, ANY_CONNECTOR, TAG_2, later) == model.ACCEPTED
        await quiet(h)
        assert [c.status for c in st.connectors] == [model.RESERVED, model.RESERVED]
        assert await st.reserve(3, ANY_CONNECTOR, "TAG-3", later) == OCCUPIED
        assert st._connector_for_new_session("TAG-3") is None
        assert st._connector_for_new_session(TAG) is not None
        assert await st.cancel_reservation(2) == model.ACCEPTED
        await quiet(h)
        assert [c.status for c in st.connectors] == [model.AVAILABLE, model.AVAILABLE]
        # another tag takes connector 1: connector 2 is then held for reservation 1
        assert await st.remote_start("TAG-3", 1)
        await until(lambda: st.connector(1).pending_auth is not None)
        await quiet(h)
        assert st.connector(2).status == model.RESERVED
        assert await st.reserve(9, ANY_CONNECTOR, "TAG-4", later) == OCCUPIED


async def test_expiry_waits_on_the_clock_and_is_told_to_the_link(tmp_path):
    async with AgentHarness(tmp_path, ocpp=keys()) as h:
        st = h.station
        await h.wait_status(1, "Available")
        link = LinkRecorder(st)
        assert await st.reserve(7, 1, TAG, h.clock.time() + 90) == model.ACCEPTED
        await h.clock.advance(89)
        await quiet(h)
        assert st.connector(1).status == model.RESERVED and link.ended == []
        await h.clock.advance(1)
        await until(lambda: link.ended == [(7, EXPIRED)])
        assert st.connector(1).status == model.AVAILABLE
        # the wall clock set forward (no time passing on the monotonic clock): noticed within a minute
        assert await st.reserve(8, 1, TAG, h.clock.time() + 3600) == model.ACCEPTED
        h.clock.step_wall(7200)
        await h.clock.advance(60)
        await until(lambda: (8, EXPIRED) in link.ended)


async def test_a_fault_removes_the_reservation(tmp_path):
    async with AgentHarness(tmp_path, ocpp=keys()) as h:
        st = h.station
        await h.wait_status(1, "Available")
        link = LinkRecorder(st)
        assert await st.reserve(3, 1, TAG, h.clock.time() + 600) == model.ACCEPTED
        assert await st.reserve(4, ANY_CONNECTOR, TAG_2, h.clock.time() + 600) == OCCUPIED  # the only one is held
        h.sim.fault(1, "ground_failure")
        await until(lambda: link.ended == [(3, REMOVED)])
        assert st.connector(1).status == model.FAULTED and len(st.reservations) == 0
        assert await st.reserve(4, 1, TAG, h.clock.time() + 600) == model.FAULTED
        h.sim.clear(1)
        await until(lambda: st.connector(1).status == model.AVAILABLE)


async def test_a_reservation_is_kept_over_a_restart(tmp_path):
    async with AgentHarness(tmp_path, ocpp=keys()) as h:
        await h.wait_status(1, "Available")
        assert await h.station.reserve(11, 1, TAG, h.clock.time() + 600, parent_id_tag=GROUP) == model.ACCEPTED
        saved = json.loads((tmp_path / "data" / "station.json").read_text())
        assert [r["id"] for r in saved["reservations"]] == [11]
        await h.restart_agent()
        st = h.station
        await until(lambda: st.connector(1).status == model.RESERVED)
        r = st.reservations.get(11)
        assert (r.connector_id, r.id_tag, r.parent_id_tag) == (1, TAG, GROUP)
