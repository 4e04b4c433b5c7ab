"""The simulated board: EV and pilot behaviour, energy integration on virtual
time, persistence, faults and the control socket."""

import asyncio
import json
import logging
import os
import stat
import tomllib

import pytest

from hal.runtime.clock import VirtualClock
from hal.errors import HalConfigurationError
from hal.interfaces import CP_A, CP_B, CP_C, CP_F, NO_ERROR, Board
from hal.sim import SAVE_INTERVAL_S, STATE_FILE, SimHardware, SimReader, build_sim_board
from hal.sim_control import SOCKET_FILE, SimControlServer, send_command

BOARDS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "boards")


def run(coro):
    """asyncio.run that fails when the test leaves a task behind or the loop logs an error."""
    async def main():
        errors = []
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: errors.append(context))
        result = await coro
        await asyncio.sleep(0)
        leaked = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert not leaked, "leaked tasks: %r" % leaked
        assert not errors, "errors logged by the event loop: %r" % errors
        return result
    return asyncio.run(main())


async def charging(params: dict, data_dir, clock: VirtualClock, limit_a: float = 16.0):
    """An opened sim board with an EV plugged in, offered ``limit_a`` and the contactor closed."""
    board, sim = build_sim_board(params, str(data_dir), clock)
    await board.open()
    c = board.connectors[0]
    sim.plug(1)
    await c.evse.set_current_limit(limit_a)
    await c.contactor.set_closed(True)
    return board, sim


def test_plug_unplug_moves_the_pilot(tmp_path):
    async def main():
        board, sim = build_sim_board({}, str(tmp_path), VirtualClock())
        evse = board.connectors[0].evse
        await board.open()
        assert evse.status.cp_state == CP_A and not evse.status.pwm_on
        evse.changed.clear()
        sim.plug(1)
        assert evse.status.cp_state == CP_B and evse.status.ev_connected
        assert evse.changed.is_set()
        sim.unplug("1")
        assert evse.status.cp_state == CP_A
        await board.close()
    run(main())


def test_offered_current_and_closed_contactor_charge(tmp_path):
    async def main():
        clock = VirtualClock()
        board, sim = build_sim_board({}, str(tmp_path), clock)
        await board.open()
        c = board.connectors[0]
        sim.plug(1)
        await c.evse.set_current_limit(16)
        assert c.evse.status.cp_state == CP_C and c.evse.status.pwm_on
        await c.contactor.set_closed(True)
        assert await c.contactor.read_feedback() is True
        reading = await c.meter.read()
        assert reading.power_w == pytest.approx(16 * 230 * 3)
        assert reading.current_a == (16.0, 16.0, 16.0)
        assert reading.voltage_v == (230.0, 230.0, 230.0)
        assert reading.frequency_hz == 50.0
        assert reading.timestamp == clock.time()
        assert sim.status()["connectors"][0]["power_w"] == pytest.approx(11040.0)
        await board.close()
    run(main())


def test_ev_draws_at_most_its_own_maximum_on_its_phases(tmp_path):
    async def main():
        params = {"phases": 1, "ev_max_current_a": 10}
        board, sim = await charging(params, tmp_path, VirtualClock(), limit_a=32)
        reading = await board.connectors[0].meter.read()
        assert reading.current_a == (10.0, 0.0, 0.0)
        assert reading.voltage_v == (230.0, None, None)
        assert reading.power_w == pytest.approx(2300.0)
        await board.close()
    run(main())


def test_no_power_with_the_contactor_open(tmp_path):
    async def main():
        clock = VirtualClock()
        board, sim = await charging({}, tmp_path, clock)
        c = board.connectors[0]
        await c.contactor.set_closed(False)
        assert c.evse.status.cp_state == CP_C
        await clock.advance(3600)
        reading = await c.meter.read()
        assert reading.power_w == 0 and reading.energy_wh == 0
        assert reading.current_a == (0.0, 0.0, 0.0)
        await board.close()
    run(main())


def test_current_limit_is_clamped_and_below_minimum_pwm_is_off(tmp_path):
    async def main():
        board, sim = build_sim_board({"max_current_a": 20}, str(tmp_path), VirtualClock())
        evse = board.connectors[0].evse
        await board.open()
        sim.plug(1)
        await evse.set_current_limit(100)
        assert evse.current_limit_a == 20.0 and evse.status.cp_state == CP_C
        await evse.set_current_limit(5)
        assert not evse.status.pwm_on and evse.status.cp_state == CP_B
        await evse.set_current_limit(-3)
        assert evse.current_limit_a == 0.0
        await board.close()
    run(main())


