"""The GPIO contactor at the hal boundary: the real driver (hal/gpio_relay.py) on a
fake gpiod module (hal/gpio_fake.py) — only the GPIO chip is simulated. Then the
check helpers (current with the relay open, meter health) and a full session on
the sim board with the GPIO contactor wired in, ending in PowerSwitchFailure when
the contactor welds."""

import sys

import pytest

from hal.contactor_check import ContactorCheck, current_flowing
from hal.errors import HalConfigurationError
from hal.gpio_fake import FakeGpiod
from hal.gpio_relay import GpioContactor, GpioError, build_contactor, chip_path, import_gpiod
from hal.interfaces import MeterReading, Relay
from hal.meter_health import MeterHealth
from hal.runtime.clock import VirtualClock
from tests.harness import AgentHarness


class ContactorModel:
    """The contactor itself: its coil follows the relay output (after the test's say-so),
    its auxiliary contact pulls the feedback input low while the main contacts are closed."""

    def __init__(self, chip, out: int = 17, fb: int = 27) -> None:
        self.chip, self.out, self.fb = chip, out, fb
        self.welded = False
        self.closed = False
        chip.on_output = self._coil

    def _coil(self, offset: int, level: int) -> None:
        if offset != self.out:
            return
        if level == 1:
            self.closed = True
        elif not self.welded:
            self.closed = False
        self.chip.drive(self.fb, 0 if self.closed else 1)


@pytest.fixture
def gpiod():
    g = FakeGpiod()
    g.add_chip("/dev/gpiochip0", lines=54, names={17: "GPIO17", 27: "GPIO27"})
    return g


def make(gpiod, **kw) -> GpioContactor:
    params = dict(line=17, feedback_line=27, feedback_active_low=True, feedback_bias="pull_up",
                  feedback_settle_s=0.2, gpiod=gpiod, clock=VirtualClock(instant_sleep=True))
    params.update(kw)
    return GpioContactor(**params)


async def test_output_is_off_from_the_first_moment_and_after_close(gpiod):
    chip = gpiod.chips["/dev/gpiochip0"]
    relay = make(gpiod, feedback_line=None)
    assert isinstance(relay, Relay) and not relay.has_feedback
    assert chip.history(17) == []  # the constructor does no I/O
    async with relay:
        assert chip.history(17) == [0]  # requested already driven inactive: never a glitch to active
        assert chip.lines[17].consumer == "ocpp-agent"
        await relay.set_closed(True)
        assert chip.level(17) == 1 and relay.is_closed
        await relay.set_closed(False)
        await relay.set_closed(True)
    assert chip.history(17) == [0, 1, 0, 1, 0]  # close() drives it off before releasing
    assert chip.lines[17].consumer is None and not relay.is_closed
    await relay.close()  # twice is fine


async def test_active_low_output_and_a_released_line_on_a_mainline_kernel():
    g = FakeGpiod()
    chip = g.add_chip("/dev/gpiochip4", lines=54, persist=False)
    relay = GpioContactor(chip="gpiochip4", line=5, active_low=True, gpiod=g)
    await relay.open()
    assert chip.history(5) == [1]  # off = high for an active-low relay driver
    await relay.set_closed(True)
    assert chip.level(5) == 0
    await relay.close()
    # Mainline: a released line becomes an input (None: only the pull resistor decides).
    assert chip.history(5) == [1, 0, 1, None]


async def test_a_crash_releases_the_line_and_a_restart_drives_it_off_at_once(gpiod):
    """Raspberry Pi OS keeps a released output at its last level (persist_gpio_outputs): a crash
    while closed leaves it closed until the agent runs again; open() then turns it off first."""
    chip = gpiod.chips["/dev/gpiochip0"]
    relay = make(gpiod)
    await relay.open()
    await relay.set_closed(True)
    relay._out.release()  # what the kernel does when the process dies
    assert chip.level(17) == 1 and chip.lines[17].consumer is None
    restarted = make(gpiod)
    await restarted.open()
    assert chip.level(17) == 0 and chip.history(17)[-1] == 0
    await restarted.close()


async def test_feedback_follows_a_healthy_contactor_after_the_settle_time(gpiod):
    chip = gpiod.chips["/dev/gpiochip0"]
    ContactorModel(chip)
    relay = make(gpiod)
    await relay.open()
    assert relay.has_feedback
    assert chip.level(27) == 1  # the pull-up: open contact reads high
    assert await relay.read_feedback() is False  # after the settle time from open()
    t0 = relay.clock.monotonic()
    await relay.set_closed(True)
    assert await relay.read_feedback() is True
    assert relay.clock.monotonic() - t0 == pytest.approx(0.2)  # waited for pull-in and bounce
    assert await relay.read_feedback() is True
    assert relay.clock.monotonic() - t0 == pytest.approx(0.2)  # no second wait without switching
    await relay.set_closed(False)
    assert await relay.read_feedback() is False
    await relay.close()


