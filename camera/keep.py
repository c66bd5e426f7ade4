"""Kept photos: the ones the owner marked to outlive the retention window.

A photo is kept while an empty marker ``kept/<PHOTO_NAME>`` exists. The marker lives
outside the photo tree, so keeping never rewrites a photo, a backup of ``kept/`` is a
list of names, and an upgrade that changes nothing there keeps every mark. Names are
checked with the store's own parser: a name the store never writes never reaches the
filesystem.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

from camera.errors import KeepLimitReached, PhotoNotFound, StorageError
from camera.fsutil import create_exclusive, fsync_dir, remove_stale_temps
from camera.store import parse_name

log = logging.getLogger(__name__)


def _checked(name: str) -> str:
    if parse_name(name) is None:
        raise PhotoNotFound(f"{name!r} is not a photo name")
    return name


class KeptPhotos:
    """The set of kept photo names, one marker file each, capped at ``limit``."""

    def __init__(self, directory: Path, limit: int = 500) -> None:
        self.directory = Path(directory)
        self.limit = limit

    def is_kept(self, name: str) -> bool:
        if parse_name(name) is None:
            return False
        return (self.directory / name).exists()

    def names(self) -> list[str]:
        """Every kept name, oldest photo first."""
        try:
            entries = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        return sorted(n for n in entries if parse_name(n) is not None)

    def count(self) -> int:
        return len(self.names())

    def version(self) -> int | None:
        """Changes whenever a photo is kept or un-kept (the directory's mtime): retention
        reads the kept set again only then."""
        try:
            return os.stat(self.directory).st_mtime_ns
        except FileNotFoundError:
            return None

    def keep(self, name: str, exists: Callable[[str], bool]) -> bool:
        """Keep the photo ``name``; False if it already was.

        ``exists`` is asked after the marker is made: a photo retention deleted meanwhile
        loses its marker again, so no marker outlives its photo.
        :raises PhotoNotFound: no such photo (now).
        :raises KeepLimitReached: ``limit`` photos are kept already.
        """
        _checked(name)
        if not exists(name):
            raise PhotoNotFound(f"no photo named {name}")
        if self.is_kept(name):
            return False
        if self.count() >= self.limit:
            raise KeepLimitReached(
                f"{self.limit} photos are kept already (storage.keep_max): "
                "un-keep one before keeping another"
            )
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o750)
            create_exclusive(self.directory / name, b"", 0o640)
        except FileExistsError:
            return False
        except OSError as exc:
            raise StorageError(f"cannot keep {name}: {exc.strerror or exc}") from exc
        if not exists(name):
            self._remove(name)
            raise PhotoNotFound(f"no photo named {name}")
        log.info("photo %s kept", name)
        return True

    def unkeep(self, name: str, exists: Callable[[str], bool] | None = None) -> bool:
        """Return a photo to normal retention; False if it was not kept.

        :raises PhotoNotFound: the name is no photo name, or (with ``exists``) no such photo.
        """
        _checked(name)
        removed = self._remove(name)
        if exists is not None and not exists(name):
            raise PhotoNotFound(f"no photo named {name}")
        if removed:
            log.info("photo %s no longer kept", name)
        return removed

    def _remove(self, name: str) -> bool:
        try:
            (self.directory / name).unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StorageError(f"cannot un-keep {name}: {exc.strerror or exc}") from exc
        fsync_dir(self.directory)
        return True

    def remove_orphans(self, exists: Callable[[str], bool]) -> int:
        """Delete markers whose photo is gone (deleted by hand, say), and stale temps."""
        removed = 0
        try:
            entries = os.listdir(self.directory)
        except FileNotFoundError:
            return 0
        remove_stale_temps(self.directory)
        for entry in entries:
            if parse_name(entry) is not None and not exists(entry):
                with contextlib.suppress(FileNotFoundError):
                    (self.directory / entry).unlink()
                    removed += 1
        if removed:
            fsync_dir(self.directory)
            log.info("removed %d keep mark(s) whose photo is gone", removed)
        return removed
