"""Offline authorization: the Authorization Cache and the Local Authorization List.

Both are kept in ``data_dir`` (``auth-cache.json``, ``local-list.json``),
written atomically, so they survive reboots, resets and power cuts. The
station decides when to use them (OCPP 1.6 §3.5); this module only stores and
answers. IdTokens are case-insensitive (CiString20, errata 3.73): lookups
ignore case.
"""

import logging

from agent.core import model
from agent.core.isotime import parse_datetime
from hal.runtime.storage import read_json, write_json_atomic

log = logging.getLogger(__name__)

DEFAULT_CACHE_SIZE = 1000
VALID_STATUSES = (model.AUTH_ACCEPTED, model.AUTH_CONCURRENT)  # "valid" in §3.5.1 / §3.5.2

# Outcomes of a local list update, and its kinds (a full list or changes to it).
UPDATE_ACCEPTED = model.ACCEPTED
UPDATE_FAILED = "failed"
UPDATE_NOT_SUPPORTED = model.NOT_SUPPORTED
UPDATE_VERSION_MISMATCH = "version_mismatch"
FULL, DIFFERENTIAL = "full", "differential"
UPDATED = "updated"  # a cache entry's key: when (epoch s) its information was last updated


def tag_key(id_tag: str) -> str:
    """The lookup key of an IdToken (case-insensitive). MicroPython's str has no
    casefold(); its lower() folds ASCII, which is what tags are made of."""
    casefold = getattr(id_tag, "casefold", None)
    return casefold() if casefold is not None else id_tag.lower()


def expiry_epoch(expiry_date: str | None) -> float | None:
    """Seconds since the epoch of an OCPP dateTime (UTC when it has no offset), or None."""
    if not expiry_date:
        return None
    try:
        return parse_datetime(expiry_date)
    except ValueError:
        return None


def _info_to_dict(info: model.IdTagInfo) -> dict:
    return {"status": info.status, "expiryDate": info.expiry_date, "parentIdTag": info.parent_id_tag}


def _info_from_dict(d: dict) -> model.IdTagInfo:
    # model.neutral: files of releases before 0.2 hold statuses in their 1.6 spelling
    return model.IdTagInfo(model.neutral(d.get("status", model.AUTH_INVALID)), d.get("expiryDate"),
                           d.get("parentIdTag"))


def effective(info: model.IdTagInfo | None, now: float) -> model.IdTagInfo | None:
    """``info`` with status Expired once the expiry date of a valid entry has passed (§3.5.1)."""
    if info is None:
        return None
    expires = expiry_epoch(info.expiry_date)
    if info.status in VALID_STATUSES and expires is not None and expires <= now:
        return model.IdTagInfo(model.AUTH_EXPIRED, info.expiry_date, info.parent_id_tag)
    return info


def is_valid(info: model.IdTagInfo | None, now: float) -> bool:
    info = effective(info, now)
    return info is not None and info.status in VALID_STATUSES


class AuthorizationCache:
    """The latest IdTagInfo the central system gave for each tag (§3.5.1).

    When full, NOT-valid entries go first, then the least recently updated valid
    ones. Each change is written at once (an unchanged, untimed answer writes
    nothing); a write that fails is logged and the cache keeps working from memory.
    """

    def __init__(self, path: str | None, max_entries: int = DEFAULT_CACHE_SIZE) -> None:
        self.path = path
        self.max_entries = max_entries
        self._entries: dict = {}  # tag key -> info dict, oldest first
        data = read_json(path, {}) if path else {}
        rows = data.get("entries") if isinstance(data, dict) else None
        for row in rows if isinstance(rows, list) else []:
            if (isinstance(row, list) and len(row) == 2 and isinstance(row[0], str)
                    and isinstance(row[1], dict)):
                self._entries[row[0]] = row[1]

    def get(self, id_tag: str, now: float | None = None, lifetime_s: int = 0) -> model.IdTagInfo | None:
        """The entry of ``id_tag``; with ``lifetime_s`` > 0 an entry whose information was last
        updated more than that long before ``now`` is removed instead (2.0.1 AuthCacheLifeTime,
        C10.FR.10), unless the entry has an expiry date of its own, which rules instead
        (cacheExpiryDateTime, C10.FR.13, errata 2025-01). Entries written before updates were
        timed do not age."""
        key = tag_key(id_tag)
        d = self._entries.get(key)
        if d is None:
            return None
        updated = d.get(UPDATED)
        if (lifetime_s > 0 and now is not None and not d.get("expiryDate") and isinstance(updated, (int, float))
                and now - updated > lifetime_s):
            log.info("authorization cache: %s not updated for %d s: removed", id_tag, int(now - updated))
            del self._entries[key]
            self._save()
            return None
        return _info_from_dict(d)

    def update(self, id_tag: str, info: model.IdTagInfo, now: float | None = None) -> None:
        """Keep the central system's latest answer about ``id_tag``, timed ``now`` (its lifetime
        starts again: an unchanged answer is written too when timed)."""
        key = tag_key(id_tag)
        d = _info_to_dict(info)
        if now is not None:
            d[UPDATED] = now
        if self._entries.get(key) == d:
            return
        self._entries.pop(key, None)
        self._entries[key] = d  # dicts keep insertion order: last is most recent
        self._evict(key, now)
        self._save()

    def _evict(self, keep: str, now: float | None) -> None:
        excess = len(self._entries) - self.max_entries
        if excess <= 0:
            return
        at = now if now is not None else 0.0
        not_valid = [k for k, d in self._entries.items()
                     if k != keep and not is_valid(_info_from_dict(d), at)]
        for k in not_valid[:excess]:
            del self._entries[k]
        excess = len(self._entries) - self.max_entries
        for k in [k for k in self._entries if k != keep][:max(0, excess)]:
            del self._entries[k]

    def clear(self) -> bool:
        """Empty the cache; False if that could not be made durable."""
        self._entries = {}
        return self._save()

    def remove(self, id_tag: str) -> bool:
        """Forget ``id_tag`` (a customer's request to clear their data); False if it had no entry."""
        if self._entries.pop(tag_key(id_tag), None) is None:
            return False
        self._save()
        return True

    def __len__(self) -> int:
        return len(self._entries)

    def _save(self) -> bool:
        if not self.path:
            return True
        try:
            write_json_atomic(self.path, {"entries": [[k, d] for k, d in self._entries.items()]})
        except OSError as e:
            log.error("cannot write the authorization cache %s: %s", self.path, e)
            return False
        return True


