"""Offline authorization: Authorization Cache, Local Authorization List, LocalPreAuthorize,
LocalAuthorizeOffline, AllowOfflineTxForUnknownId and MaxEnergyOnInvalidId (OCPP 1.6 §3.5).

The OCTT scenarios (TC_007, 008, 042_1, 042_2, 043, 043_1, 043_2, 043_3, 061) follow the
steps and tool validations of spec/octt-1.6-test-case-document-2024-04.txt with the real
agent on the simulated board against the test central system on loopback, in virtual
time. "Offline" means the central system has stopped listening: the agent's reconnect
attempts fail until it listens again on the same port. The last tests exercise
``agent.core.auth`` directly.
"""

import asyncio
import json


from agent.core import model
from agent.core.isotime import format_datetime
from tests.harness import (AgentHarness, assert_charging_hw, assert_no_power, calls_from_agent, hw, keys, quiet,
                           reach_charging, replies_to_agent, statuses, until)
from tools.csms import TestCentralSystem

TAG = "TAG-1"
TAG_2 = "TAG-2"
TAG_3 = "TAG-3"
START = 1_767_225_600.0  # the VirtualClock's start: 2026-01-01T00:00:00Z


def iso(ts: float) -> str:
    return format_datetime(ts)


def accepted(tag: str, **info) -> dict:
    return {"idTag": tag, "idTagInfo": dict({"status": "Accepted"}, **info)}


async def cache_by_authorize(h: AgentHarness, tag: str) -> None:
    """Memory state IdTagCached: the tag is swiped, Authorize.conf puts it in the cache;
    the authorization then lapses after ConnectionTimeOut (no EV plugged in)."""
    m = h.mark()
    h.sim.swipe(tag)
    assert await h.cs.wait_for("Authorize", start_index=m) == {"idTag": tag}
    await h.wait_status(1, "Preparing", m)
    assert h.station.auth_cache.get(tag) is not None
    await h.clock.advance(h.agent.keys.get("ConnectionTimeOut"))
    await h.wait_status(1, "Available", m)


async def plug_and_swipe_starts_nothing(h: AgentHarness, tag: str) -> None:
    """The EV plugged in and ``tag`` swiped: no transaction starts."""
    h.sim.plug(1)
    h.sim.swipe(tag)
    await quiet(h)
    assert h.station.connector(1).transaction is None


async def local_list_version(h: AgentHarness) -> int:
    return (await h.cs.call("GetLocalListVersion"))["listVersion"]


async def send_local_list(h: AgentHarness, version: int, update_type: str, entries=None) -> str:
    payload = {"listVersion": version, "updateType": update_type}
    if entries is not None:
        payload["localAuthorizationList"] = entries
    return (await h.cs.call("SendLocalList", **payload))["status"]


# ---------------------------------------------------------------------------- cache


async def test_tc_007_cached_id_local_pre_authorize(tmp_path):
    """TC_007_CS Regular Start Charging Session - Cached Id: with LocalPreAuthorize the
    cached tag starts the remote-started transaction without an Authorize.req (none is
    waited for), although AuthorizeRemoteTxRequests is true."""
    cfg = keys(AuthorizationCacheEnabled=True, AuthorizeRemoteTxRequests=True, LocalPreAuthorize=True,
               ConnectionTimeOut=30)
    async with AgentHarness(tmp_path, ocpp=cfg) as h:
        await h.wait_status(1, "Available")
        await cache_by_authorize(h, TAG)  # memory state IdTagCached
        assert h.station.auth_cache.get(TAG).status == "accepted"
        never = asyncio.Event()

        async def no_answer(_payload):  # an Authorize.req now would hold the start up
            await never.wait()

        h.cs.handlers["Authorize"] = no_answer
        m = h.mark()
        # Steps 1-8: Preparing, RemoteStartTransaction Accepted, StartTransaction, Charging.
        await reach_charging(h, 1, TAG, start=m)
        assert "Authorize" not in calls_from_agent(h, m)
        assert statuses(h, 1, m) == ["Preparing", "Charging"]
        never.set()


