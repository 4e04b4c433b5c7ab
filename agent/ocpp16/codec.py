"""OCPP 1.6J on the wire: payload pieces, schema checks and CALLERRORs (no I/O).

CPython-only (wraps the ``ocpp`` library's schemas and errors).
"""

import decimal
import json

import ocpp.exceptions
import ocpp.messages
from ocpp.charge_point import snake_to_camel_case
from ocpp.exceptions import OCPPError

from agent.core import model
from agent.core.isotime import format_datetime
from agent.ocpp16.vocabulary import from_16
from agent.core.smart_charging import ProfileError

# Validate in the calling task: the library's default hands every message to a
# thread pool, which costs a thread switch per message and more memory.
ocpp.messages.ASYNC_VALIDATION = False

VERSION = "1.6"
SUBPROTOCOL = "ocpp1.6"
DECIMAL_ACTIONS = ("SetChargingProfile", "RemoteStartTransaction")  # requests with charging schedules
TRIGGERABLE = ("BootNotification", "DiagnosticsStatusNotification", "FirmwareStatusNotification",
               "Heartbeat", "MeterValues", "StatusNotification")


def iso_time(ts: float) -> str:
    """A 1.6 timestamp: UTC, millisecond precision, 'Z' suffix (agent/core/isotime.py)."""
    return format_datetime(ts, millis=True)


def validate_request(action: str, payload: dict) -> None:
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


def id_tag_info(data: dict | None) -> model.IdTagInfo:
    data = data or {}
    return model.IdTagInfo(from_16(data.get("status", "Invalid")), data.get("expiry_date"),
                           data.get("parent_id_tag"))


def ocpp_json(data):
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


def profile_error(e: ProfileError) -> OCPPError:
    """The CALLERROR a malformed charging profile is answered with (errata 3.38/3.39): the
    code of a profiles.ProfileFormatError, else (the core's ProfileError: an unknown
    connector, say) PropertyConstraintViolation."""
    code = getattr(e, "error_code", None)
    return _PROFILE_ERRORS.get(code, ocpp.exceptions.PropertyConstraintViolationError)(
        description=str(e)[:200])


