"""OCPP 1.6 charging profiles and the core's neutral ones (agent/core/smart_charging.py).

``profile_from_16`` reads a ChargingProfile (csChargingProfiles of
SetChargingProfile.req, chargingProfile of RemoteStartTransaction.req: camelCase
JSON) and raises ``ProfileFormatError`` with the CALLERROR code a malformed one
is answered with (codec.profile_error); what is well-formed but not acceptable
(stack level, period order, purpose on this connector…) is the core's to
reject. ``schedule_to_16`` renders a composite schedule as the
GetCompositeSchedule.conf chargingSchedule. ``from_stored_16`` migrates the
charging-profiles.json of releases before 0.2 (SetChargingProfile.req
payloads) when the station loads it.

No I/O and no ``ocpp`` library: portable to MicroPython like the core.
"""

import logging
import math

from agent.core import smart_charging as sc
from agent.core.isotime import format_datetime, parse_datetime

log = logging.getLogger(__name__)

PURPOSES = {"ChargePointMaxProfile": sc.STATION_MAX, "TxDefaultProfile": sc.TX_DEFAULT, "TxProfile": sc.TX}
KINDS = {"Absolute": sc.ABSOLUTE, "Recurring": sc.RECURRING, "Relative": sc.RELATIVE}
RECURRENCIES = {"Daily": sc.DAILY, "Weekly": sc.WEEKLY}
UNITS = {"A": "A", "W": "W"}
STATUSES = {sc.ACCEPTED: "Accepted", sc.REJECTED: "Rejected", sc.UNKNOWN: "Unknown"}


class ProfileFormatError(sc.ProfileError):
    """A malformed 1.6 profile or request, answered with an RPC CALLERROR of
    ``error_code`` (errata 3.38/3.39: invalid enumeration values and an invalid
    connectorId give PropertyConstraintViolation; the core's own
    ``ProfileError`` — an unknown connector, say — is answered with that too)."""

    def __init__(self, message: str, error_code: str = "PropertyConstraintViolation") -> None:
        super().__init__(message)
        self.error_code = error_code


def _field(obj: dict, name: str, kind, required: bool, where: str):
    value = obj.get(name)
    if value is None:
        if required:
            raise ProfileFormatError("%s.%s is required" % (where, name), "ProtocolError")
        return None
    ok = isinstance(value, kind) and not isinstance(value, bool)
    if kind is int and isinstance(value, float) and value == int(value):
        value, ok = int(value), True
    if not ok:
        raise ProfileFormatError("%s.%s has the wrong type" % (where, name), "TypeConstraintViolation")
    return value


def _enum(obj: dict, name: str, values: dict, required: bool, where: str):
    value = _field(obj, name, str, required, where)
    if value is None:
        return None
    if value not in values:
        raise ProfileFormatError("%s.%s: %r is not one of %s" % (where, name, value, "/".join(values)))
    return values[value]


def _time(obj: dict, name: str, where: str):
    value = _field(obj, name, str, False, where)
    if value is None:
        return None
    try:
        return parse_datetime(value)
    except ValueError as e:
        raise ProfileFormatError("%s.%s: %s" % (where, name, e), "TypeConstraintViolation")


def connector_id(value, where: str = "request") -> int:
    """A connectorId of the request: an integer (its range is the station's to check)."""
    return _field({"connectorId": value}, "connectorId", int, True, where)


def profile_from_16(cp, where: str = "csChargingProfiles") -> dict:
    """A 1.6 ChargingProfile as a neutral profile dict (its ``evse_id`` None:
    the connectorId of the request is passed on its own); raises
    ``ProfileFormatError`` when a field is missing, of the wrong type or not a
    valid enumeration value. Every field is kept (a startSchedule of a Relative
    profile is ignored by 1.6 and not read)."""
    if not isinstance(cp, dict):
        raise ProfileFormatError("%s must be an object" % where, "TypeConstraintViolation")
    w = where
    pid = _field(cp, "chargingProfileId", int, True, w)
    stack_level = _field(cp, "stackLevel", int, True, w)
    purpose = _enum(cp, "chargingProfilePurpose", PURPOSES, True, w)
    transaction_id = _field(cp, "transactionId", int, False, w)
    kind = _enum(cp, "chargingProfileKind", KINDS, True, w)
    recurrency = _enum(cp, "recurrencyKind", RECURRENCIES, False, w)
    valid_from = _time(cp, "validFrom", w)
    valid_to = _time(cp, "validTo", w)
    sch = cp.get("chargingSchedule")
    if not isinstance(sch, dict):
        raise ProfileFormatError("%s.chargingSchedule is required" % w, "ProtocolError")
    w += ".chargingSchedule"
    duration = _field(sch, "duration", int, False, w)
    start = _time(sch, "startSchedule", w) if kind != sc.RELATIVE else None
    unit = _enum(sch, "chargingRateUnit", UNITS, True, w)
    min_rate = _field(sch, "minChargingRate", (int, float), False, w)
    periods = sch.get("chargingSchedulePeriod")
    if not isinstance(periods, list):
        raise ProfileFormatError("%s.chargingSchedulePeriod is required" % w, "ProtocolError")
    if not periods:
        raise ProfileFormatError("%s.chargingSchedulePeriod is empty" % w, "OccurenceConstraintViolation")
    out = []
    wp = w + ".chargingSchedulePeriod[]"
    for per in periods:
        if not isinstance(per, dict):
            raise ProfileFormatError("%s must be objects" % wp, "TypeConstraintViolation")
        out.append((_field(per, "startPeriod", int, True, wp), float(_field(per, "limit", (int, float), True, wp)),
                    _field(per, "numberPhases", int, False, wp)))
    return sc.new_profile(pid, purpose, stack_level, out, kind=kind, recurrency=recurrency, valid_from=valid_from,
                          valid_to=valid_to, transaction_id=transaction_id, start=start, duration_s=duration,
                          rate_unit=unit, min_rate=min_rate)


