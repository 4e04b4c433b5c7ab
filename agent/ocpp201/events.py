"""The core's transaction events, statuses and faults as OCPP 2.0.1 payloads (no I/O).

Pure functions from the neutral model (agent/core/model.py, agent/core/outbox.py) to
2.0.1 request payloads: camelCase dicts, valid against the ``ocpp`` library's 2.0.1
schemas, for raw JSON or for its call dataclasses (``call()``). Words are translated
by agent/ocpp201/vocabulary.py. What the core does not keep (a transaction's seqNo,
whether an event arose offline, a token's kind, a remote start's id) the caller passes.

Transactions (E01-E15): one evse per connector, ``evse_id`` = the core's connector id,
connectorId 1; ``transactionId`` is the station's own ``tx.id``.
"""

from agent.core import model
from agent.core.isotime import format_datetime, parse_datetime
from agent.core.outbox import METER, START, STOP, UPDATE
from agent.ocpp201 import vocabulary as words

ENERGY_REGISTER = "Energy.Active.Import.Register"
# A sample whose unit the core leaves out (1.6 has none for it) gets its 2.0.1 unit:
# an absent unitOfMeasure would mean Wh.
DEFAULT_UNITS = {"Frequency": "Hz", "SoC": "Percent"}


def iso_time(t: float) -> str:
    """A 2.0.1 dateTime: UTC, millisecond precision, 'Z' suffix."""
    return format_datetime(t, millis=True)


# ---------------------------------------------------------------- meter values
def sampled_value(s: model.Sample) -> dict:
    """A SampledValueType: the value as a number, with its context, measurand, phase,
    location and unit (no ``format``: 2.0.1 has none)."""
    out = {"value": s.value, "context": s.context, "measurand": s.measurand, "location": s.location}
    if s.phase is not None:
        out["phase"] = s.phase
    unit = s.unit if s.unit is not None else DEFAULT_UNITS.get(s.measurand)
    if unit is not None:
        out["unitOfMeasure"] = {"unit": unit}
    return out


def meter_value(sample: model.MeterSample) -> dict:
    """A MeterValueType."""
    return {"timestamp": iso_time(sample.timestamp), "sampledValue": [sampled_value(s) for s in sample.samples]}


def meter_value_list(samples) -> list:
    """MeterValueTypes of the MeterSamples that have values (the schema wants at least one)."""
    return [meter_value(s) for s in samples or () if s.samples]


def begin_meter_values(tx: model.Transaction) -> list:
    """The start's meter register as a MeterSample list (context Transaction.Begin), for
    the Started event (the core keeps meter_start_wh, 1.6's meterStart)."""
    return [model.MeterSample(tx.start_time, [model.Sample(ENERGY_REGISTER, tx.meter_start_wh, "Wh",
                                                           context="Transaction.Begin")])]


def end_meter_values(tx: model.Transaction) -> list:
    """The samples kept for the transaction's end (``tx.stop_data``: its begin, the
    sampled and clock-aligned values to send with the end, its end), with the end's
    register added when no Transaction.End register reading is among them."""
    out = list(tx.stop_data)
    if tx.meter_stop_wh is not None and not any(
            x.measurand == ENERGY_REGISTER and x.context == "Transaction.End" for s in out for x in s.samples):
        out.append(model.MeterSample(tx.stop_time, [model.Sample(ENERGY_REGISTER, tx.meter_stop_wh, "Wh",
                                                                 context="Transaction.End")]))
    return out


def meter_values(evse_id: int, samples) -> dict:
    """MeterValuesRequest: values outside transactions (J01; evse 0 is the station's main meter)."""
    return {"evseId": evse_id, "meterValue": meter_value_list(samples)}


# ---------------------------------------------------------------- id tokens and authorization
def id_token(tag: str, kind: str | None = None) -> dict:
    """An IdTokenType: ``tag`` as given (RFID: the UID in hex), of neutral ``kind``
    (vocabulary.TOKEN_KINDS; default an ISO 14443 card)."""
    token_type = words.TOKEN_KINDS[kind or words.DEFAULT_TOKEN_KIND]
    return {"idToken": "" if token_type == "NoAuthorization" else tag, "type": token_type}


