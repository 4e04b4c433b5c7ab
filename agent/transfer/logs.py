"""Log requests from the central system (GetLog; OCPP 1.6 security whitepaper N01,
2.0.1 N01), protocol-neutral: the adapters translate their messages to these words.

``request()`` answers at once: the selected entries are written to a file in
``work_dir`` and its name is returned; ``start()`` (called once the answer has
gone out, so that no status notification overtakes it) uploads it in a task,
``retries`` more times ``retry_interval_s`` apart when it fails, and reports
through the request's ``notify``: "uploading" before each attempt, then
"uploaded", or after each failed attempt its reason ("upload_failure",
"permission_denied", "not_supported", "bad_message"). A new request cancels the
one running (N01.FR.11/12): it is answered "accepted_canceled" and the old
request is told "canceled" before the new one starts. The file is removed when
its upload ends.

Log types are sources: ``"security"`` (the security log) is built in; another
(``"diagnostics"``: agent/app/diagnostics.py; without it answered "rejected",
reason "not_supported") is added with ``add_source``. A source gives either its
lines, written when the request is answered, or a ``write`` coroutine that makes
a larger file (an archive) in the upload's task, after the answer: a failure to
make it is told "upload_failure".

Requests are served on channels, one request at a time on each: GetLog's
(``"log"``, the default) and OCPP 1.6 GetDiagnostics' (``"diagnostics"``), so
that a GetDiagnostics neither cancels nor is canceled by a GetLog. A request made
with ``every_attempt=False`` (1.6 GetDiagnostics) is told "uploading" once and
only its final outcome, not each failed attempt.

Portable: plain files, the asyncio subset; the upload itself (agent/transfer/upload.py,
CPython) is injectable.
"""

import asyncio
import logging
import os

from agent.core.isotime import format_datetime

log = logging.getLogger(__name__)

# Answers to a request.
ACCEPTED = "accepted"
ACCEPTED_CANCELED = "accepted_canceled"
REJECTED = "rejected"
# Reasons of a rejection.
NOT_SUPPORTED = "not_supported"  # no such log on this station
NO_DATA = "no_data"  # nothing logged in the requested time window
WRITE_FAILED = "write_failed"  # the file could not be written (full disk)
# Upload states (LogStatusNotification).
IDLE = "idle"
UPLOADING = "uploading"
UPLOADED = "uploaded"
UPLOAD_FAILURE = "upload_failure"
CANCELED = "canceled"  # a newer request took its place

SECURITY = "security"
DIAGNOSTICS = "diagnostics"
# Channels: one request at a time on each.
LOG_CHANNEL = "log"  # GetLog (1.6 security whitepaper, 2.0.1)
DIAGNOSTICS_CHANNEL = "diagnostics"  # OCPP 1.6 GetDiagnostics
MAX_RETRIES = 10  # a request's retries are capped: every upload ends by itself
DEFAULT_RETRY_INTERVAL_S = 60  # when the request gives retries without an interval


class LogAnswer:
    """The answer to a request: ``status`` (accepted, accepted_canceled, rejected), the
    ``filename`` to be uploaded (None when rejected) and why a request was rejected."""

    __slots__ = ("status", "filename", "reason")

    def __init__(self, status: str, filename: str | None = None, reason: str = "") -> None:
        self.status, self.filename, self.reason = status, filename, reason

    def __repr__(self) -> str:
        return "LogAnswer(%r, %r, %r)" % (self.status, self.filename, self.reason)


class _Job:
    __slots__ = ("request_id", "location", "filename", "path", "retries", "retry_interval_s", "notify",
                 "replaced", "task", "build", "every_attempt")

    def __init__(self, request_id, location, filename, path, retries, retry_interval_s, notify) -> None:
        self.request_id, self.location, self.filename, self.path = request_id, location, filename, path
        self.retries, self.retry_interval_s, self.notify = retries, retry_interval_s, notify
        self.replaced = None  # the job this one canceled: told "canceled" first
        self.task = None
        self.build = None  # async (path) making the file in the task; None: written when answered
        self.every_attempt = True  # False: "uploading" once, and only the final outcome