async def test_tc_007_cached_id_local_authorize_offline(tmp_path):
    """TC_007_CS, offline: with LocalAuthorizeOffline a tag cached from an earlier
    Authorize.conf starts a transaction while the central system is unreachable; the
    StartTransaction.req is delivered after the reconnect. An uncached tag does not start."""
    cfg = keys(AuthorizationCacheEnabled=True, LocalAuthorizeOffline=True, LocalPreAuthorize=False,
               ConnectionTimeOut=30)
    async with AgentHarness(tmp_path, ocpp=cfg) as h:
        await h.wait_status(1, "Available")
        await cache_by_authorize(h, TAG)
        port = await h.go_offline()
        await plug_and_swipe_starts_nothing(h, TAG_2)  # unknown: AllowOfflineTxForUnknownId is false
        assert_no_power(h)
        h.sim.swipe(TAG)
        await until(lambda: h.station.connector(1).transaction is not None)
        await quiet(h)
        assert_charging_hw(h)
        assert h.station.connector(1).status == "charging"
        m = h.mark()
        await h.go_online(port)
        start = await h.cs.wait_for("StartTransaction", start_index=m)
        assert start["idTag"] == TAG and start["connectorId"] == 1
        assert "Authorize" not in calls_from_agent(h, m)
        await h.wait_status(1, "Charging", m)


async def test_tc_007_local_authorize_offline_false(tmp_path):
    """LocalAuthorizeOffline false: a cached tag does not start a transaction offline."""
    cfg = keys(AuthorizationCacheEnabled=True, LocalAuthorizeOffline=False, ConnectionTimeOut=30)
    async with AgentHarness(tmp_path, ocpp=cfg) as h:
        await h.wait_status(1, "Available")
        await cache_by_authorize(h, TAG)
        await h.go_offline()
        await plug_and_swipe_starts_nothing(h, TAG)
        assert_no_power(h)


async def test_tc_061_clear_cache(tmp_path):
    """TC_061_CS Clear Authorization Data in Authorization Cache: authorized (Preparing),
    ConnectionTimeOut (Available), ClearCache Accepted, the same card again: Authorize.req."""
    cfg = keys(AuthorizationCacheEnabled=True, LocalPreAuthorize=True, ConnectionTimeOut=30)
    async with AgentHarness(tmp_path, ocpp=cfg) as h:
        await h.wait_status(1, "Available")
        m = h.mark()
        h.sim.swipe(TAG)  # reusable state Authorized
        await h.cs.wait_for("Authorize", start_index=m)
        await h.wait_status(1, "Preparing", m)  # step 1
        await h.clock.advance(30)
        await h.wait_status(1, "Available", m)  # step 3
        assert statuses(h, 1, m) == ["Preparing", "Available"]
        # Cached now: with LocalPreAuthorize the card is authorized locally, no Authorize.req.
        m = h.mark()
        h.sim.swipe(TAG)
        await h.wait_status(1, "Preparing", m)
        assert "Authorize" not in calls_from_agent(h, m)
        await h.clock.advance(30)
        await h.wait_status(1, "Available", m)
        # Steps 5-6.
        assert await h.cs.call("ClearCache") == {"status": "Accepted"}
        assert len(h.station.auth_cache) == 0
        # Steps 7-8: the same card: Authorize.req.
        m = h.mark()
        h.sim.swipe(TAG)
        assert await h.cs.wait_for("Authorize", start_index=m) == {"idTag": TAG}
        await h.wait_status(1, "Preparing", m)


async def test_tc_061_cleared_tag_unknown_offline(tmp_path):
    """TC_061_CS, offline: after ClearCache a formerly cached tag is unknown offline."""
    cfg = keys(AuthorizationCacheEnabled=True, LocalAuthorizeOffline=True, ConnectionTimeOut=30)
    async with AgentHarness(tmp_path, ocpp=cfg) as h:
        await h.wait_status(1, "Available")
        await cache_by_authorize(h, TAG)
        assert await h.cs.call("ClearCache") == {"status": "Accepted"}
        await h.go_offline()
        await plug_and_swipe_starts_nothing(h, TAG)
        assert_no_power(h)
    # The clearing is durable.
    assert json.loads((tmp_path / "data" / "auth-cache.json").read_text()) == {"entries": []}