async def test_a_welded_contact_is_reported_by_the_feedback(gpiod):
    chip = gpiod.chips["/dev/gpiochip0"]
    model = ContactorModel(chip)
    relay = make(gpiod)
    await relay.open()
    await relay.set_closed(True)
    assert await relay.read_feedback() is True
    model.welded = True
    await relay.set_closed(False)
    assert chip.level(17) == 0  # the output is off...
    assert await relay.read_feedback() is True  # ...and the contact still closed
    await relay.close()


async def test_feedback_on_another_chip_and_lines_by_name():
    g = FakeGpiod()
    out_chip = g.add_chip("/dev/gpiochip0", names={17: "GPIO17"})
    fb_chip = g.add_chip("/dev/gpiochip1", names={3: "AUX"})
    relay = GpioContactor(line="GPIO17", feedback_chip="/dev/gpiochip1", feedback_line="AUX",
                          feedback_settle_s=0, gpiod=g)
    await relay.open()
    fb_chip.drive(3, 1)
    assert await relay.read_feedback() is True
    await relay.set_closed(True)
    assert out_chip.level(17) == 1
    await relay.close()
    assert out_chip.lines[17].consumer is None and fb_chip.lines[3].consumer is None


async def test_chip_and_line_errors_say_what_to_do(gpiod):
    with pytest.raises(GpioError, match="no such GPIO chip.*gpiochip0 since kernel 6.6.45"):
        await GpioContactor(chip="/dev/gpiochip4", line=17, gpiod=gpiod).open()
    chip = gpiod.chips["/dev/gpiochip0"]
    chip.accessible = False
    with pytest.raises(GpioError, match="permission denied.*gpio group"):
        await make(gpiod).open()
    chip.accessible = True
    first = make(gpiod)
    await first.open()
    with pytest.raises(GpioError, match="busy.*agent already running"):
        await make(gpiod).open()
    await first.close()
    with pytest.raises(HalConfigurationError, match="unknown line name"):
        await GpioContactor(line="GPIO99", gpiod=gpiod).open()
    with pytest.raises(GpioError, match="invalid request"):
        await GpioContactor(line=200, gpiod=gpiod).open()
    with pytest.raises(GpioError, match="not open"):
        await make(gpiod).set_closed(True)
    # A failed request of the feedback line releases the output it already holds.
    with pytest.raises(GpioError, match="no such GPIO chip"):
        await make(gpiod, feedback_chip="/dev/gpiochip9").open()
    assert chip.lines[17].consumer is None


def test_settings_are_checked_without_io(gpiod):
    with pytest.raises(HalConfigurationError) as e:
        GpioContactor(line=-1, gpiod=gpiod)
    assert e.value.key == "line"
    with pytest.raises(HalConfigurationError) as e:
        GpioContactor(line=17, feedback_line=17, gpiod=gpiod)
    assert e.value.key == "feedback_line"
    with pytest.raises(HalConfigurationError) as e:
        GpioContactor(line=17, feedback_bias="up", gpiod=gpiod)
    assert e.value.key == "feedback_bias"
    assert chip_path(0) == "/dev/gpiochip0" and chip_path("gpiochip4") == "/dev/gpiochip4"
    with pytest.raises(HalConfigurationError) as e:
        build_contactor({"driver": "gpio", "line": 17, "lin": 3}, gpiod=gpiod)
    assert e.value.key == "lin"
    with pytest.raises(HalConfigurationError) as e:
        build_contactor({"driver": "gpio"}, gpiod=gpiod)
    assert e.value.key == "line"
    relay = build_contactor({"driver": "gpio", "line": 17, "feedback_line": 27}, gpiod=gpiod)
    assert relay.describe() == "/dev/gpiochip0 line 17, feedback line 27"


def test_missing_gpiod_package_is_a_configuration_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "gpiod", None)  # import gpiod -> ImportError
    with pytest.raises(HalConfigurationError, match=r"pip install 'ocpp-agent\[gpio\]'"):
        import_gpiod()
    with pytest.raises(HalConfigurationError, match="gpiod"):
        build_contactor({"driver": "gpio", "line": 17})


# ------------------------------------------------------------------ current with the relay open

def reading(current=None, power=None):
    return MeterReading(energy_wh=1000.0, power_w=power, current_a=current)


