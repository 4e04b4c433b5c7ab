"""Small durable-file helpers: atomic JSON writes that survive a power cut."""

import json
import logging
import os

log = logging.getLogger(__name__)


def write_json_atomic(path: str, data, mode: int = 0o600) -> None:
    """Write ``data`` as JSON so that ``path`` holds either the old or the new
    content after a crash: temp file, fsync, rename, fsync of the directory."""
    write_bytes_atomic(path, json.dumps(data, separators=(",", ":"), sort_keys=True).encode(), mode)


def write_bytes_atomic(path: str, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` so that ``path`` holds either the old or the new content after
    a crash, with file mode ``mode``: temp file, fsync, rename, fsync of the directory."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # a leftover temp file keeps its old mode otherwise
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    try:
        dfd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
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
    except FileNotFoundError:
        return default
    except (ValueError, UnicodeDecodeError) as e:
        log.warning("%s is corrupt (%s); keeping it as %s.corrupt and starting fresh", path, e, path)
        try:
            os.replace(path, path + ".corrupt")
        except OSError:
            pass
        return default
