"""``ocpp-agent demo`` (``python -m tools.demo``): one scripted charging session, end to end.

Starts the local test central system (tools/csms.py) on 127.0.0.1 and an agent
on the simulated board, then plugs in an EV, badges a tag, charges in
compressed time until the EV is full, badges again to stop and unplugs.
Every OCPP message is printed as it crosses the wire; a summary closes the run.
The central system serves one version (``--ocpp``, 1.6 by default); the agent keeps
``csms.ocpp_version = "auto"``, offers both and speaks the one selected. With
``--ocpp 2.0.1`` the summary reads the TransactionEvents (Started, Ended) instead of
Start/StopTransaction.
"""

import asyncio
import shutil
import sys
import tempfile
import time

from agent.app.config import parse_config
from agent.app.runner import Agent
from tools.csms import TestCentralSystem

DEMO_TAG = "DEMO-TAG-1"
EV_NEEDS_WH = 20000.0
STEP_TIMEOUT_S = 20.0
VERSIONS = ("1.6", "2.0.1")
ENERGY_REGISTER = "Energy.Active.Import.Register"


def _say(text: str) -> None:
    print("demo  » %s" % text, flush=True)


async def run_demo(speed: float = 600.0, keep: bool = False, out=None, ocpp: str = "1.6") -> int:
    """Run the scripted session in OCPP ``ocpp`` ("1.6" or "2.0.1"); returns the process
    exit status (0 on success)."""
    if ocpp not in VERSIONS:
        raise ValueError("ocpp must be one of %s, not %r" % (", ".join(VERSIONS), ocpp))
    data_dir = tempfile.mkdtemp(prefix="ocpp-agent-demo-")
    v201 = ocpp == "2.0.1"
    cs = TestCentralSystem(out=out or sys.stdout, protocols=("ocpp2.0.1",) if v201 else ("ocpp1.6",))
    agent = None
    try:
        await cs.start()
        config = parse_config("<demo>", {
            "station": {"id": "DEMO-CP1", "board": "sim", "data_dir": data_dir},
            "csms": {"url": cs.url},
            "ocpp": {"MeterValueSampleInterval": 1, "MeterValuesSampledData":
                     "Energy.Active.Import.Register,Power.Active.Import,Current.Import"},
            "board": {"evse": {"speed": speed, "ev_needs_wh": EV_NEEDS_WH}},
        })
        _say("central system listening on %s (OCPP %s only; the agent offers both)" % (cs.url, ocpp))
        agent = Agent(config)
        await agent.start()
        return await (_script_201 if v201 else _script)(cs, agent, speed)
    except (TimeoutError, asyncio.TimeoutError) as e:
        _say("FAILED: %s" % (e or "a step timed out"))
        return 1
    finally:
        if agent is not None:
            await agent.stop()
        await cs.stop()
        if keep:
            _say("data directory kept: %s" % data_dir)
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