async def test_cache_disabled_not_used_nor_filled(tmp_path):
    """AuthorizationCacheEnabled false: Authorize.conf is not cached and nothing cached is used."""
    cfg = keys(AuthorizationCacheEnabled=False, LocalPreAuthorize=True, ConnectionTimeOut=30)
    async with AgentHarness(tmp_path, ocpp=cfg) as h:
        await h.wait_status(1, "Available")
        m = h.mark()
        h.sim.swipe(TAG)
        await h.cs.wait_for("Authorize", start_index=m)
        await h.wait_status(1, "Preparing", m)
        assert len(h.station.auth_cache) == 0
        h.station.auth_cache.update(TAG, model.IdTagInfo(model.AUTH_ACCEPTED))  # stale content is ignored
        await h.clock.advance(30)
        await h.wait_status(1, "Available", m)
        m = h.mark()
        h.sim.swipe(TAG)
        await h.cs.wait_for("Authorize", start_index=m)


async def test_expired_cache_entry_not_used_offline(tmp_path):
    """A cached tag whose expiryDate has passed is rejected offline (§3.5.4), even with
    AllowOfflineTxForUnknownId; before its expiry it is authorized offline."""
    cfg = keys(AuthorizationCacheEnabled=True, LocalAuthorizeOffline=True, AllowOfflineTxForUnknownId=True,
               ConnectionTimeOut=30)
    cs = TestCentralSystem(quiet=True, protocols=("ocpp1.6",), handlers={
        "Authorize": lambda p: {"idTagInfo": {"status": "Accepted", "expiryDate": iso(START + 3600)}}})
    async with AgentHarness(tmp_path, ocpp=cfg, csms=cs) as h:
        await h.wait_status(1, "Available")
        await cache_by_authorize(h, TAG)
        assert h.station.auth_cache.get(TAG).expiry_date == iso(START + 3600)
        await h.go_offline()
        # Within the hour: authorized offline (Preparing, no EV), then lapses.
        h.sim.swipe(TAG)
        await until(lambda: h.station.connector(1).pending_auth is not None)
        await h.clock.advance(30)
        await until(lambda: h.station.connector(1).pending_auth is None)
        # After the expiry date: rejected, nothing starts.
        await h.clock.advance(3600)
        assert h.clock.time() > START + 3600
        await plug_and_swipe_starts_nothing(h, TAG)
        assert h.station.connector(1).pending_auth is None
        assert_no_power(h)
        assert (await h.station.authorize(TAG)).status == "expired"


async def test_allow_offline_tx_for_unknown_id(tmp_path):
    """AllowOfflineTxForUnknownId: offline, an unknown tag starts a transaction when true,
    not when false; a tag the Local Authorization List blocks never does (§3.5.4)."""
    cfg = keys(AllowOfflineTxForUnknownId=False, LocalAuthorizeOffline=True)
    async with AgentHarness(tmp_path, ocpp=cfg) as h:
        await h.wait_status(1, "Available")
        assert await send_local_list(h, 1, "Full", [{"idTag": TAG_2, "idTagInfo": {"status": "Blocked"}}]) \
            == "Accepted"
        port = await h.go_offline()
        await plug_and_swipe_starts_nothing(h, TAG)
        # Switch it on (locally: the central system is away) and try again.
        assert h.agent.keys.change("AllowOfflineTxForUnknownId", "true") == "Accepted"
        h.sim.swipe(TAG_2)  # blocked in the list: rejected even now
        await quiet(h)
        assert h.station.connector(1).transaction is None
        assert_no_power(h)
        h.sim.swipe(TAG)
        await until(lambda: h.station.connector(1).transaction is not None)
        await quiet(h)
        assert_charging_hw(h)
        m = h.mark()
        await h.go_online(port)
        start = await h.cs.wait_for("StartTransaction", start_index=m)
        assert start["idTag"] == TAG


