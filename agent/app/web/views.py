"""The views of the charger's page and its ``/events`` stream (server-sent events).

``WebViews`` belongs to one ``StatusPage`` (agent/app/status_page.py), which routes
requests here and keeps the HTTP, the password and the form token:

* ``/`` live: the connection, one card per connector (agent/app/web/live.py) with the
  running session's chart (agent/app/web/charts.py) and the recent OCPP traffic;
  ``/events`` pushes what changed (only the fragments that differ from what the
  client has, every ``interval_s``; a comment line keeps an idle stream open);
* ``/history``: the completed sessions (agent/app/web/recorder.py), whether their
  messages were delivered, the queued messages per central system; a chart per
  session (``/history/session?id=…``) and ``/history.csv``;
* ``/logs``: the agent log and the OCPP traffic (pretty-printed, filtered by
  message type; the traffic log already hides secret values), each downloadable;
* ``/setup``: the central system form (the same move with rollback as the CLI), one form
  per setting through ``Admin.config_set`` (an error next to its field changes nothing),
  the restart when settings wait for one, and the checks (agent/app/web/checks.py).

Bounded: at most ``MAX_STREAMS`` event streams at once (the connection limit of the
page still applies), each ended after ``STREAM_MAX_S`` (the browser reconnects by
itself); ``close()`` ends them all.
"""

import asyncio
import html
import json
import logging
import os
import secrets
import time

from agent.app.web import charts, live
from agent.app.web.recorder import queued_counts
from agent.core.isotime import format_datetime
from agent.link import protocols
from hal.interfaces import NO_ERROR
from hal.runtime.aio import wait_for

log = logging.getLogger(__name__)

e = html.escape
INTERVAL_S = 2.0
KEEPALIVE_S = 15.0
MAX_STREAMS = 4
STREAM_MAX_S = 600.0
TRAFFIC_LIVE = 12
TRAFFIC_SHOWN = 200
LOG_LINES_SHOWN = 300
DOWNLOAD_MAX_BYTES = 8 * 1024 * 1024
SNAPSHOTS_KEPT = 8
STATIC_DIR = os.path.join(os.path.dirname(__file__), "static")
STATIC = {"/static/page.css": ("page.css", "text/css; charset=utf-8"),
          "/static/page.js": ("page.js", "text/javascript; charset=utf-8")}
HEADERS = (("Cache-Control", "no-store"), ("X-Frame-Options", "DENY"), ("X-Content-Type-Options", "nosniff"),
           ("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
                                       "form-action 'self'"))
VIEWS = (("/", "Live"), ("/history", "History"), ("/logs", "Logs"), ("/setup", "Setup"))


