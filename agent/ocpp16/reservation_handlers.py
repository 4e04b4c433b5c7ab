"""The 1.6 Reservation profile (§5.1, §5.13): ReserveNow and CancelReservation translated to
the station's reservations (agent/core/reservations.py). A mixin of Ocpp16Session: no
reservation logic here. The Reserved status goes out as any status does, and the
StartTransaction of the reservation's holder carries its reservationId
(agent/ocpp16/outbox_sender.py).

CPython-only (the ``ocpp`` library's routing).
"""

import logging

from ocpp.routing import on
from ocpp.v16.enums import Action

from agent.core import model
from agent.core.isotime import parse_datetime
from agent.core.reservations import OCCUPIED

log = logging.getLogger(__name__)

# The core's answers to a reservation in 1.6 words (ReservationStatus, CancelReservationStatus)
RESERVATION_STATUS = {model.ACCEPTED: "Accepted", OCCUPIED: "Occupied", model.FAULTED: "Faulted",
                      model.UNAVAILABLE: "Unavailable", model.REJECTED: "Rejected"}
CANCEL_STATUS = {model.ACCEPTED: "Accepted", model.REJECTED: "Rejected"}


class ReservationHandlers:
    """ReserveNow and CancelReservation for Ocpp16Session (``self.station``, ``self._call_result``)."""

    @on(Action.reserve_now)
    async def on_reserve_now(self, connector_id: int, expiry_date: str, id_tag: str, reservation_id: int,
                             parent_id_tag: str | None = None):
        try:
            expiry = parse_datetime(expiry_date)
        except ValueError:
            log.info("ReserveNow %d: expiryDate %r is not a date: Rejected", reservation_id, expiry_date)
            return self._call_result.ReserveNow(status="Rejected")
        # connectorId 0 is any connector, as ReserveConnectorZeroSupported allows (the core checks it)
        outcome = await self.station.reserve(reservation_id, connector_id, id_tag, expiry,
                                             parent_id_tag=parent_id_tag)
        return self._call_result.ReserveNow(status=RESERVATION_STATUS[outcome])

    @on(Action.cancel_reservation)
    async def on_cancel_reservation(self, reservation_id: int):
        outcome = await self.station.cancel_reservation(reservation_id)
        return self._call_result.CancelReservation(status=CANCEL_STATUS[outcome])