def authorize_request(token: dict) -> dict:
    """AuthorizeRequest for an IdTokenType (``id_token()``)."""
    return {"idToken": token}


def _get(data: dict, camel: str, snake: str):
    """A field of a payload as JSON (camelCase) or as the ``ocpp`` library hands it over (snake_case)."""
    return data[camel] if camel in data else data.get(snake)


def id_tag_info(data: dict | None) -> model.IdTagInfo:
    """The core's IdTagInfo for a 2.0.1 IdTokenInfoType (of an Authorize or TransactionEvent
    response, or a local list entry): status through the vocabulary, cacheExpiryDateTime as
    the expiry, groupIdToken.idToken as the parent (group) tag. chargingPriority, evseId,
    language and personal messages have no place in the core and are left out."""
    data = data or {}
    status = words.AUTHORIZATION_FROM_201.get(data.get("status"), model.AUTH_INVALID)
    group = _get(data, "groupIdToken", "group_id_token") or {}
    return model.IdTagInfo(status, _get(data, "cacheExpiryDateTime", "cache_expiry_date_time"),
                           _get(group, "idToken", "id_token"))


def id_token_info(info: model.IdTagInfo) -> dict:
    """A 2.0.1 IdTokenInfoType for the core's IdTagInfo (the group token's kind is not
    kept by the core: Central, a token the central system made)."""
    out = {"status": words.AUTHORIZATION_STATUS[info.status]}
    if info.expiry_date is not None:
        out["cacheExpiryDateTime"] = iso_time(parse_datetime(info.expiry_date))
    if info.parent_id_tag is not None:
        out["groupIdToken"] = id_token(info.parent_id_tag, "central")
    return out


# ---------------------------------------------------------------- transaction events
# The triggerReason of an update entry, by its cause (model.CAUSE_*). An EV unplugged
# during a transaction that goes on is EVCommunicationLost (OCTT TC_E_26 step 1, errata
# figure 56: EVDeparted is for a parking bay sensor, which the station has not).
UPDATE_TRIGGER = {
    model.CAUSE_CHARGING_STATE: "charging_state_changed",  # TC_E_11 step 5, TC_E_22, TC_E_38
    model.CAUSE_EV_DEPARTED: "ev_communication_lost",  # TC_E_26 step 1 (chargingState Idle)
    model.CAUSE_CABLE_PLUGGED_IN: "cable_plugged_in",  # TC_E_26 step 5 (chargingState EVConnected)
    # An identifier for a transaction begun on the EV (TxStartPoint EVConnected, TC_E_09 then the
    # reusable state Authorized), and its end with stop points that keep the transaction (figure 56)
    model.CAUSE_AUTHORIZED: "authorized",
    model.CAUSE_REMOTE_START: "remote_start",
    model.CAUSE_STOP_AUTHORIZED: "stop_authorized",
    model.CAUSE_REMOTE_STOP: "remote_stop",
    model.CAUSE_DEAUTHORIZED: "deauthorized",
}
# Update causes whose event carries the transaction's token (its start's, or the one that stopped it).
START_TOKEN_CAUSES = (model.CAUSE_AUTHORIZED, model.CAUSE_REMOTE_START)
STOP_TOKEN_CAUSES = (model.CAUSE_STOP_AUTHORIZED,)


