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
from agent.core.station import CentralSystemLink, Station
from agent.ocpp16.config_keys import FEATURE_PROFILES, ConfigurationStore, core_keys
from agent.ocpp16.vocabulary import to_16
from agent.ocpp16.codec import id_tag_info, iso_time, meter_value
from agent.ocpp16.outbox_sender import OutboxSender, call_quietly
from agent.ocpp16.session import Ocpp16Session

log = logging.getLogger(__name__)


async def first_of(a, b) -> None:
    """Until task ``a`` or task ``b`` is done; ``b``'s exception, if it ended with one, is raised."""
    done = asyncio.Event()
    for t in (a, b):
        t.add_done_callback(lambda _t: done.set())
    await done.wait()
    if b.done() and not b.cancelled() and b.exception() is not None:
        raise b.exception()


class Ocpp16Client(CentralSystemLink):
    """The station's link to an OCPP 1.6J central system over one connection at a time."""

    def __init__(self, station: Station, station_id: str, clock, response_timeout_s: float = 30.0,
                 vendor: str = "", model_name: str = "", serial_number: str = "",
                 firmware_version: str = "", traffic_log=None, keys: ConfigurationStore | None = None) -> None:
        self.station = station
        # The 1.6 configuration keys (GetConfiguration, ChangeConfiguration) over the station's settings.
        self.keys = keys if keys is not None else ConfigurationStore(
            core_keys(len(station.connectors), FEATURE_PROFILES), None, settings=station.settings)
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
        self.on_boot = None  # callable(status) after each BootNotification answer (agent/link/switch.py)
        self.messages_sent = 0
        self.messages_received = 0
        self._last_activity = 0.0
        self._wake = station.outbox.changed
        # The current central system's transaction messages, with status notifications in order.
        self.outbox_sender = OutboxSender(station, self._call, clock, self._wake)
        self._heartbeat_task = None
        station.link = self
        station.settings.on_change(self._on_setting_changed)

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
        await call_quietly(self._call, payload)

    # ------------------------------------------------------------------ session
    async def run_session(self, session: Ocpp16Session) -> None:
        """Run the protocol over one open connection until it closes."""
        self.session = session
        reader = asyncio.create_task(session.start())
        workers: list = []
        try:
            boot = asyncio.create_task(self._boot())
            workers.append(boot)
            await first_of(reader, boot)
            if reader.done():
                return
            self.outbox_sender.reset_others(
                [self._status_payload(cid) for cid in range(0, len(self.station.connectors) + 1)])
            workers.append(asyncio.create_task(self.outbox_sender.run(lambda: self.session is session)))
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

    async def _heartbeat(self, session) -> None:
        while self.session is session:
            interval = self.station.settings.get("heartbeat_interval_s")
            if interval <= 0:
                await asyncio.Event().wait()  # disabled until the key changes (task is restarted)
            due = self._last_activity + interval
            now = self.clock.monotonic()
            if now < due:
                await self.clock.sleep(due - now)
                continue
            await self._send_quietly(call.Heartbeat())
            self.mark_activity()

    def _on_setting_changed(self, name: str, value) -> None:
        if name == "heartbeat_interval_s" and self._heartbeat_task is not None and self.session is not None:
            self._heartbeat_task.cancel()
            self._heartbeat_task = asyncio.create_task(self._heartbeat(self.session))

    async def send_triggered(self, message: str, connector_id: int | None) -> None:
        """Send the message an Accepted TriggerMessage asked for (the session answers
        Rejected, and sends nothing, for what is not sent here: MeterValues of connector 0)."""
        if message == "BootNotification":
            await self._send_quietly(self._boot_payload())
        elif message == "Heartbeat":
            await self._send_quietly(call.Heartbeat())
        elif message == "StatusNotification":
            ids = [connector_id] if connector_id is not None else range(0, len(self.station.connectors) + 1)
            for cid in ids:
                await self._send_quietly(self._status_payload(cid))
        elif message == "MeterValues":
            ids = [connector_id] if connector_id is not None else range(1, len(self.station.connectors) + 1)
            for cid in ids:
                tx, sample = await self.station.meter_sample_now(cid)
                await self._send_quietly(call.MeterValues(
                    connector_id=cid, transaction_id=tx.backend_id if tx else None,
                    meter_value=[meter_value(sample)]))
        elif message == "DiagnosticsStatusNotification":
            await self._send_quietly(call.DiagnosticsStatusNotification(status="Idle"))
        elif message == "FirmwareStatusNotification":
            await self._send_quietly(call.FirmwareStatusNotification(status="Idle"))
