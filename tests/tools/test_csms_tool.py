"""Tests for the test central systems in tools/: csms.py (Python) and strict_csms (Node.js).

Each test drives a minimal charge point written here with ``ocpp.v16.ChargePoint``
over a real websocket on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import os
import contextlib
import io
import json
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import quote

import pytest
from ocpp.exceptions import InternalError as OcppInternalError
from ocpp.exceptions import NotImplementedError as OcppNotImplementedError
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tools import strict_csms
from tools.csms import IN, OUT, Message, NotConnectedError, TestCentralSystem, run_command
from tools.strict_csms import StrictCallError, StrictCentralSystem


def run(test: Callable[[], Awaitable[None]], timeout_s: float = 60) -> None:
    """Run one async test bounded in time; fail if it leaves tasks or threads behind."""
    threads_before = set(threading.enumerate())

    async def main() -> None:
        await asyncio.wait_for(test(), timeout_s)
        leftover = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        assert not leftover, f"leaked tasks: {leftover}"

    asyncio.run(main())
    deadline = time.monotonic() + 2
    while (extra := set(threading.enumerate()) - threads_before) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not extra, f"leaked threads: {extra}"


class Charger(ChargePoint):
    """A minimal charge point: keeps the raw frames it receives and answers two commands."""

    def __init__(self, station_id: str, connection: ClientConnection) -> None:
        super().__init__(station_id, connection, response_timeout=5)
        self.ws = connection
        self.frames: list[str] = []
        self.remote_starts: list[tuple[str, int | None]] = []

    async def route_message(self, raw_msg: str) -> None:
        self.frames.append(raw_msg)
        await super().route_message(raw_msg)

    @on(Action.remote_start_transaction)
    def on_remote_start(self, id_tag: str, connector_id: int | None = None, **_: Any) -> Any:
        self.remote_starts.append((id_tag, connector_id))
        return call_result.RemoteStartTransaction(status="Accepted")

    @on(Action.remote_stop_transaction)
    def on_remote_stop(self, transaction_id: int, **_: Any) -> Any:
        return call_result.RemoteStopTransaction(status="Accepted")

    @on(Action.unlock_connector)
    async def on_unlock(self, connector_id: int, **_: Any) -> Any:
        await self.ws.close()  # drop the line instead of answering
        return call_result.UnlockConnector(status="Unlocked")

    async def boot(self) -> Any:
        return await self.call(
            call.BootNotification(charge_point_model="Inline", charge_point_vendor="Tests"), suppress=False
        )

    async def status(self, connector_id: int, status: str) -> Any:
        return await self.call(
            call.StatusNotification(connector_id=connector_id, error_code="NoError", status=status),
            suppress=False,
        )


@contextlib.asynccontextmanager
async def charger(url: str, station_id: str = "CP001", **connect_kwargs: Any) -> AsyncIterator[Charger]:
    """Connect a ``Charger`` and serve it in a task that is cancelled and awaited on exit."""
    connect_kwargs.setdefault("subprotocols", ["ocpp1.6"])
    async with connect(f"{url}/{quote(station_id)}", open_timeout=5, **connect_kwargs) as ws:
        cp = Charger(station_id, ws)
        task = asyncio.create_task(cp.start())
        try:
            yield cp
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


# --- tools/csms.py -----------------------------------------------------------------------


def test_boot_status_and_printed_lines() -> None:
    out = io.StringIO()

    async def scenario() -> None:
        async with TestCentralSystem(boot_interval_s=42, out=out) as cs:
            assert cs.url == f"ws://127.0.0.1:{cs.port}/ocpp"
            async with charger(cs.url) as cp:
                boot = await cp.boot()
                assert (boot.status, boot.interval) == ("Accepted", 42)
                await cp.status(1, "Charging")
                station = await cs.wait_for_station("CP001", timeout_s=5)
                payload = await station.wait_for("StatusNotification", lambda p: p["status"] == "Charging")
                assert payload == {"connectorId": 1, "errorCode": "NoError", "status": "Charging"}
                heartbeat = await cp.call(call.Heartbeat(), suppress=False)
                assert heartbeat.current_time.endswith("Z")
                actions = [(m.direction, m.action) for m in station.messages]
                assert actions == [
                    (IN, "BootNotification"),
                    (OUT, "BootNotification.conf"),
                    (IN, "StatusNotification"),
                    (OUT, "StatusNotification.conf"),
                    (IN, "Heartbeat"),
                    (OUT, "Heartbeat.conf"),
                ]
                with pytest.raises(TimeoutError):
                    await station.wait_for("Authorize", timeout_s=0.05)

    run(scenario)
    lines = out.getvalue().splitlines()
    assert re.fullmatch(r"\d\d:\d\d:\d\d CP001 · connected subprotocol=ocpp1.6", lines[0]), lines
    assert any(
        line.endswith(" CP001 → StatusNotification connector=1 status=Charging error=NoError")
        for line in lines
    )
    assert any(
        " CP001 ← BootNotification.conf status=Accepted " in line and "interval=42" in line for line in lines
    )


def test_transactions_tags_and_handler_overrides() -> None:
    async def scenario() -> None:
        cs = TestCentralSystem(quiet=True, reject_tags={"BAD"}, boot_status="Pending")
        async with cs:
            async with charger(cs.url, "CP 7") as cp:  # a space: URL-encoded in the path
                assert (await cp.boot()).status == "Pending"
                station = await cs.wait_for_station("CP 7")
                ok = await cp.call(call.Authorize(id_tag="GOOD"), suppress=False)
                bad = await cp.call(call.Authorize(id_tag="BAD"), suppress=False)
                assert (ok.id_tag_info["status"], bad.id_tag_info["status"]) == ("Accepted", "Invalid")
                ids = []
                for _ in range(2):
                    started = await cp.call(
                        call.StartTransaction(
                            connector_id=1, id_tag="GOOD", meter_start=0, timestamp="2026-01-01T00:00:00Z"
                        ),
                        suppress=False,
                    )
                    ids.append(started.transaction_id)
                assert ids[1] == ids[0] + 1
                station.handlers["Authorize"] = lambda payload: {"idTagInfo": {"status": "Blocked"}}
                blocked = await cp.call(call.Authorize(id_tag="GOOD"), suppress=False)
                assert blocked.id_tag_info["status"] == "Blocked"
                seen = await station.wait_for("Authorize", lambda p: p["idTag"] == "BAD")
                assert seen == {"idTag": "BAD"}

    run(scenario)


def test_call_returns_the_reply_and_raises_call_errors() -> None:
    async def scenario() -> None:
        async with TestCentralSystem(quiet=True) as cs, charger(cs.url) as cp:
            station = await cs.wait_for_station("CP001")
            reply = await station.call("RemoteStartTransaction", idTag="ABC", connector_id=1)
            assert reply == {"status": "Accepted"}
            out = io.StringIO()  # the same through the command line's stdin syntax
            await run_command(cs, 'CP001 RemoteStartTransaction {"idTag": "XYZ"}', out)
            assert out.getvalue() == 'CP001 RemoteStartTransaction result: {"status": "Accepted"}\n'
            assert cp.remote_starts == [("ABC", 1), ("XYZ", None)]
            assert station.messages[-1] == Message(IN, "RemoteStartTransaction.conf", {"status": "Accepted"})
            with pytest.raises(OcppNotImplementedError):  # the charger has no Reset handler
                await station.call("Reset", type="Soft")
            assert station.messages[-1].action == "Reset.error"
            with pytest.raises(ValueError):
                await station.call("NoSuchAction")
            started = time.monotonic()
            with pytest.raises(NotConnectedError):  # not the 30 s response timeout
                await station.call("UnlockConnector", connectorId=1)
            assert time.monotonic() - started < 5
            with pytest.raises(NotConnectedError):
                await station.call("ClearCache")

    run(scenario)


def test_basic_auth_rejects_with_401() -> None:
    async def scenario() -> None:
        async with TestCentralSystem(quiet=True, password="s3cret") as cs:
            for userinfo in ("", "CP001:wrong@", "OTHER:s3cret@"):
                url = cs.url.replace("ws://", f"ws://{userinfo}")
                with pytest.raises(InvalidStatus) as refused:
                    async with charger(url):
                        pass
                assert refused.value.response.status_code == 401
            assert [reason for _, reason in cs.rejections] == [
                "missing Basic credentials",
                "wrong credentials",
                "wrong credentials",
            ]
            async with charger(cs.url.replace("ws://", "ws://CP001:s3cret@")) as cp:
                assert (await cp.boot()).status == "Accepted"

    run(scenario)


def test_raw_frames_reach_the_charger_and_its_answers_are_readable() -> None:
    async def scenario() -> None:
        async with TestCentralSystem(quiet=True) as cs, charger(cs.url) as cp:
            station = await cs.wait_for_station("CP001")
            await station.send_raw("this is not json")
            await station.send_raw('[2,"raw-1","RemoteStopTransaction",{"transactionId":"one"}]')
            answer = json.loads(await station.wait_raw(lambda text: '"raw-1"' in text, timeout_s=5))
            assert answer[:2] == [4, "raw-1"]  # a CALLERROR for the schema violation
            assert cp.frames[:2] == [
                "this is not json",
                '[2,"raw-1","RemoteStopTransaction",{"transactionId":"one"}]',
            ]
            assert station.messages[-1].action == "RemoteStopTransaction.error"
            # The raw call's answer must not confuse the library's own call() that follows.
            assert await station.call("RemoteStopTransaction", transactionId=1) == {"status": "Accepted"}

    run(scenario)


def test_subprotocol_disconnect_and_reconnect() -> None:
    async def scenario() -> None:
        async with TestCentralSystem(quiet=True) as cs:
            async with connect(f"{cs.url}/NOPROTO", open_timeout=5) as ws:
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 5)
                assert ws.close_code == 1002
            async with charger(cs.url) as cp:
                await cp.boot()
                station = await cs.wait_for_station("CP001")
                mark = len(station.messages)
                await station.disconnect()
                assert not station.connected
            async with charger(cs.url) as cp:
                await cp.boot()
                again = await cs.wait_for_station("CP001")
                assert again is station and station.connections == 2
                await station.wait_for("BootNotification", start_index=mark, timeout_s=5)

    run(scenario)


# --- tools/strict_csms (Node.js, ocpp-rpc strict mode) ----------------------------------

needs_node = pytest.mark.skipif(not strict_csms.available() and not os.environ.get("OCPP_AGENT_CI"),
                                reason="node (and npm) not installed (CI fails instead of skipping)")


@needs_node
def test_strict_csms_serves_and_flags_invalid_payloads() -> None:
    async def scenario() -> None:
        async with StrictCentralSystem() as cs, charger(cs.url) as cp:
            assert (await cp.boot()).status == "Accepted"
            await cp.status(1, "Available")
            assert (await cs.wait_for("StatusNotification", 5))["status"] == "Available"
            assert cs.station_errors() == []

            # A bad enum value, sent as a raw frame past the Python library's own check.
            await cp.ws.send(
                '[2,"bad-1","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Bogus"}]'
            )
            error = await cs.wait_event(lambda e: e["dir"] == "error" and e.get("id") == "bad-1")
            assert (error["kind"], error["origin"], error["action"]) == (
                "strictValidation",
                "station",
                "StatusNotification",
            )
            assert error["errors"][0]["instancePath"] == "/status"
            await cp.ws.send('[2,"ok-2","Heartbeat",{}]')  # valid: must not be flagged
            # A date-time format error that the Python ocpp library itself lets through.
            await cp.ws.send(
                '[2,"bad-3","StatusNotification",{"connectorId":1,"errorCode":"NoError",'
                '"status":"Available","timestamp":"yesterday"}]'
            )
            error = await cs.wait_event(lambda e: e["dir"] == "error" and e.get("id") == "bad-3")
            assert error["errors"][0]["keyword"] == "format"
            assert not [e for e in cs.errors if e.get("id") == "ok-2"]

            assert await cs.send("CP001", "RemoteStopTransaction", {"transactionId": 1}) == {
                "status": "Accepted"
            }
            with pytest.raises(StrictCallError) as refused:
                await cs.send("CP001", "Reset", {"type": "Hard"})  # the charger has no Reset handler
            assert refused.value.code == "NotImplemented"
            assert any(e["kind"] == "callError" and e["action"] == "Reset" for e in cs.station_errors())
            with pytest.raises(StrictCallError) as offline:
                await cs.send("NOBODY", "Reset", {"type": "Hard"})
            assert offline.value.code == "NotConnected"

    run(scenario, timeout_s=240)  # the first run may `npm ci`


@needs_node
def test_strict_csms_password_and_reply_checks() -> None:
    async def scenario() -> None:
        replies = {"Heartbeat": {"currentTime": "not a time"}}  # our own reply, invalid on purpose
        async with StrictCentralSystem(password="pw", replies=replies) as cs:
            with pytest.raises(InvalidStatus) as refused:
                async with charger(cs.url.replace("ws://", "ws://CP001:nope@")):
                    pass
            assert refused.value.response.status_code == 401
            async with charger(cs.url.replace("ws://", "ws://CP001:pw@")) as cp:
                assert (await cp.boot()).status == "Accepted"
                with pytest.raises(OcppInternalError):  # ocpp-rpc swaps the invalid reply for this
                    await cp.call(call.Heartbeat(), suppress=False)
                error = await cs.wait_event(lambda e: e["dir"] == "error" and e.get("action") == "Heartbeat")
                assert (error["origin"], error["message"]) == ("csms", "callResult")
            assert cs.station_errors() == []

    run(scenario, timeout_s=240)