def test_current_flowing_reads_phases_or_power():
    assert current_flowing(None) == ""
    assert current_flowing(reading((0.1, 0.0, None))) == ""
    assert current_flowing(reading((0.0, 15.8, 0.2))) == "15.8 A"
    assert current_flowing(reading(None, power=3600.0)) == "3600 W"
    assert current_flowing(reading(None, power=50.0)) == ""
    assert current_flowing(reading((None, None, None), power=None)) == ""


def test_contactor_check_grace_confirmation_and_latch():
    check = ContactorCheck(threshold_a=1.0, grace_s=5.0, confirmations=2)
    check.switched(True, 0.0)
    assert check.observe(closed=True, now_s=1.0, reading=reading((16.0, 16.0, 16.0))) is None
    check.switched(False, 10.0)
    # The meter still averages the last second of charging: not judged within the grace time.
    assert check.observe(closed=False, now_s=11.0, reading=reading((12.0, 12.0, 12.0))) is None
    assert check.observe(closed=False, now_s=16.0, reading=reading((0.0, 0.0, 0.0))) is None
    # One noisy reading is not a welded contactor.
    assert check.observe(closed=False, now_s=20.0, reading=reading((2.0, 0.0, 0.0))) is None
    assert check.observe(closed=False, now_s=21.0, reading=reading((0.0, 0.0, 0.0))) is None
    assert check.observe(closed=False, now_s=30.0, reading=reading((0.0, 15.8, 0.0))) is None
    fault = check.observe(closed=False, now_s=31.0, reading=reading((0.0, 15.8, 0.0)))
    assert fault == ("power_switch_failure", "contactor stuck: 15.8 A while open")
    # Latched: the weld does not heal when the EV leaves.
    assert check.observe(closed=False, now_s=40.0, reading=reading((0.0, 0.0, 0.0))) == fault
    check.reset()
    assert check.fault is None
    assert check.observe(closed=False, now_s=50.0, reading=reading((0.0, 0.0, 0.0))) is None


def test_contactor_check_feedback_and_missing_values():
    check = ContactorCheck(grace_s=1.0, confirmations=1)
    check.switched(False, 0.0)
    assert check.observe(closed=False, now_s=2.0, reading=None, feedback=False) is None
    assert check.observe(closed=False, now_s=2.0, reading=reading(None, None)) is None  # no evidence
    fault = check.observe(closed=False, now_s=3.0, reading=reading((16.0, 0, 0)), feedback=True)
    assert fault[0] == "power_switch_failure" and "feedback closed" in fault[1] and "16.0 A" in fault[1]
    assert len(fault[1]) <= 50  # OCPP vendorErrorCode is CiString50
    with pytest.raises(ValueError):
        ContactorCheck(confirmations=0)


def test_meter_health_faults_after_repeated_failures_and_recovers():
    health = MeterHealth(failures_to_fault=3)
    assert health.error_code == "no_error"
    assert health.failed("timeout") is None
    assert health.failed("CRC error") is None
    assert health.succeeded() is None  # a good read in between: the count starts again
    assert health.failed("timeout") is None and health.failed("timeout") is None
    change = health.failed("timeout")
    assert change == ("power_meter_failure", "meter: 3 reads failed")
    assert health.error_code == "power_meter_failure" and health.failed("timeout") is None  # reported once
    assert health.succeeded() == ("no_error", "")
    assert health.error_code == "no_error" and health.total_failures == 6


# ------------------------------------------------------------------ the station with a GPIO contactor

async def test_sim_board_with_a_gpio_contactor_reports_a_welded_contactor(tmp_path, monkeypatch):
    gpiod = FakeGpiod()
    chip = gpiod.add_chip("/dev/gpiochip0")
    model = ContactorModel(chip)
    monkeypatch.setitem(sys.modules, "gpiod", gpiod)
    board = {"contactor": {"driver": "gpio", "chip": "/dev/gpiochip0", "line": 17, "feedback_line": 27,
                           "feedback_active_low": True, "feedback_bias": "pull_up", "feedback_settle_s": 0.01}}
    async with AgentHarness(tmp_path, board=board) as h:
        relay = h.agent.loaded.board.connectors[0].contactor
        assert isinstance(relay, GpioContactor) and relay.is_open
        assert chip.history(17)[0] == 0 and set(chip.history(17)) == {0}  # off from the start
        await h.wait_status(1, "Available")
        h.sim.plug(1)
        h.sim.swipe("TAG-1")
        await h.wait_status(1, "Charging")
        assert chip.level(17) == 1 and model.closed
        model.welded = True
        start = h.mark()
        h.sim.unplug(1)
        faulted = await h.wait_status(1, "Faulted", start=start)
        assert faulted["errorCode"] == "PowerSwitchFailure"
        assert chip.level(17) == 0  # the output is off: the fault is the contact's
    assert chip.lines[17].consumer is None
