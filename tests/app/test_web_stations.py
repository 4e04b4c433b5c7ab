"""The charger's page (agent/app/web/) beyond one sim connector:

* a session the agent did not see end (``ocpp-agent run`` killed with SIGKILL while it
  charged, the transaction ended by the journal's recovery at the next start) in the
  history like any other, with its stop reason and its delivery;
* ``doctor`` from the page on the OpenEVSE board (tools/rapi_sim.py on a pty pair) and the
  Phoenix EM-CP-PP-ETH board (tools/phoenix_sim.py over Modbus TCP): the table shows what
  the devices answered, and the hardware loop runs again after;
* two connectors sharing a station budget (a ChargePointMaxProfile on connector 0): each
  connector's card says its offered current is its share of the budget, each has its chart.
"""

import asyncio
import json
import os
import re
import sys

import pytest

from hal.sim_control import send_command
from tests.app.test_status_page import fetch, needs_browser, page_config
from tests.harness import until
from tools.csms import TestCentralSystem

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TAG = "04D00D1E"


def history_rows(text: str) -> list:
    """The history table's rows: [[cell text, …], …] (tags stripped)."""
    rows = re.findall(r'<tr><td><a href="/history/session\?id=[^"]+">.*?</tr>', text)
    return [[re.sub(r"<[^>]+>", "", cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row)] for row in rows]


# ---------------------------------------------------------------------- a session ended by recovery

class AgentProcess:
    """``ocpp-agent run`` on the sim board as a process, its page on a free port (read from its log)."""

    def __init__(self, tmp_path, url: str) -> None:
        self.data_dir = tmp_path / "data"
        self.config = tmp_path / "agent.toml"
        self.config.write_text(
            '[station]\nid = "CPK"\ndata_dir = %s\nlog_level = "INFO"\n\n[csms]\nurl = %s\n'
            'reconnect_initial_s = 0.2\nreconnect_max_s = 0.5\n\n[status_page]\nport = 0\n\n'
            '[ocpp]\nWebSocketPingInterval = 0\nMeterValueSampleInterval = 1\n'
            % (json.dumps(str(self.data_dir)), json.dumps(url)))
        self.log_path = tmp_path / "agent.log"
        self.proc = None
        self.url = None

    async def start(self) -> None:
        start = self.log_path.stat().st_size if self.log_path.exists() else 0
        env = dict(os.environ, PYTHONPATH=REPO, PYTHONUNBUFFERED="1")
        with open(self.log_path, "ab") as log_file:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "agent.app.cli", "run", "--config", str(self.config), cwd=REPO, env=env,
                stdin=asyncio.subprocess.DEVNULL, stdout=log_file, stderr=log_file)
        found = []

        def page_url():
            found[:] = re.findall(r"status page at (http://\S+/)", self.log_path.read_text()[start:])
            return found

        await until(page_url, 10, "the page's address in the agent's log")
        self.url = found[0]

    async def sim(self, command: str, *args) -> dict:
        reply = await send_command(str(self.data_dir / "sim.sock"), command, list(args))
        assert reply["ok"], reply
        return reply["result"]

    async def kill(self) -> None:
        self.proc.kill()
        assert await asyncio.wait_for(self.proc.wait(), 5) == -9

    async def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