async def test_cache_and_list_survive_a_reboot(tmp_path):
    """The Authorization Cache and the Local Authorization List (with its version) are
    kept across a reboot and both authorize offline afterwards."""
    cfg = keys(AuthorizationCacheEnabled=True, LocalAuthorizeOffline=True, ConnectionTimeOut=30)
    async with AgentHarness(tmp_path, ocpp=cfg) as h:
        await h.wait_status(1, "Available")
        await cache_by_authorize(h, TAG)
        assert await send_local_list(h, 3, "Full", [accepted(TAG_2)]) == "Accepted"
        m = h.mark()
        await h.restart_agent()
        await h.cs.wait_for("BootNotification", start_index=m)
        await h.wait_status(1, "Available", m)
        assert await local_list_version(h) == 3
        assert h.station.auth_cache.get(TAG).status == "accepted"
        await h.go_offline()
        for tag in (TAG_2, TAG):  # from the list, then from the cache
            h.sim.swipe(tag)
            await until(lambda: h.station.connector(1).pending_auth is not None)
            assert h.station.connector(1).pending_auth["id_tag"] == tag
            await h.clock.advance(30)
            await until(lambda: h.station.connector(1).pending_auth is None)
        h.sim.swipe(TAG_3)  # unknown
        await quiet(h)
        assert h.station.connector(1).pending_auth is None


async def test_cache_updated_from_start_and_stop_transaction_conf(tmp_path):
    """The cache takes the IdTagInfo of StartTransaction.conf and StopTransaction.conf;
    tags in the Local Authorization List are never cached (§3.5.3)."""
    cfg = keys(AuthorizationCacheEnabled=True, StopTransactionOnInvalidId=False)
    async with AgentHarness(tmp_path, ocpp=cfg) as h:
        await h.wait_status(1, "Available")
        h.cs.handlers["StopTransaction"] = lambda p: {"idTagInfo": {"status": "Blocked"}}
        m = h.mark()
        await reach_charging(h, 1, TAG, start=m)  # AuthorizeRemoteTxRequests false: no Authorize
        assert h.station.auth_cache.get(TAG).status == "accepted"  # from StartTransaction.conf
        h.sim.swipe(TAG)  # stops it
        await h.cs.wait_for("StopTransaction", start_index=m)
        await until(lambda: h.station.auth_cache.get(TAG).status == "blocked")
        # A listed tag stays out of the cache.
        assert await send_local_list(h, 1, "Full", [accepted(TAG_2)]) == "Accepted"
        h.sim.unplug(1)
        await h.wait_status(1, "Available", m)
        m = h.mark()
        await reach_charging(h, 1, TAG_2, start=m)
        assert h.station.auth_cache.get(TAG_2) is None


# ---------------------------------------------------------------------------- local list


async def test_tc_008_id_in_local_authorization_list(tmp_path):
    """TC_008_CS Regular Start Charging Session - Id in Local Authorization List: the
    listed tag starts the remote-started transaction without an Authorize.req."""
    cfg = keys(LocalPreAuthorize=True, AuthorizationCacheEnabled=False, LocalAuthListEnabled=True,
               AuthorizeRemoteTxRequests=True)
    async with AgentHarness(tmp_path, ocpp=cfg) as h:
        await h.wait_status(1, "Available")
        # Steps 1-4.
        assert await local_list_version(h) == 0
        assert await send_local_list(h, 1, "Full", [accepted(TAG)]) == "Accepted"
        # Steps 5-12.
        m = h.mark()
        await reach_charging(h, 1, TAG, start=m)
        assert "Authorize" not in calls_from_agent(h, m)
        assert statuses(h, 1, m) == ["Preparing", "Charging"]


async def test_tc_008_local_list_authorizes_offline_and_has_priority(tmp_path):
    """TC_008_CS, offline: a listed tag is authorized offline; the list has priority over
    the cache (a tag the cache holds as Accepted but the list as Blocked is rejected)."""
    cfg = keys(LocalAuthorizeOffline=True, AuthorizationCacheEnabled=True, ConnectionTimeOut=30)
    async with AgentHarness(tmp_path, ocpp=cfg) as h:
        await h.wait_status(1, "Available")
        await cache_by_authorize(h, TAG_2)
        assert await send_local_list(h, 7, "Full", [accepted(TAG), {"idTag": TAG_2,
                                                                    "idTagInfo": {"status": "Blocked"}}]) == "Accepted"
        await h.go_offline()
        await plug_and_swipe_starts_nothing(h, TAG_2)
        h.sim.swipe(TAG.lower())  # IdTokens are case-insensitive
        await until(lambda: h.station.connector(1).transaction is not None)
        await quiet(h)
        assert_charging_hw(h)


