"""The charger's own web page (served by agent/app/status_page.py): live view with charts
pushed by server-sent events, session history, logs.

* ``live``: what the station state says about each connector, in words (status, pilot,
  the offered current and which limit sets it, faults and what to check);
* ``recorder``: the running sessions' power/current samples and the completed
  sessions' history (``data_dir/page_sessions.json``);
* ``charts``: server-rendered SVG charts (no charting library, no build step);
* ``views``: the HTML of each view and the ``/events`` stream;
* ``checks``: ``doctor`` from the page, the hardware loop stopped for the probe;
* ``background``: what runs while nobody looks (the recorder, the log buffer);
* ``http``: the handlers' ``Response``;
* ``static/``: the page's one stylesheet and one small script, served by the agent.

CPython only (served by the h11 page), imported at the page's first request or start.
"""
