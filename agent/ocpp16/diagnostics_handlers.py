"""OCPP 1.6 GetDiagnostics and DiagnosticsStatusNotification (FirmwareManagement,
§5.9 and §4.4) in the words of the log service (agent/transfer/logs.py): a
GetDiagnostics is a log request for the diagnostics archive (agent/app/diagnostics.py)
on the service's own "diagnostics" channel (a GetLog neither cancels it nor is
canceled by it), answered with the file name; the upload starts once the answer is
out. A mixin of Ocpp16Session: no diagnostics logic here.

1.6 words: Uploading once when the upload starts, then Uploaded, or UploadFailed
after the last of ``retries`` more attempts ``retryInterval`` apart (every failure,
whatever its reason: 1.6 has one word for them). A newer GetDiagnostics replaces the
one under way, which is told nothing more. TriggerMessage DiagnosticsStatusNotification
answers Uploading while an upload is under way, else Idle (the only use of Idle).

CPython-only (the ``ocpp`` library's routing and messages).
"""

import logging

from ocpp.routing import after, on
from ocpp.v16 import call
from ocpp.v16.enums import Action

from agent.core.isotime import parse_datetime

log = logging.getLogger(__name__)

STATUS = {"idle": "Idle", "uploading": "Uploading", "uploaded": "Uploaded"}  # any other word: UploadFailed
REQUEST_ID = 0  # 1.6 GetDiagnostics has no request id: its channel's one request is known by this
DIAGNOSTICS = DIAGNOSTICS_CHANNEL = "diagnostics"  # the service's log type and channel (agent/transfer/logs.py)


def status_payload(word: str):
    """The DiagnosticsStatusNotification of ``word`` (None: "canceled", not told in 1.6)."""
    if word == "canceled":
        return None
    return call.DiagnosticsStatusNotification(status=STATUS.get(word, "UploadFailed"))


def get_diagnostics(client, location: str, retries: int | None = None, retry_interval: int | None = None,
                    start_time: str | None = None, stop_time: str | None = None) -> dict:
    """The GetDiagnostics.conf fields (snake_case): the file name, none when nothing will be uploaded."""
    service = client.logs
    if service is None:
        return {}
    try:
        start = None if start_time is None else parse_datetime(start_time)
        stop = None if stop_time is None else parse_datetime(stop_time)
    except ValueError as e:
        log.warning("GetDiagnostics with a bad time window: %s", e)
        return {}

    async def notify(word: str, _request_id) -> None:
        payload = status_payload(word)
        if payload is not None:
            await client.send_quietly(payload)  # logged, never raised

    answer = service.request(DIAGNOSTICS, location, REQUEST_ID, start=start, stop=stop, retries=retries,
                             retry_interval_s=retry_interval, notify=notify, channel=DIAGNOSTICS_CHANNEL,
                             every_attempt=False)
    return {"file_name": answer.filename} if answer.filename else {}


def triggered_status(client):
    """The DiagnosticsStatusNotification a TriggerMessage asks for: Uploading or Idle."""
    word = client.logs.status(DIAGNOSTICS_CHANNEL)[0] if getattr(client, "logs", None) is not None else "idle"
    return status_payload(word)


class DiagnosticsHandlers:
    """GetDiagnostics for Ocpp16Session (``self.client``, ``self._call_result``)."""

    @on(Action.get_diagnostics)
    async def on_get_diagnostics(self, location: str, retries: int | None = None, retry_interval: int | None = None,
                                 start_time: str | None = None, stop_time: str | None = None):
        return self._call_result.GetDiagnostics(**get_diagnostics(self.client, location, retries, retry_interval,
                                                                  start_time, stop_time))

    @after(Action.get_diagnostics)
    async def after_get_diagnostics(self, location: str, **_optional):
        if self.client.logs is not None:
            self.client.logs.start(REQUEST_ID, DIAGNOSTICS_CHANNEL)  # the answer is out: notifications follow it
