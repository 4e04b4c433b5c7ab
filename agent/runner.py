"""Assembles an agent from a configuration: board, station, OCPP client, connection.

``Agent`` is self-contained (no module state), so a process can run many —
tests run one per scenario, a fleet simulation hundreds.
"""

import asyncio
import logging
import os

from agent.auth import AuthorizationCache, LocalAuthList
from agent.clock import Clock
from agent.config import Config, ConfigError
from agent.config_keys import ConfigurationStore, InvalidKeyValue, core_keys
from agent.connection import CsmsConnection
from agent.ocpp16 import SUBPROTOCOL, Ocpp16Client, Ocpp16Session
from agent.journal import TransactionJournal
from agent.state_store import StationStateStore
from agent.station import Station
from boards import load_board
from hal.errors import HalConfigurationError

log = logging.getLogger(__name__)

FEATURE_PROFILES = ("Core", "LocalAuthListManagement", "RemoteTrigger")


class Agent:
    """One charger: hardware, station model and its link to the central system."""

    def __init__(self, config: Config, clock: Clock | None = None, rng=None, traffic_log=None) -> None:
        self.config = config
        self.clock = clock or Clock()
        self.rng = rng
        self.traffic_log = traffic_log
        self.restart_requested: str | None = None  # "hard" / "soft" after a Reset
        self.stopped = asyncio.Event()
        self.loaded = None
        self.station: Station | None = None
        self.client: Ocpp16Client | None = None
        self.connection: CsmsConnection | None = None
        self._sim_server = None
        self._conn_task = None
        self._build()

    def _build(self) -> None:
        cfg = self.config
        try:
            self.loaded = load_board(cfg.station["board"], cfg.board, cfg.data_dir, self.clock)
        except HalConfigurationError as e:
            raise ConfigError(cfg.path, "station.board", str(e)) from None
        board = self.loaded.board
        if cfg.station["vendor"]:
            board.vendor = cfg.station["vendor"]
        if cfg.station["model"]:
            board.model = cfg.station["model"]
        try:
            keys = ConfigurationStore(core_keys(len(board.connectors), FEATURE_PROFILES),
                                      ConfigurationStore.path_in(cfg.data_dir), initial=cfg.ocpp)
        except KeyError as e:
            raise ConfigError(cfg.path, "ocpp.%s" % e.args[0], "unknown OCPP configuration key") from None
        except InvalidKeyValue as e:
            raise ConfigError(cfg.path, "ocpp.%s" % e.name, e.problem) from None
        except ValueError as e:
            raise ConfigError(cfg.path, "ocpp", "invalid value: %s" % e) from None
        self.journal = TransactionJournal(TransactionJournal.path_in(cfg.data_dir),
                                          max_entries=cfg.station["journal_max_entries"])
        self.station = Station(board, keys, self.clock, max_current_a=cfg.limits["max_current_a"],
                               store=StationStateStore(cfg.data_dir), journal=self.journal,
                               auth_cache=AuthorizationCache(os.path.join(cfg.data_dir, "auth-cache.json")),
                               local_list=LocalAuthList(os.path.join(cfg.data_dir, "local-list.json")))
        self.station.on_restart = self._request_restart
        self.client = Ocpp16Client(
            self.station, cfg.station["id"], self.clock, response_timeout_s=cfg.csms["response_timeout_s"],
            serial_number=cfg.station["serial_number"], firmware_version=cfg.station["firmware_version"],
            traffic_log=self.traffic_log)
        settings = dict(cfg.csms)
        settings.update(url=cfg.connect_url(), station_id=cfg.station["id"])
        self.connection = CsmsConnection(
            self.client, settings, self.clock, SUBPROTOCOL,
            lambda sid, ws: Ocpp16Session(sid, ws, self.client, cfg.csms["response_timeout_s"]), rng=self.rng)
        keys.on_change(self._on_key_changed)

    def _on_key_changed(self, name: str, value) -> None:
        if name == "WebSocketPingInterval":
            self.connection.restart_ping()

    async def start(self) -> None:
        """Open the hardware (safe state first), start the station and connect."""
        await self.loaded.board.open()
        try:
            journal_data = self.journal.open()
            await self.station.start(journal_data)
            if self.loaded.sim is not None:
                from hal.sim_control import SimControlServer

                self._sim_server = SimControlServer(self.loaded.sim, os.path.join(self.config.data_dir, "sim.sock"),
                                                    extra_status=self.station.sim_status)
                await self._sim_server.start()
        except BaseException:
            await self.station.stop()
            self.journal.close()
            await self.loaded.board.close()
            raise
        self._conn_task = asyncio.create_task(self.connection.run())

    async def stop(self) -> None:
        """Disconnect, leave the hardware safe and close it."""
        if self._conn_task is not None:
            self._conn_task.cancel()
            await asyncio.gather(self._conn_task, return_exceptions=True)
            self._conn_task = None
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