@pytest.mark.timeout_s(60)
async def test_a_session_ended_by_recovery_after_kill_9_is_in_the_history(tmp_path):
    """Killed with SIGKILL while charging, restarted: the session the journal's recovery ends
    (PowerLoss) is in the history, its CSV and its own page — tag, energy, stop reason, central
    system, the point sampled before the kill — and its messages count as delivered once the
    central system confirmed the StopTransaction."""
    async with TestCentralSystem(quiet=True, protocols=("ocpp1.6",)) as cs:
        agent = AgentProcess(tmp_path, cs.url)
        try:
            await agent.start()
            station = await cs.wait_for_station("CPK", timeout_s=8)
            await station.wait_for("StatusNotification", lambda p: p["connectorId"] == 1, timeout_s=5)
            assert "no completed session recorded yet" in (await fetch(agent.url + "history")).text
            await agent.sim("plug", "1")
            await agent.sim("swipe", TAG)
            start = await station.wait_for("StartTransaction", timeout_s=5)
            await station.wait_for("StatusNotification", lambda p: p["connectorId"] == 1 and p["status"] == "Charging",
                                   timeout_s=5)
            await station.wait_for("MeterValues", timeout_s=5)
            running = agent.data_dir / "page_running.json"
            await until(running.exists, 5, "the running session's points kept")
            await agent.kill()
            await until(lambda: not station.connected, 5, "station disconnected")

            m = len(station.messages)
            await agent.start()
            stop = await station.wait_for("StopTransaction", start_index=m, timeout_s=8)
            assert stop["reason"] == "PowerLoss"

            async def delivered():
                return history_rows((await fetch(agent.url + "history")).text)

            rows = await delivered()
            for _ in range(50):  # the StopTransaction's confirmation may still be on its way
                if rows and rows[0][-1] == "all delivered":
                    break
                await asyncio.sleep(0.1)
                rows = await delivered()
            assert len(rows) == 1, rows
            start_utc, stop_utc, _duration, connector, tag, kwh, reason, backend, messages = rows[0]
            assert (connector, tag, reason, messages) == ("1", TAG, "power loss", "all delivered")
            assert backend.startswith(cs.url)
            assert float(kwh) == pytest.approx((stop["meterStop"] - start["meterStart"]) / 1000, abs=0.0015)
            assert start_utc < stop_utc
            assert not running.exists()  # taken into the record
            csv = (await fetch(agent.url + "history.csv")).text.strip().splitlines()
            assert len(csv) == 2 and "power_loss" in csv[1] and TAG in csv[1]
            session_id = csv[1].split(",")[0]
            r = await fetch(agent.url + "history/session?id=" + session_id)
            assert r.status == 200 and "power loss" in r.text
            assert 'id="session-chart"' in r.text and int(re.search(r'data-points="(\d+)"', r.text).group(1)) >= 1
            # Recorded once: a clean restart does not add it again.
            agent.proc.terminate()
            assert await asyncio.wait_for(agent.proc.wait(), 8) == 0
            await agent.start()
            assert len(history_rows((await fetch(agent.url + "history")).text)) == 1
        except BaseException:
            sys.stderr.write(agent.log_path.read_text() if agent.log_path.exists() else "")
            raise
        finally:
            await agent.close()


# ---------------------------------------------------------------------- doctor on the boards' simulators

def page_on_a_free_port(monkeypatch) -> None:
    """The agents of tests.harness.AgentHarness serve their page on a free port."""
    from tests.harness import AgentHarness

    make = AgentHarness.make_config

    def make_config(self):
        config = make(self)
        config.status_page = dict(config.status_page, port=0)
        return config

    monkeypatch.setattr(AgentHarness, "make_config", make_config)


async def doctor_from_the_page(page) -> tuple:
    """POST /setup/doctor as the page's form does: (HTTP status, {check: (result, where, details)})."""
    token = re.search(r'name="token" value="([^"]+)"', (await fetch(page.url + "setup")).text).group(1)
    r = await fetch(page.url + "setup/doctor", data={"token": token})
    rows = re.findall(r'<tr class="check-\w+"><td>([^<]*)</td><td>([^<]*)</td><td class="result">([^<]*)</td>'
                      r'<td>([^<]*)</td></tr>', r.text)
    return r.status, {check: (result, where, details) for check, where, result, details in rows}, r.text


async def test_doctor_from_the_page_on_the_openevse_board(tmp_path, monkeypatch):
    """The OpenEVSE board (RAPI on a pty pair): the page's table has the controller's answer (its
    pilot state, firmware) and its energy counter, read by the probe itself; then a session runs
    on the controller the agent opened again."""
    from tests.e2e.test_board_sessions import TAG as BOARD_TAG, openevse

    page_on_a_free_port(monkeypatch)
    async with openevse(tmp_path, plugged=False) as (sim, h):
        page = h.agent.status_page
        await h.wait_status(1, "Available")
        sim.total_wh = 12_345
        before = len(sim.received)
        status, rows, text = await doctor_from_the_page(page)
        assert status == 200, text
        evse = rows["evse openevse_rapi"]
        assert evse[0] == "OK" and evse[2].startswith("pilot state A"), rows
        meter = rows["meter (controller)"]
        assert meter[0] == "OK" and "12.345 kWh" in meter[2], rows
        assert rows["csms connection"][0] == "OK"
        assert "restarted" in text and h.station.hardware_alive()
        assert len(sim.received) > before  # the probe spoke to the controller
        # The hardware loop drives the controller again: a session charges.
        sim.plug()
        await h.wait_status(1, "Preparing")
        start = h.mark()
        assert (await h.cs.call("RemoteStartTransaction", idTag=BOARD_TAG, connectorId=1))["status"] == "Accepted"
        await h.wait_status(1, "Charging", start=start)
        assert sim.delivering


