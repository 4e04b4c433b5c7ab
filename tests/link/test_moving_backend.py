"""Moving a running charger to another central system, and rolling back (issue 5).

The real agent on the simulated board, two (or three) TestCentralSystems on
loopback with real websockets, virtual time for the fallback timer and the
reconnect backoff. The agent reads a real configuration file, so the CLI
(``ocpp-agent csms …`` / ``config …``, run in a thread as a shell would run
it) edits the file and talks to the agent over its control socket.
"""

import asyncio
import base64
import functools
import json
import logging
import os
import sqlite3
import stat

import pytest

from agent.app import cli
from hal.runtime.clock import VirtualClock
from agent.app.config import load_config
from agent.link.endpoint import EndpointSettings, EndpointState
from agent.store.journal import TransactionJournal
from agent.app.runner import Agent
from agent.link.switch import SECURITY_EVENT, SwitchError
from tests import harness
from tests.harness import tls_proxy_for, validate_agent_frames
from tools.csms import IN, TestCentralSystem

FALLBACK_S = 60
CONFIG = """# the charger in the garage
[station]
id = "%(id)s"            # as the backend knows it
data_dir = "data"

[csms]
url = "%(url)s"   # the backend
%(extra)s
reconnect_initial_s = 1.0
reconnect_max_s = 4.0
fallback_timeout_s = %(fallback)d

[status_page]
enabled = false

[ocpp]
WebSocketPingInterval = 0
MeterValueSampleInterval = 60
AllowOfflineTxForUnknownId = true
LocalAuthorizeOffline = true
"""
# Wait (real time) for a condition; with ``clock=``, virtual time moves on by ``step_s`` meanwhile.
until = functools.partial(harness.until, poll_s=0.01)


def write_config(tmp_path, url: str, station_id: str = "CP001", extra: str = "", fallback: int = FALLBACK_S) -> str:
    path = str(tmp_path / "agent.toml")
    with open(path, "w") as f:
        f.write(CONFIG % {"id": station_id, "url": url, "extra": extra, "fallback": fallback})
    return path


async def run_cli(*argv, stdin: str | None = None):
    """``ocpp-agent ARGV`` in a thread (it runs its own event loop), as from a shell."""
    import contextlib
    import io
    import sys

    def call():
        out, err = io.StringIO(), io.StringIO()
        old_stdin = sys.stdin
        if stdin is not None:
            sys.stdin = io.StringIO(stdin)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = cli.main(list(argv))
                except SystemExit as e:
                    code = e.code
        finally:
            sys.stdin = old_stdin
        return code, out.getvalue(), err.getvalue()

    return await asyncio.to_thread(call)


class Rig:
    """An agent reading ``agent.toml`` in ``tmp_path`` and the central systems it may use."""

    def __init__(self, tmp_path, clock=None) -> None:
        self.tmp_path = tmp_path
        self.clock = clock or VirtualClock()
        self.path = None
        self.agent = None
        self.servers: list = []

    async def central(self, **kwargs) -> TestCentralSystem:
        kwargs.setdefault("protocols", ("ocpp1.6",))
        cs = TestCentralSystem(quiet=True, **kwargs)
        await cs.start()
        self.servers.append(cs)
        return cs

    async def start(self, url: str | None = None, **config) -> Agent:
        if url is not None:
            self.path = write_config(self.tmp_path, url, **config)
        self.agent = Agent(load_config(self.path), clock=self.clock)
        await self.agent.start()
        return self.agent

    async def start_at(self, cs: TestCentralSystem):
        """Start the agent with a configuration for ``cs``; its station on ``cs`` once booted."""
        await self.start(cs.url)
        return await self.booted(cs)

    async def restart(self, clock=None) -> Agent:
        await self.agent.stop()
        if clock is not None:
            self.clock = clock
        return await self.start()

    async def close(self) -> None:
        try:
            if self.agent is not None:
                await self.agent.stop()
        finally:
            for cs in self.servers:
                await cs.stop()

    async def booted(self, cs: TestCentralSystem, station_id: str = "CP001", start: int = 0):
        """The station on ``cs`` once BootNotification was Accepted (at or after message ``start``)."""
        handle = await cs.wait_for_station(station_id, timeout_s=5)
        await handle.wait_for("BootNotification", start_index=start, timeout_s=5)
        await until(lambda: self.agent.client.online and self.agent.endpoint.current.url == cs.url,
                    what="the agent online with %s" % cs.url)
        return handle

    async def offline_transaction(self, cs: TestCentralSystem, tag: str):
        """Boot at ``cs``, lose it (it stops listening), then plug in and badge ``tag``
        (unknown, offline: AllowOfflineTxForUnknownId). Returns (the station on ``cs``,
        its port, its URL, the transaction started offline)."""
        handle = await self.start_at(cs)
        port, url = cs.port, cs.url
        await cs.stop()
        await until(lambda: not self.agent.client.online, what="offline")
        self.sim.plug("1")
        self.sim.swipe(tag)
        await until(lambda: self.station.connectors[0].transaction is not None, clock=self.clock,
                    what="an offline transaction")
        return handle, port, url, self.station.connectors[0].transaction

    async def dead_url(self) -> str:
        """The URL of a central system that stopped listening."""
        dead = await self.central()
        url = dead.url
        await dead.stop()
        return url

    async def move_by_ocpp(self, handle, url: str) -> None:
        """ChangeConfiguration(CentralSystemUrl) from the central system of ``handle``, Accepted;
        the agent moves away from it."""
        assert (await handle.call("ChangeConfiguration", key="CentralSystemUrl", value=url))["status"] == "Accepted"
        await until(lambda: self.agent.endpoint.current.url == url and not handle.connected, what="the move")

    async def rolled_back_to(self, cs: TestCentralSystem, what: str = "the rollback") -> None:
        """Let virtual time run until the agent is back with ``cs``."""
        await until(lambda: self.agent.endpoint.current.url == cs.url, clock=self.clock, timeout_s=15, what=what,
                    step_s=1.0)

    def file(self) -> str:
        with open(self.path) as f:
            return f.read()

    @property
    def station(self):
        return self.agent.station

    @property
    def sim(self):
        return self.agent.loaded.sim


