"""Upload one local file to a location a central system names (GetLog's
``remoteLocation``): ``http://``, ``https://`` or ``ftp://``.

HTTP(S): the file is PUT to the URL (the file name appended when the URL ends
with ``/``). A server that answers the PUT 405 (Method Not Allowed) or 501 gets
it again as a POST of ``multipart/form-data`` (one field ``file``, with the file
name) to the URL as given: the two ways upload servers commonly take files. Any
2xx is success. ``https`` verifies the server against the system's CAs (or
``ssl_context``); user info in the URL is sent as Basic authentication.

FTP: ``ftp://user:password@host:port/path`` (user, password and port optional;
anonymous without a user), passive mode, binary STOR. A path ending with ``/``
is a directory: the file name is appended. The path is relative to the login
directory (RFC 1738). FTPS is not supported yet: an ``ftps://`` location is
refused like any unknown scheme.

Every network operation has a timeout (``timeout_s``). Credentials are never
logged: log and error messages carry ``safe_url(location)``.

The standard library's blocking clients (urllib, ftplib) run in a worker thread
(``asyncio.to_thread``): they are complete, maintained with Python and need no
dependency; the upload is one file now and then, a thread costs nothing worth
saving. A cancelled upload stops waiting at once; its thread ends by itself
within ``timeout_s``.

CPython-only (threads, ssl, urllib, ftplib).
"""

import asyncio
import base64
import ftplib
import http.client
import logging
import os
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
import uuid

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 60.0
SCHEMES = ("http", "https", "ftp")
FALLBACK_TO_POST = (405, 501)  # the server takes no PUT: POST a form instead
PERMISSION_HTTP = (401, 403, 407)
PERMISSION_FTP = ("530", "532", "550", "553")  # not logged in, no account, not allowed, name not allowed
NOT_SUPPORTED_FTP = ("500", "502", "504")  # command not understood / not implemented


class UploadError(Exception):
    """An upload that failed; ``status`` is the neutral word for why (a GetLog
    LogStatusNotification): this base is a plain failure, worth retrying."""

    status = "upload_failure"
    retryable = True


class UploadPermissionError(UploadError, PermissionError):
    """The server refused our credentials or the path."""

    status = "permission_denied"


class UploadNotSupportedError(UploadError):
    """The server does not take files this way."""

    status = "not_supported"


class UnsupportedLocationError(UploadNotSupportedError, ValueError):
    """A scheme this station cannot upload to."""

    retryable = False


class BadLocationError(UploadError, ValueError):
    """A location that is not a usable URL, or a server answer that breaks its protocol."""

    status = "bad_message"
    retryable = False


def safe_url(location: str) -> str:
    """``location`` without user and password, for logs."""
    try:
        parts = urllib.parse.urlsplit(location)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparsable location>"
    netloc = ("[%s]" % host if ":" in host else host) + (":%d" % port if port else "")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def remote_name(path: str, filename: str) -> str:
    """The remote path: a directory (ending with ``/``) gets ``filename`` appended."""
    return path + filename if path.endswith("/") else path


async def upload_file(local_path: str, location: str, filename: str | None = None, *,
                      timeout_s: float = DEFAULT_TIMEOUT_S, ssl_context: ssl.SSLContext | None = None) -> None:
    """Upload ``local_path`` to ``location`` as ``filename`` (default: the local file's
    name); raises an ``UploadError`` when it does not arrive."""
    filename = filename or os.path.basename(local_path)
    try:
        parts = urllib.parse.urlsplit(location)
        parts.port  # a bad port raises here
    except ValueError as e:
        raise BadLocationError("%s is not a URL: %s" % (safe_url(location), e)) from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise UnsupportedLocationError("cannot upload to %r: supported schemes are %s"
                                       % (safe_url(location), ", ".join(SCHEMES)))
    if not parts.hostname:
        raise BadLocationError("%s names no host" % safe_url(location))
    send = _ftp_upload if scheme == "ftp" else _http_upload
    log.info("uploading %s to %s", filename, safe_url(location))
    await asyncio.to_thread(send, local_path, parts, filename, timeout_s, ssl_context)
    log.info("uploaded %s to %s", filename, safe_url(location))


