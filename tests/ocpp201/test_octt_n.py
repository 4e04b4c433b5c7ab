"""OCTT 2.0.1 block N, customer information (N09 Get, N10 Clear): CustomerInformation from
the CSMS, answered, then NotifyCustomerInformation with what the station holds for the idToken
(its authorization cache entry, its local list entry, its transactions still held). Clearing
removes the cache entry; the local list (the CSMS's, changed by SendLocalList) and transactions
owed to the CSMS stay. The agent against the test central system; every frame schema-checked.
"""

from agent.core import model
from agent.ocpp201 import events
from tests.harness import index_of, keys, quiet, until
from tests.ocpp201.octt201 import TAG, errors, harness, local_start, received

OTHER = "11223344"  # an idToken the station holds nothing about


def token(tag: str = TAG) -> dict:
    return {"idToken": tag, "type": "ISO14443"}


async def customer_information(h, **request) -> tuple:
    """CustomerInformation with ``request`` (requestId added): (the answer, every
    NotifyCustomerInformation of that request once the last part, tbc false, arrived)."""
    m = h.mark()
    request.setdefault("requestId", 7)
    answer = await h.cs.call("CustomerInformation", **request)
    if answer["status"] != "Accepted":
        await quiet(h)
        return answer, received(h, "NotifyCustomerInformation", m)
    await h.cs.wait_for("NotifyCustomerInformation", lambda p: not p["tbc"], start_index=m)
    parts = received(h, "NotifyCustomerInformation", m)
    assert index_of(h, "CustomerInformation.conf", m) < index_of(h, "NotifyCustomerInformation", m)
    assert [p["seqNo"] for p in parts] == list(range(len(parts)))
    assert all(p["requestId"] == request["requestId"] for p in parts)
    assert [p["tbc"] for p in parts] == [True] * (len(parts) - 1) + [False]
    return answer, parts


async def cached_and_listed(h, tag: str = TAG) -> None:
    """Memory state IdTokenCached and IdTokenLocalAuthList, state Authorized (local):
    the badge authorized by the CSMS (into the cache), then the CSMS's local list with it."""
    for variable, component in (("Enabled", "LocalAuthListCtrlr"), ("LocalPreAuthorize", "AuthCtrlr"),
                                ("Enabled", "AuthCacheCtrlr")):
        got = await h.cs.call("SetVariables", setVariableData=[
            {"component": {"name": component}, "variable": {"name": variable}, "attributeValue": "true"}])
        assert got["setVariableResult"][0]["attributeStatus"] == "Accepted"
    m = h.mark()
    h.sim.swipe(tag)
    await h.cs.wait_for("Authorize", start_index=m)
    await until(lambda: h.station.auth_cache.get(tag) is not None)
    got = await h.cs.call("SendLocalList", versionNumber=1, updateType="Full", localAuthorizationList=[
        {"idToken": token(tag), "idTokenInfo": {"status": "Accepted", "groupIdToken": token("GROUP1")}}])
    assert got == {"status": "Accepted"}
    assert h.station.auth_cache.get(tag) is not None and h.station.local_list.get(tag) is not None


async def test_tc_n_27_get_customer_information_accepted_and_data(tmp_path):
    async with harness(tmp_path) as h:
        await cached_and_listed(h)
        answer, parts = await customer_information(h, report=True, clear=False, idToken=token())
        assert answer == {"status": "Accepted"}
        data = "".join(p["data"] for p in parts)
        assert data  # Step 3: data not empty
        assert "authorization cache: Accepted" in data and "local list: Accepted, group GROUP1" in data
        assert "cleared" not in data
        # Only reported: the station still holds both.
        assert h.station.auth_cache.get(TAG) is not None and h.station.local_list.get(TAG) is not None
        assert not errors(h)


async def test_tc_n_28_get_customer_information_accepted_and_no_data(tmp_path):
    async with harness(tmp_path) as h:
        await cached_and_listed(h)  # data of another customer, not reported
        answer, parts = await customer_information(h, report=True, clear=False, idToken=token(OTHER))
        assert answer == {"status": "Accepted"}
        assert len(parts) == 1 and parts[0]["tbc"] is False
        assert parts[0]["data"] == ""  # no data found


async def test_tc_n_29_tc_n_33_customer_information_that_cannot_be_processed_is_invalid(tmp_path):
    """No customer named, two named, or neither a report nor a clearing asked: Invalid, and no
    NotifyCustomerInformation follows; nothing is cleared."""
    async with harness(tmp_path) as h:
        await cached_and_listed(h)
        for request in ({"report": True, "clear": False},
                        {"report": True, "clear": True},
                        {"report": True, "clear": True, "idToken": token(), "customerIdentifier": TAG},
                        {"report": False, "clear": False, "idToken": token()}):
            answer, parts = await customer_information(h, **request)
            assert answer == {"status": "Invalid"} and parts == [], request
        await quiet(h)
        assert not received(h, "NotifyCustomerInformation")
        assert h.station.auth_cache.get(TAG) is not None


