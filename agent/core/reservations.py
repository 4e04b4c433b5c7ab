"""Reservations: a connector, or any connector of the station, held for one identifier
(or its group) until an expiry time.

``ReservationBook`` is plain data (no I/O): the station persists it with its state
(agent/store/state_store.py, atomically) so a reservation survives a restart.
``Reservations`` is the part of ``Station`` (agent/core/station.py) that applies the
rules; the adapters translate the central system's requests to ``reserve`` and
``cancel_reservation``:

* a reservation is taken on an available connector (one with no transaction, no EV,
  no authorization waiting, not reserved); otherwise the answer says why (faulted,
  unavailable, occupied), and rejected when the station is configured not to take
  reservations (setting ``reservations_enabled``) or not for an unspecified
  connector (``reserve_unspecified``). The same id replaces the reservation it names;
* only the reserved identifier, or one whose group (parent) identifier matches the
  reservation's identifier or group, may start on a reserved connector; any other is
  refused there (the connector stays reserved). The group of a presented identifier is
  what the authorization finds (local list, cache, the central system);
* a reservation for no particular connector keeps as many connectors free as there are
  such reservations; when they are all needed, each free one is shown reserved;
* it ends when its holder starts a transaction (the transaction carries its id), at
  its expiry (``EXPIRED``, told to the link), when cancelled, and when its connector
  becomes faulted or unavailable (``REMOVED``, told to the link).

The status follows from the connector's ``reserved`` flag through
``Connector.derive_status``; nothing sets a status by hand.

Portable core: only the MicroPython asyncio subset (see STYLE.md).
"""

import asyncio
import logging

from agent.core import model
from agent.core.auth import tag_key
from hal.interfaces import NO_ERROR

log = logging.getLogger(__name__)

ANY_CONNECTOR = 0  # a reservation for no particular connector (any one of the station)
OCCUPIED = "occupied"  # answer to a reservation: the connector (or every one) is in use or reserved
# Why a reservation ended.
USED = "used"  # its holder started a transaction
EXPIRED = "expired"  # its expiry time was reached
CANCELLED = "cancelled"  # the central system cancelled it
REMOVED = "removed"  # its connector became faulted or unavailable
EXPIRY_CHECK_S = 60.0  # the expiry timer looks again at least this often (the wall clock may be set meanwhile)
TIMER_KEY = ("reservations",)


class Reservation:
    """One reservation: its id, the connector (ANY_CONNECTOR: any), the identifier and its
    optional group (parent) identifier, the expiry (epoch seconds), and for a protocol that
    names them the connector type and the identifier's kind (model.TOKEN_*)."""

    __slots__ = ("id", "connector_id", "id_tag", "parent_id_tag", "expiry", "connector_type", "token_kind")

    def __init__(self, reservation_id: int, connector_id: int, id_tag: str, expiry: float,
                 parent_id_tag: str | None = None, connector_type: str | None = None,
                 token_kind: str | None = None) -> None:
        self.id = reservation_id
        self.connector_id = connector_id
        self.id_tag = id_tag
        self.parent_id_tag = parent_id_tag
        self.expiry = expiry
        self.connector_type = connector_type
        self.token_kind = token_kind

    @property
    def specific(self) -> bool:
        return self.connector_id != ANY_CONNECTOR

    def matches(self, id_tag: str | None, parent_id_tag: str | None = None) -> bool:
        """Whether ``id_tag`` (with its group ``parent_id_tag``) may use this reservation: the
        identifier or its group is the reservation's identifier or group (case-insensitive)."""
        mine = [tag_key(self.id_tag)]
        if self.parent_id_tag:
            mine.append(tag_key(self.parent_id_tag))
        return bool((id_tag and tag_key(id_tag) in mine) or (parent_id_tag and tag_key(parent_id_tag) in mine))

    def to_dict(self) -> dict:
        return {"id": self.id, "connector_id": self.connector_id, "id_tag": self.id_tag,
                "parent_id_tag": self.parent_id_tag, "expiry": self.expiry,
                "connector_type": self.connector_type, "token_kind": self.token_kind}

    @classmethod
    def from_dict(cls, d: dict) -> "Reservation":
        return cls(int(d["id"]), int(d["connector_id"]), d["id_tag"], float(d["expiry"]),
                   parent_id_tag=d.get("parent_id_tag"), connector_type=d.get("connector_type"),
                   token_kind=d.get("token_kind"))

    def __repr__(self) -> str:
        return "Reservation(%d, connector=%d, tag=%r, parent=%r)" % (
            self.id, self.connector_id, self.id_tag, self.parent_id_tag)


