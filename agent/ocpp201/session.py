"""One websocket connection's OCPP 2.0.1 protocol handling: requests from the CSMS,
translated to the station's and the device model's methods (no charging logic here).

The ``ocpp`` library's v201 ChargePoint sends the station's CALLs and matches their
answers; incoming CALLs are routed here, on their camelCase JSON payloads as the
schemas name them (the device model and agent/ocpp201/events.py speak that form):
each is checked against its 2.0.1 schema, answered by an ``on_<Action>`` method, and
its ``after_<Action>`` (if any) runs once the answer is sent. OCPP-J 2.0.1 CALLERRORs
(part 4, 4.3): NotImplemented for an action 2.0.1 does not know, NotSupported for one
it knows and this station does not handle, RpcFrameworkError / FormatViolation /
MessageTypeNotSupported for broken frames; the connection stays up.

CPython-only (the ``ocpp`` library's ChargePoint and schemas).
"""

import json
import logging

import ocpp.messages
from jsonschema.exceptions import ValidationError as SchemaError
from ocpp.v201 import ChargePoint
from ocpp.v201.enums import Action

from agent.core import model
from agent.core.smart_charging import ProfileError
from agent.core.station import Station
from agent.ocppj.session import FramedSession, call_error
from agent.ocpp201 import events, logs
from agent.ocpp201 import profiles
from agent.ocpp201.firmware_handlers import FirmwareHandlers
from agent.ocpp201.reservation_handlers import ReservationHandlers
from agent.ocpp201.security_handlers import SecurityHandlers
from agent.ocpp201 import vocabulary as words

log = logging.getLogger(__name__)

ocpp.messages.ASYNC_VALIDATION = False  # validate in the calling task (no thread pool)

VERSION = "2.0.1"
KNOWN_ACTIONS = frozenset(a.value for a in Action)
TRIGGER_NOT_IMPLEMENTED = ("SignV2GCertificate", "SignCombinedCertificate", "PublishFirmwareStatusNotification")


