"""The authorization cache and the local authorization list (agent/core/auth.py), on their own."""

import pytest

from agent.core import model
from agent.core.auth import AuthorizationCache, LocalAuthList
from agent.core.isotime import format_datetime

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def iso(ts: float) -> str:
    return format_datetime(ts)


def test_local_list_rules(tmp_path):
    path = str(tmp_path / "list.json")
    lst = LocalAuthList(path)
    ok = model.IdTagInfo(model.AUTH_ACCEPTED)
    assert lst.version == 0
    assert lst.apply("differential", 0, [], 10) == "version_mismatch"
    assert lst.apply("full", -1, [], 10) == "failed"
    assert lst.apply("full", 4, [("A", ok), ("B", ok)], 10) == "accepted"
    assert lst.apply("full", 5, [("A", ok), ("B", ok), ("C", ok)], 2) == "failed"  # LocalAuthListMaxLength
    assert lst.apply("differential", 5, [("C", ok)], 10, max_send=0) == "failed"  # SendLocalListMaxLength
    assert lst.apply("differential", 5, [("C", ok)], 2) == "failed"  # the result would be too long
    assert lst.apply("differential", 5, [("c", ok), ("a", None)], 2) == "accepted"
    assert sorted(LocalAuthList(path)._entries) == ["b", "c"] and LocalAuthList(path).version == 5
    assert lst.apply("full", 6, [], 10) == "accepted"
    assert lst.version == 0 and LocalAuthList(path).version == 0


def test_local_list_write_failure_is_failed_and_keeps_the_list(tmp_path):
    lst = LocalAuthList(str(tmp_path / "missing-dir" / "list.json"))
    assert lst.apply("full", 1, [("A", model.IdTagInfo(model.AUTH_ACCEPTED))], 10) == "failed"
    assert lst.version == 0 and lst.get("A") is None


def test_cache_evicts_not_valid_first_then_oldest(tmp_path):
    path = str(tmp_path / "cache.json")
    cache = AuthorizationCache(path, max_entries=3)
    now = START
    cache.update("A", model.IdTagInfo(model.AUTH_ACCEPTED), now)
    cache.update("B", model.IdTagInfo(model.AUTH_BLOCKED), now)
    cache.update("C", model.IdTagInfo(model.AUTH_ACCEPTED, expiry_date=iso(START - 1)), now)  # expired
    cache.update("D", model.IdTagInfo(model.AUTH_ACCEPTED), now)
    assert cache.get("B") is None and cache.get("C") is not None  # Blocked first (the oldest not-valid)
    cache.update("E", model.IdTagInfo(model.AUTH_ACCEPTED), now)
    assert cache.get("C") is None  # then the expired one
    cache.update("F", model.IdTagInfo(model.AUTH_ACCEPTED), now)
    assert cache.get("A") is None  # then the oldest valid one
    again = AuthorizationCache(path, max_entries=3)
    assert [k for k in again._entries] == ["d", "e", "f"]  # order survives a reload
    assert again.get("f").status == "accepted" and again.get("F") is not None


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b'{"entries": {"x": 1}}', b'{"entries": [[1, 2], "x"]}'])
def test_corrupt_files_start_empty(tmp_path, content):
    for cls in (AuthorizationCache, LocalAuthList):
        path = tmp_path / ("%s.json" % cls.__name__)
        path.write_bytes(content)
        store = cls(str(path))
        assert len(store) == 0