# ---------------------------------------------------------------- HTTP(S)
def _http_upload(local_path: str, parts, filename: str, timeout_s: float, ssl_context) -> None:
    url = url_without_user(parts)
    headers = basic_auth(parts)
    context = ssl_context if ssl_context is not None else (
        ssl.create_default_context() if parts.scheme.lower() == "https" else None)
    put_url = urllib.parse.urlunsplit(parts._replace(netloc=_netloc(parts),
                                                     path=remote_name(parts.path or "/", filename)))
    size = os.path.getsize(local_path)
    with open(local_path, "rb") as f:
        status = _http_send(urllib.request.Request(
            put_url, data=f, method="PUT", headers=dict(headers, **{
                "Content-Type": "application/octet-stream", "Content-Length": str(size)})), timeout_s, context, url)
    if status not in FALLBACK_TO_POST:
        return _check_http(status, url)
    log.info("%s takes no PUT (%d): posting a form", url, status)
    boundary = uuid.uuid4().hex
    with open(local_path, "rb") as f:
        body = (("--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"%s\"\r\n"
                 "Content-Type: application/octet-stream\r\n\r\n" % (boundary, filename.replace('"', "_"))).encode()
                + f.read() + ("\r\n--%s--\r\n" % boundary).encode())
    status = _http_send(urllib.request.Request(url, data=body, method="POST", headers=dict(headers, **{
        "Content-Type": "multipart/form-data; boundary=%s" % boundary})), timeout_s, context, url)
    if status in FALLBACK_TO_POST:
        raise UploadNotSupportedError("%s takes neither PUT nor POST (%d)" % (url, status))
    _check_http(status, url)


def _http_send(request, timeout_s: float, context, url: str) -> int:
    """The response status of ``request`` (an error status too)."""
    try:
        with urllib.request.urlopen(request, timeout=timeout_s, context=context) as response:
            return response.status
    except urllib.error.HTTPError as e:
        e.close()
        return e.code
    except urllib.error.URLError as e:
        raise UploadError("%s: %s" % (url, e.reason)) from None
    except (http.client.HTTPException, ValueError) as e:
        raise BadLocationError("%s: %r" % (url, e)) from None
    except (OSError, socket.timeout) as e:
        raise UploadError("%s: %s" % (url, e)) from None


def _check_http(status: int, url: str) -> None:
    if 200 <= status < 300:
        return
    if status in PERMISSION_HTTP:
        raise UploadPermissionError("%s refused the upload (%d)" % (url, status))
    raise UploadError("%s answered %d" % (url, status))


def _netloc(parts) -> str:
    host = parts.hostname
    host = "[%s]" % host if ":" in host else host
    return host + (":%d" % parts.port if parts.port else "")


def url_without_user(parts) -> str:
    """A split URL put together again without its user and password."""
    return urllib.parse.urlunsplit(parts._replace(netloc=_netloc(parts)))


def basic_auth(parts) -> dict:
    """The Authorization header for a split URL's user info ({} without one)."""
    if parts.username is None:
        return {}
    secret = "%s:%s" % (urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or ""))
    return {"Authorization": "Basic " + base64.b64encode(secret.encode()).decode()}


# ---------------------------------------------------------------- FTP
def _ftp_upload(local_path: str, parts, filename: str, timeout_s: float, _ssl_context) -> None:
    url = url_without_user(parts)
    user = urllib.parse.unquote(parts.username) if parts.username is not None else "anonymous"
    password = urllib.parse.unquote(parts.password or "") if parts.username is not None else "anonymous@"
    target = urllib.parse.unquote(remote_name(parts.path or "/", filename)).lstrip("/")
    ftp = ftplib.FTP(timeout=timeout_s)
    try:
        ftp.connect(parts.hostname, parts.port or 21)
        ftp.login(user, password)
        ftp.set_pasv(True)  # passive: works through NAT and firewalls on the charger's side
        with open(local_path, "rb") as f:
            ftp.storbinary("STOR " + target, f)
        try:
            ftp.quit()
        except (ftplib.Error, OSError):
            pass  # stored: a goodbye lost on the way changes nothing
    except ftplib.error_perm as e:
        code = str(e)[:3]
        if code in PERMISSION_FTP:
            raise UploadPermissionError("%s refused the upload: %s" % (url, e)) from None
        if code in NOT_SUPPORTED_FTP:
            raise UploadNotSupportedError("%s: %s" % (url, e)) from None
        raise UploadError("%s: %s" % (url, e)) from None
    except (ftplib.error_reply, ftplib.error_proto) as e:
        raise BadLocationError("%s broke the FTP protocol: %s" % (url, e)) from None
    except (ftplib.Error, OSError, EOFError) as e:
        raise UploadError("%s: %s" % (url, e)) from None
    finally:
        ftp.close()
