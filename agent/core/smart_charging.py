"""Smart charging core (OCPP 1.6 §3.13): charging profiles, the effective limit
and the composite schedule. Protocol independent, no I/O, no clock of its own,
portable to MicroPython (no ``datetime``, ``bisect``, ``dataclasses``).

Data
----
A profile is kept exactly as OCPP JSON carries it, inside the request that set
it: an *entry* ``{"connectorId": n, "csChargingProfiles": {...ChargingProfile
(camelCase)...}}`` (the shape of SetChargingProfile.req). The adapter passes
payloads straight through; ``ChargingProfileStore.to_dict()`` is plain JSON.
For evaluation an entry is compiled once into a ``Profile`` (epoch floats, unit
and phase lists); ``ChargingProfileStore.profiles()`` caches those. The pure
functions accept entries or ``Profile`` objects.

Times are epoch seconds (floats). Profile dateTimes are floored to whole
seconds when compiled (OCPP schedules have one-second resolution; startPeriod
and duration are integers), so every boundary of an integer-anchored schedule
is an integer.

Evaluation (``limit_at``, ``composite_schedule``)
------------------------------------------------
For a connector N > 0 at time t:

1. A profile *is valid* at t when validFrom <= t < validTo (absent bounds are
   open). Its schedule *applies* at t when it is valid, the schedule has
   started (t >= its start) and has not ended (t - start < duration, and for
   Recurring < the recurrence period: errata 3.43/3.44 "If the
   chargingSchedulePeriod and/or duration is longer than the recurrencyKind
   period, the remainder periods SHALL NOT be executed").
2. Within one purpose the applying profile with the highest stackLevel wins
   (§3.13.2 "the prevailing charging profile SHALL be the charging profile with
   the highest stackLevel among the profiles that are valid at that point in
   time"). When its schedule does not apply, the next one down is used (errata
   3.43: "This fall back means that the Charge Point SHALL use a
   ChargingProfile with a lower stackLevel if available"; OCTT TC_072 checks
   this with a stack-1 profile of duration 150 over a stack-0 one).
3. TxDefaultProfiles of connector 0 and of connector N form one stack; on
   equal stackLevel the connector-N one wins (§3.13.1 "the TxDefaultProfile
   SHALL be replaced only for that specific connector").
4. TxProfile over TxDefaultProfile: while any TxProfile of the running
   transaction is *valid* (validFrom/validTo), the TxDefaultProfiles are not
   used at all, even when the TxProfile's schedule has ended (§3.13.1 "If a
   transaction-specific profile with purpose TxProfile is present, it SHALL
   overrule the default charging profile with purpose TxDefaultProfile for the
   duration of the current transaction only"). OCTT TC_066 expects exactly
   this: after its TxProfile (duration 260) ends, the composite shows the
   ChargePointMax limit 10, not the TxDefault's 8 at 260..300.
5. The limit is min(ChargePointMax winner, Tx-or-TxDefault winner) (§3.13.3
   "calculated by taking the minimum value for each time interval"). For
   connector 0 only the ChargePointMaxProfiles count.
6. Units: W is "the TOTAL allowed charging power"; "Current per phase = Power /
   (Line Voltage * Number of Phases)", with numberPhases of the period, "if
   numberPhases ... is absent, 3 SHALL be assumed" (§7.12). Errata 3.34: with
   more numberPhases than the connector uses, "use the 'limit' as is given,
   for the amount of phases that are/can be used", so the phases used in a
   conversion are min(numberPhases or 3, the connector's ``phases``).
7. minChargingRate (§7.13, "Minimum charging rate supported by the electric
   vehicle"): when the effective limit is below the winning Tx/TxDefault
   schedule's minChargingRate, charging is paused (limit 0) rather than run
   below what the EV supports. ``apply_min_charging_rate=False`` turns it off.

Kinds: Absolute starts at startSchedule; Recurring repeats every 86400 s
(Daily) or 604800 s (Weekly) "at the same time as in the startSchedule"
(§7.37), in both directions (the startSchedule fixes the phase; validFrom, not
startSchedule, says when a profile starts to count; libocpp does the same);
Relative starts at the transaction start ("situation-specific start point
(such as the start of a Transaction)", §7.9). Without a transaction, a Relative
profile is evaluated as if the transaction started at the evaluation time
(composite: at its start). An Absolute/Recurring profile without startSchedule
is anchored at validFrom, else like a Relative one; the store fills in the
installation time instead, so stored profiles always have one.
"""

