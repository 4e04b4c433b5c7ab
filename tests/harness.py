"""An agent on the simulated board against the test central system, on loopback.

``async with AgentHarness(tmp_path) as h:`` starts the central system peer
(tools/csms.py, built on ``ocpp``), an ``Agent`` with a ``VirtualClock`` and
waits for its BootNotification. Every frame the agent sends is checked
against the JSON schemas of the OCPP version it speaks (1.6, or 2.0.1 with
``csms_extra={"ocpp_version": "2.0.1"}``) when the harness closes.

The functions after the class are the helpers the end-to-end test files share:
waiting (``until``, ``quiet``), what the central system saw (``statuses``,
``index_of``, ``calls_from_agent``, ``replies_to_agent``), the simulated
hardware (``hw``, ``assert_no_power``, ``assert_charging_hw``) and the OCTT
reusable state Charging (``reach_charging``).
"""

import asyncio
import contextlib
import decimal
import json
import shutil
import subprocess
import time

import pytest

from agent.core.isotime import parse_datetime
from hal.runtime.clock import VirtualClock
from agent.app.config import parse_config
from agent.app.runner import Agent
from ocpp.messages import get_validator
from tools.csms import IN, OUT, TestCentralSystem
from tools.tls_proxy import TlsProxy, server_context


def validate_agent_frames(handle, allowed_errors: tuple = ()) -> int:
    """Validate every frame the agent sent on ``handle`` against the schemas of the
    version it spoke (1.6 or 2.0.1); return how many were checked. CALLERRORs must
    carry an allowed code."""
    version = handle.version or "1.6"
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
            get_validator(2, msg[2], version).validate(msg[3])
        elif msg[0] == 3 and version == "1.6" and calls_out.get(msg[1]) == "GetCompositeSchedule":  # decimals
            get_validator(3, "GetCompositeSchedule", "1.6", parse_float=decimal.Decimal).validate(
                json.loads(text, parse_float=decimal.Decimal)[2])
        elif msg[0] == 3 and msg[1] in calls_out:
            get_validator(3, calls_out[msg[1]], version).validate(msg[2])
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
        self.cs_server = csms or TestCentralSystem(quiet=True, protocols=("ocpp1.6",))  # 1.6 tests: "auto" gets 1.6
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

    async def go_offline(self) -> int:
        """Remove the connectivity: the central system drops the websocket and stops listening,
        until the agent knows it is offline. Returns the port, for ``go_online``."""
        port = self.cs_server.port
        await self.cs_server.stop()
        await until(lambda: not self.agent.client.online and not self.cs.connected)
        return port

    async def go_online(self, port: int, step_s: float = 1.0, timeout_s: float = 10) -> None:
        """Listen on ``port`` again (unless listening) and move virtual time on by ``step_s``
        per poll (the agent's reconnect backoff) until the agent is back online."""
        if self.cs_server._server is None:
            await self.cs_server.start(port=port)
        deadline = time.monotonic() + timeout_s
        while not (self.cs.connected and self.agent.client.online):
            assert time.monotonic() < deadline, "the agent did not reconnect"
            await self.clock.advance(step_s)
            await asyncio.sleep(0.01)


# ---------------------------------------------------------------------- helpers of the end-to-end tests

TAG = "TAG-1"
TX_ID = 4711  # the transactionId ``fixed_transaction_id`` makes the central system assign


def keys(**values) -> dict:
    """Initial OCPP configuration keys; websocket pings off (they would only add noise)."""
    return dict({"WebSocketPingInterval": 0}, **values)


def epoch(timestamp: str) -> float:
    return parse_datetime(timestamp)


async def until(predicate, timeout_s: float = 5, what: str = "condition", *, clock=None, step_s: float = 0.5,
                poll_s: float = 0.005) -> None:
    """Wait (real time) until ``predicate()`` holds: I/O on loopback takes real time. With
    ``clock``, virtual time moves on by ``step_s`` every poll meanwhile."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("%s not reached within %s s" % (what, timeout_s))
        if clock is not None:
            await clock.advance(step_s)
        await asyncio.sleep(poll_s)


async def quiet(h: AgentHarness, seconds: float = 0.1) -> None:
    """Give the agent time to send whatever it would send now."""
    await h.clock.settle()
    await h.settle(seconds)


def index_of(h: AgentHarness, action: str, start: int = 0, direction: str = IN, pred=None) -> int:
    """Index in the peer's record of the first matching message at or after ``start``; -1 if none."""
    for i in range(start, len(h.cs.messages)):
        m = h.cs.messages[i]
        if m.direction == direction and m.action == action and (pred is None or pred(m.payload)):
            return i
    return -1


def calls_from_agent(h: AgentHarness, start: int = 0) -> list:
    """Actions of the requests the agent sent since ``start``."""
    return [m.action for m in h.cs.messages[start:] if m.direction == IN and "." not in m.action]


def replies_to_agent(h: AgentHarness, action: str, start: int = 0) -> list:
    """Payloads the central system answered ``action`` requests with since ``start``."""
    return [m.payload for m in h.cs.messages[start:] if m.direction == OUT and m.action == action + ".conf"]


