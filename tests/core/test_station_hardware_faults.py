"""The station's handling of failing hardware, on the simulated board in virtual time.

Devices of the sim board are made to fail in place (a meter whose reads raise or
go backwards, a controller that refuses an offer, current measured with the
contactor open); the end-to-end versions over real serial links are in
``test_board_sessions.py``. What is checked:

- a failed meter read is a *missing* reading (never the last good one again);
  PowerMeterFailure after three failures in a row, NoError on recovery, no
  current while the meter is failed; an energy register that goes backwards is
  missing, and StopTransaction never goes below what was reported;
- a failed hardware command faults the connector until a retry, with a
  doubling backoff, retries that fail again cause no StatusNotification, and
  the first command that works clears it;
- current with the contactor open is a welded contactor: PowerSwitchFailure
  after the grace time and two confirmations, from the idle meter check,
  latched, contactor commanded open; a contactor whose feedback says it did
  not close is opened again, PowerSwitchFailure, and retried.
"""

import asyncio

from agent.core.supervision import COMMAND_RETRY_S, METER_RETRY_S, METER_WATCH_S
from hal.errors import CommunicationError
from hal.interfaces import MeterReading
from tests.harness import AgentHarness

TAG = "TAG-1"
OCPP = {"MeterValueSampleInterval": 10, "MeterValuesSampledData": "Energy.Active.Import.Register,Current.Import"}


def statuses(h, connector_id: int, start: int) -> list:
    return [(p["status"], p["errorCode"]) for p in h.received("StatusNotification", start)
            if p["connectorId"] == connector_id]


def energies(h, start: int) -> list:
    return [float(sv["value"]) for p in h.received("MeterValues", start) for mv in p["meterValue"]
            for sv in mv["sampledValue"] if sv.get("measurand") == "Energy.Active.Import.Register"]


async def run(h, seconds: float, step_s: float = 1.0) -> None:
    """Let ``seconds`` of virtual time pass, with real I/O in between."""
    n = int(round(seconds / step_s))
    for _ in range(n):
        await h.clock.advance(step_s)
        await asyncio.sleep(0.002)
    await h.settle()


async def charging(h) -> None:
    await h.wait_status(1, "Available")  # online (BootNotification accepted)
    m = h.mark()
    h.sim.plug(1)
    h.sim.swipe(TAG)
    await h.wait_status(1, "Charging", m)


class FailingMeter:
    """Wraps the sim meter's read: raise while ``failing``, or return ``override`` readings."""

    def __init__(self, meter) -> None:
        self.meter = meter
        self.real_read = meter.read
        self.failing = False
        self.override = None
        self.reads = 0
        meter.read = self.read

    async def read(self):
        self.reads += 1
        if self.failing:
            raise CommunicationError("meter: no answer within 0.5 s")
        reading = await self.real_read()
        if self.override is not None:
            return self.override(reading)
        return reading


async def test_meter_failures_are_missing_then_power_meter_failure_then_recovery(tmp_path):
    async with AgentHarness(tmp_path, ocpp=OCPP) as h:
        meter = FailingMeter(h.agent.loaded.board.connectors[0].meter)
        await charging(h)
        start = h.mark()
        await run(h, 10)
        good = energies(h, start)
        assert len(good) == 1
        m = h.mark()
        meter.failing = True
        await run(h, 10)  # one sample: the reading fails, so no energy is sent (not the last one again)
        assert energies(h, m) == [] and statuses(h, 1, m) == []
        # The retries come every METER_RETRY_S; the third failure in a row faults the connector.
        await run(h, 2 * METER_RETRY_S)
        assert statuses(h, 1, m) == [("Faulted", "PowerMeterFailure")]
        sim_connector = h.sim.connectors[0]
        assert sim_connector.evse.current_limit_a == 0 and not sim_connector.contactor.is_closed
        assert h.station.connector(1).transaction is not None  # suspended, not ended
        assert h.station.status_of(1)[3] == "meter: 3 reads failed"
        # Recovery within METER_RETRY_S: NoError, charging again.
        r = h.mark()
        meter.failing = False
        await run(h, METER_RETRY_S)
        assert statuses(h, 1, r) == [("Charging", "NoError")]
        assert sim_connector.evse.current_limit_a > 0


async def test_energy_going_backwards_is_missing_and_stop_never_goes_below_a_reported_value(tmp_path):
    async with AgentHarness(tmp_path, ocpp=OCPP) as h:
        meter = FailingMeter(h.agent.loaded.board.connectors[0].meter)
        await charging(h)
        start = h.mark()
        await run(h, 20)
        reported = energies(h, start)
        assert len(reported) == 2 and reported[1] > reported[0]
        # A replaced (or faulty) meter reads less than before.
        meter.override = lambda r: MeterReading(r.energy_wh - 1000.0, r.power_w, r.current_a, r.voltage_v,
                                                r.frequency_hz, r.timestamp)
        m = h.mark()
        await run(h, 20)
        assert energies(h, m) == []
        assert h.received("MeterValues", m), "the other measurands are still sent"
        stop = h.mark()
        h.sim.swipe(TAG)
        stopped = await h.cs.wait_for("StopTransaction", start_index=stop)
        assert stopped["meterStop"] >= int(max(reported))


