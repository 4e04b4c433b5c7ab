"""OCPP 1.6J adapter: translates between OCPP messages and the station model.

CPython-only (wraps the ``ocpp`` library). Handlers translate and delegate to
``Station``; they hold no charging logic. ``Ocpp16Client`` is the station's
``CentralSystemLink``: it boots, sends heartbeats, status notifications and the
transaction outbox over whatever connection ``agent.connection`` provides.
"""

import asyncio
import decimal
import json
import logging
from datetime import datetime, timezone

import ocpp.exceptions
import ocpp.messages
from ocpp.charge_point import snake_to_camel_case
from ocpp.exceptions import OCPPError
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint, call
from ocpp.v16.enums import Action

from agent import model
from agent.outbox import METER, START, STOP
from agent.smart_charging import ProfileFormatError
from agent.station import CentralSystemLink, Station

log = logging.getLogger(__name__)

MAX_RETRY_DELAY_S = 3600  # Start/Stop are retried forever (never dropped), at least hourly

# Validate in the calling task: the library's default hands every message to a
# thread pool, which costs a thread switch per message and more memory.
ocpp.messages.ASYNC_VALIDATION = False

VERSION = "1.6"
SUBPROTOCOL = "ocpp1.6"
DECIMAL_ACTIONS = ("SetChargingProfile", "RemoteStartTransaction")  # requests with charging schedules
TRIGGERABLE = ("BootNotification", "DiagnosticsStatusNotification", "FirmwareStatusNotification",
               "Heartbeat", "MeterValues", "StatusNotification")


def iso_time(ts: float) -> str:
    """OCPP timestamp: UTC, millisecond precision, 'Z' suffix."""
    ms = int(round(ts * 1000))  # seconds and milliseconds from one rounding (x.9999999 is x+1.000)
    return datetime.fromtimestamp(ms // 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (
        ms % 1000)


def _call_error(unique_id: str, code: str, description: str, details: dict | None = None) -> str:
    return json.dumps([4, unique_id, code, description, details or {}], separators=(",", ":"))


def _validate_request(action: str, payload: dict) -> None:
    """Check a request payload against its 1.6 JSON schema (raises SchemaValidationError).
    Charging schedules' decimals (multipleOf 0.1) are checked as the ``ocpp`` library
    does, on Decimals: its validator cache ignores ``parse_float``, so a float
    validator cached here would break the library's own check of the same action."""
    if action in DECIMAL_ACTIONS:
        ocpp.messages.get_validator(2, action, VERSION, parse_float=decimal.Decimal).validate(
            json.loads(json.dumps(payload), parse_float=decimal.Decimal))
    else:
        ocpp.messages.get_validator(2, action, VERSION).validate(payload)


def classify_schema_error(error) -> str:
    """The OCPP-J 1.6 error code for a JSON-schema violation of a request payload."""
    if error.validator == "required":
        return "ProtocolError"  # "Payload for Action is incomplete"
    if error.validator == "type":
        return "TypeConstraintViolation"
    if error.validator == "additionalProperties":
        return "FormationViolation"
    if error.validator in ("minItems", "maxItems"):
        return "OccurenceConstraintViolation"  # sic: the 1.6 spelling
    return "PropertyConstraintViolation"  # enum, maxLength, minimum, format…


def _number(value) -> str:
    """A sampled value as text, every digit kept (``%g`` would round a 1234567.8 Wh
    register to 6 significant digits: 1.23457e+06)."""
    v = float(value)
    return "%d" % v if v.is_integer() and abs(v) < 1e15 else repr(v)


def _sampled_value(s: model.Sample) -> dict:
    out = {"value": _number(s.value),
           "context": s.context, "format": "Raw", "measurand": s.measurand, "location": s.location}
    if s.unit is not None:
        out["unit"] = s.unit
    if s.phase is not None:
        out["phase"] = s.phase
    return out


def meter_value(sample: model.MeterSample) -> dict:
    return {"timestamp": iso_time(sample.timestamp), "sampledValue": [_sampled_value(s) for s in sample.samples]}


