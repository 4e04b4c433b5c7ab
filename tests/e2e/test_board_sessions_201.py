"""Full OCPP 2.0.1 sessions on the shipped real-hardware boards, every device simulated
(the rigs of tests/e2e/test_board_sessions.py): the agent on ``csms.ocpp_version =
"auto"`` against a central system that serves only ``ocpp2.0.1``.

The same hardware rules as on 1.6: nothing is offered before an authorization, the
controller and the contactor follow the transaction, energy comes from the board's meter;
in 2.0.1 words: StatusNotification Occupied/Available per EVSE, TransactionEvent Started
(with the badge's ISO14443 idToken or the remote start's), Updated with sampled meter values,
Ended with the meter's register.
"""

from tests.e2e.test_board_sessions import TAG, openevse, rpi, until
from tools.csms import TestCentralSystem

ENERGY = "Energy.Active.Import.Register"


def csms_201() -> TestCentralSystem:
    return TestCentralSystem(quiet=True, protocols=("ocpp2.0.1",))


def tx_events(h, start: int = 0, event_type: str | None = None) -> list:
    return [p for p in h.received("TransactionEvent", start) if event_type is None or p["eventType"] == event_type]


def register_wh(event: dict) -> float:
    """The Energy.Active.Import.Register value (Wh) of a TransactionEvent."""
    values = [float(sv["value"]) for mv in event["meterValue"] for sv in mv["sampledValue"]
              if sv.get("measurand", ENERGY) == ENERGY]
    assert values, event
    return values[-1]


async def wait_evse(h, status: str, start: int = 0):
    return await h.cs.wait_for("StatusNotification", lambda p: p["evseId"] == 1 and p["connectorStatus"] == status,
                               start_index=start, timeout_s=8)


async def test_rpi_board_201_session_badge_start_and_stop(tmp_path, monkeypatch):
    async with rpi(tmp_path, monkeypatch, csms=csms_201()) as (rig, h):
        assert h.cs.subprotocol == "ocpp2.0.1"
        await wait_evse(h, "Occupied")
        assert rig.evse.configured == 0 and not rig.evse.delivering and rig.chip.level(17) == 0

        start = h.mark()
        await rig.badge()
        started = await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Started",
                                      start_index=start, timeout_s=8)
        assert h.received("Authorize", start)[0]["idToken"] == {"idToken": TAG, "type": "ISO14443"}
        assert started["evse"] == {"id": 1, "connectorId": 1}
        assert 1_234_560 <= register_wh(started) <= 1_234_570  # the SDM630's register, in Wh
        await until(lambda: rig.evse.delivering and rig.contactor.closed, what="energy flowing")
        assert rig.evse.configured_a == 32

        await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Updated" and p.get("meterValue"),
                            start_index=h.mark(), timeout_s=8)
        stop = h.mark()
        await rig.badge()
        ended = await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Ended", start_index=stop,
                                    timeout_s=8)
        assert ended["transactionInfo"]["stoppedReason"] == "Local"
        assert ended["transactionInfo"]["transactionId"] == started["transactionInfo"]["transactionId"]
        delivered_wh = register_wh(ended) - register_wh(started)
        assert delivered_wh > 0 and register_wh(ended) <= rig.meter.energy_wh + 1
        await until(lambda: not rig.evse.delivering and rig.chip.level(17) == 0, what="power off")
        seq = [p["seqNo"] for p in tx_events(h)]
        assert seq == list(range(len(seq)))

        rig.evse.unplug()
        await wait_evse(h, "Available", start=stop)


async def test_openevse_board_201_session_remote_start_and_stop(tmp_path):
    async with openevse(tmp_path, csms=csms_201()) as (sim, h):
        assert h.cs.subprotocol == "ocpp2.0.1"
        await wait_evse(h, "Occupied")
        assert not sim.delivering, "the auto-start factory state is taken away before authorization"

        start = h.mark()
        reply = await h.cs.call("RequestStartTransaction", idToken={"idToken": TAG, "type": "Central"},
                                evseId=1, remoteStartId=7)
        assert reply["status"] == "Accepted"
        started = await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Started",
                                      start_index=start, timeout_s=8)
        assert started["transactionInfo"]["remoteStartId"] == 7 and started["triggerReason"] == "RemoteStart"
        await until(lambda: sim.delivering and sim.capacity_a == 32, what="energy flowing")
        await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Updated" and p.get("meterValue"),
                            start_index=h.mark(), timeout_s=8)

        stop = h.mark()
        tx_id = started["transactionInfo"]["transactionId"]
        assert (await h.cs.call("RequestStopTransaction", transactionId=tx_id))["status"] == "Accepted"
        ended = await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Ended", start_index=stop,
                                    timeout_s=8)
        assert ended["transactionInfo"]["stoppedReason"] == "Remote" and ended["triggerReason"] == "RemoteStop"
        delivered_wh = register_wh(ended) - register_wh(started)
        assert delivered_wh > 0 and abs(delivered_wh - sim.session_ws / 3600.0) <= 2
        await until(lambda: not sim.delivering, what="power off")
        sim.unplug()
        await wait_evse(h, "Available", start=stop)