def actions(handle, action: str) -> list:
    return [m.payload for m in handle.messages if m.direction == IN and m.action == action]


# ---------------------------------------------------------------------- the three ways

async def test_cli_moves_a_running_agent_to_another_central_system(tmp_path):
    rig = Rig(tmp_path)
    cs1, cs2 = await rig.central(), await rig.central()
    try:
        h1 = await rig.start_at(cs1)

        code, out, err = await run_cli("csms", "set", cs2.url, "--config", rig.path)
        assert code == 0, err
        assert "moving to %s" % cs2.url in out and "back to %s" % cs1.url in out

        h2 = await rig.booted(cs2)
        assert len(actions(h2, "BootNotification")) == 1  # a new backend gets a boot of its own
        await until(lambda: not h1.connected, what="the old connection closed")
        # The file says so, comments kept; the state knows it as accepted.
        text = rig.file()
        assert 'url = "%s"   # the backend' % cs2.url in text and "# the charger in the garage" in text
        st = rig.agent.endpoint.state
        assert st.last_accepted == EndpointSettings(cs2.url, "CP001") and st.pending is None

        code, out, err = await run_cli("csms", "show", "--config", rig.path)
        assert code == 0, err
        assert "central system:   %s" % cs2.url in out and "BootNotification Accepted" in out
        code, out, err = await run_cli("csms", "show", "--json", "--config", rig.path)
        shown = json.loads(out)
        assert shown["url"] == cs2.url and shown["online"] and shown["pending"] is None
        assert shown["security_profile"].startswith("0 (no TLS") and shown["security_profile_level"] == 0

        # Status notifications, charging and everything else now go to cs2.
        mark = len(h2.messages)
        rig.sim.plug("1")
        await h2.wait_for("StatusNotification", lambda p: p["status"] == "Preparing", start_index=mark)
        validate_agent_frames(h1)
        validate_agent_frames(h2)
    finally:
        await rig.close()


async def test_change_configuration_central_system_url_answers_then_moves(tmp_path):
    rig = Rig(tmp_path)
    cs1, cs2 = await rig.central(), await rig.central()
    try:
        h1 = await rig.start_at(cs1)
        got = await h1.call("GetConfiguration", key=["CentralSystemUrl"])
        assert got["configurationKey"] == [{"key": "CentralSystemUrl", "readonly": False, "value": cs1.url}]

        reply = await h1.call("ChangeConfiguration", key="CentralSystemUrl", value=cs2.url)
        assert reply == {"status": "Accepted"}
        h2 = await rig.booted(cs2)
        got = await h2.call("GetConfiguration", key=["CentralSystemUrl"])
        assert got["configurationKey"][0]["value"] == cs2.url
        assert 'url = "%s"' % cs2.url in rig.file()  # the file follows
        assert rig.agent.endpoint.state.pending is None

        # Malformed URLs are Rejected and change nothing.
        for bad in ("http://example.com/ocpp", "ws://", "ws://host/ocpp?x=1", "ws://user:pw@host/ocpp"):
            reply = await h2.call("ChangeConfiguration", key="CentralSystemUrl", value=bad)
            assert reply == {"status": "Rejected"}, bad
        assert rig.agent.endpoint.current.url == cs2.url
        validate_agent_frames(h1)
        validate_agent_frames(h2)
    finally:
        await rig.close()