async def test_tc_042_1_get_local_list_version_disabled(tmp_path):
    """TC_042_1_CS Get Local List Version (not supported): LocalAuthListEnabled false: -1."""
    async with AgentHarness(tmp_path, ocpp=keys(LocalAuthListEnabled=False)) as h:
        assert await h.cs.call("GetLocalListVersion") == {"listVersion": -1}


async def test_tc_042_2_get_local_list_version_empty(tmp_path):
    """TC_042_2_CS Get Local List Version (empty): a Full update (version 1) without a list
    is Accepted, and an empty list reports version 0."""
    async with AgentHarness(tmp_path, ocpp=keys(LocalAuthListEnabled=True)) as h:
        assert await local_list_version(h) == 0
        assert await send_local_list(h, 1, "Full") == "Accepted"  # step 1-2
        assert await local_list_version(h) == 0  # steps 3-4
        # Step 1 as the document has it, localAuthorizationList omitted from the frame
        # (the ocpp library would send an empty list): a non-empty list first.
        assert await send_local_list(h, 1, "Full", [accepted(TAG)]) == "Accepted"
        assert await local_list_version(h) == 1
        m = len(h.cs.raw)
        await h.cs.send_raw(json.dumps([2, "raw-1", "SendLocalList", {"listVersion": 1, "updateType": "Full"}]))
        reply = json.loads(await h.cs.wait_raw(lambda t: '"raw-1"' in t, start_index=m))
        assert reply == [3, "raw-1", {"status": "Accepted"}]
        assert await local_list_version(h) == 0


async def test_tc_043_send_local_list_full_then_differential(tmp_path):
    """TC_043_CS Send Local Authorization List: Full then Differential, both Accepted;
    the listed tags are authorized (locally), a deleted one no longer is."""
    cfg = keys(LocalAuthListEnabled=True, LocalPreAuthorize=True, AuthorizationCacheEnabled=False,
               ConnectionTimeOut=30)
    async with AgentHarness(tmp_path, ocpp=cfg) as h:
        await h.wait_status(1, "Available")
        assert await send_local_list(h, 1, "Full", [accepted(TAG), accepted(TAG_2)]) == "Accepted"  # 1-2
        assert await local_list_version(h) == 1
        # Steps 3-4: add TAG_3, delete TAG_2 (no idTagInfo), update TAG.
        assert await send_local_list(h, 2, "Differential", [
            accepted(TAG_3), {"idTag": TAG_2}, accepted(TAG, parentIdTag="GROUP")]) == "Accepted"
        assert await local_list_version(h) == 2
        assert h.station.local_list.get(TAG).parent_id_tag == "GROUP"
        assert h.station.local_list.get(TAG_2) is None
        # Expected: a listed tag is authorized from the list (no Authorize.req) ...
        m = h.mark()
        h.sim.swipe(TAG_3)
        await h.wait_status(1, "Preparing", m)
        assert "Authorize" not in calls_from_agent(h, m)
        await h.clock.advance(30)
        await h.wait_status(1, "Available", m)
        # ... a deleted one needs the central system.
        m = h.mark()
        h.sim.swipe(TAG_2)
        assert await h.cs.wait_for("Authorize", start_index=m) == {"idTag": TAG_2}
        # An empty Differential changes nothing but the version.
        assert await send_local_list(h, 3, "Differential") == "Accepted"
        assert await local_list_version(h) == 3 and len(h.station.local_list) == 2


async def test_tc_043_1_send_local_list_not_supported(tmp_path):
    """TC_043_1_CS Send Local Authorization List - NotSupported: with LocalAuthListEnabled
    false the Full update is refused and its tags are not authorized locally."""
    cfg = keys(LocalAuthListEnabled=False, LocalAuthorizeOffline=True)
    async with AgentHarness(tmp_path, ocpp=cfg) as h:
        await h.wait_status(1, "Available")
        assert await send_local_list(h, 1, "Full", [accepted(TAG)]) == "NotSupported"
        assert len(h.station.local_list) == 0
        await h.go_offline()
        await plug_and_swipe_starts_nothing(h, TAG)