import logging
import math

from agent.core.isotime import format_datetime, parse_datetime

log = logging.getLogger(__name__)

__all__ = (
    "ACCEPTED", "REJECTED", "UNKNOWN", "CHARGE_POINT_MAX", "TX_DEFAULT", "TX", "ChargingProfileStore",
    "Profile", "ProfileFormatError", "compile_entry", "composite_schedule", "limit_at", "parse_datetime",
    "format_datetime",
)

CHARGE_POINT_MAX = "ChargePointMaxProfile"
TX_DEFAULT = "TxDefaultProfile"
TX = "TxProfile"
ACCEPTED = "Accepted"
REJECTED = "Rejected"
UNKNOWN = "Unknown"

DEFAULT_PHASES = 3  # §7.12: "if numberPhases in a ChargingSchedulePeriod is absent, 3 SHALL be assumed"
DEFAULT_VOLTAGE_V = 230.0
DEFAULT_MAX_STACK_LEVEL = 8
DEFAULT_MAX_PERIODS = 24
DEFAULT_MAX_PROFILES = 16

_PURPOSES = {CHARGE_POINT_MAX: 0, TX_DEFAULT: 1, TX: 2}
_CPMAX, _TXDEFAULT, _TX = 0, 1, 2
_KINDS = {"Absolute": 0, "Recurring": 1, "Relative": 2}
_ABSOLUTE, _RECURRING, _RELATIVE = 0, 1, 2
_RECURRENCE_S = {"Daily": 86400, "Weekly": 7 * 86400}
_INF = float("inf")
_NEG_INF = float("-inf")


class ProfileFormatError(ValueError):
    """A malformed profile or request, to be answered with an RPC CALLERROR of
    ``error_code`` (errata 3.38/3.39: invalid enumeration values and an invalid
    connectorId give PropertyConstraintViolation)."""

    def __init__(self, message: str, error_code: str = "PropertyConstraintViolation") -> None:
        super().__init__(message)
        self.error_code = error_code


# --------------------------------------------------------------------------- compiling


class Profile:
    """One compiled entry: what evaluation needs, in epoch seconds."""

    __slots__ = ("entry", "id", "connector_id", "purpose", "stack_level", "transaction_id", "kind",
                 "recurrence_s", "start", "duration", "is_w", "starts", "limits", "phases", "min_rate",
                 "valid_from", "valid_to")

    def __repr__(self) -> str:
        return "Profile(id=%r, connector=%r, purpose=%r, stack=%r)" % (
            self.id, self.connector_id, self.purpose, self.stack_level)


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
    if value is not None and value not in values:
        raise ProfileFormatError("%s.%s: %r is not one of %s" % (where, name, value, "/".join(values)))
    return value


def _time(obj: dict, name: str, where: str):
    value = _field(obj, name, str, False, where)
    if value is None:
        return None
    try:
        return math.floor(parse_datetime(value))
    except ValueError as e:
        raise ProfileFormatError("%s.%s: %s" % (where, name, e), "TypeConstraintViolation")


