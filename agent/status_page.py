"""The local status and setup page, served by the agent (aiohttp).

It shows the connection (central system, station id, security profile,
state, last boot, a switch in progress or the last rollback), the connectors
with their meter readings, and the recent OCPP traffic; and it has a form to
move the charger to another central system — the same validation and
rollback as ``ocpp-agent csms set`` (agent/admin.py).

Bound to ``127.0.0.1`` by default (``[status_page] host/port``). Bound to
any other address it needs ``status_page.password`` (the configuration is
refused without one) and asks for it with HTTP Basic auth (any user name).
On loopback it accepts only loopback host names (``Host:`` header), which
keeps DNS-rebinding pages out, and every form carries a per-process token
(no cross-site form posts).

CPython only (aiohttp).
"""

import base64
import binascii
import hmac
import html
import logging
import secrets
import time
import urllib.parse

from aiohttp import web

from agent.config import is_loopback_host
from hal.errors import HalError

log = logging.getLogger(__name__)

REFRESH_MS = 2000
TRAFFIC_SHOWN = 40
METER_CACHE_S = 2.0
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")


class StatusPage:
    """The page of one running ``Agent``; ``start()`` listens, ``close()`` stops."""

    def __init__(self, agent, admin, host: str = "127.0.0.1", port: int = 8080, password: str = "") -> None:
        self.agent = agent
        self.admin = admin
        self.host = host
        self.port = port
        self.password = password
        self.token = secrets.token_urlsafe(24)
        self._runner = None
        self._meter_cache: dict = {}  # connector id -> (monotonic time, reading)
        if not is_loopback_host(host) and not password:
            raise ValueError("the status page needs a password when bound to %s" % host)

    @property
    def url(self) -> str:
        host = "[%s]" % self.host if ":" in self.host else self.host
        return "http://%s:%d/" % (host, self.port)

    async def start(self) -> None:
        app = web.Application(middlewares=[self._guard], client_max_size=64 * 1024)
        app.router.add_get("/", self._index)
        app.router.add_get("/api/status", self._api_status)
        app.router.add_post("/csms", self._post_csms)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        if self.port == 0:
            self.port = runner.addresses[0][1]
        log.info("status page at %s%s", self.url, " (password required)" if self.password else "")

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # ------------------------------------------------------------------ access
    @web.middleware
    async def _guard(self, request: web.Request, handler):
        if is_loopback_host(self.host):
            host = request.host.rsplit(":", 1)[0] if not request.host.startswith("[") else \
                request.host.split("]")[0] + "]"
            if host not in LOOPBACK_NAMES:
                return web.Response(status=403, text="this page answers only to 127.0.0.1 / localhost\n")
        if self.password and not self._authorized(request.headers.get("Authorization", "")):
            return web.Response(status=401, text="password required\n",
                                headers={"WWW-Authenticate": 'Basic realm="ocpp-agent", charset="UTF-8"'})
        return await handler(request)

    def _authorized(self, header: str) -> bool:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(decoded.partition(":")[2].encode(), self.password.encode())

    # ------------------------------------------------------------------ data
    async def status(self) -> dict:
        agent = self.agent
        station = agent.station
        connectors = []
        for c in station.connectors:
            reading = await self._reading(c)
            tx = c.transaction
            connectors.append({
                "id": c.id, "status": c.status, "error_code": c.status_error_code,
                "cp_state": c.evse.cp_state, "offered_current_a": c.offered_current_a,
                "contactor_closed": c.contactor_closed,
                "energy_wh": reading.energy_wh if reading is not None else None,
                "power_w": reading.power_w if reading is not None else None,
                "current_a": list(reading.current_a) if reading is not None and reading.current_a else None,
                "voltage_v": list(reading.voltage_v) if reading is not None and reading.voltage_v else None,
                "transaction": None if tx is None else {
                    "id": tx.transaction_id, "id_tag": tx.id_tag, "meter_start_wh": tx.meter_start_wh,
                    "started": _iso(tx.start_time), "central_system": tx.backend},
            })
        traffic = [{"time": _iso(t), "clock": _hms(t), "direction": d, "via": via, "text": text}
                   for t, d, via, text in agent.traffic.recent(TRAFFIC_SHOWN)]
        return {"csms": self.admin.csms_show(), "station": {"status": station.charger_status,
                                                            "error_code": station.charger_error_code},
                "connectors": connectors, "traffic": traffic}

    async def _reading(self, c):
        meter = c.hw.meter
        if meter is None:
            return c.last_reading
        now = time.monotonic()
        cached = self._meter_cache.get(c.id)
        if cached is not None and now - cached[0] < METER_CACHE_S:
            return cached[1]
        try:
            reading = await meter.read()
        except HalError:
            reading = c.last_reading
        self._meter_cache[c.id] = (now, reading)
        return reading

    # ------------------------------------------------------------------ handlers
    async def _api_status(self, request: web.Request) -> web.Response:
        data = await self.status()
        if request.query.get("html"):
            data["html"] = _status_html(data)
        return web.json_response(data, headers={"Cache-Control": "no-store"})

    async def _index(self, request: web.Request) -> web.Response:
        message = request.query.get("message", "")
        return self._page(await self.status(), message=message)

    async def _post_csms(self, request: web.Request) -> web.Response:
        form = await request.post()
        origin = request.headers.get("Origin")
        if origin not in (None, "null") and origin.split("://", 1)[-1] != request.host:
            return web.Response(status=403, text="cross-site request refused\n")
        if not hmac.compare_digest(str(form.get("token", "")), self.token):
            return web.Response(status=403, text="stale or missing form token: reload the page\n")
        url = str(form.get("url", "")).strip()
        station_id = str(form.get("station_id", "")).strip() or None
        password = str(form.get("password", "")) or None
        if form.get("clear_password"):
            password = ""
        ca_file = str(form.get("ca_file", "")).strip() or None
        if form.get("clear_ca_file"):
            ca_file = ""
        fields = {"url": url, "station_id": station_id or "", "ca_file": ca_file or ""}
        if not url:
            return self._page(await self.status(), error="give the central system's URL", fields=fields,
                              status=400)
        try:
            result = await self.admin.csms_set(url, station_id=station_id, password=password, ca_file=ca_file,
                                               source="status page")
        except ValueError as e:
            return self._page(await self.status(), error=str(e), fields=fields, status=400)
        message = "; ".join([result["message"]] + result["notes"])
        raise web.HTTPSeeOther("/?message=" + _quote(message))

    # ------------------------------------------------------------------ HTML
    def _page(self, data: dict, message: str = "", error: str = "", fields: dict | None = None,
              status: int = 200) -> web.Response:
        cs = data["csms"]
        f = fields or {"url": "", "station_id": "", "ca_file": ""}
        e = html.escape
        notice = ""
        if message:
            notice += '<p id="message" class="ok">%s</p>' % e(message)
        if error:
            notice += '<p id="error" class="bad">%s</p>' % e(error)
        body = PAGE % {
            "notice": notice,
            "status": _status_html(data),
            "token": e(self.token),
            "url": e(f["url"]), "station_id": e(f["station_id"]), "ca_file": e(f["ca_file"]),
            "current_url": e(cs["url"]), "current_id": e(cs["station_id"]),
            "fallback": int(cs["fallback_timeout_s"]),
            "refresh_ms": REFRESH_MS,
        }
        return web.Response(text=body, content_type="text/html", status=status,
                            headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY",
                                     "Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline' "
                                     "'self'; style-src 'unsafe-inline'; frame-ancestors 'none'"})


