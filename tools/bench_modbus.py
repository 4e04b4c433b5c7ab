"""Bench: bus time and frames per full meter reading, next to the physical minimum.

The real driver (``ModbusMeter`` on ``ModbusBus``, pymodbus, pyserial) reads a
simulated meter over Modbus RTU on a pseudo-terminal pair whose wire is paced
at the baud rate (``tools.pty_link``: each character takes bits/baud seconds,
and a frame starts only after 3.5 characters of silence). A pty has no baud
rate, so without pacing the figures would be meaningless.

Physical minimum per reading (``../shared/HARDWARE.md``, Modbus RTU timing):
for each FC03/FC04 frame of N registers, request 8 bytes + response 5 + 2N
bytes, each character ``bits`` long (start + 8 data + parity + stop: 10 for
8N1, 11 for 8E1 or 8N2), plus two 3.5-character silences (after the request,
after the response), plus the device's turnaround (0 here):
``T = Σ (13 + 2N)·bits/baud + 2·t3.5``.

Three ways of reading the same quantities are compared: the plan from the
data file (contiguous registers per frame), one frame per quantity, and one
frame spanning everything (only for meters that accept reads across unused
registers).

    python -m tools.bench_modbus [--meter sdm630] [--baud 9600] [--parity N] [--readings 20] [--json]
"""

import argparse
import asyncio
import json
import logging
import sys
import time

from hal.modbus import ModbusBus, bits_per_char, t35_s
from hal.modbus_meter import ModbusMeter, RegisterMap, load_register_map
from tools.modbus_meter_sim import ModbusMeterSim


def frame_minimum_s(n_registers: int, baudrate: int, char_bits: int) -> float:
    """Wire time of one FC03/04 exchange of ``n_registers`` plus its two t3.5 silences."""
    return (13 + 2 * n_registers) * char_bits / baudrate + 2 * t35_s(baudrate, char_bits)


def reading_minimum_s(register_map: RegisterMap, baudrate: int, char_bits: int) -> float:
    return sum(frame_minimum_s(b.count, baudrate, char_bits) for b in register_map.blocks)


def variants(base: RegisterMap) -> list:
    """(label, map) for the read strategies compared."""
    regs = base.registers
    per_quantity = RegisterMap(base.name, base.model, regs, max_gap=0,
                               max_registers=max(s.count for s in regs.values()), defaults=base.defaults)
    span = RegisterMap(base.name, base.model, regs, max_gap=124, max_registers=125, defaults=base.defaults)
    out = [("data file plan (contiguous blocks)", base), ("one frame per quantity", per_quantity)]
    if len(span.blocks) < len(base.blocks):
        out.append(("one frame across unused registers", span))
    return out


async def bench_variant(register_map: RegisterMap, *, baudrate: int, char_bits: int, readings: int) -> dict:
    sim = ModbusMeterSim(register_map, strict=True)
    sim.set_load(current_a=16.0)
    link = await sim.start_pty(baudrate=baudrate, pace=True, char_bits=char_bits)
    try:
        # The pty refuses parity; the link's char_bits carries the 11-bit timing of 8E1.
        async with ModbusBus(port=link.a_path, baudrate=baudrate, timeout_s=2.0, retries=0) as bus:
            meter = ModbusMeter(bus, sim.device_id, register_map)
            await meter.read()  # warm up (first open, caches)
            frames0, busy0 = sim.frames, bus.stats.busy_s
            bytes0 = link.bytes_a_to_b + link.bytes_b_to_a
            times = []
            for _ in range(readings):
                t0 = time.perf_counter()
                await meter.read()
                times.append(time.perf_counter() - t0)
            frames = (sim.frames - frames0) / readings
            busy = (bus.stats.busy_s - busy0) / readings
            wire_bytes = (link.bytes_a_to_b + link.bytes_b_to_a - bytes0) / readings
    finally:
        await sim.stop()
    minimum = reading_minimum_s(register_map, baudrate, char_bits)
    mean = sum(times) / len(times)
    return {
        "frames_per_reading": frames,
        "registers_per_frame": [b.count for b in register_map.blocks],
        "bytes_per_reading": wire_bytes,
        "reading_ms_mean": mean * 1000,
        "reading_ms_min": min(times) * 1000,
        "bus_busy_ms": busy * 1000,
        "physical_minimum_ms": minimum * 1000,
        "wire_only_ms": sum((13 + 2 * b.count) * char_bits / baudrate for b in register_map.blocks) * 1000,
        "overhead_ms": (mean - minimum) * 1000,
        "readings_per_s": 1 / mean,
    }


async def run(meter: str, baudrate: int, parity: str, readings: int) -> dict:
    base = load_register_map(meter)
    char_bits = bits_per_char(8, parity, 1)
    results = []
    for label, m in variants(base):
        r = await bench_variant(m, baudrate=baudrate, char_bits=char_bits, readings=readings)
        r["strategy"] = label
        results.append(r)
    return {
        "meter": base.model, "baudrate": baudrate, "framing": "8%s1" % parity, "char_bits": char_bits,
        "t35_ms": t35_s(baudrate, char_bits) * 1000, "readings": readings,
        "minimum_ms_at_11_bits": reading_minimum_s(base, baudrate, 11) * 1000,
        "results": results,
    }


def print_report(r: dict) -> None:
    print("%s at %d %s (%d bits per character, t3.5 = %.2f ms), %d readings per strategy, wire paced on a pty"
          % (r["meter"], r["baudrate"], r["framing"], r["char_bits"], r["t35_ms"], r["readings"]))
    print()
    head = ("strategy", "frames", "regs/frame", "bytes", "minimum ms", "bus time ms", "overhead ms", "readings/s")
    print("%-36s %6s %-18s %6s %11s %12s %12s %10s" % head)
    for x in r["results"]:
        print("%-36s %6.1f %-18s %6.0f %11.1f %12.1f %12.1f %10.1f" % (
            x["strategy"], x["frames_per_reading"], ",".join(map(str, x["registers_per_frame"])),
            x["bytes_per_reading"], x["physical_minimum_ms"], x["reading_ms_mean"], x["overhead_ms"],
            x["readings_per_s"]))
    print()
    print("minimum = Σ (13 + 2N)·bits/baud + 2·t3.5 per frame (turnaround 0); bus time = mean wall time of "
          "ModbusMeter.read() in a poll loop; overhead = bus time − minimum (pymodbus, asyncio, pty).")
    print("The same data-file plan with 11-bit characters (8E1/8N2): minimum %.1f ms." % r["minimum_ms_at_11_bits"])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.bench_modbus", description=__doc__.split("\n\n")[0])
    p.add_argument("--meter", default="sdm630")
    p.add_argument("--baud", type=int, default=9600)
    p.add_argument("--parity", choices="NEO", default="N")
    p.add_argument("--readings", type=int, default=20)
    p.add_argument("--quick", action="store_true", help="3 readings per strategy")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    r = asyncio.run(run(args.meter, args.baud, args.parity, 3 if args.quick else args.readings))
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        print_report(r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