async def test_authorization_key_is_write_only_and_used_from_the_next_connection_tc_073(tmp_path, caplog):
    """TC_073_CS: ChangeConfiguration(AuthorizationKey) is Accepted; the charger reconnects
    with the new password. The key is never returned by GetConfiguration nor logged."""
    new_key = "4F43415F4F4354545F61646D696E5F74657374"  # "OCA_OCTT_admin_test" hex-encoded
    caplog.set_level(logging.DEBUG)
    rig = Rig(tmp_path)
    cs = await rig.central(password="old-password-1234")
    try:
        await rig.start(cs.url, extra='password = "old-password-1234"')
        handle = await rig.booted(cs)
        assert (await handle.call("ChangeConfiguration", key="AuthorizationKey", value="short")) == {
            "status": "Rejected"}  # under 16 characters (security whitepaper §7.2)

        reply = await handle.call("ChangeConfiguration", key="AuthorizationKey", value=new_key)
        assert reply == {"status": "Accepted"}
        cs.password = new_key  # A01.FR.03: the central system no longer accepts the old one
        await until(lambda: handle.connections == 2 and handle.connected, what="the reconnection")
        expected = "Basic " + base64.b64encode(("CP001:" + new_key).encode()).decode()
        assert handle.request_headers["Authorization"] == expected
        await until(lambda: rig.agent.client.online and rig.agent.endpoint.state.pending is None,
                    what="the new credentials accepted")

        everything = await handle.call("GetConfiguration")
        assert "AuthorizationKey" not in [k["key"] for k in everything["configurationKey"]]
        asked = await handle.call("GetConfiguration", key=["AuthorizationKey"])
        assert asked.get("configurationKey", []) == [] and asked["unknownKey"] == ["AuthorizationKey"]
        # Kept for the next start (in the file, mode 0600), never shown or logged.
        assert 'password = "%s"' % new_key in rig.file()
        assert stat.S_IMODE(os.stat(rig.path).st_mode) == 0o600
        assert new_key not in caplog.text and "old-password-1234" not in caplog.text
        assert not any(new_key in text for _t, _d, _v, text in rig.agent.traffic.frames)
        shown = rig.agent.admin.csms_show()
        assert new_key not in json.dumps(shown) and shown["password_set"]
        validate_agent_frames(handle)
    finally:
        await rig.close()


# ---------------------------------------------------------------------- rollback

async def _switch_and_roll_back(rig, cs1, target_url: str, password: str | None = None) -> dict:
    """Move to ``target_url`` by CLI; let the fallback time pass; check the way back."""
    h1 = await rig.booted(cs1)
    boots = len(actions(h1, "BootNotification"))
    args = ["csms", "set", target_url, "--config", rig.path]
    code, out, err = await run_cli(*(args + (["--password-stdin"] if password is not None else [])),
                                   stdin=password)
    assert code == 0, err
    await until(lambda: rig.agent.endpoint.current.url == target_url and not h1.connected,
                what="the agent away from cs1")
    pending = rig.agent.admin.csms_show()["pending"]
    assert pending is not None and pending["fallback_to"]["url"] == cs1.url
    start = rig.clock.monotonic()
    await rig.rolled_back_to(cs1)
    assert FALLBACK_S - 1 <= rig.clock.monotonic() - start <= FALLBACK_S + 1  # on its own, on time
    await until(lambda: len(actions(h1, "BootNotification")) == boots + 1 and rig.agent.client.online,
                clock=rig.clock, what="a new boot at cs1", step_s=0.5)
    event = await h1.wait_for("SecurityEventNotification", lambda p: p["type"] == SECURITY_EVENT)
    assert target_url in event["techInfo"]
    shown = rig.agent.admin.csms_show()
    assert shown["url"] == cs1.url and shown["pending"] is None
    assert shown["rollback"]["from"]["url"] == target_url and shown["rollback"]["to"]["url"] == cs1.url
    await until(lambda: rig.agent.endpoint.state.rollback.get("reported"), what="the event confirmed")
    assert 'url = "%s"' % cs1.url in rig.file()  # the file is back too
    code, out, err = await run_cli("csms", "show", "--config", rig.path)
    assert "last rollback:" in out and target_url in out
    validate_agent_frames(h1)
    return shown["rollback"]


