"""OCPP 2.0.1 moving backends and credentials (B09, B10, A01): SetNetworkProfile into a
configuration slot, NetworkConfigurationPriority applied at the next start, the fallback
to the slot that worked after NetworkProfileConnectionAttempts failed, and a new
BasicAuthPassword used from the next connection (and Basic auth itself, A00; with two
SetVariables error cases, B05, on the same rig).

The real agent reading a real configuration file (tests/link/test_moving_backend.py's
Rig), pinned to 2.0.1, against TestCentralSystems serving ``ocpp2.0.1`` on loopback, in
virtual time. A Reset ends the agent's run; the test starts it again on the same
data_dir, as systemd would.
"""

import base64
import json
import logging
import os
import stat

from tests.harness import validate_agent_frames
from tests.link.test_moving_backend import Rig, actions, run_cli, until
from tools.csms import IN

PINNED = 'ocpp_version = "2.0.1"'
PASSWORD = "first-password-1234"


def connection_data(url: str, security_profile: int = 1, version: str = "OCPP20") -> dict:
    return {"ocppVersion": version, "ocppTransport": "JSON", "ocppCsmsUrl": url, "messageTimeout": 30,
            "securityProfile": security_profile, "ocppInterface": "Wired0"}


def variable(component: str, name: str, value: str) -> dict:
    return {"component": {"name": component}, "variable": {"name": name}, "attributeValue": value}


async def get(handle, component: str, name: str) -> dict:
    got = await handle.call("GetVariables", getVariableData=[{"component": {"name": component},
                                                               "variable": {"name": name}}])
    return got["getVariableResult"][0]


async def set_priority(handle, value: str) -> dict:
    got = await handle.call("SetVariables", setVariableData=[
        variable("OCPPCommCtrlr", "NetworkConfigurationPriority", value)])
    return got["setVariableResult"][0]


async def reset_and_restart(rig, handle) -> None:
    """Reset OnIdle Accepted (step 5/6), the agent's run ends, and it starts again."""
    assert await handle.call("Reset", type="OnIdle") == {"status": "Accepted"}
    await until(lambda: rig.agent.restart_requested is not None, clock=rig.clock, what="the reset")
    await rig.restart()


async def central(rig, **kw):
    return await rig.central(protocols=("ocpp2.0.1",), **kw)


async def booted_with_password(rig) -> tuple:
    """The agent on 2.0.1 with Basic auth PASSWORD at a CSMS that checks it: (the CSMS, the
    station's handle once booted)."""
    cs = await central(rig, password=PASSWORD)
    await rig.start(cs.url, extra=PINNED + '\npassword = "%s"' % PASSWORD)
    return cs, await rig.booted(cs)


def basic_auth(password: str) -> str:
    """The Authorization header of station CP001 with ``password``."""
    return "Basic " + base64.b64encode(("CP001:" + password).encode()).decode()


async def test_tc_a_01_basic_authentication_with_the_station_id_and_password(tmp_path):
    """TC_A_01_CS: the upgrade request carries ``Authorization: Basic base64(<station id>:<password>)``,
    the CSMS checks it and accepts the websocket, and the station boots (Booted)."""
    rig = Rig(tmp_path)
    _cs, handle = await booted_with_password(rig)
    try:
        expected = basic_auth(PASSWORD)
        assert handle.request_headers["Authorization"] == expected
        assert actions(handle, "BootNotification")[0]["reason"] == "PowerUp"
        assert (await get(handle, "SecurityCtrlr", "SecurityProfile"))["attributeValue"] == "1"
        validate_agent_frames(handle)
    finally:
        await rig.close()


