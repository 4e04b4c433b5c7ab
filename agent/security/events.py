"""The persistent security event log (OCPP 1.6 security whitepaper §8, 2.0.1 Appendix 1).

Every security event is stored here; the critical ones are also pushed to the
central system. Kinds are neutral lowercase words; each OCPP adapter maps them
to its version's names and says which are critical (``security_words.py``).

The log is JSON lines in ``directory/security.log``, one event a line, appended,
flushed and fsynced (events are rare, and they are owed to the central system
like transaction messages). Past ``max_bytes`` the file is rotated
(``security.log`` -> ``.1`` -> ``.2`` …, ``keep_files`` old files kept), so an SD
card never fills up with it. ``seq`` keeps rising across rotations, clears and
restarts: the highest number given out is also kept in ``security.state.json``
with the delivery cursor (what the central system has acknowledged).

A write that fails is logged (once per streak of failures) and the event still
goes to the listeners: a full disk must not stop the charger. A line cut short
by a power loss is skipped with a warning.

Portable (MicroPython): plain files, no ``os.path``; file modes where the OS
has them.
"""

import json
import logging
import os

from hal.runtime.storage import read_json, sync_directory, write_json_atomic

log = logging.getLogger(__name__)

# ------------------------------------------------------------------ neutral kinds
STARTUP = "startup"
RESET = "reset"  # rebooted or reset
FAILED_TO_AUTHENTICATE_AT_CSMS = "failed_to_authenticate_at_csms"  # the CSMS refused us (HTTP 401)
CSMS_FAILED_TO_AUTHENTICATE = "csms_failed_to_authenticate"  # we refused the CSMS
SETTING_SYSTEM_TIME = "setting_system_time"
SECURITY_LOG_CLEARED = "security_log_cleared"
RECONFIGURATION_OF_SECURITY_PARAMETERS = "reconfiguration_of_security_parameters"
MEMORY_EXHAUSTION = "memory_exhaustion"
INVALID_MESSAGES = "invalid_messages"
ATTEMPTED_REPLAY_ATTACKS = "attempted_replay_attacks"
TAMPER_DETECTION_ACTIVATED = "tamper_detection_activated"
FIRMWARE_UPDATED = "firmware_updated"
INVALID_FIRMWARE_SIGNATURE = "invalid_firmware_signature"
INVALID_FIRMWARE_SIGNING_CERTIFICATE = "invalid_firmware_signing_certificate"
INVALID_CSMS_CERTIFICATE = "invalid_csms_certificate"
INVALID_CHARGING_STATION_CERTIFICATE = "invalid_charging_station_certificate"
INVALID_TLS_VERSION = "invalid_tls_version"
INVALID_TLS_CIPHER_SUITE = "invalid_tls_cipher_suite"
MAINTENANCE_LOGIN_ACCEPTED = "maintenance_login_accepted"
MAINTENANCE_LOGIN_FAILED = "maintenance_login_failed"

KINDS = (
    STARTUP, RESET, FAILED_TO_AUTHENTICATE_AT_CSMS, CSMS_FAILED_TO_AUTHENTICATE, SETTING_SYSTEM_TIME,
    SECURITY_LOG_CLEARED, RECONFIGURATION_OF_SECURITY_PARAMETERS, MEMORY_EXHAUSTION, INVALID_MESSAGES,
    ATTEMPTED_REPLAY_ATTACKS, TAMPER_DETECTION_ACTIVATED, FIRMWARE_UPDATED, INVALID_FIRMWARE_SIGNATURE,
    INVALID_FIRMWARE_SIGNING_CERTIFICATE, INVALID_CSMS_CERTIFICATE, INVALID_CHARGING_STATION_CERTIFICATE,
    INVALID_TLS_VERSION, INVALID_TLS_CIPHER_SUITE, MAINTENANCE_LOGIN_ACCEPTED, MAINTENANCE_LOGIN_FAILED,
)

LOG_FILE = "security.log"
STATE_FILE = "security.state.json"
TECH_INFO_MAX_CHARS = 255  # SecurityEventNotification techInfo is string[0..255]

_FDS = hasattr(os, "open") and hasattr(os, "fsync")  # CPython; not MicroPython


class SecurityEvent:
    """One logged event: ``seq`` (rising, never reused), ``kind`` (neutral word),
    ``at`` (epoch seconds) and ``tech_info``."""

    def __init__(self, seq: int, kind: str, at: float, tech_info: str = "") -> None:
        self.seq = seq
        self.kind = kind
        self.at = at
        self.tech_info = tech_info

    def to_dict(self) -> dict:
        return {"seq": self.seq, "at": self.at, "kind": self.kind, "tech_info": self.tech_info}

    @classmethod
    def from_dict(cls, d: dict) -> "SecurityEvent":
        seq, kind, at = d["seq"], d["kind"], d["at"]
        if not isinstance(seq, int) or not isinstance(kind, str) or not isinstance(at, (int, float)):
            raise ValueError("bad event %r" % (d,))
        return cls(seq, kind, at, str(d.get("tech_info", "")))

    def __eq__(self, other) -> bool:
        return isinstance(other, SecurityEvent) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return "SecurityEvent(%d, %r, %r, %r)" % (self.seq, self.kind, self.at, self.tech_info)


