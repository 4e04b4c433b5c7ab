"""Authorization: the local list and the cache first (or offline), the central system
otherwise; the energy a transaction of a not-accepted identifier may still deliver.

A part of ``Station`` (agent/core/station.py): its methods share the station's
state. Portable core: only the MicroPython asyncio subset (see STYLE.md).
"""

import logging

from agent.core import model
from agent.core.auth import effective, tag_key
from agent.core.connector import Connector
from agent.core.metering import energy_wh_of

log = logging.getLogger(__name__)

INVALID_ID_POLL_S = 1.0  # meter reads while charging on max_energy_on_invalid_id_wh
LOCAL_LIST, AUTH_CACHE = "local list", "authorization cache"  # where a local entry was found
TRANSACTION = "transaction"  # a transaction held for an identifier (customer_data)
POST_AUTHORIZE_DISABLED = {LOCAL_LIST: "local_list_disable_post_authorize",
                           AUTH_CACHE: "auth_cache_disable_post_authorize"}


class Authorization:
    """Authorization"""

    def _local_list_enabled(self) -> bool:
        return bool(self.settings.get("local_list_enabled", False))

    def _local_info(self, id_tag: str) -> model.IdTagInfo | None:
        """What the Local Authorization List, else the Authorization Cache, knows of a tag,
        with passed expiry dates applied (the list has priority, §3.5.3)."""
        return self._local_entry(id_tag)[0]

    def _local_entry(self, id_tag: str) -> tuple:
        """(what the list or the cache knows of a tag, LOCAL_LIST / AUTH_CACHE / None): expiry
        dates applied, cache entries older than auth_cache_lifetime_s gone."""
        now = self.clock.time()
        if self._local_list_enabled():
            info = self.local_list.get(id_tag)
            if info is not None:
                return effective(info, now), LOCAL_LIST
        if self.settings.get("auth_cache_enabled", False):
            info = self.auth_cache.get(id_tag, now, self.settings.get("auth_cache_lifetime_s", 0))
            if info is not None:
                return effective(info, now), AUTH_CACHE
        return None, None

    def id_tag_info_received(self, id_tag: str | None, info: model.IdTagInfo | None) -> None:
        """The central system answered about a tag (an authorization, or the answer to a
        transaction's start or end): update the Authorization Cache, unless the tag is in
        the Local Authorization List (§3.5.3)."""
        if not id_tag or info is None or not self.settings.get("auth_cache_enabled", False):
            return
        if self._local_list_enabled() and id_tag in self.local_list:
            listed = self.local_list.get(id_tag)
            if listed is not None and listed.status != info.status:
                # §3.5.3: the list is out of date; the central system should update it.
                log.warning("tag %s: the central system says %s, the local list %s (local_list_conflict)",
                            id_tag, info.status, listed.status)
                self.link.local_list_conflict(id_tag)
            return
        self.auth_cache.update(id_tag, info, self.clock.time())

    async def authorize(self, id_tag: str, token_kind: str | None = None) -> model.IdTagInfo:
        """Decide whether a tag may charge (1.6 §3.5, 2.0.1 C10-C15). Online: a valid entry
        in the Local Authorization List or the Authorization Cache starts at once with
        local_pre_authorize; an entry that is not valid is asked about again (post-authorize,
        2.0.1 C10.FR.03/C12.FR.05/C14.FR.03) unless its store's *_disable_post_authorize
        says not to; otherwise the central system decides and its answer is cached. With
        disable_remote_authorization only the list and the cache decide. Offline (or no
        answer): the local entry with local_authorize_offline, an unknown tag with
        offline_start_unknown_id; otherwise invalid. ``token_kind``: what the identifier is
        (model.TOKEN_*; a protocol that names it asks with it)."""
        local, source = self._local_entry(id_tag)
        if self.link.online:
            if self.settings.get("disable_remote_authorization", False):
                log.info("tag %s: %s from the local list or cache (no remote authorization)", id_tag,
                         local.status if local is not None else "unknown")
                return local if local is not None else model.IdTagInfo(model.AUTH_INVALID)
            if local is not None and self.settings.get("local_pre_authorize", False):
                if local.accepted:
                    log.info("tag %s: pre-authorized locally", id_tag)
                    return local
                if self.settings.get(POST_AUTHORIZE_DISABLED[source], False):
                    log.info("tag %s: %s in the %s, not asked again", id_tag, local.status, source)
                    return local
            info = await self.link.authorize(id_tag, token_kind)
            if info is not None:
                self.id_tag_info_received(id_tag, info)
                return info
            log.info("no answer from the central system about %s: deciding offline", id_tag)
            local = self._local_info(id_tag)
        if local is not None:
            if not local.accepted:
                log.info("tag %s: %s in the local list or cache", id_tag, local.status)
                return local  # known and not valid (or expired): never accepted offline (§3.5.4)
            if self.settings.get("local_authorize_offline", False):
                log.info("tag %s: authorized offline from the local list or cache", id_tag)
                return local
        if self.settings.get("offline_start_unknown_id", False):
            log.info("tag %s: accepted offline (offline_start_unknown_id)", id_tag)
            return model.IdTagInfo(model.AUTH_ACCEPTED)
        log.info("tag %s: cannot be authorized offline", id_tag)
        return model.IdTagInfo(model.AUTH_INVALID)

    def is_master_pass(self, info: model.IdTagInfo) -> bool:
        """Whether an accepted identifier belongs to the master pass group (master_pass_group_id,
        2.0.1 AuthCtrlr.MasterPassGroupId): it may stop every transaction, never start one (C16)."""
        group = self.settings.get("master_pass_group_id", "")
        return bool(group) and info.accepted and bool(info.parent_id_tag) and tag_key(info.parent_id_tag) == tag_key(group)

    def _running_transactions(self) -> list:
        return [c for c in self.connectors if c.transaction is not None and not c.transaction.stopped]

    async def _master_pass_stop(self, id_tag: str) -> bool:
        """A master pass was presented: the station has no UI to choose a transaction, so every
        running one ends (C16.FR.02), reason master_pass. False when none was running."""
        running = self._running_transactions()
        for c in running:
            log.info("connector %d: stopped by the master pass %s", c.id, id_tag)
            await self.stop_transaction(c.id, model.REASON_MASTER_PASS, id_tag=id_tag)
        return bool(running)

    def clear_cache(self) -> bool:
        """Clear the authorization cache: False if it could not be cleared."""
        return self.auth_cache.clear()

    def customer_data(self, id_tag: str, clear: bool = False) -> list:
        """What the station holds about the customer presenting ``id_tag`` (a privacy request):
        (where, what, cleared) triples, where = AUTH_CACHE or LOCAL_LIST with the IdTagInfo kept
        (expiry dates as stored), or TRANSACTION with a Transaction of that identifier still held
        (running, or its messages not yet delivered; the journal keeps nothing once they are).
        ``clear`` removes the cache entry; the local list is the central system's to change
        (its list updates) and the transactions are owed to it (billing), so both stay."""
        found = []
        cached = self.auth_cache.get(id_tag)  # no lifetime check: an aged entry is data held too
        if cached is not None:
            found.append((AUTH_CACHE, cached, clear and self.auth_cache.remove(id_tag)))
        listed = self.local_list.get(id_tag)
        if listed is not None:
            found.append((LOCAL_LIST, listed, False))
        key = tag_key(id_tag)
        held = [c.transaction for c in self.connectors if c.transaction is not None]
        held += [e.tx for e in self.outbox.entries() if all(e.tx is not t for t in held)]
        for tx in held:
            if key in (tag_key(tx.id_tag or ""), tag_key(tx.stop_id_tag or "")):
                found.append((TRANSACTION, tx, False))
        return found

    def local_list_version(self, empty_is_version_0: bool = True) -> int:
        """The local list's version: -1 when the list is not supported or not enabled; 0 when
        empty with ``empty_is_version_0`` (1.6), else the last accepted update's (2.0.1)."""
        if not self._local_list_enabled():
            return -1
        return self.local_list.version if empty_is_version_0 else self.local_list.stored_version

    def send_local_list(self, update_type: str, version: int, entries: list, empty_is_version_0: bool = True) -> str:
        """Update the local list; ``entries`` are (idTag, IdTagInfo or None) pairs. Returns the
        outcome. ``empty_is_version_0``: as for ``local_list_version``."""
        if not self._local_list_enabled():
            return model.NOT_SUPPORTED
        status = self.local_list.apply(update_type, version, entries, self.settings.get("local_list_max_entries"),
                                       self.settings.get("local_list_max_per_message"),
                                       empty_is_version_0=empty_is_version_0)
        log.info("local list update (%s) to version %d, %d entries: %s", update_type, version, len(entries), status)
        return status

    def _invalid_id_energy_left(self, c: Connector, tx: model.Transaction) -> bool:
        """max_energy_on_invalid_id_wh: a transaction whose tag the central system did not accept
        may deliver this much energy (from its start) before energy delivery stops."""
        limit = self.settings.get("max_energy_on_invalid_id_wh", 0)
        energy = energy_wh_of(c.last_reading)
        if limit <= 0 or energy is None or energy - tx.meter_start_wh >= limit:
            return False
        self._spawn_once(("invalid-id", c.id), self._watch_invalid_id_energy, c, tx)
        return True

    async def _watch_invalid_id_energy(self, c: Connector, tx: model.Transaction) -> None:
        """Read the meter while charging on max_energy_on_invalid_id_wh; re-evaluate at the limit."""
        while c.transaction is tx and not tx.stopped:
            await self.clock.sleep(INVALID_ID_POLL_S)
            await self._read_meter(c)
            energy = energy_wh_of(c.last_reading)
            if energy is not None and energy - tx.meter_start_wh >= self.settings.get("max_energy_on_invalid_id_wh", 0):
                log.info("connector %d: the energy allowed for an invalid identifier is reached; energy delivery stops", c.id)
                break
        self._release(("invalid-id", c.id))
        await self._update(c)
