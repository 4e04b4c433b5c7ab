"""tools/csms.py serving OCPP 2.0.1 (the 2.0.1 side is tools/csms201.py).

Each test drives a stock ``ocpp.v201.ChargePoint`` (the charging-station side,
written here with the plain library API) or a bare websocket over a real
connection on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import io
import json
import os
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import ocpp.v201
import pytest
from ocpp.charge_point import camel_to_snake_case, snake_to_camel_case
from ocpp.exceptions import FormatViolationError, OCPPError, SecurityError, TypeConstraintViolationError
from ocpp.exceptions import NotImplementedError as OcppNotImplementedError
from ocpp.messages import CallResult, validate_payload
from ocpp.routing import on
from ocpp.v201 import ChargePoint, call, call_result
from ocpp.v201.enums import Action
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tools import csms201, strict_csms
from tools.csms import IN, OUT, Message, NotConnectedError, TestCentralSystem, run_command
from tools.strict_csms import StrictCallError, StrictCentralSystem
from tests.tools.test_csms_tool import run as run_bounded

ROOT = Path(__file__).resolve().parents[2]
NOW = "2026-01-01T12:00:00Z"
TOKEN = {"idToken": "GOOD", "type": "ISO14443"}


class Station(ChargePoint):
    """A minimal 2.0.1 charging station: answers GetVariables and RequestStartTransaction."""

    def __init__(self, station_id: str, connection: ClientConnection) -> None:
        super().__init__(station_id, connection, response_timeout=5)
        self.ws = connection
        self.remote_starts: list[tuple[dict[str, Any], int, int | None]] = []
        self.frames: list[list[Any]] = []  # every frame received, parsed

    async def route_message(self, raw_msg: str) -> None:
        self.frames.append(json.loads(raw_msg))
        await super().route_message(raw_msg)

    async def answer_to(self, unique_id: str, timeout_s: float = 5) -> list[Any]:
        """The frame that answers our (raw) call ``unique_id``."""
        for _ in range(int(timeout_s / 0.01)):
            for frame in self.frames:
                if frame[0] in (3, 4) and frame[1] == unique_id:
                    return frame
            await asyncio.sleep(0.01)
        raise TimeoutError(f"no answer to {unique_id}")

    @on(Action.get_variables)
    def on_get_variables(self, get_variable_data: list[dict[str, Any]], **_: Any) -> Any:
        results = []
        for item in get_variable_data:
            known = item["variable"]["name"] == "HeartbeatInterval"
            results.append({
                "attributeStatus": "Accepted" if known else "UnknownVariable",
                "component": item["component"],
                "variable": item["variable"],
                **({"attributeValue": "300"} if known else {}),
            })
        return call_result.GetVariables(get_variable_result=results)

    @on(Action.request_start_transaction)
    def on_request_start(self, id_token: dict[str, Any], remote_start_id: int, evse_id: int | None = None,
                         **_: Any) -> Any:
        self.remote_starts.append((id_token, remote_start_id, evse_id))
        return call_result.RequestStartTransaction(status="Accepted")

    async def boot(self) -> Any:
        return await self.call(call.BootNotification(
            charging_station={"model": "Inline", "vendorName": "Tests"}, reason="PowerUp"), suppress=False)

    async def status(self, evse_id: int, status: str) -> Any:
        return await self.call(call.StatusNotification(
            timestamp=NOW, connector_status=status, evse_id=evse_id, connector_id=1), suppress=False)

    async def authorize(self, tag: str) -> Any:
        return await self.call(call.Authorize(id_token={"idToken": tag, "type": "ISO14443"}), suppress=False)

    async def transaction(self, event_type: str, seq_no: int, **extra: Any) -> Any:
        return await self.call(call.TransactionEvent(
            event_type=event_type, timestamp=NOW, trigger_reason="Authorized", seq_no=seq_no,
            transaction_info={"transactionId": "TX-1"}, **extra), suppress=False)


@contextlib.asynccontextmanager
async def station(url: str, station_id: str = "CS201",
                  subprotocols: tuple[str, ...] = ("ocpp2.0.1",)) -> AsyncIterator[Station]:
    """Connect a ``Station`` and serve it in a task that is cancelled and awaited on exit."""
    async with connect(f"{url}/{quote(station_id)}", open_timeout=5,
                       subprotocols=list(subprotocols) or None) as ws:
        cp = Station(station_id, ws)
        task = asyncio.create_task(cp.start())
        try:
            yield cp
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def test_the_librarys_key_conversion_round_trips_every_2_0_1_schema_key():
    """csms201 relies on it to keep payloads camelCase through the library's dataclasses."""
    keys = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            keys.update(node.get("properties", {}) if isinstance(node.get("properties"), dict) else ())
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    schemas = glob.glob(os.path.join(os.path.dirname(ocpp.v201.__file__), "schemas", "*.json"))
    for path in schemas:
        with open(path, encoding="utf-8") as f:
            walk(json.load(f))
    assert len(schemas) > 100 and len(keys) > 200
    assert {k for k in keys if snake_to_camel_case({k: 1}) != {k: 1}} == set()  # nested keys pass as they are
    assert {k for k in keys if snake_to_camel_case(camel_to_snake_case({k: 1})) != {k: 1}} == set()


