"""Logins to the status page over real HTTP (agent/app/page_logins.py): a wrong
password and a session's first right one become security events in the real
``SecurityLog`` (never the password), and an address that keeps guessing is
answered 429 until its block runs out."""

import base64
import json
import logging

from agent.app.status_page import StatusPage
from agent.security.events import MAINTENANCE_LOGIN_ACCEPTED, MAINTENANCE_LOGIN_FAILED, SecurityLog
from hal.runtime.clock import Clock
from tests.app.test_status_page import fetch

PASSWORD = "page-secret"


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()}


def events(log: SecurityLog) -> list:
    return [(e.kind, json.loads(e.tech_info)) for e in log.events()]


async def page_with_log(tmp_path) -> tuple:
    """A page with a password and a security log, no agent behind it: a request that
    gets past the password is answered 404 at an unknown path."""
    security_log = SecurityLog(str(tmp_path / "security"), Clock())
    page = StatusPage(None, None, port=0, password=PASSWORD, security_log=security_log)
    await page.start()
    return page, security_log


async def test_logins_become_security_events_once_per_session(tmp_path):
    page, security_log = await page_with_log(tmp_path)
    url = page.url + "nothing-here"
    try:
        assert (await fetch(url)).status == 401  # the browser's first request: no attempt yet
        assert events(security_log) == []
        assert (await fetch(url, headers=basic("admin", "guess"))).status == 401
        assert (await fetch(url, headers={"Authorization": "Basic !!!"})).status == 401
        for _ in range(3):  # the page refreshes itself: one login, not three
            assert (await fetch(url, headers=basic("admin", PASSWORD))).status == 404
        assert (await fetch(url, headers=basic("installer", PASSWORD))).status == 404
        origin = "127.0.0.1"
        assert events(security_log) == [
            (MAINTENANCE_LOGIN_FAILED, {"user": "admin", "origin": origin}),
            (MAINTENANCE_LOGIN_FAILED, {"user": "", "origin": origin}),
            (MAINTENANCE_LOGIN_ACCEPTED, {"user": "admin", "origin": origin}),
            (MAINTENANCE_LOGIN_ACCEPTED, {"user": "installer", "origin": origin}),
        ]
        # After a pause longer than a session, the same user logs in anew.
        page.logins.session_s = 0.0
        assert (await fetch(url, headers=basic("admin", PASSWORD))).status == 404
        assert events(security_log)[-1] == (MAINTENANCE_LOGIN_ACCEPTED, {"user": "admin", "origin": origin})
        assert all(PASSWORD not in e.tech_info and "guess" not in e.tech_info for e in security_log.events())
    finally:
        await page.close()


async def test_an_address_that_keeps_guessing_is_turned_away(tmp_path, caplog):
    page, security_log = await page_with_log(tmp_path)
    url = page.url + "nothing-here"
    try:
        for n in range(4):
            assert (await fetch(url, headers=basic("admin", "guess-%d" % n))).status == 401
        r = await fetch(url, headers=basic("admin", "guess-4"))  # the fifth within a minute
        assert r.status == 429 and r.headers["Retry-After"] == "60"
        assert "5 wrong passwords from 127.0.0.1" in caplog.text
        # Blocked: even the right password is not looked at, and nothing more is logged.
        r = await fetch(url, headers=basic("admin", PASSWORD))
        assert r.status == 429 and "too many wrong passwords" in r.text
        logged = events(security_log)
        assert [kind for kind, _ in logged] == [MAINTENANCE_LOGIN_FAILED] * 5
        assert logged[-1][1] == {"user": "admin", "origin": "127.0.0.1", "blocked_s": 60.0}

        # The block runs out: the right password works (and the count starts again).
        page.logins._blocked["127.0.0.1"] = 0.0
        assert (await fetch(url, headers=basic("admin", PASSWORD))).status == 404
        assert events(security_log)[-1][0] == MAINTENANCE_LOGIN_ACCEPTED
        assert (await fetch(url, headers=basic("admin", "guess-5"))).status == 401
    finally:
        await page.close()


async def test_without_a_security_log_logins_are_checked_all_the_same(caplog):
    caplog.set_level(logging.INFO, logger="agent.app.page_logins")
    page = StatusPage(None, None, port=0, password=PASSWORD)
    await page.start()
    try:
        assert (await fetch(page.url + "x", headers=basic("admin", "no"))).status == 401
        assert (await fetch(page.url + "x", headers=basic("admin", PASSWORD))).status == 404
        assert "'admin' logged in from 127.0.0.1" in caplog.text
    finally:
        await page.close()


def test_the_tracker_stays_bounded():
    from agent.app.page_logins import LoginTracker

    tracker = LoginTracker(tracked_max=10)
    for n in range(100):
        tracker.failed("192.0.2.%d" % n, "u", now=float(n))
        tracker.accepted("198.51.100.%d" % n, "u", now=float(n))
    assert len(tracker._failures) <= 10 and len(tracker._sessions) <= 10


async def test_the_agents_page_logs_to_the_agents_security_log(tmp_path):
    from tests.app.test_status_page import start_rig

    rig, _cs1, _cs2 = await start_rig(tmp_path, extra_page='password = "%s"' % PASSWORD)
    try:
        url = rig.agent.status_page.url + "api/status"
        assert (await fetch(url, headers=basic("admin", "guess"))).status == 401
        assert (await fetch(url, headers=basic("admin", PASSWORD))).status == 200
        logins = [(kind, info) for kind, info in
                  ((e.kind, e.tech_info) for e in rig.agent.security.log.events()) if "login" in kind]
        assert logins == [(MAINTENANCE_LOGIN_FAILED, json.dumps({"user": "admin", "origin": "127.0.0.1"})),
                          (MAINTENANCE_LOGIN_ACCEPTED, json.dumps({"user": "admin", "origin": "127.0.0.1"}))]
    finally:
        await rig.close()
