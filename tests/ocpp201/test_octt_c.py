"""OCTT 2.0.1 block C, authorization (spec/OCPP-2.0.1_edition3_part6-testcases.txt): the agent on
the simulated board against the test central system serving ``ocpp2.0.1``, the badge at the
simulated reader (an ISO14443 idToken). Each test follows its case's steps and checks its tool
validations; the configuration state goes over the wire (SetVariables), the memory states
IdTokenCached (a badge the CSMS answered, no EV coming) and IdTokenLocalAuthList (SendLocalList)
as the OCTT builds them. Cases that cannot apply to this station are listed with their reason in
docs/ocpp201.md.
"""

from agent.core import model
from tests.harness import assert_charging_hw, assert_no_power, hw, quiet, until
from tests.ocpp201.octt201 import TAG, configure, errors, harness, received, tx_events, wait_connector

TAG2, OTHER, MASTER = "11223344", "DEADBEEF", "CAFEBABE"
GROUP, MASTER_GROUP = "FAMILY-1", "POLICE"
PAST = "2020-01-01T00:00:00Z"


def token(tag: str) -> dict:
    return {"idToken": tag, "type": "ISO14443"}


def info(status: str, group: str | None = None) -> dict:
    out = {"status": status}
    if group is not None:
        out["groupIdToken"] = {"idToken": group, "type": "Central"}
    return out


def csms_answers(h, infos: dict) -> None:
    """The CSMS's idTokenInfo per idToken in Authorize and TransactionEvent responses (Accepted
    for tokens not in ``infos``); ``infos`` is read at each answer, so a test may change it."""
    def of(tok: dict) -> dict:
        return infos.get(tok["idToken"], {"status": "Accepted"})

    h.cs.handlers["Authorize"] = lambda p: {"idTokenInfo": of(p["idToken"])}
    h.cs.handlers["TransactionEvent"] = lambda p: {"idTokenInfo": of(p["idToken"])} if "idToken" in p else {}


async def cache_token(h, tag: str) -> None:
    """Memory state IdTokenCached: the badge presented without an EV, the CSMS's Authorize answer
    cached; an accepted authorization then lapses (no EV within EVConnectionTimeOut)."""
    await until(lambda: h.agent.client.online)  # booted: the badge is the CSMS's to answer
    m = h.mark()
    h.sim.swipe(tag)
    await h.cs.wait_for("Authorize", lambda p: p["idToken"] == token(tag), start_index=m)
    await until(lambda: h.station.auth_cache.get(tag) is not None)
    c = h.station.connector(1)
    await until(lambda: c.pending_auth is None, clock=h.clock, step_s=5)
    await quiet(h)
    assert not tx_events(h, m)


async def local_list(h, version: int, entries: dict) -> None:
    """Memory state IdTokenLocalAuthList: a Full SendLocalList of ``{tag: idTokenInfo}``."""
    got = await h.cs.call("SendLocalList", versionNumber=version, updateType="Full", localAuthorizationList=[
        {"idToken": token(tag), "idTokenInfo": i} for tag, i in entries.items()])
    assert got == {"status": "Accepted"}


async def ev_connected(h, evse_id: int = 1) -> None:
    """Reusable state EVConnectedPreSession: the EV plugged in, nothing offered yet."""
    m = h.mark()
    h.sim.plug(evse_id)
    await wait_connector(h, "Occupied", evse_id, start=m)
    assert_no_power(h, evse_id)


async def energy_transfer_started(h, m: int, tag: str = TAG, evse_id: int = 1) -> dict:
    """The Started event of ``tag`` after ``m`` (triggerReason Authorized, its idToken), then
    reusable state EnergyTransferStarted: Charging and energy flowing."""
    started = await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Started"
                                  and p["evse"]["id"] == evse_id, start_index=m)
    assert started["idToken"] == token(tag), started
    c = h.station.connector(evse_id)
    await until(lambda: c.status == model.CHARGING, clock=h.clock, step_s=1)
    assert_charging_hw(h, evse_id)
    return started


async def refused(h, m: int, evse_id: int = 1) -> None:
    """No transaction: no TransactionEvent since ``m``, nothing offered, no authorization waiting."""
    await quiet(h)
    await h.clock.advance(5)
    await quiet(h)
    assert not tx_events(h, m)
    assert h.station.connector(evse_id).transaction is None and h.station.connector(evse_id).pending_auth is None
    assert_no_power(h, evse_id)


def ended(h, m: int) -> list:
    return [p for p in tx_events(h, m) if p["eventType"] == "Ended"]


# ---------------------------------------------------------------------- C01: local start refused online

async def _refused_by_the_csms(tmp_path, status: str) -> None:
    """EVConnectedPreSession, badge: AuthorizeRequest with its idToken; the CSMS answers
    ``status``: no TransactionEvent after it, nothing offered."""
    async with harness(tmp_path) as h:
        csms_answers(h, {OTHER: info(status)})
        await ev_connected(h)
        m = h.mark()
        h.sim.swipe(OTHER)
        assert await h.cs.wait_for("Authorize", start_index=m) == {"idToken": token(OTHER)}
        await refused(h, m)
        assert not errors(h)


