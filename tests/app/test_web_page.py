"""The charger's web page views (agent/app/web/): live view and its /events stream, session
history with charts and CSV, logs; then the same in headless Chromium, which also saves a
screenshot of each view into docs/images/ and measures the page weight and the agent's CPU
while the browser watches.

The agent runs on the sim board with a virtual clock: the session recorder samples every
5 s of that clock, so the tests move it on to make a session's chart grow.
"""

import asyncio
import json
import os
import re
import time

import pytest

from agent.app.web import charts, live, recorder as recorder_mod, views
from agent.core.smart_charging import new_profile
from tests.app.test_status_page import _chrome, fetch, needs_browser, start_rig
from tests.harness import until

DOCS_IMAGES = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "images")
TAG = "04A1B2C3"


async def read_events(port: int, count: int, timeout_s: float = 10.0, path: str = "/events", key: str = "",
                      stop=None) -> tuple:
    """Open ``path`` (HTTP/1.0: the body is the stream as is) and read until ``count``
    ``fragments`` events came (or one with fragment ``key``, or one for which ``stop(event)``
    holds): (response head, [event data dicts])."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" % path.encode())
        await writer.drain()
        buf = b""
        deadline = time.monotonic() + timeout_s
        while b"\r\n\r\n" not in buf:
            buf += await asyncio.wait_for(reader.read(4096), deadline - time.monotonic())
        head, _, buf = buf.partition(b"\r\n\r\n")
        events = []
        while len(events) < count:
            while b"\n\n" not in buf:
                part = await asyncio.wait_for(reader.read(65536), deadline - time.monotonic())
                if not part:
                    return head.decode(), events
                buf += part
            block, _, buf = buf.partition(b"\n\n")
            lines = block.decode().split("\n")
            if "event: fragments" in lines:
                events.append(json.loads("".join(line[6:] for line in lines if line.startswith("data: "))))
                if (key and key in events[-1]) or (stop is not None and stop(events[-1])):
                    break
        return head.decode(), events
    finally:
        writer.close()


async def start_session(rig, cs):
    handle = await cs.wait_for_station("CP001", timeout_s=5)
    rig.sim.plug(1)
    rig.sim.swipe(TAG)
    c = rig.station.connectors[0]
    await until(lambda: c.transaction is not None and c.status == "charging", clock=rig.clock, step_s=0.2,
                what="charging")
    await handle.wait_for("StartTransaction", timeout_s=5)
    return handle


async def end_session(rig, handle, page):
    rig.sim.unplug(1)
    await handle.wait_for("StopTransaction", timeout_s=5)
    await until(lambda: page.web.recorder.history() and not rig.station.outbox.entries(), clock=rig.clock,
                step_s=1.0, what="the session recorded and delivered")


# ---------------------------------------------------------------------- pure parts

def test_chart_draws_power_current_and_the_limit():
    assert 'data-points="0"' in charts.session_svg([])
    points = [[1000.0 + 5 * i, 7000.0 + 10 * i, 10.1, 16.0 if i < 5 else 10.0, 10.0 * i] for i in range(10)]
    svg = charts.session_svg(points, "s", "chart-1")
    assert svg.startswith('<svg id="chart-1"') and 'data-points="10"' in svg
    for cls in ("power", "current", "limit"):
        assert re.search(r'<path d="M[^"]+" class="%s"/>' % cls, svg), cls
    # the limit is a step line: 16 A, then 10 A (two levels of y)
    limit = re.search(r'<path d="([^"]+)" class="limit"/>', svg).group(1)
    assert len({p.split(",")[1] for p in limit[1:].replace("L", " ").split()}) == 2
    # A value at a round number (10 A) is drawn below the frame's top, not hidden on it.
    svg = charts.session_svg([[1000.0, 6900.0, 10.0, 10.0, 0.0], [1005.0, 6900.0, 10.0, 10.0, 9.6]])
    limit = re.search(r'<path d="([^"]+)" class="limit"/>', svg).group(1)
    assert all(float(p.split(",")[1]) > charts.TOP + 1 for p in limit[1:].replace("L", " ").split())


def test_series_stays_bounded():
    s = recorder_mod.Series()
    for i in range(10 * recorder_mod.MAX_POINTS):
        s.add([i, 0, 0, 0, 0], i)
    assert len(s.points) <= recorder_mod.MAX_POINTS
    assert s.points[0][0] == 0 and s.points[-1][0] > 9 * recorder_mod.MAX_POINTS  # the whole session, coarser


def test_faults_in_words():
    assert live.fault_words("no_error") is None
    f = live.fault_words("power_meter_failure", "E12")
    assert "meter" in f["words"] and "run doctor" in f["check"] and f["vendor"] == "E12"
    assert live.fault_words("something_new")["check"] == "the agent log"


# ---------------------------------------------------------------------- HTTP

async def test_live_view_shows_the_station_state_and_why_the_limit(tmp_path):
    rig, cs1, _cs2 = await start_rig(tmp_path)
    try:
        page = rig.agent.status_page
        r = await fetch(page.url)
        assert r.status == 200 and r.headers["Content-Type"] == "text/html; charset=utf-8"
        assert "unsafe-inline" not in r.headers["Content-Security-Policy"]
        assert 'id="status-1">available<' in r.text and "A: no vehicle" in r.text
        assert 'id="session-1">none<' in r.text and "set by <span id=\"limit-by-1\">controller rating</span>" in r.text
        assert re.search(r'data-events="/events\?since=[\w-]+"', r.text)
        for path in ("static/page.css", "static/page.js"):
            s = await fetch(page.url + path)
            assert s.status == 200 and len(s.text) > 100
        handle = await start_session(rig, cs1)
        # A charging profile limits connector 1 to 10 A for the next hour: the page names it.
        now = rig.clock.time()
        profile = new_profile(7, "tx_default", 2, [(0, 10.0)], evse_id=1, start=now,
                              duration_s=3600)
        assert await rig.station.set_charging_profile(1, profile) == "accepted"
        r = await fetch(page.url)
        assert 'id="status-1">charging<' in r.text and "C: vehicle asking for energy" in r.text
        assert 'id="offered-1">10.0 A<' in r.text
        assert ('set by <span id="limit-by-1">charging profile 7 (default, stack level 2)</span> until '
                '2026-01-01T01:00:') in r.text
        assert "tag %s" % TAG in r.text and "central system id" in r.text
        # A meter fault: in words, with what to check.
        rig.sim.fault(1, "power_meter_failure")
        await until(lambda: rig.station.connectors[0].status == "faulted", clock=rig.clock, step_s=0.2,
                    what="faulted")
        r = await fetch(page.url)
        assert 'id="faults-1"' in r.text and "the energy meter does not answer" in r.text
        assert "run doctor" in r.text
        assert handle is not None
    finally:
        await rig.close()


async def test_events_stream_pushes_what_changed(tmp_path):
    rig, cs1, _cs2 = await start_rig(tmp_path)
    try:
        page = rig.agent.status_page
        page.web.interval_s = 0.05
        html_page = (await fetch(page.url)).text
        since = re.search(r'data-events="([^"]+)"', html_page).group(1)

        async def plug_soon():
            await asyncio.sleep(0.3)
            rig.sim.plug(1)

        task = asyncio.create_task(plug_soon())
        head, events = await read_events(page.port, 100, path=since, key="frag-card-1")
        await task
        assert head.startswith("HTTP/1.1 200 ") and "text/event-stream" in head and "content-length" not in \
            head.lower()
        # Started from the page's own snapshot: only what changed since came, the plugged-in EV.
        assert "frag-card-1" in events[-1] and all("frag-conn" not in ev for ev in events)
        assert "B: vehicle connected" in events[-1]["frag-card-1"]
        # Without a snapshot the first event has every fragment.
        _head, events = await read_events(page.port, 1)
        assert {"frag-conn", "frag-card-1", "frag-chart-1", "frag-traffic"} <= set(events[0])
        # Bounded: the streams beyond MAX_STREAMS are refused, and close() ends those open.
        tasks = [asyncio.create_task(read_events(page.port, 1000, timeout_s=30)) for _ in range(views.MAX_STREAMS)]
        await until(lambda: page.web.streams == views.MAX_STREAMS, what="streams open")
        r = await fetch(page.url + "events")
        assert r.status == 503
        t0 = time.monotonic()
        await page.close()
        for t in tasks:
            await asyncio.wait_for(t, 5)
        assert time.monotonic() - t0 < 3 and page._clients == {}
    finally:
        await rig.close()


async def test_history_records_the_session_with_its_chart_and_csv(tmp_path):
    rig, cs1, _cs2 = await start_rig(tmp_path)
    try:
        page = rig.agent.status_page
        handle = await start_session(rig, cs1)
        rec = page.web.recorder
        await until(lambda: len(rec.live_points(1)) >= 6, clock=rig.clock, step_s=1.0, timeout_s=10,
                    what="six samples")
        points = rec.live_points(1)
        assert points[-1][1] > 1000 and points[-1][4] > points[0][4]  # power, energy growing
        r = await fetch(page.url)
        assert 'id="chart-1"' in r.text and re.search(r'data-points="(\d+)"', r.text)
        await end_session(rig, handle, page)
        r = await fetch(page.url + "history")
        assert r.status == 200 and 'id="sessions"' in r.text
        row = re.search(r'<tr><td><a href="/history/session\?id=([^"]+)">.*?</tr>', r.text).group(0)
        assert TAG in row and "all delivered" in row and "EV disconnected" in row and cs1.url in row
        assert 'id="queues"' in r.text
        session_id = re.search(r'id=([^"]+)"', row).group(1)
        r = await fetch(page.url + "history/session?id=" + session_id)
        assert r.status == 200 and 'id="session-chart"' in r.text and TAG in r.text
        assert (await fetch(page.url + "history/session?id=nope")).status == 404
        r = await fetch(page.url + "history.csv")
        assert r.headers["Content-Type"] == "text/csv; charset=utf-8"
        assert "attachment" in r.headers["Content-Disposition"]
        lines = r.text.strip().splitlines()
        assert lines[0].startswith("session,central_system_id,connector,id_tag") and len(lines) == 2
        assert TAG in lines[1] and "all delivered" in lines[1]
        # The history survives a restart of the agent.
        await rig.restart()
        await rig.booted(cs1)
        assert TAG in (await fetch(rig.agent.status_page.url + "history")).text
    finally:
        await rig.close()


async def test_logs_show_the_traffic_filtered_and_the_agent_log(tmp_path):
    rig, cs1, _cs2 = await start_rig(tmp_path, extra_page='password = "page-secret"')
    try:
        page = rig.agent.status_page
        import base64

        auth = {"Authorization": "Basic " + base64.b64encode(b"admin:page-secret").decode()}
        assert (await fetch(page.url + "logs")).status == 401
        r = await fetch(page.url + "logs", headers=auth)
        assert r.status == 200 and 'id="traffic-log"' in r.text and 'id="agent-log"' in r.text
        assert '"BootNotification"' in r.text or "&quot;BootNotification&quot;" in r.text
        assert "\n  " in r.text  # pretty-printed JSON
        r = await fetch(page.url + "logs?action=Heartbeat", headers=auth)
        rows = re.findall(r'<tr data-action="([^"]*)"', r.text)
        assert all(a == "Heartbeat" for a in rows)
        r = await fetch(page.url + "logs?action=BootNotification", headers=auth)
        rows = re.findall(r'<tr data-action="([^"]*)"', r.text)
        assert rows and set(rows) == {"BootNotification"} and len(rows) == 2  # the call and its result
        r = await fetch(page.url + "logs/ocpp-traffic.log", headers=auth)
        assert r.status == 200 and "attachment" in r.headers["Content-Disposition"] and "BootNotification" in r.text
        logger = __import__("logging").getLogger("agent.test")
        logger.warning("a line for the page")
        r = await fetch(page.url + "logs/agent.log", headers=auth)
        assert "a line for the page" in r.text
        for path in ("", "history", "logs", "setup", "logs/agent.log", "logs/ocpp-traffic.log", "api/status"):
            assert "page-secret" not in (await fetch(page.url + path, headers=auth)).text
    finally:
        await rig.close()


# ---------------------------------------------------------------------- headless Chromium

def _shot(driver, name: str) -> None:
    os.makedirs(DOCS_IMAGES, exist_ok=True)
    driver.save_screenshot(os.path.join(DOCS_IMAGES, name))


def charts_caught_up(recorder, connectors: tuple, seen: list):
    """A WebDriverWait condition: the chart of each of ``connectors`` shows the points the
    recorder has now (read at each try: the recorder may still be taking a sample when the
    clock has moved); what they showed is appended to ``seen``."""
    from selenium.webdriver.common.by import By

    def caught_up(driver) -> bool:
        shown = [int(driver.find_element(By.ID, "chart-%d" % n).get_attribute("data-points")) for n in connectors]
        if shown != [len(recorder.live_points(n)) for n in connectors]:
            return False
        seen.append(shown)
        return True

    return caught_up


WEIGHT_JS = """
const nav = performance.getEntriesByType("navigation")[0];
let total = nav.transferSize || nav.encodedBodySize;
for (const r of performance.getEntriesByType("resource")) total += (r.transferSize || r.encodedBodySize);
return total;
"""


@needs_browser
@pytest.mark.timeout_s(60)  # about 20 s: two 5 s CPU windows, a browser, every view
async def test_browser_watches_a_session_and_reads_every_view(tmp_path, caplog):
    """Each view in headless Chromium shows what the station state says; the live view's chart
    grows during a session on the sim board (pushed on /events); screenshots for the docs;
    the page weight and the agent's CPU while the browser watches."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    caplog.set_level("INFO")  # the agent log view shows what the agent logs at INFO, as `run` does
    rig, cs1, _cs2 = await start_rig(tmp_path)
    driver = None
    try:
        page = rig.agent.status_page
        page.web.interval_s = 0.5
        url = page.url
        driver = await asyncio.to_thread(_chrome)
        await asyncio.to_thread(driver.get, url)

        def sees(predicate, what):
            # a fragment the stream replaces while it is read is stale: read it again
            WebDriverWait(driver, 10, ignored_exceptions=(StaleElementReferenceException,)).until(
                lambda d: predicate(d), message=what)

        await asyncio.to_thread(sees, lambda d: d.find_element(By.ID, "status-1").text == "available", "available")
        await asyncio.to_thread(sees, lambda d: "on" in d.find_element(By.ID, "live-state").text, "stream open")
        handle = await start_session(rig, cs1)
        # No reload: the stream brings the charging state and the growing chart.
        await asyncio.to_thread(sees, lambda d: d.find_element(By.ID, "status-1").text == "charging", "charging")
        seen = []
        for _ in range(4):
            await rig.clock.advance(5.0)
            await asyncio.to_thread(sees, charts_caught_up(page.web.recorder, (1,), seen),
                                    "the chart with the recorder's points")
        counts = [shown[0] for shown in seen]
        assert counts == sorted(counts) and counts[-1] > counts[0] >= 1
        await asyncio.to_thread(sees, lambda d: "tag %s" % TAG in d.find_element(By.ID, "session-1").text, "the tag")
        # A profile lowers the offer: the card says which one, pushed.
        profile = new_profile(3, "tx_default", 1, [(0, 12.0)], evse_id=1,
                              start=rig.clock.time(), duration_s=7200)
        assert await rig.station.set_charging_profile(1, profile) == "accepted"
        for _ in range(3):
            await rig.clock.advance(5.0)
        await asyncio.to_thread(sees, lambda d: d.find_element(By.ID, "offered-1").text == "12.0 A", "12 A offered")
        await asyncio.to_thread(_shot, driver, "web-live.png")

        # Page weight of the live view (HTML, CSS, script) and the agent's CPU while it watches a
        # session (virtual time moving 1 s per 0.5 s), against the same without a browser.
        async def window():
            sent0, cpu0, t0 = page.web.bytes_sent, time.process_time(), time.monotonic()
            for _ in range(10):
                await rig.clock.advance(1.0)
                await asyncio.sleep(0.5)
            wall_s = time.monotonic() - t0
            return (time.process_time() - cpu0) / wall_s, (page.web.bytes_sent - sent0) / wall_s

        await asyncio.to_thread(driver.get, "about:blank")
        await until(lambda: page.web.streams == 0, what="the stream closed with the page")
        idle_cpu, _ = await window()
        weight = await asyncio.to_thread(lambda: (driver.get(url), driver.execute_script(WEIGHT_JS))[1])
        await until(lambda: page.web.streams == 1, what="the stream open")
        cpu, pushed = await window()
        print("\nlive view: %d bytes per page load, then %.0f bytes/s pushed (every %.1f s); process CPU %.1f %% "
              "while the browser watches, %.1f %% without it (the test's central system in the same process)"
              % (weight, pushed, page.web.interval_s, 100 * cpu, 100 * idle_cpu))
        assert weight < 64 * 1024 and pushed > 0
        assert cpu < 0.5

        await end_session(rig, handle, page)
        await asyncio.to_thread(driver.get, url + "history")
        text = await asyncio.to_thread(lambda: driver.find_element(By.ID, "sessions").text)
        assert TAG in text and "all delivered" in text and "EV disconnected" in text
        await asyncio.to_thread(_shot, driver, "web-history.png")
        await asyncio.to_thread(lambda: driver.find_element(By.CSS_SELECTOR, "#sessions a").click())
        await asyncio.to_thread(sees, lambda d: d.find_elements(By.ID, "session-chart"), "the session's chart")
        points = int(await asyncio.to_thread(
            lambda: driver.find_element(By.ID, "session-chart").get_attribute("data-points")))
        assert points >= counts[-1]
        await asyncio.to_thread(_shot, driver, "web-session.png")

        await asyncio.to_thread(driver.get, url + "logs")
        await asyncio.to_thread(lambda: driver.find_element(By.CSS_SELECTOR,
                                                            "#action option[value='StartTransaction']").click())
        await asyncio.to_thread(lambda: driver.find_element(By.ID, "filter").click())
        await asyncio.to_thread(sees, lambda d: "action=StartTransaction" in d.current_url, "filtered")
        kinds = await asyncio.to_thread(lambda: {r.get_attribute("data-action") for r in driver.find_elements(
            By.CSS_SELECTOR, "#traffic-log tr[data-action]")})
        assert kinds == {"StartTransaction"}
        await asyncio.to_thread(_shot, driver, "web-logs.png")

        await asyncio.to_thread(driver.get, url + "setup")
        assert cs1.url in await asyncio.to_thread(lambda: driver.find_element(By.ID, "csms-url").text)
        before = rig.file()

        def set_limit(text):
            field = driver.find_element(By.ID, "set-limits-max_current_a")
            field.clear()
            field.send_keys(text)
            driver.find_element(By.ID, "set-limits-max_current_a-save").click()

        await asyncio.to_thread(set_limit, "sixteen")
        await asyncio.to_thread(sees, lambda d: d.find_elements(By.ID, "set-limits-max_current_a-error"), "the error")
        assert "must be a number" in await asyncio.to_thread(
            lambda: driver.find_element(By.ID, "set-limits-max_current_a-error").text)
        assert rig.file() == before
        await asyncio.to_thread(set_limit, "16")
        await asyncio.to_thread(sees, lambda d: d.find_elements(By.ID, "set-limits-max_current_a-note"), "saved")
        assert "max_current_a = 16" in rig.file()
        assert await asyncio.to_thread(lambda: driver.find_element(By.ID, "restart").is_displayed())
        # doctor from the page (no session runs now): its table
        await asyncio.to_thread(lambda: driver.find_element(By.ID, "doctor").click())
        await asyncio.to_thread(sees, lambda d: d.find_elements(By.ID, "checks"), "the checks' table")
        checks = await asyncio.to_thread(lambda: driver.find_element(By.ID, "checks").text)
        assert "evse sim" in checks and "csms connection" in checks and "FAIL" not in checks
        assert rig.station.hardware_alive()
        await asyncio.to_thread(_shot, driver, "web-setup.png")
    finally:
        if driver is not None:
            await asyncio.to_thread(driver.quit)
        await rig.close()


