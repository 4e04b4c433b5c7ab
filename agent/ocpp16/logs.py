"""GetLog and LogStatusNotification (OCPP 1.6 security whitepaper, N01) in the words of
the log service (agent/transfer/logs.py): the session answers with ``get_log``, starts
the upload with ``start`` once the answer is out, and the status goes out as
LogStatusNotification through the client.

1.6 has no status for a canceled upload: the canceled request is told nothing
(its GetLog.conf already said AcceptedCanceled).

CPython-only (the ``ocpp`` library's messages).
"""

from ocpp.v16 import call

from agent.core.isotime import parse_datetime
from agent.ocpp16 import security_words

LOG_TYPE = {"SecurityLog": "security", "DiagnosticsLog": "diagnostics"}
ANSWER = {"accepted": "Accepted", "accepted_canceled": "AcceptedCanceled", "rejected": "Rejected"}
UPLOAD_STATUS = {
    "idle": "Idle", "uploading": "Uploading", "uploaded": "Uploaded", "upload_failure": "UploadFailure",
    "bad_message": "BadMessage", "not_supported": "NotSupportedOperation", "permission_denied": "PermissionDenied",
}


def status_payload(word: str, request_id: int | None):
    """The LogStatusNotification of ``word`` (None: a word 1.6 does not send)."""
    status = UPLOAD_STATUS.get(word)
    return None if status is None else call.LogStatusNotification(status=status, request_id=request_id)


def get_log(client, log_type: str, log: dict, request_id: int, retries: int | None = None,
            retry_interval: int | None = None) -> dict:
    """The GetLog.conf fields (snake_case) for a GetLog.req."""
    service = client.logs
    if service is None or log_type not in LOG_TYPE:
        return {"status": "Rejected"}
    try:
        start = _time(log.get("oldest_timestamp"))
        stop = _time(log.get("latest_timestamp"))
    except ValueError:
        return {"status": "Rejected"}

    async def notify(word: str, rid: int) -> None:
        payload = status_payload(word, rid)
        if payload is not None:
            await client.send_quietly(payload)  # logged, never raised

    answer = service.request(LOG_TYPE[log_type], log["remote_location"], request_id, start=start, stop=stop,
                             retries=retries, retry_interval_s=retry_interval, notify=notify,
                             names=security_words.event_type)
    out = {"status": ANSWER[answer.status]}
    if answer.filename:
        out["filename"] = answer.filename
    return out


def start(client, request_id: int) -> None:
    """The GetLog.conf went out: upload."""
    if client.logs is not None:
        client.logs.start(request_id)


def triggered_status(client):
    """The LogStatusNotification an ExtendedTriggerMessage asks for: the state now
    (Idle without a request id when nothing is uploaded, N01.FR.12)."""
    word, request_id = client.logs.status() if client.logs is not None else ("idle", None)
    return status_payload(word, request_id)


def _time(text: str | None) -> float | None:
    return None if text is None else parse_datetime(text)