def compile_entry(entry: dict) -> Profile:
    """Compile ``{"connectorId": n, "csChargingProfiles": {...}}``; raises
    ``ProfileFormatError`` when a field is missing, of the wrong type or not a
    valid enumeration value. Rules that only reject (stack level, period
    order, purpose on this connector…) are the store's (``rejection``)."""
    if not isinstance(entry, dict):
        raise ProfileFormatError("entry must be an object", "FormationViolation")
    p = Profile()
    p.entry = entry
    p.connector_id = _field(entry, "connectorId", int, True, "request")
    cp = entry.get("csChargingProfiles")
    if not isinstance(cp, dict):
        raise ProfileFormatError("request.csChargingProfiles is required", "ProtocolError")
    w = "csChargingProfiles"
    p.id = _field(cp, "chargingProfileId", int, True, w)
    p.stack_level = _field(cp, "stackLevel", int, True, w)
    p.purpose = _PURPOSES[_enum(cp, "chargingProfilePurpose", _PURPOSES, True, w)]
    p.transaction_id = _field(cp, "transactionId", int, False, w)
    p.kind = _KINDS[_enum(cp, "chargingProfileKind", _KINDS, True, w)]
    rec = _enum(cp, "recurrencyKind", _RECURRENCE_S, False, w)
    p.recurrence_s = _RECURRENCE_S[rec] if (rec is not None and p.kind == _RECURRING) else 0
    vf = _time(cp, "validFrom", w)
    vt = _time(cp, "validTo", w)
    p.valid_from = _NEG_INF if vf is None else vf
    p.valid_to = _INF if vt is None else vt
    sch = cp.get("chargingSchedule")
    if not isinstance(sch, dict):
        raise ProfileFormatError("%s.chargingSchedule is required" % w, "ProtocolError")
    w += ".chargingSchedule"
    p.duration = _field(sch, "duration", int, False, w)
    p.start = _time(sch, "startSchedule", w) if p.kind != _RELATIVE else None
    p.is_w = _enum(sch, "chargingRateUnit", ("A", "W"), True, w) == "W"
    p.min_rate = _field(sch, "minChargingRate", (int, float), False, w)
    periods = sch.get("chargingSchedulePeriod")
    if not isinstance(periods, list):
        raise ProfileFormatError("%s.chargingSchedulePeriod is required" % w, "ProtocolError")
    if not periods:
        raise ProfileFormatError("%s.chargingSchedulePeriod is empty" % w, "OccurenceConstraintViolation")
    p.starts, p.limits, p.phases = [], [], []
    for per in periods:
        if not isinstance(per, dict):
            raise ProfileFormatError("%s.chargingSchedulePeriod[] must be objects" % w, "TypeConstraintViolation")
        p.starts.append(_field(per, "startPeriod", int, True, w + ".chargingSchedulePeriod[]"))
        p.limits.append(float(_field(per, "limit", (int, float), True, w + ".chargingSchedulePeriod[]")))
        p.phases.append(_field(per, "numberPhases", int, False, w + ".chargingSchedulePeriod[]"))
    return p


def _as_profiles(profiles) -> list:
    return [p if isinstance(p, Profile) else compile_entry(p) for p in profiles]


# --------------------------------------------------------------------------- evaluation


def _period_index(starts: list, off: float) -> int:
    """Index of the last period with startPeriod <= off (-1 if none)."""
    lo, hi = 0, len(starts)
    while lo < hi:
        mid = (lo + hi) // 2
        if starts[mid] <= off:
            lo = mid + 1
        else:
            hi = mid
    return lo - 1


def _state(p: Profile, t: float, anchor) -> tuple:
    """(index of the period in force at t or -1, the next time > t at which
    that may change). ``anchor`` is the start of a Relative schedule; None
    means "starts whenever it is evaluated" (no transaction yet)."""
    vt = p.valid_to
    if t < p.valid_from:
        return -1, p.valid_from
    if t >= vt:
        return -1, _INF
    s0 = p.start
    if p.kind == _RELATIVE or s0 is None:
        if p.kind != _RELATIVE and p.valid_from != _NEG_INF:
            s0 = p.valid_from
        else:
            s0 = anchor
    if s0 is None:  # a schedule that starts now, wherever now is: only validity moves it
        s0, moving = t, True
    else:
        moving = False
    dur = _INF if p.duration is None else p.duration
    rs = p.recurrence_s
    if rs:
        s0 += math.floor((t - s0) / rs) * rs
        if dur > rs:
            dur = rs
    off = t - s0
    if off < 0:  # not started yet (Absolute in the future, Relative before its start)
        return -1, (s0 if s0 < vt else vt)
    if off >= dur:
        if rs:
            nxt = s0 + rs
            return -1, (nxt if nxt < vt else vt)
        return -1, vt
    starts = p.starts
    i = _period_index(starts, off)
    if i < 0:  # malformed: first startPeriod > 0 (the store rejects those)
        nxt = s0 + starts[0]
        return -1, (nxt if nxt < vt else vt)
    if moving:
        return i, vt
    nxt = s0 + dur
    if i + 1 < len(starts):
        b = s0 + starts[i + 1]
        if b < nxt:
            nxt = b
    return i, (nxt if nxt < vt else vt)