# ---------------------------------------------------------------------- setup

async def test_setup_writes_checked_settings_and_refuses_bad_ones(tmp_path):
    rig, cs1, _cs2 = await start_rig(tmp_path)
    try:
        page = rig.agent.status_page
        r = await fetch(page.url + "setup")
        token = re.search(r'name="token" value="([^"]+)"', r.text).group(1)
        for ident in ("set-station-id", "set-csms-password", "set-csms-ocpp_version", "set-limits-max_current_a",
                      "set-board-evse-phases", "set-board-evse-max_current_a"):
            assert 'id="%s"' % ident in r.text, ident
        before = rig.file()
        # A bad value: 400, the error next to its field, the file as it was.
        assert 'id="restart"' not in r.text  # nothing waits for a restart
        r = await fetch(page.url + "setup/config", data={"token": token, "key": "limits.max_current_a",
                                                         "value": "lots"})
        assert r.status == 400 and 'id="set-limits-max_current_a-error"' in r.text and "must be a number" in r.text
        assert 'value="lots"' in r.text  # what was typed stays in the field
        r = await fetch(page.url + "setup/config", data={"token": token, "key": "board.evse.phases", "value": "7"})
        assert r.status == 400 and 'id="set-board-evse-phases-error"' in r.text
        r = await fetch(page.url + "setup/config", data={"token": token, "key": "csms.ocpp_version",
                                                         "value": "ocpp9"})
        assert r.status == 400 and 'id="set-csms-ocpp_version-error"' in r.text
        r = await fetch(page.url + "setup/config", data={"token": token, "key": "station.data_dir", "value": "/"})
        assert r.status == 400 and "not a setting of this page" in r.text
        assert (await fetch(page.url + "setup/config", data={"key": "limits.max_current_a", "value": "16"})).status \
            == 403  # no form token
        assert rig.file() == before
        # Good values reach the file (comments kept); the page says they need a restart and offers it.
        r = await fetch(page.url + "setup/config", data={"token": token, "key": "limits.max_current_a", "value": "16"})
        assert r.status == 200 and 'id="set-limits-max_current_a-note"' in r.text and "needs a restart" in r.text
        assert 'id="restart"' in r.text
        r = await fetch(page.url + "setup/config", data={"token": token, "key": "board.evse.phases", "value": "1"})
        assert r.status == 200 and "needs a restart" in r.text
        text = rig.file()
        assert "max_current_a = 16" in text and "phases = 1" in text and "[status_page]" in text
        r = await fetch(page.url + "setup")
        assert 'value="16' in r.text  # the file's value shown
        assert "applied at the next start: limits.max_current_a, board.evse.phases" in r.text
        # The password is write-only: never sent back, an empty one refused.
        r = await fetch(page.url + "setup/config", data={"token": token, "key": "csms.password", "value": ""})
        assert r.status == 400 and 'id="set-csms-password-error"' in r.text
        r = await fetch(page.url + "setup/restart", data={"token": token})
        assert r.status == 200 and "restarting" in r.text
        await until(lambda: rig.agent.restart_requested == "soft", clock=rig.clock, step_s=1.0, what="the restart")
    finally:
        await rig.close()