class ReservationBook:
    """The reservations held, in the order they were made (no I/O: ``to_list``/``load``
    give and take plain data)."""

    def __init__(self) -> None:
        self._items: list = []

    def __len__(self) -> int:
        return len(self._items)

    def all(self) -> list:
        return list(self._items)

    def get(self, reservation_id: int) -> Reservation | None:
        for r in self._items:
            if r.id == reservation_id:
                return r
        return None

    def specific_for(self, connector_id: int) -> Reservation | None:
        """The reservation of that very connector, if any."""
        for r in self._items:
            if r.connector_id == connector_id:
                return r
        return None

    def unspecified(self) -> list:
        return [r for r in self._items if not r.specific]

    def put(self, reservation: Reservation) -> Reservation | None:
        """Add ``reservation``, replacing one with the same id (returned)."""
        old = self.remove(reservation.id)
        self._items.append(reservation)
        return old

    def remove(self, reservation_id: int) -> Reservation | None:
        r = self.get(reservation_id)
        if r is not None:
            self._items.remove(r)
        return r

    def expired(self, now: float) -> list:
        return [r for r in self._items if r.expiry <= now]

    def next_expiry(self) -> float | None:
        times = [r.expiry for r in self._items]
        return min(times) if times else None

    def to_list(self) -> list:
        return [r.to_dict() for r in self._items]

    def load(self, items) -> None:
        """Reservations kept by an earlier run (malformed entries are skipped)."""
        self._items = []
        for d in items or ():
            try:
                self.put(Reservation.from_dict(d))
            except (KeyError, TypeError, ValueError) as e:
                log.error("a stored reservation could not be read (%s): %r", e, d)