def _winner(group: list, t: float, anchor) -> tuple:
    """The applying profile of highest precedence in ``group`` (sorted, best
    first): (profile or None, period index, next change). The next change only
    looks at the winner and the profiles above it: those below cannot change
    the result while the winner applies."""
    nxt = _INF
    for p in group:
        i, n = _state(p, t, anchor)
        if n < nxt:
            nxt = n
        if i >= 0:
            return p, i, nxt
    return None, -1, nxt


def _select(profiles: list, connector_id: int, tx_active: bool, tx_id) -> tuple:
    """(ChargePointMax, Tx, TxDefault) profiles relevant to ``connector_id``,
    each sorted by precedence, best first."""
    cps, txs, txds = [], [], []
    for p in profiles:
        if p.purpose == _CPMAX:
            if p.connector_id == 0:
                cps.append(p)
        elif connector_id == 0:
            continue
        elif p.purpose == _TX:
            if tx_active and p.connector_id == connector_id and (
                    p.transaction_id is None or p.transaction_id == tx_id):
                txs.append(p)
        elif p.connector_id == 0 or p.connector_id == connector_id:
            txds.append(p)
    cps.sort(key=lambda p: p.stack_level, reverse=True)
    txs.sort(key=lambda p: p.stack_level, reverse=True)
    txds.sort(key=lambda p: (p.stack_level, p.connector_id != 0), reverse=True)
    return cps, txs, txds


def _in_unit(limit: float, is_w: bool, n, want_w: bool, voltage_v: float, phases: int) -> float:
    if is_w == want_w:
        return limit
    used = DEFAULT_PHASES if n is None else n
    if used > phases:  # errata 3.34: the limit is for the phases actually used
        used = phases
    return limit * voltage_v * used if want_w else limit / (voltage_v * used)


def _evaluate(groups: tuple, t: float, anchor, want_w: bool, voltage_v: float, phases: int) -> tuple:
    """(limit in the wanted unit or None, numberPhases of the deciding period,
    minChargingRate in the wanted unit or None, next change)."""
    cps, txs, txds = groups
    cp, cpi, nxt = _winner(cps, t, anchor) if cps else (None, -1, _INF)
    ev, evi, n2 = _winner(txs, t, anchor) if txs else (None, -1, _INF)
    if n2 < nxt:
        nxt = n2
    if ev is None and txds:
        present = False
        for p in txs:
            if p.valid_from <= t < p.valid_to:
                present = True  # §3.13.1: a TxProfile overrules the TxDefaultProfiles
                break
        if not present:
            ev, evi, n2 = _winner(txds, t, anchor)
            if n2 < nxt:
                nxt = n2
    limit = n_ph = min_rate = None
    if ev is not None:
        n_ph = ev.phases[evi]
        limit = _in_unit(ev.limits[evi], ev.is_w, n_ph, want_w, voltage_v, phases)
        if ev.min_rate is not None:
            min_rate = _in_unit(ev.min_rate, ev.is_w, n_ph, want_w, voltage_v, phases)
    if cp is not None:
        cp_n = cp.phases[cpi]
        cp_limit = _in_unit(cp.limits[cpi], cp.is_w, cp_n, want_w, voltage_v, phases)
        if limit is None or cp_limit < limit:
            limit, n_ph = cp_limit, cp_n
    if n_ph is not None and n_ph > phases:
        n_ph = phases
    return limit, n_ph, min_rate, nxt


def limit_at(profiles, connector_id: int, t: float, tx_start: float | None = None, tx_id: int | None = None,
             voltage_v: float = DEFAULT_VOLTAGE_V, phases: int = DEFAULT_PHASES, *,
             apply_min_charging_rate: bool = True) -> tuple:
    """The profiles' limit for ``connector_id`` at time ``t`` in amperes per
    phase, and when it may next change: ``(limit_a or None, next_change_t or
    None)``.

    ``limit_a`` is None when no profile constrains the connector (charge "as if
    no constraints apply", §3.13.6); local limits are the caller's to apply.
    ``next_change_t`` (> t) is the next schedule boundary of any profile that
    can matter (period start, end of duration, recurrence, validFrom/validTo);
    the limit is constant on [t, next_change_t) and may or may not change
    there. None: it never changes. Arm one timer for it.

    ``tx_start``/``tx_id``: the running transaction on the connector (start
    time, id; id None while not yet known). Without ``tx_start`` no TxProfile
    applies and Relative schedules start at ``t``. ``connector_id`` 0 gives the
    ChargePointMaxProfile limit alone (the whole station's budget).
    ``profiles``: entries or ``Profile`` objects (``store.profiles()``).
    """
    groups = _select(_as_profiles(profiles), connector_id, tx_start is not None, tx_id)
    limit, _n, min_rate, nxt = _evaluate(groups, t, tx_start, False, voltage_v, phases)
    if apply_min_charging_rate and min_rate is not None and limit is not None and limit < min_rate - 1e-9:
        limit = 0.0
    return limit, (None if nxt == _INF else nxt)


