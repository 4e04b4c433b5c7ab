"""Modbus meters end to end: the real bus adapter (pymodbus) and the real
data-driven driver against the meter simulator (pymodbus server) over TCP
loopback and over Modbus RTU on a pseudo-terminal pair (real serial code:
pyserial on /dev/pts/N). Faults are injected on the wire: silence, CRC errors,
noise; a register that goes backwards is reported as missing."""

import asyncio
import math
import os

import pytest

from hal.errors import CommunicationError, HalConfigurationError
from hal.interfaces import Meter
from hal.modbus import (BusRegistry, ModbusBus, ModbusConnectionError, ModbusExceptionError, ModbusFrameError,
                        ModbusTimeoutError, bits_per_char, bus_settings, t35_s)
from hal.modbus_meter import (QUANTITIES, TYPES, ModbusMeter, RegisterMap, build_meter, decode, encode,
                              load_register_map, meter_names, plan_blocks)
from hal.runtime.clock import VirtualClock
from tools.modbus_meter_sim import ModbusMeterSim
from tools.pty_link import PtyLink

METERS = ("sdm630", "sdm120", "sdm72", "abb_b23", "em340", "orno_we516", "pro380", "phoenix_em_cp_pp_eth")
FAST = {"timeout_s": 0.2, "retries": 0}


def expected(meter_map: RegisterMap, quantity: str, value: float):
    """What the driver must decode for ``value``: the value as the register can hold it."""
    spec = meter_map.registers[quantity]
    return spec.decode(spec.encode(value))


def assert_reading_matches(reading, sim: ModbusMeterSim) -> None:
    m = sim.map
    want = {
        "energy_wh": expected(m, "energy_import", sim.energy_wh),
        "power_w": expected(m, "power", sim.load.power_w) if "power" in m.registers else None,
        "frequency_hz": expected(m, "frequency", sim.load.frequency_hz) if "frequency" in m.registers else None,
    }
    for field, value in want.items():
        got = getattr(reading, field)
        assert (got is None) == (value is None), (field, got, value)
        if value is not None:
            assert math.isclose(got, value, rel_tol=1e-6, abs_tol=1e-9), (field, got, value)
    for field, name in (("current_a", "current"), ("voltage_v", "voltage")):
        got = getattr(reading, field)
        for i in range(3):
            q = "%s_l%d" % (name, i + 1)
            if q in m.registers:
                v = expected(m, q, sim.load.value(q, 0.0))
                assert math.isclose(got[i], v, rel_tol=1e-6, abs_tol=1e-9), (q, got, v)
            else:
                assert got is None or got[i] is None, (q, got)


# -- register maps and decoding (no I/O) ---------------------------------------------------


def test_every_issue_meter_has_a_data_file_that_loads():
    assert set(METERS) <= set(meter_names())
    for name in meter_names():
        m = load_register_map(name)
        assert "energy_import" in m.registers and "power" in m.registers, name
        assert m.blocks and all(b.count <= m.max_registers for b in m.blocks)
        covered = [s.quantity for b in m.blocks for s in b.specs]
        assert sorted(covered) == sorted(m.registers), name
    assert load_register_map("sdm120").phases == 1
    assert load_register_map("sdm120").defaults["baudrate"] == 2400
    assert load_register_map("orno_we516").defaults["parity"] == "E"


def test_contiguous_registers_are_planned_into_one_frame():
    sdm = load_register_map("sdm630")
    assert [(b.function, b.address, b.count) for b in sdm.blocks] == [(4, 0x00, 12), (4, 0x34, 2), (4, 0x46, 4)]
    orno = load_register_map("orno_we516")  # V, f, I and P are one run of 16 registers
    assert [(b.address, b.count) for b in orno.blocks] == [(0x0E, 16), (0x108, 2)]
    em = load_register_map("em340")  # int16 frequency right before the int32 energy
    assert (0x33, 3) in [(b.address, b.count) for b in em.blocks]
    specs = list(sdm.registers.values())
    assert len(plan_blocks(specs, max_gap=16)) == 2  # bridging the 16 unused registers before f
    assert len(plan_blocks(specs, max_gap=40)) == 1
    assert all(b.count <= 10 for b in plan_blocks(specs, max_gap=40, max_registers=10))