def transaction_event(kind: str, tx: model.Transaction, evse_id: int, seq_no: int, timestamp: float,
                      trigger_reason: str, offline: bool = False, charging_state: str | None = None,
                      samples=None, id_token: dict | None = None, number_of_phases: int | None = None,
                      remote_start_id: int | None = None, ev_connected: bool = True,
                      connector_id: int = 1) -> dict:
    """TransactionEventRequest for ``tx``.

    ``kind``: an outbox kind (start, meter, stop) or vocabulary.UPDATE, giving eventType
    Started/Updated/Ended. ``trigger_reason``: a neutral trigger word (vocabulary.TRIGGER_REASON).
    ``charging_state``: the connector's neutral state, with ``ev_connected`` (vocabulary.charging_state);
    None leaves chargingState out. ``samples``: MeterSamples for meterValue. ``id_token``:
    an IdTokenType (``id_token()``). ``seq_no``: the transaction's message counter (0 for
    Started, one more for each message after). The Ended event carries stoppedReason
    (from ``tx.stop_reason``) and a Started one the reservation ``tx`` was for."""
    event_type = words.EVENT_TYPE[kind]
    info = {"transactionId": tx.id}
    if charging_state is not None:
        info["chargingState"] = words.charging_state(charging_state, ev_connected)
    if event_type == "Ended" and tx.stop_reason is not None:
        info["stoppedReason"] = words.STOPPED_REASON[tx.stop_reason]
    if remote_start_id is not None:
        info["remoteStartId"] = remote_start_id
    out = {"eventType": event_type, "timestamp": iso_time(timestamp),
           "triggerReason": words.TRIGGER_REASON[trigger_reason], "seqNo": seq_no,
           "transactionInfo": info, "offline": bool(offline), "evse": {"id": evse_id, "connectorId": connector_id}}
    values = meter_value_list(samples)
    if values:
        out["meterValue"] = values
    if id_token is not None:
        out["idToken"] = id_token
    if number_of_phases is not None:
        out["numberOfPhasesUsed"] = number_of_phases
    if event_type == "Started" and tx.reservation_id is not None:
        out["reservationId"] = tx.reservation_id
    return out