def _floor_tenth(x: float) -> float:
    """Round down to the one decimal OCPP allows ("Accepts at most one digit
    fraction", §7.14), so the reported limit never exceeds the real one."""
    return math.floor(x * 10 + 1e-6) / 10


def composite_schedule(profiles, connector_id: int, start_t: float, duration_s: int, unit: str | None = None, *,
                       local_limit_a: float, tx_start: float | None = None, tx_id: int | None = None,
                       voltage_v: float = DEFAULT_VOLTAGE_V, phases: int = DEFAULT_PHASES,
                       apply_min_charging_rate: bool = True) -> dict:
    """The composite schedule of GetCompositeSchedule.conf as a ChargingSchedule
    dict: ``{"duration", "startSchedule", "chargingRateUnit",
    "chargingSchedulePeriod": [{"startPeriod", "limit"[, "numberPhases"]}]}``.

    Errata 3.28: "calculate the Composite Charging Schedule intervals, from the
    moment the request PDU is received: Time X, up to X + Duration". X is
    ``start_t`` floored to a whole second (it is also the scheduleStart the
    adapter reports); startPeriods are whole seconds from X, limits have one
    decimal (rounded down), consecutive equal periods are merged.

    ``unit`` "A" or "W" (GetCompositeSchedule.req chargingRateUnit; the adapter
    answers other values with PropertyConstraintViolation, errata 3.24); None:
    W when every profile involved is in W, else A. ``local_limit_a``: the
    station's own limit for this connector in A (config, hardware), which caps
    every period and fills the times no profile covers (OCTT TC_067 step 12:
    with no profiles, "limit <The local limit of the Charging Station>").
    Connector 0: "the total expected power or current the Charge Point expects
    to consume from the grid" (errata 3.30): the ChargePointMaxProfiles capped
    by ``local_limit_a`` (pass the grid connection's limit). Other arguments as
    for ``limit_at``; without ``tx_start`` Relative schedules start at X.
    """
    if unit not in (None, "A", "W"):
        raise ProfileFormatError("chargingRateUnit must be A or W, not %r" % (unit,))
    if duration_s < 0:
        raise ProfileFormatError("duration must not be negative")
    profs = _as_profiles(profiles)
    groups = _select(profs, connector_id, tx_start is not None, tx_id)
    if unit is None:
        involved = groups[0] + groups[1] + groups[2]
        unit = "W" if involved and all(p.is_w for p in involved) else "A"
    want_w = unit == "W"
    start = math.floor(start_t)
    end = start + duration_s
    anchor = start if tx_start is None else math.floor(tx_start)
    local = _in_unit(local_limit_a, False, None, want_w, voltage_v, phases)
    periods = []
    last = None
    off = 0
    while True:
        limit, n_ph, min_rate, nxt = _evaluate(groups, start + off, anchor, want_w, voltage_v, phases)
        if limit is None or limit > local:
            limit, n_ph = local, None
        if apply_min_charging_rate and min_rate is not None and limit < min_rate - 1e-9:
            limit = 0.0
        limit = _floor_tenth(limit)
        if last is None or last != (limit, n_ph):
            period = {"startPeriod": off, "limit": limit}
            if n_ph is not None:
                period["numberPhases"] = n_ph
            periods.append(period)
            last = (limit, n_ph)
        if nxt >= end:
            break
        new_off = math.ceil(nxt - start - 1e-9)
        off = new_off if new_off > off else off + 1
        if off >= duration_s:
            break
    return {"duration": duration_s, "startSchedule": format_datetime(start), "chargingRateUnit": unit,
            "chargingSchedulePeriod": periods}