async def test_boot_status_transactions_authorize_and_the_record():
    out = io.StringIO()
    async with TestCentralSystem(boot_interval_s=42, reject_tags={"BAD"}, out=out) as cs:
        async with station(cs.url, subprotocols=("ocpp2.0.1", "ocpp1.6")) as cp:
            boot = await cp.boot()
            assert (boot.status, boot.interval) == ("Accepted", 42) and boot.current_time.endswith("Z")
            handle = await cs.wait_for_station("CS201", timeout_s=5)
            assert (handle.version, handle.subprotocol) == ("2.0.1", "ocpp2.0.1")
            assert (await cp.call(call.Heartbeat(), suppress=False)).current_time.endswith("Z")
            await cp.status(1, "Occupied")
            assert await handle.wait_for("StatusNotification", lambda p: p["connectorStatus"] == "Occupied") == {
                "timestamp": NOW, "connectorStatus": "Occupied", "evseId": 1, "connectorId": 1}

            started = await cp.transaction("Started", 0, id_token=TOKEN, evse={"id": 1, "connectorId": 1})
            assert started.id_token_info == {"status": "Accepted"}
            rejected = await cp.transaction("Updated", 1, id_token={"idToken": "BAD", "type": "ISO14443"})
            assert rejected.id_token_info == {"status": "Invalid"}
            ended = await cp.transaction("Ended", 2, meter_value=[
                {"timestamp": NOW, "sampledValue": [{"value": 1234.5, "unitOfMeasure": {"unit": "Wh"}}]}])
            assert ended.id_token_info is None  # no idToken in the request: no idTokenInfo
            assert (await cp.authorize("GOOD")).id_token_info == {"status": "Accepted"}
            assert (await cp.authorize("BAD")).id_token_info == {"status": "Invalid"}

            # Every message in camelCase, as on the wire.
            assert handle.messages[:4] == [
                Message(IN, "BootNotification",
                        {"chargingStation": {"model": "Inline", "vendorName": "Tests"}, "reason": "PowerUp"}),
                Message(OUT, "BootNotification.conf", handle.messages[1].payload),
                Message(IN, "Heartbeat", {}),
                Message(OUT, "Heartbeat.conf", handle.messages[3].payload),
            ]
            assert set(handle.messages[1].payload) == {"currentTime", "interval", "status"}
            assert [m.action for m in handle.messages if m.direction == IN] == [
                "BootNotification", "Heartbeat", "StatusNotification", "TransactionEvent", "TransactionEvent",
                "TransactionEvent", "Authorize", "Authorize"]
            tx = await handle.wait_for("TransactionEvent", lambda p: p["eventType"] == "Started")
            assert tx["transactionInfo"] == {"transactionId": "TX-1"} and tx["idToken"] == TOKEN
            assert handle.messages[-1] == Message(OUT, "Authorize.conf", {"idTokenInfo": {"status": "Invalid"}})
    lines = out.getvalue().splitlines()
    assert re.fullmatch(r"\d\d:\d\d:\d\d CS201 · connected subprotocol=ocpp2.0.1", lines[0]), lines
    assert any(line.endswith(" CS201 → StatusNotification evse=1 connector=1 connectorStatus=Occupied "
                             f"timestamp={NOW}") for line in lines), lines
    ended_lines = [line for line in lines if " CS201 → TransactionEvent eventType=Ended " in line]
    assert len(ended_lines) == 1 and " Energy.Active.Import.Register=1234.5Wh" in ended_lines[0], lines
    assert sum(" CS201 → " in line for line in lines) == 8 and sum(" CS201 ← " in line for line in lines) == 8