async def test_tc_n_30_clear_and_report_with_data(tmp_path):
    async with harness(tmp_path) as h:
        await cached_and_listed(h)
        answer, parts = await customer_information(h, report=True, clear=True, idToken=token())
        assert answer == {"status": "Accepted"}
        data = "".join(p["data"] for p in parts)
        assert "authorization cache: Accepted (cleared)" in data
        assert "local list: Accepted, group GROUP1" in data and "local list: Accepted, group GROUP1 (cleared)" not in data
        # All customer data but the local list is gone.
        assert h.station.auth_cache.get(TAG) is None and h.station.local_list.get(TAG) is not None
        # Steps 5-8: reported again, the cache entry no longer shows.
        answer, parts = await customer_information(h, report=True, clear=False, idToken=token(), requestId=8)
        assert answer == {"status": "Accepted"} and parts[-1]["tbc"] is False
        data = "".join(p["data"] for p in parts)
        assert "authorization cache" not in data and "local list: Accepted" in data


async def test_tc_n_31_clear_and_report_without_data(tmp_path):
    async with harness(tmp_path) as h:
        answer, parts = await customer_information(h, report=True, clear=True, idToken=token(OTHER))
        assert answer == {"status": "Accepted"}
        assert len(parts) == 1 and parts[0]["data"] == "" and parts[0]["tbc"] is False  # no data found


async def test_tc_n_32_clear_without_report(tmp_path):
    """Clear, no report: one message confirming the clearing, without the customer's data;
    the cache entry is gone, another customer's stays."""
    async with harness(tmp_path) as h:
        await cached_and_listed(h)
        await h.clock.advance(61)  # the first badge's authorization ends unused (EVConnectionTimeOut)
        await quiet(h)
        m = h.mark()
        h.sim.swipe(OTHER)
        await h.cs.wait_for("Authorize", lambda p: p["idToken"]["idToken"] == OTHER, start_index=m)
        await until(lambda: h.station.auth_cache.get(OTHER) is not None)
        answer, parts = await customer_information(h, report=False, clear=True, idToken=token())
        assert answer == {"status": "Accepted"}
        assert [p["data"] for p in parts] == ["cleared: authorization cache"]
        assert h.station.auth_cache.get(TAG) is None and h.station.auth_cache.get(OTHER) is not None
        # Nothing held any more (but the CSMS's local list): the confirmation says so.
        answer, parts = await customer_information(h, report=False, clear=True, idToken=token(), requestId=9)
        assert [p["data"] for p in parts] == ["cleared: nothing held to clear"]


async def test_customer_information_reports_a_running_transaction_and_keeps_it_on_clear(tmp_path):
    """A transaction of the customer is data held too: reported, not cleared (it is owed to
    the CSMS); the customer's cache entry is cleared while it runs and charging goes on."""
    async with harness(tmp_path, ocpp=keys()) as h:
        started = await local_start(h)
        tx_id = started["transactionInfo"]["transactionId"]
        answer, parts = await customer_information(h, report=True, clear=True, idToken=token())
        assert answer == {"status": "Accepted"}
        data = "".join(p["data"] for p in parts)
        assert "transaction %s on EVSE 1" % tx_id in data and data.count("running") == 1
        assert "(cleared)" in data and "transaction %s on EVSE 1" % tx_id + "(cleared)" not in data
        assert h.station.auth_cache.get(TAG) is None
        assert h.station.connector(1).transaction is not None and not h.station.connector(1).transaction.stopped
        assert h.station.connector(1).status in (model.CHARGING, model.SUSPENDED_EV, model.PREPARING)


async def test_customer_identifier_and_certificate_find_nothing_tc_n_62_n_63_not_applicable(tmp_path):
    """The station keeps customers only by their idToken: a customerIdentifier (C-14 not
    declared) or a customerCertificate (no ISO 15118) is Accepted with an empty report, and
    clears nothing."""
    async with harness(tmp_path) as h:
        await cached_and_listed(h)
        answer, parts = await customer_information(h, report=True, clear=True, customerIdentifier=TAG)
        assert answer == {"status": "Accepted"} and [p["data"] for p in parts] == [""]
        answer, parts = await customer_information(h, report=True, clear=True, requestId=8, customerCertificate={
            "hashAlgorithm": "SHA256", "issuerNameHash": "a" * 64, "issuerKeyHash": "b" * 64, "serialNumber": "01"})
        assert answer == {"status": "Accepted"} and [p["data"] for p in parts] == [""]
        assert h.station.auth_cache.get(TAG) is not None


def test_a_long_report_is_split_into_parts_of_at_most_512_characters():
    texts = ["x" * 300, "y" * 300, "z" * 100]
    parts = events.customer_information_messages(3, texts, 1_767_225_600.0)
    assert [len(p["data"]) for p in parts] == [512, 192]
    assert "".join(p["data"] for p in parts) == "; ".join(texts)
    assert [(p["seqNo"], p["tbc"], p["requestId"]) for p in parts] == [(0, True, 3), (1, False, 3)]
    assert parts[0]["generatedAt"] == "2026-01-01T00:00:00.000Z"