class WebViews:
    """The views of ``page`` (a StatusPage with an agent behind it)."""

    def __init__(self, page) -> None:
        self.page = page
        self.agent = page.agent
        self.interval_s = INTERVAL_S
        self.recorder = page.background.recorder
        self.logs = page.background.logs
        self.streams = 0
        self.bytes_sent = 0  # by the event streams (for the page weight measurement)
        self._stopping = asyncio.Event()
        self.checking = False  # the checks (doctor) are running: the board is closed, nothing reads it
        self._charts: dict = {}  # connector id -> (its points' length, first and last time; the SVG)
        self._snapshots: dict = {}  # key -> fragments rendered in a page (the stream starts from them)
        self._static: dict = {}

    def close(self) -> None:
        """End every event stream (each returns within a moment)."""
        self._stopping.set()

    # ------------------------------------------------------------------ layout
    def _layout(self, current: str, title: str, body: str, status: int = 200, data_events: str = ""):
        from agent.app.web.http import Response

        cs_id = self.agent.endpoint.current.station_id
        nav = "".join('<a href="%s"%s>%s</a>' % (path, ' class="here" aria-current="page"' if path == current else "",
                                                 name) for path, name in VIEWS)
        events = ' data-events="%s"' % e(data_events) if data_events else ""
        text = PAGE % {"title": e(title), "station": e(cs_id), "nav": nav, "body": body, "events": events}
        return Response(status, text.encode(), "text/html; charset=utf-8", HEADERS)

    def static(self, path: str):
        from agent.app.web.http import Response

        name, content_type = STATIC[path]
        if name not in self._static:
            with open(os.path.join(STATIC_DIR, name), "rb") as f:
                self._static[name] = f.read()
        return Response(200, self._static[name], content_type,
                        [("Cache-Control", "max-age=3600"), ("X-Content-Type-Options", "nosniff")])

    # ------------------------------------------------------------------ live
    async def fragments(self) -> dict:
        """{element id: inner HTML} of every part of the live view that changes."""
        page, agent = self.page, self.agent
        now = agent.clock.time()
        station = agent.station
        out = {}
        out["frag-conn"] = connection_html(page.admin.csms_show())
        out["frag-charger"] = _charger_html(station)
        for c in station.connectors:
            view = live.connector_view(station, c, await page._reading(c), now)
            out["frag-card-%d" % c.id] = _card_html(view)
            out["frag-chart-%d" % c.id] = (self._chart(c.id) if view["session"] is not None else
                                           '<p class="muted">no session running</p>')
        out["frag-traffic"] = _traffic_table(agent.traffic.recent(TRAFFIC_LIVE), "traffic", compact=True)
        return out

    def _chart(self, connector_id: int) -> str:
        """The running session's chart on ``connector_id``, drawn again only when the recorder
        added a point (every event stream asks for it every ``interval_s``)."""
        points = self.recorder.live_points(connector_id)
        key = (len(points), points[0][0], points[-1][0]) if points else None
        cached = self._charts.get(connector_id)
        if cached is None or cached[0] != key:
            cached = self._charts[connector_id] = (key, charts.session_svg(
                points, "connector %d: power and current" % connector_id, "chart-%d" % connector_id))
        return cached[1]

    async def live(self, request):
        frags = await self.fragments()
        key = secrets.token_urlsafe(9)
        self._snapshots[key] = frags
        while len(self._snapshots) > SNAPSHOTS_KEPT:
            del self._snapshots[next(iter(self._snapshots))]
        parts = ['<p id="live-state" class="muted">live updates: connecting…</p>',
                 '<section><div id="frag-conn">%s</div><div id="frag-charger">%s</div></section>' % (
                     frags["frag-conn"], frags["frag-charger"]),
                 '<h2>Connectors</h2><div id="connectors">']
        for c in self.agent.station.connectors:
            parts.append('<article class="connector" id="connector-%d"><div id="frag-card-%d">%s</div>'
                         '<div class="chart-box" id="frag-chart-%d">%s</div></article>' % (
                             c.id, c.id, frags["frag-card-%d" % c.id], c.id, frags["frag-chart-%d" % c.id]))
        parts.append('</div><h2>Recent OCPP traffic</h2><div id="frag-traffic">%s</div>'
                     '<p><a href="/logs">all traffic and the agent log</a></p>' % frags["frag-traffic"])
        return self._layout("/", "Live", "".join(parts), data_events="/events?since=" + key)

    async def events(self, request):
        """The ``/events`` stream: a Response whose ``stream`` writes server-sent events."""
        from agent.app.web.http import Response, _text

        if self.streams >= MAX_STREAMS:
            return _text(503, "too many live views open\n", [("Retry-After", "10")])
        last = dict(self._snapshots.pop(request.query.get("since", ""), {}))

        async def stream(write) -> None:
            async def send(data: bytes) -> None:
                self.bytes_sent += len(data)
                await write(data)

            self.streams += 1
            try:
                await send(b"retry: 3000\n\n")
                started = time.monotonic()
                quiet_since = time.monotonic()
                while not self._stopping.is_set() and time.monotonic() - started < STREAM_MAX_S:
                    frags = await self.fragments()
                    changed = {k: v for k, v in frags.items() if last.get(k) != v}
                    if changed:
                        last.update(changed)
                        await send(b"event: fragments\ndata: " + json.dumps(changed).encode() + b"\n\n")
                        quiet_since = time.monotonic()
                    elif time.monotonic() - quiet_since >= KEEPALIVE_S:
                        await send(b": still here\n\n")
                        quiet_since = time.monotonic()
                    await write(b"")  # the client still there? (it closed the page: ConnectionResetError)
                    try:
                        await wait_for(self._stopping.wait(), self.interval_s)
                    except asyncio.TimeoutError:
                        pass
            finally:
                self.streams -= 1

        response = Response(200, b"", "text/event-stream; charset=utf-8",
                            [("Cache-Control", "no-store"), ("X-Accel-Buffering", "no")])
        response.stream = stream
        return response

    # ------------------------------------------------------------------ history
    def _delivery(self, s: dict, counts: dict | None = None) -> str:
        """Whether every message of session ``s`` was delivered (``counts``: ``queued_counts``)."""
        n = (counts if counts is not None else queued_counts(self.agent.station.outbox)).get(s.get("id"), 0)
        return "all delivered" if n == 0 else "%d queued" % n

    async def history(self, request):
        sessions = self.recorder.history()
        counts = queued_counts(self.agent.station.outbox)
        rows = []
        for s in sessions:
            rows.append('<tr><td><a href="/history/session?id=%s">%s</a></td><td>%s</td><td>%s</td><td>%d</td>'
                        '<td>%s</td><td class="num">%.3f</td><td>%s</td><td>%s</td><td class="delivery">%s</td></tr>' % (
                            e(s["id"]), e(s["start"]), e(s["stop"]), _duration(s["duration_s"]), s["connector"],
                            e(s["id_tag"]), s["energy_wh"] / 1000, e(_reason(s["stop_reason"])),
                            e(s["backend"] or "–"), self._delivery(s, counts)))
        table = ('<table id="sessions"><tr><th>start (UTC)</th><th>stop</th><th>duration</th><th>#</th><th>tag</th>'
                 '<th>kWh</th><th>stop reason</th><th>central system</th><th>messages</th></tr>%s</table>'
                 % "".join(rows)) if rows else '<p id="sessions" class="muted">no completed session recorded yet</p>'
        cs = self.page.admin.csms_show()
        queue = ['<table id="queues"><tr><th>central system</th><th>queued transaction messages</th></tr>',
                 '<tr><td>%s (current)</td><td class="num">%d</td></tr>' % (e(self.agent.endpoint.current.key),
                                                                            cs["queued"])]
        for h in cs["held"]:
            queue.append('<tr><td>%s</td><td class="num">%d</td></tr>' % (e(h["backend"]), h["messages"]))
        queue.append("</table>")
        body = ('<h2>Completed sessions</h2><p><a id="csv" href="/history.csv" download>download as CSV</a></p>%s'
                '<h2>Queued messages</h2>%s' % (table, "".join(queue)))
        return self._layout("/history", "History", body)

    async def session(self, request):
        from agent.app.web.http import _text

        s = self.recorder.find(request.query.get("id", ""))
        if s is None:
            return _text(404, "no such session\n")
        rows = [("Session", s["id"]), ("Central system's id", s["backend_id"] if s["backend_id"] is not None else "–"),
                ("Connector", s["connector"]), ("Tag", s["id_tag"]), ("Start (UTC)", s["start"]),
                ("Stop (UTC)", s["stop"]), ("Duration", _duration(s["duration_s"])),
                ("Energy", "%.3f kWh (meter %s → %s Wh)" % (s["energy_wh"] / 1000, s["meter_start_wh"],
                                                             s["meter_stop_wh"])),
                ("Stop reason", _reason(s["stop_reason"])), ("Central system", s["backend"] or "–"),
                ("Messages", self._delivery(s))]
        body = ('<p><a href="/history">← all sessions</a></p><table class="kv" id="session">%s</table>'
                '<div class="chart-box">%s</div>' % (
                    "".join("<tr><th>%s</th><td>%s</td></tr>" % (k, e(str(v))) for k, v in rows),
                    charts.session_svg(s["points"], "session %s" % s["id"], "session-chart")))
        return self._layout("/history", "Session %s" % s["id"], body)

    async def history_csv(self, request):
        import csv
        import io

        from agent.app.web.http import Response

        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["session", "central_system_id", "connector", "id_tag", "start_utc", "stop_utc", "duration_s",
                    "meter_start_wh", "meter_stop_wh", "energy_wh", "stop_reason", "central_system", "messages"])
        counts = queued_counts(self.agent.station.outbox)
        for s in self.recorder.history():
            w.writerow([s["id"], s["backend_id"] if s["backend_id"] is not None else "", s["connector"],
                        _csv_safe(s["id_tag"]), s["start"], s["stop"], s["duration_s"], s["meter_start_wh"],
                        s["meter_stop_wh"], s["energy_wh"], s["stop_reason"], s["backend"], self._delivery(s, counts)])
        name = "sessions-%s.csv" % self.agent.endpoint.current.station_id
        return Response(200, buf.getvalue().encode(), "text/csv; charset=utf-8",
                        [("Cache-Control", "no-store"), ("Content-Disposition", _attachment(name))])

    # ------------------------------------------------------------------ logs
    def _log_dir(self) -> str:
        from agent.app.log_files import logs_dir

        return logs_dir(self.agent.config.data_dir)

    def _agent_log_lines(self) -> list:
        from agent.app.log_files import AGENT_LOG, log_files

        files = log_files(self._log_dir(), AGENT_LOG)
        if not files:
            return list(self.logs.lines)
        return _tail_lines(files, LOG_LINES_SHOWN)

    async def logs_view(self, request):
        action = request.query.get("action", "")
        frames = self.agent.traffic.recent(TRAFFIC_SHOWN)
        actions = sorted({a for a in _actions(frames).values() if a})
        options = ['<option value="">every message</option>'] + [
            '<option value="%s"%s>%s</option>' % (e(a), " selected" if a == action else "", e(a)) for a in actions]
        lines = self._agent_log_lines()[-LOG_LINES_SHOWN:]
        body = ('<h2>OCPP traffic</h2>'
                '<form method="get" action="/logs" class="inline"><label for="action">message type</label> '
                '<select id="action" name="action">%s</select> <button type="submit" id="filter">filter</button> '
                '<a href="/logs/ocpp-traffic.log" id="download-traffic" download>download</a></form>'
                '%s<h2>Agent log</h2><p><a href="/logs/agent.log" id="download-log" download>download</a> '
                '<span class="muted">(newest last; the last %d lines)</span></p><pre id="agent-log">%s</pre>' % (
                    "".join(options), _traffic_table(frames, "traffic-log", action=action), LOG_LINES_SHOWN,
                    e("\n".join(lines)) or "(nothing logged yet)"))
        return self._layout("/logs", "Logs", body)

    async def download_log(self, request):
        from agent.app.log_files import AGENT_LOG, TRAFFIC_LOG, log_files
        from agent.app.web.http import Response

        name = AGENT_LOG if request.path.endswith(AGENT_LOG) else TRAFFIC_LOG
        files = log_files(self._log_dir(), name)
        if files:  # oldest first; the newest DOWNLOAD_MAX_BYTES of them, and no more read
            parts, left = [], DOWNLOAD_MAX_BYTES
            for path in reversed(files):
                if left <= 0:
                    break
                parts.insert(0, _read_tail(path, left))
                left -= len(parts[0])
            data = b"".join(parts)
        elif name == AGENT_LOG:
            data = "".join(line + "\n" for line in self.logs.lines).encode()
        else:
            data = "".join("%s %-4s %s%s\n" % (format_datetime(t, millis=True), d, text,
                                               " (to %s)" % via if via else "")
                           for t, d, via, text in self.agent.traffic.recent(TRAFFIC_SHOWN)).encode()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        return Response(200, data, "text/plain; charset=utf-8",
                        [("Cache-Control", "no-store"), ("Content-Disposition", _attachment(
                            "%s-%s-%s" % (self.agent.endpoint.current.station_id, stamp, name)))])

    # ------------------------------------------------------------------ setup
    def settings(self) -> list:
        """The settings the setup view edits: [(key, label, kind, value in the file, choices)]; the
        value of a secret is never read ("" or "set")."""
        from agent.app.config import load_config
        from boards import read_definition

        try:
            cfg = load_config(self.agent.config.path)
        except Exception:  # noqa: BLE001 - a file broken by hand: show what the agent runs with
            cfg = self.agent.config
        out = [("station.id", "Station id (moves the charger, with rollback)", "text", cfg.station["id"], ()),
               ("csms.password", "Central system password (write-only; moves the charger, with rollback)",
                "password", "set" if cfg.csms["password"] else "", ()),
               ("csms.ocpp_version", "OCPP version offered", "select", cfg.csms["ocpp_version"], protocols.choices()),
               ("limits.max_current_a", "Current limit per phase in A (0: the controller's rating)", "text",
                cfg.limits["max_current_a"], ())]
        try:
            definition = read_definition(cfg.station["board"], cfg.board)
        except Exception:  # noqa: BLE001
            definition = getattr(self.agent.loaded, "definition", {}) or {}
        for section in sorted(definition, key=lambda n: (n != "evse", n)):
            for key, value in definition[section].items():
                if key == "driver" or isinstance(value, (dict, list)):
                    continue
                out.append(("board.%s.%s" % (section, key), "%s (%s): %s" % (
                    section, definition[section].get("driver", ""), key), "text", value, ()))
        return out

    def waiting_for_restart(self) -> list:
        """The page's settings whose value in the file differs from the one the agent runs with
        (they apply at the next start)."""
        running = {"csms.ocpp_version": self.agent.config.csms["ocpp_version"],
                   "limits.max_current_a": self.agent.config.limits["max_current_a"]}
        for section, table in (getattr(self.agent.loaded, "definition", {}) or {}).items():
            for key, value in table.items():
                running["board.%s.%s" % (section, key)] = value
        return [key for key, _label, _kind, value, _c in self.settings() if key in running and running[key] != value]

    def setup(self, message: str = "", error: str = "", fields: dict | None = None, status: int = 200,
              field: str = "", field_value: str = "", field_error: str = "", field_note: str = "",
              checks: dict | None = None):
        cs = self.page.admin.csms_show()
        f = fields or {"url": "", "station_id": "", "ca_file": ""}
        notice = ""
        if message:
            notice += '<p id="message" class="ok">%s</p>' % e(message)
        if error:
            notice += '<p id="error" class="bad">%s</p>' % e(error)
        token = e(self.page.token)
        rows = []
        for key, label, kind, value, choices in self.settings():
            ident = "set-" + key.replace(".", "-")
            shown = field_value if key == field and field_error else ("" if kind == "password" else _toml_text(value))
            if kind == "select":
                control = '<select id="%s" name="value">%s</select>' % (ident, "".join(
                    '<option%s>%s</option>' % (" selected" if c == shown else "", e(c)) for c in choices))
            elif kind == "password":
                control = ('<input type="password" id="%s" name="value" autocomplete="new-password" placeholder="%s">'
                           % (ident, "a password is set" if value else "none set"))
            else:
                control = '<input type="text" id="%s" name="value" value="%s">' % (ident, e(shown))
            after = ""
            if key == field and field_error:
                after = '<span class="field-error" id="%s-error">%s</span>' % (ident, e(field_error))
            elif key == field and field_note:
                after = '<span class="ok" id="%s-note">%s</span>' % (ident, e(field_note))
            rows.append('<tr><th><label for="%s">%s</label></th><td><form method="post" action="/setup/config" '
                        'class="inline"><input type="hidden" name="token" value="%s"><input type="hidden" name="key" '
                        'value="%s">%s <button type="submit" id="%s-save">save</button>%s</form></td></tr>' % (
                            ident, e(label), token, e(key), control, ident, after))
        restart = ""
        waiting = self.waiting_for_restart()
        if self.agent.restart_requested is None and waiting:
            restart = RESTART % {"token": token, "keys": e(", ".join(waiting))}
        body = SETUP % {
            "notice": notice, "token": token, "url": e(f["url"]), "station_id": e(f["station_id"]),
            "ca_file": e(f["ca_file"]), "current_url": e(cs["url"]), "current_id": e(cs["station_id"]),
            "fallback": int(cs["fallback_timeout_s"]),
            "version": e(protocols.describe(cs, cs["connected"])),
            "settings": "".join(rows), "restart": restart, "path": e(self.agent.config.path),
            "checks": _checks_html(checks) if checks is not None else "",
        }
        return self._layout("/setup", "Setup", body, status=status)

    async def post_config(self, form: dict):
        """One setting from the setup view, through Admin.config_set: validated as a start
        would, written atomically with the file's comments kept; an error shown next to the
        field changes nothing."""
        key, value = form.get("key", ""), form.get("value", "")
        known = {k: kind for k, _label, kind, _v, _c in self.settings()}
        if key not in known:
            return self.setup(error="%s: not a setting of this page" % key, status=400)
        if known[key] == "password" and not value:
            return self.setup(field=key, field_error="type the new password (the current one is never shown)",
                              status=400)
        try:
            result = await self.page.admin.config_set(key, value, source="status page")
        except ValueError as ex:
            return self.setup(field=key, field_value=value, field_error=str(ex), status=400)
        note = "%s; applied %s" % (result["message"], result["applied"])
        if result.get("notes"):
            note += "; " + "; ".join(result["notes"])
        if "next start" in result["applied"]:
            note += " — needs a restart"
        log.info("status page: %s", note)
        return self.setup(field=key, field_note=note)

    async def post_doctor(self, form: dict):
        """``doctor`` from the page (agent/app/web/checks.py): its table in the setup view."""
        from agent.app.web.checks import ChecksRefused, run_checks

        if self.checking:
            return self.setup(error="the checks are running already", status=409)
        self.checking = True
        try:
            result = await run_checks(self.agent, self.page.admin)
        except ChecksRefused as ex:
            return self.setup(error=str(ex), status=409)
        finally:
            self.checking = False
        return self.setup(checks=result)

    async def post_restart(self, form: dict):
        from agent.core import model

        self.agent.station.request_reset(False, model.RESET_ON_IDLE)
        return self.setup(message="restarting once no session is running (the page comes back after the start)")


