"""Smart charging core: charging profiles, the effective limit and the
composite schedule. Protocol neutral (the adapters translate their messages to
and from the form below), no I/O, no clock of its own, portable to MicroPython
(no ``datetime``, ``bisect``, ``dataclasses``). Section numbers (§) and errata
refer to OCPP 1.6, whose rules the model follows; OCPP 2.0.1 has the same ones
(K01-K08).

Data
----
A profile is a plain dict, JSON as it is (``new_profile`` makes one)::

    {"id": 7, "evse_id": 1,               # 0: the whole station
     "purpose": "tx_default",             # STATION_MAX / TX_DEFAULT / TX
     "stack_level": 0,
     "kind": "absolute",                  # ABSOLUTE / RECURRING / RELATIVE
     "recurrency": None,                  # DAILY / WEEKLY (recurring profiles)
     "valid_from": None, "valid_to": None,    # epoch seconds or None (open)
     "transaction_id": None,              # the transaction a TX profile belongs to
     "schedule": {"start": 1767225600,    # epoch seconds or None
                  "duration_s": None,     # None: no end
                  "rate_unit": "A",       # "A" (per phase) or "W" (total)
                  "periods": [[0, 16.0, None], [3600, 10.0, 1]],  # [start_s, limit, phases or None]
                  "min_rate": None}}      # the EV's minimum charging rate, in rate_unit

``transaction_id`` is the identifier the station passes as ``tx_id`` for the
running transaction (the central system's, in OCPP 1.6). For evaluation a
profile is compiled once into a ``Profile`` (epoch floats, unit and phase
lists); ``ChargingProfileStore.profiles()`` caches those. The pure functions
accept profile dicts or ``Profile`` objects.

Times are epoch seconds. They are floored to whole seconds when compiled
(schedules have one-second resolution; period starts and durations are
integers), so every boundary of an integer-anchored schedule is an integer.

Evaluation (``limit_at``, ``composite_schedule``)
------------------------------------------------
For an EVSE N > 0 at time t:

1. A profile *is valid* at t when valid_from <= t < valid_to (absent bounds
   are open). Its schedule *applies* at t when it is valid, the schedule has
   started (t >= its start) and has not ended (t - start < duration, and for
   a recurring one < the recurrence period: errata 3.43/3.44 "If the
   chargingSchedulePeriod and/or duration is longer than the recurrencyKind
   period, the remainder periods SHALL NOT be executed").
2. Within one purpose the applying profile with the highest stack level wins
   (§3.13.2 "the prevailing charging profile SHALL be the charging profile with
   the highest stackLevel among the profiles that are valid at that point in
   time"). When its schedule does not apply, the next one down is used (errata
   3.43: "This fall back means that the Charge Point SHALL use a
   ChargingProfile with a lower stackLevel if available"; OCTT TC_072 checks
   this with a stack-1 profile of duration 150 over a stack-0 one).
3. The tx_default profiles of EVSE 0 and of EVSE N form one stack; on equal
   stack level the EVSE-N one wins (§3.13.1: a default set for one connector
   replaces the station-wide one "only for that specific connector").
4. tx over tx_default: while any tx profile of the running transaction is
   *valid* (valid_from/valid_to), the tx_default profiles are not used at all,
   even when the tx profile's schedule has ended (§3.13.1: the transaction's
   profile "SHALL overrule the default charging profile ... for the duration
   of the current transaction only"). OCTT TC_066 expects exactly this: after
   its tx profile (duration 260) ends, the composite shows the station_max
   limit 10, not the tx_default's 8 at 260..300.
5. The limit is min(station_max winner, tx-or-tx_default winner) (§3.13.3
   "calculated by taking the minimum value for each time interval"). For
   EVSE 0 only the station_max profiles count.
6. Units: W is "the TOTAL allowed charging power"; "Current per phase = Power /
   (Line Voltage * Number of Phases)", with the phases of the period, "if
   numberPhases ... is absent, 3 SHALL be assumed" (§7.12). Errata 3.34: with
   more phases than the EVSE uses, "use the 'limit' as is given, for the
   amount of phases that are/can be used", so the phases used in a conversion
   are min(phases or 3, the EVSE's ``phases``).
7. min_rate (§7.13, "Minimum charging rate supported by the electric
   vehicle"): when the effective limit is below the winning tx/tx_default
   schedule's min_rate, charging is paused (limit 0) rather than run below
   what the EV supports. ``apply_min_charging_rate=False`` turns it off.

Kinds: absolute starts at the schedule's start; recurring repeats every
86400 s (daily) or 604800 s (weekly) "at the same time as in the
startSchedule" (§7.37), in both directions (the start fixes the phase;
valid_from, not the start, says when a profile starts to count; libocpp does
the same); relative starts at the transaction start ("situation-specific start
point (such as the start of a Transaction)", §7.9). Without a transaction, a
relative profile is evaluated as if the transaction started at the evaluation
time (composite: at its start). An absolute/recurring profile without a start
is anchored at valid_from, else like a relative one; the store fills in the
installation time instead, so stored profiles always have one.
"""

