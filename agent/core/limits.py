"""Charging limits on the hardware: the local limit, the charging profiles' limit and
its boundary timers, the shared station budget; the smart charging requests.

A part of ``Station`` (agent/core/station.py): its methods share the station's
state. Portable core: only the MicroPython asyncio subset (see STYLE.md).
"""

import asyncio
import logging

from agent.core.connector import Connector
from agent.core.profile_store import ChargingProfileStore
from agent.core.smart_charging import (ACCEPTED, DEFAULT_MAX_PERIODS, DEFAULT_MAX_PROFILES,
                                       DEFAULT_MAX_STACK_LEVEL, STORE_VERSION, composite_schedule, grid_schedule,
                                       limit_at)
from hal.runtime.storage import read_json, write_json_atomic

log = logging.getLogger(__name__)

CLOCK_CHECK_S = 60.0  # a boundary timer looks at least this often whether the wall clock was stepped
CLOCK_STEP_S = 1.0  # wall time moving this much more or less than monotonic time is a step (NTP, RTC)


def _profile_tx_id(tx):
    """The id a running transaction's tx profiles name it by: the central system's
    once it is known (OCPP 1.6: an integer; 2.0.1: the station's own ``tx.id``),
    before that the station's own (a 2.0.1 profile set before the start was
    confirmed; a 1.6 one cannot name a transaction without an id)."""
    return tx.backend_id if tx.backend_id is not None else tx.id