async def _script(cs, agent: Agent, speed: float) -> int:
    sim = agent.loaded.sim
    station = await cs.wait_for_station("DEMO-CP1", timeout_s=STEP_TIMEOUT_S)
    await station.wait_for("BootNotification", timeout_s=STEP_TIMEOUT_S)
    await _wait_status(station, "Available")
    started = time.monotonic()

    _say("EV plugs in on connector 1")
    sim.plug(1)
    await _wait_status(station, "Preparing")

    _say("driver badges tag %s" % DEMO_TAG)
    sim.swipe(DEMO_TAG)
    start = await station.wait_for("StartTransaction", timeout_s=STEP_TIMEOUT_S)
    await _wait_status(station, "Charging")
    _say("charging (simulated time runs %gx faster)" % speed)

    mark = len(station.messages)
    while True:
        s = sim.status()["connectors"][0]
        _say("  %5.1f kW  %6.2f kWh  contactor %s" % (
            s["power_w"] / 1000, s["session_energy_wh"] / 1000, "closed" if s["contactor_closed"] else "open"))
        if any(m.action == "StatusNotification" and m.payload.get("status") == "SuspendedEV"
               for m in station.messages[mark:]):
            break
        if time.monotonic() - started > STEP_TIMEOUT_S * 3:
            raise TimeoutError("the EV did not get full")
        await asyncio.sleep(1.0)
    _say("EV is full (SuspendedEV); driver badges again to stop")
    sim.swipe(DEMO_TAG)
    stop = await station.wait_for("StopTransaction", timeout_s=STEP_TIMEOUT_S)
    await _wait_status(station, "Finishing")

    _say("EV unplugs")
    sim.unplug(1)
    await _wait_status(station, "Available", start_index=len(station.messages) - 1)
    elapsed = time.monotonic() - started

    energy_kwh = (stop["meterStop"] - start["meterStart"]) / 1000
    sent = sum(1 for m in station.messages if m.direction == "→" and not m.action.endswith((".conf", ".error")))
    received = sum(1 for m in station.messages if m.direction == "←" and not m.action.endswith((".conf", ".error")))
    print(flush=True)
    _say("summary")
    _say("  transaction   %s (tag %s, stop reason %s)" % (
        _transaction_id(station), start["idTag"], stop.get("reason", "Local")))
    _say("  energy        %.2f kWh (meterStart %d Wh, meterStop %d Wh)" % (
        energy_kwh, start["meterStart"], stop["meterStop"]))
    _say("  duration      %.1f s real, about %.0f min of charging at speed %g" % (
        elapsed, elapsed * speed / 60, speed))
    _say("  messages      %d calls from the charger, %d from the central system, %d frames in all" % (
        sent, received, len(station.raw)))
    ok = energy_kwh > 0 and stop["meterStop"] >= start["meterStart"]
    _say("session complete" if ok else "FAILED: no energy was delivered")
    return 0 if ok else 1


def _transaction_id(station) -> str:
    for m in station.messages:
        if m.action == "StartTransaction.conf":
            return str(m.payload.get("transactionId"))
    return "?"


async def _wait_status(station, status: str, start_index: int | None = None) -> None:
    await station.wait_for("StatusNotification", lambda p: p["connectorId"] == 1 and p["status"] == status,
                           timeout_s=STEP_TIMEOUT_S, start_index=start_index)


# --------------------------------------------------------------------------- OCPP 2.0.1

async def _script_201(cs, agent: Agent, speed: float) -> int:
    """The same session in OCPP 2.0.1: connector statuses are Available/Occupied (the
    transaction's progress is in the TransactionEvents), the station names the transaction."""
    sim = agent.loaded.sim
    station = await cs.wait_for_station("DEMO-CP1", timeout_s=STEP_TIMEOUT_S)
    await station.wait_for("BootNotification", timeout_s=STEP_TIMEOUT_S)
    await _wait_status_201(station, "Available")
    started_at = time.monotonic()

    _say("EV plugs in on EVSE 1")
    mark = len(station.messages)
    sim.plug(1)
    await _wait_status_201(station, "Occupied", start_index=mark)

    _say("driver badges tag %s" % DEMO_TAG)
    sim.swipe(DEMO_TAG)
    started = await station.wait_for("TransactionEvent", lambda p: p["eventType"] == "Started",
                                     timeout_s=STEP_TIMEOUT_S, start_index=mark)
    tx_id = started["transactionInfo"]["transactionId"]
    _say("charging (simulated time runs %gx faster)" % speed)

    mark = len(station.messages)
    while True:
        s = sim.status()["connectors"][0]
        _say("  %5.1f kW  %6.2f kWh  contactor %s" % (
            s["power_w"] / 1000, s["session_energy_wh"] / 1000, "closed" if s["contactor_closed"] else "open"))
        full = next(filter(None, (_ev_full_201(m, tx_id, started) for m in station.messages[mark:])), None)
        if full:
            break
        if time.monotonic() - started_at > STEP_TIMEOUT_S * 3:
            raise TimeoutError("the EV did not get full")
        await asyncio.sleep(1.0)
    _say("EV is full (TransactionEvent Updated: %s); driver badges again to stop" % full)
    mark = len(station.messages)
    sim.swipe(DEMO_TAG)
    ended = await station.wait_for("TransactionEvent", lambda p: p["eventType"] == "Ended",
                                   timeout_s=STEP_TIMEOUT_S, start_index=mark)

    _say("EV unplugs")
    mark = len(station.messages)
    sim.unplug(1)
    await _wait_status_201(station, "Available", start_index=mark)
    elapsed = time.monotonic() - started_at

    begin_wh, end_wh = _register_wh(started), _register_wh(ended)
    energy_kwh = (end_wh - begin_wh) / 1000 if begin_wh is not None and end_wh is not None else 0.0
    sent = sum(1 for m in station.messages if m.direction == "→" and not m.action.endswith((".conf", ".error")))
    received = sum(1 for m in station.messages if m.direction == "←" and not m.action.endswith((".conf", ".error")))
    events = sum(1 for m in station.messages if m.direction == "→" and m.action == "TransactionEvent"
                 and m.payload["transactionInfo"]["transactionId"] == tx_id)
    print(flush=True)
    _say("summary (OCPP 2.0.1)")
    _say("  transaction   %s (idToken %s, stoppedReason %s, %d TransactionEvents)" % (
        tx_id, started.get("idToken", {}).get("idToken", "?"),
        ended["transactionInfo"].get("stoppedReason", "Local"), events))
    _say("  energy        %.2f kWh (%s: Started %s Wh, Ended %s Wh)" % (
        energy_kwh, ENERGY_REGISTER, _wh(begin_wh), _wh(end_wh)))
    _say("  duration      %.1f s real, about %.0f min of charging at speed %g" % (
        elapsed, elapsed * speed / 60, speed))
    _say("  messages      %d calls from the charging station, %d from the CSMS, %d frames in all" % (
        sent, received, len(station.raw)))
    ok = energy_kwh > 0 and ended["transactionInfo"]["transactionId"] == tx_id
    _say("session complete" if ok else "FAILED: no energy was delivered")
    return 0 if ok else 1


