"""OCPP 2.0.1 charging profiles and the core's neutral ones (agent/core/smart_charging.py).

``profile_from_201`` reads a ChargingProfileType (chargingProfile of
SetChargingProfileRequest and RequestStartTransactionRequest: camelCase JSON,
already checked against its schema) and ``profile_to_201`` writes one back
(ReportChargingProfilesRequest). ``schedule_to_201`` renders a composite schedule
as GetCompositeScheduleResponse's CompositeScheduleType; ``report_messages``
makes the ReportChargingProfilesRequests of a GetChargingProfilesRequest.

2.0.1 fields the neutral model has no word for travel in the profile dict so that
a profile is reported as it was sent (K09, TC_K_01 "the same profile is reported
as send"): the schedule's ``id`` as ``schedule["id"]`` and a period's
``phaseToUse`` as a fourth element of its ``[start_s, limit, phases]``; the
engine ignores both. A profile may carry up to three chargingSchedules (ISO 15118
offers, K15); this station evaluates one, so a profile with more is rejected
(``TooManySchedules``), not cut.

No I/O and no ``ocpp`` library: portable to MicroPython like the core.
"""

from agent.core import smart_charging as sc
from agent.core.isotime import format_datetime, parse_datetime

PURPOSES = {"ChargingStationMaxProfile": sc.STATION_MAX, "TxDefaultProfile": sc.TX_DEFAULT, "TxProfile": sc.TX}
KINDS = {"Absolute": sc.ABSOLUTE, "Recurring": sc.RECURRING, "Relative": sc.RELATIVE}
RECURRENCIES = {"Daily": sc.DAILY, "Weekly": sc.WEEKLY}
UNITS = ("A", "W")
MAX_SCHEDULES = 1  # chargingSchedule entries a profile may have here
LIMIT_SOURCE = "CSO"  # every profile of this station comes from the CSMS (SetChargingProfile, RequestStart)
PROFILES_PER_REPORT = 8  # chargingProfile entries per ReportChargingProfilesRequest


class ProfileFormatError(sc.ProfileError):
    """A 2.0.1 profile that cannot be read: answered ``Rejected`` with
    ``reason_code`` (appendix 5 reason codes; at most 20 characters)."""

    def __init__(self, message: str, reason_code: str = "InvalidProfile") -> None:
        super().__init__(message)
        self.reason_code = reason_code


def _time(obj: dict, name: str, where: str):
    value = obj.get(name)
    if value is None:
        return None
    try:
        return parse_datetime(value)
    except (TypeError, ValueError) as e:
        raise ProfileFormatError("%s.%s: %s" % (where, name, e), "InvalidValue")


def _enum(obj: dict, name: str, values: dict, where: str):
    value = obj.get(name)
    if value is None:
        return None
    if value not in values:  # ChargingStationExternalConstraints: the CSMS may not set it (K01.FR.22)
        raise ProfileFormatError("%s.%s: %r is not supported" % (where, name, value), "UnsupportedParam")
    return values[value]


def profile_from_201(cp: dict, where: str = "chargingProfile") -> dict:
    """A 2.0.1 ChargingProfileType as a neutral profile dict (its ``evse_id``
    None: the request's evseId is passed on its own). Raises
    ``ProfileFormatError`` for what cannot be taken at all: an unsupported
    purpose, more chargingSchedules than MAX_SCHEDULES, a dateTime that does not
    read. A Relative profile's startSchedule is not read (it starts with the
    transaction)."""
    if not isinstance(cp, dict):
        raise ProfileFormatError("%s must be an object" % where)
    purpose = _enum(cp, "chargingProfilePurpose", PURPOSES, where)
    kind = _enum(cp, "chargingProfileKind", KINDS, where)
    if purpose is None or kind is None:
        raise ProfileFormatError("%s: chargingProfilePurpose and chargingProfileKind are required" % where)
    schedules = cp.get("chargingSchedule") or []
    if not schedules:
        raise ProfileFormatError("%s.chargingSchedule is empty" % where, "InvalidSchedule")
    if len(schedules) > MAX_SCHEDULES:
        raise ProfileFormatError("%s has %d chargingSchedules; this station takes %d"
                                 % (where, len(schedules), MAX_SCHEDULES), "TooManySchedules")
    sch = schedules[0]
    w = where + ".chargingSchedule[0]"
    unit = sch.get("chargingRateUnit")
    if unit not in UNITS:
        raise ProfileFormatError("%s.chargingRateUnit %r is not A or W" % (w, unit), "UnsupportedRateUnit")
    periods = sch.get("chargingSchedulePeriod") or []
    if not periods:
        raise ProfileFormatError("%s.chargingSchedulePeriod is empty" % w, "InvalidSchedule")
    out = []
    for per in periods:
        row = [per["startPeriod"], float(per["limit"]), per.get("numberPhases")]
        if per.get("phaseToUse") is not None:
            row.append(per["phaseToUse"])
        out.append(row)
    profile = sc.new_profile(
        cp["id"], purpose, cp["stackLevel"], out, kind=kind,
        recurrency=_enum(cp, "recurrencyKind", RECURRENCIES, where),
        valid_from=_time(cp, "validFrom", where), valid_to=_time(cp, "validTo", where),
        transaction_id=cp.get("transactionId"),
        start=_time(sch, "startSchedule", w) if kind != sc.RELATIVE else None,
        duration_s=sch.get("duration"), rate_unit=unit, min_rate=sch.get("minChargingRate"))
    profile["schedule"]["periods"] = out  # new_profile keeps three elements; phaseToUse is a fourth
    if sch.get("id") is not None:
        profile["schedule"]["id"] = sch["id"]
    return profile