async def test_the_central_system_calls_the_station_in_camel_case():
    async with TestCentralSystem(quiet=True) as cs, station(cs.url) as cp:
        handle = await cs.wait_for_station("CS201")
        reply = await handle.call("GetVariables", getVariableData=[
            {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}},
            {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "NoSuchVariable"}}])
        assert reply == {"getVariableResult": [
            {"attributeStatus": "Accepted", "component": {"name": "OCPPCommCtrlr"},
             "variable": {"name": "HeartbeatInterval"}, "attributeValue": "300"},
            {"attributeStatus": "UnknownVariable", "component": {"name": "OCPPCommCtrlr"},
             "variable": {"name": "NoSuchVariable"}}]}
        assert handle.messages[-2].payload["getVariableData"][0]["component"] == {"name": "OCPPCommCtrlr"}

        # snake_case keys work as for 1.6, and so does the console's syntax.
        assert await handle.call("RequestStartTransaction", id_token=TOKEN, remote_start_id=7,
                                 evseId=1) == {"status": "Accepted"}
        out = io.StringIO()
        await run_command(cs, 'CS201 RequestStartTransaction {"idToken": {"idToken": "ABC", "type": "ISO14443"}, '
                              '"remoteStartId": 1}', out)
        assert out.getvalue() == 'CS201 RequestStartTransaction result: {"status": "Accepted"}\n'
        assert cp.remote_starts == [({"id_token": "GOOD", "type": "ISO14443"}, 7, 1),
                                    ({"id_token": "ABC", "type": "ISO14443"}, 1, None)]

        with pytest.raises(OcppNotImplementedError):  # the station has no Reset handler
            await handle.call("Reset", type="Immediate")
        assert handle.messages[-1].action == "Reset.error"
        with pytest.raises(ValueError, match="not an OCPP 2.0.1 request"):
            await handle.call("RemoteStartTransaction", idTag="ABC")  # a 1.6 action
        with pytest.raises(FormatViolationError):  # checked by the library before sending
            await handle.call("Reset", type="Softly")
        out = io.StringIO()
        await run_command(cs, "CS201 NoSuchAction {}", out)
        assert out.getvalue().startswith("CS201 NoSuchAction failed: ValueError(")
        await cp.ws.close()
        with pytest.raises(NotConnectedError):
            await handle.call("ClearCache")
        assert handle.version == "2.0.1" and not handle.connected  # the last connection's


