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


def create_exclusive(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Create ``path`` holding ``data``, whole or not at all, unless it exists already.

    Written to a temp file and fsynced, then hard-linked into place (``link`` fails if
    the name exists: of two processes creating it at once, one wins and the other reads
    the winner's), then the directory fsynced: a crash never leaves a short file.
    :raises FileExistsError: someone else created it first.
    """
    tmp = path.with_name(f"{TEMP_PREFIX}{path.name}.{os.getpid()}.{threading.get_ident()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    fsync_dir(path.parent)


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


def _process_started(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), or None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22: starttime
        boot = next(
            int(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, IndexError, ValueError, StopIteration):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def _writer_alive(temp_name: str, modified: float) -> bool:
    """Is the process named in a temp file (``.tmp-NAME.PID.THREAD``) still writing it?

    A process of that pid that started after the file was last written is not its writer
    but the pid used again: after a reboot or power cut the early pids come round again,
    and the temp file of a dead writer must not be kept for ever.
    """
    parts = temp_name.split(".")
    pid = parts[-2] if len(parts) >= 3 else ""
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    started = _process_started(int(pid))
    return started is None or started <= modified + 1.0  # 1 s: the clock ticks' rounding


def remove_stale_temps(directory: Path) -> int:
    """Delete the temp files a killed writer left in ``directory``; how many.

    Only names :func:`write_atomic` makes, and never those of a writer still running
    (``grab --once`` beside the daemon, or the web server making thumbnails).
    """
    removed = 0
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if not entry.name.startswith(TEMP_PREFIX) or not entry.is_file(follow_symlinks=False):
            continue
        try:
            modified = entry.stat(follow_symlinks=False).st_mtime
        except FileNotFoundError:
            continue
        if _writer_alive(entry.name, modified):
            continue
        with contextlib.suppress(FileNotFoundError):
            os.unlink(entry.path)
            removed += 1
    return removed
