"""The station's link to an OCPP 2.0.1 CSMS (``Ocpp201Client`` is the station's
``CentralSystemLink``): BootNotification, Heartbeat, StatusNotification per
connector, NotifyEvent for faults, Authorize, MeterValues outside transactions
and the transaction outbox as TransactionEvents (agent/ocpp201/outbox_sender.py),
over whatever connection the link layer provides. It owns the 2.0.1 device model
(``DeviceModel.for_station``) and wires its live variables to the station.

Built when a connection first selects ``ocpp2.0.1`` (agent/link/links.py).

CPython-only (drives the ``ocpp`` library's v201 ChargePoint).
"""

import asyncio
import dataclasses
import itertools
import logging

from agent.core import model
from agent.core.isotime import format_datetime
from agent.core.station import Station
from agent.ocppj.link import OcppjLink
from hal.runtime.aio import sleep_or_event
from agent.ocpp201 import events, logs, security_words
from agent.ocpp201 import firmware_handlers as firmware
from agent.ocpp201 import vocabulary as words
from agent.ocpp201.device_model import DeviceModel
from agent.ocpp201.outbox_sender import OutboxSender
from agent.ocpp201.reservation_handlers import reservation_status_update
from hal.interfaces import NO_ERROR

log = logging.getLogger(__name__)

BOOT_RETRY_S = 30  # after a BootNotification without an answer, or an answer without an interval


def retry_backoff_delays(wait_minimum_s: float, random_range_s: float, repeat_times: int, rng):
    """Reconnection back-off (OCPP-J 2.0.1, 5.3): ``wait_minimum_s`` first, doubled after each
    failed attempt at most ``repeat_times`` times, then kept; each plus a random part of at
    most ``random_range_s``."""
    base_s = wait_minimum_s
    for attempt in itertools.count():
        yield base_s + rng.uniform(0, random_range_s)
        if attempt < repeat_times:
            base_s *= 2


async def call_on(session, action: str, payload: dict) -> dict:
    """One CALL on ``session`` (ConnectionError without one); the response as a dict (the
    library's snake_case keys)."""
    if session is None:
        raise ConnectionError("not connected")
    result = await session.call(events.call(action, payload), suppress=False)
    return dataclasses.asdict(result)