async def test_tc_b_36_b_37_set_variables_unknown_variable_and_unsupported_attribute_type(tmp_path):
    """TC_B_36_CS: an unknown variable of a known component: UnknownVariable, component and variable
    echoed. TC_B_37_CS: OfflineThreshold with attributeType Target: NotSupportedAttributeType,
    attributeType echoed; the value is unchanged."""
    rig = Rig(tmp_path)
    cs1 = await central(rig)
    try:
        await rig.start(cs1.url, extra=PINNED)
        h1 = await rig.booted(cs1)
        before = (await get(h1, "OCPPCommCtrlr", "OfflineThreshold"))["attributeValue"]
        got = await h1.call("SetVariables", setVariableData=[
            variable("OCPPCommCtrlr", "UnknownVariable", "1"),
            dict(variable("OCPPCommCtrlr", "OfflineThreshold", "123"), attributeType="Target")])
        unknown, target = got["setVariableResult"]
        assert unknown["attributeStatus"] == "UnknownVariable"
        assert unknown["component"]["name"] == "OCPPCommCtrlr" and unknown["variable"]["name"] == "UnknownVariable"
        assert target["attributeStatus"] == "NotSupportedAttributeType" and target["attributeType"] == "Target"
        assert target["component"]["name"] == "OCPPCommCtrlr" and target["variable"]["name"] == "OfflineThreshold"
        assert (await get(h1, "OCPPCommCtrlr", "OfflineThreshold"))["attributeValue"] == before
        validate_agent_frames(h1)
    finally:
        await rig.close()


async def test_tc_b_43_a_network_profile_for_a_slot_that_does_not_exist_is_rejected(tmp_path):
    """TC_B_43_CS: configurationSlot 999 is Rejected (B09.FR.02); so are profiles this charger
    cannot use (not JSON, not 2.0.1, a profile that does not match its URL, a malformed URL)
    and the slot in use; nothing is stored. (Security profile 3 without a charger certificate
    is stored, and refused by the priority that would use it: TC_A_21.)"""
    rig = Rig(tmp_path)
    cs1 = await central(rig)
    try:
        await rig.start(cs1.url, extra=PINNED)
        h1 = await rig.booted(cs1)
        assert await h1.call("SetNetworkProfile", configurationSlot=999,
                             connectionData=connection_data(cs1.url)) == {"status": "Rejected"}
        other = "ws://127.0.0.1:9/ocpp"
        for slot, data in ((2, dict(connection_data(other), ocppTransport="SOAP")),
                           (2, connection_data(other, version="OCPP16")),
                           (2, connection_data("ws://127.0.0.1:9/ocpp", security_profile=3)),
                           (2, connection_data("wss://127.0.0.1:9/ocpp", security_profile=1)),
                           (2, connection_data("http://127.0.0.1:9/ocpp")),
                           (1, connection_data(other))):  # slot 1 is the one in use
            assert await h1.call("SetNetworkProfile", configurationSlot=slot, connectionData=data) == {
                "status": "Rejected"}, (slot, data)
        assert rig.agent.endpoint.profiles.slots == {}
        # A priority naming a slot without a profile is Rejected too, and changes nothing.
        assert (await set_priority(h1, "2,1"))["attributeStatus"] == "Rejected"
        assert (await get(h1, "OCPPCommCtrlr", "NetworkConfigurationPriority"))["attributeValue"] == "1"
        validate_agent_frames(h1)
    finally:
        await rig.close()


async def test_tc_b_45_migrate_to_a_new_network_profile_after_a_reset(tmp_path):
    """TC_B_45_CS: SetNetworkProfile into slot 2 Accepted; NetworkConfigurationPriority "2,1"
    RebootRequired; Reset OnIdle Accepted; the station boots at the new CSMS (Booted, reason
    RemoteReset) and reports the priority it uses. The configuration file follows the move."""
    rig = Rig(tmp_path)
    cs1, cs2 = await central(rig), await central(rig)
    try:
        await rig.start(cs1.url, extra=PINNED)
        h1 = await rig.booted(cs1)
        assert await h1.call("SetNetworkProfile", configurationSlot=2,
                             connectionData=connection_data(cs2.url)) == {"status": "Accepted"}
        result = await set_priority(h1, "2,1")
        assert result["attributeStatus"] == "RebootRequired"
        assert rig.agent.endpoint.current.url == cs1.url  # nothing moves before the reboot
        await reset_and_restart(rig, h1)

        h2 = await rig.booted(cs2)
        boot = actions(h2, "BootNotification")[0]
        assert boot["reason"] == "RemoteReset"
        statuses = [p for p in actions(h2, "StatusNotification")]
        assert statuses and statuses[0]["connectorStatus"] == "Available"
        assert (await get(h2, "OCPPCommCtrlr", "NetworkConfigurationPriority"))["attributeValue"] == "2,1"
        assert rig.agent.endpoint.state.pending is None and rig.agent.endpoint.profiles.active == 2
        assert 'url = "%s"' % cs2.url in rig.file()
        # The slot left behind keeps the first CSMS: a later priority can go back to it.
        assert rig.agent.endpoint.profiles.slots[1]["url"] == cs1.url
        validate_agent_frames(h1)
        validate_agent_frames(h2)
    finally:
        await rig.close()