async def test_tc_c_02_local_start_authorization_invalid(tmp_path):
    await _refused_by_the_csms(tmp_path, "Invalid")


async def test_tc_c_06_local_start_authorization_blocked(tmp_path):
    await _refused_by_the_csms(tmp_path, "Blocked")


async def test_tc_c_07_local_start_authorization_expired(tmp_path):
    await _refused_by_the_csms(tmp_path, "Expired")


async def test_tc_c_56_local_start_authorization_unknown(tmp_path):
    await _refused_by_the_csms(tmp_path, "Unknown")


async def test_tc_c_05_authorization_invalid_before_the_cable_then_no_start(tmp_path):
    """Badge first (no EV), Invalid: no TransactionEvent; an EV plugged in afterwards starts nothing."""
    async with harness(tmp_path) as h:
        csms_answers(h, {OTHER: info("Invalid")})
        await wait_connector(h, "Available")
        m = h.mark()
        h.sim.swipe(OTHER)
        assert await h.cs.wait_for("Authorize", start_index=m) == {"idToken": token(OTHER)}
        await refused(h, m)
        h.sim.plug(1)
        await wait_connector(h, "Occupied", start=m)
        await refused(h, m)


async def test_tc_c_04_local_stop_with_a_different_id_token_does_not_stop(tmp_path):
    """EnergyTransferStarted with TAG; a different badge (not cached, no common group): no
    TransactionEvent with an idToken, no Ended; the energy keeps flowing."""
    async with harness(tmp_path) as h:
        await ev_connected(h)
        m = h.mark()
        h.sim.swipe(TAG)
        await energy_transfer_started(h, m)
        m2 = h.mark()
        h.sim.swipe(OTHER)
        await quiet(h)
        await h.clock.advance(30)
        await quiet(h)
        assert not ended(h, m2) and not [p for p in tx_events(h, m2) if "idToken" in p]
        assert h.station.connector(1).transaction is not None
        assert_charging_hw(h)


# ---------------------------------------------------------------------- C12: the authorization cache

async def test_tc_c_08_cached_accepted_starts_without_authorize(tmp_path):
    async with harness(tmp_path) as h:
        await cache_token(h, TAG)
        await configure(h, {"AuthCacheCtrlr.Enabled": True, "AuthCtrlr.LocalPreAuthorize": True})
        await ev_connected(h)
        m = h.mark()
        h.sim.swipe(TAG)
        started = await energy_transfer_started(h, m)
        assert started["triggerReason"] == "Authorized"
        assert not received(h, "Authorize", m)


async def _cached_not_accepted_is_asked_again(tmp_path, status: str, answer: str) -> None:
    """Cached with ``status``; LocalPreAuthorize, DisablePostAuthorize false: the badge brings an
    AuthorizeRequest (C10.FR.03, C12.FR.05); the CSMS answers ``answer``."""
    async with harness(tmp_path) as h:
        infos = {TAG: info(status)}
        csms_answers(h, infos)
        await cache_token(h, TAG)
        assert h.station.auth_cache.get(TAG).status == model.neutral(status)
        await configure(h, {"AuthCacheCtrlr.Enabled": True, "AuthCtrlr.LocalPreAuthorize": True,
                            "AuthCacheCtrlr.DisablePostAuthorize": False})
        infos[TAG] = info(answer)
        await ev_connected(h)
        m = h.mark()
        h.sim.swipe(TAG)
        assert await h.cs.wait_for("Authorize", start_index=m) == {"idToken": token(TAG)}
        if answer == "Accepted":
            await energy_transfer_started(h, m)  # TC_C_12
            assert h.station.auth_cache.get(TAG).accepted  # the answer is cached (C10.FR.04)
        else:
            await refused(h, m)


async def test_tc_c_09_cached_invalid_asked_again_invalid(tmp_path):
    await _cached_not_accepted_is_asked_again(tmp_path, "Invalid", "Invalid")


async def test_tc_c_10_cached_blocked_asked_again_blocked(tmp_path):
    await _cached_not_accepted_is_asked_again(tmp_path, "Blocked", "Blocked")


async def test_tc_c_11_cached_expired_asked_again_expired(tmp_path):
    await _cached_not_accepted_is_asked_again(tmp_path, "Expired", "Expired")


async def test_tc_c_12_cached_invalid_accepted_by_the_csms_starts(tmp_path):
    await _cached_not_accepted_is_asked_again(tmp_path, "Invalid", "Accepted")


async def test_tc_c_57_auth_cache_disable_post_authorize_refuses_without_authorize(tmp_path):
    async with harness(tmp_path) as h:
        csms_answers(h, {TAG: info("Invalid")})
        await cache_token(h, TAG)
        await configure(h, {"AuthCacheCtrlr.Enabled": True, "AuthCtrlr.LocalPreAuthorize": True,
                            "AuthCacheCtrlr.DisablePostAuthorize": True})
        await ev_connected(h)
        m = h.mark()
        h.sim.swipe(TAG)
        await refused(h, m)
        assert not received(h, "Authorize", m)