async def test_tc_043_2_send_local_list_version_mismatch(tmp_path):
    """TC_043_2_CS Send Local Authorization List - VersionMismatch."""
    async with AgentHarness(tmp_path, ocpp=keys(LocalAuthListEnabled=True)) as h:
        assert await send_local_list(h, 2, "Full", [accepted(TAG)]) == "Accepted"  # steps 1-2
        assert await local_list_version(h) == 2  # steps 3-4
        assert await send_local_list(h, 5, "Differential", [accepted(TAG_2)]) == "Accepted"  # 5-6
        assert await local_list_version(h) == 5  # steps 7-8
        assert await send_local_list(h, 4, "Differential", [accepted(TAG_3)]) == "VersionMismatch"  # 9-10
        assert await local_list_version(h) == 5  # steps 11-12
        assert await send_local_list(h, 5, "Differential", [accepted(TAG_3)]) == "VersionMismatch"
        assert h.station.local_list.get(TAG_3) is None
        # A Full update replaces the list whatever its version.
        assert await send_local_list(h, 3, "Full", [accepted(TAG_3)]) == "Accepted"
        assert await local_list_version(h) == 3
        assert h.station.local_list.get(TAG) is None


async def test_tc_043_3_send_local_list_failed(tmp_path):
    """TC_043_3_CS Send Local Authorization List - Failed: a Full update (version 2) with more
    entries than SendLocalListMaxLength fails and leaves the list as it was; so does a Full
    entry without idTagInfo and a list with a duplicate idTag."""
    async with AgentHarness(tmp_path, ocpp=keys(LocalAuthListEnabled=True)) as h:
        conf = await h.cs.call("GetConfiguration", key=["SendLocalListMaxLength", "LocalAuthListMaxLength"])
        limits = {k["key"]: (k["readonly"], int(k["value"])) for k in conf["configurationKey"]}
        assert limits["SendLocalListMaxLength"][0] is True and limits["LocalAuthListMaxLength"][0] is True
        n = limits["SendLocalListMaxLength"][1] + 1
        too_many = [accepted("T%06d" % i) for i in range(n)]
        assert await send_local_list(h, 2, "Full", too_many) == "Failed"
        assert await local_list_version(h) == 0 and len(h.station.local_list) == 0
        assert await send_local_list(h, 2, "Full", [{"idTag": TAG}]) == "Failed"
        assert await send_local_list(h, 2, "Full", [accepted(TAG), accepted(TAG.lower())]) == "Failed"
        assert await local_list_version(h) == 0


async def test_local_list_keys_and_profile(tmp_path):
    """LocalAuthListManagement is a supported profile with its keys; the cache and offline keys exist."""
    async with AgentHarness(tmp_path, ocpp=keys()) as h:
        conf = await h.cs.call("GetConfiguration")
        found = {k["key"]: (k["readonly"], k.get("value")) for k in conf["configurationKey"]}
        assert "LocalAuthListManagement" in found["SupportedFeatureProfiles"][1].split(",")
        assert found["LocalAuthListEnabled"] == (False, "true")
        assert found["LocalAuthListMaxLength"][0] is True
        assert found["SendLocalListMaxLength"][0] is True
        assert found["AuthorizationCacheEnabled"] == (False, "true")
        assert found["AllowOfflineTxForUnknownId"] == (False, "false")
        assert found["MaxEnergyOnInvalidId"] == (False, "0")
        assert len(found) <= int(found["GetConfigurationMaxKeys"][1])


# ---------------------------------------------------------------------------- invalid id


