"""An agent on the simulated board against the test central system, on loopback.

``async with AgentHarness(tmp_path) as h:`` starts the central system peer
(tools/csms.py, built on ``ocpp``), an ``Agent`` with a ``VirtualClock`` and
waits for its BootNotification. Every frame the agent sends is checked
against the OCPP 1.6 JSON schemas when the harness closes.
"""

import asyncio
import decimal
import json

from agent.clock import VirtualClock
from agent.config import parse_config
from agent.runner import Agent
from ocpp.messages import get_validator
from tools.csms import IN, OUT, TestCentralSystem


def validate_agent_frames(handle, allowed_errors: tuple = ()) -> int:
    """Validate every frame the agent sent on ``handle`` against the 1.6 schemas;
    return how many were checked. CALLERRORs must carry an allowed code."""
    calls_out = {}
    for direction, text in handle.raw:
        if direction != OUT:
            continue
        try:
            msg = json.loads(text)
        except ValueError:
            continue  # a deliberately malformed frame (tests of the agent's CALLERRORs)
        if (isinstance(msg, list) and len(msg) == 4 and msg[0] == 2 and isinstance(msg[1], str)
                and isinstance(msg[2], str)):
            calls_out[msg[1]] = msg[2]
    checked = 0
    for direction, text in handle.raw:
        if direction != IN:
            continue
        msg = json.loads(text)
        if msg[0] == 2:
            get_validator(2, msg[2], "1.6").validate(msg[3])
        elif msg[0] == 3 and calls_out.get(msg[1]) == "GetCompositeSchedule":  # decimals, as ocpp checks them
            get_validator(3, "GetCompositeSchedule", "1.6", parse_float=decimal.Decimal).validate(
                json.loads(text, parse_float=decimal.Decimal)[2])
        elif msg[0] == 3 and msg[1] in calls_out:
            get_validator(3, calls_out[msg[1]], "1.6").validate(msg[2])
        elif msg[0] == 4:
            assert msg[2] in allowed_errors, "unexpected CALLERROR from the agent: %s" % text
            assert isinstance(msg[3], str) and isinstance(msg[4], dict)
        checked += 1
    return checked


class AgentHarness:
    def __init__(self, tmp_path, station_id: str = "CP001", ocpp: dict | None = None,
                 board: dict | None = None, csms: TestCentralSystem | None = None, clock=None,
                 wait_boot: bool = True, allowed_errors: tuple = (), csms_extra: dict | None = None,
                 limits: dict | None = None, station: dict | None = None) -> None:
        self.tmp_path = tmp_path
        self.station_id = station_id
        self.ocpp = ocpp or {}
        self.board = board or {}
        self.cs_server = csms or TestCentralSystem(quiet=True)
        self.clock = clock or VirtualClock()
        self.wait_boot = wait_boot
        self.allowed_errors = allowed_errors
        self.csms_extra = csms_extra or {}
        self.limits = limits or {}
        self.station_extra = station or {}  # more [station] keys, e.g. journal_max_entries
        self.agent = None
        self.cs = None

    def make_config(self):
        data = {"station": dict({"id": self.station_id, "data_dir": str(self.tmp_path / "data")},
                                **self.station_extra),
                "csms": dict({"url": self.cs_server.url if self.cs_server._server else self.csms_url},
                             **self.csms_extra),
                "ocpp": self.ocpp, "board": self.board}
        if self.limits:
            data["limits"] = self.limits
        return parse_config(str(self.tmp_path / "agent.toml"), data)

    async def start_agent(self) -> Agent:
        self.agent = Agent(self.make_config(), clock=self.clock)
        await self.agent.start()
        return self.agent

    async def __aenter__(self):
        if self.cs_server._server is None:
            await self.cs_server.start()
        self.csms_url = self.cs_server.url  # kept: the agent may restart while the central system is away
        await self.start_agent()
        if self.wait_boot:
            self.cs = await self.cs_server.wait_for_station(self.station_id)
            await self.cs.wait_for("BootNotification")
        return self

    async def __aexit__(self, *exc) -> None:
        try:
            if self.agent is not None:
                await self.agent.stop()
        finally:
            await self.cs_server.stop()
        if exc[0] is None and self.cs is not None:
            validate_agent_frames(self.cs, self.allowed_errors)

    async def restart_agent(self) -> Agent:
        """Stop the agent and start a new one on the same data_dir (a reboot)."""
        await self.agent.stop()
        return await self.start_agent()

    @property
    def sim(self):
        return self.agent.loaded.sim

    @property
    def station(self):
        return self.agent.station

    def mark(self) -> int:
        """Index into the peer's message record: wait for messages after this point."""
        return len(self.cs.messages)

    async def wait_status(self, connector_id: int, status: str, start: int | None = None, timeout_s: float = 5):
        return await self.cs.wait_for(
            "StatusNotification", lambda p: p["connectorId"] == connector_id and p["status"] == status,
            timeout_s=timeout_s, start_index=start)

    def received(self, action: str, start: int = 0) -> list:
        """Payloads of messages with ``action`` the peer received since ``start``."""
        return [m.payload for m in self.cs.messages[start:] if m.direction == IN and m.action == action]

    async def settle(self, seconds: float = 0.05) -> None:
        """Let real I/O happen (messages cross the loopback socket)."""
        await asyncio.sleep(seconds)
