"""OCPP-J 1.6 error handling (OCPP-J 1.6 §4.2.3, Table 7): malformed and unknown
frames from the central system get the CALLERROR the spec defines and the
connection stays up; stray results are ignored; unanswered calls time out and
transaction messages are retried (OCPP 1.6 §3.7.1) without crashing the agent.

The central system is tools/csms.py on loopback; the agent runs on the
simulated board with a virtual clock.
"""

import asyncio
import json

import pytest

from tests.harness import AgentHarness, until
from tools.csms import IN

ALL_ERROR_CODES = ("NotImplemented", "NotSupported", "InternalError", "ProtocolError", "SecurityError",
                   "FormationViolation", "PropertyConstraintViolation", "OccurenceConstraintViolation",
                   "TypeConstraintViolation", "GenericError")


async def exchange(h, text: str, timeout_s: float = 3) -> list:
    """Send ``text`` as it is; return the agent's next CALLRESULT/CALLERROR frame, parsed."""
    start = len(h.cs.raw)
    await h.cs.send_raw(text)

    def is_reply(frame: str) -> bool:
        msg = json.loads(frame)
        return isinstance(msg, list) and msg[:1] in ([3], [4])

    return json.loads(await h.cs.wait_raw(is_reply, timeout_s=timeout_s, start_index=start))


async def ready(h) -> None:
    """Wait until the agent has sent its boot-time status notifications (then it is quiet)."""
    await h.wait_status(0, "Available")
    await h.wait_status(1, "Available")
    await h.settle(0.05)


LONG_KEY = "K" * 51  # ChangeConfiguration.key is CiString50Type

# (frame, unique id of the CALLERROR, accepted error codes)
BAD_FRAMES = [
    # Not JSON, or JSON that is not an OCPP-J message: the id cannot be read, so "-1".
    ("this is not json", "-1", {"FormationViolation"}),
    ('[2, "t1", "GetConfiguration", {', "-1", {"FormationViolation"}),
    ('{"messageTypeId": 2}', "-1", {"FormationViolation"}),
    ("[]", "-1", {"FormationViolation"}),
    ('"a string"', "-1", {"FormationViolation"}),
    ('[2, 42, "GetConfiguration", {}]', "-1", {"FormationViolation"}),
    # Readable id, broken structure.
    ('[2, "t2"]', "t2", {"FormationViolation"}),
    ('[2, "t3", "GetConfiguration"]', "t3", {"FormationViolation"}),
    ('[2, "t4", "GetConfiguration", []]', "t4", {"FormationViolation"}),
    ('[2, "t5", "GetConfiguration", {}, {}]', "t5", {"FormationViolation"}),
    ('[2, "t6", 17, {}]', "t6", {"FormationViolation"}),
    ('[7, "t7", "GetConfiguration", {}]', "t7", {"FormationViolation"}),
    # Action not known at all / known to OCPP 1.6 but not something a charge point handles.
    ('[2, "t8", "MakeCoffee", {}]', "t8", {"NotImplemented"}),
    ('[2, "t9", "Heartbeat", {}]', "t9", {"NotSupported"}),
    # Payloads against the action's schema.
    ('[2, "t10", "ChangeConfiguration", {"key": "HeartbeatInterval"}]', "t10", {"ProtocolError"}),
    ('[2, "t11", "ChangeAvailability", {"type": "Inoperative"}]', "t11", {"ProtocolError"}),
    ('[2, "t12", "ChangeConfiguration", {"key": "HeartbeatInterval", "value": 60}]', "t12",
     {"TypeConstraintViolation"}),
    ('[2, "t13", "ChangeAvailability", {"connectorId": "1", "type": "Inoperative"}]', "t13",
     {"TypeConstraintViolation"}),
    ('[2, "t14", "ChangeAvailability", {"connectorId": 1, "type": "Sometimes"}]', "t14",
     {"PropertyConstraintViolation"}),
    ('[2, "t15", "TriggerMessage", {"requestedMessage": "Coffee"}]', "t15", {"PropertyConstraintViolation"}),
    # Too long for its CiString type: a type or a property constraint, depending on the reading.
    ('[2, "t16", "ChangeConfiguration", {"key": "%s", "value": "1"}]' % LONG_KEY, "t16",
     {"PropertyConstraintViolation", "TypeConstraintViolation"}),
    ('[2, "t17", "ChangeConfiguration", {"key": "HeartbeatInterval", "value": "60", "extra": 1}]', "t17",
     {"FormationViolation"}),
]


