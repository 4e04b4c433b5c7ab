"""The agent's log files on disk, bounded for SD cards.

``ocpp-agent run`` writes (besides stderr / journald) two logs to ``data_dir/logs/``:

* ``agent.log``: the agent's Python log at ``station.log_level``;
* ``ocpp-traffic.log``: every OCPP frame in and out, one a line, with the
  values of secret settings hidden (agent/link/traffic.py ``redact``; the
  Authorization header of the handshake is never a frame).

Each is rotated when it reaches ``station.log_file_max_bytes`` (``agent.log`` ->
``agent.log.1`` -> … -> ``agent.log.N``, N = ``station.log_files_kept``, the
oldest dropped): at most ``log_file_max_bytes × (1 + log_files_kept)`` bytes per
log. ``log_file_max_bytes = 0`` writes no files. The directory is 0700 and the
files 0600 (the traffic holds id tags). Only ``run`` opens them: tests and
``ocpp-agent fleet`` (hundreds of agents in one process) do not.

Every line starts with its UTC time, ``2026-01-01T12:00:00.123Z``, which is how
the diagnostics archive (agent/app/diagnostics.py) selects a time window.

CPython-only (logging.handlers).
"""

import logging
import logging.handlers
import os
import time

from agent.core.isotime import format_datetime, parse_datetime

LOGS_DIR = "logs"
AGENT_LOG = "agent.log"
TRAFFIC_LOG = "ocpp-traffic.log"
LINE_FORMAT = "%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"
_STAMP_LENGTH = len("2026-01-01T00:00:00.000Z")


def logs_dir(data_dir: str) -> str:
    return os.path.join(data_dir, LOGS_DIR)


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A RotatingFileHandler whose files (the first and each one after a rotation) are 0600,
    made (with their 0700 directory) at the first line: a run that stops on a bad
    configuration leaves data_dir as it was."""

    def _open(self):
        os.makedirs(os.path.dirname(self.baseFilename), mode=0o700, exist_ok=True)
        stream = super()._open()
        try:
            os.chmod(self.baseFilename, 0o600)
        except OSError:
            pass
        return stream


def rotating_handler(path: str, max_bytes: int, kept: int) -> PrivateRotatingFileHandler:
    """A handler writing to ``path`` (made 0600, its directory 0700, at the first line), rotated
    at ``max_bytes``."""
    return PrivateRotatingFileHandler(path, maxBytes=max_bytes, backupCount=kept, encoding="utf-8", delay=True)


def agent_log_formatter() -> logging.Formatter:
    formatter = logging.Formatter(LINE_FORMAT, DATE_FORMAT)
    formatter.converter = time.gmtime  # UTC: the time of the line, whatever the charger's time zone
    return formatter


def add_agent_log_file(config, logger: logging.Logger | None = None):
    """Send ``logger``'s records (default: the root logger's) to ``data_dir/logs/agent.log``
    too; returns the handler, or None when ``station.log_file_max_bytes`` is 0 or the file
    cannot be opened (the agent runs on, logging to stderr: told there)."""
    station = config.station
    if station.get("log_file_max_bytes", 0) <= 0:
        return None
    path = os.path.join(logs_dir(config.data_dir), AGENT_LOG)
    try:
        handler = rotating_handler(path, station["log_file_max_bytes"], station.get("log_files_kept", 0))
    except OSError as e:
        logging.getLogger(__name__).error("no log file %s: %s", path, e)
        return None
    handler.setFormatter(agent_log_formatter())
    (logger or logging.getLogger()).addHandler(handler)
    return handler


class TrafficFile:
    """The OCPP traffic written to a rotated file: ``record(direction, text)`` is a
    TrafficLog's ``forward`` (the text arrives redacted), chained to ``forward``."""

    def __init__(self, path: str, max_bytes: int, kept: int, clock=None, forward=None) -> None:
        self.path = path
        self.clock = clock  # .time() -> wall time; None: time.time
        self.forward = forward
        self._handler = rotating_handler(path, max_bytes, kept)
        self._handler.setFormatter(logging.Formatter("%(message)s"))

    def record(self, direction: str, text: str) -> None:
        now = self.clock.time() if self.clock is not None else time.time()
        line = "%s %-3s %s" % (format_datetime(now, millis=True), direction, text.replace("\n", " "))
        self._handler.handle(logging.makeLogRecord({"msg": line, "levelno": logging.INFO,
                                                    "levelname": "INFO", "args": None}))
        if self.forward is not None:
            self.forward(direction, text)

    def close(self) -> None:
        self._handler.close()


def open_traffic_file(config, clock=None, forward=None) -> TrafficFile | None:
    """The traffic file of ``config`` (None when ``station.log_file_max_bytes`` is 0 or it
    cannot be opened: logged, the agent runs on)."""
    station = config.station
    if station.get("log_file_max_bytes", 0) <= 0:
        return None
    path = os.path.join(logs_dir(config.data_dir), TRAFFIC_LOG)
    try:
        return TrafficFile(path, station["log_file_max_bytes"], station.get("log_files_kept", 0), clock, forward)
    except OSError as e:
        logging.getLogger(__name__).error("no traffic log file %s: %s", path, e)
        return None


def log_files(directory: str, name: str) -> list:
    """The paths of log ``name`` in ``directory``, oldest first (``name.N`` … ``name.1``, ``name``)."""
    try:
        entries = os.listdir(directory)
    except OSError:
        return []
    rotated = []
    for entry in entries:
        head, dot, number = entry.rpartition(".")
        if head == name and dot and number.isdigit():
            rotated.append((int(number), entry))
    out = [os.path.join(directory, entry) for _n, entry in sorted(rotated, reverse=True)]
    if name in entries:
        out.append(os.path.join(directory, name))
    return out


def line_time(line: str) -> float | None:
    """The UTC time a log line starts with; None for a line without one (a traceback's)."""
    if len(line) < 20 or line[4:5] != "-" or line[10:11] != "T":
        return None
    stamp = line[:_STAMP_LENGTH].split(" ", 1)[0]
    try:
        return parse_datetime(stamp if stamp.endswith("Z") else stamp + "Z")
    except ValueError:
        return None