async def test_tc_c_13_cached_accepted_before_the_cable(tmp_path):
    """Cached Accepted, badge before the EV: no AuthorizeRequest; TxStartPoint PowerPathClosed, so
    the transaction starts when the EV is plugged in (step 1 applies to TxStartPoint Authorized),
    with the badge's idToken, and energy flows."""
    async with harness(tmp_path) as h:
        await cache_token(h, TAG)
        await configure(h, {"AuthCacheCtrlr.Enabled": True, "AuthCtrlr.LocalPreAuthorize": True})
        m = h.mark()
        h.sim.swipe(TAG)
        await until(lambda: h.station.connector(1).pending_auth is not None)
        assert_no_power(h)
        h.sim.plug(1)
        await energy_transfer_started(h, m)
        assert not received(h, "Authorize", m)


async def test_tc_c_14_cached_master_pass_stops_the_transaction(tmp_path):
    """A master pass badge in the cache: no AuthorizeRequest; the transaction ends, triggerReason
    StopAuthorized, its idToken, stoppedReason MasterPass; the energy stops."""
    async with harness(tmp_path) as h:
        csms_answers(h, {MASTER: info("Accepted", MASTER_GROUP)})
        await configure(h, {"AuthCacheCtrlr.Enabled": True, "AuthCtrlr.LocalPreAuthorize": True,
                            "AuthCtrlr.MasterPassGroupId": MASTER_GROUP})
        await cache_token(h, MASTER)
        await ev_connected(h)
        m = h.mark()
        h.sim.swipe(TAG)
        await energy_transfer_started(h, m)
        m2 = h.mark()
        h.sim.swipe(MASTER)
        end = await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Ended", start_index=m2)
        assert end["triggerReason"] == "StopAuthorized" and end["idToken"] == token(MASTER)
        assert end["transactionInfo"]["stoppedReason"] == "MasterPass"
        assert not received(h, "Authorize", m2)
        await quiet(h)
        assert_no_power(h)


async def _offline_start_then_invalid(h, max_energy_wh: int, stop_on_invalid: bool) -> tuple:
    """TC_C_15..18: a cached valid badge; the connection lost and no reconnection; badge with the
    EV plugged in: the transaction starts offline; then the CSMS is back and answers Invalid.
    Returns (the index the queue's events start at, the transaction id)."""
    infos = {}
    csms_answers(h, infos)
    await cache_token(h, TAG)
    await configure(h, {"AuthCacheCtrlr.Enabled": True, "AuthCtrlr.LocalPreAuthorize": True,
                        "AuthCtrlr.LocalAuthorizeOffline": True, "AuthCtrlr.OfflineTxForUnknownIdEnabled": True,
                        "TxCtrlr.StopTxOnInvalidId": stop_on_invalid,
                        "TxCtrlr.MaxEnergyOnInvalidId": max_energy_wh})
    await ev_connected(h)
    infos[TAG] = info("Invalid")
    port = await h.go_offline()
    m = h.mark()
    h.sim.swipe(TAG)
    c = h.station.connector(1)
    await until(lambda: c.status == model.CHARGING, clock=h.clock, step_s=1)
    assert_charging_hw(h)
    tx_id = c.transaction.id
    await h.clock.advance(5)
    await h.go_online(port)
    await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Started", start_index=m)
    queued = [p for p in tx_events(h, m) if p["offline"]]
    assert queued[0]["eventType"] == "Started" and queued[0]["triggerReason"] == "Authorized"
    assert queued[0]["idToken"] == token(TAG)
    assert any(p["triggerReason"] == "ChargingStateChanged" for p in queued)  # step 3: Charging, offline
    return m, tx_id


def suspended_evse(events: list) -> list:
    return [p for p in events if p["triggerReason"] == "ChargingStateChanged"
            and p["transactionInfo"].get("chargingState") == "SuspendedEVSE"]


async def test_tc_c_15_offline_cached_then_invalid_charges_up_to_max_energy_on_invalid_id(tmp_path):
    async with harness(tmp_path) as h:
        m, tx_id = await _offline_start_then_invalid(h, 10_000, stop_on_invalid=False)
        start_wh = h.station.connector(1).transaction.meter_start_wh
        await quiet(h)
        await h.clock.advance(10)
        await quiet(h)
        evs = tx_events(h, m)
        assert not [p for p in evs if p["triggerReason"] == "Deauthorized"] and not suspended_evse(evs)
        assert_charging_hw(h)  # energy goes on within MaxEnergyOnInvalidId
        await until(lambda: suspended_evse(tx_events(h, m)), timeout_s=20, clock=h.clock, step_s=30)
        await quiet(h)
        assert_no_power(h)
        delivered_wh = hw(h)["energy_wh"] - start_wh  # post-scenario: only MaxEnergyOnInvalidId delivered
        assert 10_000 <= delivered_wh < 10_000 + 200, delivered_wh
        assert h.station.connector(1).transaction.id == tx_id and not ended(h, m)