class Ocpp201Client(OcppjLink):
    """The station's link to an OCPP 2.0.1 CSMS over one connection at a time."""

    wants_state_events = True  # charging state changes are TransactionEvents (Updated, ChargingStateChanged…)
    configurable_tx_points = True  # TxCtrlr.TxStartPoint / TxStopPoint (the settings tx_start/stop_points)

    def __init__(self, station: Station, station_id: str, clock, response_timeout_s: float = 30.0,
                 vendor: str = "", model_name: str = "", serial_number: str = "", firmware_version: str = "",
                 traffic_log=None, data_dir: str | None = None, initial: dict | None = None,
                 device_model: DeviceModel | None = None) -> None:
        super().__init__(station, station_id, clock, response_timeout_s, vendor, model_name, serial_number,
                         firmware_version, traffic_log)
        hw = station.connectors[0].hw if station.connectors else None
        self.device_model = device_model if device_model is not None else DeviceModel.for_station(
            len(station.connectors), station.settings, data_dir=data_dir, initial=initial, clock=clock,
            supply_phases=getattr(hw, "phases", 3), voltage_v=getattr(hw, "voltage_v", 230.0),
            message_timeout_s=int(response_timeout_s))
        self._attach_live_values()
        self.outbox_sender = OutboxSender(station, self._call, clock, self._wake)
        self.security_words = security_words
        self._sent_status: dict = {}  # evse id -> the connectorStatus last queued
        self._faults: dict = {}  # evse id (0: the station) -> the fault word last reported
        self._event_id = 0
        self._boot_triggered = asyncio.Event()  # a TriggerMessage BootNotification while not Accepted
        self._offline_since: float | None = None  # monotonic time the last session ended (B04)
        self.endpoint = None  # the endpoint manager, once attached (attach_endpoint)
        self._reservation_updates: list = []  # ReservationStatusUpdates that arose offline (H04)

    def _attach_live_values(self) -> None:
        st = self.station

        def connector_state(component) -> str:
            c = st.connector(component.evse)
            return words.connector_status(c.status, c.ev_connected)

        self.device_model.attach("ChargingStation", "AvailabilityState",
                                 read=lambda _c: words.connector_status(st.charger_status))
        self.device_model.attach("EVSE", "AvailabilityState", read=connector_state)
        self.device_model.attach("Connector", "AvailabilityState", read=connector_state)
        self.device_model.attach("SmartChargingCtrlr", "Entries", instance="ChargingProfiles",
                                 read=lambda _c: len(st.charging_profiles))

    # ------------------------------------------------------------------ endpoint (A01, A05, B09, B10)
    def attach_endpoint(self, endpoint) -> None:
        """Wire the variables that change how the station reaches its CSMS to the endpoint
        manager (agent/link/switch.py): the security profile in use, BasicAuthPassword (a
        new password is used from a new connection, A01) and NetworkConfigurationPriority
        (slots set by SetNetworkProfile; applied at the next start, B10)."""
        self.endpoint = endpoint
        dm = self.device_model

        def set_password(_c, value: str) -> str:
            return endpoint.request_password(value)

        def set_priority(_c, value: str) -> str:
            problem = endpoint.set_network_priority([int(v) for v in value.split(",")])
            return "Rejected" if problem else "RebootRequired"

        dm.attach("SecurityCtrlr", "SecurityProfile", read=lambda _c: max(1, endpoint.security_profile_level))
        dm.attach("SecurityCtrlr", "BasicAuthPassword", write=set_password)
        dm.attach("OCPPCommCtrlr", "NetworkConfigurationPriority",
                  read=lambda _c: ",".join(str(n) for n in endpoint.network_priority()), write=set_priority)

    def set_network_profile(self, slot: int, connection_data: dict) -> str:
        """SetNetworkProfile: Accepted when the slot now holds the profile, else Rejected."""
        if self.endpoint is None:
            return "Rejected"
        problem = self.endpoint.set_network_profile(slot, words.network_profile(connection_data))
        return "Rejected" if problem else "Accepted"

    def settings_answered(self) -> None:
        """The answer to a request that may move the connection went out."""
        if self.endpoint is not None:
            self.endpoint.answered()

    def connection_attempts_limit(self) -> int:
        """Failed connection attempts before a new network profile is given up (B10.FR.03)."""
        return self.device_model.get("OCPPCommCtrlr.NetworkProfileConnectionAttempts")

    # ------------------------------------------------------------------ CentralSystemLink
    async def authorize(self, id_tag: str, token_kind: str | None = None) -> model.IdTagInfo | None:
        if not self.online:
            return None
        try:
            result = await self._call("Authorize", events.authorize_request(events.id_token(id_tag, token_kind)))
        except ConnectionError as e:
            log.warning("Authorize(%s) failed: %s", id_tag, e)
            return None
        except Exception as e:  # CALLERROR, timeout, an answer that is not valid
            log.warning("Authorize(%s) failed: %s", id_tag, e)
            return None
        return events.id_tag_info(result.get("id_token_info"))

    async def data_transfer(self, vendor_id: str, message_id: str | None = None, data=None) -> tuple:
        """Send a DataTransfer to the CSMS (P02): (status, data); raises ConnectionError when
        offline, OCPPError / TimeoutError on failure (as the 1.6 client's)."""
        if not self.online:
            raise ConnectionError("not connected to the CSMS")
        payload = {"vendorId": vendor_id}
        if message_id is not None:
            payload["messageId"] = message_id
        if data is not None:
            payload["data"] = data  # 2.0.1: any JSON value
        if self.session is None:
            raise ConnectionError("not connected to the CSMS")
        result = await self.session.call_raw("DataTransfer", payload)  # data's keys as they are
        return result["status"], result.get("data")

    def status_changed(self, connector_id: int) -> None:
        if not self.online:
            return  # the whole picture goes out on the next (re)connection
        if connector_id:
            payload = self._status_payload(connector_id)
            if self._sent_status.get(connector_id) != payload["connectorStatus"]:
                self._sent_status[connector_id] = payload["connectorStatus"]
                self.outbox_sender.queue_other("StatusNotification", payload)
        self._report_fault(connector_id)

    def meter_values(self, connector_id: int, sample) -> None:
        if self.online and sample.samples:
            self.outbox_sender.queue_other("MeterValues", events.meter_values(connector_id, [sample]))

    def reservation_ended(self, reservation_id: int, why: str) -> None:
        """A reservation expired or was removed (H01.FR.17, H04.FR.02): ReservationStatusUpdate,
        kept until the next session when offline."""
        message = ("ReservationStatusUpdate", reservation_status_update(reservation_id, why))
        if self.online:
            self.outbox_sender.queue_other(*message)
        else:
            self._reservation_updates.append(message)

    def local_list_conflict(self, id_tag: str) -> None:
        if self.online:
            self.outbox_sender.queue_other("NotifyEvent", events.notify_event(
                "local_list_conflict", False, None, self._next_event_id(), self.clock.time(),
                tech_info="idToken %s" % id_tag))

    # ------------------------------------------------------------------ payloads
    def _status_payload(self, evse_id: int) -> dict:
        c = self.station.connector(evse_id)
        return events.status_notification(evse_id, self.station.status_of(evse_id)[0], self.clock.time(),
                                          ev_connected=c.ev_connected)

    def _next_event_id(self) -> int:
        self._event_id += 1
        return self._event_id

    def _report_fault(self, evse_id: int) -> None:
        """NotifyEvent when the fault of a connector (0: the station) appears, changes or clears."""
        _status, fault, info, vendor = self.station.status_of(evse_id)
        fault = fault if fault in words.FAULTS else NO_ERROR
        before = self._faults.get(evse_id, NO_ERROR)
        if fault == before:
            return
        self._faults[evse_id] = fault
        now = self.clock.time()
        if before != NO_ERROR:
            self.outbox_sender.queue_other("NotifyEvent", events.notify_event(
                before, True, evse_id or None, self._next_event_id(), now))
        if fault != NO_ERROR:
            self.outbox_sender.queue_other("NotifyEvent", events.notify_event(
                fault, False, evse_id or None, self._next_event_id(), now, tech_info=vendor or info or None))

    def _boot_payload(self, reason: str = "PowerUp") -> dict:
        station = {"model": self.model_name[:20], "vendorName": self.vendor[:50]}
        if self.serial_number:
            station["serialNumber"] = self.serial_number[:25]
        if self.firmware_version:
            station["firmwareVersion"] = self.firmware_version[:50]
        return {"reason": reason, "chargingStation": station}

    # ------------------------------------------------------------------ plumbing
    async def _call(self, action: str, payload: dict) -> dict:
        """One CALL; the response as a dict (the library's snake_case keys)."""
        return await call_on(self.session, action, payload)

    async def security_event(self, kind: str, at: float, tech_info: str = "") -> None:
        """SecurityEventNotification (A04, appendix security events); raises when not delivered."""
        payload = {"type": kind, "timestamp": format_datetime(at)}
        if tech_info:
            payload["techInfo"] = tech_info[:255]
        await self._call("SecurityEventNotification", payload)

    async def report_update(self) -> None:
        """After a restart into a new version, or back from one: Installed or the failure, once."""
        report = self.updates.pending_report() if self.updates is not None else None
        if report is None:
            return
        word, request_id, kind = report
        if kind == firmware.KIND:
            await self._call("FirmwareStatusNotification", firmware.status_payload(word, request_id))
        self.updates.reported()

    async def sign_certificate(self, csr_pem: str) -> str:
        """SignCertificateRequest for the station's certificate (A02/A03): "accepted" or
        "rejected"; raises when not delivered."""
        result = await self._call("SignCertificate", {"csr": csr_pem, "certificateType": "ChargingStationCertificate"})
        return "accepted" if result["status"] == "Accepted" else "rejected"

    def attach_security(self, security, certificates=None) -> None:
        super().attach_security(security, certificates)
        if certificates is not None:  # roots and the station's own certificate
            self.device_model.attach("SecurityCtrlr", "CertificateEntries", read=lambda _c: certificates.count())

    async def send_quietly(self, action: str, payload: dict) -> None:
        try:
            await self._call(action, payload)
        except Exception as e:
            log.warning("%s not delivered: %s", action, e)

    # ------------------------------------------------------------------ session
    def _first_messages(self) -> list:
        """Every connector's status (B01.FR.05), also after a reconnection that ends more than
        OfflineThreshold offline (B04.FR.01); after a shorter outage only the statuses that
        changed meanwhile (B04.FR.02: the CSMS still knows the others)."""
        since = self._offline_since
        brief = (since is not None and self.clock.monotonic() - since
                 <= self.device_model.get("OCPPCommCtrlr.OfflineThreshold"))
        first = []
        for n in range(1, len(self.station.connectors) + 1):
            payload = self._status_payload(n)
            if brief and self._sent_status.get(n) == payload["connectorStatus"]:
                continue
            self._sent_status[n] = payload["connectorStatus"]
            first.append(("StatusNotification", payload))
        self._faults = {}
        first += self._reservation_updates  # after the statuses they follow
        self._reservation_updates = []
        return first

    async def run_session(self, session) -> None:
        try:
            await super().run_session(session)
        finally:
            if self.boot_accepted:  # offline from here (OfflineThreshold counts from the loss)
                self._offline_since = self.clock.monotonic()

    def reconnect_delays(self, rng):
        """The back-off before each reconnection attempt (OCPP-J 2.0.1, 5.3): the
        OCPPCommCtrlr.RetryBackOff* variables as they are when the series starts."""
        get = self.device_model.get
        return retry_backoff_delays(get("OCPPCommCtrlr.RetryBackOffWaitMinimum"),
                                    get("OCPPCommCtrlr.RetryBackOffRandomRange"),
                                    get("OCPPCommCtrlr.RetryBackOffRepeatTimes"), rng)

    def _session_started(self) -> None:
        for n in range(0, len(self.station.connectors) + 1):  # faults present now, after the statuses
            self._report_fault(n)

    async def _boot(self) -> None:
        """BootNotification until Accepted (B01-B03; once per process life, a reconnect skips it).
        The first one gives why the last run ended (PowerUp, RemoteReset, ScheduledReset); a
        TriggerMessage while Pending or Rejected sends the next one at once, reason Triggered
        (B02.FR.08, F06.FR.17)."""
        if self.boot_accepted:
            return
        reason = words.BOOT_REASON.get(self.station.boot_cause, "PowerUp")
        while True:
            self._boot_triggered.clear()
            try:
                result = await self._call("BootNotification", self._boot_payload(reason))
            except ConnectionError:
                raise
            except Exception as e:
                log.warning("BootNotification failed: %s; retrying", e)
                reason = await self._boot_wait(BOOT_RETRY_S, reason)
                continue
            status, interval = result["status"], result.get("interval") or 0
            self.registration = status
            log.info("BootNotification: %s (interval %d s)", status, interval)
            if status == "Accepted":
                self.boot_accepted = True
                self.last_boot_time = self.clock.time()
                if interval > 0:
                    self.station.settings.set("heartbeat_interval_s", interval)
                if self.on_boot is not None:
                    self.on_boot(status)
                return
            if self.on_boot is not None:
                self.on_boot(status)
            reason = await self._boot_wait(interval if interval > 0 else BOOT_RETRY_S, reason)

    async def _boot_wait(self, seconds: float, reason: str) -> str:
        """Wait before the next BootNotification; its reason: Triggered if a TriggerMessage cut
        the wait short, else the same as before."""
        await sleep_or_event(self.clock, self._boot_triggered, seconds)
        return "Triggered" if self._boot_triggered.is_set() else reason

    def new_backend(self) -> None:
        """The next session is with another CSMS or new credentials: boot again."""
        self.boot_accepted = False
        self.registration = None

    async def _heartbeat_call(self) -> None:
        await self.send_quietly("Heartbeat", {})

    # ------------------------------------------------------------------ TriggerMessage (F06)
    async def send_triggered(self, message: str, evse_id: int | None) -> None:
        """Send what an Accepted TriggerMessage asked for (the session checks first)."""
        evses = [evse_id] if evse_id else list(range(1, len(self.station.connectors) + 1))
        if message == "BootNotification":
            self._boot_triggered.set()  # the boot loop sends it and acts on the answer
        elif message == "Heartbeat":
            await self.send_quietly("Heartbeat", {})
        elif message == "SignChargingStationCertificate":
            self.request_certificate()  # A02: a new key pair, SignCertificate, then CertificateSigned
        elif message == "LogStatusNotification":  # the upload under way, or Idle (F06.FR.14)
            await self.send_quietly(message, logs.triggered_status(self))
        elif message == "FirmwareStatusNotification":  # the update under way, or Idle (F06.FR.14)
            word, request_id = (self.updates.status, self.updates.request_id) if self.updates else ("idle", None)
            await self.send_quietly(message, firmware.status_payload(word, request_id)
                                    or firmware.status_payload("idle", None))
        elif message == "StatusNotification":
            for n in evses:
                await self.send_quietly("StatusNotification", self._status_payload(n))
        elif message == "MeterValues":
            for n in evses:
                _tx, sample = await self.station.meter_sample_now(n)
                if sample.samples:
                    await self.send_quietly("MeterValues", events.meter_values(n, [sample]))
        elif message == "TransactionEvent":
            for n in evses:
                c = self.station.connector(n)
                tx = c.transaction
                if tx is None or tx.stopped or tx.start_deferred:  # not started for the CSMS yet
                    continue
                _tx, sample = await self.station.meter_sample_now(n)
                seq_no = tx.event_count
                tx.event_count += 1  # the next queued event numbers on from here
                self.station.outbox.save_transaction(tx)
                self.outbox_sender.queue_other("TransactionEvent", events.transaction_event(
                    words.UPDATE, tx, n, seq_no, self.clock.time(), "trigger", charging_state=c.status,
                    samples=[sample], ev_connected=c.ev_connected))

    def triggerable(self, message: str, evse_id: int | None) -> bool:
        """Whether a TriggerMessage for ``message`` is Accepted (F06): the answer and the
        sending follow this one check."""
        if evse_id is not None and not 1 <= evse_id <= len(self.station.connectors):
            return False
        if message == "BootNotification":
            return not self.boot_accepted  # F06.FR.17
        if message == "TransactionEvent":
            evses = [evse_id] if evse_id else range(1, len(self.station.connectors) + 1)
            return any(self.station.connector(n).transaction is not None
                       and not self.station.connector(n).transaction.stopped for n in evses)
        if message == "SignChargingStationCertificate":
            return self.certificates is not None and evse_id is None
        return message in ("Heartbeat", "StatusNotification", "MeterValues", "LogStatusNotification",
                           "FirmwareStatusNotification")