def _key(table: dict, value):
    for k, v in table.items():
        if v == value:
            return k
    raise KeyError(value)


def _time_201(t) -> str:
    return format_datetime(t) if t == int(t) else format_datetime(t, millis=True)


def _periods_201(periods) -> list:
    out = []
    for per in periods:
        d = {"startPeriod": per[0], "limit": per[1]}
        if len(per) > 2 and per[2] is not None:
            d["numberPhases"] = per[2]
        if len(per) > 3 and per[3] is not None:
            d["phaseToUse"] = per[3]
        out.append(d)
    return out


def profile_to_201(p: dict) -> dict:
    """A neutral profile dict as a 2.0.1 ChargingProfileType (one chargingSchedule,
    whose id is the one it came with, else the profile's id)."""
    s = p["schedule"]
    sch = {"id": s.get("id", p["id"]), "chargingRateUnit": s["rate_unit"],
           "chargingSchedulePeriod": _periods_201(s["periods"])}
    if s.get("start") is not None:
        sch["startSchedule"] = _time_201(s["start"])
    if s.get("duration_s") is not None:
        sch["duration"] = s["duration_s"]
    if s.get("min_rate") is not None:
        sch["minChargingRate"] = s["min_rate"]
    cp = {"id": p["id"], "stackLevel": p["stack_level"],
          "chargingProfilePurpose": _key(PURPOSES, p["purpose"]),
          "chargingProfileKind": _key(KINDS, p.get("kind", sc.ABSOLUTE)), "chargingSchedule": [sch]}
    if p.get("recurrency") is not None:
        cp["recurrencyKind"] = _key(RECURRENCIES, p["recurrency"])
    for key, name in (("valid_from", "validFrom"), ("valid_to", "validTo")):
        if p.get(key) is not None:
            cp[name] = _time_201(p[key])
    if p.get("transaction_id") is not None:
        cp["transactionId"] = str(p["transaction_id"])
    return cp


def purpose_from_201(value):
    """A chargingProfilePurpose of a request's criteria (or None) in neutral words;
    ChargingStationExternalConstraints (never installed here) gives ``""``, which
    matches no profile."""
    if value is None:
        return None
    return PURPOSES.get(value, "")


# Phrases of ChargingProfileStore.rejection (agent/core/profile_store.py) -> appendix 5 reason codes
_REASONS = (("stack level", "InvalidStackLevel"), ("rate unit", "UnsupportedRateUnit"),
            ("max_profiles", "TooManyElements"), ("transaction", "TxNotFound"), ("EVSE 0", "InvalidProfile"),
            ("only 0", "InvalidProfile"), ("period", "InvalidSchedule"), ("phases", "InvalidSchedule"),
            ("duration", "InvalidSchedule"), ("min_rate", "InvalidSchedule"), ("limit", "InvalidSchedule"))


def rejection_info(reason: str | None) -> dict:
    """The StatusInfoType of a rejected profile from the store's reason."""
    text = reason or "rejected"
    code = next((c for phrase, c in _REASONS if phrase in text), "InvalidProfile")
    return {"reasonCode": code, "additionalInfo": text[:512]}


def schedule_to_201(cs: dict, evse_id: int) -> dict:
    """A composite schedule (``composite_schedule``) as a CompositeScheduleType."""
    return {"evseId": evse_id, "duration": cs["duration_s"], "scheduleStart": format_datetime(cs["start"]),
            "chargingRateUnit": cs["rate_unit"], "chargingSchedulePeriod": _periods_201(cs["periods"])}


def matches(p: dict, evse_id=None, criterion: dict | None = None) -> bool:
    """Whether an installed profile dict answers a GetChargingProfilesRequest's
    evseId (None: every EVSE; 0: the station's own) and chargingProfile criterion
    (every field given must match: purpose, stackLevel, one of chargingProfileId,
    one of chargingLimitSource)."""
    c = criterion or {}
    if evse_id is not None and p["evse_id"] != evse_id:
        return False
    if c.get("chargingProfileId") and p["id"] not in c["chargingProfileId"]:
        return False
    if c.get("chargingProfilePurpose") is not None and p["purpose"] != purpose_from_201(c["chargingProfilePurpose"]):
        return False
    if c.get("stackLevel") is not None and p["stack_level"] != c["stackLevel"]:
        return False
    if c.get("chargingLimitSource") and LIMIT_SOURCE not in c["chargingLimitSource"]:
        return False
    return True


def report_messages(request_id: int, profiles: list, per_message: int = PROFILES_PER_REPORT) -> list:
    """ReportChargingProfilesRequests for ``profiles`` (neutral dicts): one group
    per evseId (all with chargingLimitSource CSO), each cut into messages of at
    most ``per_message`` profiles; ``tbc`` True on every message but the last."""
    by_evse: dict = {}
    for p in profiles:
        by_evse.setdefault(p["evse_id"], []).append(profile_to_201(p))
    out = []
    for evse_id in sorted(by_evse):
        group = by_evse[evse_id]
        for i in range(0, len(group), per_message):
            out.append({"requestId": request_id, "chargingLimitSource": LIMIT_SOURCE, "evseId": evse_id,
                        "chargingProfile": group[i:i + per_message], "tbc": True})
    if out:
        out[-1]["tbc"] = False
    return out