async def test_tc_c_16_offline_cached_then_invalid_stop_tx_on_invalid_id_deauthorizes(tmp_path):
    async with harness(tmp_path) as h:
        m, tx_id = await _offline_start_then_invalid(h, 0, stop_on_invalid=True)
        end = await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Ended", start_index=m)
        assert end["triggerReason"] == "Deauthorized" and end["transactionInfo"]["transactionId"] == tx_id
        assert end["transactionInfo"]["stoppedReason"] == "DeAuthorized" and end["offline"] is False
        await quiet(h)
        assert_no_power(h)


async def test_tc_c_17_offline_cached_then_invalid_without_stop_suspends_evse(tmp_path):
    async with harness(tmp_path) as h:
        m, tx_id = await _offline_start_then_invalid(h, 0, stop_on_invalid=False)
        await until(lambda: suspended_evse(tx_events(h, m)), clock=h.clock, step_s=1)
        await quiet(h)
        assert_no_power(h)
        assert not ended(h, m) and h.station.connector(1).transaction.id == tx_id
        assert "SuspendedEVSE" not in {p["triggerReason"] for p in tx_events(h, m)}


async def test_tc_c_18_offline_cached_then_invalid_stop_tx_on_invalid_id_with_max_energy(tmp_path):
    async with harness(tmp_path) as h:
        m, tx_id = await _offline_start_then_invalid(h, 500, stop_on_invalid=True)
        end = await h.cs.wait_for("TransactionEvent", lambda p: p["triggerReason"] == "Deauthorized",
                                  start_index=m)
        assert end["offline"] is False and end["transactionInfo"]["transactionId"] == tx_id  # step 5
        await quiet(h)
        assert_no_power(h)


# ---------------------------------------------------------------------- C13/C15: offline, local list

async def test_tc_c_21_offline_local_list_accepted_start_and_stop(tmp_path):
    """StartOfflineTransaction with a badge of the local list (LocalAuthorizeOffline,
    OfflineTxForUnknownIdEnabled false); back online the queue goes out offline=true; the badge
    again stops it: StopAuthorized."""
    async with harness(tmp_path) as h:
        await until(lambda: h.agent.client.online)
        await local_list(h, 1, {TAG: info("Accepted")})
        await configure(h, {"LocalAuthListCtrlr.Enabled": True, "AuthCtrlr.LocalPreAuthorize": True,
                            "AuthCtrlr.OfflineTxForUnknownIdEnabled": False, "AuthCtrlr.LocalAuthorizeOffline": True})
        port = await h.go_offline()
        m = h.mark()
        h.sim.swipe(TAG)
        await until(lambda: h.station.connector(1).pending_auth is not None)
        h.sim.plug(1)
        await until(lambda: h.station.connector(1).status == model.CHARGING, clock=h.clock, step_s=1)
        await h.go_online(port)
        await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Started", start_index=m)
        await quiet(h)
        m2 = h.mark()
        h.sim.swipe(TAG)
        stop = await h.cs.wait_for("TransactionEvent", lambda p: p["triggerReason"] == "StopAuthorized",
                                   start_index=m2)
        assert stop["idToken"] == token(TAG)
        before = tx_events(h, m)[:tx_events(h, m).index(stop)]
        assert before and all(p["offline"] is True for p in before), before
        assert not received(h, "Authorize", m)
        h.sim.unplug(1)
        await quiet(h)
        assert_no_power(h)


async def _offline_listed_not_valid(tmp_path, status: str) -> None:
    """Offline, a badge the local list holds as ``status``: nothing starts; back online, no
    TransactionEvent (step 5 exists only with TxStartPoint ParkingBayOccupancy, which needs a bay
    sensor this station has not) and no AuthorizeRequest for a decision already made."""
    async with harness(tmp_path) as h:
        await until(lambda: h.agent.client.online)
        await local_list(h, 1, {TAG: info(status)})
        await configure(h, {"LocalAuthListCtrlr.Enabled": True, "AuthCtrlr.LocalPreAuthorize": True,
                            "AuthCtrlr.OfflineTxForUnknownIdEnabled": False, "AuthCtrlr.LocalAuthorizeOffline": True,
                            "OCPPCommCtrlr.RetryBackOffRandomRange": 0})
        port = await h.go_offline()
        m = h.mark()
        h.sim.swipe(TAG)
        await refused(h, m)
        await h.go_online(port)
        await refused(h, m)
        assert not received(h, "Authorize", m)


async def test_tc_c_22_offline_local_list_invalid(tmp_path):
    await _offline_listed_not_valid(tmp_path, "Invalid")


async def test_tc_c_23_offline_local_list_blocked(tmp_path):
    await _offline_listed_not_valid(tmp_path, "Blocked")


async def test_tc_c_24_offline_local_list_expired(tmp_path):
    await _offline_listed_not_valid(tmp_path, "Expired")


async def test_tc_c_25_offline_local_list_wins_over_the_cache(tmp_path):
    """Cached Accepted, but Invalid in the local list; offline with the EV plugged in
    (OfflineTxForUnknownIdEnabled, LocalAuthorizeOffline): no transaction, before or after the
    reconnection."""
    async with harness(tmp_path) as h:
        await cache_token(h, TAG)
        await local_list(h, 1, {TAG: info("Invalid")})
        assert h.station.auth_cache.get(TAG).accepted
        await configure(h, {"LocalAuthListCtrlr.Enabled": True, "AuthCtrlr.LocalPreAuthorize": True,
                            "AuthCtrlr.OfflineTxForUnknownIdEnabled": True, "AuthCtrlr.LocalAuthorizeOffline": True,
                            "TxCtrlr.StopTxOnInvalidId": False})
        await ev_connected(h)
        port = await h.go_offline()
        m = h.mark()
        h.sim.swipe(TAG)
        await refused(h, m)
        await h.go_online(port)
        await refused(h, m)