class SecurityLog:
    """The station's security events on disk, with the central system's delivery cursor.

    The constructor does no I/O: the files are read when first needed.
    """

    def __init__(self, directory: str, clock, max_bytes: int = 256 * 1024, keep_files: int = 4) -> None:
        if max_bytes <= 0 or keep_files < 0:
            raise ValueError("max_bytes must be > 0 and keep_files >= 0")
        self.directory = directory
        self.clock = clock
        self.max_bytes = max_bytes
        self.keep_files = keep_files
        self.listeners: list = []  # callables(event), called after each record()
        self.path = directory + "/" + LOG_FILE
        self.state_path = directory + "/" + STATE_FILE
        self._loaded = False
        self._last_seq = 0
        self._delivered_seq = 0
        self._size = -1  # bytes of security.log as we left it (0: none; -1: unknown)
        self._needs_newline = False  # the file ends in a line cut short
        self._write_failing = False
        self._warned: set = set()  # (file, line) of corrupt lines already reported

    # ------------------------------------------------------------------ writing
    def record(self, kind: str, tech_info: str = "", at: float | None = None) -> SecurityEvent:
        """Log an event of ``kind`` (at ``at``, default now) and tell the listeners.
        Never raises for a failed write: it is logged and the event still goes out."""
        if not isinstance(kind, str) or not kind:
            raise ValueError("an event kind is a non-empty string, not %r" % (kind,))
        self._refresh()
        self._last_seq += 1
        event = SecurityEvent(self._last_seq, kind, self.clock.time() if at is None else at,
                              ("" if tech_info is None else str(tech_info))[:TECH_INFO_MAX_CHARS])
        self._write(event)
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception as e:  # one listener's bug must not stop the others, nor the caller
                log.error("security event listener %r failed: %r", listener, e)
        return event

    def _write(self, event: SecurityEvent) -> None:
        line = (json.dumps(event.to_dict()) + "\n").encode()
        try:
            self._make_directory()
            if self._size > 0 and self._size + len(line) > self.max_bytes:
                self._rotate()
            if self._needs_newline:
                line = b"\n" + line  # end the line a power cut left unfinished
            created = self._size <= 0
            _append(self.path, line)
            self._size = max(self._size, 0) + len(line)
            self._needs_newline = False
            if created:
                sync_directory(self.directory)
        except OSError as e:
            self._size = -1  # stat again next time
            if not self._write_failing:
                log.error("cannot write the security log %s (event #%d %s kept in memory only): %s",
                          self.path, event.seq, event.kind, e)
            self._write_failing = True
            return
        if self._write_failing:
            log.warning("security log %s is written again", self.path)
            self._write_failing = False

    def _rotate(self) -> None:
        """security.log -> .1 -> .2 …; what would pass .keep_files is removed."""
        numbered = sorted(self._numbered_files(), reverse=True)
        for n in numbered:
            if n >= self.keep_files:
                os.remove(self._numbered_path(n))
            else:
                os.rename(self._numbered_path(n), self._numbered_path(n + 1))
        if self.keep_files > 0:
            os.rename(self.path, self._numbered_path(1))
        else:
            os.remove(self.path)
        self._size = 0
        self._needs_newline = False  # a fresh file
        self._save_state()  # the highest seq must survive even if every file holding it goes

    def clear(self) -> SecurityEvent:
        """Remove every log file, then record ``security_log_cleared`` (the first line of
        the new log). Numbers and the delivery cursor carry on: nothing is sent twice."""
        self._refresh()
        removed = 0
        for name in self._file_names():
            try:
                os.remove(self.directory + "/" + name)
                removed += 1
            except OSError as e:
                log.error("cannot remove %s/%s: %s", self.directory, name, e)
        self._size = 0
        self._needs_newline = False
        try:
            self._save_state()
        except OSError as e:
            log.error("cannot write %s: %s", self.state_path, e)
        return self.record(SECURITY_LOG_CLEARED, "%d file(s) removed" % removed)

    # ------------------------------------------------------------------ reading
    def events(self, since_seq: int = 0, start: float | None = None, stop: float | None = None) -> list:
        """The stored events with ``seq > since_seq`` and ``start <= at <= stop``
        (epoch seconds, either bound optional), oldest first, across the rotated files."""
        newest_first = []
        for path in self._paths_newest_first():
            chunk = self._read(path)
            newest_first.append(chunk)
            if since_seq and chunk and chunk[0].seq <= since_seq:
                break  # older files hold only older events
        out = []
        for chunk in reversed(newest_first):
            for e in chunk:
                if e.seq > since_seq and (start is None or e.at >= start) and (stop is None or e.at <= stop):
                    out.append(e)
        return out

    def undelivered(self, is_critical) -> list:
        """The events after the delivery cursor for which ``is_critical(kind)`` is true."""
        self._refresh()
        return [e for e in self.events(since_seq=self._delivered_seq) if is_critical(e.kind)]

    def delivered(self, seq: int) -> None:
        """The central system has every critical event up to ``seq``: persist the cursor."""
        self._refresh()
        if seq <= self._delivered_seq:
            return
        self._delivered_seq = seq
        try:
            self._save_state()
        except OSError as e:  # the events would be sent once more after a restart: acceptable
            log.error("cannot write %s: %s", self.state_path, e)

    @property
    def last_seq(self) -> int:
        """The number of the latest event (0 before the first)."""
        self._refresh()
        return self._last_seq

    @property
    def delivered_seq(self) -> int:
        self._refresh()
        return self._delivered_seq

    # ------------------------------------------------------------------ files
    def _refresh(self) -> None:
        """Read the highest seq and the cursor on first use, and again when security.log
        changed behind our back (``ocpp-agent log security --clear`` while we run)."""
        current = max(_size_of(self.path), 0)
        if self._loaded and self._size == current:
            return
        try:
            state = read_json(self.state_path, {})
        except OSError as e:  # unreadable: the files still give the highest seq
            log.error("cannot read %s: %s", self.state_path, e)
            state = {}
        if not isinstance(state, dict):
            state = {}
        last = _int(state.get("last_seq"))
        for path in self._paths_newest_first():
            events = self._read(path)
            if events:
                last = max(last, events[-1].seq)
                break
        self._last_seq = max(self._last_seq, last)
        self._delivered_seq = max(self._delivered_seq if self._loaded else 0, _int(state.get("delivered_seq")))
        self._size = current
        self._needs_newline = current > 0 and not _ends_with_newline(self.path)
        self._loaded = True

    def _save_state(self) -> None:
        self._make_directory()
        write_json_atomic(self.state_path, {"last_seq": self._last_seq, "delivered_seq": self._delivered_seq})

    def _read(self, path: str) -> list:
        """The events of one file; corrupt lines skipped (and reported once)."""
        out = []
        try:
            f = open(path, "rb")
        except OSError:
            return out
        try:
            number = 0
            for raw in f:
                number += 1
                text = raw.strip()
                if not text:
                    continue
                try:
                    out.append(SecurityEvent.from_dict(json.loads(text)))
                except (ValueError, KeyError, TypeError) as e:
                    if (path, number) not in self._warned:
                        self._warned.add((path, number))
                        log.warning("%s line %d is corrupt, skipped: %r", path, number, e)
        finally:
            f.close()
        return out

    def _make_directory(self) -> None:
        _make_directories(self.directory)
        if _FDS and os.stat(self.directory)[0] & 0o777 != 0o700:
            os.chmod(self.directory, 0o700)

    def _file_names(self) -> list:
        try:
            names = os.listdir(self.directory)
        except OSError:
            return []
        return [n for n in names if n == LOG_FILE or _rotation_number(n) > 0]

    def _numbered_files(self) -> list:
        return [_rotation_number(n) for n in self._file_names() if n != LOG_FILE]

    def _numbered_path(self, n: int) -> str:
        return "%s.%d" % (self.path, n)

    def _paths_newest_first(self) -> list:
        return [self.path] + [self._numbered_path(n) for n in sorted(self._numbered_files())]