async def test_handler_overrides_for_every_station_and_one():
    def refuse(payload: dict[str, Any]) -> dict[str, Any]:
        raise SecurityError(description="no certificates today")

    async def pending(payload: dict[str, Any]) -> dict[str, Any]:  # async handlers too
        assert payload["chargingStation"]["model"] == "Inline"
        return {"currentTime": NOW, "interval": 5, "status": "Pending",
                "statusInfo": {"reasonCode": "Maintenance"}}

    cs = TestCentralSystem(quiet=True, handlers={"BootNotification": pending, "SignCertificate": refuse})
    async with cs, station(cs.url) as cp:
        boot = await cp.boot()
        assert (boot.status, boot.interval, boot.status_info) == ("Pending", 5, {"reason_code": "Maintenance"})
        handle = await cs.wait_for_station("CS201")
        assert handle.messages[1].payload["statusInfo"] == {"reasonCode": "Maintenance"}
        handle.handlers["Authorize"] = lambda payload: {"idTokenInfo": {"status": "Blocked", "evseId": [1]}}
        blocked = await cp.authorize("GOOD")
        assert blocked.id_token_info == {"status": "Blocked", "evse_id": [1]}
        with pytest.raises(SecurityError):
            await cp.call(call.SignCertificate(csr="x" * 10), suppress=False)
        assert handle.messages[-1] == Message(OUT, "SignCertificate.error", {
            "errorCode": "SecurityError", "errorDescription": "no certificates today", "errorDetails": {}})
        # A handler's reply is schema-checked too: an invalid one becomes a CALLERROR.
        handle.handlers["Heartbeat"] = lambda payload: {"currentTime": 12}
        with pytest.raises(OCPPError):
            await cp.call(call.Heartbeat(), suppress=False)
        assert handle.messages[-1].action == "Heartbeat.error"


async def test_default_replies_to_every_station_request_are_schema_valid():
    cs = TestCentralSystem(quiet=True)
    async with cs, station(cs.url) as cp:
        handle = await cs.wait_for_station("CS201")
        for action in csms201.CHARGER_ACTIONS:
            cls = getattr(call_result, action)
            reply = cs.default_reply(handle, action, {"idToken": TOKEN} if action == "TransactionEvent" else {})
            await validate_payload(CallResult("1", reply, action=action), "2.0.1")
            cls(**{csms201.snake(k): v for k, v in reply.items()})  # and fits the library's dataclass
        # A few over the wire, with the station's own requests checked as they arrive.
        await cp.call(call.NotifyEvent(generated_at=NOW, seq_no=0, event_data=[{
            "eventId": 1, "timestamp": NOW, "trigger": "Delta", "actualValue": "Faulted",
            "eventNotificationType": "HardWiredNotification", "component": {"name": "Connector"},
            "variable": {"name": "AvailabilityState"}}]), suppress=False)
        await cp.call(call.SecurityEventNotification(type="StartupOfTheDevice", timestamp=NOW), suppress=False)
        await cp.call(call.FirmwareStatusNotification(status="Idle"), suppress=False)
        assert (await cp.call(call.DataTransfer(vendor_id="x"), suppress=False)).status == "Accepted"
        assert [m.action for m in handle.messages if m.direction == OUT] == [
            "NotifyEvent.conf", "SecurityEventNotification.conf", "FirmwareStatusNotification.conf",
            "DataTransfer.conf"]


async def test_schema_invalid_frames_from_the_station_are_answered_and_recorded():
    async with TestCentralSystem(quiet=True) as cs:
        async with connect(f"{cs.url}/RAW201", subprotocols=["ocpp2.0.1"], open_timeout=5) as ws:
            handle = await cs.wait_for_station("RAW201")
            # A bad enum value and a wrong type: answered with the matching CALLERROR, and recorded.
            await ws.send('[2,"bad-1","StatusNotification",{"timestamp":"%s","connectorStatus":"Bogus",'
                          '"evseId":1,"connectorId":1}]' % NOW)
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))[:3] == [4, "bad-1", "FormatViolation"]
            await ws.send('[2,"bad-2","Heartbeat",{"extra":1}]')
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))[:3] == [4, "bad-2", "FormatViolation"]
            await ws.send('[2,"bad-3","Authorize",{"idToken":{"idToken":7,"type":"ISO14443"}}]')
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))[:3] == [4, "bad-3", "TypeConstraintViolation"]
            errors = [(m.action, m.payload["errorCode"]) for m in handle.messages if m.direction == OUT]
            assert errors == [("StatusNotification.error", "FormatViolation"),
                              ("Heartbeat.error", "FormatViolation"),
                              ("Authorize.error", "TypeConstraintViolation")]
            assert handle.messages[0] == Message(IN, "StatusNotification", {
                "timestamp": NOW, "connectorStatus": "Bogus", "evseId": 1, "connectorId": 1})

            # An invalid result to the central system's call is raised by call().
            calling = asyncio.create_task(handle.call("ClearCache"))
            request = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert request[0] == 2 and request[2:] == ["ClearCache", {}]
            await ws.send(json.dumps([3, request[1], {"status": "Maybe"}]))
            with pytest.raises(FormatViolationError):
                await calling
            assert handle.messages[-1] == Message(IN, "ClearCache.conf", {"status": "Maybe"})
            calling = asyncio.create_task(handle.call("ClearCache"))
            request = json.loads(await asyncio.wait_for(ws.recv(), 5))
            await ws.send(json.dumps([3, request[1], {"status": 1}]))
            with pytest.raises(TypeConstraintViolationError):
                await calling


