"""Regression tests for a central system, written with the ocpp-agent pytest plugin.

A backend team copies this file and runs it against its own central system:

    pip install ocpp-agent pytest
    pytest test_example_backend.py --ocpp-csms-url ws://localhost:9000/ocpp --ocpp-version 1.6

Each test gets a simulated charger (the real agent on the simulated board, real time)
that is connected and booted; it drives the hardware and checks what the backend
answered. The tag BLOCKED must be unknown or blocked in the backend. Guide:
docs/pytest-plugin.md.
"""

import asyncio

import pytest

pytestmark = pytest.mark.ocpp_bench  # async tests without pytest-asyncio or anyio (harmless with them)

GOOD_TAG = "TAG-0001"
BLOCKED_TAG = "BLOCKED"


def answers(charger, action: str) -> list:
    """Payloads of the backend's answers to the charger's ``action`` requests."""
    return [f.payload for f in charger.frames if f.action == action and f.kind == "result"]


async def test_boot_is_accepted_with_a_heartbeat_interval(ocpp_charger):
    assert ocpp_charger.online
    boot = answers(ocpp_charger, "BootNotification")[-1]
    assert boot["status"] == "Accepted" and boot["interval"] > 0


async def test_a_badge_starts_and_stops_a_session(ocpp_charger):
    cp = ocpp_charger
    cp.plug(1)
    cp.swipe(GOOD_TAG)
    await cp.wait_status(1, "Charging")  # the charger's own state; also "charging", or "Occupied"
    if cp.ocpp_version == "1.6":
        start = await cp.wait_frame("StartTransaction", kind="result")
        assert start.payload["idTagInfo"]["status"] == "Accepted" and start.payload["transactionId"]
    else:
        started = await cp.wait_frame("TransactionEvent", lambda p: p["eventType"] == "Started")
        assert started.payload["idToken"]["idToken"] == GOOD_TAG
    energy_wh = cp.meter_wh(1)
    await asyncio.sleep(0.5)
    assert cp.meter_wh(1) > energy_wh  # 22 kW in real time: about 3 Wh per half second

    mark = cp.mark()
    cp.swipe(GOOD_TAG)  # the same badge again ends the session
    stop_action = "StopTransaction" if cp.ocpp_version == "1.6" else "TransactionEvent"
    await cp.wait_frame(stop_action, lambda p: p.get("eventType", "Ended") == "Ended", since=mark)
    cp.unplug(1)
    await cp.wait_status(1, "Available")


async def test_a_blocked_tag_is_refused(ocpp_charger):
    cp = ocpp_charger
    cp.plug(1)
    cp.swipe(BLOCKED_TAG)
    answer = (await cp.wait_frame("Authorize", kind="result")).payload
    info = answer.get("idTagInfo") or answer.get("idTokenInfo")  # 1.6 / 2.0.1
    assert info["status"] != "Accepted"
    await asyncio.sleep(0.3)
    assert cp.status(1) == "preparing"  # plugged in, nothing authorized: no energy
    assert cp.hardware(1)["power_w"] == 0


async def test_a_fault_is_reported_and_cleared(ocpp_charger):
    cp = ocpp_charger
    mark = cp.mark()
    cp.fault("ground_failure", connector=1)
    await cp.wait_status(1, "Faulted")
    status_key = "status" if cp.ocpp_version == "1.6" else "connectorStatus"
    await cp.wait_frame("StatusNotification", lambda p: p[status_key] == "Faulted", since=mark)
    cp.clear_fault(1)
    await cp.wait_status(1, "Available")


def test_a_few_chargers_boot_side_by_side(ocpp_charger_factory):
    chargers = [ocpp_charger_factory() for _ in range(3)]  # ids PYTEST-CP-1, -2, -3 by default
    assert all(c.online for c in chargers)
    assert len({c.station_id for c in chargers}) == 3
