"""Atomic file writes: a power cut leaves the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from pathlib import Path

from camera.errors import StorageError, StorageFull

TEMP_PREFIX = ".tmp-"
_FULL = {errno.ENOSPC, errno.EDQUOT}


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable: the directory entry is data too."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` through a temp file in the same directory, then rename.

    With ``durable`` the file is fsynced before the rename and the directory after it,
    so the name never points at data still in the page cache.
    :raises StorageFull: the disk or quota is full; nothing partial is left.
    :raises StorageError: any other write failure (read-only disk, I/O error).
    """
    # pid and thread: the web server's threads may write the same thumbnail at once.
    tmp = path.with_name(f"{TEMP_PREFIX}{path.name}.{os.getpid()}.{threading.get_ident()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        if durable:
            fsync_dir(path.parent)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if exc.errno in _FULL:
            raise StorageFull(f"no space left to write {path.name} in {path.parent}") from exc
        raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from exc
