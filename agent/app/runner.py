"""Assembles an agent from a configuration: board, station, OCPP client, connection.

The OCPP adapter comes from the registry of agent/link/protocols.py: the
preferred one of those ``csms.ocpp_version`` offers is imported when the agent
is built, another only when a connection selects it.

``Agent`` is self-contained (no module state), so a process can run many —
tests run one per scenario, a fleet simulation hundreds.
"""

import asyncio
import logging
import os
import sys

from agent.app.admin import Admin
from agent.core.auth import AuthorizationCache, LocalAuthList
from hal.runtime.clock import Clock
from agent.app.config import Config, ConfigError
from agent.core.settings import SETTINGS_FILE
from agent.ocpp16.config_keys import FEATURE_PROFILES, ConfigurationStore, InvalidKeyValue, core_keys, settings_for
from agent.link.connection import CsmsConnection
from agent.ocpp16.profiles import from_stored_16
from agent.link.links import StationLinks
from agent.link.protocols import ClientContext, by_subprotocol, offered
from agent.store.journal import TransactionJournal
from agent.store.state_store import StationStateStore
from agent.core.station import Station
from agent.link.switch import EndpointManager
from agent.link.traffic import TrafficLog
from agent.security.context import SecurityContext
from agent.security.service import CertificateService
from agent.transfer.logs import LogService
from boards import load_board
from hal.errors import HalConfigurationError

log = logging.getLogger(__name__)

CHARGING_PROFILES_FILE = "charging-profiles.json"