import logging
import math

from agent.core.model import ACCEPTED, REJECTED

log = logging.getLogger(__name__)

__all__ = (
    "ACCEPTED", "REJECTED", "UNKNOWN", "STATION_MAX", "TX_DEFAULT", "TX", "ABSOLUTE", "RECURRING", "RELATIVE",
    "DAILY", "WEEKLY", "STORE_VERSION", "Profile", "ProfileError", "compile_profile",
    "composite_schedule", "limit_at", "new_profile",
)

# Purposes
STATION_MAX = "station_max"  # the whole station's budget (EVSE 0 only)
TX_DEFAULT = "tx_default"  # the default for transactions (EVSE 0: every EVSE)
TX = "tx"  # one transaction's (EVSE > 0)
# Kinds and recurrences
ABSOLUTE = "absolute"
RECURRING = "recurring"
RELATIVE = "relative"
DAILY = "daily"
WEEKLY = "weekly"
# Answers (ACCEPTED/REJECTED from agent.core.model)
UNKNOWN = "unknown"  # clear: nothing matched

STORE_VERSION = 2  # the format of ``ChargingProfileStore.to_dict()`` (agent/core/profile_store.py) (1: OCPP 1.6 JSON, before 0.2)

DEFAULT_PHASES = 3  # §7.12: "if numberPhases in a ChargingSchedulePeriod is absent, 3 SHALL be assumed"
DEFAULT_VOLTAGE_V = 230.0
DEFAULT_MAX_STACK_LEVEL = 8
DEFAULT_MAX_PERIODS = 24
DEFAULT_MAX_PROFILES = 16

PURPOSE_INDEX = {STATION_MAX: 0, TX_DEFAULT: 1, TX: 2}
PURPOSE_STATION_MAX, PURPOSE_TX_DEFAULT, PURPOSE_TX = 0, 1, 2
KIND_INDEX = {ABSOLUTE: 0, RECURRING: 1, RELATIVE: 2}
KIND_ABSOLUTE, KIND_RECURRING, KIND_RELATIVE = 0, 1, 2
_RECURRENCE_S = {DAILY: 86400, WEEKLY: 7 * 86400}
RATE_UNITS = ("A", "W")
_INF = float("inf")
_NEG_INF = float("-inf")


class ProfileError(ValueError):
    """A profile or request the model cannot take at all, as opposed to one it
    rejects: an unknown EVSE, purpose, kind or unit, a malformed profile dict.
    Adapters answer it with their protocol's error (OCPP 1.6 errata 3.38/3.39:
    a CALLERROR)."""


