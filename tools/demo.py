"""``ocpp-agent demo`` (``python -m tools.demo``): one scripted charging session, end to end.

Starts the local test central system (tools/csms.py) on 127.0.0.1 and an agent
on the simulated board, then plugs in an EV, badges a tag, charges in
compressed time until the EV is full, badges again to stop and unplugs.
Every OCPP message is printed as it crosses the wire; a summary closes the run.
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


def _say(text: str) -> None:
    print("demo  » %s" % text, flush=True)


async def run_demo(speed: float = 600.0, keep: bool = False, out=None) -> int:
    """Run the scripted session; returns the process exit status (0 on success)."""
    data_dir = tempfile.mkdtemp(prefix="ocpp-agent-demo-")
    cs = TestCentralSystem(out=out or sys.stdout)
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
        _say("central system listening on %s" % cs.url)
        agent = Agent(config)
        await agent.start()
        return await _script(cs, agent, speed)
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


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="ocpp-agent demo", description="One charging session against a local "
                                "central system, on the simulated board")
    p.add_argument("--speed", type=float, default=600.0, help="simulated seconds per real second")
    p.add_argument("--keep", action="store_true", help="keep the data directory")
    args = p.parse_args(argv)
    return asyncio.run(run_demo(speed=args.speed, keep=args.keep))


if __name__ == "__main__":
    sys.exit(main())