def test_adding_a_meter_is_adding_a_data_file(tmp_path):
    path = tmp_path / "my_meter.toml"
    path.write_text('model = "Mine"\nfunction = 3\ntype = "uint32"\nword_order = "little"\n'
                    '[registers]\nenergy_import = { address = 10, unit = "Wh" }\n'
                    'power = { address = 12, type = "int16", unit = "W", scale = 10 }\n')
    m = load_register_map(str(path))
    assert m.name == "my_meter" and [(b.address, b.count) for b in m.blocks] == [(10, 3)]
    bad = tmp_path / "bad.toml"
    for text, msg in (
        ('[registers]\npower = { address = 1, unit = "W" }\n', "energy_import"),
        ('[registers]\nenergy_import = { address = 1, unit = "W" }\n', "not a unit"),
        ('[registers]\nenergy_import = { address = 1, unit = "kWh", type = "f32" }\n', "type"),
        ('[registers]\nenergy_import = { address = 1, unit = "kWh" }\npower = { address = 2, unit = "W" }\n', "overlap"),
        ('foo = 1\n[registers]\nenergy_import = { address = 1, unit = "kWh" }\n', "unknown key"),
    ):
        bad.write_text(text)
        with pytest.raises(HalConfigurationError, match=msg):
            load_register_map(str(bad))
    with pytest.raises(HalConfigurationError, match="unknown meter"):
        load_register_map("no_such_meter")


@pytest.mark.parametrize("type_", sorted(TYPES))
@pytest.mark.parametrize("order", ["big", "little"])
def test_decode_inverts_encode(type_, order):
    nregs, signed, is_float = TYPES[type_]
    values = [0, 1, 1234, 32767] + ([-1, -32768] if signed else [65535])
    if nregs > 1:
        values += [70000, 2**31 - 1] + ([-70000] if signed else [2**32 - 1])
    if is_float:
        values = [0.0, 1.5, -230.25, 12345.5]
    for v in values:
        regs = encode(v, type_, order)
        assert len(regs) == nregs and all(0 <= r <= 0xFFFF for r in regs)
        assert decode(regs, type_, order) == v, (type_, order, v, regs)


def test_word_order_and_not_available_markers():
    assert decode([0x0001, 0x0000], "uint32", "big") == 65536
    assert decode([0x0001, 0x0000], "uint32", "little") == 1
    assert decode([0x4366, 0x0000], "float32") == 230.0
    assert decode([0x7FC0, 0x0000], "float32") is None  # NaN
    assert decode([0xFFFF] * 4, "uint64", missing_when_max=True) is None  # ABB: not available
    assert decode([0x7FFF, 0xFFFF], "int32", missing_when_max=True) is None
    assert decode([0xFFFF, 0xFFFF], "int32", missing_when_max=True) == -1
    assert decode([0xFFFF] * 4, "uint64") == 2**64 - 1


# -- end to end over Modbus TCP ------------------------------------------------------------


@pytest.mark.parametrize("meter", METERS)
async def test_every_meter_reads_end_to_end_over_tcp(meter):
    clock = VirtualClock(start=1000.0)
    sim = ModbusMeterSim(meter, clock=clock.monotonic, energy_wh=12_345_600.0)
    sim.set_load(current_a=(16.0, 15.5, 14.25), voltage_v=(229.9, 231.2, 230.4), frequency_hz=49.98)
    port = await sim.start_tcp()
    try:
        bus = ModbusBus(transport="tcp", host="127.0.0.1", tcp_port=port, timeout_s=1.0)
        meter_obj = ModbusMeter(bus, sim.device_id, load_register_map(meter), clock=clock)
        assert isinstance(meter_obj, Meter)
        async with meter_obj:
            r1 = await meter_obj.read()
            assert_reading_matches(r1, sim)
            assert r1.timestamp == clock.time()
            assert sim.requests == [(b.function, b.address, b.count) for b in sim.map.blocks]  # one frame per block
            await clock.advance(3600.0)  # an hour at this load
            r2 = await meter_obj.read()
            assert_reading_matches(r2, sim)
            assert r2.energy_wh > r1.energy_wh
            if sim.map.registers["energy_import"].type == "float32":
                assert r2.energy_wh - r1.energy_wh == pytest.approx(sim.load.power_w, rel=1e-3)
            assert sim.frames == 2 * len(sim.map.blocks) and bus.stats.frames == sim.frames
    finally:
        await sim.stop()
    assert not bus.is_open