def new_profile(profile_id: int, purpose: str, stack_level: int, periods, *, evse_id: int | None = None,
                kind: str = ABSOLUTE, recurrency: str | None = None, valid_from: float | None = None,
                valid_to: float | None = None, transaction_id=None, start: float | None = None,
                duration_s: int | None = None, rate_unit: str = "A", min_rate: float | None = None) -> dict:
    """A profile dict; ``periods``: (start_s, limit[, phases]) sequences."""
    return {"id": profile_id, "evse_id": evse_id, "purpose": purpose, "stack_level": stack_level, "kind": kind,
            "recurrency": recurrency, "valid_from": valid_from, "valid_to": valid_to,
            "transaction_id": transaction_id,
            "schedule": {"start": start, "duration_s": duration_s, "rate_unit": rate_unit,
                         "periods": [[per[0], per[1], per[2] if len(per) > 2 else None] for per in periods],
                         "min_rate": min_rate}}


# --------------------------------------------------------------------------- compiling


class Profile:
    """One compiled profile: what evaluation needs, in epoch seconds."""

    __slots__ = ("data", "id", "evse_id", "purpose", "stack_level", "transaction_id", "kind",
                 "recurrence_s", "start", "duration", "is_w", "starts", "limits", "phases", "min_rate",
                 "valid_from", "valid_to")

    def __repr__(self) -> str:
        return "Profile(id=%r, evse=%r, purpose=%r, stack=%r)" % (
            self.id, self.evse_id, self.data.get("purpose"), self.stack_level)


def _floor(t):
    return None if t is None else math.floor(t)


def _enum(value, values, what: str):
    if value not in values:
        raise ProfileError("%s %r is not one of %s" % (what, value, "/".join(values)))
    return value


def compile_profile(data: dict) -> Profile:
    """Compile a profile dict; raises ``ProfileError`` when it is not one (a
    missing key, an unknown purpose, kind, recurrency or unit, no periods).
    Rules that only reject (stack level, period order, purpose on this
    EVSE…) are the store's (``rejection``)."""
    try:
        p = Profile()
        p.data = data
        p.id = data["id"]
        p.evse_id = data["evse_id"]
        p.stack_level = data["stack_level"]
        p.purpose = PURPOSE_INDEX[_enum(data["purpose"], PURPOSE_INDEX, "purpose")]
        p.transaction_id = data.get("transaction_id")
        p.kind = KIND_INDEX[_enum(data.get("kind", ABSOLUTE), KIND_INDEX, "kind")]
        rec = data.get("recurrency")
        if rec is not None:
            _enum(rec, _RECURRENCE_S, "recurrency")
        p.recurrence_s = _RECURRENCE_S[rec] if (rec is not None and p.kind == KIND_RECURRING) else 0
        vf = _floor(data.get("valid_from"))
        vt = _floor(data.get("valid_to"))
        p.valid_from = _NEG_INF if vf is None else vf
        p.valid_to = _INF if vt is None else vt
        sch = data["schedule"]
        p.duration = sch.get("duration_s")
        p.start = _floor(sch.get("start")) if p.kind != KIND_RELATIVE else None
        p.is_w = _enum(sch.get("rate_unit"), RATE_UNITS, "rate unit") == "W"
        p.min_rate = sch.get("min_rate")
        periods = sch["periods"]
        if not periods:
            raise ProfileError("a schedule needs at least one period")
        p.starts, p.limits, p.phases = [], [], []
        for per in periods:
            p.starts.append(int(per[0]))
            p.limits.append(float(per[1]))
            p.phases.append(per[2] if len(per) > 2 else None)
    except (KeyError, TypeError, ValueError, IndexError) as e:
        if isinstance(e, ProfileError):
            raise
        raise ProfileError("not a charging profile: %s %s" % (type(e).__name__, e)) from None
    return p


def _as_profiles(profiles) -> list:
    return [p if isinstance(p, Profile) else compile_profile(p) for p in profiles]
# --------------------------------------------------------------------------- evaluation