def test_unavailable_is_state_f(tmp_path):
    async def main():
        board, sim = build_sim_board({}, str(tmp_path), VirtualClock())
        evse = board.connectors[0].evse
        sim.plug(1)
        await evse.set_available(False)
        await evse.set_current_limit(16)
        assert evse.status.cp_state == CP_F and not evse.status.pwm_on
        await evse.set_available(True)
        assert evse.status.cp_state == CP_C
    run(main())


def test_ev_full_goes_back_to_b_and_stops_drawing(tmp_path):
    async def main():
        clock = VirtualClock()
        board, sim = await charging({}, tmp_path, clock)
        c = board.connectors[0]
        await clock.advance(60)
        sim.ev_full(1)
        assert c.evse.status.cp_state == CP_B
        energy_wh = (await c.meter.read()).energy_wh
        await clock.advance(600)
        reading = await c.meter.read()
        assert reading.power_w == 0 and reading.energy_wh == energy_wh
        assert sim.status()["connectors"][0]["ev_full"] is True
        sim.unplug(1)
        sim.plug(1)
        assert c.evse.status.cp_state == CP_C  # a new EV wants energy again
        await board.close()
    run(main())


def test_energy_integrates_on_virtual_time(tmp_path):
    async def main():
        clock = VirtualClock()
        board, sim = await charging({}, tmp_path, clock, limit_a=11000 / 690)
        meter = board.connectors[0].meter
        assert (await meter.read()).power_w == pytest.approx(11000.0)
        last_wh = 0.0
        for _ in range(60):
            await clock.advance(60)
            energy_wh = (await meter.read()).energy_wh
            assert energy_wh >= last_wh
            last_wh = energy_wh
        assert last_wh == pytest.approx(11000.0, abs=0.1)
        await board.close()
    run(main())


def test_speed_compresses_charging_time(tmp_path):
    async def main():
        clock = VirtualClock()
        board, sim = await charging({"speed": 60}, tmp_path, clock)
        await clock.advance(60)
        assert (await board.connectors[0].meter.read()).energy_wh == pytest.approx(11040.0)
        await board.close()
    run(main())


def test_ev_needs_wh_makes_it_full_by_itself(tmp_path):
    async def main():
        clock = VirtualClock()
        board, sim = await charging({"ev_needs_wh": 5520}, tmp_path, clock)
        evse = board.connectors[0].evse
        evse.changed.clear()
        await clock.advance(1799)
        assert evse.status.cp_state == CP_C and not evse.changed.is_set()
        await clock.advance(1)  # 11040 W × 30 min = 5520 Wh: the timer fires without any read
        assert evse.status.cp_state == CP_B and evse.changed.is_set()
        await clock.advance(3600)
        status = sim.status()["connectors"][0]
        assert status["ev_full"] and status["energy_wh"] == pytest.approx(5520.0)
        assert status["session_energy_wh"] == pytest.approx(5520.0)
        await board.close()
        assert clock.pending == 0
    run(main())


def test_state_survives_a_restart(tmp_path):
    async def main():
        clock = VirtualClock()
        board, sim = await charging({"connectors": 2}, tmp_path, clock)
        await clock.advance(3600)
        sim.fault(2, "high_temperature")
        await board.close()

        board, sim = build_sim_board({"connectors": 2}, str(tmp_path), clock)
        c1, c2 = board.connectors
        assert c1.evse.status.cp_state == CP_B  # still plugged; the restarted station offers nothing yet
        assert not c1.contactor.is_closed  # a contactor is off after a reboot
        assert (await c1.meter.read()).energy_wh == pytest.approx(11040.0)
        assert c2.evse.status.error_code == "high_temperature"
        assert c2.evse.status.cp_state == CP_A
        await board.open()
        await c1.evse.set_current_limit(32)
        assert c1.evse.status.cp_state == CP_C
        await board.close()
    run(main())


def test_meter_reads_save_at_most_once_per_save_interval(tmp_path):
    async def main():
        clock = VirtualClock()
        board, sim = await charging({}, tmp_path, clock)
        path = os.path.join(str(tmp_path), STATE_FILE)
        meter = board.connectors[0].meter

        def saved_wh():
            with open(path) as f:
                return json.load(f)["connectors"][0]["energy_wh"]
        assert saved_wh() == 0.0
        await clock.advance(SAVE_INTERVAL_S / 2)
        await meter.read()
        assert saved_wh() == 0.0
        await clock.advance(SAVE_INTERVAL_S / 2)
        reading = await meter.read()
        assert saved_wh() == pytest.approx(reading.energy_wh) and reading.energy_wh > 0
        assert not os.path.exists(path + ".tmp")
        await board.close()
    run(main())


