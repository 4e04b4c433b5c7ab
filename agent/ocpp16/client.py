"""The station's link to an OCPP 1.6 central system: boot, heartbeats, status
notifications and the transaction outbox, over whatever connection the link
layer provides (``Ocpp16Client`` is the station's ``CentralSystemLink``). The
transaction outbox is sent by an ``OutboxSender`` (agent/ocpp16/outbox_sender.py),
the same code that delivers an earlier central system's queued messages.

CPython-only (the ``ocpp`` library's messages).
"""

import asyncio
import logging

import ocpp.exceptions
from ocpp.exceptions import OCPPError
from ocpp.v16 import call

from agent.core import model
from agent.core.station import Station
from agent.ocppj.link import OcppjLink
from agent.ocpp16.config_keys import FEATURE_PROFILES, ConfigurationStore, core_keys
from agent.ocpp16.vocabulary import to_16
from agent.ocpp16.codec import id_tag_info, iso_time, meter_value
from agent.ocpp16.outbox_sender import OutboxSender, call_quietly
from agent.ocpp16 import logs, security_words

log = logging.getLogger(__name__)


async def call_on(session, payload):
    """One CALL (an ``ocpp.v16.call`` dataclass) on ``session``; ConnectionError without one."""
    if session is None:
        raise ConnectionError("not connected")
    return await session.call(payload, suppress=False)


class Ocpp16Client(OcppjLink):
    """The station's link to an OCPP 1.6J central system over one connection at a time."""

    def __init__(self, station: Station, station_id: str, clock, response_timeout_s: float = 30.0,
                 vendor: str = "", model_name: str = "", serial_number: str = "",
                 firmware_version: str = "", traffic_log=None, keys: ConfigurationStore | None = None) -> None:
        super().__init__(station, station_id, clock, response_timeout_s, vendor, model_name, serial_number,
                         firmware_version, traffic_log)
        # The 1.6 configuration keys (GetConfiguration, ChangeConfiguration) over the station's settings.
        self.keys = keys if keys is not None else ConfigurationStore(
            core_keys(len(station.connectors), FEATURE_PROFILES), None, settings=station.settings)
        # The current central system's transaction messages, with status notifications in order.
        self.outbox_sender = OutboxSender(station, self._call, clock, self._wake)
        self.security_words = security_words

    # ------------------------------------------------------------------ CentralSystemLink
    async def authorize(self, id_tag: str, token_kind: str | None = None) -> model.IdTagInfo | None:
        # 1.6's Authorize carries the idTag alone: the token's kind is not sent
        if not self.online:
            return None
        try:
            result = await self._call(call.Authorize(id_tag=id_tag))
        except (OCPPError, asyncio.TimeoutError, ConnectionError, ocpp.exceptions.ValidationError) as e:
            log.warning("Authorize(%s) failed: %s", id_tag, e)
            return None
        return id_tag_info(result.id_tag_info)

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
        self.outbox_sender.queue_other(payload)

    def local_list_conflict(self, id_tag: str) -> None:
        if self.online:
            status = self.station.status_of(0)[0]
            self._notify(call.StatusNotification(
                connector_id=0, error_code="LocalListConflict", status=to_16(status),
                info=("idTag %s" % id_tag)[:50], timestamp=iso_time(self.clock.time())))

    def _status_payload(self, connector_id: int):
        status, error, info, vendor_error = self.station.status_of(connector_id)
        return call.StatusNotification(
            connector_id=connector_id, error_code=to_16(error), status=to_16(status), info=info or None,
            vendor_error_code=vendor_error or None, timestamp=iso_time(self.clock.time()))

    # ------------------------------------------------------------------ plumbing
    async def _call(self, payload):
        return await call_on(self.session, payload)

    async def security_event(self, kind: str, at: float, tech_info: str = "") -> None:
        """SecurityEventNotification (security whitepaper §8); raises when not delivered."""
        await self._call(call.SecurityEventNotification(type=kind, timestamp=iso_time(at),
                                                        tech_info=tech_info[:255] or None))

    def firmware_status(self, signed: bool):
        """(Signed)FirmwareStatusNotification of the update under way (Idle without one)."""
        from agent.ocpp16.firmware_handlers import PLAIN, SIGNED, status_message

        word, request_id = (self.updates.status, self.updates.request_id) if self.updates else ("idle", None)
        return status_message(SIGNED if signed else PLAIN, word, request_id) or status_message(
            SIGNED if signed else PLAIN, "idle", None)

    async def report_update(self) -> None:
        """After a restart into a new version, or back from one: Installed or the failure, once."""
        from agent.ocpp16.firmware_handlers import PLAIN, SIGNED, status_message

        report = self.updates.pending_report() if self.updates is not None else None
        if report is None:
            return
        word, request_id, kind = report
        if kind in (PLAIN, SIGNED):
            await self._call(status_message(kind, word, request_id))
        self.updates.reported()

    async def sign_certificate(self, csr_pem: str) -> str:
        """SignCertificate (whitepaper A02); "accepted" or "rejected", raises when not delivered."""
        result = await self._call(call.SignCertificate(csr=csr_pem))
        return "accepted" if result.status == "Accepted" else "rejected"

    async def send_quietly(self, payload) -> None:
        await call_quietly(self._call, payload)

    # ------------------------------------------------------------------ session
    def _first_messages(self) -> list:
        return [(self._status_payload(cid),) for cid in range(0, len(self.station.connectors) + 1)]

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
                    self.station.settings.set("heartbeat_interval_s", result.interval)
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

    async def _heartbeat_call(self) -> None:
        await self.send_quietly(call.Heartbeat())

    async def send_triggered(self, message: str, connector_id: int | None) -> None:
        """Send the message an Accepted TriggerMessage asked for (the session answers
        Rejected, and sends nothing, for what is not sent here: MeterValues of connector 0)."""
        if message == "BootNotification":
            await self.send_quietly(self._boot_payload())
        elif message == "Heartbeat":
            await self.send_quietly(call.Heartbeat())
        elif message == "StatusNotification":
            ids = [connector_id] if connector_id is not None else range(0, len(self.station.connectors) + 1)
            for cid in ids:
                await self.send_quietly(self._status_payload(cid))
        elif message == "MeterValues":
            ids = [connector_id] if connector_id is not None else range(1, len(self.station.connectors) + 1)
            for cid in ids:
                tx, sample = await self.station.meter_sample_now(cid)
                await self.send_quietly(call.MeterValues(
                    connector_id=cid, transaction_id=tx.backend_id if tx else None,
                    meter_value=[meter_value(sample)]))
        elif message == "DiagnosticsStatusNotification":  # the GetDiagnostics upload under way, or Idle
            from agent.ocpp16.diagnostics_handlers import triggered_status

            await self.send_quietly(triggered_status(self))
        elif message == "LogStatusNotification":  # ExtendedTriggerMessage: the upload under way, or Idle
            await self.send_quietly(logs.triggered_status(self))
        elif message == "FirmwareStatusNotification":  # the update under way, or Idle
            await self.send_quietly(self.firmware_status(signed=False))