async def test_read_outside_the_map_is_a_device_exception():
    sim = ModbusMeterSim("em340")  # an EM340 answering a driver configured for an SDM630
    port = await sim.start_tcp()
    try:
        async with ModbusBus(transport="tcp", host="127.0.0.1", tcp_port=port, **FAST) as bus:
            meter = ModbusMeter(bus, 1, load_register_map("sdm630"))
            with pytest.raises(ModbusExceptionError) as e:
                await meter.read()
            assert e.value.exception_code == 2 and "illegal data address" in str(e.value)
            assert isinstance(e.value, CommunicationError)
            with pytest.raises(ModbusExceptionError) as e:  # a meter refuses writes
                await bus.write_registers(1, 0, [1, 2])
            assert e.value.exception_code == 1 and e.value.function_code == 16
            with pytest.raises(ModbusExceptionError):
                await bus.write_register(1, 0, 7)
            assert bus.stats.exceptions == 3 and bus.stats.retries == 0  # an answer is not retried
    finally:
        await sim.stop()


async def test_silent_meter_times_out_and_recovers_over_tcp():
    sim = ModbusMeterSim("sdm630")
    port = await sim.start_tcp()
    try:
        async with ModbusBus(transport="tcp", host="127.0.0.1", tcp_port=port, timeout_s=0.1, retries=1) as bus:
            meter = ModbusMeter(bus, 1, load_register_map("sdm630"))
            sim.silent = True
            with pytest.raises(ModbusTimeoutError):
                await meter.read()
            assert bus.stats.timeouts == 2 and bus.stats.retries == 1  # one try + one retry
            for _ in range(3):  # pymodbus drops a TCP connection after repeated silence
                with pytest.raises(ModbusTimeoutError):
                    await meter.read()
            sim.silent = False
            assert (await meter.read()).energy_wh == 0.0  # reconnected if needed
    finally:
        await sim.stop()


# -- end to end over Modbus RTU on a pty pair ----------------------------------------------


@pytest.mark.parametrize("meter", METERS)
async def test_every_meter_reads_end_to_end_over_rtu_pty(meter):
    clock = VirtualClock(start=1000.0)
    sim = ModbusMeterSim(meter, clock=clock.monotonic, energy_wh=4321.0)
    sim.set_load(power_w=7000.0)
    link = await sim.start_pty()
    try:
        m = sim.map
        # A pty refuses parity, so 8E1 meters run 8N1 here (the frames are the same).
        bus = ModbusBus(port=link.a_path, baudrate=m.defaults.get("baudrate", 9600), timeout_s=1.0)
        async with ModbusMeter(bus, sim.device_id, load_register_map(meter), clock=clock) as meter_obj:
            assert_reading_matches(await meter_obj.read(), sim)
        assert link.frames_a_to_b == len(m.blocks) == sim.frames  # frames on the wire
        assert link.bytes_a_to_b == 8 * len(m.blocks)
        assert link.bytes_b_to_a == sum(5 + 2 * b.count for b in m.blocks)
    finally:
        await sim.stop()


