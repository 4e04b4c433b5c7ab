"""The OCPP 2.0.1 side of the local test central system (``tools.csms``).

``tools.csms.TestCentralSystem`` is the one front: it serves a station that
negotiated ``ocpp2.0.1`` with ``CentralChargePoint201`` (an ``ocpp.v201``
ChargePoint) and answers its requests with ``default_reply`` unless a handler
overrides the action. Recording, ``wait_for``, ``call`` and printing are the
same as for 1.6 and live in ``tools.csms``; this module imports nothing from
it, so ``python -m tools.csms`` loads one copy of each.

Payloads stay camelCase on both sides: the ``ocpp`` library's key conversion
round-trips every property name of the 2.0.1 schemas (checked in
tests/tools/test_csms201.py), so the library's dataclasses and schema
validation are used as they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from ocpp.charge_point import camel_to_snake_case
from ocpp.v201 import ChargePoint as _V201ChargePoint
from ocpp.v201.enums import Action

from tools.ocpp_peer import recording_charge_point

VERSION = "2.0.1"
SUBPROTOCOL = "ocpp2.0.1"

Payload = dict[str, Any]

# Requests a charging station may send in OCPP 2.0.1 (every CS → CSMS message, and DataTransfer).
CHARGER_ACTIONS: tuple[str, ...] = (
    Action.authorize,
    Action.boot_notification,
    Action.cleared_charging_limit,
    Action.data_transfer,
    Action.firmware_status_notification,
    Action.get_15118_ev_certificate,
    Action.get_certificate_status,
    Action.heartbeat,
    Action.log_status_notification,
    Action.meter_values,
    Action.notify_charging_limit,
    Action.notify_customer_information,
    Action.notify_display_messages,
    Action.notify_ev_charging_needs,
    Action.notify_ev_charging_schedule,
    Action.notify_event,
    Action.notify_monitoring_report,
    Action.notify_report,
    Action.publish_firmware_status_notification,
    Action.report_charging_profiles,
    Action.reservation_status_update,
    Action.security_event_notification,
    Action.sign_certificate,
    Action.status_notification,
    Action.transaction_event,
)


class Settings(Protocol):
    """What ``default_reply`` reads from the central system."""

    boot_status: str
    boot_interval_s: int
    reject_tags: set[str]


def snake(key: str) -> str:
    """A top-level camelCase key as the ``ocpp.v201`` dataclasses name it (``evseId`` → ``evse_id``)."""
    return next(iter(camel_to_snake_case({key: None})))


def id_token_info(id_token: Any, reject_tags: Iterable[str]) -> Payload:
    """``{"status": "Accepted"}``, or ``Invalid`` for a token whose ``idToken`` is rejected."""
    value = id_token.get("idToken") if isinstance(id_token, dict) else id_token
    return {"status": "Invalid" if value in set(reject_tags) else "Accepted"}


def default_reply(settings: Settings, action: str, payload: Payload, now_iso: str) -> Payload:
    """The reply to a 2.0.1 station request when no handler overrides it."""
    if action == Action.boot_notification:
        return {"currentTime": now_iso, "interval": settings.boot_interval_s, "status": settings.boot_status}
    if action == Action.heartbeat:
        return {"currentTime": now_iso}
    if action == Action.authorize:
        return {"idTokenInfo": id_token_info(payload.get("idToken"), settings.reject_tags)}
    if action == Action.transaction_event:
        # idTokenInfo is required when the request carries an idToken (E01.FR.07 ff.).
        if "idToken" in payload:
            return {"idTokenInfo": id_token_info(payload["idToken"], settings.reject_tags)}
        return {}
    if action in (Action.data_transfer, Action.sign_certificate, Action.notify_ev_charging_schedule):
        return {"status": "Accepted"}
    if action == Action.notify_ev_charging_needs:
        return {"status": "Rejected"}  # this central system computes no schedules
    if action == Action.get_certificate_status:
        return {"status": "Failed"}  # no OCSP responder here
    if action == Action.get_15118_ev_certificate:
        return {"status": "Failed", "exiResponse": ""}  # no 15118 PKI here
    return {}


CentralChargePoint201 = recording_charge_point(_V201ChargePoint, CHARGER_ACTIONS, "CentralChargePoint201")