async def negotiated(url: str, offered: list[str], station_id: str = "P") -> tuple[str | None, int | None]:
    """(subprotocol selected, close code or None if still open) for a client offering ``offered``."""
    async with connect(f"{url}/{station_id}", subprotocols=offered or None, open_timeout=5) as ws:
        try:
            await asyncio.wait_for(ws.recv(), 0.5)
        except (ConnectionClosed, TimeoutError):
            pass
        return ws.subprotocol, ws.close_code


async def test_subprotocol_selection_preference_pinning_and_none():
    async with TestCentralSystem(quiet=True) as cs:  # default: 2.0.1 preferred, then 1.6
        assert cs.protocols == ("ocpp2.0.1", "ocpp1.6")
        assert await negotiated(cs.url, ["ocpp1.6", "ocpp2.0.1"], "A") == ("ocpp2.0.1", None)
        assert await negotiated(cs.url, ["ocpp1.6"], "B") == ("ocpp1.6", None)
        assert (cs.stations["A"].version, cs.stations["B"].version) == ("2.0.1", "1.6")
        assert await negotiated(cs.url, ["ocpp2.1"], "C") == (None, 1002)
        assert cs.rejections == [("C", "no ocpp2.0.1 or ocpp1.6 subprotocol")]

    async with TestCentralSystem(quiet=True, protocols=("ocpp1.6",)) as cs:  # 1.6 only
        assert await negotiated(cs.url, ["ocpp2.0.1", "ocpp1.6"], "A") == ("ocpp1.6", None)
        assert await negotiated(cs.url, ["ocpp2.0.1"], "B") == (None, 1002)
        assert cs.rejections == [("B", "no ocpp1.6 subprotocol")] and list(cs.stations) == ["A"]

    async with TestCentralSystem(quiet=True, protocols=("ocpp2.0.1",)) as cs:  # 2.0.1 only
        assert await negotiated(cs.url, ["ocpp1.6", "ocpp2.0.1"], "A") == ("ocpp2.0.1", None)
        assert await negotiated(cs.url, ["ocpp1.6"], "B") == (None, 1002)

    async with TestCentralSystem(quiet=True, protocols=(), require_subprotocol=False) as cs:  # selects none
        async with station(cs.url, "NONE", ("ocpp2.0.1", "ocpp1.6")) as cp:
            assert cp.ws.subprotocol is None
            handle = await cs.wait_for_station("NONE")
            assert (handle.subprotocol, handle.version) == (None, "1.6")  # served as 1.6, as before
    async with TestCentralSystem(quiet=True, protocols=("ocpp2.0.1",), require_subprotocol=False) as cs:
        async with station(cs.url, "LAX", ()) as cp:
            assert (await cp.boot()).status == "Accepted"  # served as 2.0.1, the only version served
            assert (await cs.wait_for_station("LAX")).version == "2.0.1"
    async with TestCentralSystem(quiet=True, protocols=()) as cs:
        assert await negotiated(cs.url, ["ocpp1.6"], "X") == (None, 1002)
        assert cs.rejections == [("X", "no subprotocol served")]

    with pytest.raises(ValueError, match="unknown OCPP subprotocol 'ocpp2.1'"):
        TestCentralSystem(protocols=("ocpp2.1",))
    with pytest.raises(TypeError):
        TestCentralSystem(protocols="ocpp1.6")