async def test_sdm630_over_rtu_values_and_frames():
    clock = VirtualClock(start=1000.0)
    sim = ModbusMeterSim("sdm630", clock=clock.monotonic, energy_wh=1000.0)
    sim.set_load(current_a=(32.0, 0.0, 10.0))
    link = await sim.start_pty()
    try:
        async with ModbusBus(port=link.a_path, baudrate=9600, timeout_s=1.0) as bus:
            meter = ModbusMeter(bus, 1, load_register_map("sdm630"), clock=clock)
            r = await meter.read()
            assert r.current_a == (32.0, 0.0, 10.0) and r.voltage_v == (230.0, 230.0, 230.0)
            assert r.power_w == 230.0 * 42 and r.frequency_hz == 50.0 and r.energy_wh == 1000.0
            assert sim.requests == [(4, 0x00, 12), (4, 0x34, 2), (4, 0x46, 4)]
            assert bus.stats.frames == 3 and bus.stats.ok == 3
    finally:
        await sim.stop()


async def test_crc_error_on_the_wire_is_a_communication_error():
    sim = ModbusMeterSim("sdm630")
    link = await sim.start_pty()
    try:
        async with ModbusBus(port=link.a_path, baudrate=9600, **FAST) as bus:
            meter = ModbusMeter(bus, 1, load_register_map("sdm630"))
            link.corrupt(1)  # one bit flipped in the meter's answer
            with pytest.raises(ModbusFrameError) as e:
                await meter.read()
            assert isinstance(e.value, CommunicationError) and "CRC" in str(e.value)
            assert bus.stats.frame_errors == 1
            r = await meter.read()  # the line is usable again
            assert r.voltage_v == (230.0, 230.0, 230.0)
    finally:
        await sim.stop()


async def test_a_retry_hides_one_corrupted_answer():
    sim = ModbusMeterSim("sdm630")
    link = await sim.start_pty()
    try:
        async with ModbusBus(port=link.a_path, baudrate=9600, timeout_s=0.2, retries=1) as bus:
            meter = ModbusMeter(bus, 1, load_register_map("sdm630"))
            link.corrupt(1)
            r = await meter.read()
            assert r.energy_wh == 0.0
            assert bus.stats.frame_errors == 1 and bus.stats.retries == 1 and sim.frames == 4
            link.inject_noise(b"\x00\xff\x13")  # garbage ahead of a good frame: the framer hunts past it
            assert (await meter.read()).power_w == 0.0
    finally:
        await sim.stop()


async def test_silence_on_the_wire_is_a_timeout():
    sim = ModbusMeterSim("sdm630")
    link = await sim.start_pty()
    try:
        async with ModbusBus(port=link.a_path, baudrate=9600, **FAST) as bus:
            meter = ModbusMeter(bus, 1, load_register_map("sdm630"))
            link.drop(1)
            with pytest.raises(ModbusTimeoutError):
                await meter.read()
            sim.silent = True
            with pytest.raises(CommunicationError):
                await meter.read()
            wrong_id = ModbusMeter(bus, 7, load_register_map("sdm630"))  # nobody at id 7: silence
            sim.silent = False
            with pytest.raises(ModbusTimeoutError, match="device 7"):
                await wrong_id.read()
            assert (await meter.read()).frequency_hz == 50.0
    finally:
        await sim.stop()


async def test_a_failed_block_fails_the_whole_reading():
    sim = ModbusMeterSim("sdm630")
    sim.set_load(current_a=10)
    link = await sim.start_pty()
    try:
        async with ModbusBus(port=link.a_path, baudrate=9600, **FAST) as bus:
            meter = ModbusMeter(bus, 1, load_register_map("sdm630"))
            good = await meter.read()
            bus_read = bus.read
            calls = []

            async def read(*a, **kw):  # the third block (frequency + energy) gets no answer
                calls.append(a)
                if len(calls) == 3:
                    link.drop(1)
                return await bus_read(*a, **kw)

            bus.read = read
            with pytest.raises(ModbusTimeoutError):
                await meter.read()
            assert meter.last_reading is good  # nothing half-read was published
    finally:
        await sim.stop()


