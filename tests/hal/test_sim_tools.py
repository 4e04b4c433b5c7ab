"""The simulators' command lines (``python -m tools.<sim>``), as a HIL bench runs them.

Each simulator runs as its own process and is reached the way a bench reaches
it: its banner names the TCP port or pseudo-terminal, the real driver talks to
it there, and its stdin console (``plug``, ``present UID``, ``quit`` …) drives
it. Run as a background service (stdin ``/dev/null``) a simulator has no
console and serves until SIGTERM, which stops it cleanly.
"""

import asyncio
import os
import re
import signal
import sys

from hal.modbus import ModbusBus
from hal.modbus_meter import ModbusMeter, load_register_map
from hal.pn532 import Pn532Reader
from hal.serial_port import SerialPort

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TCP = re.compile(r"127\.0\.0\.1:(\d+)")
PTY = re.compile(r"(/dev/pts/\d+)")


class SimProcess:
    """``python -m tools.<module> args…`` with its stdout read line by line."""

    def __init__(self, module: str, *args: str, console: bool = True) -> None:
        self.argv = [sys.executable, "-m", "tools." + module, *args]
        self.console = console
        self.proc = None

    async def __aenter__(self) -> "SimProcess":
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.PIPE if self.console else asyncio.subprocess.DEVNULL)
        self.banner = await self.line()
        return self

    async def __aexit__(self, *exc) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()

    async def line(self, timeout_s: float = 10.0) -> str:
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout_s)
        assert raw, "the simulator ended: %s" % (await self.proc.stderr.read()).decode()
        return raw.decode().strip()

    async def say(self, command: str) -> str:
        """One console command; returns its answer (the text before the next prompt)."""
        self.proc.stdin.write((command + "\n").encode())
        await self.proc.stdin.drain()
        return (await self.line()).lstrip("> ").strip()

    async def ended(self, timeout_s: float = 10.0) -> int:
        return await asyncio.wait_for(self.proc.wait(), timeout_s)


async def test_phoenix_sim_console_plugs_an_ev_the_driver_sees_and_quit_ends_it():
    async with SimProcess("phoenix_sim", "--tcp-port", "0") as sim:
        port = int(TCP.search(sim.banner).group(1))
        bus = ModbusBus(transport="tcp", host="127.0.0.1", tcp_port=port, timeout_s=1.0)
        async with bus:
            assert chr((await bus.read_input(180, 100, 1))[0] & 0xFF) == "A"
            await sim.say("plug")
            assert chr((await bus.read_input(180, 100, 1))[0] & 0xFF) == "C", "factory state: enabled, charging"
            status = await sim.say("status")
            assert "'cp': 'C'" in status and "'enabled': True" in status
            assert "unknown command" in await sim.say("jump")
        assert "plug" in await sim.say("help")
        sim.proc.stdin.write(b"quit\n")
        assert await sim.ended() == 0


async def test_simulator_as_a_service_without_console_serves_until_sigterm():
    async with SimProcess("simpleevse_sim", "--tcp-port", "0", console=False) as sim:
        port = int(TCP.search(sim.banner).group(1))
        bus = ModbusBus(transport="tcp", host="127.0.0.1", tcp_port=port, timeout_s=1.0)
        async with bus:
            await asyncio.sleep(0.3)  # a console would have seen the end of input by now
            assert sim.proc.returncode is None
            regs = await bus.read_holding(1, 1000, 7)
            assert regs[2] == 1  # vehicle state A: nothing plugged in
        sim.proc.send_signal(signal.SIGTERM)
        assert await sim.ended() == 0
        assert "no console" in (await sim.proc.stderr.read()).decode()


async def test_meter_sim_serves_its_map_and_stops_on_sigterm():
    async with SimProcess("modbus_meter_sim", "--meter", "sdm630", "--tcp-port", "0", "--current", "10",
                          "--energy-kwh", "100", console=False) as sim:
        port = int(TCP.search(sim.banner).group(1))
        bus = ModbusBus(transport="tcp", host="127.0.0.1", tcp_port=port, timeout_s=1.0)
        async with ModbusMeter(bus, 1, load_register_map("sdm630")) as meter:
            reading = await meter.read()
        assert abs(reading.power_w - 3 * 230.0 * 10) < 1 and reading.current_a == (10.0, 10.0, 10.0)
        assert 100_000 <= reading.energy_wh < 100_100
        sim.proc.send_signal(signal.SIGTERM)
        assert await sim.ended() == 0


async def test_pn532_sim_console_presents_a_card_the_reader_reads_on_its_pty():
    async with SimProcess("pn532_sim", "--pty") as sim:
        path = PTY.search(sim.banner).group(1)
        reader = Pn532Reader(SerialPort(path, baudrate=115200), poll_interval_s=0.02, release_s=0.05)
        await reader.open()
        try:
            assert await reader.poll() is None
            assert (await sim.say("present 04A1B2C3")).startswith("card: 04A1B2C3")
            assert await reader.poll() == "04A1B2C3"
            assert "error" in await sim.say("present xyz")
            assert (await sim.say("remove")).startswith("card: none")
        finally:
            await reader.close()
        sim.proc.stdin.close()  # end of input ends the console
        assert await sim.ended() == 0


async def test_rapi_sim_factory_auto_start_is_taken_away_by_the_driver_on_its_pty():
    from hal.evse_rapi import OpenEvseRapi

    async with SimProcess("rapi_sim", "--pty") as sim:
        path = PTY.search(sim.banner).group(1)
        await sim.say("plug")
        assert "'delivering': True" in await sim.say("status"), "factory state: auto-start charges at once"
        evse = OpenEvseRapi(SerialPort(path, baudrate=115200), timeout_s=1.0, heartbeat_interval_s=0)
        await evse.open()
        try:
            assert "'delivering': False" in await sim.say("status")
            reply = await evse.cmd("GS")
            assert reply.ok and int(reply.params[0], 16) in (0xFE, 0xFF)  # asleep or disabled: no energy
            assert evse.status.cp_state == "B"
        finally:
            await evse.close()
        sim.proc.stdin.write(b"quit\n")
        assert await sim.ended() == 0