class Agent:
    """One charger: hardware, station model and its link to the central system."""

    def __init__(self, config: Config, clock: Clock | None = None, rng=None, traffic_log=None,
                 local_access: bool = True) -> None:
        self.config = config
        self.local_access = local_access  # the control and sim sockets (a fleet's stations go without)
        self.clock = clock or Clock()
        self.rng = rng
        self.traffic_log = traffic_log
        self.traffic = TrafficLog(self.clock, forward=traffic_log)  # recent frames, for the status page
        self.restart_requested: str | None = None  # "hard" / "soft" after a Reset
        self.stopped = asyncio.Event()
        self.loaded = None
        self.station: Station | None = None
        self.protocols: tuple = ()  # what the connection offers, in order of preference (agent/link/protocols.py)
        self.links: StationLinks | None = None  # the station's link per OCPP version (agent/link/links.py)
        self.connection: CsmsConnection | None = None
        self.endpoint: EndpointManager | None = None  # which central system, switches, rollback
        self.admin: Admin | None = None  # settings changes from the CLI and the status page
        self.status_page = None
        self.security: SecurityContext | None = None  # certificates, identity, security log (data_dir/security)
        self._security_watch = None  # clock jumps, full disk or memory -> security events
        self._sim_server = None
        self._control_server = None
        self._build()

    @property
    def client(self):
        """The station's link: the client of the version the connection speaks (a pinned version's
        from the start); before a connection selected one, the station's default, never online."""
        if self.links is None:
            return None
        return self.links.active if self.links.active is not None else self.station.link

    @property
    def _conn_task(self):
        """The main connection's task (owned by the endpoint manager)."""
        return self.endpoint._conn_task if self.endpoint is not None else None

    def _build(self) -> None:
        cfg = self.config
        try:
            self.loaded = load_board(cfg.station["board"], cfg.board, cfg.data_dir, self.clock)
        except HalConfigurationError as e:
            raise ConfigError(cfg.path, getattr(e, "key", "") or "station.board", str(e)) from None
        board = self.loaded.board
        if cfg.station["vendor"]:
            board.vendor = cfg.station["vendor"]
        if cfg.station["model"]:
            board.model = cfg.station["model"]
        try:
            settings = settings_for(FEATURE_PROFILES, os.path.join(cfg.data_dir, SETTINGS_FILE))
            keys = ConfigurationStore(core_keys(len(board.connectors), FEATURE_PROFILES),
                                      ConfigurationStore.path_in(cfg.data_dir), initial=cfg.ocpp, settings=settings)
        except KeyError as e:
            raise ConfigError(cfg.path, "ocpp.%s" % e.args[0], "unknown OCPP configuration key") from None
        except InvalidKeyValue as e:
            raise ConfigError(cfg.path, "ocpp.%s" % e.name, e.problem) from None
        except ValueError as e:
            raise ConfigError(cfg.path, "ocpp", "invalid value: %s" % e) from None
        self.journal = TransactionJournal(TransactionJournal.path_in(cfg.data_dir),
                                          max_entries=cfg.station["journal_max_entries"])
        self.keys = keys  # the 1.6 configuration keys over the station's settings
        self.security = SecurityContext(cfg.data_dir, self.clock)
        self.certificates = CertificateService(self.security, settings, self.clock)  # endpoint below
        # GetLog: files are written to data_dir/uploads, removed once uploaded
        self.logs = LogService(self.security.log, self.clock, os.path.join(cfg.data_dir, "uploads"),
                               station_id=cfg.station["id"])
        # GetDiagnostics and GetLog DiagnosticsLog: the archive of agent/app/diagnostics.py, made when asked
        from agent.app.diagnostics import DiagnosticsArchive

        self.diagnostics = DiagnosticsArchive(self, versions=self._installed_versions)
        self.logs.add_source("diagnostics", "diagnostics", write=self.diagnostics.write, extension="zip")
        self.station = Station(board, settings, self.clock, max_current_a=cfg.limits["max_current_a"],
                               store=StationStateStore(cfg.data_dir), journal=self.journal,
                               auth_cache=AuthorizationCache(os.path.join(cfg.data_dir, "auth-cache.json")),
                               local_list=LocalAuthList(os.path.join(cfg.data_dir, "local-list.json")),
                               # its ChargingProfileStore takes the SmartCharging keys' limits
                               charging_profiles_path=os.path.join(cfg.data_dir, CHARGING_PROFILES_FILE),
                               migrate_profiles=from_stored_16)  # the file of releases before 0.2: 1.6 JSON
        self.station.on_restart = self._request_restart
        self.updates = self._update_service()
        # The station's link per OCPP version: the preferred adapter's client now, another's when a
        # connection selects its version (agent/link/links.py); the 1.6 keys go to the 1.6 client only.
        self.protocols = offered(cfg.csms["ocpp_version"])
        context = ClientContext(cfg.station["id"], self.clock, response_timeout_s=cfg.csms["response_timeout_s"],
                                serial_number=cfg.station["serial_number"],
                                firmware_version=cfg.station["firmware_version"] or self.updates.running_version,
                                traffic_log=self.traffic.record,
                                data_dir=cfg.data_dir, keys=keys, ocpp201=cfg.ocpp201, security=self.security,
                                certificates=self.certificates, logs=self.logs, updates=self.updates)
        # Built now: a pinned version's client, and the 2.0.1 one when [ocpp201] gives device model
        # values (checked at start, not at the first connection). With "auto" and nothing else the
        # adapter is loaded when a connection selects its version: an unused one costs nothing.
        eager = [p for p in self.protocols if len(self.protocols) == 1 or (p.version == "2.0.1" and cfg.ocpp201)]
        try:
            self.links = StationLinks(self.station, context, eager)
        except ValueError as e:  # the 2.0.1 device model's DeviceModelError: an [ocpp201] value
            raise ConfigError(cfg.path, "ocpp201.%s" % getattr(e, "name", ""), getattr(e, "problem", str(e))) from None
        conn_settings = dict(cfg.csms)
        conn_settings.update(url=cfg.connect_url(), station_id=cfg.station["id"])
        self.connection = CsmsConnection(
            self.links.active, conn_settings, self.clock, [p.subprotocol for p in self.protocols], self._session,
            rng=self.rng, traffic=self.traffic)
        self.station.settings.on_change(self._on_setting_changed)
        self.admin = Admin(self)
        self.endpoint = EndpointManager(config=cfg, links=self.links, connection=self.connection,
                                        station=self.station, journal=self.journal, clock=self.clock,
                                        traffic=self.traffic, rng=self.rng, write_config=self.admin.write_endpoint,
                                        security=self.security)
        self.endpoint.register_keys(keys)
        self.certificates.endpoint = self.endpoint
        self.endpoint.boot_listeners.append(self.updates.boot_accepted)
        self.endpoint.load()  # before the journal opens: the backend its rows belong to

    def _update_service(self):
        """Updates of the agent itself (agent/update): possible when it runs from an install root."""
        from agent.update.service import UpdateService
        from agent.update.state import install_root_of, running_version

        root_path = install_root_of(sys.prefix)
        root = None
        if root_path is not None:
            from agent.update.installer import InstallRoot

            root = InstallRoot(root_path)
        cfg = self.config
        return UpdateService(data_dir=cfg.data_dir, clock=self.clock, station=self.station, security=self.security,
                             install_root=root, running_version=running_version(),
                             verify_timeout_s=cfg.update["verify_timeout_s"],
                             healthy_start_s=cfg.update["healthy_start_s"], request_restart=self._request_update)

    def _installed_versions(self) -> list:
        """The versions in the install root (none outside one), for the diagnostics archive."""
        root = self.updates.install_root
        return root.versions() if root is not None else []

    def _request_update(self) -> None:
        self.restart_requested = "update"
        log.info("restarting into the new version")
        self.stopped.set()

    def _session(self, station_id: str, ws):
        """The session of the adapter whose subprotocol the central system selected
        (``ws.subprotocol``, always one the connection offered)."""
        protocol = by_subprotocol(ws.subprotocol)
        client = self.links.activate(protocol)  # built (its adapter loaded) when first selected
        return self.links.adapter_for(protocol).session_class(station_id, ws, client,
                                                               self.config.csms["response_timeout_s"])

    def _on_setting_changed(self, name: str, value) -> None:
        if name == "ws_ping_interval_s":
            self.connection.restart_ping()

    async def start(self) -> None:
        """Open the hardware (safe state first), start the station and connect."""
        from agent.app.file_modes import warn_about_file_modes

        warn_about_file_modes(self.config)  # secrets others can read: the owner is told, the agent runs
        await self.loaded.board.open()
        try:
            journal_data = self.journal.open()
            await self.station.start(journal_data)
            if self.loaded.sim is not None and self.local_access:
                from hal.sim_control import SimControlServer

                self._sim_server = SimControlServer(self.loaded.sim, os.path.join(self.config.data_dir, "sim.sock"),
                                                    extra_status=self.station.sim_status)
                await self._sim_server.start()
        except BaseException:
            if self._sim_server is not None:
                await self._sim_server.close()
                self._sim_server = None
            await self.station.stop()
            self.journal.close()
            await self.loaded.board.close()
            raise
        # A critical security event each run (A04.FR.02): why this run started.
        self.security.log.record("reset" if self.station.boot_cause is not None else "startup",
                                 "restart cause: %s" % self.station.boot_cause if self.station.boot_cause else "")
        if self.local_access:
            from agent.security.watch import SecurityWatch

            self._security_watch = SecurityWatch(self.security.log, self.clock)
            self._security_watch.start()
            await self._start_local_access()
        self.updates.on_start()
        await self.endpoint.start()

    async def _start_local_access(self) -> None:
        """The control socket (ocpp-agent csms/config) and the status page. The charger
        works without them: a failure to open either is logged, not fatal."""
        from agent.app.control import CONTROL_SOCKET_FILE, AgentControlServer

        server = AgentControlServer(self.admin, os.path.join(self.config.data_dir, CONTROL_SOCKET_FILE))
        try:
            await server.start()
            self._control_server = server
        except OSError as e:
            log.error("control socket not available (ocpp-agent csms/config cannot reach this agent): %s", e)
        page_cfg = self.config.status_page
        if page_cfg["enabled"]:
            from agent.app.page_tls import page_context, wants_tls
            from agent.app.status_page import StatusPage

            try:  # HTTPS or nothing: a page that should be HTTPS never falls back to plain HTTP
                context = page_context(page_cfg, self.config.data_dir) if wants_tls(page_cfg["tls"],
                                                                                     page_cfg["host"]) else None
                page = StatusPage(self, self.admin, host=page_cfg["host"], port=page_cfg["port"],
                                  password=page_cfg["password"], ssl_context=context,
                                  security_log=getattr(self.security, "log", None))
                await page.start()
                self.status_page = page
            except (OSError, ValueError, ImportError) as e:  # ssl.SSLError is an OSError
                log.error("status page not started on %s:%d: %s", page_cfg["host"], page_cfg["port"], e)

    async def stop(self) -> None:
        """Disconnect, leave the hardware safe and close it."""
        await self.endpoint.stop()
        await self.logs.close()
        await self.updates.close()
        if self._security_watch is not None:
            await self._security_watch.close()
            self._security_watch = None
        for name in ("status_page", "_control_server"):
            server = getattr(self, name)
            if server is not None:
                setattr(self, name, None)
                await server.close()
        if self._sim_server is not None:
            await self._sim_server.close()
            self._sim_server = None
        await self.station.stop()
        self.journal.close()
        await self.loaded.board.close()
        if self.loaded.sim is not None and hasattr(self.loaded.sim, "stop"):
            await self.loaded.sim.stop()
        self.stopped.set()

    def _request_restart(self, hard: bool) -> None:
        self.restart_requested = "hard" if hard else "soft"
        log.info("%s reset requested: restarting", self.restart_requested)
        self.stopped.set()

    async def wait(self) -> str | None:
        """Wait until the agent should end; returns the restart kind, if any."""
        await self.stopped.wait()
        return self.restart_requested