class Reservations:
    """Reservations (a part of ``Station``: ``self.reservations`` is its ReservationBook)."""

    # ------------------------------------------------------------------ requests
    async def reserve(self, reservation_id: int, connector_id: int, id_tag: str, expiry: float,
                      parent_id_tag: str | None = None, connector_type: str | None = None,
                      token_kind: str | None = None) -> str:
        """Reserve ``connector_id`` (ANY_CONNECTOR: any connector) for ``id_tag`` (or its
        group ``parent_id_tag``) until ``expiry`` (epoch seconds). The same id replaces its
        reservation. Returns model.ACCEPTED, OCCUPIED, model.FAULTED, model.UNAVAILABLE or
        model.REJECTED (not taking reservations, or this one: unknown connector, expiry past)."""
        if not self.settings.get("reservations_enabled", False):
            return model.REJECTED
        if not 0 <= connector_id <= len(self.connectors):
            return model.REJECTED
        if connector_id == ANY_CONNECTOR and not self.settings.get("reserve_unspecified", False):
            return model.REJECTED
        if expiry <= self.clock.time():
            log.info("reservation %d: its expiry is already past", reservation_id)
            return model.REJECTED
        old = self.reservations.get(reservation_id)
        outcome = self._reservable(connector_id, old)
        if outcome != model.ACCEPTED:
            log.info("reservation %d of connector %d for %s: %s", reservation_id, connector_id, id_tag, outcome)
            return outcome
        self.reservations.put(Reservation(reservation_id, connector_id, id_tag, expiry, parent_id_tag,
                                          connector_type, token_kind))
        log.info("reservation %d%s: connector %d held for %s (group %r) until %d", reservation_id,
                 " replaced" if old is not None else "", connector_id, id_tag, parent_id_tag, expiry)
        self._save()
        self._arm_reservation_timer()
        await self._reservations_changed()
        return model.ACCEPTED

    async def cancel_reservation(self, reservation_id: int) -> str:
        """model.ACCEPTED when the reservation existed (it is gone now), else model.REJECTED."""
        r = self.reservations.get(reservation_id)
        if r is None:
            return model.REJECTED
        self._end_reservation(r, CANCELLED)
        await self._reservations_changed()
        return model.ACCEPTED

    # ------------------------------------------------------------------ the rules
    def _in_use(self, c) -> bool:
        return c.transaction is not None or c.pending_auth is not None or c.ev_connected or c.finishing

    def _operative(self, c) -> bool:
        return not c.faulted and c.availability == model.OPERATIVE and self.charger_error_code == NO_ERROR

    def _free_connectors(self, exclude=None, ignore: Reservation | None = None) -> list:
        """Connectors a reservation for any connector could use now: operative, not in use
        and not reserved themselves (``ignore``: a reservation about to be replaced)."""
        free = []
        for c in self.connectors:
            held = self.reservations.specific_for(c.id)
            if (c is not exclude and self._operative(c) and not self._in_use(c)
                    and (held is None or held is ignore)):
                free.append(c)
        return free

    def _unspecified_count(self, ignore: Reservation | None = None) -> int:
        return len([r for r in self.reservations.unspecified() if r is not ignore])

    def _reservable(self, connector_id: int, ignore: Reservation | None) -> str:
        """Whether a reservation of ``connector_id`` may be made (``ignore``: the one it replaces)."""
        if connector_id != ANY_CONNECTOR:
            c = self.connector(connector_id)
            if c.faulted or self.charger_error_code != NO_ERROR:
                return model.FAULTED
            if c.availability != model.OPERATIVE:
                return model.UNAVAILABLE
            held = self.reservations.specific_for(c.id)
            if self._in_use(c) or (held is not None and held is not ignore):
                return OCCUPIED
            if len(self._free_connectors(exclude=c, ignore=ignore)) < self._unspecified_count(ignore):
                return OCCUPIED  # the reservations for any connector need it
            return model.ACCEPTED
        if self.charger_error_code != NO_ERROR:
            return model.FAULTED
        if len(self._free_connectors(ignore=ignore)) > self._unspecified_count(ignore):
            return model.ACCEPTED
        if all(c.faulted for c in self.connectors):
            return model.FAULTED
        if all(c.availability != model.OPERATIVE for c in self.connectors):
            return model.UNAVAILABLE
        return OCCUPIED

    def _holds_reservation(self, c) -> bool:
        """Whether ``c`` is shown reserved: reserved itself, or needed by the reservations for
        any connector (as many of those as free connectors)."""
        if not len(self.reservations):
            return False
        if self.reservations.specific_for(c.id) is not None:
            return True
        wanted = self._unspecified_count()
        if not wanted:
            return False
        free = self._free_connectors()
        return c in free and wanted >= len(free)

    def _sessions_allowed(self, usable: list, id_tag: str | None, parent_id_tag: str | None = None,
                          maybe_group: bool = False) -> list:
        """Of ``usable`` connectors, those where ``id_tag`` (group ``parent_id_tag``) may begin:
        a connector reserved for it (only those then); else the ones not reserved, provided the
        reservations for any connector keep enough free ones, unless one of them is its own.
        ``maybe_group``: the group is not known yet; a reservation with a group counts as a
        possible match (whether it is one is known after the authorization)."""
        if not len(self.reservations):
            return usable

        def mine(r) -> bool:
            return r.matches(id_tag, parent_id_tag) or (maybe_group and bool(r.parent_id_tag))

        own = [c for c in usable if self.reservations.specific_for(c.id) is not None
               and mine(self.reservations.specific_for(c.id))]
        if own:
            return own
        unreserved = [c for c in usable if self.reservations.specific_for(c.id) is None]
        if any(mine(r) for r in self.reservations.unspecified()):
            return unreserved
        wanted = self._unspecified_count()
        return [c for c in unreserved if len(self._free_connectors(exclude=c)) >= wanted]

    def _claim(self, c, id_tag: str | None, parent_id_tag: str | None = None) -> int | None:
        """The id of the reservation ``id_tag`` uses when it begins on ``c`` (None: none)."""
        r = self.reservations.specific_for(c.id)
        if r is not None:
            return r.id if r.matches(id_tag, parent_id_tag) else None
        for r in self.reservations.unspecified():
            if r.matches(id_tag, parent_id_tag):
                return r.id
        return None

    def _known_parent(self, id_tag: str) -> str | None:
        """The group of ``id_tag`` as the local list or the cache know it."""
        info = self._local_info(id_tag)
        return info.parent_id_tag if info is not None else None

    def _use_reservation(self, tx, reservation_id: int | None) -> None:
        """A transaction begins (or is authorized) with the reservation ``reservation_id``:
        it carries the id and the reservation ends (called with the connector's lock held)."""
        r = self.reservations.get(reservation_id) if reservation_id is not None else None
        if r is None:
            return
        tx.reservation_id = r.id
        self._end_reservation(r, USED)

    def _end_reservation(self, r: Reservation, why: str, tell: bool = True) -> None:
        """``r`` ends (USED, EXPIRED, CANCELLED, REMOVED); the link hears of an expiry or a
        removal (now, unless ``tell`` is False: the caller tells it, ``_tell_link``)."""
        if self.reservations.remove(r.id) is None:
            return
        log.info("reservation %d (connector %d, %s) ended: %s", r.id, r.connector_id, r.id_tag, why)
        self._save()
        self._arm_reservation_timer()
        if tell:
            self._tell_link(r, why)

    def _tell_link(self, r: Reservation, why: str) -> None:
        if why in (EXPIRED, REMOVED):
            ended = getattr(self.link, "reservation_ended", None)
            if ended is not None:
                ended(r.id, why)

    def _reservation_rules(self, c, status: str) -> None:
        """After ``c`` was re-evaluated (its lock held): a faulted or unavailable connector loses
        its reservation, and the reservations for any connector the operative ones can no longer
        serve are removed (the latest first); connectors whose reserved flag changed are looked at again."""
        if len(self.reservations) and status in (model.FAULTED, model.UNAVAILABLE):
            r = self.reservations.specific_for(c.id)
            if r is not None:
                self._end_reservation(r, REMOVED)
            serving = [o for o in self.connectors
                       if self._operative(o) and self.reservations.specific_for(o.id) is None]
            unspecified = self.reservations.unspecified()
            while len(unspecified) > len(serving):
                self._end_reservation(unspecified.pop(), REMOVED)
        for o in self.connectors:
            if self._holds_reservation(o) != o.reserved:
                self._reevaluate(o)

    async def _reservations_changed(self) -> None:
        for c in self.connectors:
            await self._update(c)

    # ------------------------------------------------------------------ expiry
    def _arm_reservation_timer(self) -> None:
        """(Re)start the expiry timer when reservations are held (the timer itself goes on by its loop)."""
        if self._conn_tasks.get(TIMER_KEY) is asyncio.current_task():
            return
        if self._running and len(self.reservations):
            self._spawn(self._reservation_timer(), key=TIMER_KEY)
        else:
            self._cancel(TIMER_KEY)

    async def _reservation_timer(self) -> None:
        """Sleep until the next expiry (on the station's clock), then end what expired."""
        while True:
            due = self.reservations.next_expiry()
            if due is None:
                break
            wait_s = due - self.clock.time()
            if wait_s > 0:
                await self.clock.sleep(min(wait_s, EXPIRY_CHECK_S))
                continue
            expired = self.reservations.expired(self.clock.time())
            for r in expired:
                self._end_reservation(r, EXPIRED, tell=False)
            await self._reservations_changed()  # the connector's new status first, then the expiry
            for r in expired:
                self._tell_link(r, EXPIRED)
        self._release(TIMER_KEY)
