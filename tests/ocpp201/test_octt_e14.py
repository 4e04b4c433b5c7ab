"""OCPP 2.0.1 E14 GetTransactionStatus around an outage: with transaction messages still
queued when the connection comes back (TC_E_31, TC_E_33) and after they went out (TC_E_32,
TC_E_34). The test central system answers the first queued TransactionEvent with a CALLERROR,
so the queue keeps it until the retry interval (virtual time) has passed: "the moment the
connection is restored" is a state the test can look at rather than a race.
"""

from ocpp.exceptions import InternalError

from tests.harness import keys, quiet, until
from tests.ocpp201.octt201 import TAG, harness, local_start, tx_events


def refuse_the_next_transaction_event(h) -> list:
    """The CSMS answers the next TransactionEvent with a CALLERROR, the ones after it normally;
    returns the list of refused payloads."""
    refused = []

    def once(payload):
        if not refused:
            refused.append(payload)
            raise InternalError(description="not now")
        return {}

    h.cs.handlers["TransactionEvent"] = once
    return refused


RETRY_S = 60  # OCPPCommCtrlr.MessageAttemptInterval[TransactionEvent] of the tests


async def test_tc_e_31_e_32_status_of_a_transaction_ended_offline_before_and_after_its_messages_went_out(tmp_path):
    """TC_E_31_CS: the transaction ended while offline; at the reconnection, with its events
    still queued: ongoingIndicator false, messagesInQueue true; then the Ended event goes out.
    TC_E_32_CS: once delivered, ongoingIndicator false and messagesInQueue false."""
    async with harness(tmp_path, ocpp=keys(TransactionMessageRetryInterval=RETRY_S)) as h:
        started = await local_start(h)
        tx_id = started["transactionInfo"]["transactionId"]
        port = await h.go_offline()
        h.sim.swipe(TAG)  # stopped offline with the same idToken
        h.sim.unplug(1)
        await until(lambda: h.station.connector(1).transaction is None, clock=h.clock, step_s=1)
        refused = refuse_the_next_transaction_event(h)
        m = h.mark()
        await h.go_online(port)
        await until(lambda: refused, what="the first queued event refused")
        assert await h.cs.call("GetTransactionStatus", transactionId=tx_id) == {
            "messagesInQueue": True, "ongoingIndicator": False}
        await h.clock.advance(RETRY_S + 1)
        ended = await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Ended", start_index=m)
        assert ended["transactionInfo"]["transactionId"] == tx_id and ended["offline"] is True
        await until(lambda: len(h.station.outbox) == 0, what="the queue emptied", clock=h.clock, step_s=5)
        assert await h.cs.call("GetTransactionStatus", transactionId=tx_id) == {
            "messagesInQueue": False, "ongoingIndicator": False}


async def test_tc_e_33_without_transaction_id_messages_queued_during_an_ongoing_transaction(tmp_path):
    """TC_E_33_CS: meter values of a running transaction queued while offline; at the
    reconnection GetTransactionStatus without transactionId: messagesInQueue true and no
    ongoingIndicator; then the queued TransactionEvents go out, in order."""
    async with harness(tmp_path, ocpp=keys(TransactionMessageRetryInterval=RETRY_S)) as h:
        got = await h.cs.call("SetVariables", setVariableData=[{
            "component": {"name": "SampledDataCtrlr"}, "variable": {"name": "TxUpdatedInterval"},
            "attributeValue": "10"}])
        assert got["setVariableResult"][0]["attributeStatus"] == "Accepted"
        started = await local_start(h)
        tx_id = started["transactionInfo"]["transactionId"]
        port = await h.go_offline()
        await h.clock.advance(35)  # three sampled values queued
        await quiet(h)
        assert len(h.station.outbox) >= 3
        refused = refuse_the_next_transaction_event(h)
        m = h.mark()
        await h.go_online(port)
        await until(lambda: refused, what="the first queued event refused")
        assert await h.cs.call("GetTransactionStatus") == {"messagesInQueue": True}
        await h.clock.advance(RETRY_S + 1)
        await until(lambda: len(h.station.outbox) == 0, what="the queue emptied", clock=h.clock, step_s=5)
        sent = [p for p in tx_events(h, m) if p["transactionInfo"]["transactionId"] == tx_id]
        assert len(sent) >= 3 and all(p["offline"] for p in sent[:3])
        assert [p["seqNo"] for p in sent] == sorted(p["seqNo"] for p in sent)
        assert h.station.connector(1).transaction is not None  # still charging


async def test_tc_e_34_without_transaction_id_nothing_queued(tmp_path):
    """TC_E_34_CS: no transactionId and no message queued: messagesInQueue false, ongoingIndicator
    omitted — with a transaction running and its messages all delivered, too."""
    async with harness(tmp_path) as h:
        assert await h.cs.call("GetTransactionStatus") == {"messagesInQueue": False}
        await local_start(h)
        await until(lambda: len(h.station.outbox) == 0, what="the queue emptied")
        assert await h.cs.call("GetTransactionStatus") == {"messagesInQueue": False}