class _Source:
    __slots__ = ("file_tag", "lines", "write", "extension")

    def __init__(self, file_tag: str, lines, write, extension: str) -> None:
        self.file_tag, self.lines, self.write, self.extension = file_tag, lines, write, extension


class LogService:
    """Serves log requests: one upload at a time, the newest request wins."""

    def __init__(self, security_log, clock, work_dir: str, *, station_id: str = "station", upload=None) -> None:
        self.security_log = security_log
        self.clock = clock
        self.work_dir = work_dir
        self.station_id = "".join(c if c.isalnum() or c in "._-" else "_" for c in station_id) or "station"
        self._upload = upload  # async (local_path, location, filename); default agent.transfer.upload
        self._sources = {SECURITY: _Source("securitylog", self._security_lines, None, "log")}
        self._jobs: dict = {}  # channel -> the request being served on it (pending or uploading)
        self._tasks: list = []  # every upload task started (one may still tell its last status)
        self._count = 0

    def add_source(self, log_type: str, file_tag: str, lines=None, *, write=None, extension: str = "log") -> None:
        """Serve ``log_type`` from ``lines(start, stop, names)`` -> list of text lines
        (``names``: a callable giving an entry's name in the central system's words, or None),
        or with ``write(path, start, stop)``: a coroutine that makes the file (raising
        ``OSError`` or any error when it cannot), run in the upload's task. The file is named
        ``<station>-<file_tag>-<time>.<extension>``."""
        if (lines is None) == (write is None):
            raise ValueError("a log source gives either lines or write")
        self._sources[log_type] = _Source(file_tag, lines, write, extension)

    # ---------------------------------------------------------------- requests
    def request(self, log_type: str, remote_location: str, request_id: int, start: float | None = None,
                stop: float | None = None, retries: int | None = 0, retry_interval_s: float | None = None,
                notify=None, names=None, *, channel: str = LOG_CHANNEL, every_attempt: bool = True) -> LogAnswer:
        """Answer a log request and prepare its file; ``start(request_id)`` uploads it.
        ``notify``: async callable(status word, request id); ``names``: see ``add_source``;
        ``channel`` and ``every_attempt``: see the module's text."""
        source = self._sources.get(log_type)
        if source is None:
            return LogAnswer(REJECTED, reason=NOT_SUPPORTED)
        lines = None
        if source.lines is not None:
            lines = source.lines(start, stop, names)
            if not lines:
                return LogAnswer(REJECTED, reason=NO_DATA)
        filename = "%s-%s-%s.%s" % (self.station_id, source.file_tag, _compact_time(self.clock.time()),
                                    source.extension)
        self._count += 1
        path = "%s/%d-%s" % (self.work_dir, self._count, filename)  # unique: a canceled file may linger
        try:
            if lines is not None:
                _write_lines(self.work_dir, path, lines)
            else:
                _make_directories(self.work_dir)
        except OSError as e:
            log.error("cannot write %s for log request %s: %s", path, request_id, e)
            return LogAnswer(REJECTED, reason=WRITE_FAILED)
        retries = max(0, min(retries or 0, MAX_RETRIES))
        interval_s = DEFAULT_RETRY_INTERVAL_S if retry_interval_s is None else max(0, retry_interval_s)
        job = _Job(request_id, remote_location, filename, path, retries, interval_s, notify)
        job.every_attempt = every_attempt
        if source.write is not None:
            write = source.write
            job.build = lambda p: write(p, start, stop)
        replaced = self._cancel_current(channel)
        job.replaced = replaced
        self._jobs[channel] = job
        return LogAnswer(ACCEPTED_CANCELED if replaced is not None else ACCEPTED, filename)

    def start(self, request_id: int, channel: str = LOG_CHANNEL) -> bool:
        """Start uploading the request ``request_id`` answered last (False: no such request waits)."""
        job = self._jobs.get(channel)
        if job is None or job.request_id != request_id or job.task is not None:
            return False
        job.task = asyncio.create_task(self._run(job, channel))
        self._tasks = [t for t in self._tasks if not t.done()] + [job.task]
        return True

    def status(self, channel: str = LOG_CHANNEL) -> tuple:
        """("uploading", request id) while a request is served, else ("idle", None)."""
        job = self._jobs.get(channel)
        return (UPLOADING, job.request_id) if job is not None else (IDLE, None)

    async def close(self) -> None:
        """Cancel the uploads under way (if any), also one still telling its last status (it
        left ``_jobs`` already), and wait until they stopped."""
        for channel in list(self._jobs):
            self._cancel_current(channel)
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ---------------------------------------------------------------- the upload
    def _cancel_current(self, channel: str):
        job = self._jobs.pop(channel, None)
        if job is None:
            return None
        if job.task is not None:
            job.task.cancel()
        else:
            _remove(job.path)  # never started: nothing else will remove it
        log.info("log request %s canceled", job.request_id)
        return job

    async def _run(self, job: _Job, channel: str) -> None:
        try:
            if job.replaced is not None:
                await _tell(job.replaced, CANCELED)
                job.replaced = None
            for attempt in range(job.retries + 1):
                if attempt:
                    await self.clock.sleep(job.retry_interval_s)
                if job.every_attempt or not attempt:
                    await _tell(job, UPLOADING)
                if job.build is not None:
                    if not await self._build(job):
                        self._release(job, channel)
                        await _tell(job, UPLOAD_FAILURE)
                        return
                    job.build = None
                word, final = await self._attempt(job)
                last = final or attempt == job.retries
                if last:
                    self._release(job, channel)  # idle before the outcome is told: a trigger then hears Idle
                if job.every_attempt or last:
                    await _tell(job, word)
                if final:
                    return
        finally:
            _remove(job.path)
            self._release(job, channel)

    def _release(self, job: _Job, channel: str) -> None:
        if self._jobs.get(channel) is job:
            del self._jobs[channel]

    async def _build(self, job: _Job) -> bool:
        """Make the file of a ``write`` source; False (logged) when it cannot be made."""
        try:
            await job.build(job.path)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a full disk, or a bug: the CSMS hears a failure, the agent runs on
            log.error("log request %s: %s not made: %r", job.request_id, job.filename, e)
            return False
        return True

    async def _attempt(self, job: _Job) -> tuple:
        """One upload: ("uploaded", True) or (why it failed, whether a retry cannot help)."""
        upload = self._upload
        if upload is None:
            from agent.transfer.upload import upload_file as upload
        try:
            await upload(job.path, job.location, job.filename)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # UploadError (status, retryable) or a bug: the CSMS hears a failure
            word = getattr(e, "status", UPLOAD_FAILURE)
            log.warning("log request %s: upload failed (%s): %s", job.request_id, word, e)
            return word, not getattr(e, "retryable", True)
        return UPLOADED, True

    # ---------------------------------------------------------------- sources
    def _security_lines(self, start, stop, names) -> list:
        events = self.security_log.events(start=start, stop=stop)
        if not events:
            return []
        name = names or (lambda kind: kind)
        head = "# security log of %s, %d event(s), written %s" % (
            self.station_id, len(events), format_datetime(self.clock.time()))
        return [head] + [format_event(e, name) for e in events]


def format_event(event, name) -> str:
    """One security event as a line: time, number, name (and tech info)."""
    line = "%s  #%d  %s" % (format_datetime(event.at), event.seq, name(event.kind))
    return line + ("  " + event.tech_info if event.tech_info else "")


async def _tell(job: _Job, word: str) -> None:
    if job.notify is None:
        return
    try:
        await job.notify(word, job.request_id)
    except asyncio.CancelledError:
        raise
    except Exception as e:  # a notification lost must not stop the upload
        log.warning("log request %s: %s not reported: %r", job.request_id, word, e)


def _compact_time(t: float) -> str:
    """20260101T000000Z: a UTC time fit for a file name."""
    return format_datetime(t).replace("-", "").replace(":", "")


def _write_lines(directory: str, path: str, lines: list) -> None:
    _make_directories(directory)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def _make_directories(path: str) -> None:
    try:
        os.stat(path)
        return
    except OSError:
        pass
    parent = path.rstrip("/").rpartition("/")[0]
    if parent:
        _make_directories(parent)
    try:
        os.mkdir(path)
    except OSError:
        os.stat(path)  # made by someone else meanwhile, else raises


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass
