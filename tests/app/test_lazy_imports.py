"""What a running agent has imported (issue 11: memory does not grow with what
the charger does not use). An agent on the simulated board runs in a fresh
process as ``ocpp-agent run`` builds it, boots against the test central system
in this process, and reports its ``sys.modules``: no Modbus (pymodbus,
hal.modbus), no serial port, no tomlkit (only editing the configuration file
needs it), and without the status page no h11 either.
"""

import asyncio
import json
import os
import sys

from agent.link import protocols
from tools.csms import TestCentralSystem

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

NEVER_ON_A_SIM_BOARD = ("pymodbus", "serial", "tomlkit", "hal.modbus", "hal.modbus_meter", "hal.evse_drivers",
                        "hal.serial_port", "hal.gpio_relay", "hal.pn532", "agent.app.config_file",
                        "agent.app.cli_admin", "agent.app.doctor",
                        "agent.ocpp201", "ocpp.v201")  # a 1.6 link loads no 2.0.1 code
STATUS_PAGE = ("h11", "agent.app.status_page")

# The child: the agent as ``ocpp-agent run`` builds it (the CLI's parser included), until it is online.
CHILD = r"""
import asyncio, json, sys

from agent.app.cli import build_parser
from agent.app.config import load_config


async def main(path):
    build_parser().parse_args(["run", "--config", path])
    from agent.app.runner import Agent

    agent = Agent(load_config(path))
    await agent.start()
    try:
        for _ in range(1000):
            if agent.client.online:
                break
            await asyncio.sleep(0.01)
        print(json.dumps({"online": agent.client.online, "version": agent.connection.version,
                          "modules": sorted(sys.modules)}))
    finally:
        await agent.stop()

asyncio.run(main(sys.argv[1]))
"""


async def run_agent(tmp_path, url: str, page_enabled: bool) -> dict:
    path = tmp_path / "agent.toml"
    path.write_text('[station]\nid = "CP-LAZY"\ndata_dir = "data"\n\n[csms]\nurl = "%s"\n\n'
                    '[status_page]\nenabled = %s\nport = 0\n' % (url, "true" if page_enabled else "false"))
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", CHILD, str(path), cwd=ROOT,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 0, err.decode()[-3000:]
    return json.loads(out.decode().strip().splitlines()[-1])


def loaded(modules: list, names) -> list:
    return [m for m in modules if any(m == n or m.startswith(n + ".") for n in names)]


async def test_a_sim_board_agent_loads_no_modbus_serial_or_toml_editor(tmp_path):
    async with TestCentralSystem(quiet=True, protocols=("ocpp1.6",)) as cs:
        report = await run_agent(tmp_path, cs.url, page_enabled=True)
    assert report["online"] and report["version"] == "1.6"
    assert loaded(report["modules"], NEVER_ON_A_SIM_BOARD) == []
    assert loaded(report["modules"], ("agent.app.status_page",))  # enabled: it listens
    assert loaded(report["modules"], ("h11", "html")) == []  # until a first request


async def test_without_the_status_page_no_http_server_code_is_loaded(tmp_path):
    async with TestCentralSystem(quiet=True, protocols=("ocpp1.6",)) as cs:
        report = await run_agent(tmp_path, cs.url, page_enabled=False)
    assert report["online"]
    assert loaded(report["modules"], NEVER_ON_A_SIM_BOARD + STATUS_PAGE) == []


async def test_the_link_layer_alone_loads_no_adapter(tmp_path):
    """The registry and the connection import no OCPP adapter (nor the ocpp library):
    an adapter is loaded when its version is selected."""
    code = ("import json, sys; import agent.link.protocols, agent.link.connection; "
            "print(json.dumps(sorted(sys.modules)))")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 0, err.decode()
    assert loaded(json.loads(out), ("ocpp", "agent.ocpp16")) == []
    assert [p.version for p in protocols.PROTOCOLS]  # (the entries exist without their code)