# ---------------------------------------------------------------------- HTML pieces

def _fmt(value, unit: str = "", digits: int = 0) -> str:
    """A number (or one per phase) with its unit; "–" for none."""
    if value is None:
        return "–"
    if isinstance(value, list):
        return " / ".join(_fmt(v, "", digits) for v in value) + (" " + unit if unit else "")
    return ("%.*f" % (digits, value)) + (" " + unit if unit else "")


def connection_html(cs: dict) -> str:
    """The connection to the central system (``Admin.csms_show()``) as a table."""
    rows = [
        ("Central system", '<span id="csms-url">%s</span>' % e(cs["url"])),
        ("Station id", '<span id="csms-station-id">%s</span>' % e(cs["station_id"])),
        ("Security profile", e(cs["security_profile"]) + (" · password set" if cs["password_set"] else "")),
        ("Connection", '<span id="connection-state">%s</span>' % e(cs["connection"])),
        ("OCPP version", '<span id="ocpp-version">%s</span>' % e(protocols.describe(cs, cs["connected"]))),
        ("Last accepted boot", e(cs["last_boot"] or "never")),
    ]
    if cs.get("pending"):
        p = cs["pending"]
        rows.append(("Switch in progress", '<span id="pending">trying since %s (%s); back to %s in %d s '
                     'unless accepted</span>' % (e(p["since"]), e(p["source"]), e(p["fallback_to"]["url"]),
                                                 p["seconds_left"])))
    if cs.get("rollback"):
        rb = cs["rollback"]
        rows.append(("Last rollback", '<span id="rollback">%s: %s did not work (%s); returned to %s</span>' % (
            e(rb["at"]), e(rb["from"]["url"]), e(rb["reason"]), e(rb["to"]["url"]))))
    rows.append(("Queued transaction messages", str(cs["queued"])))
    for h in cs["held"]:
        rows.append(("Held for %s" % e(h["url"] or h["backend"]), "%d messages%s" % (
            h["messages"], ", delivering" if h["connected"] else (", waiting: %s" % e(h["last_error"])
                                                                  if h["last_error"] else ""))))
    return '<table class="kv">\n%s\n</table>' % "\n".join("<tr><th>%s</th><td>%s</td></tr>" % r for r in rows)


