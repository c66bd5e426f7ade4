"""Keeps exactly the last N hours of photos, and a floor of free disk space.

Age is the capture time in the photo's name, not the file's mtime (``find -mtime +1``
in the original kept up to 48 hours). Only photos the store wrote are ever deleted, and
never a kept one (``camera.keep``): not for age, not for space.
"""

from __future__ import annotations

import logging
import shutil
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from camera.errors import StorageError
from camera.keep import KeptPhotos
from camera.store import Photo, PhotoStore

log = logging.getLogger(__name__)


def disk_free(path: Path) -> int:
    """Bytes free for an unprivileged writer on the filesystem holding ``path``."""
    return shutil.disk_usage(path).free


@dataclass(frozen=True)
class PruneResult:
    expired: int = 0
    for_space: int = 0


class Retention:
    """Deletes expired photos oldest first, cheaply enough to run after every capture.

    The photos of the oldest hour are listed once and then consumed from the front, so
    a prune that deletes nothing costs one comparison, however short the interval.
    Kept photos are left out of that queue; ``_after`` is the last photo of the hours
    that held only kept ones, so the queue moves on past them rather than listing the
    same hour again. Keeping or un-keeping anything starts the queue afresh.
    """

    def __init__(
        self,
        store: PhotoStore,
        keep_seconds: float,
        min_free_bytes: int,
        free_bytes: Callable[[Path], int] = disk_free,
        kept: KeptPhotos | None = None,
    ) -> None:
        self.store = store
        self.kept = kept
        self._after: float | None = None
        self._kept_version: int | None = None
        self.keep_seconds = keep_seconds
        self.min_free_bytes = min_free_bytes
        self.free_bytes = free_bytes
        self._oldest: deque[Photo] = deque()
        self._swept = False

    def _peek(self) -> Photo | None:
        while not self._oldest:
            hour = self.store.oldest_hour(after=self._after)
            if not hour:
                return None
            kept = set(self.kept.names()) if self.kept is not None else set()
            self._oldest.extend(p for p in hour if p.name not in kept)
            if not self._oldest:
                self._after = hour[-1].taken_at
        return self._oldest[0]

    def _delete_oldest(self) -> int:
        """Delete the oldest photo queued: 1, or 0 if it was kept since the queue was read."""
        photo = self._oldest.popleft()
        if self.kept is not None and self.kept.is_kept(photo.name):
            return 0
        self.store.delete(photo)
        if not self._oldest and photo in self.store.oldest_hour(after=self._after):
            raise StorageError(f"{photo.name} is still there after deleting it")
        return 1

    def prune(self, now: float) -> PruneResult:
        """Delete photos older than the window, then more while the disk is below its floor.

        A photo that cannot be deleted (read-only disk, I/O error) ends this round with
        an error logged; the grabber keeps running and the next round tries again.
        """
        cutoff = now - self.keep_seconds
        expired = for_space = 0
        if self.kept is not None and self.kept.version() != self._kept_version:
            self._kept_version = self.kept.version()
            self._oldest.clear()
            self._after = None
        try:
            while (photo := self._peek()) is not None and photo.taken_at < cutoff:
                expired += self._delete_oldest()
            for_space = self._free_space()
            # Thumbnails die with their photos: once at start (a crash may have left
            # some), then whenever photos went, which is when an orphan can appear.
            if expired or for_space or not self._swept:
                self.store.remove_orphan_thumbs()
                if self.kept is not None:
                    self.kept.remove_orphans(self.store.exists)
                self._swept = True
        except (StorageError, OSError) as exc:
            self._oldest.clear()
            self._after = None
            log.error("retention stopped for now: %s", exc)
        if expired:
            log.info("deleted %d photo(s) older than %g hours", expired, self.keep_seconds / 3600)
        return PruneResult(expired, for_space)

    def _free_space(self) -> int:
        if not self.min_free_bytes or not self.store.root.exists():
            return 0
        deleted = 0
        newest = None
        while self.free_bytes(self.store.root) < self.min_free_bytes:
            newest = newest or self.store.latest()
            photo = self._peek()
            if photo is None or photo == newest:
                log.warning(
                    "disk below its %d MB floor with no older photo left to delete: "
                    "something else is filling %s",
                    self.min_free_bytes // 2**20,
                    self.store.root,
                )
                break
            deleted += self._delete_oldest()
        if deleted:
            log.warning(
                "disk below its %d MB free floor: deleted the %d oldest photo(s)",
                self.min_free_bytes // 2**20,
                deleted,
            )
        return deleted
