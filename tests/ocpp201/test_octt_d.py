"""OCTT 2.0.1 block D, the local authorization list (spec/OCPP-2.0.1_edition3_part6-testcases.txt):
SendLocalList and GetLocalListVersion from the test central system to the agent on the
simulated board, each case's steps and tool validations; what the list then decides is checked
at the reader (a listed badge starts without an AuthorizeRequest when LocalPreAuthorize is true).
"""

from agent.core import model
from tests.harness import quiet, until
from tests.ocpp201.octt201 import TAG, configure, harness, received

TAG2 = "11223344"
VERSION = 5  # <Configured versionNumber> (> 1, TC_D_06)


def entry(tag: str, status: str | None = "Accepted") -> dict:
    out = {"idToken": {"idToken": tag, "type": "ISO14443"}}
    if status is not None:
        out["idTokenInfo"] = {"status": status}
    return out


async def send(h, update_type: str, version: int, entries: list | None) -> dict:
    payload = {"versionNumber": version, "updateType": update_type}
    if entries is not None:
        payload["localAuthorizationList"] = entries
    return await h.cs.call("SendLocalList", **payload)


async def version(h) -> int:
    return (await h.cs.call("GetLocalListVersion"))["versionNumber"]


async def listed(h, versions: int = VERSION) -> None:
    """Memory state IdTokenLocalAuthList: TAG in a Full list of version ``versions``."""
    assert await send(h, "Full", versions, [entry(TAG)]) == {"status": "Accepted"}


async def starts_without_authorize(h, tag: str) -> bool:
    """Whether ``tag`` at the reader is authorized from the list (no AuthorizeRequest), with
    LocalPreAuthorize true. The authorization (no EV plugged in) is dropped afterwards."""
    await configure(h, {"AuthCtrlr.LocalPreAuthorize": True})
    m = h.mark()
    h.sim.swipe(tag)
    c = h.station.connector(1)
    await quiet(h)
    await until(lambda: c.pending_auth is not None or received(h, "Authorize", m), clock=h.clock, step_s=0.1)
    from_list = c.pending_auth is not None and not received(h, "Authorize", m)
    await until(lambda: c.pending_auth is None, clock=h.clock, step_s=5)  # no EV: EVConnectionTimeOut
    return from_list


async def test_tc_d_01_send_local_list_full(tmp_path):
    async with harness(tmp_path) as h:
        await until(lambda: h.agent.client.online)
        assert await send(h, "Full", VERSION, [entry(TAG)]) == {"status": "Accepted"}
        assert await version(h) == VERSION
        assert h.station.local_list.get(TAG).status == model.AUTH_ACCEPTED
        assert await starts_without_authorize(h, TAG)


async def test_tc_d_02_send_local_list_differential_update(tmp_path):
    async with harness(tmp_path) as h:
        await until(lambda: h.agent.client.online)
        await listed(h)
        assert await send(h, "Differential", VERSION + 1, [entry(TAG2)]) == {"status": "Accepted"}
        assert await version(h) == VERSION + 1
        assert len(h.station.local_list) == 2  # TAG kept, TAG2 added
        assert await starts_without_authorize(h, TAG2)


async def test_tc_d_03_send_local_list_differential_remove(tmp_path):
    async with harness(tmp_path) as h:
        await until(lambda: h.agent.client.online)
        await listed(h)
        assert await send(h, "Differential", VERSION + 1, [entry(TAG, None)]) == {"status": "Accepted"}
        assert await version(h) == VERSION + 1
        assert TAG not in h.station.local_list
        assert not await starts_without_authorize(h, TAG)  # asked about again


async def test_tc_d_04_send_local_list_full_with_an_empty_list_keeps_its_version(tmp_path):
    async with harness(tmp_path) as h:
        await until(lambda: h.agent.client.online)
        await listed(h, VERSION - 1)
        assert await send(h, "Full", VERSION, None) == {"status": "Accepted"}
        assert await version(h) == VERSION  # the list is empty; its version is the update's
        assert len(h.station.local_list) == 0


async def test_tc_d_05_send_local_list_differential_with_an_empty_list(tmp_path):
    async with harness(tmp_path) as h:
        await until(lambda: h.agent.client.online)
        await listed(h)
        assert await send(h, "Differential", VERSION + 1, None) == {"status": "Accepted"}  # no entries (minItems 1)
        assert await version(h) == VERSION + 1
        assert h.station.local_list.get(TAG).status == model.AUTH_ACCEPTED


async def test_tc_d_06_send_local_list_version_mismatch(tmp_path):
    async with harness(tmp_path) as h:
        await until(lambda: h.agent.client.online)
        await listed(h)
        got = await send(h, "Differential", VERSION - 1, [entry(TAG2)])
        assert got == {"status": "VersionMismatch"}
        assert await version(h) == VERSION
        assert TAG2 not in h.station.local_list


async def test_tc_d_07_local_list_persists_over_a_reboot(tmp_path):
    async with harness(tmp_path) as h:
        await until(lambda: h.agent.client.online)
        await listed(h)
        m = h.mark()
        await h.restart_agent()  # Booted
        await h.cs.wait_for("BootNotification", start_index=m)
        await until(lambda: h.agent.client.online)
        assert await version(h) == VERSION
        assert await starts_without_authorize(h, TAG)


async def test_tc_d_08_get_local_list_version(tmp_path):
    async with harness(tmp_path) as h:
        await until(lambda: h.agent.client.online)
        assert await version(h) == 0  # no list received yet
        await listed(h)
        assert await version(h) == VERSION


async def test_tc_d_10_get_local_list_version_while_disabled_is_0(tmp_path):
    async with harness(tmp_path) as h:
        await until(lambda: h.agent.client.online)
        await listed(h)
        await configure(h, {"LocalAuthListCtrlr.Enabled": False})
        assert await version(h) == 0