async def test_tc_c_26_offline_unknown_id_started_then_invalid_suspends_then_stop_authorized(tmp_path):
    """StartOfflineTransaction with an unknown badge (OfflineTxForUnknownIdEnabled, StopTxOnInvalidId
    false, MaxEnergyOnInvalidId 0): the queued events go out offline=true; the CSMS answers
    Invalid: chargingState SuspendedEVSE, no energy; the badge again: StopAuthorized."""
    async with harness(tmp_path) as h:
        csms_answers(h, {OTHER: info("Invalid")})
        await until(lambda: h.agent.client.online)
        await configure(h, {"LocalAuthListCtrlr.Enabled": True, "AuthCtrlr.LocalPreAuthorize": True,
                            "AuthCtrlr.OfflineTxForUnknownIdEnabled": True, "AuthCtrlr.LocalAuthorizeOffline": True,
                            "TxCtrlr.MaxEnergyOnInvalidId": 0, "TxCtrlr.StopTxOnInvalidId": False})
        port = await h.go_offline()
        m = h.mark()
        h.sim.swipe(OTHER)
        await until(lambda: h.station.connector(1).pending_auth is not None)
        h.sim.plug(1)
        await until(lambda: h.station.connector(1).status == model.CHARGING, clock=h.clock, step_s=1)
        await h.go_online(port)
        await until(lambda: suspended_evse(tx_events(h, m)), clock=h.clock, step_s=1)
        queued = [p for p in tx_events(h, m) if p["offline"]]
        assert queued[0]["eventType"] == "Started" and queued[0]["idToken"] == token(OTHER)
        assert tx_events(h, m)[:len(queued)] == queued  # the queue first, all offline
        await quiet(h)
        assert_no_power(h)
        m2 = h.mark()
        h.sim.swipe(OTHER)
        stop = await h.cs.wait_for("TransactionEvent", lambda p: p["triggerReason"] == "StopAuthorized",
                                   start_index=m2)
        assert stop["eventType"] == "Ended"
        h.sim.unplug(1)
        await wait_connector(h, "Available", start=m2)


# ---------------------------------------------------------------------- C14: online, local list

async def test_tc_c_27_online_local_list_accepted_starts_without_authorize(tmp_path):
    async with harness(tmp_path) as h:
        await until(lambda: h.agent.client.online)
        await local_list(h, 1, {TAG: info("Accepted")})
        await configure(h, {"LocalAuthListCtrlr.Enabled": True, "AuthCtrlr.LocalPreAuthorize": True})
        m = h.mark()
        h.sim.swipe(TAG)
        await until(lambda: h.station.connector(1).pending_auth is not None)
        h.sim.plug(1)  # EVConnectedPreSession
        await energy_transfer_started(h, m)
        assert not received(h, "Authorize", m)


async def _listed_not_accepted(tmp_path, status: str, answer: str, disable_post_authorize: bool = False) -> None:
    async with harness(tmp_path) as h:
        csms_answers(h, {TAG: info(answer)})
        await until(lambda: h.agent.client.online)
        await local_list(h, 1, {TAG: info(status)})
        await configure(h, {"LocalAuthListCtrlr.Enabled": True, "AuthCtrlr.LocalPreAuthorize": True,
                            "LocalAuthListCtrlr.DisablePostAuthorize": disable_post_authorize})
        await ev_connected(h)
        m = h.mark()
        h.sim.swipe(TAG)
        if disable_post_authorize:
            await refused(h, m)  # TC_C_58: no AuthorizeRequest, refused
            assert not received(h, "Authorize", m)
            return
        assert await h.cs.wait_for("Authorize", start_index=m) == {"idToken": token(TAG)}
        if answer == "Accepted":
            await energy_transfer_started(h, m)
        else:
            await refused(h, m)


async def test_tc_c_28_online_local_list_invalid_asked_again_invalid(tmp_path):
    await _listed_not_accepted(tmp_path, "Invalid", "Invalid")


async def test_tc_c_29_online_local_list_blocked_asked_again_blocked(tmp_path):
    await _listed_not_accepted(tmp_path, "Blocked", "Blocked")


async def test_tc_c_30_online_local_list_expired_asked_again_expired(tmp_path):
    await _listed_not_accepted(tmp_path, "Expired", "Expired")


async def test_tc_c_31_online_local_list_invalid_accepted_by_the_csms_starts(tmp_path):
    await _listed_not_accepted(tmp_path, "Invalid", "Accepted")


async def test_tc_c_58_local_list_disable_post_authorize_refuses_without_authorize(tmp_path):
    await _listed_not_accepted(tmp_path, "Invalid", "Accepted", disable_post_authorize=True)