async def test_tc_b_46_falls_back_to_the_slot_that_worked_after_the_connection_attempts(tmp_path):
    """TC_B_46_CS: NetworkProfileConnectionAttempts 2; slot 2 names a CSMS that does not
    answer; after the reset the station tries it twice, then falls back to slot 1 (B10.FR.03,
    B10.FR.07) long before the fallback timeout, boots there and reports the move as a
    SecurityEventNotification."""
    rig = Rig(tmp_path)
    cs1 = await central(rig)
    dead = await rig.dead_url()
    try:
        await rig.start(cs1.url, extra=PINNED)
        h1 = await rig.booted(cs1)
        got = await h1.call("SetVariables", setVariableData=[
            variable("OCPPCommCtrlr", "NetworkProfileConnectionAttempts", "2")])
        assert got["setVariableResult"][0]["attributeStatus"] == "Accepted"
        assert await h1.call("SetNetworkProfile", configurationSlot=2,
                             connectionData=connection_data(dead)) == {"status": "Accepted"}
        assert (await set_priority(h1, "2,1"))["attributeStatus"] == "RebootRequired"
        boots = len(actions(h1, "BootNotification"))
        await reset_and_restart(rig, h1)
        start = rig.clock.monotonic()
        assert rig.agent.endpoint.current.url == dead

        await until(lambda: len(actions(h1, "BootNotification")) == boots + 1 and rig.agent.client.online,
                    clock=rig.clock, step_s=0.5, timeout_s=10, what="back at slot 1")
        assert rig.clock.monotonic() - start < 30  # the attempts, not the 60 s fallback timeout
        assert rig.agent.endpoint.current.url == cs1.url and rig.agent.endpoint.profiles.active == 1
        rollback = rig.agent.endpoint.state.rollback
        assert rollback["reason"].startswith("2 connection attempts failed")
        event = await h1.wait_for("SecurityEventNotification",
                                  lambda p: p["type"] == "ReconfigurationOfSecurityParameters")
        assert dead in event["techInfo"] and "2 connection attempts failed" in event["techInfo"]
        assert 'url = "%s"' % cs1.url in rig.file()
        validate_agent_frames(h1)
    finally:
        await rig.close()


async def test_tc_a_09_a_new_basic_auth_password_is_used_from_the_next_connection(tmp_path, caplog):
    """TC_A_09_CS: SetVariables SecurityCtrlr.BasicAuthPassword Accepted; the station
    reconnects with an Authorization header holding the new password (A01.FR.01) and boots;
    the password is never read back, logged or shown; the file keeps it, mode 0600."""
    caplog.set_level(logging.DEBUG)
    new_password = "second-password-5678"
    rig = Rig(tmp_path)
    cs, handle = await booted_with_password(rig)
    try:
        got = await handle.call("SetVariables", setVariableData=[
            variable("SecurityCtrlr", "BasicAuthPassword", new_password)])
        assert got["setVariableResult"][0]["attributeStatus"] == "Accepted"
        cs.password = new_password  # the CSMS no longer accepts the old one
        await until(lambda: handle.connections == 2 and handle.connected, what="the reconnection")
        expected = basic_auth(new_password)
        assert handle.request_headers["Authorization"] == expected
        await until(lambda: rig.agent.client.online and rig.agent.endpoint.state.pending is None,
                    what="the new password accepted")
        read = await get(handle, "SecurityCtrlr", "BasicAuthPassword")
        assert read["attributeStatus"] == "Rejected" and "attributeValue" not in read  # write-only
        assert 'password = "%s"' % new_password in rig.file()
        assert stat.S_IMODE(os.stat(rig.path).st_mode) == 0o600
        assert new_password not in caplog.text and PASSWORD not in caplog.text
        assert new_password not in json.dumps(rig.agent.admin.csms_show())
        validate_agent_frames(handle)
    finally:
        await rig.close()