def status_html(data: dict) -> str:
    """``/api/status?html=1``: the connection, the connectors and the recent traffic of ``data``
    (``StatusPage.status()``) as HTML, for scripts that show the agent's state elsewhere."""
    out = [connection_html(data["csms"])]
    out.append('<h2>Connectors</h2><table id="connectors"><tr><th>#</th><th>status</th><th>pilot</th>'
               '<th>offered</th><th>energy</th><th>power</th><th>current</th><th>voltage</th>'
               '<th>transaction</th></tr>')
    for c in data["connectors"]:
        tx = c["transaction"]
        out.append("<tr><td>%d</td><td class=\"conn-status\">%s%s</td><td>%s</td><td>%s</td><td>%s</td>"
                   "<td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>" % (
                       c["id"], e(c["status"]), "" if c["error_code"] == NO_ERROR else " (%s)" % e(c["error_code"]),
                       e(c["cp_state"] or ""), _fmt(c["offered_current_a"], "A", 1),
                       _fmt(None if c["energy_wh"] is None else c["energy_wh"] / 1000, "kWh", 3),
                       _fmt(c["power_w"], "W"), _fmt(c["current_a"], "A", 1), _fmt(c["voltage_v"], "V"),
                       "–" if tx is None else e("%s (tag %s, since %s)" % (
                           tx["id"] if tx["id"] is not None else "not yet confirmed", tx["id_tag"], tx["started"]))))
    out.append("</table>")
    out.append('<h2>Recent OCPP traffic</h2><table id="traffic"><tr><th>UTC</th><th></th><th>message</th></tr>')
    for t in reversed(data["traffic"]):
        arrow = {"out": "→", "in": "←"}.get(t["direction"], "·")  # "·": a connection opened
        via = ' <span class="via">(to %s)</span>' % e(t["via"]) if t["via"] else ""
        out.append('<tr><td title="%s">%s</td><td>%s</td><td><code>%s</code>%s</td></tr>' % (
            e(t["time"] or ""), e(t["clock"]), arrow, e(t["text"][:400]), via))
    out.append("</table>")
    return "\n".join(out)