# ---------------------------------------------------------------------- C10/C11: storing, clearing the cache

async def test_tc_c_32_cache_persists_over_a_reboot(tmp_path):
    async with harness(tmp_path) as h:
        await cache_token(h, TAG)
        await configure(h, {"AuthCacheCtrlr.Enabled": True, "AuthCtrlr.LocalPreAuthorize": True})
        await h.restart_agent()  # reusable state Booted
        await h.cs.wait_for("BootNotification", start_index=h.mark() - 1)
        await until(lambda: h.agent.client.online)
        m = h.mark()
        h.sim.swipe(TAG)
        await until(lambda: h.station.connector(1).pending_auth is not None)
        h.sim.plug(1)
        await energy_transfer_started(h, m)
        assert not received(h, "Authorize", m)


async def test_tc_c_33_cache_updated_on_authorize_response(tmp_path):
    """Badge with the EV: AuthorizeRequest, Accepted, Started (Authorized); after the session the
    same badge starts the next one from the cache: Started without an AuthorizeRequest."""
    async with harness(tmp_path) as h:
        await until(lambda: h.agent.client.online)
        await configure(h, {"AuthCacheCtrlr.Enabled": True, "AuthCtrlr.LocalPreAuthorize": True,
                            "LocalAuthListCtrlr.Enabled": True})
        await ev_connected(h)
        m = h.mark()
        h.sim.swipe(TAG)
        assert await h.cs.wait_for("Authorize", start_index=m) == {"idToken": token(TAG)}
        started = await energy_transfer_started(h, m)
        assert started["triggerReason"] == "Authorized" and received(h, "Authorize", m) == [{"idToken": token(TAG)}]
        h.sim.swipe(TAG)
        await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Ended", start_index=m)
        h.sim.unplug(1)
        await wait_connector(h, "Available", start=m)
        await ev_connected(h)
        m2 = h.mark()
        h.sim.swipe(TAG)
        again = await energy_transfer_started(h, m2)
        assert again["triggerReason"] == "Authorized" and not received(h, "Authorize", m2)  # step 12


async def test_tc_c_34_cache_updated_on_transaction_event_response(tmp_path):
    """Cached Accepted: the badge starts at once (Started, Authorized); the CSMS answers Invalid;
    the next time the same badge is asked about: AuthorizeRequest."""
    async with harness(tmp_path) as h:
        infos = {}
        csms_answers(h, infos)
        await cache_token(h, TAG)
        await configure(h, {"AuthCacheCtrlr.Enabled": True, "AuthCtrlr.LocalPreAuthorize": True,
                            "LocalAuthListCtrlr.Enabled": True})
        infos[TAG] = info("Invalid")
        await ev_connected(h)
        m = h.mark()
        h.sim.swipe(TAG)
        started = await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Started", start_index=m)
        assert started["triggerReason"] == "Authorized" and started["idToken"] == token(TAG)
        assert not received(h, "Authorize", m)
        await until(lambda: h.station.auth_cache.get(TAG).status == model.AUTH_INVALID)
        await until(lambda: h.station.connector(1).transaction is None, clock=h.clock, step_s=1)
        h.sim.unplug(1)
        await wait_connector(h, "Available", start=m)
        await ev_connected(h)
        m2 = h.mark()
        h.sim.swipe(TAG)
        assert await h.cs.wait_for("Authorize", start_index=m2) == {"idToken": token(TAG)}  # step 7
        await refused(h, m2)


async def test_tc_c_36_local_pre_authorize_false_asks_the_csms(tmp_path):
    async with harness(tmp_path) as h:
        infos = {}
        csms_answers(h, infos)
        await cache_token(h, TAG)
        await configure(h, {"AuthCacheCtrlr.Enabled": True, "AuthCtrlr.LocalPreAuthorize": False})
        infos[TAG] = info("Invalid")
        await ev_connected(h)
        m = h.mark()
        h.sim.swipe(TAG)
        assert await h.cs.wait_for("Authorize", start_index=m) == {"idToken": token(TAG)}
        await refused(h, m)


async def test_tc_c_37_clear_cache_accepted_then_the_badge_is_asked_about(tmp_path):
    async with harness(tmp_path) as h:
        await cache_token(h, TAG)
        await configure(h, {"AuthCacheCtrlr.Enabled": True, "AuthCtrlr.LocalPreAuthorize": True})
        assert await h.cs.call("ClearCache") == {"status": "Accepted"}
        assert len(h.station.auth_cache) == 0
        await ev_connected(h)
        m = h.mark()
        h.sim.swipe(TAG)
        assert await h.cs.wait_for("Authorize", start_index=m) == {"idToken": token(TAG)}  # step 5
        started = await energy_transfer_started(h, m)
        assert started["triggerReason"] == "Authorized"


async def test_tc_c_38_clear_cache_rejected_while_the_cache_is_disabled(tmp_path):
    async with harness(tmp_path) as h:
        await cache_token(h, TAG)
        await configure(h, {"AuthCacheCtrlr.Enabled": False})
        assert await h.cs.call("ClearCache") == {"status": "Rejected"}
        assert h.station.auth_cache.get(TAG) is not None