async def test_move_to_a_dead_backend_rolls_back_on_its_own(tmp_path):
    rig = Rig(tmp_path)
    cs1 = await rig.central()
    dead_url = await rig.dead_url()  # nobody listens on that port any more
    try:
        await rig.start(cs1.url)
        rollback = await _switch_and_roll_back(rig, cs1, dead_url)
        assert "refused" in rollback["reason"].lower() or "connect" in rollback["reason"].lower()
    finally:
        await rig.close()


async def test_move_to_a_backend_answering_401_rolls_back(tmp_path):
    rig = Rig(tmp_path)
    cs1 = await rig.central()
    locked = await rig.central(password="the-right-password")
    try:
        await rig.start(cs1.url)
        rollback = await _switch_and_roll_back(rig, cs1, locked.url, password="a-wrong-password")
        assert "HTTP 401" in rollback["reason"]
        assert locked.rejections and all(r[1] == "wrong credentials" for r in locked.rejections)
    finally:
        await rig.close()


async def test_move_to_a_backend_that_rejects_the_boot_rolls_back(tmp_path):
    rig = Rig(tmp_path)
    cs1 = await rig.central()
    rejecting = await rig.central(boot_status="Rejected", boot_interval_s=10)
    try:
        await rig.start(cs1.url)
        rollback = await _switch_and_roll_back(rig, cs1, rejecting.url)
        assert rollback["reason"].endswith("BootNotification answered Rejected")
        handle = rejecting.stations["CP001"]
        assert len(actions(handle, "BootNotification")) >= 2  # it kept asking, every interval
        validate_agent_frames(handle)
    finally:
        await rig.close()


async def test_reboot_in_the_middle_of_a_switch_ends_working(tmp_path):
    rig = Rig(tmp_path)
    cs1 = await rig.central()
    dead_url = await rig.dead_url()
    try:
        h1 = await rig.start_at(cs1)
        await rig.move_by_ocpp(h1, dead_url)
        await rig.clock.advance(20)
        # Reboot with 40 s of the 60 left: the switch goes on where it was.
        mark = len(h1.messages)
        await rig.restart()
        assert rig.agent.endpoint.state.pending is not None
        left = rig.agent.admin.csms_show()["pending"]["seconds_left"]
        assert 35 <= left <= 41
        await rig.rolled_back_to(cs1, what="the rollback after the reboot")
        await rig.booted(cs1, start=mark)

        # A power cut for longer than the fallback time in the middle of another switch:
        # the agent starts with the settings that work, without trying the dead one.
        assert (await h1.call("ChangeConfiguration", key="CentralSystemUrl", value=dead_url))["status"] == "Accepted"
        await until(lambda: rig.agent.endpoint.current.url == dead_url, what="the second move")
        later = VirtualClock(start=rig.clock.time() + 3600)
        mark = len(h1.messages)
        await rig.restart(clock=later)
        assert rig.agent.endpoint.current.url == cs1.url and rig.agent.endpoint.state.pending is None
        await rig.booted(cs1, start=mark)
        assert "restarted during the switch" in rig.agent.admin.csms_show()["rollback"]["reason"]
    finally:
        await rig.close()


async def test_config_file_edited_while_stopped_is_tried_with_rollback(tmp_path):
    rig = Rig(tmp_path)
    cs1 = await rig.central()
    dead_url = await rig.dead_url()
    try:
        h1 = await rig.start_at(cs1)
        await rig.agent.stop()
        code, out, err = await run_cli("csms", "set", dead_url, "--config", rig.path)  # the agent is stopped
        assert code == 0 and "not running" in out, err
        mark = len(h1.messages)
        await rig.start()
        assert rig.agent.endpoint.current.url == dead_url and rig.agent.endpoint.state.pending is not None
        await rig.rolled_back_to(cs1)
        await rig.booted(cs1, start=mark)
        assert 'url = "%s"' % cs1.url in rig.file()
    finally:
        await rig.close()


# ---------------------------------------------------------------------- transactions and authorization data