def _sampled_wh(value: dict) -> float | None:
    """The Wh of an Energy.Active.Import.Register SampledValue (measurand absent means it,
    as does a unit absent; kWh and the power-of-ten multiplier applied); None for others."""
    if value.get("measurand", ENERGY_REGISTER) != ENERGY_REGISTER or value.get("phase"):
        return None
    unit = value.get("unitOfMeasure") or {}
    scale = {"Wh": 1.0, "kWh": 1000.0}.get(unit.get("unit", "Wh"))
    if scale is None:
        return None
    return float(value["value"]) * scale * 10 ** unit.get("multiplier", 0)


def _register_wh(event: dict) -> float | None:
    """The last energy register reading in a TransactionEvent's meter values."""
    readings = [(mv["timestamp"], wh) for mv in event.get("meterValue", [])
                for wh in map(_sampled_wh, mv["sampledValue"]) if wh is not None]
    return max(readings)[1] if readings else None


def _ev_full_201(message, tx_id: str, started: dict) -> str | None:
    """What says the EV is full in an Updated event of the transaction: chargingState
    SuspendedEV, or meter values with energy delivered and no power drawn; None if nothing."""
    if message.direction != "→" or message.action != "TransactionEvent":
        return None
    p = message.payload
    if p["eventType"] != "Updated" or p["transactionInfo"]["transactionId"] != tx_id:
        return None
    if p["transactionInfo"].get("chargingState") == "SuspendedEV":
        return "chargingState SuspendedEV"
    begin, now = _register_wh(started), _register_wh(p)
    power = [float(v["value"]) for mv in p.get("meterValue", []) for v in mv["sampledValue"]
             if v.get("measurand") == "Power.Active.Import" and not v.get("phase")]
    if begin is not None and now is not None and now > begin and power and power[-1] == 0:
        return "energy delivered, no power drawn"
    return None


def _wh(value: float | None) -> str:
    return "?" if value is None else "%.0f" % value


async def _wait_status_201(station, status: str, start_index: int | None = None) -> None:
    await station.wait_for("StatusNotification", lambda p: p["evseId"] == 1 and p["connectorStatus"] == status,
                           timeout_s=STEP_TIMEOUT_S, start_index=start_index)


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="ocpp-agent demo", description="One charging session against a local "
                                "central system, on the simulated board")
    p.add_argument("--speed", type=float, default=600.0, help="simulated seconds per real second")
    p.add_argument("--keep", action="store_true", help="keep the data directory")
    p.add_argument("--ocpp", choices=VERSIONS, default="1.6", help="the OCPP version spoken (default 1.6)")
    args = p.parse_args(argv)
    return asyncio.run(run_demo(speed=args.speed, keep=args.keep, ocpp=args.ocpp))


if __name__ == "__main__":
    sys.exit(main())
