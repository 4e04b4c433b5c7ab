"""What the OCPP 2.0.1 end-to-end tests share: the agent pinned to 2.0.1 on the
simulated board against the test central system serving only ``ocpp2.0.1``
(``harness``), what the central system received, and the OCTT reusable steps
(a local start: cable first, then a badge).
"""

from tests.harness import AgentHarness, keys, until
from tools.csms import IN, TestCentralSystem

TAG = "AABBCCDD"


def harness(tmp_path, **kw) -> AgentHarness:
    kw.setdefault("ocpp", keys())
    csms_extra = dict({"ocpp_version": "2.0.1"}, **kw.pop("csms_extra", {}))
    return AgentHarness(tmp_path, csms=TestCentralSystem(quiet=True, protocols=("ocpp2.0.1",)),
                        csms_extra=csms_extra, **kw)


def received(h, action: str, start: int = 0) -> list:
    return [m.payload for m in h.cs.messages[start:] if m.direction == IN and m.action == action]


def errors(h) -> list:
    return [m for m in h.cs.messages if m.action.endswith(".error")]


def tx_events(h, start: int = 0) -> list:
    return received(h, "TransactionEvent", start)


async def wait_connector(h, status: str, evse_id: int = 1, start: int | None = None) -> dict:
    return await h.cs.wait_for("StatusNotification",
                               lambda p: p["evseId"] == evse_id and p["connectorStatus"] == status,
                               start_index=start)


async def local_start(h, tag: str = TAG, evse: int = 1) -> dict:
    """Cable plugged in first, then a badge: the Started event (of ``evse``)."""
    m = h.mark()
    h.sim.plug(evse)
    await wait_connector(h, "Occupied", evse, start=m)
    h.sim.swipe(tag)
    started = await h.cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Started"
                                  and p["evse"]["id"] == evse, start_index=m)
    await until(lambda: h.station.connector(evse).transaction is not None
                and h.station.connector(evse).transaction.backend_id is not None)
    return started


async def configure(h, values: dict) -> None:
    """The OCTT configuration state: SetVariables of ``{"Component.Variable": value}`` (booleans as
    true/false); every one must be Accepted."""
    data = [{"component": {"name": key.split(".")[0]}, "variable": {"name": key.split(".")[1]},
             "attributeValue": ("true" if v else "false") if isinstance(v, bool) else str(v)}
            for key, v in values.items()]
    got = await h.cs.call("SetVariables", setVariableData=data)
    assert [r["attributeStatus"] for r in got["setVariableResult"]] == ["Accepted"] * len(data), got