async def test_queued_messages_of_the_old_backend_reach_the_old_backend_not_the_new_one(tmp_path):
    """A transaction started offline with cs1 is queued for cs1. The owner moves the charger
    to cs2 meanwhile; the transaction keeps running and ends. cs2 never hears of it; when cs1
    is reachable again a connection of its own delivers Start, MeterValues and Stop there."""
    rig = Rig(tmp_path)
    cs1, cs2 = await rig.central(), await rig.central()
    try:
        h1, port1, url1, tx = await rig.offline_transaction(cs1, "TAG-OFFLINE")
        await rig.clock.advance(61)  # one sampled MeterValues, queued too
        cs1_key = EndpointSettings(url1, "CP001").key
        assert tx.backend == cs1_key

        code, out, err = await run_cli("csms", "set", cs2.url, "--config", rig.path)
        assert code == 0, err
        h2 = await rig.booted(cs2)
        shown = rig.agent.admin.csms_show()
        assert shown["held"] and shown["held"][0]["url"] == url1 and shown["held"][0]["messages"] >= 2
        code, out, err = await run_cli("csms", "show", "--config", rig.path)
        assert "held for %s" % url1 in out

        # The transaction stays with cs1 while the charger talks to cs2.
        await rig.clock.advance(60)
        rig.sim.unplug("1")
        await until(lambda: rig.station.connectors[0].transaction is None, clock=rig.clock, what="the stop")
        await until(lambda: any(e.kind == "stop" for e in rig.station.outbox.entries()), what="Stop queued")
        assert all(e.backend == cs1_key for e in rig.station.outbox.entries())

        # cs1 comes back: the held messages go there, in order, with cs1's transaction id.
        await cs1.start(port=port1)
        await until(lambda: len(rig.station.outbox) == 0, clock=rig.clock, timeout_s=10,
                    what="the held messages delivered", step_s=1.0)
        starts, stops = actions(h1, "StartTransaction"), actions(h1, "StopTransaction")
        assert len(starts) == 1 and starts[0]["idTag"] == "TAG-OFFLINE"
        assert len(stops) == 1 and stops[0]["transactionId"] == tx.backend_id
        assert len(actions(h1, "MeterValues")) >= 1
        assert all(m["transactionId"] == tx.backend_id for m in actions(h1, "MeterValues"))
        assert len(actions(h1, "BootNotification")) == 1  # a drain connection does not boot
        for action in ("StartTransaction", "StopTransaction"):
            assert actions(h2, action) == []
        assert all("transactionId" not in m for m in actions(h2, "MeterValues"))
        # Nothing left: the drain connection closes, the old settings are forgotten.
        await until(lambda: not rig.agent.endpoint._drains and not h1.connected, clock=rig.clock,
                    what="the drain connection closed")
        assert rig.agent.endpoint.state.held == {}
        assert rig.agent.client.online and h2.connected
        validate_agent_frames(h1)
        validate_agent_frames(h2)
    finally:
        await rig.close()


async def test_queued_messages_are_delivered_on_the_old_connection_before_moving(tmp_path):
    """A StartTransaction still queued when a move is asked for (its first attempt failed):
    the agent stays until it is delivered (up to the drain time), then moves; nothing is
    sent twice, and the running transaction stays with the old central system."""
    from ocpp.exceptions import InternalError

    rig = Rig(tmp_path)
    cs1, cs2 = await rig.central(), await rig.central()
    attempts = []

    def flaky_start(payload):
        attempts.append(payload)
        if len(attempts) == 1:
            raise InternalError(description="try again")
        return {"transactionId": 77, "idTagInfo": {"status": "Accepted"}}
    cs1.handlers["StartTransaction"] = flaky_start
    try:
        h1 = await rig.start_at(cs1)
        assert (await h1.call("ChangeConfiguration", key="TransactionMessageRetryInterval", value="10"))[
            "status"] == "Accepted"
        rig.sim.plug("1")
        rig.sim.swipe("TAG-1")
        await until(lambda: len(attempts) == 1 and len(rig.station.outbox) == 1, what="a failed Start")
        reply = await h1.call("ChangeConfiguration", key="CentralSystemUrl", value=cs2.url)
        assert reply["status"] == "Accepted"
        await asyncio.sleep(0.2)
        assert h1.connected and "CP001" not in cs2.stations  # still delivering to cs1
        await until(lambda: "CP001" in cs2.stations, clock=rig.clock, what="the move", step_s=1.0)
        assert rig.clock.monotonic() < 30  # it moved once the Start was delivered, not at the drain timeout
        h2 = await rig.booted(cs2)
        assert rig.station.connectors[0].transaction.backend_id == 77
        assert len(attempts) == 2 and actions(h2, "StartTransaction") == []

        # The running transaction stays with cs1: its Stop goes there, over a drain connection.
        rig.sim.unplug("1")
        await until(lambda: len(actions(h1, "StopTransaction")) == 1, clock=rig.clock, timeout_s=10,
                    what="the Stop at cs1", step_s=1.0)
        assert actions(h1, "StopTransaction")[0]["transactionId"] == 77
        assert actions(h2, "StopTransaction") == []
        await until(lambda: not rig.agent.endpoint._drains, clock=rig.clock, what="the drain closed")
        validate_agent_frames(h1, allowed_errors=("NotSupported",))
        validate_agent_frames(h2)
    finally:
        await rig.close()