def _rotation_number(name: str) -> int:
    """n for ``security.log.n``, else 0."""
    prefix = LOG_FILE + "."
    if name.startswith(prefix) and name[len(prefix):].isdigit():
        return int(name[len(prefix):])
    return 0


def _make_directories(path: str) -> None:
    """``os.makedirs(path, 0o700, exist_ok=True)``, which MicroPython lacks."""
    if not path or _size_of(path) >= 0:
        return
    parent = path.rstrip("/").rpartition("/")[0]
    if parent:
        _make_directories(parent)
    try:
        if _FDS:
            os.mkdir(path, 0o700)
        else:
            os.mkdir(path)
    except OSError:
        if _size_of(path) < 0:  # not made by someone else meanwhile
            raise


def _int(value) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def _size_of(path: str) -> int:
    """Size in bytes of ``path``; -1 when it does not exist."""
    try:
        return os.stat(path)[6]
    except OSError:
        return -1


def _ends_with_newline(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            f.seek(-1, 2)
            return f.read(1) == b"\n"
    except OSError:
        return True


def _append(path: str, data: bytes) -> None:
    """Append ``data`` to ``path`` (mode 0600) and wait until it is on the disk."""
    if not _FDS:
        with open(path, "ab") as f:
            f.write(data)
            f.flush()
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