def entry_event(entry, seq_no: int, offline: bool = False, trigger_reason: str | None = None,
                token_kind: str | None = None, charging_state: str | None = None,
                ev_connected: bool | None = None, number_of_phases: int | None = None,
                remote_start_id: int | None = None) -> dict:
    """The TransactionEventRequest for a queued outbox entry (agent/core/outbox.py), at
    the time it arose (evse = the entry's connector):

    - start: Started, triggerReason Authorized (RemoteStart with ``remote_start_id``), the
      start's token, the start's register reading; chargingState EVConnected (the core
      starts a transaction with the EV connected and authorized).
    - meter: Updated, triggerReason from the samples' context (MeterValuePeriodic/Clock/Trigger).
    - update: Updated, triggerReason from its cause (UPDATE_TRIGGER), the chargingState it
      recorded (Idle without an EV), at the time it arose.
    - stop: Ended, triggerReason from the stop reason (vocabulary.STOP_TRIGGER), stoppedReason,
      the token that stopped it (E07 reports it with StopAuthorized), the values kept for the
      end; chargingState Idle when the EV left (ev_disconnected).

    Any of these the caller knows better it passes (``trigger_reason``, ``charging_state``…)."""
    tx = entry.tx
    token = None
    if entry.kind == START:
        timestamp = tx.start_time
        trigger = trigger_reason or (words.REMOTE_START if remote_start_id is not None
                                     else words.START_TRIGGER.get(tx.start_cause, words.AUTHORIZED))
        if tx.id_tag or not tx.awaiting_auth:  # begun on the EV alone: no token yet (TC_E_09)
            token = id_token(tx.id_tag, token_kind)
        samples = entry.samples or begin_meter_values(tx)  # started_measurands (TxStartedMeasurands)
        if charging_state is None:  # what the entry recorded (no EV yet, energy flowing), else EVConnected
            charging_state = entry.state if entry.state in words.CHARGING_STATE_WITH_EV else model.PREPARING
            ev_connected = entry.ev_connected if ev_connected is None else ev_connected
    elif entry.kind == STOP:
        timestamp = tx.stop_time
        trigger = trigger_reason or (UPDATE_TRIGGER[tx.stop_cause] if tx.stop_cause in UPDATE_TRIGGER
                                     else words.STOP_TRIGGER[tx.stop_reason or model.REASON_OTHER])
        if tx.stop_id_tag:
            token = id_token(tx.stop_id_tag, token_kind)
        samples = end_meter_values(tx)
        if charging_state is None and (tx.stop_reason in (model.REASON_EV_DISCONNECTED, model.REASON_TIMEOUT)
                                       or tx.stop_cause == model.CAUSE_EV_DEPARTED):
            charging_state, ev_connected = model.AVAILABLE, False  # Idle: no EV (any more)
        elif charging_state is None and tx.stop_reason == model.REASON_STOPPED_BY_EV:
            charging_state, ev_connected = model.PREPARING, True  # EVConnected (TC_E_22)
        elif charging_state is None and tx.stop_reason in (model.REASON_HARD_RESET, model.REASON_SOFT_RESET):
            # A reset stops the energy, not the EV: EVConnected unless the last event said it had left (TC_B_22)
            ev_connected = tx.reported_state[1] if tx.reported_state else True
            charging_state = model.PREPARING if ev_connected else model.AVAILABLE
    elif entry.kind == METER:
        samples = entry.samples
        timestamp = samples[0].timestamp if samples else tx.last_meter_time
        context = samples[0].samples[0].context if samples and samples[0].samples else "Sample.Periodic"
        trigger = trigger_reason or words.METER_TRIGGER.get(context, "meter_value_periodic")
    elif entry.kind == UPDATE:
        samples = None
        timestamp = entry.time if entry.time is not None else tx.last_meter_time
        trigger = trigger_reason or UPDATE_TRIGGER.get(entry.cause, words.CHARGING_STATE_CHANGED)
        if charging_state is None and entry.state in words.CHARGING_STATE_WITH_EV:
            charging_state = entry.state
            ev_connected = entry.ev_connected if ev_connected is None else ev_connected
        if entry.cause in START_TOKEN_CAUSES and tx.id_tag:
            token = id_token(tx.id_tag, token_kind)
            if entry.cause == model.CAUSE_REMOTE_START and remote_start_id is None:
                remote_start_id = tx.remote_start_id
        elif entry.cause in STOP_TOKEN_CAUSES and tx.stop_id_tag:
            token = id_token(tx.stop_id_tag, token_kind)
    else:
        raise ValueError("not an outbox kind: %r" % (entry.kind,))
    return transaction_event(entry.kind, tx, entry.connector_id, seq_no, timestamp, trigger, offline=offline,
                             charging_state=charging_state, samples=samples, id_token=token,
                             number_of_phases=number_of_phases, remote_start_id=remote_start_id,
                             ev_connected=True if ev_connected is None else ev_connected)


def transaction_info_answer(data: dict | None) -> model.IdTagInfo | None:
    """The IdTagInfo of a TransactionEventResponse (None when it has no idTokenInfo)."""
    info = _get(data or {}, "idTokenInfo", "id_token_info")
    return None if info is None else id_tag_info(info)


# ---------------------------------------------------------------- statuses and events
def status_notification(evse_id: int, connector_status: str, timestamp: float, connector_id: int = 1,
                        ev_connected: bool = True) -> dict:
    """StatusNotificationRequest for a connector in neutral state ``connector_status`` (G01)."""
    return {"timestamp": iso_time(timestamp),
            "connectorStatus": words.connector_status(connector_status, ev_connected),
            "evseId": evse_id, "connectorId": connector_id}


def _component(name: str, evse_id: int | None, connector_id: int | None) -> dict:
    out = {"name": name}
    if evse_id:
        out["evse"] = {"id": evse_id}
        if connector_id:
            out["evse"]["connectorId"] = connector_id
    return out


def _notify(event: dict, timestamp: float, seq_no: int) -> dict:
    return {"generatedAt": iso_time(timestamp), "seqNo": seq_no, "tbc": False, "eventData": [event]}


