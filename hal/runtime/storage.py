"""Small durable-file helpers: atomic JSON writes that survive a power cut.

Portable: MicroPython's ``os`` has no file descriptors (no ``open``, ``fsync``,
``replace``) and its filesystems no file modes; there a write is a temp file,
closed, then renamed over the old one (a littlefs rename is atomic).
"""

import json
import logging
import os

log = logging.getLogger(__name__)

_FDS = hasattr(os, "open") and hasattr(os, "fsync")  # CPython; not MicroPython
_replace = getattr(os, "replace", None) or os.rename  # MicroPython's rename replaces the target
try:
    _FILE_NOT_FOUND = FileNotFoundError
except NameError:  # MicroPython raises a bare OSError
    _FILE_NOT_FOUND = None


def write_json_atomic(path: str, data, mode: int = 0o600, durable: bool = True) -> None:
    """Write ``data`` as JSON so that ``path`` holds either the old or the new
    content after a crash: temp file, fsync, rename, fsync of the directory
    (``durable=False``: no fsyncs, atomic against the process dying, not the OS)."""
    if _FDS:
        text = json.dumps(data, separators=(",", ":"), sort_keys=True)
    else:
        text = json.dumps(data, separators=(",", ":"))  # MicroPython's json cannot sort keys
    write_bytes_atomic(path, text.encode(), mode, durable)


def write_bytes_atomic(path: str, data: bytes, mode: int = 0o600, durable: bool = True) -> None:
    """Write ``data`` so that ``path`` holds either the old or the new content after
    a crash, with file mode ``mode``: temp file, fsync, rename, fsync of the directory.
    ``durable=False`` skips both fsyncs: still atomic if the process dies, not if the OS does."""
    tmp = path + ".tmp"
    if not _FDS:
        with open(tmp, "wb") as f:
            f.write(data)
        _replace(tmp, path)
        return
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # a leftover temp file keeps its old mode otherwise
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if durable:
        sync_directory(os.path.dirname(path) or ".")


def sync_directory(directory: str) -> None:
    """fsync ``directory``, so that a file just created or renamed in it survives a power cut
    (nothing to do on MicroPython)."""
    if not _FDS:
        return
    try:
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:  # some filesystems refuse fsync on directories
        pass


def read_json(path: str, default):
    """Read JSON from ``path``; a missing file gives ``default``, a corrupt one
    is set aside (``path.corrupt``) with a warning and gives ``default``."""
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except OSError as e:
        if not _missing(e, path):
            raise
        return default
    except ValueError as e:  # also a UnicodeDecodeError
        log.warning("%s is corrupt (%s); keeping it as %s.corrupt and starting fresh", path, e, path)
        try:
            _replace(path, path + ".corrupt")
        except OSError:
            pass
        return default


def _missing(e: OSError, path: str) -> bool:
    """Whether ``e``, raised opening ``path``, means there is no such file."""
    if _FILE_NOT_FOUND is not None:
        return isinstance(e, _FILE_NOT_FOUND)
    try:  # MicroPython: its errno values depend on the port (the WebAssembly one passes the host's)
        os.stat(path)
    except OSError:
        return True
    return False