async def test_doctor_from_the_page_on_the_phoenix_board(tmp_path, monkeypatch):
    """The Phoenix EM-CP-PP-ETH board (Modbus TCP), its meter read through the controller: the page's
    table has the controller's answer and the meter behind it (the simulator's register), and the
    agent polls the controller again after the probe."""
    from tests.e2e.test_board_sessions import phoenix

    page_on_a_free_port(monkeypatch)
    async with phoenix(tmp_path, 4321.0, plugged=False) as (sim, h):
        page = h.agent.status_page
        await h.wait_status(1, "Available")
        status, rows, text = await doctor_from_the_page(page)
        assert status == 200, text
        evse = rows["evse phoenix_em_cp_pp_eth"]
        assert evse[0] == "OK" and "127.0.0.1:%d" % h.agent.config.board["evse"]["tcp_port"] in evse[1], rows
        assert rows["meter none"][0] == "SKIP", rows
        meter = rows["meter (controller)"]
        assert meter[0] == "OK" and "4.320 kWh" in meter[2], rows  # the controller counts 10 Wh steps
        assert "restarted" in text and h.station.hardware_alive()
        served = len(sim.slave.requests)
        await until(lambda: len(sim.slave.requests) > served + 2, timeout_s=5,
                    what="the agent polling the controller again")
        sim.plug()
        await h.wait_status(1, "Preparing", timeout_s=8)


# ---------------------------------------------------------------------- two connectors, one budget

async def start_two_connectors(tmp_path):
    """The sim board with two connectors behind the page; the agent booted."""
    from tests.link.test_moving_backend import Rig

    rig = Rig(tmp_path)
    cs = await rig.central()
    rig.path = page_config(tmp_path, cs.url)
    with open(rig.path, "a") as f:
        f.write("\n[board.evse]\nconnectors = 2\n")
    await rig.start()
    await rig.booted(cs)
    return rig, cs


async def charge(rig, connector_id: int, tag: str) -> None:
    rig.sim.plug(connector_id)
    c = rig.station.connectors[connector_id - 1]
    await until(lambda: c.status == "preparing", clock=rig.clock, step_s=0.2, what="preparing %d" % connector_id)
    rig.sim.swipe(tag)
    await until(lambda: c.transaction is not None and c.status == "charging", clock=rig.clock, step_s=0.2,
                what="charging on %d" % connector_id)


def card_offer(text: str, connector_id: int) -> tuple:
    """(offered current, what sets it) as connector ``connector_id``'s card says."""
    m = re.search(r'id="offered-%d">([\d.]+) A</span> <span class="muted">— set by <span id="limit-by-%d">(.*?)'
                  r'</span>' % (connector_id, connector_id), text)
    assert m, text
    return float(m.group(1)), m.group(2)