async def test_tc_a_10_a_basic_auth_password_under_16_characters_is_rejected(tmp_path):
    """TC_A_10_CS: a BasicAuthPassword shorter than 16 characters is Rejected; the station
    keeps its connection and the old password (the next connection still uses it)."""
    rig = Rig(tmp_path)
    _cs, handle = await booted_with_password(rig)
    try:
        got = await handle.call("SetVariables", setVariableData=[
            variable("SecurityCtrlr", "BasicAuthPassword", "too-short")])
        assert got["setVariableResult"][0]["attributeStatus"] == "Rejected"
        assert handle.connected and handle.connections == 1
        assert rig.agent.endpoint.current.password == PASSWORD
        await rig.restart()  # the next connection: the old password
        await until(lambda: handle.connections == 2 and rig.agent.client.online, clock=rig.clock,
                    what="booted again")
        expected = basic_auth(PASSWORD)
        assert handle.request_headers["Authorization"] == expected
        assert [m.action for m in handle.messages if m.direction == IN].count("BootNotification") == 2
        validate_agent_frames(handle)
    finally:
        await rig.close()


async def test_csms_set_moves_a_201_station_with_the_same_rollback(tmp_path):
    """``ocpp-agent csms set`` moves a station on 2.0.1 like one on 1.6: it boots at the new
    CSMS, and the security profile it reports follows the URL."""
    rig = Rig(tmp_path)
    cs1, cs2 = await central(rig), await central(rig)
    try:
        await rig.start(cs1.url, extra=PINNED)
        h1 = await rig.booted(cs1)
        assert (await get(h1, "SecurityCtrlr", "SecurityProfile"))["attributeValue"] == "1"
        code, out, err = await run_cli("csms", "set", cs2.url, "--config", rig.path)
        assert code == 0, err
        h2 = await rig.booted(cs2)
        assert actions(h2, "BootNotification")[0]["reason"] == "PowerUp"
        assert rig.agent.admin.csms_show()["ocpp_version"] == "2.0.1"
        validate_agent_frames(h1)
        validate_agent_frames(h2)
    finally:
        await rig.close()


async def test_a_new_basic_auth_password_the_csms_refuses_falls_back_to_the_old_one(tmp_path):
    """A01 with a CSMS that does not take the new password (HTTP 401): after
    NetworkProfileConnectionAttempts refused handshakes the station returns to the old
    password, boots, and reports it with a SecurityEventNotification; the file keeps the old one."""
    rig = Rig(tmp_path)
    _cs, handle = await booted_with_password(rig)
    try:
        got = await handle.call("SetVariables", setVariableData=[
            variable("SecurityCtrlr", "BasicAuthPassword", "never-accepted-9999")])
        assert got["setVariableResult"][0]["attributeStatus"] == "Accepted"
        await until(lambda: rig.agent.endpoint.state.rollback is not None, clock=rig.clock, step_s=0.5,
                    timeout_s=10, what="the fallback")
        assert "HTTP 401" in rig.agent.endpoint.state.rollback["reason"]
        await until(lambda: rig.agent.client.online and handle.connected, clock=rig.clock, step_s=0.5,
                    what="back with the old password")
        expected = basic_auth(PASSWORD)
        assert handle.request_headers["Authorization"] == expected
        assert rig.agent.endpoint.current.password == PASSWORD
        assert 'password = "%s"' % PASSWORD in rig.file()
        event = await handle.wait_for("SecurityEventNotification",
                                      lambda p: p["type"] == "ReconfigurationOfSecurityParameters")
        assert "never-accepted-9999" not in event.get("techInfo", "")
        validate_agent_frames(handle)
    finally:
        await rig.close()