def _key(table: dict, value):
    for k, v in table.items():
        if v == value:
            return k
    raise KeyError(value)


def _time_16(t) -> str:
    return format_datetime(math.floor(t)) if t == math.floor(t) else format_datetime(t, millis=True)


def profile_to_16(p: dict) -> dict:
    """A neutral profile dict as a 1.6 ChargingProfile (csChargingProfiles)."""
    s = p["schedule"]
    periods = []
    for per in s["periods"]:
        d = {"startPeriod": per[0], "limit": per[1]}
        if len(per) > 2 and per[2] is not None:
            d["numberPhases"] = per[2]
        periods.append(d)
    sch = {"chargingRateUnit": s["rate_unit"], "chargingSchedulePeriod": periods}
    if s.get("start") is not None:
        sch["startSchedule"] = _time_16(s["start"])
    if s.get("duration_s") is not None:
        sch["duration"] = s["duration_s"]
    if s.get("min_rate") is not None:
        sch["minChargingRate"] = s["min_rate"]
    cp = {"chargingProfileId": p["id"], "stackLevel": p["stack_level"],
          "chargingProfilePurpose": _key(PURPOSES, p["purpose"]), "chargingProfileKind": _key(KINDS, p["kind"]),
          "chargingSchedule": sch}
    if p.get("recurrency") is not None:
        cp["recurrencyKind"] = _key(RECURRENCIES, p["recurrency"])
    if p.get("transaction_id") is not None:
        cp["transactionId"] = p["transaction_id"]
    for key, name in (("valid_from", "validFrom"), ("valid_to", "validTo")):
        if p.get(key) is not None:
            cp[name] = _time_16(p[key])
    return cp


def purpose_from_16(value):
    """ClearChargingProfile.req's chargingProfilePurpose (or None) in neutral words."""
    if value is None:
        return None
    if value not in PURPOSES:
        raise ProfileFormatError("chargingProfilePurpose %r is not valid" % (value,))
    return PURPOSES[value]


def status_16(status: str) -> str:
    """A neutral answer (accepted/rejected/unknown) in 1.6 spelling."""
    return STATUSES[status]


def schedule_to_16(cs: dict) -> dict:
    """A composite schedule (``composite_schedule``) as a 1.6 ChargingSchedule:
    ``{"duration", "startSchedule", "chargingRateUnit", "chargingSchedulePeriod":
    [{"startPeriod", "limit"[, "numberPhases"]}]}``; its startSchedule is the
    GetCompositeSchedule.conf scheduleStart."""
    periods = []
    for start_s, limit, phases in cs["periods"]:
        d = {"startPeriod": start_s, "limit": limit}
        if phases is not None:
            d["numberPhases"] = phases
        periods.append(d)
    return {"duration": cs["duration_s"], "startSchedule": format_datetime(cs["start"]),
            "chargingRateUnit": cs["rate_unit"], "chargingSchedulePeriod": periods}


def from_stored_16(data: dict) -> dict:
    """The charging-profiles.json of releases before 0.2 (``{"version": 1,
    "profiles": [{"connectorId", "csChargingProfiles"}]}``) in the store's
    format; entries that do not read are dropped with a warning (that release
    only stored profiles it had accepted). For ``Station(migrate_profiles=)``."""
    out = []
    for e in (data or {}).get("profiles", ()):
        try:
            if not isinstance(e, dict):
                raise ProfileFormatError("not an object")
            p = profile_from_16(e.get("csChargingProfiles"))
            p["evse_id"] = connector_id(e.get("connectorId"))
        except ProfileFormatError as err:
            log.warning("dropping a stored 1.6 charging profile: %s", err)
            continue
        out.append(p)
    log.info("%d charging profiles of the 1.6 store format migrated", len(out))
    return {"version": sc.STORE_VERSION, "profiles": out}
