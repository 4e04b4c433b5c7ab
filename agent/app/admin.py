"""Changing a running agent's settings: one path for the CLI, the status page and OCPP.

``Admin`` validates a change exactly as a start would (agent/app/config_file.py),
writes the configuration file (atomically, comments kept), and applies the
change to the running agent:

* the central system's URL, the station id, the password and the CA file go
  through ``EndpointManager.switch`` (agent/link/switch.py): moved with rollback;
* connection timeouts apply from the next connection, ``station.log_level``
  at once, ``ocpp.<Key>`` as a ChangeConfiguration would;
* anything else (board, limits, data_dir, the status page) at the next start.

A bad value raises ``ValueError`` with the file, the key and the problem, and
changes nothing.
"""

import asyncio
import logging

from agent.app.config import ConfigError
from agent.ocpp16.config_keys import ACCEPTED
from agent.link import protocols
from agent.link.endpoint import EndpointSettings, same_origin
from agent.link.switch import SwitchError
from agent.security.profiles import scheme_problem

log = logging.getLogger(__name__)

ENDPOINT_KEYS = {"csms.url": "url", "station.id": "station_id", "csms.password": "password",
                 "csms.ca_file": "ca_file"}
LIVE_CSMS_KEYS = ("connect_timeout_s", "response_timeout_s", "reconnect_initial_s", "reconnect_max_s")


class Admin:
    """Settings changes for one running ``Agent``."""

    def __init__(self, agent) -> None:
        self.agent = agent
        self._lock = asyncio.Lock()  # one file edit at a time

    @property
    def path(self) -> str:
        return self.agent.config.path

    def csms_show(self) -> dict:
        out = self.agent.endpoint.show()
        out["running"] = True
        # The OCPP version the central system selected (agent/link/protocols.py).
        out.update(protocols.show(self.agent.config.csms["ocpp_version"], self.agent.connection.selected))
        return out

    def plan(self, url: str | None, station_id: str | None = None, password: str | None = None,
             ca_file: str | None = None) -> tuple:
        return plan_endpoint(self.agent.endpoint.current, url, station_id, password, ca_file)

    async def csms_set(self, url: str | None, station_id: str | None = None, password: str | None = None,
                       ca_file: str | None = None, source: str = "cli") -> dict:
        """Validate, write the file, and move the running agent (with rollback)."""
        new, notes = self.plan(url, station_id, password, ca_file)
        endpoint = self.agent.endpoint
        async with self._lock:
            try:
                endpoint.validate(new, source)
            except SwitchError as e:
                raise ValueError("%s: %s" % (self.path, e)) from None
            self._edit(endpoint_changes(new))
            message = await endpoint.switch(new, source, file_written=True)
        return {"message": message, "notes": notes, "csms": endpoint.show()}

    async def update(self, location: str | None, rollback: bool = False) -> dict:
        """``ocpp-agent update``: the running agent installs ``location`` (a bundle file or URL)
        as an update from the central system would, or makes the previous version active."""
        from agent.update.service import ACCEPTED

        updates = self.agent.updates
        if rollback:
            return {"message": updates.roll_back_by_hand()}
        if not location:
            raise ValueError("no bundle given")
        answer = updates.request(location, self.agent.clock.time(), retries=2, retry_interval_s=10, kind="cli")
        if not answer.startswith(ACCEPTED):
            raise ValueError("update refused (%s): see the agent's log" % answer)
        updates.start()
        return {"message": "downloading and installing %s; the agent restarts into it, on trial" % location}

    async def config_set(self, key: str, text: str, source: str = "cli") -> dict:
        """``ocpp-agent config set KEY VALUE`` on the running agent."""
        from agent.app.config_file import parse_value

        try:
            value = parse_value(self.path, key, text)
        except ConfigError as e:
            raise ValueError(str(e)) from None
        if key in ENDPOINT_KEYS:
            field = ENDPOINT_KEYS[key]
            kwargs = {"url": None, field: value}
            result = await self.csms_set(**kwargs, source=source)
            result["applied"] = "now (moving, with rollback)"
            return result
        agent = self.agent
        section, _, name = key.partition(".")
        if section == "ocpp":
            keys = agent.keys
            if name not in keys:
                raise ValueError("%s: %s: unknown OCPP configuration key" % (self.path, key))
            known, _unknown = keys.read([name])
            if known and known[0][1]:
                raise ValueError("%s: %s: read-only OCPP configuration key" % (self.path, key))
        async with self._lock:
            cfg = self._edit({key: value})
        applied = "at the next start of the agent"
        if section == "csms" and name in LIVE_CSMS_KEYS:
            agent.config.csms[name] = cfg.csms[name]
            agent.connection.settings[name] = cfg.csms[name]
            applied = "from the next connection"
        elif key == "csms.fallback_timeout_s":
            agent.config.csms[name] = cfg.csms[name]
            agent.endpoint.fallback_timeout_s = cfg.csms[name]
            applied = "from the next switch"
        elif key == "station.log_level":
            agent.config.station["log_level"] = cfg.station["log_level"]
            logging.getLogger().setLevel(cfg.station["log_level"])
            applied = "now"
        elif section == "ocpp":
            text_value = _ocpp_text(value)
            status = agent.keys.change(name, text_value)
            applied = "now" if status == ACCEPTED else "at the next start (the running agent answered %s)" % status
        return {"message": "%s set" % key, "applied": applied}

    def _edit(self, changes: dict):
        from agent.app.config_file import edit_config  # tomlkit: loaded only when the file is edited

        try:
            return edit_config(self.path, changes)
        except ConfigError as e:
            raise ValueError(str(e)) from None

    def write_endpoint(self, s: EndpointSettings) -> bool:
        """The file follows a move decided inside the agent (OCPP, rollback); False if it
        could not be written (the agent's own state in data_dir still knows)."""
        from agent.app.config_file import edit_config

        try:
            edit_config(self.path, endpoint_changes(s))
        except ConfigError as e:
            log.warning("configuration file not updated to %s: %s", s.url, e)
            return False
        return True


def endpoint_changes(s: EndpointSettings) -> dict:
    """The configuration file's keys for ``s`` (None: the key is removed)."""
    return {"csms.url": s.url, "station.id": s.station_id, "csms.password": s.password or None,
            "csms.ca_file": s.ca_file or None, "csms.security_profile": s.security_profile or None}


def plan_endpoint(cur: EndpointSettings, url: str | None, station_id: str | None = None,
                  password: str | None = None, ca_file: str | None = None) -> tuple:
    """(new EndpointSettings, notes) for ``csms set``: a password not given is kept only
    for the same server (never sent to another one), a CA file not given only for wss://."""
    url = url if url is not None else cur.url
    notes = []
    if password is None:
        password = cur.password
        if password and not same_origin(cur.url, url):
            password = ""
            notes.append("the password for %s is not sent to another server: none is set now "
                         "(give one with --password-stdin)" % cur.url)
    if ca_file is None:
        ca_file = cur.ca_file
        if ca_file and not url.startswith("wss://"):
            ca_file = ""
            notes.append("csms.ca_file cleared: it is only used with wss://")
    station_id = station_id if station_id is not None else cur.station_id
    level, certificate = cur.security_profile, cur.certificate
    if level and scheme_problem(url, level):  # the owner moves it: the URL says the profile now
        notes.append("security profile %d dropped: %s" % (level, scheme_problem(url, level)))
        level, certificate = 0, ""
    return EndpointSettings(url, station_id, password, ca_file, level, certificate), notes


def _ocpp_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
