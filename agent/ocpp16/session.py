"""One websocket connection's OCPP 1.6 protocol handling: requests from the central
system, translated to the station's methods (no charging logic here).

CPython-only (the ``ocpp`` library's ChargePoint).
"""

import logging

import ocpp.exceptions
from ocpp.exceptions import OCPPError
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint
from ocpp.v16.enums import Action

from agent.core.smart_charging import ProfileError
from agent.core.station import Station
from agent.ocpp16 import logs, profiles
from agent.ocpp16.codec import (TRIGGERABLE, classify_schema_error, id_tag_info, ocpp_json, profile_error,
                                validate_request)
from agent.ocpp16.reservation_handlers import ReservationHandlers
from agent.ocpp16.firmware_handlers import FirmwareHandlers
from agent.ocpp16.diagnostics_handlers import DiagnosticsHandlers
from agent.ocpp16.security_handlers import SecurityHandlers
from agent.ocpp16.vocabulary import from_16, to_16
from agent.ocppj.session import FramedSession, call_error

log = logging.getLogger(__name__)


class Ocpp16Session(SecurityHandlers, FirmwareHandlers, ReservationHandlers, DiagnosticsHandlers, FramedSession,
                    ChargePoint):
    """One websocket connection's OCPP 1.6 protocol handling (OCPP-J 1.6 error names)."""

    def __init__(self, station_id: str, connection, client, response_timeout: float) -> None:
        super().__init__(station_id, connection, response_timeout=response_timeout, logger=log)
        self.client = client
        self.station: Station = client.station

    async def handle_call(self, uid: str, action: str, payload: dict) -> None:
        if action not in self.route_map:
            try:
                Action(action)
                code, text = "NotSupported", "%s is recognized but not supported" % action
            except ValueError:
                code, text = "NotImplemented", "%s is not known" % action
            await self._send(call_error(uid, code, text))
            return
        try:
            validate_request(action, payload)
        except ocpp.messages.SchemaValidationError as e:
            await self._send(call_error(uid, classify_schema_error(e), e.message[:200]))
            return
        try:
            await self._handle_call(ocpp.messages.Call(uid, action, payload))
        except OCPPError as e:
            await self._send(call_error(uid, e.code, str(e.description)))
        except Exception:
            log.exception("handling %s failed", action)
            await self._send(call_error(uid, "InternalError", "An internal error occurred"))

    # ---------------------------------------------------------------- Core, CS -> CP
    @on(Action.change_availability)
    async def on_change_availability(self, connector_id: int, type: str):
        status = await self.station.change_availability(connector_id, from_16(type))
        return self._call_result.ChangeAvailability(status=to_16(status))

    @on(Action.change_configuration)
    async def on_change_configuration(self, key: str, value: str):
        return self._call_result.ChangeConfiguration(status=self.client.keys.change(key, value))

    @after(Action.change_configuration)
    async def after_change_configuration(self, key: str, value: str):
        self.client.keys.answered(key)  # e.g. CentralSystemUrl: answer first, then move

    @on(Action.get_configuration)
    async def on_get_configuration(self, key: list | None = None):
        known, unknown = self.client.keys.read(key)
        return self._call_result.GetConfiguration(
            configuration_key=[{"key": k, "readonly": ro, "value": v} for k, ro, v in known],
            unknown_key=unknown or None)

    @on(Action.clear_cache)
    async def on_clear_cache(self):
        return self._call_result.ClearCache(status="Accepted" if self.station.clear_cache() else "Rejected")

    @on(Action.data_transfer)
    async def on_data_transfer(self, vendor_id: str, message_id: str | None = None, data: str | None = None):
        return self._call_result.DataTransfer(status="UnknownVendorId")

    @on(Action.remote_start_transaction)
    async def on_remote_start_transaction(self, id_tag: str, connector_id: int | None = None,
                                          charging_profile: dict | None = None):
        try:
            profile = (None if charging_profile is None
                       else profiles.profile_from_16(ocpp_json(charging_profile), "chargingProfile"))
            ok = await self.station.remote_start(id_tag, connector_id, profile)
        except ProfileError as e:
            raise profile_error(e) from None
        return self._call_result.RemoteStartTransaction(status="Accepted" if ok else "Rejected")

    @on(Action.remote_stop_transaction)
    async def on_remote_stop_transaction(self, transaction_id: int):
        ok = await self.station.remote_stop(backend_id=transaction_id)
        return self._call_result.RemoteStopTransaction(status="Accepted" if ok else "Rejected")

    @on(Action.reset)
    async def on_reset(self, type: str):
        return self._call_result.Reset(status="Accepted")

    @after(Action.reset)
    async def after_reset(self, type: str):
        # A station task (not the library's untracked one): it ends with the station.
        self.station.request_reset(hard=(type == "Hard"))

    @on(Action.unlock_connector)
    async def on_unlock_connector(self, connector_id: int):
        return self._call_result.UnlockConnector(status=to_16(await self.station.unlock_connector(connector_id)))

    # ---------------------------------------------------------------- SmartCharging
    @on(Action.set_charging_profile)
    async def on_set_charging_profile(self, connector_id: int, cs_charging_profiles: dict):
        try:
            connector_id = profiles.connector_id(connector_id)
            profile = profiles.profile_from_16(ocpp_json(cs_charging_profiles))
            status = await self.station.set_charging_profile(connector_id, profile)
        except ProfileError as e:
            raise profile_error(e) from None
        return self._call_result.SetChargingProfile(status=profiles.status_16(status))

    @on(Action.clear_charging_profile)
    async def on_clear_charging_profile(self, id: int | None = None, connector_id: int | None = None,
                                        charging_profile_purpose: str | None = None, stack_level: int | None = None):
        try:
            status = await self.station.clear_charging_profile(
                id, connector_id, profiles.purpose_from_16(charging_profile_purpose), stack_level)
        except ProfileError as e:
            raise profile_error(e) from None
        return self._call_result.ClearChargingProfile(status=profiles.status_16(status))

    @on(Action.get_composite_schedule)
    async def on_get_composite_schedule(self, connector_id: int, duration: int,
                                        charging_rate_unit: str | None = None):
        try:
            composite = self.station.composite_schedule(connector_id, duration, charging_rate_unit)
        except ProfileError as e:
            raise profile_error(e) from None
        if composite is None:
            return self._call_result.GetCompositeSchedule(status="Rejected")
        schedule = profiles.schedule_to_16(composite)
        return self._call_result.GetCompositeSchedule(
            status="Accepted", connector_id=connector_id, schedule_start=schedule["startSchedule"],
            charging_schedule=schedule)

    # ---------------------------------------------------------------- LocalAuthListManagement
    @on(Action.get_local_list_version)
    async def on_get_local_list_version(self):
        return self._call_result.GetLocalListVersion(list_version=self.station.local_list_version())

    @on(Action.send_local_list)
    async def on_send_local_list(self, list_version: int, update_type: str,
                                 local_authorization_list: list | None = None):
        entries = [(e["id_tag"], id_tag_info(e["id_tag_info"]) if e.get("id_tag_info") is not None else None)
                   for e in local_authorization_list or []]
        return self._call_result.SendLocalList(
            status=to_16(self.station.send_local_list(from_16(update_type), list_version, entries)))

    # ---------------------------------------------------------------- RemoteTrigger
    def _trigger_accepted(self, requested_message: str, connector_id: int | None) -> bool:
        """Whether a TriggerMessage is Accepted: the answer and what is sent after it
        both follow this one check (they must not disagree)."""
        if requested_message not in TRIGGERABLE:
            return False
        if connector_id is not None and not 0 <= connector_id <= len(self.station.connectors):
            return False
        return not (requested_message == "MeterValues" and connector_id == 0)  # no charger-level meter

    @on(Action.trigger_message)
    async def on_trigger_message(self, requested_message: str, connector_id: int | None = None):
        ok = self._trigger_accepted(requested_message, connector_id)
        return self._call_result.TriggerMessage(status="Accepted" if ok else "Rejected")

    @after(Action.trigger_message)
    async def after_trigger_message(self, requested_message: str, connector_id: int | None = None):
        if self._trigger_accepted(requested_message, connector_id):
            await self.client.send_triggered(requested_message, connector_id)

    # ---------------------------------------------------------------- Security whitepaper: N01 GetLog
    @on(Action.get_log)
    async def on_get_log(self, log_type: str, log: dict, request_id: int, retries: int | None = None,
                         retry_interval: int | None = None):
        return self._call_result.GetLog(**logs.get_log(self.client, log_type, log, request_id, retries,
                                                       retry_interval))

    @after(Action.get_log)
    async def after_get_log(self, log_type: str, log: dict, request_id: int, **_optional):
        logs.start(self.client, request_id)  # the answer is out: LogStatusNotifications follow it