async def test_energy_going_backwards_is_reported_missing():
    clock = VirtualClock(start=1000.0)
    sim = ModbusMeterSim("sdm630", clock=clock.monotonic, energy_wh=50_000.0)
    sim.set_load(power_w=11_000.0)
    link = await sim.start_pty()
    try:
        async with ModbusBus(port=link.a_path, baudrate=9600, timeout_s=1.0) as bus:
            meter = ModbusMeter(bus, 1, load_register_map("sdm630"))
            assert (await meter.read()).energy_wh == 50_000.0
            sim.set_energy_wh(49_000.0)
            r = await meter.read()
            assert r.energy_wh is None and r.power_w == 11_000.0  # the rest of the reading stands
            assert meter.energy_high_wh == 50_000.0
            await clock.advance(360.0)  # +1.1 kWh: 50.1 kWh, above the highest seen
            assert (await meter.read()).energy_wh == pytest.approx(50_100.0)
            sim.set_energy_wh(10.0)  # a meter exchange: missing until told
            assert (await meter.read()).energy_wh is None
            meter.reset_energy_baseline()
            assert (await meter.read()).energy_wh == 10.0
    finally:
        await sim.stop()


# -- one bus, several devices --------------------------------------------------------------


async def test_devices_on_one_line_share_the_bus_and_its_lock():
    sim = ModbusMeterSim("sdm630")
    sim.set_load(current_a=8)
    link = await sim.start_pty()
    try:
        registry = BusRegistry()
        section = {"driver": "sdm630", "port": link.a_path, "device_id": 1, "timeout_s": 1.0}
        m1 = build_meter(section, registry)
        m2 = build_meter(dict(section), registry)  # e.g. the EVSE controller's driver on the same line
        assert m1.bus is m2.bus and registry.buses() == [m1.bus]
        assert m1.bus.baudrate == 9600 and m1.bus.parity == "N"  # the map's serial defaults
        await m1.open()
        await m2.open()
        readings = await asyncio.gather(*(m.read() for m in (m1, m2, m1, m2)))
        assert all(r.current_a == (8.0, 8.0, 8.0) for r in readings)
        assert sim.frames == 12 and m1.bus.stats.timeouts == 0  # serialised: no collision on the line
        await m1.close()
        assert m1.bus.is_open  # m2 still uses it
        await m2.close()
        await m2.close()  # twice is harmless
        assert not m1.bus.is_open
        with pytest.raises(HalConfigurationError, match="different settings"):
            registry.get(port=link.a_path, baudrate=19200)
    finally:
        await sim.stop()


def test_bus_settings_from_a_board_section():
    s = bus_settings({"driver": "orno_we516", "port": "/dev/ttyUSB1", "parity": "E", "device_id": 3,
                      "host": "ignored"}, {"baudrate": 9600})
    assert s == {"baudrate": 9600, "port": "/dev/ttyUSB1", "parity": "E"}
    s = bus_settings({"transport": "tcp", "host": "10.0.0.5", "tcp_port": 502, "port": "/dev/x"},
                     {"baudrate": 9600, "parity": "E"})
    assert s == {"transport": "tcp", "host": "10.0.0.5", "tcp_port": 502}
    with pytest.raises(HalConfigurationError):
        ModbusBus(port="/dev/ttyUSB0", parity="X")
    with pytest.raises(HalConfigurationError):
        ModbusBus(transport="tcp")
    with pytest.raises(HalConfigurationError):
        ModbusMeter(ModbusBus(port="/dev/null"), 0, load_register_map("sdm630"))


def test_rtu_timing_rules():
    assert bits_per_char(8, "N", 1) == 10 and bits_per_char(8, "E", 1) == 11 and bits_per_char(8, "N", 2) == 11
    assert t35_s(9600, 10) == pytest.approx(3.5 * 10 / 9600)
    assert t35_s(115200, 10) == 0.00175


async def test_missing_port_and_refused_endpoint_are_connection_errors(tmp_path):
    bus = ModbusBus(port=str(tmp_path / "ttyUSB9"))
    with pytest.raises(ModbusConnectionError, match="does not exist"):
        await bus.open()
    assert not bus.is_open
    bus = ModbusBus(transport="tcp", host="127.0.0.1", tcp_port=_free_port(), timeout_s=0.5)
    with pytest.raises(ModbusConnectionError, match="cannot open"):
        await bus.open()
    with pytest.raises(ModbusConnectionError, match="not open"):
        await bus.read_input(1, 0, 2)