async def test_tc_c_46_auth_cache_lifetime_ends_a_cached_entry(tmp_path):
    """AuthCacheCtrlr.LifeTime: within it the cached badge starts without asking; once more than
    LifeTime seconds passed since its information was last updated, the badge is asked about."""
    async with harness(tmp_path) as h:
        await configure(h, {"AuthCacheCtrlr.LifeTime": 600, "AuthCtrlr.LocalPreAuthorize": True})
        await cache_token(h, TAG)
        await cache_token(h, TAG2)
        await ev_connected(h)
        m = h.mark()
        h.sim.swipe(TAG2)  # within LifeTime: from the cache
        await energy_transfer_started(h, m, TAG2)
        assert not received(h, "Authorize", m)
        h.sim.swipe(TAG2)
        await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Ended", start_index=m)
        h.sim.unplug(1)
        await wait_connector(h, "Available", start=m)
        await h.clock.advance(601)  # step 1: wait longer than LifeTime
        await ev_connected(h)
        m2 = h.mark()
        h.sim.swipe(TAG)
        assert await h.cs.wait_for("Authorize", start_index=m2) == {"idToken": token(TAG)}  # Authorized (local)
        await energy_transfer_started(h, m2)


# ---------------------------------------------------------------------- C09: group ids

async def _started_with_group(h, m: int) -> None:
    started = await energy_transfer_started(h, m)
    assert started["triggerReason"] == "Authorized"
    await until(lambda: h.station.connector(1).transaction.parent_id_tag == GROUP)


async def test_tc_c_39_group_id_stops_with_another_badge_of_the_group(tmp_path):
    async with harness(tmp_path) as h:
        csms_answers(h, {TAG: info("Accepted", GROUP), TAG2: info("Accepted", GROUP)})
        await ev_connected(h)
        m = h.mark()
        h.sim.swipe(TAG)
        assert await h.cs.wait_for("Authorize", start_index=m) == {"idToken": token(TAG)}
        await _started_with_group(h, m)
        m2 = h.mark()
        h.sim.swipe(TAG2)
        assert await h.cs.wait_for("Authorize", start_index=m2) == {"idToken": token(TAG2)}  # step 6
        stop = await h.cs.wait_for("TransactionEvent", lambda p: p["triggerReason"] == "StopAuthorized",
                                   start_index=m2)
        assert stop["idToken"] == token(TAG2) and stop["eventType"] == "Ended"  # TxStopPoint Authorized
        await quiet(h)
        assert_no_power(h)


async def test_tc_c_42_group_id_invalid_badge_does_not_stop(tmp_path):
    async with harness(tmp_path) as h:
        csms_answers(h, {TAG: info("Accepted", GROUP), OTHER: info("Invalid", GROUP)})
        await ev_connected(h)
        m = h.mark()
        h.sim.swipe(TAG)
        await _started_with_group(h, m)
        m2 = h.mark()
        h.sim.swipe(OTHER)
        assert await h.cs.wait_for("Authorize", start_index=m2) == {"idToken": token(OTHER)}
        await quiet(h)
        await h.clock.advance(10)
        await quiet(h)
        assert not tx_events(h, m2) or all(p["eventType"] == "Updated" and "idToken" not in p for p in tx_events(h, m2))
        assert_charging_hw(h)


async def _group_from_store(tmp_path, store: str, second_status: str) -> None:
    """TC_C_40/41/43/44: both badges of GROUP in the local list or the cache; the first starts
    without an AuthorizeRequest. A valid second badge stops it (StopAuthorized, its idToken) from
    the store; an invalid one is asked about (post-authorize) and does not."""
    async with harness(tmp_path) as h:
        infos = {TAG: info("Accepted", GROUP), TAG2: info(second_status, GROUP)}
        csms_answers(h, infos)
        if store == "cache":
            await cache_token(h, TAG)
            await cache_token(h, TAG2)
            await configure(h, {"AuthCacheCtrlr.Enabled": True, "AuthCtrlr.LocalPreAuthorize": True,
                                "AuthCacheCtrlr.DisablePostAuthorize": False})
        else:
            await until(lambda: h.agent.client.online)
            await local_list(h, 1, infos)
            await configure(h, {"LocalAuthListCtrlr.Enabled": True, "AuthCtrlr.LocalPreAuthorize": True})
        await ev_connected(h)
        m = h.mark()
        h.sim.swipe(TAG)
        await _started_with_group(h, m)
        assert not received(h, "Authorize", m)
        m2 = h.mark()
        h.sim.swipe(TAG2)
        if second_status == "Accepted":
            stop = await h.cs.wait_for("TransactionEvent", lambda p: p["triggerReason"] == "StopAuthorized",
                                       start_index=m2)
            assert stop["idToken"] == token(TAG2) and not received(h, "Authorize", m2)
            await quiet(h)
            assert_no_power(h)
        else:
            assert await h.cs.wait_for("Authorize", start_index=m2) == {"idToken": token(TAG2)}
            await quiet(h)
            await h.clock.advance(10)
            await quiet(h)
            assert not ended(h, m2) and not [p for p in tx_events(h, m2) if "idToken" in p]
            assert_charging_hw(h)