def availability_event(connector_status: str, event_id: int, timestamp: float, evse_id: int | None = None,
                       connector_id: int | None = 1, ev_connected: bool = True, seq_no: int = 0) -> dict:
    """NotifyEventRequest of an AvailabilityState change (G01/N07, what OCTT checks beside
    each StatusNotification): of the Connector with ``evse_id`` and ``connector_id``, of
    the EVSE with ``evse_id`` only, of the ChargingStation with neither."""
    name = "Connector" if evse_id and connector_id else "EVSE" if evse_id else "ChargingStation"
    event = {"eventId": event_id, "timestamp": iso_time(timestamp), "trigger": "Delta",
             "actualValue": words.connector_status(connector_status, ev_connected),
             "eventNotificationType": "HardWiredNotification",
             "component": _component(name, evse_id, connector_id if name == "Connector" else None),
             "variable": {"name": "AvailabilityState"}}
    return _notify(event, timestamp, seq_no)


def notify_event(fault_word: str, cleared: bool, evse_id: int | None, event_id: int, timestamp: float,
                 tech_info: str | None = None, connector_id: int = 1, seq_no: int = 0) -> dict:
    """NotifyEventRequest for a hardware fault (hal/interfaces.py's words) that appeared
    (actualValue "true") or ``cleared`` ("false", cleared true): the component and
    variable from vocabulary.FAULTS, the word as techCode, ``tech_info`` (the vendor's
    detail) as techInfo. ``evse_id`` None or 0: a fault of the whole station."""
    component, variable = words.fault_component(fault_word, evse_id)
    event = {"eventId": event_id, "timestamp": iso_time(timestamp), "trigger": "Delta",
             "actualValue": "false" if cleared else "true", "cleared": bool(cleared),
             "techCode": fault_word, "eventNotificationType": "HardWiredNotification",
             "component": _component(component, evse_id,
                                     connector_id if component in words.CONNECTOR_COMPONENTS else None),
             "variable": {"name": variable}}
    if tech_info:
        event["techInfo"] = tech_info[:500]
    return _notify(event, timestamp, seq_no)


# ---------------------------------------------------------------- customer information (N09, N10)
CUSTOMER_DATA_CHARS = 512  # NotifyCustomerInformationRequest.data's maxLength


def customer_record(where: str, what, cleared: bool) -> str:
    """One item the station holds about a customer (``Station.customer_data``) as report text."""
    if isinstance(what, model.IdTagInfo):
        text = "%s: %s" % (where, words.AUTHORIZATION_STATUS[what.status])
        if what.expiry_date:
            text += ", expires %s" % what.expiry_date
        if what.parent_id_tag:
            text += ", group %s" % what.parent_id_tag
    else:  # a transaction
        text = "%s %s on EVSE %d: started %s, %d Wh at the start" % (
            where, what.id, what.connector_id, iso_time(what.start_time), what.meter_start_wh)
        text += (", ended %s, %d Wh at the end" % (iso_time(what.stop_time), what.meter_stop_wh)
                 if what.stopped and what.meter_stop_wh is not None else ", running")
    return text + (" (cleared)" if cleared else "")


def customer_information_messages(request_id: int, texts: list, generated_at: float) -> list:
    """NotifyCustomerInformationRequests carrying ``texts`` joined by "; ", cut into parts of at
    most CUSTOMER_DATA_CHARS characters: seqNo from 0, tbc on all but the last. No text: one
    message with empty data (nothing held)."""
    data = "; ".join(texts)
    parts = [data[i:i + CUSTOMER_DATA_CHARS] for i in range(0, len(data), CUSTOMER_DATA_CHARS)] or [""]
    return [{"data": part, "tbc": n < len(parts) - 1, "seqNo": n, "generatedAt": iso_time(generated_at),
             "requestId": request_id} for n, part in enumerate(parts)]


# ---------------------------------------------------------------- the ocpp library's dataclasses
def call(action: str, payload: dict):
    """``payload`` as the ``ocpp`` library's 2.0.1 call dataclass for ``action`` (its
    ChargePoint.call turns the nested camelCase dicts back into the same JSON)."""
    from ocpp.charge_point import camel_to_snake_case
    from ocpp.v201 import call as calls

    fields = {camel_to_snake_case({k: None}).popitem()[0]: v for k, v in payload.items()}
    return getattr(calls, action)(**fields)