# --------------------------------------------------------------------------- the store


def _copy(obj):
    if isinstance(obj, dict):
        return {k: _copy(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_copy(v) for v in obj]
    return obj


class ChargingProfileStore:
    """The installed charging profiles, with SetChargingProfile /
    ClearChargingProfile semantics. No I/O: ``to_dict()``/``load()`` give and
    take plain JSON for the caller to persist (errata 3.37: "ChargingProfiles
    set via SetChargingProfile.req SHALL be persistent across reboots/power
    cycles"). ``revision`` goes up on every change.

    Limits (the read-only configuration keys of §9.4): ``max_stack_level``
    (ChargeProfileMaxStackLevel), ``max_periods`` (ChargingScheduleMaxPeriods),
    ``max_profiles`` (MaxChargingProfilesInstalled), ``allowed_units``
    (the rate units accepted: "A", "W").
    """

    def __init__(self, *, connector_count: int, max_stack_level: int = DEFAULT_MAX_STACK_LEVEL,
                 max_periods: int = DEFAULT_MAX_PERIODS, max_profiles: int = DEFAULT_MAX_PROFILES,
                 allowed_units: tuple = ("A", "W")) -> None:
        self.connector_count = connector_count
        self.max_stack_level = max_stack_level
        self.max_periods = max_periods
        self.max_profiles = max_profiles
        self.allowed_units = tuple(allowed_units)
        self.revision = 0
        self.last_rejection: str | None = None
        self._profiles: list = []  # compiled, installation order

    def __len__(self) -> int:
        return len(self._profiles)

    def profiles(self) -> list:
        """The installed profiles, compiled, for ``limit_at`` /
        ``composite_schedule`` (a new list; do not mutate the profiles)."""
        return list(self._profiles)

    def entries(self) -> list:
        """The installed profiles as SetChargingProfile.req payloads (copies)."""
        return [_copy(p.entry) for p in self._profiles]

    # -- validation

    def _check_connector(self, connector_id) -> None:
        if not isinstance(connector_id, int) or isinstance(connector_id, bool):
            raise ProfileFormatError("connectorId must be an integer", "TypeConstraintViolation")
        if not 0 <= connector_id <= self.connector_count:
            # errata 3.39: "If an invalid value for connectorId is used in SetChargingProfile.req, then the
            # Charge Point SHALL respond with RPC Framework CALLERROR: PropertyConstraintViolation"
            raise ProfileFormatError("connectorId %d does not exist" % connector_id)

    def rejection(self, p: Profile, *, transaction_id: int | None = None,
                  transaction_active: bool | None = None) -> str | None:
        """Why SetChargingProfile.conf must say Rejected for ``p``, or None."""
        if transaction_active is None:
            transaction_active = transaction_id is not None
        if p.stack_level < 0 or p.stack_level > self.max_stack_level:
            return "stackLevel %d is outside 0..%d (ChargeProfileMaxStackLevel)" % (
                p.stack_level, self.max_stack_level)
        if len(p.starts) > self.max_periods:
            return "%d periods, more than ChargingScheduleMaxPeriods %d" % (len(p.starts), self.max_periods)
        unit = "W" if p.is_w else "A"
        if unit not in self.allowed_units:
            return "chargingRateUnit %s is not in ChargingScheduleAllowedChargingRateUnit" % unit
        if p.starts[0] != 0:
            # errata 3.45: "The startPeriod of the first ChargingSchedulePeriod in a ChargingSchedule SHALL
            # always be 0."
            return "the first startPeriod is %d, not 0" % p.starts[0]
        for a, b in zip(p.starts, p.starts[1:]):
            if b <= a:
                return "startPeriod values must increase (%d after %d)" % (b, a)
        for limit in p.limits:
            if limit < 0:
                return "negative limit %r" % limit
        for n in p.phases:
            if n is not None and not 1 <= n <= 3:
                return "numberPhases %d is not 1..3" % n
        if p.duration is not None and p.duration < 0:
            return "negative duration"
        if p.min_rate is not None and p.min_rate < 0:
            return "negative minChargingRate"
        if p.kind == _RECURRING and not p.recurrence_s:
            return "a Recurring profile needs recurrencyKind"
        if p.valid_to <= p.valid_from:
            return "validTo is not after validFrom"
        if p.purpose == _CPMAX and p.connector_id != 0:
            # §3.13.1: "ChargePointMaxProfile can only be set at Charge Point ConnectorId 0."
            return "ChargePointMaxProfile on connector %d (only 0)" % p.connector_id
        if p.purpose == _TX:
            if p.connector_id == 0:
                # §3.13.1: "TxProfile SHALL only be set at Charge Point ConnectorId >0."
                return "TxProfile on connector 0"
            if not transaction_active:
                # §3.13.1: "If there is no transaction active on the connector specified in a charging profile of
                # type TxProfile, then the Charge Point SHALL discard it and return an error status"
                return "no transaction on connector %d" % p.connector_id
            if p.transaction_id is not None and p.transaction_id != transaction_id:
                # OCTT TC_058_2: a TxProfile for another transactionId is rejected
                return "transactionId %r is not the running transaction %r" % (p.transaction_id, transaction_id)
        return None

    # -- changes

    def install(self, connector_id: int, profile: dict, *, now: float, transaction_id: int | None = None,
                transaction_active: bool | None = None) -> str:
        """SetChargingProfile.req: ``ACCEPTED`` or ``REJECTED`` (the reason is
        logged and kept in ``last_rejection``); raises ``ProfileFormatError``
        for a malformed profile or an unknown connector.

        ``transaction_id``/``transaction_active``: the transaction running on
        ``connector_id`` (active defaults to "an id was given"; pass
        ``transaction_active=True`` without an id for a transaction whose id
        the central system has not assigned yet, e.g. the TxProfile of a
        RemoteStartTransaction.req, then ``bind_transaction`` when it has).
        A TxProfile without transactionId is bound to ``transaction_id``.

        §5.16.3: "If a charging profile with the same chargingProfileId, or
        the same combination of stackLevel / ChargingProfilePurpose, exists on
        the Charge Point, the new charging profile SHALL replace the existing
        charging profile" — same stackLevel/purpose counts per connector
        (a connector-N TxDefaultProfile replaces connector 0's "only for that
        specific connector"). An Absolute or Recurring profile without
        startSchedule gets ``now`` as its startSchedule.
        """
        self._check_connector(connector_id)
        if not isinstance(profile, dict):
            raise ProfileFormatError("csChargingProfiles must be an object", "TypeConstraintViolation")
        entry = {"connectorId": connector_id, "csChargingProfiles": _copy(profile)}
        p = compile_entry(entry)
        reason = self.rejection(p, transaction_id=transaction_id, transaction_active=transaction_active)
        replaced = [q for q in self._profiles if q.id == p.id or (
            q.connector_id == p.connector_id and q.purpose == p.purpose and q.stack_level == p.stack_level)]
        if reason is None and len(self._profiles) - len(replaced) + 1 > self.max_profiles:
            reason = "MaxChargingProfilesInstalled (%d) reached" % self.max_profiles
        if reason is not None:
            self.last_rejection = reason
            log.info("charging profile %r on connector %d rejected: %s", p.id, connector_id, reason)
            return REJECTED
        cp = entry["csChargingProfiles"]
        sch = cp["chargingSchedule"]
        if p.kind != _RELATIVE and p.start is None:
            sch["startSchedule"] = format_datetime(now)
        if p.purpose == _TX and p.transaction_id is None and transaction_id is not None:
            cp["transactionId"] = transaction_id
        p = compile_entry(entry)
        self._profiles = [q for q in self._profiles if q not in replaced]
        self._profiles.append(p)
        self.revision += 1
        log.info("charging profile %d (%s, stack %d) installed on connector %d%s", p.id,
                 cp["chargingProfilePurpose"], p.stack_level, connector_id,
                 (", replacing %s" % [q.id for q in replaced]) if replaced else "")
        return ACCEPTED

    def check_remote_start(self, profile: dict, connector_id: int | None = None) -> str:
        """Whether the chargingProfile of a RemoteStartTransaction.req can be
        used (ACCEPTED/REJECTED; nothing is installed): §5.16.2 "the
        ChargingProfilePurpose MUST be set to TxProfile and the transactionId
        SHALL NOT be set" (errata 3.41); OCTT TC_060 expects Rejected for any
        other purpose. Install it with ``install(...,
        transaction_active=True)`` when the transaction starts."""
        connector = 1 if connector_id is None or connector_id == 0 else connector_id
        self._check_connector(connector)
        if not isinstance(profile, dict):
            raise ProfileFormatError("chargingProfile must be an object", "TypeConstraintViolation")
        p = compile_entry({"connectorId": connector, "csChargingProfiles": profile})
        reason = None
        if p.purpose != _TX:
            reason = "the purpose of a RemoteStartTransaction profile must be TxProfile"
        elif p.transaction_id is not None:
            reason = "a RemoteStartTransaction profile must not have a transactionId"
        else:
            reason = self.rejection(p, transaction_active=True)
        if reason is not None:
            self.last_rejection = reason
            log.info("RemoteStartTransaction charging profile rejected: %s", reason)
            return REJECTED
        return ACCEPTED

    def clear(self, *, profile_id: int | None = None, connector_id: int | None = None,
              purpose: str | None = None, stack_level: int | None = None) -> str:
        """ClearChargingProfile.req: ``ACCEPTED`` when at least one profile was
        removed, else ``UNKNOWN`` ("No Charging Profile(s) were found matching
        the request", §7.21). Errata 3.25/3.26: "If no fields are provided,
        then all charging profiles will be cleared. If id is specified, then
        all other fields are ignored"; otherwise the given fields must all
        match (logical AND)."""
        if purpose is not None and purpose not in _PURPOSES:
            raise ProfileFormatError("chargingProfilePurpose %r is not valid" % (purpose,))
        if profile_id is not None:
            gone = [p for p in self._profiles if p.id == profile_id]
        else:
            code = None if purpose is None else _PURPOSES[purpose]
            gone = [p for p in self._profiles
                    if (connector_id is None or p.connector_id == connector_id)
                    and (code is None or p.purpose == code)
                    and (stack_level is None or p.stack_level == stack_level)]
        if not gone:
            return UNKNOWN
        self._profiles = [p for p in self._profiles if p not in gone]
        self.revision += 1
        log.info("charging profiles cleared: %s", [p.id for p in gone])
        return ACCEPTED

    def bind_transaction(self, connector_id: int, transaction_id: int) -> None:
        """The central system assigned ``transaction_id`` to the transaction on
        ``connector_id``: unbound TxProfiles there now carry it, so a later
        SetChargingProfile for it with the same stackLevel replaces them
        (errata 3.42)."""
        changed = False
        for i, p in enumerate(self._profiles):
            if p.purpose == _TX and p.connector_id == connector_id and p.transaction_id is None:
                p.entry["csChargingProfiles"]["transactionId"] = transaction_id
                self._profiles[i] = compile_entry(p.entry)
                changed = True
        if changed:
            self.revision += 1

    def transaction_ended(self, connector_id: int) -> list:
        """Remove the TxProfiles of ``connector_id`` (§3.13.1 "After the
        transaction is stopped, the profile SHOULD be deleted"; §7.10 "A
        profile with this purpose SHALL cease to be valid when the transaction
        terminates"). Call it too when a remote start never became a
        transaction, and at boot for connectors with no running transaction.
        Returns the removed profile ids."""
        gone = [p for p in self._profiles if p.purpose == _TX and p.connector_id == connector_id]
        if gone:
            self._profiles = [p for p in self._profiles if p not in gone]
            self.revision += 1
        return [p.id for p in gone]

    # -- persistence

    def to_dict(self) -> dict:
        """Plain JSON: ``{"version": 1, "profiles": [entries…]}``."""
        return {"version": 1, "profiles": self.entries()}

    def load(self, data: dict) -> int:
        """Replace the contents with ``to_dict()`` output; entries that no
        longer compile are dropped with a warning (limits are not re-checked:
        a profile once accepted stays). Returns the number loaded."""
        profiles = []
        for entry in (data or {}).get("profiles", ()):
            try:
                profiles.append(compile_entry(_copy(entry)))
            except ProfileFormatError as e:
                log.warning("dropping a stored charging profile: %s", e)
        self._profiles = profiles
        self.revision += 1
        return len(profiles)