async def test_a_failed_command_faults_until_a_retry_works_with_backoff_and_no_flapping(tmp_path):
    async with AgentHarness(tmp_path) as h:
        evse = h.agent.loaded.board.connectors[0].evse
        real_set = evse.set_current_limit
        attempts = []
        refusing = {"on": False}

        async def set_current_limit(current_a):
            if refusing["on"] and current_a > 0:
                attempts.append(h.clock.monotonic())
                raise CommunicationError("controller: no answer")
            await real_set(current_a)

        evse.set_current_limit = set_current_limit
        await charging(h)
        refusing["on"] = True
        m = h.mark()
        profile = {"chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
                   "chargingProfileKind": "Absolute", "chargingSchedule": {
                       "chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16}]}}
        await h.cs.call("SetChargingProfile", connectorId=1, csChargingProfiles=profile)
        await h.wait_status(1, "Faulted", m)
        assert len(attempts) == 1 and evse.current_limit_a == 0
        assert h.station.status_of(1)[1:] == ("internal_error", "", "controller: no answer")
        # Retries after 5, then 10, then 20 s; each fails again without a status change.
        await run(h, COMMAND_RETRY_S)
        assert len(attempts) == 2
        await run(h, 2 * COMMAND_RETRY_S - 1)
        assert len(attempts) == 2
        await run(h, 1)
        assert len(attempts) == 3
        assert statuses(h, 1, m) == [("Faulted", "InternalError")], "no flapping"
        # The controller takes offers again: the next retry clears the fault.
        refusing["on"] = False
        r = h.mark()
        await run(h, 4 * COMMAND_RETRY_S)
        assert statuses(h, 1, r) == [("Charging", "NoError")]
        assert evse.current_limit_a == 16
        assert h.station.connector(1).command_failures == 0


async def test_current_with_the_contactor_open_is_a_welded_contactor(tmp_path):
    async with AgentHarness(tmp_path) as h:
        meter = FailingMeter(h.agent.loaded.board.connectors[0].meter)
        await h.wait_status(1, "Available")
        m = h.mark()
        h.sim.plug(1)
        await h.wait_status(1, "Preparing", m)
        # No transaction, contactor open — and the meter measures 16 A: the contact is welded.
        meter.override = lambda r: MeterReading(r.energy_wh, 11040.0, (16.0, 16.0, 16.0), r.voltage_v,
                                                r.frequency_hz, r.timestamp)
        await run(h, METER_WATCH_S, step_s=5)
        assert statuses(h, 1, m) == [("Preparing", "NoError")], "one reading is not enough"
        await run(h, METER_WATCH_S, step_s=5)
        assert statuses(h, 1, m)[-1] == ("Faulted", "PowerSwitchFailure")
        assert h.station.status_of(1)[3] == "contactor stuck: 16.0 A while open"
        assert not h.sim.connectors[0].contactor.is_closed
        # Latched: the weld does not heal when the current stops; no session starts on it.
        meter.override = None
        await run(h, 2 * METER_WATCH_S, step_s=5)
        assert h.station.status_of(1)[:2] == ("faulted", "power_switch_failure")
        assert (await h.cs.call("RemoteStartTransaction", idTag=TAG, connectorId=1))["status"] == "Rejected"


async def test_a_contactor_that_does_not_close_is_opened_again_and_retried(tmp_path):
    async with AgentHarness(tmp_path) as h:
        relay = h.agent.loaded.board.connectors[0].contactor
        real_feedback = relay.read_feedback
        dead_coil = {"on": True}

        async def read_feedback():
            return False if dead_coil["on"] else await real_feedback()

        relay.read_feedback = read_feedback
        await h.wait_status(1, "Available")
        m = h.mark()
        h.sim.plug(1)
        h.sim.swipe(TAG)
        await h.cs.wait_for("StartTransaction", start_index=m)
        faulted = await h.wait_status(1, "Faulted", m)
        assert faulted["errorCode"] == "PowerSwitchFailure"
        assert faulted["vendorErrorCode"] == "contactor did not close"
        assert not relay.is_closed and h.sim.connectors[0].evse.current_limit_a == 0
        dead_coil["on"] = False
        r = h.mark()
        await run(h, COMMAND_RETRY_S)
        assert statuses(h, 1, r) == [("Charging", "NoError")] and relay.is_closed
