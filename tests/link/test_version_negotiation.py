"""Version negotiation in the link (issue 11): the connection offers the
subprotocols of ``csms.ocpp_version`` in Sec-WebSocket-Protocol, the central
system selects one, and the agent runs that version's adapter; a central system
that selects none, or one that was not offered, is a clear error, retried with
backoff. Real websocket servers on 127.0.0.1: the test central system
(tools/csms.py, ocpp-based, selects the first version it serves) and bare ``websockets`` servers
that answer the handshake as told and record what they were offered.
"""

import logging

from websockets.asyncio.server import serve

from agent.app.config import parse_config
from agent.app.runner import Agent
from agent.link import protocols
from agent.link.connection import SubprotocolError
from hal.runtime.clock import VirtualClock
from tests.harness import AgentHarness, keys, reach_charging, until, validate_agent_frames
from tools.csms import IN, TestCentralSystem


class HandshakeOnly:
    """A websocket server that selects ``answer`` whatever is offered (None: no
    Sec-WebSocket-Protocol in its answer), records each handshake's offer, and
    closes every connection it accepts."""

    def __init__(self, answer: str | None) -> None:
        self.answer = answer
        self.offers: list = []  # the Sec-WebSocket-Protocol header of each handshake
        self._server = None

    async def __aenter__(self):
        self._server = await serve(self._handler, "127.0.0.1", 0, select_subprotocol=self._select)
        return self

    async def __aexit__(self, *exc) -> None:
        self._server.close()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        return "ws://127.0.0.1:%d/ocpp" % self._server.sockets[0].getsockname()[1]

    def _select(self, connection, offered):
        self.offers.append(connection.request.headers.get("Sec-WebSocket-Protocol"))
        return self.answer

    async def _handler(self, ws) -> None:
        await ws.close()


def agent_for(tmp_path, url: str, **csms) -> Agent:
    config = parse_config(str(tmp_path / "agent.toml"), {
        "station": {"id": "CP001", "data_dir": str(tmp_path / "data")},
        "csms": dict({"url": url, "reconnect_initial_s": 1.0, "reconnect_max_s": 2.0}, **csms),
        "status_page": {"enabled": False}, "ocpp": keys()})
    return Agent(config, clock=VirtualClock())


async def test_a_central_system_that_selects_ocpp16_gets_a_16_boot(tmp_path):
    async with AgentHarness(tmp_path, ocpp=keys()) as h:
        assert h.cs.subprotocol == "ocpp1.6"  # this central system serves 1.6 only
        # "auto": every adapter, newest first.
        assert h.cs.request_headers["Sec-WebSocket-Protocol"] == "ocpp2.0.1, ocpp1.6"
        await until(lambda: h.agent.client.online, what="BootNotification Accepted")
        assert h.cs.messages[0].action == "BootNotification"
        assert h.agent.connection.selected == "ocpp1.6" and h.agent.connection.version == "1.6"
        shown = h.agent.admin.csms_show()
        assert shown["ocpp_version"] == "1.6" and shown["subprotocol"] == "ocpp1.6"
        assert shown["ocpp_version_setting"] == "auto" and shown["subprotocols_offered"] == ["ocpp2.0.1", "ocpp1.6"]
        assert [type(c).__name__ for c in h.agent.links.all()] == ["Ocpp16Client"]  # 2.0.1 never loaded
        notes = [text for _t, direction, _via, text in h.agent.traffic.frames if direction == "open"]
        assert notes == ["connection opened to %s/CP001: OCPP 1.6 (subprotocol ocpp1.6)" % h.cs_server.url]


async def test_ocpp_version_16_offers_only_ocpp16(tmp_path):
    async with AgentHarness(tmp_path, ocpp=keys(), csms_extra={"ocpp_version": "1.6"}) as h:
        assert h.cs.request_headers["Sec-WebSocket-Protocol"] == "ocpp1.6"
        assert h.agent.connection.offered == ("ocpp1.6",)
        await until(lambda: h.agent.client.online, what="BootNotification Accepted")
        assert h.agent.admin.csms_show()["ocpp_version_setting"] == "1.6"


async def test_a_central_system_that_selects_no_subprotocol_is_a_clear_error_retried(tmp_path, caplog):
    async with HandshakeOnly(answer=None) as server:
        agent = agent_for(tmp_path, server.url)
        await agent.start()
        try:
            await until(lambda: agent.connection.last_error, what="the handshake refused")
            error = agent.connection.last_error
            assert "selected no subprotocol" in error and "no Sec-WebSocket-Protocol" in error
            assert "offered: ocpp2.0.1, ocpp1.6" in error
            assert not agent.connection.connected and agent.connection.connect_count == 0
            logged = [r for r in caplog.records
                      if r.levelno == logging.ERROR and "selected no subprotocol" in r.message]
            assert logged and "retrying in" in logged[0].message
            assert "not connected: " + error == agent.admin.csms_show()["connection"]
            # Backs off and tries again, like any other failure to connect.
            await until(lambda: len(server.offers) >= 2, clock=agent.clock, step_s=1.0, what="a retry")
            assert server.offers[:2] == ["ocpp2.0.1, ocpp1.6"] * 2
            assert not agent.client.online and agent.connection.selected is None
        finally:
            await agent.stop()