def _duration(seconds) -> str:
    seconds = int(seconds or 0)
    h, rest = divmod(seconds, 3600)
    return ("%d h %02d min" % (h, rest // 60)) if h else ("%d min %02d s" % divmod(rest, 60))


def _reason(reason: str) -> str:
    """A stop reason in the core's words (``ev_disconnected``) as a person reads it."""
    if not reason:
        return "–"
    text = reason.replace("_", " ")
    return "EV" + text[2:] if text.startswith("ev ") else text


def _charger_html(station) -> str:
    code = station.charger_error_code
    fault = live.fault_words(code)
    if fault is None:
        return '<p id="charger-status">Charger: %s</p>' % e(station.charger_status)
    return ('<p id="charger-status" class="bad">Charger: %s — %s. Check: %s.</p>'
            % (e(station.charger_status), e(fault["words"]), e(fault["check"])))


def _card_html(v: dict) -> str:
    lim = v["limits"]
    why = "; ".join("%s %.1f A" % (p["what"], p["limit_a"]) for p in lim["parts"])
    until = " until %s" % lim["until"] if lim["until"] else ""
    rows = [
        ("Status", '<span class="status status-%s" id="status-%d">%s</span>' % (e(v["status"]), v["id"],
                                                                               e(v["status"]))),
        ("Pilot", '<span id="pilot-%d">%s</span>' % (v["id"], e(v["pilot_words"]))),
        ("Offered", '<span id="offered-%d">%.1f A</span> <span class="muted">— set by <span id="limit-by-%d">%s'
                    '</span>%s (%s)</span>' % (v["id"], v["offered_current_a"], v["id"], e(lim["by"]), e(until),
                                                e(why))),
        ("Power", '<span id="power-%d">%s</span>' % (v["id"], _fmt(None if v["power_w"] is None
                                                                    else v["power_w"] / 1000, "kW", 2))),
        ("Current", _fmt(v["current_a"], "A", 1)),
        ("Voltage", _fmt(v["voltage_v"], "V")),
        ("Meter", _fmt(None if v["energy_wh"] is None else v["energy_wh"] / 1000, "kWh", 3)),
        ("Phases", "%d wired%s" % (v["phases"], "" if v["phases_drawing"] is None
                                   else ", %d drawing current" % v["phases_drawing"])),
    ]
    s = v["session"]
    if s is not None:
        rows.append(("Session", '<span id="session-%d">tag %s · %s · %.3f kWh · %s</span>' % (
            v["id"], e(s["id_tag"]), _duration(s["duration_s"]), s["energy_wh"] / 1000,
            ("central system id %s" % e(str(s["backend_id"]))) if s["confirmed"] else "not confirmed yet")))
    else:
        rows.append(("Session", '<span id="session-%d">none</span>' % v["id"]))
    faults = "".join('<li><b>%s</b>%s: %s. <i>Check:</i> %s.</li>' % (
        e(f["code"]), (" (%s)" % e(f["vendor"])) if f["vendor"] else "", e(f["words"]), e(f["check"]))
        for f in v["faults"])
    return ('<h3>Connector %d</h3><table class="kv">%s</table>%s' % (
        v["id"], "".join("<tr><th>%s</th><td>%s</td></tr>" % r for r in rows),
        '<ul class="faults bad" id="faults-%d">%s</ul>' % (v["id"], faults) if faults else ""))


def _frame_parts(text: str):
    try:
        msg = json.loads(text)
    except ValueError:
        return None
    return msg if isinstance(msg, list) and len(msg) >= 3 else None


def _actions(frames: list) -> dict:
    """{index in frames: the message type} (a result or error named after its call)."""
    calls, out = {}, {}
    for i, (_t, _d, _via, text) in enumerate(frames):
        msg = _frame_parts(text)
        if msg is None:
            continue
        if msg[0] == 2 and len(msg) >= 4:
            calls[msg[1]] = str(msg[2])
            out[i] = str(msg[2])
        elif msg[0] in (3, 4):
            out[i] = calls.get(msg[1], "")
    return out


def _traffic_table(frames: list, element_id: str, compact: bool = False, action: str = "") -> str:
    kinds = _actions(frames)
    rows = []
    for i in range(len(frames) - 1, -1, -1):
        t, direction, via, text = frames[i]
        kind = kinds.get(i, "")
        if action and kind != action:
            continue
        arrow = {"out": "→", "in": "←"}.get(direction, "·")
        via_note = ' <span class="via">(to %s)</span>' % e(via) if via else ""
        if compact:
            shown = '<code>%s</code>' % e(text[:300])
        else:
            msg = _frame_parts(text)
            shown = '<pre>%s</pre>' % e(json.dumps(msg, indent=2, ensure_ascii=False) if msg is not None else text)
        rows.append('<tr data-action="%s"><td title="%s">%s</td><td>%s</td><td>%s</td><td>%s%s</td></tr>' % (
            e(kind), e(format_datetime(t, millis=True)), time.strftime("%H:%M:%S", time.gmtime(t)), arrow,
            e(kind), shown, via_note))
    return ('<table id="%s" class="traffic"><tr><th>UTC</th><th></th><th>type</th><th>message</th></tr>%s</table>'
            % (element_id, "".join(rows)))


def _tail_lines(files: list, n: int) -> list:
    lines: list = []
    for path in reversed(files):
        part = _read_tail(path, 256 * 1024).decode("utf-8", "replace").splitlines()
        lines = part + lines
        if len(lines) >= n:
            break
    return lines[-n:]


def _read_tail(path: str, limit: int = DOWNLOAD_MAX_BYTES) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            return f.read()
    except OSError:
        return b""


def _checks_html(result: dict) -> str:
    rows = "".join('<tr class="check-%s"><td>%s</td><td>%s</td><td class="result">%s</td><td>%s</td></tr>' % (
        e(r.result.lower()), e(r.check), e(r.where), e(r.result), e(r.details)) for r in result["rows"])
    return ('<table id="checks"><tr><th>check</th><th>where</th><th>result</th><th>details</th></tr>%s</table>'
            '<p class="muted" id="checks-note">hardware loop stopped for %.1f s, %s</p>' % (
                rows, result["seconds"], e(result["hardware"])))


def _toml_text(value) -> str:
    """A value as ``ocpp-agent config set`` takes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _csv_safe(text: str) -> str:
    """A cell a spreadsheet will not run as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def _attachment(name: str) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
    return 'attachment; filename="%s"' % safe


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>%(title)s · %(station)s · ocpp-agent</title>
<link rel="stylesheet" href="/static/page.css">
<script src="/static/page.js" defer></script>
</head>
<body%(events)s>
<header><h1>ocpp-agent <span class="muted">%(station)s</span></h1><nav>%(nav)s</nav></header>
<main>
%(body)s
</main>
</body></html>
"""

SETUP = """%(notice)s
<h2>Central system</h2>
<p>Now: <b id="csms-url">%(current_url)s</b> as <b id="csms-station-id">%(current_id)s</b>, OCPP
<span id="ocpp-version">%(version)s</span>.</p>
<p>The charger tries the new central system; if it does not accept the charger (BootNotification
Accepted) within %(fallback)d s, the charger returns to <b>%(current_url)s</b> by itself.</p>
<form id="csms-form" method="post" action="/csms">
<input type="hidden" name="token" value="%(token)s">
<label for="form-url">Central system URL (ws:// or wss://, without the station id)</label>
<input type="text" id="form-url" name="url" value="%(url)s" placeholder="wss://csms.example.com/ocpp" required>
<label for="form-station-id">Station id (empty: keep %(current_id)s)</label>
<input type="text" id="form-station-id" name="station_id" value="%(station_id)s">
<label for="form-password">Password for HTTP Basic auth (empty: keep it for the same server, none for another)</label>
<input type="password" id="form-password" name="password" autocomplete="new-password">
<label><input type="checkbox" name="clear_password" value="1"> no password</label>
<label for="form-ca-file">CA file for wss:// (empty: keep)</label>
<input type="text" id="form-ca-file" name="ca_file" value="%(ca_file)s">
<label><input type="checkbox" name="clear_ca_file" value="1"> system CAs</label>
<p><button type="submit" id="form-submit">Move the charger</button></p>
</form>
<h2>Settings</h2>
<p class="muted">Each is checked as a start of the agent would check it and written to %(path)s (comments kept);
one that applies at the next start says so.</p>
%(restart)s
<table id="settings" class="kv">%(settings)s</table>
<h2>Checks</h2>
<form method="post" action="/setup/doctor" id="doctor-form"><input type="hidden" name="token" value="%(token)s">
<p>Probes every device of the board as the configuration file describes it (as <code>ocpp-agent doctor</code>
does): the hardware loop is stopped for the probe, a few seconds, and started again. Not while a session runs.
<button type="submit" id="doctor">Run the checks</button></p></form>
%(checks)s
"""

RESTART = """<form method="post" action="/setup/restart" id="restart-form"><input type="hidden" name="token"
value="%(token)s"><p class="ok">Saved, applied at the next start: %(keys)s.
<button type="submit" id="restart">Restart the agent</button> (once no session is running)</p></form>
"""