async def test_authorization_cache_and_local_list_are_cleared_on_a_move_and_restored_by_a_rollback(tmp_path):
    rig = Rig(tmp_path)
    cs1, cs2 = await rig.central(), await rig.central()
    dead_url = await rig.dead_url()
    try:
        h1 = await rig.start_at(cs1)
        reply = await h1.call("SendLocalList", listVersion=3, updateType="Full",
                              localAuthorizationList=[{"idTag": "TAG-LIST", "idTagInfo": {"status": "Accepted"}}])
        assert reply["status"] == "Accepted"
        rig.sim.swipe("TAG-CACHED")
        await h1.wait_for("Authorize")
        await until(lambda: len(rig.station.auth_cache) == 1, what="the cache entry")

        # A move that fails: the old backend's lists come back with the rollback.
        code, out, err = await run_cli("csms", "set", dead_url, "--config", rig.path)
        assert code == 0, err
        await until(lambda: rig.agent.endpoint.current.url == dead_url and len(rig.station.auth_cache) == 0,
                    what="cleared for the new backend")
        assert rig.station.local_list.version == 0
        await rig.rolled_back_to(cs1)
        assert rig.station.local_list.version == 3 and rig.station.auth_cache.get("TAG-CACHED") is not None
        assert (await (await rig.booted(cs1)).call("GetLocalListVersion"))["listVersion"] == 3

        # A move to a dead backend undone by hand before the rollback: the lists come back too.
        code, out, err = await run_cli("csms", "set", dead_url, "--config", rig.path)
        assert code == 0, err
        await until(lambda: rig.agent.endpoint.current.url == dead_url and len(rig.station.auth_cache) == 0,
                    what="cleared for the new backend")
        code, out, err = await run_cli("csms", "set", cs1.url, "--config", rig.path)
        assert code == 0, err
        await until(lambda: rig.agent.endpoint.current.url == cs1.url, what="back on the first backend")
        assert rig.station.local_list.version == 3 and rig.station.auth_cache.get("TAG-CACHED") is not None

        # A move that works: the new central system starts with empty ones.
        code, out, err = await run_cli("csms", "set", cs2.url, "--config", rig.path)
        assert code == 0, err
        h2 = await rig.booted(cs2)
        assert (await h2.call("GetLocalListVersion"))["listVersion"] == 0
        assert len(rig.station.auth_cache) == 0 and rig.station.local_list.get("TAG-LIST") is None
        assert not [f for f in os.listdir(rig.agent.config.data_dir) if f.endswith(".before-switch")]
        # Credentials only (same backend): nothing is cleared.
        await h2.call("SendLocalList", listVersion=1, updateType="Full",
                      localAuthorizationList=[{"idTag": "TAG-2", "idTagInfo": {"status": "Accepted"}}])
        cs2.password = "a-new-password-123"
        assert (await h2.call("ChangeConfiguration", key="AuthorizationKey", value="a-new-password-123"))[
            "status"] == "Accepted"
        await until(lambda: h2.connections == 2 and rig.agent.client.online, what="reconnected")
        assert rig.station.local_list.version == 1
    finally:
        await rig.close()