async def test_a_central_system_that_selects_what_was_not_offered_is_the_same_error(tmp_path, caplog):
    async with HandshakeOnly(answer="ocpp2.0.1") as server:
        agent = agent_for(tmp_path, server.url, ocpp_version="1.6")
        await agent.start()
        try:
            await until(lambda: agent.connection.last_error, what="the handshake refused")
            assert agent.connection.last_error == (
                "the central system selected subprotocol 'ocpp2.0.1', which was not offered (offered: ocpp1.6)")
            assert any(r.levelno == logging.ERROR and "'ocpp2.0.1', which was not offered" in r.message
                       for r in caplog.records)
            await until(lambda: len(server.offers) >= 2, clock=agent.clock, step_s=1.0, what="a retry")
            assert server.offers[0] == "ocpp1.6" and agent.connection.connect_count == 0
        finally:
            await agent.stop()


def test_subprotocol_error_names_what_was_offered_and_what_came_back():
    none = SubprotocolError(["ocpp2.0.1", "ocpp1.6"], [])
    assert str(none) == ("the central system selected no subprotocol: its handshake answer has no "
                         "Sec-WebSocket-Protocol (offered: ocpp2.0.1, ocpp1.6; is it an OCPP endpoint for this "
                         "version?)")
    two = SubprotocolError(["ocpp1.6"], ["ocpp1.6", "ocpp2.0.1"])
    assert str(two) == ("the central system selected subprotocol 'ocpp1.6', 'ocpp2.0.1', which was not offered "
                        "(offered: ocpp1.6)")


def test_the_registry_offers_per_setting_and_loads_only_on_demand():
    assert [p.subprotocol for p in protocols.offered("auto")] == ["ocpp2.0.1", "ocpp1.6"]
    assert [p.version for p in protocols.offered("1.6")] == ["1.6"]
    assert [p.subprotocol for p in protocols.offered("2.0.1")] == ["ocpp2.0.1"]
    assert protocols.choices() == ("auto", "2.0.1", "1.6")
    assert protocols.version_problem("2.0.1") == ""
    assert protocols.version_problem("2.1") == (
        'OCPP 2.1 is not available yet (possible values: "auto", "2.0.1", "1.6")')
    assert protocols.version_problem("1.5").startswith("unknown OCPP version '1.5'")
    assert protocols.by_subprotocol("ocpp1.6").version == "1.6" and protocols.by_subprotocol(None) is None
    adapter = protocols.by_subprotocol("ocpp1.6").load()
    assert adapter.client_class.__name__ == "Ocpp16Client" and adapter.session_class.__name__ == "Ocpp16Session"
    adapter = protocols.by_subprotocol("ocpp2.0.1").load()
    assert adapter.client_class.__name__ == "Ocpp201Client" and adapter.session_class.__name__ == "Ocpp201Session"


def test_the_version_in_words_before_any_connection_and_after_one():
    shown = protocols.show("auto")
    assert protocols.describe(shown, connected=False) == (
        "not negotiated yet (csms.ocpp_version = auto: offers ocpp2.0.1, ocpp1.6)")
    shown = protocols.show("1.6", "ocpp1.6")
    assert protocols.describe(shown, connected=True) == (
        "1.6 (subprotocol ocpp1.6; csms.ocpp_version = 1.6: offers ocpp1.6)")
    assert protocols.describe(shown, connected=False).startswith("1.6 at the last connection (subprotocol ocpp1.6;")


async def test_auto_speaks_201_when_the_central_system_selects_it(tmp_path):
    async with AgentHarness(tmp_path, ocpp=keys(), csms=TestCentralSystem(quiet=True)) as h:
        assert h.cs.request_headers["Sec-WebSocket-Protocol"] == "ocpp2.0.1, ocpp1.6"
        assert h.cs.subprotocol == "ocpp2.0.1"  # the central system's preference
        await until(lambda: h.agent.client.online, what="BootNotification Accepted")
        boot = h.cs.messages[0]
        assert boot.action == "BootNotification" and boot.payload["reason"] == "PowerUp"
        assert [type(c).__name__ for c in h.agent.links.all()] == ["Ocpp201Client"]  # 1.6 never loaded
        assert h.station.link is h.agent.client and h.agent.connection.client is h.agent.client
        assert h.agent.admin.csms_show()["ocpp_version"] == "2.0.1"


async def test_a_backend_upgraded_in_place_from_16_to_201_gets_the_session_on_201(tmp_path):
    """The same URL selects ocpp1.6, then (after an upgrade, the websocket closed meanwhile)
    ocpp2.0.1: the station boots on 2.0.1 and the transaction that began on 1.6 and ended
    while the backend was away is delivered as a 2.0.1 TransactionEvent Ended."""
    async with AgentHarness(tmp_path, ocpp=keys()) as h:
        await reach_charging(h)
        port = await h.go_offline()
        h.sim.unplug(1)
        await until(lambda: h.station.connector(1).transaction is None, what="the transaction ended")
        upgraded = TestCentralSystem(quiet=True, protocols=("ocpp2.0.1",))
        await upgraded.start(port=port)
        try:
            await until(lambda: "CP001" in upgraded.stations and h.agent.client.online, clock=h.clock, step_s=1.0,
                        what="online on 2.0.1")
            cs = upgraded.stations["CP001"]
            assert cs.subprotocol == "ocpp2.0.1" and h.agent.connection.version == "2.0.1"
            assert [type(c).__name__ for c in h.agent.links.all()] == ["Ocpp16Client", "Ocpp201Client"]
            ended = await cs.wait_for("TransactionEvent", lambda p: p["eventType"] == "Ended")
            assert ended["transactionInfo"]["stoppedReason"] == "EVDisconnected" and ended["offline"] is True
            await until(lambda: len(h.station.outbox) == 0, what="the outbox delivered")
            assert [m.action for m in cs.messages if m.direction == IN][0] == "BootNotification"
        finally:
            await upgraded.stop()
        validate_agent_frames(cs)
