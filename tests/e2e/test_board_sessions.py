"""Full sessions on the shipped real-hardware boards, every device simulated.

The real ``Agent`` (config file → ``boards/<name>.toml`` with ``[board.<section>]``
overrides → real drivers) runs against ``tools/csms.py`` on 127.0.0.1:

- ``rpi-sdm630-simpleevse``: the SDM630 meter simulator (pymodbus) and the
  SimpleEVSE-WB simulator share **one RS-485 line** — a multi-drop
  ``PtyLink(drops=2)``: the agent opens one pty, both simulators hear every
  request and each answers its own device id, so the agent's one ``ModbusBus``
  really serialises meter and controller on a shared port. The GPIO contactor
  runs on ``hal.gpio_fake`` with its auxiliary contact wired back; a PN532
  simulator on a pty is the badge reader. The meter measures what the
  contactor and the controller let through: the simulated load follows them.
- ``openevse``: the RAPI simulator on a pty; energy from the controller's own
  counters (no ``[meter]``); sessions start with RemoteStartTransaction.
- ``phoenix-em-cp-pp-eth``: the EM-CP-PP-ETH simulator over Modbus TCP on
  loopback, its SDM630 removed (``[board.meter] driver = "none"``): energy from
  the meter wired to the controller, read through it on the same connection.

Every simulator starts in its factory state — delivering energy as soon as an
EV is plugged in — and the EV is plugged in before the agent starts: the
agent must take the offer away before anything else. Time is a
``VirtualClock`` pumped in the background (``Pump``: a quarter of a second of
charger time every few real milliseconds), so sample intervals and health
timers run fast while serial I/O and Modbus timeouts stay real.
"""

import asyncio
import contextlib
import sys
import time

from hal.runtime.clock import VirtualClock
from hal.evse_common import NOT_ANSWERING
from hal.gpio_fake import FakeGpiod
from tests.harness import AgentHarness
from tools.modbus_meter_sim import ModbusMeterSim
from tools.phoenix_sim import PhoenixSim
from tools.pn532_sim import Pn532Sim
from tools.pty_link import PtyLink
from tools.rapi_sim import RapiSim
from tools.simpleevse_sim import SimpleEvseSim

TAG = "04A1B2C3D4E5F6"
FAST_BUS = {"timeout_s": 0.15, "retries": 0}  # one bus, one setting: meter and controller share it
OCPP = {"MeterValueSampleInterval": 10,
        "MeterValuesSampledData": "Energy.Active.Import.Register,Power.Active.Import,Current.Import,Current.Offered"}