def test_meter_reads_of_an_unchanged_state_write_nothing(tmp_path, monkeypatch):
    # A fleet's idle stations read their meters every minute: no write, no fsync, for nothing new.
    async def main():
        clock = VirtualClock()
        board, sim = build_sim_board({}, str(tmp_path), clock)
        await board.open()
        path = os.path.join(str(tmp_path), STATE_FILE)
        meter = board.connectors[0].meter
        await clock.advance(SAVE_INTERVAL_S)
        await meter.read()
        inode = os.stat(path).st_ino  # each write renames a new file over the old one
        fsyncs = []
        monkeypatch.setattr(os, "fsync", lambda fd: fsyncs.append(fd))
        for _ in range(3):
            await clock.advance(SAVE_INTERVAL_S)
            await meter.read()
        assert os.stat(path).st_ino == inode and not fsyncs
        sim.plug(1)  # a change of state is written, durably
        assert os.stat(path).st_ino != inode and fsyncs
        await board.close()
    run(main())


def test_corrupt_or_foreign_state_starts_fresh(tmp_path, caplog):
    path = os.path.join(str(tmp_path), STATE_FILE)
    for content in ("{not json", '["a list"]', json.dumps(
            {"version": 1, "error_code": "no_error", "connectors": [
                {"plugged": "yes", "ev_full": False, "session_energy_wh": 0, "energy_wh": 5,
                 "error_code": "no_error"}]})):
        with open(path, "w") as f:
            f.write(content)
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            board, sim = build_sim_board({}, str(tmp_path), VirtualClock())
        assert caplog.records, content
        status = sim.status()
        assert status["connectors"][0]["plugged"] is False
        assert status["connectors"][0]["energy_wh"] == 0


def test_missing_data_dir_does_not_break_commands(tmp_path, caplog):
    board, sim = build_sim_board({}, str(tmp_path / "absent"), VirtualClock())
    with caplog.at_level(logging.WARNING):
        sim.plug(1)
    assert board.connectors[0].evse.status.cp_state == CP_B
    assert "cannot save" in caplog.text


def test_faults(tmp_path):
    async def main():
        board, sim = await charging({"connectors": 2}, tmp_path, VirtualClock())
        c1, c2 = board.connectors
        sim.fault(1, "ground_failure")
        assert c1.evse.status.error_code == "ground_failure"
        assert not c1.evse.status.pwm_on and c1.evse.status.cp_state == CP_B
        assert (await c1.meter.read()).power_w == 0
        assert c2.evse.status.error_code == NO_ERROR
        sim.clear(1)
        assert c1.evse.status.cp_state == CP_C

        board.changed.clear()
        sim.fault("0", "power_meter_failure")
        assert board.error_code == "power_meter_failure" and board.changed.is_set()
        assert [c.evse.status.error_code for c in board.connectors] == ["power_meter_failure"] * 2
        assert sim.status()["error_code"] == "power_meter_failure"
        sim.clear(0)
        assert board.error_code == NO_ERROR
        assert [c.evse.status.error_code for c in board.connectors] == [NO_ERROR] * 2

        for bad in ("Melted", "no_error", ""):
            with pytest.raises(ValueError, match="error code"):
                sim.fault(1, bad)
        for n in (3, -1, "x", True, None):
            with pytest.raises(ValueError, match="connector"):
                sim.fault(n, "other_error")
        with pytest.raises(ValueError, match="connector"):
            sim.plug(0)
        with pytest.raises(ValueError, match="no EV"):
            sim.ev_full(2)
        await board.close()
    run(main())


def test_reader_waits_for_a_swipe():
    async def main():
        reader = SimReader()
        task = asyncio.create_task(reader.read_tag())
        await asyncio.sleep(0)
        assert not task.done()
        reader.swipe("04A1B2C3")
        assert await task == "04A1B2C3"
        reader.swipe("A")
        reader.swipe("B")
        assert [await reader.read_tag(), await reader.read_tag()] == ["A", "B"]
        for bad in ("", "X" * 21, 123, "a\nb"):
            with pytest.raises(ValueError):
                reader.swipe(bad)
    run(main())


def test_lock(tmp_path):
    async def main():
        board, sim = build_sim_board({}, str(tmp_path), VirtualClock())
        lock = board.connectors[0].lock
        assert await lock.set_locked(True) is True
        lock.lock_fails = True
        assert await lock.set_locked(False) is False
        assert sim.status()["connectors"][0]["locked"] is True
    run(main())