class LocalAuthList:
    """The Local Authorization List the central system manages with its list updates (1.6 §3.5.2, §5.15).

    ``version`` is the list's version as the central system reads it: 0 while the list is empty.
    """

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._version = 0
        self._entries: dict = {}  # tag key -> info dict
        data = read_json(path, {}) if path else {}
        if isinstance(data, dict):
            entries = data.get("entries")
            if isinstance(entries, dict):
                self._entries = {k: d for k, d in entries.items() if isinstance(k, str) and isinstance(d, dict)}
            try:
                self._version = int(data.get("version", 0))
            except (TypeError, ValueError):
                self._version = 0

    @property
    def version(self) -> int:
        """The version as OCPP 1.6 reports it: 0 while the list is empty (1.6 §5.10)."""
        return self._version if self._entries else 0

    @property
    def stored_version(self) -> int:
        """The version of the last update accepted, even one that left the list empty (2.0.1
        reports it so: OCTT TC_D_04 expects a full update's version after an empty list)."""
        return self._version

    def get(self, id_tag: str) -> model.IdTagInfo | None:
        d = self._entries.get(tag_key(id_tag))
        return _info_from_dict(d) if d is not None else None

    def __contains__(self, id_tag: str) -> bool:
        return tag_key(id_tag) in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def apply(self, update_type: str, version: int, entries: list, max_length: int,
              max_send: int | None = None, empty_is_version_0: bool = True) -> str:
        """A list update. ``entries``: (idTag, IdTagInfo or None) pairs; None deletes
        (Differential only). Returns the OCPP UpdateStatus; nothing changes unless Accepted.
        A differential update must bring a newer version than ``version`` (1.6, with
        ``empty_is_version_0``) or ``stored_version`` (2.0.1)."""
        if max_send is not None and len(entries) > max_send:
            log.info("local list update: %d entries, more than the %d one update may have", len(entries), max_send)
            return UPDATE_FAILED
        current = self.version if empty_is_version_0 else self._version
        if update_type == DIFFERENTIAL and version <= current:
            log.info("local list update: differential version %d <= current %d", version, current)
            return UPDATE_VERSION_MISMATCH
        if version < 1 and not (update_type == FULL and version == 0 and not entries):
            return UPDATE_FAILED  # errata 3.52: 0 and -1 are not list versions (Full 0 + empty = clear)
        keys = [tag_key(tag) for tag, _info in entries]
        if len(set(keys)) != len(keys):
            log.info("local list update: duplicate identifiers")
            return UPDATE_FAILED
        new = {} if update_type == FULL else dict(self._entries)
        for key, (_tag, info) in zip(keys, entries):
            if info is None:
                if update_type == FULL:
                    return UPDATE_FAILED  # a full list entry needs its IdTagInfo
                new.pop(key, None)
            else:
                new[key] = _info_to_dict(info)
        if len(new) > max_length:
            log.info("local list update: %d entries, more than the list may hold (%d)", len(new), max_length)
            return UPDATE_FAILED
        if self.path:
            try:
                write_json_atomic(self.path, {"version": version, "entries": new})
            except OSError as e:
                log.error("cannot write the local authorization list %s: %s", self.path, e)
                return UPDATE_FAILED
        self._entries, self._version = new, version
        return UPDATE_ACCEPTED
