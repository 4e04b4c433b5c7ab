"""The installed charging profiles: setting, clearing and persisting them with the
rules of the engine in agent/core/smart_charging.py (which evaluates them).

No I/O: ``to_dict()``/``load()`` give and take plain JSON for the station to persist.
"""

import logging
import math

from agent.core.smart_charging import (ACCEPTED, REJECTED, UNKNOWN, STORE_VERSION, DEFAULT_MAX_STACK_LEVEL,
                                       DEFAULT_MAX_PERIODS, DEFAULT_MAX_PROFILES, PURPOSE_STATION_MAX, PURPOSE_TX,
                                       PURPOSE_INDEX, KIND_RECURRING, KIND_RELATIVE, RATE_UNITS, Profile,
                                       ProfileError, compile_profile)

log = logging.getLogger(__name__)


def _copy(obj):
    if isinstance(obj, dict):
        return {k: _copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_copy(v) for v in obj]
    return obj


class ChargingProfileStore:
    """The installed charging profiles, with the semantics of setting and
    clearing them. No I/O: ``to_dict()``/``load()`` give and take plain JSON
    for the caller to persist (errata 3.37: profiles "SHALL be persistent
    across reboots/power cycles"). ``revision`` goes up on every change.

    Limits (in OCPP 1.6, read-only configuration keys, §9.4):
    ``max_stack_level``, ``max_periods`` (per schedule), ``max_profiles``
    (installed), ``allowed_units`` (the rate units accepted: "A", "W").
    """

    def __init__(self, *, connector_count: int, max_stack_level: int = DEFAULT_MAX_STACK_LEVEL,
                 max_periods: int = DEFAULT_MAX_PERIODS, max_profiles: int = DEFAULT_MAX_PROFILES,
                 allowed_units: tuple = RATE_UNITS) -> None:
        self.connector_count = connector_count  # EVSEs 1..connector_count (0: the station)
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
        """The installed profiles as profile dicts (copies)."""
        return [_copy(p.data) for p in self._profiles]

    # -- validation

    def _check_evse(self, evse_id) -> None:
        if not isinstance(evse_id, int) or isinstance(evse_id, bool):
            raise ProfileError("the EVSE id must be an integer, not %r" % (evse_id,))
        if not 0 <= evse_id <= self.connector_count:
            # errata 3.39: an unknown EVSE is an error of the request, not a rejection
            raise ProfileError("EVSE %d does not exist" % evse_id)

    def rejection(self, p: Profile, *, transaction_id=None, transaction_active: bool | None = None) -> str | None:
        """Why ``p`` must be rejected, or None."""
        if transaction_active is None:
            transaction_active = transaction_id is not None
        if p.stack_level < 0 or p.stack_level > self.max_stack_level:
            return "stack level %d is outside 0..%d (max_stack_level)" % (p.stack_level, self.max_stack_level)
        if len(p.starts) > self.max_periods:
            return "%d periods, more than max_periods %d" % (len(p.starts), self.max_periods)
        unit = "W" if p.is_w else "A"
        if unit not in self.allowed_units:
            return "rate unit %s is not one of the allowed_units %s" % (unit, "/".join(self.allowed_units))
        if p.starts[0] != 0:
            # errata 3.45: "The startPeriod of the first ChargingSchedulePeriod in a ChargingSchedule SHALL
            # always be 0."
            return "the first period starts at %d, not 0" % p.starts[0]
        for a, b in zip(p.starts, p.starts[1:]):
            if b <= a:
                return "period starts must increase (%d after %d)" % (b, a)
        for limit in p.limits:
            if limit < 0:
                return "negative limit %r" % limit
        for n in p.phases:
            if n is not None and not 1 <= n <= 3:
                return "phases %d is not 1..3" % n
        if p.duration is not None and p.duration < 0:
            return "negative duration"
        if p.min_rate is not None and p.min_rate < 0:
            return "negative min_rate"
        if p.kind == KIND_RECURRING and not p.recurrence_s:
            return "a recurring profile needs a recurrency"
        if p.valid_to <= p.valid_from:
            return "valid_to is not after valid_from"
        if p.purpose == PURPOSE_STATION_MAX and p.evse_id != 0:
            # §3.13.1: the station's maximum "can only be set at Charge Point ConnectorId 0"
            return "a station_max profile on EVSE %d (only 0)" % p.evse_id
        if p.purpose == PURPOSE_TX:
            if p.evse_id == 0:
                # §3.13.1: a transaction's profile "SHALL only be set at Charge Point ConnectorId >0"
                return "a tx profile on EVSE 0"
            if not transaction_active:
                # §3.13.1: without a transaction on its connector the station "SHALL discard it and return an
                # error status"
                return "no transaction on EVSE %d" % p.evse_id
            if p.transaction_id is not None and p.transaction_id != transaction_id:
                # OCTT TC_058_2: a profile for another transaction is rejected
                return "transaction %r is not the running transaction %r" % (p.transaction_id, transaction_id)
        return None

    # -- changes

    def install(self, evse_id: int, profile: dict, *, now: float, transaction_id=None,
                transaction_active: bool | None = None) -> str:
        """Install ``profile`` (a profile dict; its ``evse_id`` is set to
        ``evse_id``): ``ACCEPTED`` or ``REJECTED`` (the reason is logged and kept
        in ``last_rejection``); raises ``ProfileError`` for a malformed profile
        or an unknown EVSE.

        ``transaction_id``/``transaction_active``: the transaction running on
        ``evse_id`` (active defaults to "an id was given"; pass
        ``transaction_active=True`` without an id for a transaction whose id
        is not known yet, e.g. the profile of a remote start whose transaction
        the central system has not confirmed, then ``bind_transaction`` when
        it is). A tx profile without transaction_id is bound to
        ``transaction_id``.

        §5.16.3: a profile with the same id, or the same combination of stack
        level and purpose, "SHALL replace the existing charging profile" —
        same stack level/purpose counts per EVSE (an
        EVSE-N tx_default replaces EVSE 0's "only for that specific
        connector"). An absolute or recurring profile without a schedule start
        gets ``now`` (floored to the second).
        """
        self._check_evse(evse_id)
        if not isinstance(profile, dict):
            raise ProfileError("a profile must be a dict")
        data = _copy(profile)
        data["evse_id"] = evse_id
        p = compile_profile(data)
        reason = self.rejection(p, transaction_id=transaction_id, transaction_active=transaction_active)
        replaced = [q for q in self._profiles if q.id == p.id or (
            q.evse_id == p.evse_id and q.purpose == p.purpose and q.stack_level == p.stack_level)]
        if reason is None and len(self._profiles) - len(replaced) + 1 > self.max_profiles:
            reason = "max_profiles (%d) reached" % self.max_profiles
        if reason is not None:
            self.last_rejection = reason
            log.info("charging profile %r on EVSE %d rejected: %s", p.id, evse_id, reason)
            return REJECTED
        if p.kind != KIND_RELATIVE and p.start is None:
            data["schedule"]["start"] = math.floor(now)
        if p.purpose == PURPOSE_TX and p.transaction_id is None and transaction_id is not None:
            data["transaction_id"] = transaction_id
        p = compile_profile(data)
        self._profiles = [q for q in self._profiles if q not in replaced]
        self._profiles.append(p)
        self.revision += 1
        log.info("charging profile %r (%s, stack %d) installed on EVSE %d%s", p.id, data["purpose"],
                 p.stack_level, evse_id, (", replacing %s" % [q.id for q in replaced]) if replaced else "")
        return ACCEPTED

    def check_remote_start(self, profile: dict, evse_id: int | None = None) -> str:
        """Whether the profile given with a remote start can be used
        (ACCEPTED/REJECTED; nothing is installed): §5.16.2 it must be a tx
        profile that names no transaction (errata 3.41); OCTT TC_060 expects a
        rejection for any other purpose. Install it with
        ``install(..., transaction_active=True)`` when the transaction starts."""
        evse = 1 if evse_id is None or evse_id == 0 else evse_id
        self._check_evse(evse)
        if not isinstance(profile, dict):
            raise ProfileError("a profile must be a dict")
        p = compile_profile(dict(profile, evse_id=evse))
        reason = None
        if p.purpose != PURPOSE_TX:
            reason = "the profile of a remote start must be a tx profile"
        elif p.transaction_id is not None:
            reason = "the profile of a remote start must not name a transaction"
        else:
            reason = self.rejection(p, transaction_active=True)
        if reason is not None:
            self.last_rejection = reason
            log.info("remote start charging profile rejected: %s", reason)
            return REJECTED
        return ACCEPTED

    def clear(self, *, profile_id: int | None = None, evse_id: int | None = None,
              purpose: str | None = None, stack_level: int | None = None) -> str:
        """Remove profiles: ``ACCEPTED`` when at least one was removed, else
        ``UNKNOWN`` ("No Charging Profile(s) were found matching the request",
        §7.21). Errata 3.25/3.26: "If no fields are provided, then all charging
        profiles will be cleared. If id is specified, then all other fields are
        ignored"; otherwise the given fields must all match (logical AND).
        An unknown ``purpose`` raises ``ProfileError``."""
        if purpose is not None and purpose not in PURPOSE_INDEX:
            raise ProfileError("purpose %r is not one of %s" % (purpose, "/".join(PURPOSE_INDEX)))
        if profile_id is not None:
            gone = [p for p in self._profiles if p.id == profile_id]
        else:
            code = None if purpose is None else PURPOSE_INDEX[purpose]
            gone = [p for p in self._profiles
                    if (evse_id is None or p.evse_id == evse_id)
                    and (code is None or p.purpose == code)
                    and (stack_level is None or p.stack_level == stack_level)]
        if not gone:
            return UNKNOWN
        self._profiles = [p for p in self._profiles if p not in gone]
        self.revision += 1
        log.info("charging profiles cleared: %s", [p.id for p in gone])
        return ACCEPTED

    def bind_transaction(self, evse_id: int, transaction_id) -> None:
        """The transaction on ``evse_id`` is now known as ``transaction_id``:
        unbound tx profiles there now carry it, so a later profile for it with
        the same stack level replaces them (errata 3.42)."""
        changed = False
        for i, p in enumerate(self._profiles):
            if p.purpose == PURPOSE_TX and p.evse_id == evse_id and p.transaction_id is None:
                p.data["transaction_id"] = transaction_id
                self._profiles[i] = compile_profile(p.data)
                changed = True
        if changed:
            self.revision += 1

    def transaction_ended(self, evse_id: int) -> list:
        """Remove the tx profiles of ``evse_id`` (§3.13.1 "After the transaction
        is stopped, the profile SHOULD be deleted"; §7.10 such a profile "SHALL
        cease to be valid when the transaction terminates"). Call it too when a
        remote start never became a transaction, and at boot for EVSEs with no
        running transaction. Returns the removed profile ids."""
        gone = [p for p in self._profiles if p.purpose == PURPOSE_TX and p.evse_id == evse_id]
        if gone:
            self._profiles = [p for p in self._profiles if p not in gone]
            self.revision += 1
        return [p.id for p in gone]

    # -- persistence

    def to_dict(self) -> dict:
        """Plain JSON: ``{"version": STORE_VERSION, "profiles": [profile dicts…]}``."""
        return {"version": STORE_VERSION, "profiles": self.entries()}

    def load(self, data: dict, migrate=None) -> int:
        """Replace the contents with ``to_dict()`` output. Data of another
        version goes through ``migrate(data)`` first, which returns this
        version's (an adapter's converter: the core cannot read a protocol's
        JSON); without one it is ignored. Profiles that no longer compile are
        dropped with a warning (limits are not re-checked: a profile once
        accepted stays). Returns the number loaded."""
        data = data or {}
        if data.get("version") != STORE_VERSION and data.get("profiles"):
            if migrate is None:
                log.warning("charging profiles stored in format %r, which this station cannot read: ignored",
                            data.get("version"))
                data = {}
            else:
                data = migrate(data) or {}
        profiles = []
        for d in data.get("profiles", ()):
            try:
                profiles.append(compile_profile(_copy(d)))
            except ProfileError as e:
                log.warning("dropping a stored charging profile: %s", e)
        self._profiles = profiles
        self.revision += 1
        return len(profiles)