async def test_a_transaction_started_while_trying_a_backend_goes_back_with_the_rollback(tmp_path):
    """A backend that never accepted the charger owns nothing: a transaction started
    while it was being tried is delivered to the central system the charger returns to."""
    rig = Rig(tmp_path)
    cs1 = await rig.central()
    dead_url = await rig.dead_url()
    try:
        h1 = await rig.start_at(cs1)
        await rig.move_by_ocpp(h1, dead_url)
        rig.sim.plug("1")
        rig.sim.swipe("TAG-WHILE-TRYING")  # offline: AllowOfflineTxForUnknownId
        await until(lambda: rig.station.connectors[0].transaction is not None, clock=rig.clock,
                    what="a transaction", step_s=0.1)
        tx = rig.station.connectors[0].transaction
        assert tx.backend == EndpointSettings(dead_url, "CP001").key
        await until(lambda: tx.backend_id is not None, clock=rig.clock, timeout_s=15,
                    what="the Start delivered after the rollback", step_s=1.0)
        starts = actions(h1, "StartTransaction")
        assert len(starts) == 1 and starts[0]["idTag"] == "TAG-WHILE-TRYING"
        assert tx.backend == EndpointSettings(cs1.url, "CP001").key
        assert rig.agent.endpoint.state.held == {}
    finally:
        await rig.close()


async def test_bad_input_changes_nothing(tmp_path):
    rig = Rig(tmp_path)
    cs1 = await rig.central()
    try:
        await rig.start(cs1.url)
        await rig.booted(cs1)
        before = rig.file()
        cases = [
            (("csms", "set", "http://example.com/ocpp"), "csms.url: must start with ws:// or wss://"),
            (("csms", "set", "ws://example.com/ocpp?x=1"), "must not have a query"),
            (("csms", "set", "ws://:99/ocpp"), "has no host"),
            (("csms", "set", "ws://example.com:99999/ocpp"), "Port out of range"),
            (("csms", "set", cs1.url, "--id", ""), "station.id: must not be empty"),
            (("csms", "set", cs1.url, "--ca-file", "/nonexistent.pem"), "csms.ca_file"),
            (("config", "set", "csms.fallback_timeout_s", "soon"), "csms.fallback_timeout_s: must be a number"),
            (("config", "set", "csms.fallback_timeout_s", "-5"), "must be greater than 0"),
            (("config", "set", "station.nope", "1"), "station.nope: unknown key"),
            (("config", "set", "ocpp.HeartbeatInterval", "often"), "ocpp.HeartbeatInterval"),
            (("config", "set", "ocpp.NumberOfConnectors", "4"), "read-only"),
            (("config", "set", "csms.password", "in-the-shell-history"), "standard input"),
            (("config", "set", "status_page.port", "70000"), "status_page.port: must be 0..65535"),
            (("config", "get", "nope"), "section.key"),
        ]
        for argv, expected in cases:
            code, out, err = await run_cli(*(argv + ("--config", rig.path)))
            assert code == 2 and expected in err, (argv, code, err)
            assert rig.file() == before, argv
        assert rig.agent.endpoint.current.url == cs1.url and rig.agent.client.online

        # Good values through the running agent: applied at once where possible.
        code, out, err = await run_cli("config", "set", "ocpp.HeartbeatInterval", "120", "--config", rig.path)
        assert code == 0 and "applied now" in out, err
        assert rig.agent.keys.get("HeartbeatInterval") == 120
        code, out, err = await run_cli("config", "set", "csms.fallback_timeout_s", "90", "--config", rig.path)
        assert code == 0 and rig.agent.endpoint.fallback_timeout_s == 90.0
        code, out, err = await run_cli("config", "get", "csms.fallback_timeout_s", "--config", rig.path)
        assert out.strip() == "90.0"
        code, out, err = await run_cli("config", "set", "csms.password", "-", "--config", rig.path,
                                       stdin="same-server-password\n")
        assert code == 0, err
        await until(lambda: rig.agent.endpoint.current.password == "same-server-password", what="the new password")
        code, out, err = await run_cli("config", "get", "csms.password", "--config", rig.path)
        assert out.strip() == "(set, hidden)"
        code, out, err = await run_cli("config", "show", "--config", rig.path)
        assert "csms.password = (set, hidden)" in out and "same-server-password" not in out
        assert stat.S_IMODE(os.stat(rig.path).st_mode) == 0o600
        assert "# the charger in the garage" in rig.file()
    finally:
        await rig.close()


