// ocpp-agent's page: applies the fragments the agent pushes on /events (server-sent events).
// No library, no build step. The body's data-events attribute names the stream (live view only).
(function () {
  "use strict";
  var url = document.body.getAttribute("data-events");
  var state = document.getElementById("live-state");
  if (!url || !window.EventSource) { if (state) state.textContent = "live updates: not available (reload to refresh)"; return; }
  var source = new EventSource(url);
  function say(text, bad) { if (state) { state.textContent = text; state.className = bad ? "bad" : "muted"; } }
  source.addEventListener("open", function () { say("live updates: on"); });
  source.addEventListener("error", function () { say("live updates: reconnecting…", true); });
  source.addEventListener("fragments", function (ev) {
    var parts = JSON.parse(ev.data);
    Object.keys(parts).forEach(function (id) {
      var el = document.getElementById(id);
      if (el) el.innerHTML = parts[id];
    });
    var body = document.body.dataset;
    body.updated = String(Date.now());
    body.pushed = String(Number(body.pushed || 0) + ev.data.length);  // read by tools/page_watch.py
  });
  // Reconnect with the current page state after the stream ends (the agent ends each after a while).
  window.addEventListener("pagehide", function () { source.close(); });
})();
