"""GetLog and LogStatusNotification (N01) in the words of the log service
(agent/transfer/logs.py): the session answers with ``get_log``, starts the upload
with ``start`` once the answer is out, and the status goes out as
LogStatusNotification through the client. A canceled upload is told
AcceptedCanceled (TC_N_36) before the new one reports Uploading.

CPython-only (sent through the ``ocpp`` library's client).
"""

from agent.core.isotime import parse_datetime
from agent.ocpp201 import security_words

LOG_TYPE = {"SecurityLog": "security", "DiagnosticsLog": "diagnostics"}
ANSWER = {"accepted": "Accepted", "accepted_canceled": "AcceptedCanceled", "rejected": "Rejected"}
UPLOAD_STATUS = {
    "idle": "Idle", "uploading": "Uploading", "uploaded": "Uploaded", "upload_failure": "UploadFailure",
    "bad_message": "BadMessage", "not_supported": "NotSupportedOperation", "permission_denied": "PermissionDenied",
    "canceled": "AcceptedCanceled",
}
REASON = {"not_supported": "UnsupportedRequest", "no_data": "NotFound", "write_failed": "OutOfStorage"}  # Appendix 5


def status_payload(word: str, request_id: int | None) -> dict:
    """The LogStatusNotificationRequest of ``word``."""
    payload = {"status": UPLOAD_STATUS[word]}
    if request_id is not None:
        payload["requestId"] = request_id
    return payload


def get_log(client, p: dict) -> dict:
    """The GetLogResponse for GetLogRequest ``p`` (camelCase)."""
    service = client.logs
    if service is None:
        return {"status": "Rejected", "statusInfo": {"reasonCode": "UnsupportedRequest"}}
    try:
        start = _time(p["log"].get("oldestTimestamp"))
        stop = _time(p["log"].get("latestTimestamp"))
    except ValueError as e:
        return {"status": "Rejected", "statusInfo": {"reasonCode": "InvalidValue", "additionalInfo": str(e)[:512]}}

    async def notify(word: str, request_id: int) -> None:
        await client.send_quietly("LogStatusNotification", status_payload(word, request_id))  # logged, never raised

    answer = service.request(LOG_TYPE[p["logType"]], p["log"]["remoteLocation"], p["requestId"], start=start,
                             stop=stop, retries=p.get("retries"), retry_interval_s=p.get("retryInterval"),
                             notify=notify, names=security_words.event_type)
    out = {"status": ANSWER[answer.status]}
    if answer.filename:
        out["filename"] = answer.filename
    if answer.reason:
        out["statusInfo"] = {"reasonCode": REASON.get(answer.reason, "Unspecified")}
    return out


def start(client, p: dict, response: dict) -> None:
    """The GetLogResponse went out: upload."""
    if client.logs is not None and response["status"] != "Rejected":
        client.logs.start(p["requestId"])


def triggered_status(client) -> dict:
    """The LogStatusNotification a TriggerMessage asks for: the state now (Idle without a
    request id when nothing is uploaded, F06.FR.14)."""
    word, request_id = client.logs.status() if client.logs is not None else ("idle", None)
    return status_payload(word, request_id)


def _time(text: str | None) -> float | None:
    return None if text is None else parse_datetime(text)