def test_journal_rows_from_before_backends_belong_to_the_current_one(tmp_path):
    """A journal written by an agent without endpoint switching (no backend column)."""
    path = str(tmp_path / "journal.sqlite")
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE tx (local_id INTEGER PRIMARY KEY, data TEXT NOT NULL);
        CREATE TABLE msg (jseq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, local_id INTEGER NOT NULL,
            connector_id INTEGER NOT NULL, samples TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """)
    tx = {"local_id": 1, "connector_id": 1, "id_tag": "T", "meter_start_wh": 5, "start_time": 1.0,
          "stop_data": []}
    db.execute("INSERT INTO tx VALUES (1, ?)", (json.dumps(tx),))
    db.execute("INSERT INTO msg (kind, local_id, connector_id, samples) VALUES ('start', 1, 1, '[]')")
    db.commit()
    db.close()
    journal = TransactionJournal(path)
    journal.default_backend = "ws://old/ocpp/CP001"
    txs, msgs = journal.open()
    assert txs[0]["backend"] == "ws://old/ocpp/CP001" and msgs[0]["backend"] == "ws://old/ocpp/CP001"
    journal.close()
    journal = TransactionJournal(path)
    journal.default_backend = "ws://new/ocpp/CP001"  # migrated once: a later backend does not take them
    txs, msgs = journal.open()
    assert txs[0]["backend"] == msgs[0]["backend"] == "ws://old/ocpp/CP001"
    journal.close()


def test_endpoint_state_file_holds_secrets_privately(tmp_path):
    state = EndpointState(str(tmp_path / "endpoint.json"))
    a = EndpointSettings("ws://a/ocpp", "CP1", "pw-a")
    state.current = state.config_seen = a
    state.accepted(1.0)
    b = EndpointSettings("wss://b/ocpp", "CP 1", "pw-b")
    state.begin(b, "test", 2.0, 7)
    state.save()
    assert stat.S_IMODE(os.stat(state.path).st_mode) == 0o600
    again = EndpointState(state.path)
    assert again.load()
    assert again.current == b and again.last_accepted == a and again.pending["first_local_id"] == 7
    assert again.held == {a.key: a} and b.key == "wss://b/ocpp/CP%201"
    assert "pw-b" not in repr(b) and b.level == 2
    failed = again.roll_back("why", 3.0)
    assert failed == b and again.current == a and again.rollback["reason"] == "why"
    assert "pw" not in json.dumps(again.rollback)


def test_switch_validation(tmp_path):
    """What no way of switching accepts (the agent's own check, after the file's)."""
    from agent.link.switch import EndpointManager, check_authorization_key

    assert check_authorization_key("4F43415F4F4354545F61646D696E5F74657374")
    assert not check_authorization_key("x" * 15) and not check_authorization_key("x" * 41)
    assert not check_authorization_key("sixteen chars ok")  # no spaces or control characters

    class Fake:
        state = EndpointState(None)
        allow_downgrade = False
        security = None
    fake = Fake()
    fake.state.current = EndpointSettings("wss://a/ocpp", "CP1")
    validate = EndpointManager.validate
    with pytest.raises(SwitchError, match="may not lower the security profile"):
        validate(fake, EndpointSettings("ws://b/ocpp", "CP1"), "ocpp")  # no downgrade over OCPP
    validate(fake, EndpointSettings("ws://b/ocpp", "CP1"), "cli")  # the owner may
    with pytest.raises(SwitchError, match="':'"):
        validate(fake, EndpointSettings("wss://b/ocpp", "CP:1", "pw"), "cli")
    with pytest.raises(SwitchError, match="only used with a wss://"):
        validate(fake, EndpointSettings("ws://b/ocpp", "CP1", "", "/etc/ca.pem"), "cli")


async def test_move_to_a_tls_backend_with_an_untrusted_certificate_rolls_back_and_with_its_ca_works(tmp_path):
    rig = Rig(tmp_path)
    cs1, cs2 = await rig.central(), await rig.central()
    async with tls_proxy_for(cs2, tmp_path) as proxy:
        tls_url, cert = proxy.url, proxy.cert
        try:
            await rig.start(cs1.url)
            rollback = await _switch_and_roll_back(rig, cs1, tls_url)  # the system CAs do not know it
            assert "TLS certificate verification failed" in rollback["reason"]

            code, out, err = await run_cli("csms", "set", tls_url, "--ca-file", cert, "--wait", "--config", rig.path)
            assert code == 0 and "accepted by %s" % tls_url in out, (out, err)
            h2 = await cs2.wait_for_station("CP001")
            await h2.wait_for("BootNotification")
            assert proxy.handshakes >= 1 and h2.connected and rig.agent.client.online
            shown = rig.agent.admin.csms_show()
            assert shown["security_profile_level"] == 2 and shown["ca_file"] == cert
            # The certificate refused during the first try is a security event (once for the streak).
            refused = [e for e in rig.agent.security.log.events() if e.kind == "invalid_csms_certificate"]
            assert len(refused) == 1 and tls_url in refused[0].tech_info
            assert 'ca_file = "%s"' % cert in rig.file()
        finally:
            await rig.close()