async def test_invalid_id_stops_energy_when_not_stopping_transaction(tmp_path):
    """StartTransaction.conf Invalid with StopTransactionOnInvalidId false and no
    MaxEnergyOnInvalidId: the transaction continues but energy delivery stops (SuspendedEVSE)."""
    cs = TestCentralSystem(quiet=True, protocols=("ocpp1.6",), reject_tags=[TAG])
    async with AgentHarness(tmp_path, csms=cs, ocpp=keys(StopTransactionOnInvalidId=False)) as h:
        await h.wait_status(1, "Available")
        m = h.mark()
        h.sim.plug(1)
        await h.wait_status(1, "Preparing", m)
        assert await h.cs.call("RemoteStartTransaction", connectorId=1, idTag=TAG) == {"status": "Accepted"}
        await h.cs.wait_for("StartTransaction", start_index=m)
        await h.wait_status(1, "SuspendedEVSE", m)
        await quiet(h)
        assert_no_power(h)
        assert h.station.connector(1).transaction is not None
        assert "StopTransaction" not in calls_from_agent(h, m)
        assert h.station.auth_cache.get(TAG).status == "invalid"
        energy = hw(h)["energy_wh"]
        await h.clock.advance(600)
        assert hw(h)["energy_wh"] == energy


async def test_max_energy_on_invalid_id(tmp_path):
    """MaxEnergyOnInvalidId: after StartTransaction.conf Invalid (StopTransactionOnInvalidId
    false) charging continues until that much energy was delivered in the transaction,
    then energy delivery stops (SuspendedEVSE) and the transaction stays open."""
    cs = TestCentralSystem(quiet=True, protocols=("ocpp1.6",), reject_tags=[TAG])
    cfg = keys(StopTransactionOnInvalidId=False, MaxEnergyOnInvalidId=500, MeterValueSampleInterval=0)
    async with AgentHarness(tmp_path, csms=cs, ocpp=cfg) as h:
        await h.wait_status(1, "Available")
        m = h.mark()
        h.sim.plug(1)
        await h.wait_status(1, "Preparing", m)
        assert await h.cs.call("RemoteStartTransaction", connectorId=1, idTag=TAG) == {"status": "Accepted"}
        await h.wait_status(1, "Charging", m)
        await until(lambda: replies_to_agent(h, "StartTransaction", m))
        assert replies_to_agent(h, "StartTransaction", m)[0]["idTagInfo"]["status"] == "Invalid"
        await quiet(h)
        assert not h.station.connector(1).transaction.authorized
        assert_charging_hw(h)  # 22 kW: 500 Wh take about 82 s
        await h.clock.advance(60)
        assert_charging_hw(h)
        assert statuses(h, 1, m) == ["Preparing", "Charging"]
        await h.clock.advance(30)
        await h.wait_status(1, "SuspendedEVSE", m)
        await quiet(h)
        assert_no_power(h)
        delivered = hw(h)["energy_wh"]
        assert 500 <= delivered <= 500 + 22080 / 3600 * 1.01  # at most one poll (1 s) over
        await h.clock.advance(600)
        assert hw(h)["energy_wh"] == delivered
        assert h.station.connector(1).transaction is not None
        assert "StopTransaction" not in calls_from_agent(h, m)


async def test_local_list_conflict_is_reported_on_connector_0(tmp_path):
    """§3.5.3: the central system answers Blocked for a tag the local list holds as
    Accepted: StatusNotification on connector 0 with errorCode LocalListConflict; the
    charger's status is unchanged and the list is not altered by the agent."""
    cfg = keys(LocalPreAuthorize=False, LocalAuthListEnabled=True)
    async with AgentHarness(tmp_path, ocpp=cfg) as h:
        await h.wait_status(0, "Available")
        assert await send_local_list(h, 3, "Full", [accepted(TAG)]) == "Accepted"
        h.cs.handlers["Authorize"] = lambda p: {"idTagInfo": {"status": "Blocked"}}
        m = h.mark()
        h.sim.plug(1)
        h.sim.swipe(TAG)
        conflict = await h.cs.wait_for("StatusNotification", lambda p: p["connectorId"] == 0, start_index=m)
        assert conflict["errorCode"] == "LocalListConflict" and conflict["status"] == "Available"
        await quiet(h)
        assert h.station.connector(1).transaction is None
        assert h.station.local_list.get(TAG).status == "accepted"
        assert h.station.status_of(0)[:2] == ("available", "no_error")