def test_parameters_are_checked(tmp_path):
    with pytest.raises(HalConfigurationError, match="colour"):
        build_sim_board({"colour": "red"}, str(tmp_path), VirtualClock())
    for bad in ({"connectors": 0}, {"phases": 4}, {"speed": 0}, {"voltage_v": "230"},
                {"max_current_a": 5}, {"connectors": 1.5}, {"model": "x" * 21}):
        with pytest.raises(HalConfigurationError, match=list(bad)[0]):
            build_sim_board(bad, str(tmp_path), VirtualClock())


def test_the_board_file_builds_the_sim(tmp_path):
    with open(os.path.join(BOARDS_DIR, "sim.toml"), "rb") as f:
        evse = tomllib.load(f)["evse"]
    assert evse.pop("driver") == "sim"
    board, sim = build_sim_board(evse, str(tmp_path), VirtualClock())
    assert isinstance(board, Board) and isinstance(sim, SimHardware)
    assert len(board.connectors) == 1 and board.connectors[0].phases == 3
    assert board.connectors[0].evse.max_current_a == 32.0
    assert board.error_code == NO_ERROR and board.reader is sim.reader


def test_control_socket_round_trip(tmp_path):
    async def main():
        board, sim = build_sim_board({}, str(tmp_path), VirtualClock())
        path = os.path.join(str(tmp_path), SOCKET_FILE)
        with pytest.raises(ConnectionError, match="no agent running"):
            await send_command(path, "status", [])
        server = SimControlServer(sim, path, extra_status=lambda n: {"station_status": "preparing", "id": 99})
        await server.start()
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600

        reply = await send_command(path, "plug", ["1"])
        assert reply["ok"] is True
        c = reply["result"]["connectors"][0]
        assert c["plugged"] and c["cp_state"] == CP_B
        assert c["station_status"] == "preparing" and c["id"] == 1  # sim keys win over extras

        tag_task = asyncio.create_task(board.reader.read_tag())
        assert (await send_command(path, "swipe", ["CAFE01"]))["ok"]
        assert await tag_task == "CAFE01"

        reply = await send_command(path, "fault", ["1", "Nope"])
        assert reply["ok"] is False and "error code" in reply["error"]
        reply = await send_command(path, "plug", ["7"])
        assert reply["ok"] is False and "connector" in reply["error"]
        reply = await send_command(path, "fault", ["1"])
        assert reply == {"ok": False, "error": "usage: fault N CODE"}
        assert (await send_command(path, "dance", []))["ok"] is False

        reader, writer = await asyncio.open_unix_connection(path)
        for raw in (b"not json\n", b"[1, 2]\n", b'{"command": 5}\n', b'{"command": "plug", "args": "1"}\n',
                    b"\xff\xfe\n", b"\n"):
            writer.write(raw)
            reply = json.loads(await reader.readline())
            assert reply["ok"] is False and reply["error"], raw
        writer.write(b'{"command": "status"}\n')  # the same connection still works
        assert json.loads(await reader.readline())["ok"] is True
        writer.write(b"x" * 10000 + b"\n")
        assert json.loads(await reader.readline())["ok"] is False
        assert await reader.readline() == b""  # and then the server hangs up
        writer.close()
        await writer.wait_closed()

        reply = await send_command(path, "ev-full", ["1"])
        assert reply["result"]["connectors"][0]["ev_full"] is True
        reply = await send_command(path, "status", [])
        assert reply["ok"] and reply["result"]["error_code"] == NO_ERROR

        idle_reader, idle_writer = await asyncio.open_unix_connection(path)  # a client that never speaks
        with pytest.raises(OSError, match="already serves"):
            await SimControlServer(sim, path).start()
        await server.close()
        assert await idle_reader.read() == b""
        idle_writer.close()
        await idle_writer.wait_closed()
        assert not os.path.exists(path)
        await server.close()
    run(main())


def test_control_server_replaces_a_stale_socket(tmp_path):
    async def main():
        board, sim = build_sim_board({}, str(tmp_path), VirtualClock())
        path = os.path.join(str(tmp_path), SOCKET_FILE)
        async with SimControlServer(sim, path):
            os.rename(path, path + ".old")  # leave a socket file nobody listens on behind
        os.rename(path + ".old", path)
        with pytest.raises(ConnectionError, match="no agent running"):
            await send_command(path, "status", [])
        async with SimControlServer(sim, path):
            assert (await send_command(path, "unplug", ["1"]))["ok"]
        assert not os.path.exists(path)
    run(main())