def _id_tag_info(data: dict | None) -> model.IdTagInfo:
    data = data or {}
    return model.IdTagInfo(data.get("status", model.AUTH_INVALID), data.get("expiry_date"),
                           data.get("parent_id_tag"))


def _ocpp_json(data):
    """A nested payload object back as plain OCPP JSON: camelCase keys (the
    library hands handlers snake_case keys at every depth) and floats (it
    hands over the Decimals it validated charging schedules with); None stays None."""
    if data is None:
        return None
    return _floats(snake_to_camel_case(data))


def _floats(data):
    if isinstance(data, dict):
        return {k: _floats(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_floats(v) for v in data]
    return float(data) if isinstance(data, decimal.Decimal) else data


_PROFILE_ERRORS = {cls.code: cls for cls in (
    ocpp.exceptions.PropertyConstraintViolationError, ocpp.exceptions.TypeConstraintViolationError,
    ocpp.exceptions.ProtocolError, ocpp.exceptions.FormationViolationError,
    ocpp.exceptions.OccurenceConstraintViolationError)}


def _profile_error(e: ProfileFormatError) -> OCPPError:
    """The CALLERROR a malformed charging profile is answered with (its code, errata 3.38/3.39)."""
    return _PROFILE_ERRORS.get(e.error_code, ocpp.exceptions.PropertyConstraintViolationError)(
        description=str(e)[:200])


async def _first_done(a, b) -> None:
    """Until task ``a`` or task ``b`` is done."""
    done = asyncio.Event()
    for t in (a, b):
        t.add_done_callback(lambda _t: done.set())
    await done.wait()


async def sleep_or_event(clock, event: asyncio.Event, seconds: float) -> None:
    """Until ``event`` is set or ``seconds`` passed on ``clock``, whichever comes first."""
    sleeper = asyncio.create_task(clock.sleep(seconds))
    waiter = asyncio.create_task(event.wait())
    try:
        await _first_done(sleeper, waiter)
    finally:
        sleeper.cancel()
        waiter.cancel()
        await asyncio.gather(sleeper, waiter, return_exceptions=True)


class Ocpp16Session(ChargePoint):
    """One websocket connection's OCPP 1.6 protocol handling."""

    def __init__(self, station_id: str, connection, client: "Ocpp16Client", response_timeout: float) -> None:
        super().__init__(station_id, connection, response_timeout=response_timeout, logger=log)
        self.client = client
        self.station: Station = client.station

    async def start(self) -> None:
        """Read frames until the connection closes (raises ConnectionClosed)."""
        while True:
            await self.route_message(await self._connection.recv())

    async def _send(self, message: str) -> None:
        self.client.mark_activity()
        self.client.record("out", message)
        await self._connection.send(message)

    async def route_message(self, raw_msg) -> None:
        """Parse a frame and answer malformed ones with the OCPP-J 1.6 CALLERROR
        (the library would only log them, leaving the central system waiting)."""
        self.client.record("in", raw_msg)
        try:
            msg = json.loads(raw_msg)
        except (ValueError, TypeError):
            await self._send(_call_error("-1", "FormationViolation", "Message is not valid JSON"))
            return
        if not isinstance(msg, list) or len(msg) < 3 or not isinstance(msg[1], str):
            uid = msg[1] if isinstance(msg, list) and len(msg) > 1 and isinstance(msg[1], str) else "-1"
            await self._send(_call_error(uid, "FormationViolation", "Not an OCPP-J message array"))
            return
        type_id, uid = msg[0], msg[1]
        if type_id == 2:
            if len(msg) != 4 or not isinstance(msg[2], str) or not isinstance(msg[3], dict):
                await self._send(_call_error(uid, "FormationViolation", "CALL must be [2, id, action, {payload}]"))
                return
            action, payload = msg[2], msg[3]
            if action not in self.route_map:
                try:
                    Action(action)
                    code, text = "NotSupported", "%s is recognized but not supported" % action
                except ValueError:
                    code, text = "NotImplemented", "%s is not known" % action
                await self._send(_call_error(uid, code, text))
                return
            try:
                _validate_request(action, payload)
            except ocpp.messages.SchemaValidationError as e:
                await self._send(_call_error(uid, classify_schema_error(e), e.message[:200]))
                return
            try:
                await self._handle_call(ocpp.messages.Call(uid, action, payload))
            except OCPPError as e:
                await self._send(_call_error(uid, e.code, str(e.description)))
            except Exception:
                log.exception("handling %s failed", action)
                await self._send(_call_error(uid, "InternalError", "An internal error occurred"))
        elif type_id in (3, 4):
            try:
                self._response_queue.put_nowait(ocpp.messages.unpack(raw_msg))
            except OCPPError as e:
                log.warning("ignoring malformed response %s: %s", raw_msg[:200], e)
        else:
            await self._send(_call_error(uid, "FormationViolation", "Unknown message type %r" % type_id))

    # ---------------------------------------------------------------- Core, CS -> CP
    @on(Action.change_availability)
    async def on_change_availability(self, connector_id: int, type: str):
        status = await self.station.change_availability(connector_id, type)
        return self._call_result.ChangeAvailability(status=status)

    @on(Action.change_configuration)
    async def on_change_configuration(self, key: str, value: str):
        return self._call_result.ChangeConfiguration(status=self.station.keys.change(key, value))

    @after(Action.change_configuration)
    async def after_change_configuration(self, key: str, value: str):
        self.station.keys.answered(key)  # e.g. CentralSystemUrl: answer first, then move

    @on(Action.get_configuration)
    async def on_get_configuration(self, key: list | None = None):
        known, unknown = self.station.keys.read(key)
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
            ok = await self.station.remote_start(id_tag, connector_id, _ocpp_json(charging_profile))
        except ProfileFormatError as e:
            raise _profile_error(e) from None
        return self._call_result.RemoteStartTransaction(status="Accepted" if ok else "Rejected")

    @on(Action.remote_stop_transaction)
    async def on_remote_stop_transaction(self, transaction_id: int):
        ok = await self.station.remote_stop(transaction_id)
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
        return self._call_result.UnlockConnector(status=await self.station.unlock_connector(connector_id))

    # ---------------------------------------------------------------- SmartCharging
    @on(Action.set_charging_profile)
    async def on_set_charging_profile(self, connector_id: int, cs_charging_profiles: dict):
        try:
            status = await self.station.set_charging_profile(connector_id, _ocpp_json(cs_charging_profiles))
        except ProfileFormatError as e:
            raise _profile_error(e) from None
        return self._call_result.SetChargingProfile(status=status)

    @on(Action.clear_charging_profile)
    async def on_clear_charging_profile(self, id: int | None = None, connector_id: int | None = None,
                                        charging_profile_purpose: str | None = None, stack_level: int | None = None):
        try:
            status = await self.station.clear_charging_profile(id, connector_id, charging_profile_purpose, stack_level)
        except ProfileFormatError as e:
            raise _profile_error(e) from None
        return self._call_result.ClearChargingProfile(status=status)

    @on(Action.get_composite_schedule)
    async def on_get_composite_schedule(self, connector_id: int, duration: int,
                                        charging_rate_unit: str | None = None):
        try:
            schedule = self.station.composite_schedule(connector_id, duration, charging_rate_unit)
        except ProfileFormatError as e:
            raise _profile_error(e) from None
        if schedule is None:
            return self._call_result.GetCompositeSchedule(status="Rejected")
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
        entries = [(e["id_tag"], _id_tag_info(e["id_tag_info"]) if e.get("id_tag_info") is not None else None)
                   for e in local_authorization_list or []]
        return self._call_result.SendLocalList(
            status=self.station.send_local_list(update_type, list_version, entries))

    # ---------------------------------------------------------------- RemoteTrigger
    @on(Action.trigger_message)
    async def on_trigger_message(self, requested_message: str, connector_id: int | None = None):
        ok = requested_message in TRIGGERABLE and (
            connector_id is None or 0 <= connector_id <= len(self.station.connectors))
        if requested_message == "MeterValues" and connector_id == 0:
            ok = False  # no charger-level meter
        return self._call_result.TriggerMessage(status="Accepted" if ok else "Rejected")

    @after(Action.trigger_message)
    async def after_trigger_message(self, requested_message: str, connector_id: int | None = None):
        if requested_message not in TRIGGERABLE or (
                connector_id is not None and not 0 <= connector_id <= len(self.station.connectors)):
            return
        await self.client.send_triggered(requested_message, connector_id)


class Ocpp16Client(CentralSystemLink):
    """The station's link to an OCPP 1.6J central system over one connection at a time."""

    def __init__(self, station: Station, station_id: str, clock, response_timeout_s: float = 30.0,
                 vendor: str = "", model_name: str = "", serial_number: str = "",
                 firmware_version: str = "", traffic_log=None) -> None:
        self.station = station
        self.station_id = station_id
        self.clock = clock
        self.response_timeout_s = response_timeout_s
        self.vendor = vendor or station.board.vendor
        self.model_name = model_name or station.board.model
        self.serial_number = serial_number
        self.firmware_version = firmware_version
        self.traffic_log = traffic_log  # callable(direction, text) for the status page and the demo
        self.session: Ocpp16Session | None = None
        self.registration = None  # None until the first BootNotification answer
        self.boot_accepted = False
        self.last_boot_time: float | None = None
        self.on_boot = None  # callable(status) after each BootNotification answer (agent/switch.py)
        self.messages_sent = 0
        self.messages_received = 0
        self._status_queue: list = []  # (seq, payload) of non-transaction messages
        self._last_activity = 0.0
        self._wake = station.outbox.changed
        self._heartbeat_task = None
        station.link = self
        station.keys.on_change(self._on_key_changed)

    # ------------------------------------------------------------------ CentralSystemLink
    @property
    def online(self) -> bool:
        return self.session is not None and self.boot_accepted

    async def authorize(self, id_tag: str) -> model.IdTagInfo | None:
        if not self.online:
            return None
        try:
            result = await self._call(call.Authorize(id_tag=id_tag))
        except (OCPPError, asyncio.TimeoutError, ConnectionError, ocpp.exceptions.ValidationError) as e:
            log.warning("Authorize(%s) failed: %s", id_tag, e)
            return None
        return _id_tag_info(result.id_tag_info)

    async def data_transfer(self, vendor_id: str, message_id: str | None = None,
                            data: str | None = None) -> tuple:
        """Send a DataTransfer to the central system: (status, data); raises
        ConnectionError when offline, OCPPError / TimeoutError on failure."""
        if not self.online:
            raise ConnectionError("not connected to the central system")
        result = await self._call(call.DataTransfer(vendor_id=vendor_id, message_id=message_id, data=data))
        return result.status, result.data

    def status_changed(self, connector_id: int) -> None:
        if not self.online:
            return  # sent fresh from the model on the next (re)connection
        self._notify(self._status_payload(connector_id))

    def meter_values(self, connector_id: int, sample) -> None:
        if self.online and sample.samples:
            self._notify(call.MeterValues(connector_id=connector_id, meter_value=[meter_value(sample)]))

    def _notify(self, payload) -> None:
        """Queue a non-transaction message; sent in order with the outbox, not kept across reconnects."""
        self._status_queue.append((self.station.outbox.next_seq(), payload))
        self._wake.set()

    def local_list_conflict(self, id_tag: str) -> None:
        if self.online:
            status = self.station.status_of(0)[0]
            self._notify(call.StatusNotification(
                connector_id=0, error_code="LocalListConflict", status=status,
                info=("idTag %s" % id_tag)[:50], timestamp=iso_time(self.clock.time())))

    def _status_payload(self, connector_id: int):
        status, error, info, vendor_error = self.station.status_of(connector_id)
        return call.StatusNotification(
            connector_id=connector_id, error_code=error, status=status, info=info or None,
            vendor_error_code=vendor_error or None, timestamp=iso_time(self.clock.time()))

    # ------------------------------------------------------------------ plumbing
    def mark_activity(self) -> None:
        self._last_activity = self.clock.monotonic()

    def record(self, direction: str, text: str) -> None:
        if direction == "out":
            self.messages_sent += 1
        else:
            self.messages_received += 1
        if self.traffic_log is not None:
            self.traffic_log(direction, text)

    async def _call(self, payload):
        session = self.session
        if session is None:
            raise ConnectionError("not connected")
        return await session.call(payload, suppress=False)

    async def _send_quietly(self, payload) -> None:
        try:
            await self._call(payload)
        except Exception as e:  # a lost notification is replaced by the next one
            log.warning("%s not delivered: %s", type(payload).__name__, e)

    # ------------------------------------------------------------------ session
    async def run_session(self, session: Ocpp16Session) -> None:
        """Run the protocol over one open connection until it closes."""
        self.session = session
        reader = asyncio.create_task(session.start())
        workers: list = []
        try:
            boot = asyncio.create_task(self._boot())
            workers.append(boot)
            await self._first_of(reader, boot)
            if reader.done():
                return
            self._status_queue = [(self.station.outbox.next_seq(), self._status_payload(cid))
                                  for cid in range(0, len(self.station.connectors) + 1)]
            self._wake.set()
            workers.append(asyncio.create_task(self._sender(session)))
            self._heartbeat_task = asyncio.create_task(self._heartbeat(session))
            await reader
        except Exception as e:  # the connection ended: the caller reconnects
            log.info("session ended: %s", e)
        finally:
            # Loops also check ``self.session`` and wake on ``_wake``: a cancellation
            # can be swallowed inside asyncio.wait_for on Python 3.11 (bpo-42130).
            self.session = None
            if self._heartbeat_task is not None:
                workers.append(self._heartbeat_task)
                self._heartbeat_task = None
            self._wake.set()
            for t in workers + [reader]:
                t.cancel()
            await asyncio.gather(*workers, reader, return_exceptions=True)

    async def _first_of(self, a, b) -> None:
        await _first_done(a, b)
        if b.done() and not b.cancelled() and b.exception() is not None:
            raise b.exception()

    async def _boot(self) -> None:
        """BootNotification until Accepted (once per process life; a reconnect skips it)."""
        if self.boot_accepted:
            return
        while True:
            try:
                result = await self._call(self._boot_payload())
            except (OCPPError, asyncio.TimeoutError, ocpp.exceptions.ValidationError) as e:
                log.warning("BootNotification failed: %s; retrying", e)
                await self.clock.sleep(30)
                continue
            self.registration = result.status
            interval = result.interval if result.interval and result.interval > 0 else 30
            log.info("BootNotification: %s (interval %d s)", result.status, result.interval)
            if result.status == "Accepted":
                self.boot_accepted = True
                self.last_boot_time = self.clock.time()
                if result.interval > 0:
                    self.station.keys.set("HeartbeatInterval", result.interval)
                if self.on_boot is not None:
                    self.on_boot(result.status)
                return
            if self.on_boot is not None:
                self.on_boot(result.status)
            await self.clock.sleep(interval)

    def new_backend(self) -> None:
        """The next session is with another central system or new credentials: boot again."""
        self.boot_accepted = False
        self.registration = None

    def _boot_payload(self):
        return call.BootNotification(
            charge_point_vendor=self.vendor[:20], charge_point_model=self.model_name[:20],
            charge_point_serial_number=self.serial_number[:25] or None,
            firmware_version=self.firmware_version[:50] or None)

    async def _sender(self, session) -> None:
        """Send status notifications and the transaction outbox in the order they arose."""
        outbox = self.station.outbox
        while self.session is session:
            self._wake.clear()
            entry = outbox.head()
            if entry is not None and entry.not_before > self.clock.monotonic():
                entry_ready = False
            else:
                entry_ready = entry is not None
            if self._status_queue and (not entry_ready or self._status_queue[0][0] < entry.seq):
                _seq, payload = self._status_queue.pop(0)
                await self._send_quietly(payload)
                continue
            if entry_ready:
                await self._send_entry(entry)
                continue
            if entry is not None:
                await self._sleep_or_wake(entry.not_before - self.clock.monotonic())
            else:
                await self._wake.wait()

    async def _sleep_or_wake(self, seconds: float) -> None:
        await sleep_or_event(self.clock, self._wake, seconds)

    async def _send_entry(self, entry) -> None:
        outbox = self.station.outbox
        tx = entry.tx
        try:
            if entry.kind == START:
                result = await self._call(call.StartTransaction(
                    connector_id=entry.connector_id, id_tag=tx.id_tag, meter_start=tx.meter_start_wh,
                    timestamp=iso_time(tx.start_time), reservation_id=tx.reservation_id))
                # The id first: removing the entry journals the transaction with it.
                self.station.transaction_confirmed(tx, result.transaction_id, _id_tag_info(result.id_tag_info))
                outbox.remove(entry)
            elif entry.kind == STOP:
                result = await self._call(call.StopTransaction(
                    meter_stop=tx.meter_stop_wh, timestamp=iso_time(tx.stop_time),
                    transaction_id=tx.transaction_id, reason=tx.stop_reason, id_tag=tx.stop_id_tag,
                    transaction_data=[meter_value(s) for s in tx.stop_data] or None))
                outbox.remove(entry)
                if result.id_tag_info:
                    self.station.id_tag_info_received(tx.stop_id_tag, _id_tag_info(result.id_tag_info))
            elif entry.kind == METER:
                await self._call(call.MeterValues(
                    connector_id=entry.connector_id, transaction_id=tx.transaction_id,
                    meter_value=[meter_value(s) for s in entry.samples]))
                outbox.remove(entry)
        except ConnectionError:
            raise
        except (OCPPError, asyncio.TimeoutError, ocpp.exceptions.ValidationError) as e:
            entry.attempts += 1
            limit = self.station.keys.get("TransactionMessageAttempts")
            if entry.kind == METER and limit and entry.attempts >= limit:
                log.error("dropping %r after %d attempts: %s", entry, entry.attempts, e)
                outbox.remove(entry)
                return
            delay = min(self.station.keys.get("TransactionMessageRetryInterval") * entry.attempts, MAX_RETRY_DELAY_S)
            log.warning("%r failed (%s); retry in %d s", entry, e, delay)
            entry.not_before = self.clock.monotonic() + delay

    async def _heartbeat(self, session) -> None:
        while self.session is session:
            interval = self.station.keys.get("HeartbeatInterval")
            if interval <= 0:
                await asyncio.Event().wait()  # disabled until the key changes (task is restarted)
            due = self._last_activity + interval
            now = self.clock.monotonic()
            if now < due:
                await self.clock.sleep(due - now)
                continue
            await self._send_quietly(call.Heartbeat())
            self.mark_activity()

    def _on_key_changed(self, name: str, value) -> None:
        if name == "HeartbeatInterval" and self._heartbeat_task is not None and self.session is not None:
            self._heartbeat_task.cancel()
            self._heartbeat_task = asyncio.create_task(self._heartbeat(self.session))

    async def send_triggered(self, message: str, connector_id: int | None) -> None:
        """Send the message a TriggerMessage asked for."""
        if message == "BootNotification":
            await self._send_quietly(self._boot_payload())
        elif message == "Heartbeat":
            await self._send_quietly(call.Heartbeat())
        elif message == "StatusNotification":
            ids = [connector_id] if connector_id is not None else range(0, len(self.station.connectors) + 1)
            for cid in ids:
                await self._send_quietly(self._status_payload(cid))
        elif message == "MeterValues":
            ids = [connector_id] if connector_id else range(1, len(self.station.connectors) + 1)
            for cid in ids:
                tx, sample = await self.station.meter_sample_now(cid)
                await self._send_quietly(call.MeterValues(
                    connector_id=cid, transaction_id=tx.transaction_id if tx else None,
                    meter_value=[meter_value(sample)]))
        elif message == "DiagnosticsStatusNotification":
            await self._send_quietly(call.DiagnosticsStatusNotification(status="Idle"))
        elif message == "FirmwareStatusNotification":
            await self._send_quietly(call.FirmwareStatusNotification(status="Idle"))