async def test_one_handle_follows_a_station_across_versions():
    async with TestCentralSystem(quiet=True) as cs:
        async with station(cs.url, "CP9") as cp:
            await cp.boot()
        handle = cs.stations["CP9"]
        await handle.wait_for("BootNotification")
        async with connect(f"{cs.url}/CP9", subprotocols=["ocpp1.6"], open_timeout=5) as ws:
            await ws.send('[2,"b16","BootNotification",{"chargePointModel":"M","chargePointVendor":"V"}]')
            reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert reply[2]["status"] == "Accepted" and handle.version == "1.6" and handle.connections == 2
            assert handle.messages[-1] == Message(OUT, "BootNotification.conf", reply[2])
            with pytest.raises(ValueError, match="not an OCPP 1.6 request"):
                await handle.call("RequestStartTransaction", idToken=TOKEN, remoteStartId=1)


async def test_the_console_serves_2_0_1_stations():
    """``python -m tools.csms``: one line per message, and stdin commands to a 2.0.1 station."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tools.csms", "--port", "0", "--protocol", "ocpp2.0.1", cwd=ROOT,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    lines: list[str] = []

    async def line_with(text: str) -> str:
        while True:
            line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
            assert line, "the console exited: %s" % lines
            lines.append(line.rstrip("\n"))
            if text in line:
                return line

    try:
        header = await line_with("central system")
        assert header.startswith("OCPP central system (ocpp2.0.1) on ws://127.0.0.1:")
        url = re.search(r"(ws://\S+)/<station id>", header).group(1)
        async with station(url, "CP001") as cp:
            await cp.boot()
            await line_with("CP001 ← BootNotification.conf")
            proc.stdin.write(b'CP001 RequestStartTransaction {"idToken": {"idToken": "ABC", "type": "ISO14443"}, '
                             b'"remoteStartId": 1}\n')
            await proc.stdin.drain()
            assert (await line_with("result:")).strip() == (
                'CP001 RequestStartTransaction result: {"status": "Accepted"}')
            assert cp.remote_starts == [({"id_token": "ABC", "type": "ISO14443"}, 1, None)]
    finally:
        proc.terminate()
        await proc.wait()
    messages = [line for line in lines if " CP001 → " in line or " CP001 ← " in line]
    assert [line.split()[2:4] for line in messages] == [
        ["→", "BootNotification"], ["←", "BootNotification.conf"],
        ["←", "RequestStartTransaction"], ["→", "RequestStartTransaction.conf"]]
    assert "idToken.idToken=ABC" in messages[2] and "remoteStartId=1" in messages[2]


# --- tools/strict_csms serving ocpp2.0.1 (Node.js, ocpp-rpc strict mode) ----------------------

needs_node = pytest.mark.skipif(not strict_csms.available() and not os.environ.get("OCPP_AGENT_CI"),
                                reason="node (and npm) not installed (CI fails instead of skipping)")


def run(test: Callable[[], Awaitable[None]]) -> None:
    """tests/tools/test_csms_tool.py's bounded run with leak checks, with room for a first `npm ci`."""
    run_bounded(test, timeout_s=240)