class ChargingLimits:
    """Charging limits on the hardware"""

    def _default_profile_store(self) -> ChargingProfileStore:
        """A profile store with the limits of the smart charging settings
        (their defaults when the station has no smart charging settings)."""
        return ChargingProfileStore(
            connector_count=len(self.connectors),
            max_stack_level=self.settings.get("profile_max_stack_level", DEFAULT_MAX_STACK_LEVEL),
            max_periods=self.settings.get("profile_max_periods", DEFAULT_MAX_PERIODS),
            max_profiles=self.settings.get("profile_max_installed", DEFAULT_MAX_PROFILES),
            allowed_units=tuple(self.settings.get("profile_rate_units", ("A", "W"))))

    def _load_profiles(self) -> None:
        data = read_json(self._profiles_path, None)
        migrated = False
        if isinstance(data, dict):
            migrated = (data.get("version") != STORE_VERSION and bool(data.get("profiles"))
                        and self._migrate_profiles is not None)
            log.info("%d charging profiles restored%s", self.charging_profiles.load(data, self._migrate_profiles),
                     " from an earlier format" if migrated else "")
        elif data is not None:
            log.warning("%s is not a charging profile store; starting without profiles", self._profiles_path)
        self._profiles_saved = None if migrated else self.charging_profiles.revision
        self._save_profiles()  # a migrated store: in the current format from now on

    def _save_profiles(self) -> None:
        """Persist the charging profiles if they changed (errata 3.37: they survive reboots)."""
        if self._profiles_path is None or self.charging_profiles.revision == self._profiles_saved:
            return
        try:
            write_json_atomic(self._profiles_path, self.charging_profiles.to_dict())
        except OSError as e:
            log.error("cannot save the charging profiles to %s: %s", self._profiles_path, e)
            return
        self._profiles_saved = self.charging_profiles.revision

    def current_limit_a(self, c: Connector) -> float:
        """The current this connector may offer now, before the controller's minimum."""
        return self._limit_and_next_change(c)[0]

    def _local_limit_a(self, c: Connector) -> float:
        """The connector's own limit: the controller's rating and ``[limits] max_current_a``."""
        limit = c.hw.evse.max_current_a
        if self.max_current_a > 0:
            limit = min(limit, self.max_current_a)
        return limit

    def _limit_and_next_change(self, c: Connector) -> tuple:
        """(the current connector ``c`` may offer now in A per phase, before the
        controller's minimum; the epoch time at which that may change, or None):
        the lowest of ``limit_sources``."""
        parts, next_change = self.limit_sources(c)
        limit = parts[0][1]
        for part in parts[1:]:
            if part[1] < limit:
                limit = part[1]
        return limit, next_change

    def limit_sources(self, c: Connector, *, name_profile: bool = False) -> tuple:
        """What limits connector ``c`` now: ([(source, limit_a, about)], the epoch time at
        which the profiles' limit may next change or None). The connector may offer the
        lowest. Sources:

        * ``"rating"``: the controller's rating; ``"config"``: ``[limits] max_current_a``;
        * ``"profile"``: the charging profiles' limit for the connector (``limit_at``: min
          of station_max and tx/tx_default); with ``name_profile`` ``about`` is the profile
          that alone gives it (the highest stack level first), else None;
        * ``"budget"``: on a charger with several connectors, an equal share of the
          station_max budget among the connectors that may draw current now (it limits
          "the power or current to be shared by all connectors", §3.13.1); ``about`` is
          (the budget in A, how many connectors share it).
        """
        hw = c.hw
        parts = [("rating", hw.evse.max_current_a, None)]
        if self.max_current_a > 0:
            parts.append(("config", self.max_current_a, None))
        profiles = self.charging_profiles.profiles()
        if not profiles:
            return parts, None
        now = self.clock.time()
        tx = c.transaction
        running = tx is not None and not tx.stopped
        tx_start = tx.start_time if running else None
        tx_id = _profile_tx_id(tx) if running else None
        profile_a, next_change = limit_at(profiles, c.id, now, tx_start, tx_id, hw.voltage_v, hw.phases)
        if profile_a is not None:
            which = None
            if name_profile:
                for p in sorted(profiles, key=lambda p: -p.stack_level):
                    alone = limit_at([p], c.id, now, tx_start, tx_id, hw.voltage_v, hw.phases)[0]
                    if alone is not None and abs(alone - profile_a) < 1e-6:
                        which = p
                        break
            parts.append(("profile", profile_a, which))
        if len(self.connectors) > 1:
            budget_a = limit_at(profiles, 0, now, None, None, hw.voltage_v, hw.phases)[0]
            if budget_a is not None:
                sharing = sum(1 for o in self.connectors if o is c or self._drawing.get(o.id))
                parts.append(("budget", budget_a / sharing, (budget_a, sharing)))
        return parts, next_change

    def _set_drawing(self, c: Connector, drawing: bool) -> None:
        """Note whether ``c`` may draw current; the others re-evaluate their share
        of a station_max budget when that changes."""
        if self._drawing.get(c.id, False) == drawing:
            return
        self._drawing[c.id] = drawing
        if not self._running or len(self.connectors) < 2:
            return
        if limit_at(self.charging_profiles.profiles(), 0, self.clock.time())[0] is None:
            return  # no budget to share now (one that starts later: every connector's timer fires then)
        for o in self.connectors:
            if o is not c and self._drawing.get(o.id):
                self._spawn(self._update(o))

    def _arm_profile_timer(self, c: Connector, at) -> None:
        """Re-evaluate ``c`` at the epoch time ``at`` (the next charging schedule
        boundary; None: no timer). Called with the connector's lock held, so the
        timer it replaces is asleep or waiting for the lock, never mid-command."""
        key = ("profile", c.id)
        if not self._running:
            at = None
        task = self._conn_tasks.get(key)
        alive = task is not None and not task.done()
        if alive and task is asyncio.current_task():  # the timer itself re-evaluating: it loops
            self._profile_timer_at[c.id] = at
            return
        if alive and self._profile_timer_at.get(c.id) == at:
            return
        self._profile_timer_at[c.id] = at
        if at is None:
            self._cancel(key)
        else:
            self._spawn(self._profile_timer(c), key=key)

    async def _profile_timer(self, c: Connector) -> None:
        """Sleep until the armed boundary (on the injected clock), then re-evaluate the
        connector. Boundaries are wall-clock times and sleeping is monotonic: a long wait
        is cut into CLOCK_CHECK_S pieces so that a stepped wall clock (a Pi without an
        RTC setting its time by NTP after boot) re-evaluates the limit at once."""
        clock = self.clock
        while True:
            at = self._profile_timer_at.get(c.id)
            if at is None:
                break
            remaining_s = at - clock.time()
            if remaining_s > 0:
                wall, mono = clock.time(), clock.monotonic()
                await clock.sleep(min(remaining_s, CLOCK_CHECK_S))
                step_s = (clock.time() - wall) - (clock.monotonic() - mono)
                if abs(step_s) < CLOCK_STEP_S:
                    continue
                log.info("connector %d: the wall clock moved %+.0f s; charging limit re-evaluated", c.id, step_s)
            self._profile_timer_at[c.id] = None
            await self._update(c)  # re-arms through _arm_profile_timer
        self._release(("profile", c.id))

    async def set_charging_profile(self, connector_id: int, profile: dict, own_transaction_ids: bool = False) -> str:
        """Install a charging profile (a profile dict, agent/core/smart_charging.py)
        for ``connector_id`` (0: the station): ``ACCEPTED`` or ``REJECTED``; raises
        ``ProfileError`` for a malformed profile or an unknown connector. The new
        limit reaches the EVSE controller before this returns.

        A tx profile names its transaction by the central system's id
        (``tx.backend_id``, OCPP 1.6), or with ``own_transaction_ids`` by the
        station's own ``tx.id`` (OCPP 2.0.1, known from the start on)."""
        tx = None
        if isinstance(connector_id, int) and 1 <= connector_id <= len(self.connectors):
            tx = self.connectors[connector_id - 1].transaction
            if tx is not None and tx.stopped:
                tx = None
        status = self.charging_profiles.install(connector_id, profile, now=self.clock.time(),
                                                transaction_id=(None if tx is None else
                                                                tx.id if own_transaction_ids else tx.backend_id),
                                                transaction_active=tx is not None)
        if status == ACCEPTED:
            await self._profiles_changed(self.connectors if connector_id == 0 else [self.connector(connector_id)])
        return status

    async def clear_charging_profile(self, profile_id: int | None = None, connector_id: int | None = None,
                                     purpose: str | None = None, stack_level: int | None = None) -> str:
        """Remove charging profiles (``purpose`` in neutral words): ``ACCEPTED``, or
        ``UNKNOWN`` when nothing matched."""
        status = self.charging_profiles.clear(profile_id=profile_id, evse_id=connector_id, purpose=purpose,
                                              stack_level=stack_level)
        if status == ACCEPTED:
            await self._profiles_changed(self.connectors)
        return status

    async def _profiles_changed(self, affected: list) -> None:
        """Enforce at once, then persist."""
        for c in affected:
            await self._update(c)
        self._save_profiles()

    def composite_schedule(self, connector_id: int, duration_s: int, unit: str | None = None,
                           sum_evses: bool = False) -> dict | None:
        """The composite schedule (``smart_charging.composite_schedule``) from now
        for ``duration_s``, in ``unit`` "A"/"W" (None: the profiles' own); None
        for an unknown connector. Connector 0 is the charger's grid view: the
        station_max profiles capped by the sum of the connectors' local limits;
        with ``sum_evses`` also capped by the sum of the connectors' own composite
        schedules (``smart_charging.grid_schedule``: what 2.0.1 reports for EVSE 0).
        Raises ``ProfileError`` for a bad unit."""
        if not isinstance(connector_id, int) or not 0 <= connector_id <= len(self.connectors):
            return None
        if connector_id == 0 and sum_evses:
            parts = [self.composite_schedule(n, duration_s, unit) for n in range(len(self.connectors) + 1)]
            if len({s["rate_unit"] for s in parts}) > 1:  # profiles in both units: compare in A
                parts = [self.composite_schedule(n, duration_s, "A") for n in range(len(self.connectors) + 1)]
            return grid_schedule(parts[0], parts[1:])
        tx_start = tx_id = None
        if connector_id == 0:
            hw = self.connectors[0].hw
            local_a = sum(self._local_limit_a(c) for c in self.connectors)
        else:
            c = self.connector(connector_id)
            hw = c.hw
            local_a = self._local_limit_a(c)
            tx = c.transaction
            if tx is not None and not tx.stopped:
                tx_start, tx_id = tx.start_time, _profile_tx_id(tx)
        return composite_schedule(self.charging_profiles.profiles(), connector_id, self.clock.time(), duration_s,
                                  unit, local_limit_a=local_a, tx_start=tx_start, tx_id=tx_id,
                                  voltage_v=hw.voltage_v, phases=hw.phases)
