"""OCPP 2.0.1 block H (H01-H04): ReserveNow and CancelReservation translated to the station's
reservations (agent/core/reservations.py), and the ReservationStatusUpdate the client sends
when one expires or is removed. A mixin of Ocpp201Session: no reservation logic here.

CPython-only (part of the session; payloads as the 2.0.1 schemas name them).
"""

import logging

from agent.core import model
from agent.core.isotime import parse_datetime
from agent.core.reservations import ANY_CONNECTOR, EXPIRED, OCCUPIED, REMOVED
from agent.ocpp201 import vocabulary as words

log = logging.getLogger(__name__)

# The core's answers in 2.0.1 words (ReserveNowStatusEnumType, CancelReservationStatusEnumType)
RESERVE_STATUS = {model.ACCEPTED: "Accepted", OCCUPIED: "Occupied", model.FAULTED: "Faulted",
                  model.UNAVAILABLE: "Unavailable", model.REJECTED: "Rejected"}
CANCEL_STATUS = {model.ACCEPTED: "Accepted", model.REJECTED: "Rejected"}
UPDATE_STATUS = {EXPIRED: "Expired", REMOVED: "Removed"}  # ReservationUpdateStatusEnumType


def reservation_status_update(reservation_id: int, why: str) -> dict:
    """ReservationStatusUpdateRequest: the reservation expired or was removed (H04)."""
    return {"reservationId": reservation_id, "reservationUpdateStatus": UPDATE_STATUS[why]}


class ReservationHandlers:
    """ReserveNow and CancelReservation for Ocpp201Session (``self.station``, ``self.model``)."""

    def _connector_types(self, evse_id: int | None) -> set:
        """The ConnectorType of the connectors of ``evse_id`` (None: of every EVSE)."""
        return {self.model.value(v) for v in self.model.variables()
                if v.component.name == "Connector" and v.name == "ConnectorType"
                and (evse_id is None or v.component.evse == evse_id)}

    async def on_ReserveNow(self, p: dict) -> dict:
        evse_id = p.get("evseId") or None  # absent (or 0): any EVSE, as NonEvseSpecific allows (the core checks)
        if evse_id is not None and not 1 <= evse_id <= len(self.station.connectors):
            return {"status": "Rejected", "statusInfo": {"reasonCode": "UnknownEvse"}}
        connector_type = p.get("connectorType")
        if connector_type is not None and connector_type not in self._connector_types(evse_id):
            return {"status": "Rejected", "statusInfo": {"reasonCode": "UnknownConnectorType"}}
        try:
            expiry = parse_datetime(p["expiryDateTime"])
        except ValueError:
            return {"status": "Rejected", "statusInfo": {"reasonCode": "InvalidValue",
                                                         "additionalInfo": "expiryDateTime"}}
        token = p["idToken"]
        group = (p.get("groupIdToken") or {}).get("idToken")
        outcome = await self.station.reserve(
            p["id"], evse_id or ANY_CONNECTOR, token["idToken"], expiry, parent_id_tag=group,
            connector_type=connector_type, token_kind=words.TOKEN_KIND_FROM_201.get(token["type"]))
        return {"status": RESERVE_STATUS[outcome]}

    async def on_CancelReservation(self, p: dict) -> dict:
        return {"status": CANCEL_STATUS[await self.station.cancel_reservation(p["reservationId"])]}