class Pump:
    """Moves the virtual clock ``step_s`` every ``real_s`` of real time, in the background."""

    def __init__(self, clock: VirtualClock, step_s: float = 0.25, real_s: float = 0.005, on_step=None) -> None:
        self.clock = clock
        self.step_s = step_s
        self.real_s = real_s
        self.on_step = on_step
        self._task = None

    async def _run(self) -> None:
        while True:
            if self.on_step is not None:
                self.on_step()
            await self.clock.advance(self.step_s)
            await asyncio.sleep(self.real_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None


async def until(cond, timeout_s: float = 8.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        await asyncio.sleep(0.005)


def energy_values(payloads: list) -> list:
    """Energy.Active.Import.Register values (Wh) of MeterValues payloads, in order."""
    out = []
    for p in payloads:
        for mv in p["meterValue"]:
            for sv in mv["sampledValue"]:
                if sv.get("measurand", "Energy.Active.Import.Register") == "Energy.Active.Import.Register":
                    out.append(float(sv["value"]))
    return out


def measurands(payload: dict) -> set:
    return {sv.get("measurand", "Energy.Active.Import.Register")
            for mv in payload["meterValue"] for sv in mv["sampledValue"]}


# ------------------------------------------------------------------ rpi-sdm630-simpleevse


class ContactorModel:
    """The contactor on GPIO17 with its auxiliary contact on GPIO27 (active low, pull-up)."""

    def __init__(self, chip) -> None:
        self.chip = chip
        self.welded = False
        chip.on_output = lambda offset, level: self.update()
        self.update()

    @property
    def closed(self) -> bool:
        return self.welded or self.chip.lines[17].driven == 1

    def update(self) -> None:
        self.chip.drive(27, 0 if self.closed else None)


class RpiRig:
    """The rpi-sdm630-simpleevse board on simulators (see the module doc)."""

    def __init__(self, tmp_path, monkeypatch, csms=None) -> None:
        self.csms = csms  # the central system (default: the harness's, serving 1.6)
        self.clock = VirtualClock()
        self.line = PtyLink(drops=2)
        self.meter = ModbusMeterSim("sdm630", device_id=2, clock=self.clock.monotonic, energy_wh=1_234_567.0)
        self.evse = SimpleEvseSim(device_id=1)  # factory: 16 A after boot, "charge on plug"
        self.reader = Pn532Sim()
        self.gpiod = FakeGpiod()
        self.chip = self.gpiod.add_chip("/dev/gpiochip0")
        self.contactor = ContactorModel(self.chip)
        monkeypatch.setitem(sys.modules, "gpiod", self.gpiod)
        self.tmp_path = tmp_path
        self.pump = Pump(self.clock, on_step=self.wire)
        self.h = None

    def wire(self) -> None:
        """The load the meter measures: the EV's draw, through the controller's relay and the contactor."""
        self.contactor.update()
        flowing = self.evse.delivering and self.contactor.closed
        current_a = self.evse.ev.draw_a(self.evse.configured_a) if flowing else 0.0
        if abs(self.meter.load.current_a[0] - current_a) > 1e-9:
            self.meter.set_load(current_a=current_a)

    async def __aenter__(self):
        await self.line.open()
        await self.meter.start_rtu(self.line.b_paths[0], baudrate=9600, parity="N")
        await self.evse.start_serial(self.line.b_paths[1], baudrate=9600)
        reader_link = await self.reader.start_pty()
        board = {
            "meter": dict({"port": self.line.a_path}, **FAST_BUS),
            "evse": dict({"port": self.line.a_path, "poll_interval_s": 1.0}, **FAST_BUS),
            "contactor": {"feedback_settle_s": 0.01},
            "reader": {"port": reader_link.a_path, "poll_interval_s": 0.02, "release_s": 0.05},
        }
        self.h = AgentHarness(self.tmp_path, clock=self.clock, board=board, ocpp=dict(OCPP),
                              station={"board": "rpi-sdm630-simpleevse"}, csms=self.csms)
        self.pump.start()
        try:
            await self.h.__aenter__()
        except BaseException:
            await self._stop_devices()
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        try:
            await self.h.__aexit__(*exc)
        finally:
            await self._stop_devices()

    async def _stop_devices(self) -> None:
        await self.pump.stop()
        await self.reader.stop()
        await self.evse.stop()
        await self.meter.stop()
        await self.line.close()

    async def badge(self) -> None:
        """Hold the card on the reader until the agent has read it, then take it away (and
        wait until the reader has seen it gone: the same card again is a new presentation)."""
        polls = self.reader.commands.count(0x4A)
        self.reader.present(TAG)
        await until(lambda: self.reader.commands.count(0x4A) >= polls + 2, what="the reader to poll the card")
        self.reader.remove()
        polls = self.reader.commands.count(0x4A)
        await until(lambda: self.reader.commands.count(0x4A) >= polls + 5, what="the reader to see no card")


@contextlib.asynccontextmanager
async def rpi(tmp_path, monkeypatch, plugged: bool = True, csms=None):
    rig = RpiRig(tmp_path, monkeypatch, csms)
    if plugged:
        rig.evse.plug()
        assert rig.evse.delivering, "factory state: the controller charges a plugged EV at once"
    async with rig:
        yield rig, rig.h


async def test_rpi_board_full_session_on_one_shared_rs485_line(tmp_path, monkeypatch):
    async with rpi(tmp_path, monkeypatch) as (rig, h):
        hw = h.agent.loaded.board.connectors[0]
        assert len(h.agent.loaded.buses.buses()) == 1 and hw.meter.bus is hw.evse.bus, "one port, one owner"
        # Before any authorization: the controller offers nothing, whatever its factory state.
        await h.wait_status(1, "Preparing")
        assert rig.evse.configured == 0 and not rig.evse.pwm_on and not rig.evse.delivering
        assert rig.evse.settings[0] == 0, "current after boot (reg 2000) set to 0"
        assert rig.chip.level(17) == 0 and set(rig.chip.history(17)) == {0}  # contactor off from the start

        start = h.mark()
        await rig.badge()
        started = await h.cs.wait_for("StartTransaction", start_index=start)
        assert started["idTag"] == TAG and started["connectorId"] == 1
        assert h.received("Authorize", start)[0]["idTag"] == TAG
        assert 1_234_560 <= started["meterStart"] <= 1_234_570  # the meter's register, in Wh
        assert rig.meter.frames > 0 and rig.evse.slave.requests, "both answered on the one line"
        await h.wait_status(1, "Charging", start=start)
        assert rig.evse.pwm_on and rig.evse.configured_a == 32 and rig.chip.level(17) == 1
        assert rig.contactor.closed and rig.meter.load.current_a == [32.0, 32.0, 32.0]

        # Sampled MeterValues from the meter every 10 s (virtual): energy rising, never backwards.
        mark = h.mark()
        await h.cs.wait_for("MeterValues", start_index=mark, timeout_s=8)
        await h.cs.wait_for("MeterValues", start_index=h.mark(), timeout_s=8)
        values = h.received("MeterValues", mark)
        tx_id = h.station.connector(1).transaction.backend_id
        assert all(p["transactionId"] == tx_id for p in values)
        energy = energy_values(values)
        assert len(energy) >= 2 and energy == sorted(energy) and energy[-1] > energy[0]
        assert {"Power.Active.Import", "Current.Import", "Current.Offered"} <= measurands(values[-1])

        stop_mark = h.mark()
        await rig.badge()
        stopped = await h.cs.wait_for("StopTransaction", start_index=stop_mark)
        assert stopped["reason"] == "Local" and stopped["idTag"] == TAG
        delivered_wh = stopped["meterStop"] - started["meterStart"]
        assert delivered_wh > 0 and stopped["meterStop"] >= int(energy[-1])
        assert stopped["meterStop"] <= rig.meter.energy_wh + 1
        await h.wait_status(1, "Finishing", start=stop_mark)
        assert rig.evse.configured == 0 and rig.chip.level(17) == 0 and not rig.evse.delivering

        rig.evse.unplug()
        await h.wait_status(1, "Available", start=stop_mark)
        assert rig.meter.load.current_a == [0.0, 0.0, 0.0]


async def test_rpi_board_meter_timeouts_power_meter_failure_and_recovery(tmp_path, monkeypatch):
    async with rpi(tmp_path, monkeypatch) as (rig, h):
        start = h.mark()
        await rig.badge()
        started = await h.cs.wait_for("StartTransaction", start_index=start)
        await h.wait_status(1, "Charging", start=start)
        await h.cs.wait_for("MeterValues", start_index=h.mark(), timeout_s=8)
        last_good = energy_values(h.received("MeterValues", start))[-1]

        # The meter stops answering: readings are missing, then PowerMeterFailure, and no current.
        fault_mark = h.mark()
        rig.meter.silent = True
        faulted = await h.wait_status(1, "Faulted", start=fault_mark, timeout_s=10)
        assert faulted["errorCode"] == "PowerMeterFailure"
        await until(lambda: rig.evse.configured == 0 and rig.chip.level(17) == 0, what="no current while faulted")
        during = h.received("MeterValues", fault_mark)
        assert all("Energy.Active.Import.Register" not in measurands(p) for p in during), \
            "a missing reading is never the last good value sent again"
        assert h.station.connector(1).transaction is not None, "the transaction is suspended, not ended"

        # The meter answers again: NoError, charging resumes, energy continues from the register.
        back = h.mark()
        rig.meter.silent = False
        charging = await h.wait_status(1, "Charging", start=back, timeout_s=10)
        assert charging["errorCode"] == "NoError"
        await h.cs.wait_for("MeterValues", start_index=back, timeout_s=8)
        after = energy_values(h.received("MeterValues", back))
        assert after and after[0] >= last_good

        # It fails again and the session ends meanwhile: the StopTransaction carries the last
        # recorded reading, not a guess and not less than what was reported.
        rig.meter.silent = True
        await h.wait_status(1, "Faulted", start=h.mark(), timeout_s=10)
        reported = energy_values(h.received("MeterValues", start))
        stop_mark = h.mark()
        tx = h.station.connector(1).transaction
        reply = await h.cs.call("RemoteStopTransaction", transactionId=tx.backend_id)
        assert reply["status"] == "Accepted"
        stopped = await h.cs.wait_for("StopTransaction", start_index=stop_mark)
        assert stopped["meterStop"] == tx.last_meter_wh >= int(max(reported))
        assert started["meterStart"] < stopped["meterStop"] <= rig.meter.energy_wh
        rig.meter.silent = False
        ok = await h.wait_status(1, "Finishing", start=stop_mark, timeout_s=10)
        assert ok["errorCode"] == "NoError"


async def test_rpi_board_controller_stops_answering(tmp_path, monkeypatch):
    async with rpi(tmp_path, monkeypatch) as (rig, h):
        start = h.mark()
        await rig.badge()
        await h.cs.wait_for("StartTransaction", start_index=start)
        await h.wait_status(1, "Charging", start=start)
        assert rig.chip.level(17) == 1

        dead = h.mark()
        rig.evse.silent = True
        faulted = await h.wait_status(1, "Faulted", start=dead, timeout_s=10)
        assert faulted["errorCode"] == "InternalError" and faulted.get("vendorErrorCode") == NOT_ANSWERING
        # Stopped safely: the contactor in series with the controller's relay is open, no current.
        assert rig.chip.level(17) == 0 and not rig.contactor.closed
        await until(lambda: rig.meter.load.current_a == [0.0, 0.0, 0.0], what="no current")
        assert h.station.connector(1).offered_current_a == 0

        # It answers again: first set back to "no energy", then the session resumes.
        back = h.mark()
        writes = len(rig.evse.writes)
        rig.evse.silent = False
        charging = await h.wait_status(1, "Charging", start=back, timeout_s=10)
        assert charging["errorCode"] == "NoError" and rig.chip.level(17) == 1
        assert rig.evse.writes[writes] == (1000, 0), "the first write after contact: no energy"
        assert rig.evse.configured_a == 32


async def test_rpi_board_contactor_welded_after_a_session_is_noticed_idle(tmp_path, monkeypatch):
    async with rpi(tmp_path, monkeypatch) as (rig, h):
        start = h.mark()
        await rig.badge()
        await h.wait_status(1, "Charging", start=start)
        await rig.badge()
        await h.cs.wait_for("StopTransaction", start_index=start)
        rig.evse.unplug()
        await h.wait_status(1, "Available", start=start)
        # The contact welds while idle (the output is off): the periodic check finds it.
        weld = h.mark()
        rig.contactor.welded = True
        rig.pump.step_s = 2.0
        faulted = await h.wait_status(1, "Faulted", start=weld, timeout_s=10)
        assert faulted["errorCode"] == "PowerSwitchFailure" and "feedback closed" in faulted["vendorErrorCode"]
        assert rig.chip.level(17) == 0
        # Latched: no session starts on a welded contactor.
        rig.evse.plug()
        assert (await h.cs.call("RemoteStartTransaction", idTag=TAG, connectorId=1))["status"] == "Rejected"


# ------------------------------------------------------------------ openevse


@contextlib.asynccontextmanager
async def openevse(tmp_path, plugged: bool = True, csms=None):
    clock = VirtualClock()
    sim = RapiSim(clock=clock, auto_start=True)  # factory: enabled, charges a plugged EV
    if plugged:
        sim.plug()
        assert sim.delivering
    link = await sim.start_pty()
    pump = Pump(clock)
    board = {"evse": {"port": link.a_path, "poll_interval_s": 1.0, "timeout_s": 0.3, "retries": 0}}
    h = AgentHarness(tmp_path, clock=clock, board=board, ocpp=dict(OCPP), station={"board": "openevse"},
                     csms=csms)
    pump.start()
    try:
        async with h:
            yield sim, h
    finally:
        await pump.stop()
        await sim.stop()


async def test_openevse_board_full_session_energy_from_the_controller(tmp_path):
    async with openevse(tmp_path) as (sim, h):
        assert h.agent.loaded.board.connectors[0].meter.__class__.__name__ == "OpenEvseMeter"
        await h.wait_status(1, "Preparing")
        assert not sim.delivering, "the auto-start factory state is taken away before authorization"

        start = h.mark()
        assert (await h.cs.call("RemoteStartTransaction", idTag=TAG, connectorId=1))["status"] == "Accepted"
        started = await h.cs.wait_for("StartTransaction", start_index=start)
        await h.wait_status(1, "Charging", start=start)
        assert sim.delivering and sim.capacity_a == 32
        mark = h.mark()
        await h.cs.wait_for("MeterValues", start_index=mark, timeout_s=8)
        await h.cs.wait_for("MeterValues", start_index=h.mark(), timeout_s=8)
        energy = energy_values(h.received("MeterValues", mark))
        assert energy == sorted(energy) and energy[-1] > energy[0]

        tx_id = h.station.connector(1).transaction.backend_id
        stop_mark = h.mark()
        assert (await h.cs.call("RemoteStopTransaction", transactionId=tx_id))["status"] == "Accepted"
        stopped = await h.cs.wait_for("StopTransaction", start_index=stop_mark)
        assert stopped["reason"] == "Remote"
        delivered_wh = stopped["meterStop"] - started["meterStart"]
        # 32 A × 230 V = 7360 W; the controller counts whole Wh of its session.
        assert delivered_wh > 0 and abs(delivered_wh - sim.session_ws / 3600.0) <= 2
        await h.wait_status(1, "Finishing", start=stop_mark)
        assert not sim.delivering
        sim.unplug()
        await h.wait_status(1, "Available", start=stop_mark)


async def test_openevse_board_controller_stops_answering(tmp_path):
    async with openevse(tmp_path) as (sim, h):
        start = h.mark()
        await h.cs.call("RemoteStartTransaction", idTag=TAG, connectorId=1)
        await h.wait_status(1, "Charging", start=start)
        dead = h.mark()
        sim.silent = True
        faulted = await h.wait_status(1, "Faulted", start=dead, timeout_s=10)
        assert faulted["errorCode"] == "InternalError" and faulted.get("vendorErrorCode") == NOT_ANSWERING
        assert h.station.connector(1).offered_current_a == 0
        back = h.mark()
        sim.silent = False
        await h.wait_status(1, "Charging", start=back, timeout_s=10)


# ------------------------------------------------------------------ phoenix-em-cp-pp-eth


@contextlib.asynccontextmanager
async def phoenix(tmp_path, energy_wh: float, plugged: bool = True):
    """The Phoenix board on its simulator over Modbus TCP, the meter read through the controller."""
    clock = VirtualClock()
    sim = PhoenixSim(clock=clock.monotonic)  # factory: charging enabled at 16 A
    sim.energy_wh = energy_wh
    if plugged:
        sim.plug()
        assert sim.delivering
    port = await sim.start_tcp()
    pump = Pump(clock)
    board = {"evse": {"host": "127.0.0.1", "tcp_port": port, "poll_interval_s": 1.0, "timeout_s": 0.3,
                      "retries": 0},
             "meter": {"driver": "none"}}
    h = AgentHarness(tmp_path, clock=clock, board=board, ocpp=dict(OCPP), station={"board": "phoenix-em-cp-pp-eth"})
    pump.start()
    try:
        async with h:
            yield sim, h
    finally:
        await pump.stop()
        await sim.stop()


async def test_phoenix_board_full_session_energy_from_the_meter_behind_the_controller(tmp_path):
    async with phoenix(tmp_path, 5_000_000.0) as (sim, h):
        loaded = h.agent.loaded
        hw = loaded.board.connectors[0]
        assert hw.meter.register_map.name == "phoenix_em_cp_pp_eth"
        assert hw.meter.bus is hw.evse.bus and len(loaded.buses.buses()) == 1, "one connection to the controller"
        await h.wait_status(1, "Preparing")
        assert not sim.delivering and sim.coil_writes[0] is False, "factory 'enabled' taken away first"

        start = h.mark()
        assert (await h.cs.call("RemoteStartTransaction", idTag=TAG, connectorId=1))["status"] == "Accepted"
        started = await h.cs.wait_for("StartTransaction", start_index=start)
        assert started["meterStart"] == 5_000_000  # the controller's register: ×0.01 kWh, low word first
        await h.wait_status(1, "Charging", start=start)
        assert sim.delivering and sim.max_current_a == 32
        mark = h.mark()
        await h.cs.wait_for("MeterValues", start_index=mark, timeout_s=8)
        await h.cs.wait_for("MeterValues", start_index=h.mark(), timeout_s=8)
        values = h.received("MeterValues", mark)
        energy = energy_values(values)
        assert energy == sorted(energy) and energy[-1] > energy[0]
        assert {"Power.Active.Import", "Current.Import"} <= measurands(values[-1])
        power = [float(sv["value"]) for sv in values[-1]["meterValue"][0]["sampledValue"]
                 if sv.get("measurand") == "Power.Active.Import"]
        assert power == [32 * 230.0 * 3]  # 22,080 W: the controller's meter, ×0.01 kW

        tx_id = h.station.connector(1).transaction.backend_id
        stop_mark = h.mark()
        assert (await h.cs.call("RemoteStopTransaction", transactionId=tx_id))["status"] == "Accepted"
        stopped = await h.cs.wait_for("StopTransaction", start_index=stop_mark)
        delivered_wh = stopped["meterStop"] - started["meterStart"]
        # The register counts in 10 Wh steps: the StopTransaction is within one step of the truth.
        assert delivered_wh > 0 and abs(stopped["meterStop"] - sim.energy_wh) <= 10
        await h.wait_status(1, "Finishing", start=stop_mark)
        assert not sim.delivering and sim.enabled is False
        sim.unplug()
        await h.wait_status(1, "Available", start=stop_mark)