def _period_index(starts: list, off: float) -> int:
    """Index of the last period starting at or before off (-1 if none)."""
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
    that may change). ``anchor`` is the start of a relative schedule; None
    means "starts whenever it is evaluated" (no transaction yet)."""
    vt = p.valid_to
    if t < p.valid_from:
        return -1, p.valid_from
    if t >= vt:
        return -1, _INF
    s0 = p.start
    if p.kind == KIND_RELATIVE or s0 is None:
        if p.kind != KIND_RELATIVE and p.valid_from != _NEG_INF:
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
    if off < 0:  # not started yet (absolute in the future, relative before its start)
        return -1, (s0 if s0 < vt else vt)
    if off >= dur:
        if rs:
            nxt = s0 + rs
            return -1, (nxt if nxt < vt else vt)
        return -1, vt
    starts = p.starts
    i = _period_index(starts, off)
    if i < 0:  # malformed: the first period starts after 0 (the store rejects those)
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


def _select(profiles: list, evse_id: int, tx_active: bool, tx_id) -> tuple:
    """(station_max, tx, tx_default) profiles relevant to ``evse_id``,
    each sorted by precedence, best first."""
    cps, txs, txds = [], [], []
    for p in profiles:
        if p.purpose == PURPOSE_STATION_MAX:
            if p.evse_id == 0:
                cps.append(p)
        elif evse_id == 0:
            continue
        elif p.purpose == PURPOSE_TX:
            if tx_active and p.evse_id == evse_id and (
                    p.transaction_id is None or p.transaction_id == tx_id):
                txs.append(p)
        elif p.evse_id == 0 or p.evse_id == evse_id:
            txds.append(p)
    cps.sort(key=lambda p: p.stack_level, reverse=True)
    txs.sort(key=lambda p: p.stack_level, reverse=True)
    txds.sort(key=lambda p: (p.stack_level, p.evse_id != 0), reverse=True)
    return cps, txs, txds


def _in_unit(limit: float, is_w: bool, n, want_w: bool, voltage_v: float, phases: int) -> float:
    if is_w == want_w:
        return limit
    used = DEFAULT_PHASES if n is None else n
    if used > phases:  # errata 3.34: the limit is for the phases actually used
        used = phases
    return limit * voltage_v * used if want_w else limit / (voltage_v * used)


def _evaluate(groups: tuple, t: float, anchor, want_w: bool, voltage_v: float, phases: int) -> tuple:
    """(limit in the wanted unit or None, phases of the deciding period,
    min_rate in the wanted unit or None, next change)."""
    cps, txs, txds = groups
    cp, cpi, nxt = _winner(cps, t, anchor) if cps else (None, -1, _INF)
    ev, evi, n2 = _winner(txs, t, anchor) if txs else (None, -1, _INF)
    if n2 < nxt:
        nxt = n2
    if ev is None and txds:
        present = False
        for p in txs:
            if p.valid_from <= t < p.valid_to:
                present = True  # §3.13.1: the transaction's profile overrules the defaults
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


def limit_at(profiles, evse_id: int, t: float, tx_start: float | None = None, tx_id=None,
             voltage_v: float = DEFAULT_VOLTAGE_V, phases: int = DEFAULT_PHASES, *,
             apply_min_charging_rate: bool = True) -> tuple:
    """The profiles' limit for ``evse_id`` at time ``t`` in amperes per
    phase, and when it may next change: ``(limit_a or None, next_change_t or
    None)``.

    ``limit_a`` is None when no profile constrains the EVSE (charge "as if
    no constraints apply", §3.13.6); local limits are the caller's to apply.
    ``next_change_t`` (> t) is the next schedule boundary of any profile that
    can matter (period start, end of duration, recurrence, valid_from/valid_to);
    the limit is constant on [t, next_change_t) and may or may not change
    there. None: it never changes. Arm one timer for it.

    ``tx_start``/``tx_id``: the running transaction on the EVSE (start time,
    the id its tx profiles name; id None while not yet known). Without
    ``tx_start`` no tx profile applies and relative schedules start at ``t``.
    ``evse_id`` 0 gives the station_max limit alone (the whole station's
    budget). ``profiles``: profile dicts or ``Profile`` objects
    (``store.profiles()``).
    """
    groups = _select(_as_profiles(profiles), evse_id, tx_start is not None, tx_id)
    limit, _n, min_rate, nxt = _evaluate(groups, t, tx_start, False, voltage_v, phases)
    if apply_min_charging_rate and min_rate is not None and limit is not None and limit < min_rate - 1e-9:
        limit = 0.0
    return limit, (None if nxt == _INF else nxt)


def _floor_tenth(x: float) -> float:
    """Round down to one decimal (OCPP: "Accepts at most one digit fraction",
    §7.14), so the reported limit never exceeds the real one."""
    return math.floor(x * 10 + 1e-6) / 10


def composite_schedule(profiles, evse_id: int, start_t: float, duration_s: int, unit: str | None = None, *,
                       local_limit_a: float, tx_start: float | None = None, tx_id=None,
                       voltage_v: float = DEFAULT_VOLTAGE_V, phases: int = DEFAULT_PHASES,
                       apply_min_charging_rate: bool = True) -> dict:
    """The composite schedule: ``{"start": epoch seconds, "duration_s",
    "rate_unit": "A"/"W", "periods": [(start_s, limit, phases or None), ...]}``
    (the adapter renders it in its protocol's form).

    Errata 3.28: "calculate the Composite Charging Schedule intervals, from the
    moment the request PDU is received: Time X, up to X + Duration". X is
    ``start_t`` floored to a whole second (``start``, which the adapter also
    reports as the schedule's start); period starts are whole seconds from X,
    limits have one decimal (rounded down: OCPP "Accepts at most one digit
    fraction"), consecutive equal periods are merged.

    ``unit`` "A" or "W" (anything else raises ``ProfileError``, as does a
    negative duration); None: W when every profile involved is in W, else A.
    ``local_limit_a``: the station's own limit for this EVSE in A (config,
    hardware), which caps every period and fills the times no profile covers
    (OCTT TC_067 step 12: with no profiles, "limit <The local limit of the
    Charging Station>"). EVSE 0: "the total expected power or current the
    Charge Point expects to consume from the grid" (errata 3.30): the
    station_max profiles capped by ``local_limit_a`` (pass the grid
    connection's limit). Other arguments as for ``limit_at``; without
    ``tx_start`` relative schedules start at X.
    """
    if unit not in (None, "A", "W"):
        raise ProfileError("the rate unit must be A or W, not %r" % (unit,))
    if duration_s < 0:
        raise ProfileError("duration must not be negative")
    profs = _as_profiles(profiles)
    groups = _select(profs, evse_id, tx_start is not None, tx_id)
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
            periods.append((off, limit, n_ph))
            last = (limit, n_ph)
        if nxt >= end:
            break
        new_off = math.ceil(nxt - start - 1e-9)
        off = new_off if new_off > off else off + 1
        if off >= duration_s:
            break
    return {"start": start, "duration_s": duration_s, "rate_unit": unit, "periods": periods}


def grid_schedule(station: dict, evses: list) -> dict:
    """The station's expected draw from the grid as one composite schedule: at every
    moment the sum of the EVSEs' composite schedules (``evses``), capped by the
    station-wide one (``station``: the station_max profiles and the grid's local
    limit, ``composite_schedule`` for EVSE 0). All in the same unit, from the same
    start, for the same duration. A TxDefaultProfile on every EVSE thus shows at EVSE 0
    times the number of EVSEs (OCPP 2.0.1 K08, OCTT TC_K_22)."""

    def at(schedule: dict, off: int):
        current = schedule["periods"][0][1]
        for start_s, limit, _n in schedule["periods"]:
            if start_s > off:
                break
            current = limit
        return current

    offsets = sorted({p[0] for s in [station] + list(evses) for p in s["periods"]})
    periods, last = [], None
    for off in offsets:
        limit = _floor_tenth(min(at(station, off), sum(at(s, off) for s in evses)))
        if limit != last:
            periods.append((off, limit, None))
            last = limit
    return {"start": station["start"], "duration_s": station["duration_s"], "rate_unit": station["rate_unit"],
            "periods": periods}