async def test_tc_c_40_group_id_with_the_local_list(tmp_path):
    await _group_from_store(tmp_path, "local list", "Accepted")


async def test_tc_c_41_group_id_with_the_cache(tmp_path):
    await _group_from_store(tmp_path, "cache", "Accepted")


async def test_tc_c_43_group_id_invalid_badge_in_the_local_list(tmp_path):
    await _group_from_store(tmp_path, "local list", "Invalid")


async def test_tc_c_44_group_id_invalid_badge_in_the_cache(tmp_path):
    await _group_from_store(tmp_path, "cache", "Invalid")


# ---------------------------------------------------------------------- C16: master pass

async def test_tc_c_45_master_pass_cannot_start_a_transaction(tmp_path):
    async with harness(tmp_path) as h:
        csms_answers(h, {MASTER: info("Accepted", MASTER_GROUP)})
        await until(lambda: h.agent.client.online)
        await configure(h, {"AuthCtrlr.MasterPassGroupId": MASTER_GROUP})
        m = h.mark()
        h.sim.swipe(MASTER)
        assert await h.cs.wait_for("Authorize", start_index=m) == {"idToken": token(MASTER)}
        await refused(h, m)
        h.sim.plug(1)  # EVConnectedPreSession
        await wait_connector(h, "Occupied", start=m)
        await refused(h, m)


async def test_tc_c_49_master_pass_without_ui_stops_every_transaction(tmp_path):
    """Transactions on EVSE 1 (TAG) and EVSE 2 (TAG2); the master pass badge: AuthorizeRequest,
    Accepted with the MasterPassGroupId group; both end (C16.FR.02), stoppedReason MasterPass,
    its idToken; no energy on either."""
    async with harness(tmp_path, board={"evse": {"connectors": 2}}) as h:
        csms_answers(h, {MASTER: info("Accepted", MASTER_GROUP)})
        await until(lambda: h.agent.client.online)
        await configure(h, {"AuthCtrlr.MasterPassGroupId": MASTER_GROUP})
        for evse_id, tag in ((1, TAG), (2, TAG2)):
            await ev_connected(h, evse_id)
            m = h.mark()
            h.sim.swipe(tag)
            await energy_transfer_started(h, m, tag, evse_id)
        m = h.mark()
        h.sim.swipe(MASTER)
        assert await h.cs.wait_for("Authorize", start_index=m) == {"idToken": token(MASTER)}
        await until(lambda: len(ended(h, m)) == 2, clock=h.clock, step_s=1)
        for end in ended(h, m):
            assert end["transactionInfo"]["stoppedReason"] == "MasterPass" and end["idToken"] == token(MASTER)
            assert end["triggerReason"] == "StopAuthorized"
        assert sorted(e["evse"]["id"] for e in ended(h, m)) == [1, 2]
        await quiet(h)
        assert_no_power(h, 1)
        assert_no_power(h, 2)


# ---------------------------------------------------------------------- beyond the OCTT cases

async def test_disable_remote_authorization_decides_from_the_cache_and_the_list_only(tmp_path):
    """AuthCtrlr.DisableRemoteAuthorization: no AuthorizeRequest at all; a cached badge starts, an
    unknown one is refused (the appendix's definition of the variable)."""
    async with harness(tmp_path) as h:
        await cache_token(h, TAG)
        await configure(h, {"AuthCtrlr.DisableRemoteAuthorization": True, "AuthCtrlr.LocalPreAuthorize": True})
        await ev_connected(h)
        m = h.mark()
        h.sim.swipe(OTHER)
        await refused(h, m)
        h.sim.swipe(TAG)
        await energy_transfer_started(h, m)
        assert not received(h, "Authorize", m)


async def test_cache_expiry_date_time_rules_over_the_lifetime_c10_fr_13(tmp_path):
    """An idTokenInfo with cacheExpiryDateTime in the future stays in the cache past LifeTime; one
    with a cacheExpiryDateTime in the past is not used: the badge is asked about again."""
    async with harness(tmp_path) as h:
        csms_answers(h, {TAG: dict(info("Accepted"), cacheExpiryDateTime="2099-01-01T00:00:00Z"),
                         TAG2: dict(info("Accepted"), cacheExpiryDateTime=PAST)})
        await configure(h, {"AuthCacheCtrlr.LifeTime": 60, "AuthCtrlr.LocalPreAuthorize": True})
        await cache_token(h, TAG2)
        await cache_token(h, TAG)
        await h.clock.advance(120)  # past LifeTime
        await ev_connected(h)
        m = h.mark()
        h.sim.swipe(TAG2)
        assert await h.cs.wait_for("Authorize", start_index=m) == {"idToken": token(TAG2)}
        await energy_transfer_started(h, m, TAG2)
        h.sim.swipe(TAG2)
        await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Ended", start_index=m)
        h.sim.unplug(1)
        await wait_connector(h, "Available", start=m)
        await ev_connected(h)
        m2 = h.mark()
        h.sim.swipe(TAG)
        await energy_transfer_started(h, m2)
        assert not received(h, "Authorize", m2)