async def test_pty_link_paces_at_the_baud_rate():
    sim = ModbusMeterSim("sdm630")
    link = await sim.start_pty(baudrate=9600, pace=True)
    try:
        async with ModbusBus(port=link.a_path, baudrate=9600, timeout_s=1.0) as bus:
            meter = ModbusMeter(bus, 1, load_register_map("sdm630"))
            await meter.read()
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await meter.read()
            elapsed = loop.time() - t0
        # 3 frames: (13 + 2N) characters each of 10 bits at 9600 baud, plus 3.5-character gaps.
        wire = sum((13 + 2 * n) * 10 / 9600 for n in (12, 2, 4))
        assert elapsed >= wire
    finally:
        await sim.stop()


def _free_port() -> int:
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_quantities_name_ocpp_measurands():
    assert QUANTITIES["energy_import"][3] == "Energy.Active.Import.Register"
    assert QUANTITIES["voltage_l2"][3:] == ("Voltage", "L2-N")
    assert QUANTITIES["current_l3"][3:] == ("Current.Import", "L3")


async def test_bench_reports_frames_and_the_physical_minimum():
    from tools.bench_modbus import run

    r = await run("sdm630", 9600, "N", 2)
    plan = r["results"][0]
    assert plan["frames_per_reading"] == 3 and plan["registers_per_frame"] == [12, 2, 4]
    assert plan["physical_minimum_ms"] == pytest.approx(100.0, abs=0.1)  # HARDWARE.md: 9600 8N1
    assert plan["bytes_per_reading"] == 3 * 8 + (5 + 24) + (5 + 4) + (5 + 8)
    assert plan["reading_ms_mean"] >= 0.95 * plan["physical_minimum_ms"]
    per_quantity = r["results"][1]
    assert per_quantity["frames_per_reading"] == 9
    assert per_quantity["physical_minimum_ms"] > plan["physical_minimum_ms"]
    assert r["minimum_ms_at_11_bits"] == pytest.approx(110.0, abs=0.1)


async def test_a_sim_board_with_a_real_meter(tmp_path):
    from hal.runtime.clock import Clock
    from boards import load_board

    sim = ModbusMeterSim("orno_we516", energy_wh=2000.0, clock=VirtualClock(start=1000.0).monotonic)
    sim.set_load(current_a=6.0)
    port = await sim.start_tcp()
    try:
        loaded = load_board("sim", {"meter": {"driver": "orno_we516", "transport": "tcp", "host": "127.0.0.1",
                                              "tcp_port": port, "device_id": 1}}, str(tmp_path), Clock())
        meter = loaded.board.connectors[0].meter
        assert isinstance(meter, ModbusMeter) and meter.bus.transport == "tcp"
        await loaded.board.open()
        try:
            r = await meter.read()
            assert r.energy_wh == 2000.0 and r.current_a == (6.0, 6.0, 6.0)
        finally:
            await loaded.board.close()
        assert not meter.bus.is_open
        with pytest.raises(HalConfigurationError, match="unknown meter"):
            load_board("sim", {"meter": {"driver": "sdm999", "port": "/dev/null"}}, str(tmp_path), Clock())
    finally:
        await sim.stop()


async def test_per_request_timeout_overrides_the_bus_default():
    sim = ModbusMeterSim("sdm630")
    port = await sim.start_tcp()
    try:
        async with ModbusBus(transport="tcp", host="127.0.0.1", tcp_port=port, timeout_s=5.0, retries=0) as bus:
            sim.silent = True
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            with pytest.raises(ModbusTimeoutError, match="0.1 s"):
                await bus.read_input(1, 0, 2, timeout_s=0.1)
            assert loop.time() - t0 < 2.0
            sim.silent = False
            assert len(await bus.read_input(1, 0, 2)) == 2
    finally:
        await sim.stop()
