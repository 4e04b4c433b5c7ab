"""Downloading one file from the location a central system gives: HTTP(S) GET and FTP
(``ftp://user:pass@host/path``, passive mode) and a local file (its absolute path), resuming a broken download where it
stopped (an HTTP Range request, FTP REST) from the partial file ``<dest>.part``.

Credentials in the location are used, never logged (agent/transfer/upload.py
``safe_url``). HTTPS checks the server's certificate against the system's CAs.

CPython-only: urllib and ftplib, run in a worker thread.
"""

import asyncio
import ftplib
import logging
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request

from agent.transfer.upload import basic_auth, safe_url, url_without_user

log = logging.getLogger(__name__)

TIMEOUT_S = 60.0
CHUNK_BYTES = 64 * 1024


class DownloadError(Exception):
    """A download that did not complete; ``permanent`` when retrying cannot help (a bad or
    unsupported location, a refused login, a missing file)."""

    def __init__(self, reason: str, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


async def download(location: str, dest: str, timeout_s: float = TIMEOUT_S) -> int:
    """Fetch ``location`` into ``dest`` (atomically renamed from ``dest + '.part'``, which a
    later call resumes); the file's size in bytes. DownloadError when it fails."""
    return await asyncio.to_thread(fetch, location, dest, timeout_s)


def fetch(location: str, dest: str, timeout_s: float = TIMEOUT_S) -> int:
    """``download`` without the thread."""
    parts = urllib.parse.urlsplit(location)
    part = dest + ".part"
    if parts.scheme in ("http", "https"):
        _http(location, part, timeout_s)
    elif parts.scheme == "ftp":
        _ftp(parts, part, timeout_s)
    elif parts.scheme in ("", "file") and os.path.isabs(urllib.parse.unquote(parts.path)):
        shutil.copyfile(urllib.parse.unquote(parts.path), part)  # a local file (ocpp-agent update FILE)
    else:
        raise DownloadError("unsupported location scheme %r (http, https, ftp)" % parts.scheme, permanent=True)
    os.replace(part, dest)
    size = os.path.getsize(dest)
    log.info("downloaded %s (%d bytes)", safe_url(location), size)
    return size


def _have(part: str) -> int:
    try:
        return os.path.getsize(part)
    except OSError:
        return 0


def _http(location: str, part: str, timeout_s: float) -> None:
    parts = urllib.parse.urlsplit(location)
    request = urllib.request.Request(url_without_user(parts), headers=basic_auth(parts))
    have = _have(part)
    if have:
        request.add_header("Range", "bytes=%d-" % have)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            resumed = have and response.status == 206
            if have and not resumed:
                log.info("%s: the server sends the whole file again", safe_url(location))
            expected = int(response.headers.get("Content-Length") or -1)
            got = 0
            with open(part, "ab" if resumed else "wb") as f:
                while chunk := response.read(CHUNK_BYTES):
                    f.write(chunk)
                    got += len(chunk)
            if 0 <= got < expected:  # the connection ended early: what arrived is kept for a resume
                raise DownloadError("%s: broken off after %d of %d bytes" % (safe_url(location), got, expected))
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # nothing left to send: the partial file is complete
            return
        raise DownloadError("HTTP %d from %s" % (e.code, safe_url(location)),
                            permanent=e.code in (401, 403, 404, 410)) from None
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        reason = getattr(e, "reason", None) or e
        raise DownloadError("%s: %s" % (safe_url(location), reason)) from None


def _ftp(parts, part: str, timeout_s: float) -> None:
    have = _have(part)
    ftp = ftplib.FTP(timeout=timeout_s)
    try:
        ftp.connect(parts.hostname, parts.port or 21)
        ftp.login(urllib.parse.unquote(parts.username or "anonymous"), urllib.parse.unquote(parts.password or ""))
        ftp.set_pasv(True)
        with open(part, "ab" if have else "wb") as f:
            ftp.retrbinary("RETR " + urllib.parse.unquote(parts.path.lstrip("/")), f.write, blocksize=CHUNK_BYTES,
                           rest=have or None)
        ftp.quit()
    except ftplib.error_perm as e:
        raise DownloadError("FTP %s" % str(e)[:80], permanent=str(e)[:3] in ("530", "550", "553")) from None
    except (ftplib.Error, OSError, EOFError) as e:
        raise DownloadError("FTP %s: %s" % (parts.hostname, e)) from None
    finally:
        ftp.close()