async def test_malformed_frames_get_the_ocpp_j_callerror_and_the_connection_stays_up(tmp_path):
    async with AgentHarness(tmp_path, allowed_errors=ALL_ERROR_CODES) as h:
        await ready(h)
        for text, uid, codes in BAD_FRAMES:
            reply = await exchange(h, text)
            assert reply[0] == 4, "no CALLERROR for %s: %r" % (text, reply)
            assert len(reply) == 5, reply
            assert reply[1] == uid, "wrong unique id for %s: %r" % (text, reply)
            assert reply[2] in codes, "for %s expected %s, got %r" % (text, codes, reply)
            assert isinstance(reply[3], str) and isinstance(reply[4], dict)
        # Nothing was applied by the refused calls; the first malformed frame is a security event
        # (InvalidMessages, not critical: kept in the security log only), once for the connection.
        invalid = [e for e in h.agent.security.log.events() if e.kind == "invalid_messages"]
        assert len(invalid) == 1 and invalid[0].tech_info.startswith("not JSON")
        assert h.agent.keys.get("HeartbeatInterval") == 300
        assert h.station.connectors[0].availability == "operative"
        # Same connection, and it still works both ways.
        assert h.cs.connected and h.cs.connections == 1
        assert h.agent.connection.connect_count == 1
        reply = await exchange(h, '[2, "ok-1", "GetConfiguration", {"key": ["HeartbeatInterval"]}]')
        assert reply == [3, "ok-1", {"configurationKey": [
            {"key": "HeartbeatInterval", "readonly": False, "value": "300"}]}]
        result = await h.cs.call("ChangeConfiguration", key="HeartbeatInterval", value="120")
        assert result == {"status": "Accepted"}
        assert h.agent.keys.get("HeartbeatInterval") == 120
        m = h.mark()
        await h.clock.advance(121)
        await h.cs.wait_for("Heartbeat", start_index=m, timeout_s=3)
        assert h.cs.connections == 1


@pytest.mark.parametrize("text, uid, codes", BAD_FRAMES[:1] + BAD_FRAMES[7:8] + BAD_FRAMES[12:13])
async def test_one_bad_frame_does_not_disturb_the_session(tmp_path, text, uid, codes):
    """A single bad frame right after boot: answered, and the agent keeps its session
    (no new connection, no new BootNotification)."""
    async with AgentHarness(tmp_path, allowed_errors=tuple(codes)) as h:
        await ready(h)
        reply = await exchange(h, text)
        assert reply[0] == 4 and reply[1] == uid and reply[2] in codes
        await h.settle(0.1)
        assert h.cs.connected and h.cs.connections == 1
        assert len(h.received("BootNotification")) == 1
        assert (await h.cs.call("GetConfiguration", key=["NumberOfConnectors"]))["configurationKey"] == [
            {"key": "NumberOfConnectors", "readonly": True, "value": "1"}]


async def test_callresult_and_callerror_for_unknown_unique_ids_are_ignored(tmp_path):
    async with AgentHarness(tmp_path, ocpp={"MeterValueSampleInterval": 0}) as h:
        await ready(h)
        start = len(h.cs.raw)
        # Stray answers to calls the agent never made (a Blocked result would stop a session).
        await h.cs.send_raw('[3, "never-asked-1", {"idTagInfo": {"status": "Blocked"}}]')
        await h.cs.send_raw('[4, "never-asked-2", "GenericError", "stray", {}]')
        await h.cs.send_raw('[3, "never-asked-3", {"transactionId": 999, "idTagInfo": {"status": "Blocked"}}]')
        await h.settle(0.2)
        assert [t for d, t in h.cs.raw[start:] if d == IN] == [], "the agent answered a stray result"
        # The next calls of the agent get their own answers, not the stray ones.
        m = h.mark()
        h.sim.plug(1)
        h.sim.swipe("TAG-OK")
        assert await h.cs.wait_for("Authorize", start_index=m) == {"idTag": "TAG-OK"}
        await h.cs.wait_for("StartTransaction", start_index=m)
        await h.wait_status(1, "Charging", m)
        tx = h.station.connectors[0].transaction
        assert tx is not None and tx.backend_id == 1 and tx.authorized
        assert h.sim.status()["connectors"][0]["contactor_closed"] is True
        assert h.cs.connected and h.cs.connections == 1
        assert not any(json.loads(t)[0] == 4 for d, t in h.cs.raw if d == IN)


async def test_unanswered_start_transaction_times_out_and_is_retried_with_growing_interval(tmp_path):
    """OCPP 1.6 §3.7.1: no StartTransaction.conf is a failure to process; the agent waits
    TransactionMessageRetryInterval × previous transmissions before each retry, ignores the
    late answers, keeps the connection and uses the id of the answer it finally gets."""
    releases = [asyncio.Event(), asyncio.Event()]
    answers = iter([111, 222, 333])
    calls = []

    async def start_transaction(payload):
        n = len(calls)
        calls.append(payload)
        if n < len(releases):
            await releases[n].wait()  # this central system is stuck: the answer comes too late
        return {"transactionId": next(answers), "idTagInfo": {"status": "Accepted"}}

    retry_s = 10
    h = AgentHarness(tmp_path, csms_extra={"response_timeout_s": 0.3},
                     ocpp={"TransactionMessageRetryInterval": retry_s, "TransactionMessageAttempts": 3,
                           "MeterValueSampleInterval": 0})
    h.cs_server.handlers["StartTransaction"] = start_transaction
    try:
        async with h:
            await ready(h)
            outbox = h.station.outbox
            m = h.mark()
            h.sim.plug(1)
            h.sim.swipe("TAG-R")
            await h.cs.wait_for("StartTransaction", start_index=m)
            await until(lambda: outbox.head() is not None and outbox.head().attempts == 1,
                       what="the first StartTransaction to time out")
            releases[0].set()  # the late answer (111) reaches the agent after it gave up
            await h.clock.advance(retry_s - 1)
            await h.settle(0.2)
            assert len(calls) == 1, "retried before TransactionMessageRetryInterval"
            await h.clock.advance(1)
            await until(lambda: len(calls) == 2, what="the first retry")
            await until(lambda: outbox.head() is not None and outbox.head().attempts == 2,
                       what="the first retry to time out")
            releases[1].set()
            await h.clock.advance(2 * retry_s - 1)
            await h.settle(0.2)
            assert len(calls) == 2, "second retry before 2 × TransactionMessageRetryInterval"
            await h.clock.advance(1)
            await until(lambda: len(calls) == 3, what="the second retry")
            tx = h.station.connectors[0].transaction
            await until(lambda: tx.backend_id is not None, what="the transaction id")
            assert tx.backend_id == 333  # the late 111 and 222 were not taken for this call's answer
            assert len(outbox) == 0
            # The same message each time.
            assert calls[0] == calls[1] == calls[2]
            assert calls[0]["idTag"] == "TAG-R" and calls[0]["connectorId"] == 1
            # No crash, no reconnect, no new boot; the session goes on.
            assert h.cs.connected and h.cs.connections == 1 and h.agent.connection.connect_count == 1
            assert len(h.received("BootNotification")) == 1
            assert not h.agent._conn_task.done()
            assert (await h.cs.call("GetConfiguration", key=["TransactionMessageRetryInterval"]))[
                "configurationKey"][0]["value"] == str(retry_s)
    finally:
        for r in releases:
            r.set()


async def test_unanswered_status_notification_is_not_fatal(tmp_path):
    """A non-transaction call without answer times out; the agent carries on with the next."""
    release = asyncio.Event()
    stuck = []

    async def status_notification(payload):
        if payload["status"] == "Preparing" and not stuck:
            stuck.append(payload)
            await release.wait()
        return {}

    h = AgentHarness(tmp_path, csms_extra={"response_timeout_s": 0.3}, ocpp={"MeterValueSampleInterval": 0})
    h.cs_server.handlers["StatusNotification"] = status_notification
    try:
        async with h:
            await ready(h)
            m = h.mark()
            h.sim.plug(1)
            await h.wait_status(1, "Preparing", m)
            await asyncio.sleep(0.6)  # the agent gives up on the answer
            release.set()
            h.sim.swipe("TAG-S")
            await h.cs.wait_for("Authorize", start_index=m)
            await h.cs.wait_for("StartTransaction", start_index=m)
            await h.wait_status(1, "Charging", m)
            assert h.station.connectors[0].transaction.backend_id is not None
            assert h.cs.connections == 1 and h.agent.connection.connect_count == 1
    finally:
        release.set()