def _iso(ts) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _hms(ts) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(ts)) if ts is not None else ""


def _quote(text: str) -> str:
    return urllib.parse.quote(text[:500], safe="")


def _fmt(value, unit: str = "", digits: int = 0) -> str:
    if value is None:
        return "–"
    if isinstance(value, list):
        return " / ".join(_fmt(v, "", digits) for v in value) + (" " + unit if unit else "")
    return ("%.*f" % (digits, value)) + (" " + unit if unit else "")


def _status_html(data: dict) -> str:
    """The part of the page the script refreshes (same HTML as the first render)."""
    e = html.escape
    cs = data["csms"]
    rows = [
        ("Central system", '<span id="csms-url">%s</span>' % e(cs["url"])),
        ("Station id", '<span id="csms-station-id">%s</span>' % e(cs["station_id"])),
        ("Security profile", e(cs["security_profile"]) + (" · password set" if cs["password_set"] else "")),
        ("Connection", '<span id="connection-state">%s</span>' % e(cs["connection"])),
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
    out = ['<table class="kv">']
    out += ["<tr><th>%s</th><td>%s</td></tr>" % (k, v) for k, v in rows]
    out.append("</table>")
    out.append('<h2>Connectors</h2><table id="connectors"><tr><th>#</th><th>status</th><th>pilot</th>'
               '<th>offered</th><th>energy</th><th>power</th><th>current</th><th>voltage</th>'
               '<th>transaction</th></tr>')
    for c in data["connectors"]:
        tx = c["transaction"]
        out.append("<tr><td>%d</td><td class=\"conn-status\">%s%s</td><td>%s</td><td>%s</td><td>%s</td>"
                   "<td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>" % (
                       c["id"], e(c["status"]), "" if c["error_code"] == "NoError" else " (%s)" % e(c["error_code"]),
                       e(c["cp_state"] or ""), _fmt(c["offered_current_a"], "A", 1),
                       _fmt(None if c["energy_wh"] is None else c["energy_wh"] / 1000, "kWh", 3),
                       _fmt(c["power_w"], "W"), _fmt(c["current_a"], "A", 1), _fmt(c["voltage_v"], "V"),
                       "–" if tx is None else e("%s (tag %s, since %s)" % (
                           tx["id"] if tx["id"] is not None else "not yet confirmed", tx["id_tag"], tx["started"]))))
    out.append("</table>")
    out.append('<h2>Recent OCPP traffic</h2><table id="traffic"><tr><th>UTC</th><th></th><th>message</th></tr>')
    for t in reversed(data["traffic"]):
        arrow = "→" if t["direction"] == "out" else "←"
        via = ' <span class="via">(to %s)</span>' % e(t["via"]) if t["via"] else ""
        out.append('<tr><td title="%s">%s</td><td>%s</td><td><code>%s</code>%s</td></tr>' % (
            e(t["time"] or ""), e(t["clock"]), arrow, e(t["text"][:400]), via))
    out.append("</table>")
    return "\n".join(out)


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ocpp-agent · %(current_id)s</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em; max-width: 70em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1em; }
th, td { text-align: left; padding: .2em .8em .2em 0; vertical-align: top; }
table.kv th { font-weight: 600; white-space: nowrap; }
#traffic code { font-size: .85em; word-break: break-all; }
.ok { color: #155724; background: #d4edda; padding: .5em; }
.bad { color: #721c24; background: #f8d7da; padding: .5em; }
form label { display: block; margin: .4em 0 .1em; }
input[type=text], input[type=password] { width: 32em; max-width: 100%%; }
.via { color: #666; }
</style></head>
<body>
<h1>ocpp-agent</h1>
%(notice)s
<div id="status">%(status)s</div>
<h2>Move to another central system</h2>
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
<script>
async function refresh() {
  try {
    const r = await fetch("/api/status?html=1", {cache: "no-store", credentials: "same-origin"});
    if (r.ok) {
      const data = await r.json();
      if (data.html) document.getElementById("status").innerHTML = data.html;
    }
  } catch (e) {}
}
setInterval(refresh, %(refresh_ms)d);
</script>
</body></html>
"""