async def test_doctor_runs_from_the_page_and_the_hardware_loop_comes_back(tmp_path):
    rig, cs1, _cs2 = await start_rig(tmp_path)
    try:
        page = rig.agent.status_page
        token = re.search(r'name="token" value="([^"]+)"', (await fetch(page.url + "setup")).text).group(1)
        assert (await fetch(page.url + "setup/doctor", data={})).status == 403  # no form token
        r = await fetch(page.url + "setup/doctor", data={"token": token})
        assert r.status == 200 and 'id="checks"' in r.text
        rows = re.findall(r'<tr class="check-(\w+)"><td>([^<]*)</td>', r.text)
        assert ("ok", "evse sim") in rows and ("ok", "csms connection") in rows
        assert any(name == "file modes" for _result, name in rows)
        assert "hardware loop stopped for" in r.text and "restarted" in r.text
        assert rig.station.hardware_alive()
        # The station works as before: a session starts.
        await start_session(rig, cs1)
        # ... and while it runs the checks are refused (opening the controller would stop it).
        r = await fetch(page.url + "setup/doctor", data={"token": token})
        assert r.status == 409 and "a session is running on connector 1" in r.text
        assert rig.station.connectors[0].status == "charging"
    finally:
        await rig.close()


async def test_checks_probe_a_real_board_on_its_simulators(tmp_path, monkeypatch):
    """The rpi-sdm630-simpleevse board on its simulators (Modbus meter and SimpleEVSE on a pty
    bus, PN532 reader, fake GPIO contactor): the checks close the board, every device answers
    the probe, and the hardware loop reads the meter again afterwards."""
    from agent.app.web.checks import run_checks
    from tests.e2e.test_board_sessions import rpi

    async with rpi(tmp_path, monkeypatch, plugged=False) as (rig, h):
        # the fake GPIO chip as a device node for the probe's own checks (as tests/app/test_doctor.py)
        monkeypatch.setattr("os.path.exists", lambda p, _real=os.path.exists:
                            True if p == "/dev/gpiochip0" else _real(p))
        monkeypatch.setattr("os.access", lambda p, m, _real=os.access: True if p == "/dev/gpiochip0" else _real(p, m))
        agent = h.agent
        result = await run_checks(agent, agent.admin, timeout_s=1.0)
        rows = {r.check: r for r in result["rows"]}
        assert result["hardware"] == "restarted"
        for name, r in rows.items():
            if name != "file modes":
                assert r.result == "OK", (name, r.details)
        assert any(name.startswith("meter") for name in rows) and any(name.startswith("evse") for name in rows)
        assert agent.station.hardware_alive()
        reads = len(rig.meter.requests) if hasattr(rig.meter, "requests") else None
        c = agent.station.connectors[0]
        before = c.last_reading
        await until(lambda: c.last_reading is not before, clock=rig.clock, step_s=1.0, timeout_s=10,
                    what="a meter reading after the checks")
        assert reads is None or len(rig.meter.requests) > reads


async def test_a_central_system_url_with_a_password_is_refused_and_not_echoed(tmp_path):
    """A URL with user info is refused (csms.password holds the password) and the form comes back
    without it: the typed password is not sent back to the browser."""
    rig, cs1, _cs2 = await start_rig(tmp_path)
    try:
        page = rig.agent.status_page
        token = re.search(r'name="token" value="([^"]+)"', (await fetch(page.url + "setup")).text).group(1)
        url = cs1.url.replace("ws://", "ws://admin:hunter2@")
        r = await fetch(page.url + "csms", data={"token": token, "url": url, "station_id": "CP009"})
        assert r.status == 400 and "must not carry credentials" in r.text
        assert "hunter2" not in r.text and 'value="CP009"' in r.text  # the other fields are kept
        assert rig.agent.endpoint.current.url == cs1.url
    finally:
        await rig.close()