class CallError(Exception):
    """A request answered with a CALLERROR."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(description)
        self.code, self.description = code, description


def schema_error_code(error) -> str:
    """The OCPP-J 2.0.1 error code for a request payload that breaks its JSON schema."""
    if error.validator in ("required", "minItems", "maxItems"):
        return "OccurrenceConstraintViolation"
    if error.validator == "type":
        return "TypeConstraintViolation"
    if error.validator == "additionalProperties":
        return "FormatViolation"
    return "PropertyConstraintViolation"  # enum, maxLength, minimum, format…


class Ocpp201Session(SecurityHandlers, FirmwareHandlers, ReservationHandlers, FramedSession, ChargePoint):
    """One websocket connection's OCPP 2.0.1 protocol handling."""

    NOT_JSON, NOT_A_CALL, UNKNOWN_TYPE = "RpcFrameworkError", "FormatViolation", "MessageTypeNotSupported"

    def __init__(self, station_id: str, connection, client, response_timeout: float) -> None:
        super().__init__(station_id, connection, response_timeout=response_timeout, logger=log)
        self.client = client
        self.station: Station = client.station
        self.model = client.device_model
        self._reports: dict = {}  # requestId -> ReportData to send after an Accepted GetBaseReport/GetReport
        self._profile_reports: dict = {}  # requestId -> ReportChargingProfilesRequests after GetChargingProfiles
        self._restate_statuses = False  # a station-wide ChangeAvailability changed no status: report them after
        self._customer_reports: dict = {}  # requestId -> NotifyCustomerInformationRequests after CustomerInformation

    async def handle_call(self, uid: str, action: str, payload: dict) -> None:
        if self.client.registration == "Rejected":  # B03.FR.08: nothing is served until Accepted
            await self._send(call_error(uid, "SecurityError", "the BootNotification was Rejected"))
            return
        handler = getattr(self, "on_" + action, None) if action.isalnum() else None
        if handler is None:
            if action in KNOWN_ACTIONS:
                await self._send(call_error(uid, "NotSupported", "%s is recognized but not supported" % action))
            else:
                await self._send(call_error(uid, "NotImplemented", "%s is not known" % action))
            return
        try:
            ocpp.messages.get_validator(2, action, VERSION).validate(payload)
        except SchemaError as e:
            await self._send(call_error(uid, schema_error_code(e), e.message))
            return
        try:
            response = await handler(payload)
            ocpp.messages.get_validator(3, action, VERSION).validate(response)
        except CallError as e:
            await self._send(call_error(uid, e.code, e.description))
            return
        except Exception:
            log.exception("handling %s failed", action)
            await self._send(call_error(uid, "InternalError", "An internal error occurred"))
            return
        await self._send(json.dumps([3, uid, response], separators=(",", ":")))
        after = getattr(self, "after_" + action, None)
        if after is not None:
            self.client.spawn(after(payload, response))  # a task: it may wait for answers the reader reads

    async def call_raw(self, action: str, payload: dict) -> dict:
        """A CALL of ``payload`` as it is, answered with the response payload as received: the
        ``ocpp`` library's ``call`` converts the case of every key, also inside free-form data
        (DataTransfer's anyType). Schema-checked both ways; a CALLERROR is raised as OCPPError,
        no answer as asyncio.TimeoutError."""
        request = ocpp.messages.Call(unique_id=str(self._unique_id_generator()), action=action, payload=payload)
        await ocpp.messages.validate_payload(request, VERSION)
        async with self._call_lock:
            await self._send(request.to_json())
            response = await self._get_specific_response(request.unique_id, self._response_timeout)
        if response.message_type_id == ocpp.messages.MessageType.CallError:
            raise response.to_exception()
        response.action = action
        await ocpp.messages.validate_payload(response, VERSION)
        return response.payload

    # ---------------------------------------------------------------- B: provisioning
    async def on_GetVariables(self, p: dict) -> dict:
        data = p["getVariableData"]
        if len(data) > self.model.get("DeviceDataCtrlr.ItemsPerMessage[GetVariables]"):
            raise CallError("OccurrenceConstraintViolation", "more than ItemsPerMessage GetVariables")
        return {"getVariableResult": self.model.get_variables(data)}

    async def on_SetVariables(self, p: dict) -> dict:
        data = p["setVariableData"]
        if len(data) > self.model.get("DeviceDataCtrlr.ItemsPerMessage[SetVariables]"):
            raise CallError("OccurrenceConstraintViolation", "more than ItemsPerMessage SetVariables")
        return {"setVariableResult": self.model.set_variables(data)}

    async def after_SetVariables(self, p: dict, response: dict) -> None:
        self.client.settings_answered()  # a new BasicAuthPassword: reconnect only now

    async def on_SetNetworkProfile(self, p: dict) -> dict:
        return {"status": self.client.set_network_profile(p["configurationSlot"], p["connectionData"])}

    def _report_answer(self, request_id: int, make) -> dict:
        """Accepted (the ReportData kept for after the answer), EmptyResultSet or NotSupported."""
        try:
            data = make()
        except ValueError:
            return {"status": "NotSupported"}
        if not data:
            return {"status": "EmptyResultSet"}
        self._reports[request_id] = data
        return {"status": "Accepted"}

    async def on_GetBaseReport(self, p: dict) -> dict:
        return self._report_answer(p["requestId"], lambda: self.model.base_report(p["reportBase"]))

    async def on_GetReport(self, p: dict) -> dict:
        return self._report_answer(
            p["requestId"], lambda: self.model.report(p.get("componentVariable"), p.get("componentCriteria")))

    async def _send_report(self, p: dict, response: dict) -> None:
        data = self._reports.pop(p["requestId"], None)
        if response["status"] != "Accepted" or not data:
            return
        for message in self.model.notify_report_messages(p["requestId"], data):
            await self.client.outbox_sender.send_quietly("NotifyReport", message)

    after_GetBaseReport = after_GetReport = _send_report

    async def on_Reset(self, p: dict) -> dict:
        if p.get("evseId") is not None:
            return {"status": "Rejected"}  # resetting one EVSE is not supported (B11.FR.08 optional)
        running = any(c.transaction is not None and not c.transaction.stopped for c in self.station.connectors)
        if p["type"] == "OnIdle" and running:
            return {"status": "Scheduled"}  # B12.FR.01
        return {"status": "Accepted"}

    async def after_Reset(self, p: dict, response: dict) -> None:
        if p.get("evseId") is None:
            self.station.request_reset(hard=False, when=words.RESET_TYPE[p["type"]])

    async def on_ChangeAvailability(self, p: dict) -> dict:
        evse = p.get("evse") or {}
        evse_id = evse.get("id", 0)
        if evse.get("connectorId") not in (None, 1) or not 0 <= evse_id <= len(self.station.connectors):
            return {"status": "Rejected"}
        statuses = self._connector_statuses()
        status = await self.station.change_availability(evse_id, words.OPERATIONAL_STATUS[p["operationalStatus"]])
        # The station's state asked for is the one it has: report it anyway (TC_G_13 step 3)
        self._restate_statuses = evse_id == 0 and status == model.ACCEPTED and self._connector_statuses() == statuses
        return {"status": words.answer("ChangeAvailability", status)}

    def _connector_statuses(self) -> list:
        return [self.station.status_of(n)[0] for n in range(1, len(self.station.connectors) + 1)]

    async def after_ChangeAvailability(self, p: dict, response: dict) -> None:
        if self._restate_statuses:
            self._restate_statuses = False
            await self.client.send_triggered("StatusNotification", None)

    # ---------------------------------------------------------------- C/D: authorization, local list
    async def on_ClearCache(self, p: dict) -> dict:
        if not self.station.settings.get("auth_cache_enabled", False):
            return {"status": "Rejected"}  # C11.FR.04: the cache is disabled (TC_C_38)
        return {"status": "Accepted" if self.station.clear_cache() else "Rejected"}

    async def on_GetLocalListVersion(self, p: dict) -> dict:
        # The last accepted update's version, even one that emptied the list (TC_D_04); disabled: 0 (D02.FR.03)
        return {"versionNumber": max(self.station.local_list_version(empty_is_version_0=False), 0)}

    async def on_SendLocalList(self, p: dict) -> dict:
        entries = [(e["idToken"]["idToken"], events.id_tag_info(e["idTokenInfo"]) if e.get("idTokenInfo") else None)
                   for e in p.get("localAuthorizationList") or []]
        status = self.station.send_local_list(words.UPDATE_TYPE[p["updateType"]], p["versionNumber"], entries,
                                              empty_is_version_0=False)
        return {"status": words.answer("SendLocalList", status)}

    # ---------------------------------------------------------------- E/F: transactions, remote control
    async def on_RequestStartTransaction(self, p: dict) -> dict:
        if not self.client.boot_accepted:
            return {"status": "Rejected"}  # B02.FR.05: no transaction while the boot is Pending
        token = p["idToken"]
        kind = words.TOKEN_KIND_FROM_201.get(token["type"], model.TOKEN_CENTRAL)
        self.station.charging_profiles.last_rejection = None
        try:  # K05: a TxProfile without transactionId, installed when the transaction starts; else Rejected
            profile = (None if p.get("chargingProfile") is None
                       else profiles.profile_from_201(p["chargingProfile"]))
            ok = await self.station.remote_start(token["idToken"], p.get("evseId"), profile, token_kind=kind,
                                                 remote_start_id=p["remoteStartId"])
        except ProfileError as e:
            log.info("RequestStartTransaction rejected: %s", e)
            return {"status": "Rejected", "statusInfo": self._profile_info(e)}
        if not ok and profile is not None and self.station.charging_profiles.last_rejection:
            return {"status": "Rejected",
                    "statusInfo": profiles.rejection_info(self.station.charging_profiles.last_rejection)}
        out = {"status": "Accepted" if ok else "Rejected"}
        evse_id = p.get("evseId")
        tx = self.station.connector(evse_id).transaction if ok and evse_id else None
        if tx is not None and tx.awaiting_auth:  # begun on the EV (TxStartPoint EVConnected): OCTT Authorized B
            out["transactionId"] = tx.id
        return out

    async def on_RequestStopTransaction(self, p: dict) -> dict:
        ok = await self.station.remote_stop(tx_id=p["transactionId"])
        return {"status": "Accepted" if ok else "Rejected"}

    async def on_UnlockConnector(self, p: dict) -> dict:
        if p["connectorId"] != 1 or not 1 <= p["evseId"] <= len(self.station.connectors):
            return {"status": "UnknownConnector"}
        status = await self.station.unlock_connector(p["evseId"], stop_running=False)
        return {"status": words.answer("UnlockConnector", status)}

    async def on_GetTransactionStatus(self, p: dict) -> dict:
        tx_id = p.get("transactionId")
        out = {"messagesInQueue": self.client.outbox_sender.queued(tx_id)}
        if tx_id is not None:
            out["ongoingIndicator"] = self.station.find_transaction(tx_id=tx_id) is not None
        return out

    async def on_TriggerMessage(self, p: dict) -> dict:
        message, evse_id = p["requestedMessage"], (p.get("evse") or {}).get("id")
        if message in TRIGGER_NOT_IMPLEMENTED:
            return {"status": "NotImplemented"}
        return {"status": "Accepted" if self.client.triggerable(message, evse_id) else "Rejected"}

    async def after_TriggerMessage(self, p: dict, response: dict) -> None:
        if response["status"] == "Accepted":
            await self.client.send_triggered(p["requestedMessage"], (p.get("evse") or {}).get("id"))

    # ---------------------------------------------------------------- N01: GetLog
    async def on_GetLog(self, p: dict) -> dict:
        return logs.get_log(self.client, p)

    async def after_GetLog(self, p: dict, response: dict) -> None:
        logs.start(self.client, p, response)  # the answer is out: LogStatusNotifications follow it

    # ---------------------------------------------------------------- K: smart charging
    @staticmethod
    def _profile_info(e: ProfileError) -> dict:
        """StatusInfoType for a profile or request the station cannot take at all."""
        code = getattr(e, "reason_code", None) or ("UnknownEvse" if "EVSE" in str(e) else "InvalidProfile")
        return {"reasonCode": code, "additionalInfo": str(e)[:512]}

    async def on_SetChargingProfile(self, p: dict) -> dict:
        store = self.station.charging_profiles
        store.last_rejection = None
        try:
            profile = profiles.profile_from_201(p["chargingProfile"])
            status = await self.station.set_charging_profile(p["evseId"], profile, own_transaction_ids=True)
        except ProfileError as e:  # an unknown EVSE (TC_K_14), an unsupported purpose, two schedules: Rejected
            log.info("SetChargingProfile rejected: %s", e)
            return {"status": "Rejected", "statusInfo": self._profile_info(e)}
        if status != model.ACCEPTED:
            return {"status": "Rejected", "statusInfo": profiles.rejection_info(store.last_rejection)}
        return {"status": words.answer("SetChargingProfile", status)}

    async def on_GetChargingProfiles(self, p: dict) -> dict:
        found = [q for q in self.station.charging_profiles.entries()
                 if profiles.matches(q, p.get("evseId"), p["chargingProfile"])]
        if not found:
            return {"status": "NoProfiles"}  # K09.FR.03
        self._profile_reports[p["requestId"]] = profiles.report_messages(p["requestId"], found)
        return {"status": "Accepted"}

    async def after_GetChargingProfiles(self, p: dict, response: dict) -> None:
        for message in self._profile_reports.pop(p["requestId"], None) or ():
            await self.client.outbox_sender.send_quietly("ReportChargingProfiles", message)

    async def on_ClearChargingProfile(self, p: dict) -> dict:
        criteria = p.get("chargingProfileCriteria") or {}
        purpose = profiles.purpose_from_201(criteria.get("chargingProfilePurpose"))
        if p.get("chargingProfileId") is None and purpose == "":
            return {"status": "Unknown"}  # ChargingStationExternalConstraints: none installed here
        status = await self.station.clear_charging_profile(
            p.get("chargingProfileId"), criteria.get("evseId"), purpose or None, criteria.get("stackLevel"))
        return {"status": words.answer("ClearChargingProfile", status)}

    async def on_GetCompositeSchedule(self, p: dict) -> dict:
        unit = p.get("chargingRateUnit")
        if unit is not None and unit not in self.station.charging_profiles.allowed_units:
            return {"status": "Rejected", "statusInfo": {"reasonCode": "UnsupportedRateUnit"}}  # TC_K_42
        try:
            composite = self.station.composite_schedule(p["evseId"], p["duration"], unit, sum_evses=True)
        except ProfileError as e:
            return {"status": "Rejected", "statusInfo": self._profile_info(e)}
        if composite is None:
            return {"status": "Rejected", "statusInfo": {"reasonCode": "UnknownEvse"}}  # TC_K_47
        return {"status": "Accepted", "schedule": profiles.schedule_to_201(composite, p["evseId"])}

    # ---------------------------------------------------------------- N: customer information
    CUSTOMER_KEYS = ("idToken", "customerIdentifier", "customerCertificate")

    async def on_CustomerInformation(self, p: dict) -> dict:
        """N09/N10: Invalid unless the request names exactly one customer and asks for a report or
        a clearing. The station keeps customers only by the idToken they present: a
        customerIdentifier or customerCertificate (no ISO 15118) finds nothing. Cleared now,
        reported after the answer."""
        given = [k for k in self.CUSTOMER_KEYS if p.get(k) is not None]
        if len(given) != 1 or not (p["report"] or p["clear"]):
            return {"status": "Invalid"}
        token = (p.get("idToken") or {}).get("idToken")
        found = self.station.customer_data(token, clear=p["clear"]) if token else []
        if p["report"]:
            texts = [events.customer_record(where, what, cleared) for where, what, cleared in found]
        else:  # a confirmation, without the customer's data
            cleared = [where for where, _what, was_cleared in found if was_cleared]
            texts = ["cleared: %s" % ", ".join(cleared) if cleared else "cleared: nothing held to clear"]
        self._customer_reports[p["requestId"]] = events.customer_information_messages(
            p["requestId"], texts, self.client.clock.time())
        return {"status": "Accepted"}

    async def after_CustomerInformation(self, p: dict, response: dict) -> None:
        for message in self._customer_reports.pop(p["requestId"], None) or ():
            await self.client.outbox_sender.send_quietly("NotifyCustomerInformation", message)

    # ---------------------------------------------------------------- P: data transfer
    async def on_DataTransfer(self, p: dict) -> dict:
        return {"status": "UnknownVendorId"}