def statuses(h: AgentHarness, connector_id: int = 1, start: int = 0) -> list:
    """The statuses the agent reported for ``connector_id`` since ``start``, in order."""
    return [p["status"] for p in h.received("StatusNotification", start) if p["connectorId"] == connector_id]


def hw(h: AgentHarness, connector_id: int = 1) -> dict:
    """The simulated hardware of ``connector_id``, as the board reports it."""
    return h.sim.status()["connectors"][connector_id - 1]


def assert_no_power(h: AgentHarness, connector_id: int = 1) -> None:
    """Hardware safety: no current offered, contactor open, nothing flowing."""
    s = hw(h, connector_id)
    assert not s["contactor_closed"], s
    assert s["current_limit_a"] == 0 and not s["pwm_on"], s
    assert s["power_w"] == 0, s


def assert_charging_hw(h: AgentHarness, connector_id: int = 1) -> None:
    s = hw(h, connector_id)
    assert s["contactor_closed"] and s["cp_state"] == "C" and s["power_w"] > 0, s


def fixed_transaction_id(h: AgentHarness, tx_id: int = TX_ID) -> None:
    """The central system answers every StartTransaction with ``tx_id``, Accepted."""
    h.cs.handlers["StartTransaction"] = lambda p: {"transactionId": tx_id, "idTagInfo": {"status": "Accepted"}}


async def get_key(h: AgentHarness, key: str) -> str:
    """GetConfiguration for one key (the OCTT GetConfiguration reusable state); returns its value."""
    conf = await h.cs.call("GetConfiguration", key=[key])
    found = [k for k in conf.get("configurationKey", []) if k["key"] == key]
    assert len(found) == 1 and not conf.get("unknownKey"), conf
    return found[0]["value"]


async def reach_charging(h: AgentHarness, connector_id: int = 1, id_tag: str = TAG, *, start: int | None = None,
                         charging_profile: dict | None = None, authorize_remote: bool | None = None) -> dict:
    """The OCTT reusable state Charging, cable plugged in first: Preparing with nothing
    offered, RemoteStartTransaction (with ``charging_profile`` if given) Accepted,
    then StartTransaction for this connector and tag (after the conf), Charging,
    StartTransaction.conf Accepted and its id known to the agent, current offered
    and energy flowing. With ``authorize_remote``
    (the value of AuthorizeRemoteTxRequests) the Authorize.req is checked too: one,
    before the StartTransaction.req, if true; none if false.

    ``start``: the index in the peer's record to check from (default: now). Returns the
    StartTransaction.req payload with the ``transactionId`` the central system assigned."""
    m = h.mark() if start is None else start
    h.sim.plug(connector_id)
    await h.wait_status(connector_id, "Preparing", m)
    assert_no_power(h, connector_id)  # plugged in, nobody authorized: nothing offered
    req = {"connectorId": connector_id, "idTag": id_tag}
    if charging_profile is not None:
        req["chargingProfile"] = charging_profile
    assert await h.cs.call("RemoteStartTransaction", **req) == {"status": "Accepted"}
    payload = await h.cs.wait_for("StartTransaction", start_index=m)
    assert payload["connectorId"] == connector_id and payload["idTag"] == id_tag, payload
    assert isinstance(payload["meterStart"], int) and payload["timestamp"].endswith("Z"), payload
    await h.wait_status(connector_id, "Charging", m)
    i_start = index_of(h, "StartTransaction", m)
    i_conf = index_of(h, "RemoteStartTransaction.conf", m)
    assert 0 <= i_conf < i_start, "RemoteStartTransaction.conf must precede StartTransaction"
    if authorize_remote:
        i_auth = index_of(h, "Authorize", m)
        assert h.received("Authorize", m) == [{"idTag": id_tag}] and 0 <= i_auth < i_start
    elif authorize_remote is not None:
        assert h.received("Authorize", m) == []
    await until(lambda: replies_to_agent(h, "StartTransaction", m))
    conf = replies_to_agent(h, "StartTransaction", m)[0]
    assert conf["idTagInfo"]["status"] == "Accepted", conf
    connector = h.station.connector(connector_id)
    await until(lambda: connector.transaction is not None and connector.transaction.backend_id is not None)
    assert_charging_hw(h, connector_id)
    assert hw(h, connector_id)["current_limit_a"] > 0
    return dict(payload, transactionId=conf["transactionId"])


# ---------------------------------------------------------------------- TLS

def make_self_signed_cert(directory) -> tuple[str, str]:
    """(cert, key) PEM files for 127.0.0.1 and localhost, made with openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("neither the cryptography package nor openssl is available")
    cert, key = str(directory / "cert.pem"), str(directory / "key.pem")
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=30)
    return cert, key


@contextlib.asynccontextmanager
async def tls_proxy_for(cs: TestCentralSystem, directory):
    """``cs`` (started if it is not) behind a ``TlsProxy`` with a new self-signed
    certificate made in ``directory``; yields the proxy (``url``, ``cert``,
    ``handshakes``). The proxy, then ``cs``, are stopped at the end."""
    cert, key = make_self_signed_cert(directory)
    if cs._server is None:
        await cs.start()
    proxy = TlsProxy(cs.port, server_context(cert, key), cert)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()
        await cs.stop()