@needs_node
def test_strict_peer_serves_2_0_1_and_rejects_schema_invalid_requests() -> None:
    async def scenario() -> None:
        cs = StrictCentralSystem(protocols=("ocpp2.0.1", "ocpp1.6"), reject_tags=["BAD"], boot_interval_s=60)
        async with cs, station(cs.url, subprotocols=("ocpp1.6", "ocpp2.0.1")) as cp:
            assert cp.ws.subprotocol == "ocpp2.0.1"  # the server's preference
            boot = await cp.boot()
            assert (boot.status, boot.interval) == ("Accepted", 60)
            assert (await cs.wait_for("BootNotification", 5))["chargingStation"]["vendorName"] == "Tests"
            assert cs.protocol_of("CS201") == "ocpp2.0.1"
            await cp.status(1, "Available")
            assert (await cs.wait_for("StatusNotification", 5))["connectorStatus"] == "Available"
            started = await cp.transaction("Started", 0, id_token=TOKEN, evse={"id": 1, "connectorId": 1})
            assert started.id_token_info == {"status": "Accepted"}
            ended = await cp.transaction("Ended", 1)
            assert ended.id_token_info is None
            assert (await cp.authorize("BAD")).id_token_info == {"status": "Invalid"}
            assert await cs.send("CS201", "RequestStartTransaction",
                                 {"idToken": TOKEN, "remoteStartId": 3}) == {"status": "Accepted"}
            reply = await cs.send("CS201", "GetVariables", {"getVariableData": [
                {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}]})
            assert reply["getVariableResult"][0]["attributeValue"] == "300"
            assert cs.station_errors() == []

            # Schema-invalid requests, sent raw past the Python library's own check.
            await cp.ws.send('[2,"bad-1","StatusNotification",{"timestamp":"%s","connectorStatus":"Available",'
                             '"evseId":"one","connectorId":1}]' % NOW)
            assert (await cp.answer_to("bad-1"))[:3] == [4, "bad-1", "TypeConstraintViolation"]
            await cp.ws.send('[2,"bad-2","TransactionEvent",{"eventType":"Paused","timestamp":"%s",'
                             '"triggerReason":"Authorized","seqNo":2,"transactionInfo":{"transactionId":"T"}}]'
                             % NOW)
            assert (await cp.answer_to("bad-2"))[:3] == [4, "bad-2", "FormatViolation"]  # not an enum value
            await cp.ws.send('[2,"bad-3","Heartbeat",{"timestamp":"now"}]')  # the Python side: FormatViolation
            assert (await cp.answer_to("bad-3"))[:3] == [4, "bad-3", "PropertyConstraintViolation"]
            await cp.ws.send('[2,"ok-4","Heartbeat",{}]')
            assert (await cp.answer_to("ok-4"))[0] == 3
            flagged = [(e["kind"], e["action"], e["id"], e["code"]) for e in cs.station_errors()]
            assert flagged == [
                ("strictValidation", "StatusNotification", "bad-1", "TypeConstraintViolation"),
                ("strictValidation", "TransactionEvent", "bad-2", "FormatViolation"),
                ("strictValidation", "Heartbeat", "bad-3", "PropertyConstraintViolation"),
            ]
            assert cs.station_errors()[0]["errors"][0]["instancePath"] == "/evseId"

            with pytest.raises(StrictCallError) as refused:  # a 1.6 action on a 2.0.1 connection
                await cs.send("CS201", "RemoteStartTransaction", {"idTag": "X"})
            assert refused.value.code == "ProtocolError"

    run(scenario)


@needs_node
def test_strict_peer_pinned_to_one_version_refuses_the_other() -> None:
    async def scenario() -> None:
        async with StrictCentralSystem() as cs:  # 1.6 only, as before
            assert await negotiated(cs.url, ["ocpp2.0.1"]) == (None, 1002)
            assert await negotiated(cs.url, ["ocpp2.0.1", "ocpp1.6"]) == ("ocpp1.6", None)
        async with StrictCentralSystem(protocols=("ocpp2.0.1",)) as cs:
            assert await negotiated(cs.url, ["ocpp1.6"]) == (None, 1002)
            error = await cs.wait_event(lambda e: e.get("kind") == "subprotocol")
            assert error["error"] == "station did not offer ocpp2.0.1"
        with pytest.raises(ValueError):
            StrictCentralSystem(protocols=("ocpp2.1",))

    run(scenario)