async def test_two_connectors_share_the_station_budget_on_the_live_view(tmp_path):
    """A 20 A ChargePointMaxProfile (the station's budget, connector 0) on a two-connector sim
    board: one session is offered the whole budget, two sessions 10 A each, and each card says
    the share of the budget sets it; each connector has its own chart, each with its limit line
    at its own offer; the /events stream pushes the second card's change when the second
    session starts."""
    from agent.core.smart_charging import new_profile
    from tests.app.test_web_page import read_events

    rig, cs = await start_two_connectors(tmp_path)
    try:
        page = rig.agent.status_page
        page.web.interval_s = 0.05
        r = await fetch(page.url)
        assert 'id="connector-1"' in r.text and 'id="connector-2"' in r.text
        assert card_offer(r.text, 2) == (0.0, "controller rating")  # idle: nothing offered, the rating is the limit
        profile = new_profile(1, "station_max", 0, [(0, 20.0)], evse_id=0, start=rig.clock.time())
        assert await rig.station.set_charging_profile(0, profile) == "accepted"
        await charge(rig, 1, "TAG-ONE")
        r = await fetch(page.url)
        assert card_offer(r.text, 1) == (20.0, "charging profile 1 (station maximum, stack level 0)")
        since = re.search(r'data-events="([^"]+)"', r.text).group(1)
        stream = asyncio.create_task(read_events(
            page.port, 1000, path=since, stop=lambda ev: "TAG-TWO" in ev.get("frag-card-2", "")))
        await charge(rig, 2, "TAG-TWO")
        _head, events = await asyncio.wait_for(stream, 10)
        assert "TAG-TWO" in events[-1]["frag-card-2"]
        await until(lambda: [c.offered_current_a for c in rig.station.connectors] == [10.0, 10.0],
                    clock=rig.clock, step_s=0.2, what="the budget shared")
        rec = page.web.recorder
        await until(lambda: len(rec.live_points(1)) >= 3 and len(rec.live_points(2)) >= 3, clock=rig.clock,
                    step_s=1.0, timeout_s=10, what="three samples on each connector")
        r = await fetch(page.url)
        for n, tag in ((1, "TAG-ONE"), (2, "TAG-TWO")):
            offered, by = card_offer(r.text, n)
            assert (offered, by) == (10.0, "share of the station budget (20.0 A among 2 connectors)"), n
            assert "tag %s" % tag in r.text
            chart = re.search(r'<svg id="chart-%d" [^>]*data-points="(\d+)"' % n, r.text)
            assert chart and int(chart.group(1)) >= 3, n
            assert rec.live_points(n)[-1][3] == 10.0  # the limit line of its chart: its own offer
        # The first session ends: the second is offered the whole budget again, and says why.
        rig.sim.unplug(1)
        await until(lambda: rig.station.connectors[1].offered_current_a == 20.0, clock=rig.clock, step_s=0.2,
                    what="the whole budget for connector 2")
        r = await fetch(page.url)
        assert card_offer(r.text, 2) == (20.0, "charging profile 1 (station maximum, stack level 0)")
        assert 'id="session-1">none<' in r.text
    finally:
        await rig.close()


@needs_browser
@pytest.mark.timeout_s(60)  # a browser's start on a loaded machine
async def test_browser_shows_two_connectors_sharing_the_budget(tmp_path):
    """In headless Chromium, the live view of a two-connector charger under a 20 A station budget:
    both cards say 10 A, set by the share of the budget, and both charts grow with the pushed
    updates (no reload); the screenshot for the docs."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from agent.core.smart_charging import new_profile
    from tests.app.test_status_page import _chrome
    from tests.app.test_web_page import _shot, charts_caught_up

    rig, cs = await start_two_connectors(tmp_path)
    driver = None
    try:
        page = rig.agent.status_page
        page.web.interval_s = 0.3
        profile = new_profile(1, "station_max", 0, [(0, 20.0)], evse_id=0, start=rig.clock.time())
        assert await rig.station.set_charging_profile(0, profile) == "accepted"
        driver = await asyncio.to_thread(_chrome)
        await asyncio.to_thread(driver.get, page.url)

        def text(ident):
            return driver.find_element(By.ID, ident).text

        def sees(predicate, what):
            # a fragment the stream replaces while it is read is stale: read it again
            WebDriverWait(driver, 10, ignored_exceptions=(StaleElementReferenceException,)).until(
                predicate, message=what)

        await asyncio.to_thread(sees, lambda d: "on" in text("live-state"), "the stream open")
        await charge(rig, 1, "TAG-ONE")
        await charge(rig, 2, "TAG-TWO")
        budget = "share of the station budget (20.0 A among 2 connectors)"
        for n in (1, 2):
            await asyncio.to_thread(sees, lambda d, n=n: text("offered-%d" % n) == "10.0 A" and
                                    text("limit-by-%d" % n) == budget, "connector %d at its share" % n)
        rec = page.web.recorder
        seen = []
        for _ in range(4):
            await rig.clock.advance(5.0)
            await asyncio.to_thread(sees, charts_caught_up(rec, (1, 2), seen), "both charts with the recorder's points")
        for n in (0, 1):  # each chart grew, pushed, without a reload
            counts = [shown[n] for shown in seen]
            assert counts == sorted(counts) and counts[-1] >= 4 and counts[-1] > counts[0], seen
        await asyncio.to_thread(sees, lambda d: "tag TAG-TWO" in text("session-2"), "the second session's tag")
        await asyncio.to_thread(_shot, driver, "web-live-two.png")
    finally:
        if driver is not None:
            await asyncio.to_thread(driver.quit)
        await rig.close()
