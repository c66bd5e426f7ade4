"""The photo store: the one API for writing, listing and opening photos.

Photos live under ``photos/YYYYMMDD/HH/`` and are named by their capture time in UTC,
``20261126T073000.200Z.jpg``, so names sort by time and a time range maps straight to
a few hour directories: listing the last 24 hours reads at most 25 small directories
however many days have passed. Names are only ever parsed here; nothing a caller (or a
web client) passes in reaches the filesystem unless it is a name this store writes.
"""

from __future__ import annotations

import bisect
import calendar
import contextlib
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from camera.errors import PhotoNotFound, StorageError
from camera.fsutil import fsync_dir, remove_stale_temps, write_atomic
from camera.meta import UNKNOWN, PhotoMeta, read_meta, with_meta

log = logging.getLogger(__name__)

PHOTO_NAME = re.compile(r"[0-9]{8}T[0-9]{6}\.[0-9]{3}Z\.jpg")
_DAY = re.compile(r"[0-9]{8}")
# Photo metadata cached per name (photos never change): far more than a day of photos
# at one a minute, at about 200 bytes each.
META_CACHE = 50_000
_HOUR = re.compile(r"[0-9]{2}")


@dataclass(frozen=True, order=True)
class Photo:
    """A stored photo: its name and its capture time (seconds since the epoch)."""

    taken_at: float
    name: str


def photo_name(taken_at: float) -> str:
    """The file name for a capture time: UTC, millisecond precision, sortable."""
    millis = round(taken_at * 1000)
    stamp = datetime.fromtimestamp(millis // 1000, UTC)
    return f"{stamp:%Y%m%dT%H%M%S}.{millis % 1000:03d}Z.jpg"


def parse_name(name: str) -> Photo | None:
    """The Photo a name stands for, or None if this store never writes such a name."""
    if not PHOTO_NAME.fullmatch(name):
        return None
    year, month, day = int(name[0:4]), int(name[4:6]), int(name[6:8])
    hour, minute, second = int(name[9:11]), int(name[11:13]), int(name[13:15])
    if not (1970 <= year <= 2999 and 1 <= month <= 12):
        return None
    if not 1 <= day <= calendar.monthrange(year, month)[1]:
        return None
    if hour > 23 or minute > 59 or second > 59:
        return None
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    return Photo(seconds + int(name[16:19]) / 1000, name)


def _hour_key(taken_at: float) -> tuple[str, str]:
    stamp = datetime.fromtimestamp(taken_at, UTC)
    return f"{stamp:%Y%m%d}", f"{stamp:%H}"


def _relative(name: str) -> str:
    """``YYYYMMDD/HH/NAME``: where a photo (or its thumbnail) lives under its root.

    The name is the UTC capture time, so its day and hour are the directory's."""
    return f"{name[:8]}/{name[9:11]}/{name}"


class PhotoStore:
    """Photos under one directory; safe against power cuts and half-written files.

    ``thumbs_root`` mirrors the photo tree for thumbnails, so deleting a photo deletes
    its thumbnail. ``cache_listings`` keeps each hour directory's listing until the
    directory changes (the web app's choice: a gallery of 100,000 photos then costs a
    stat per hour, not a scan of 100,000 names).
    """

    # A directory modified this recently may still gain a file within the same
    # timestamp tick, so its listing is not cached yet.
    SETTLE_SECONDS = 2.0

    def __init__(
        self, root: Path, thumbs_root: Path | None = None, *, cache_listings: bool = False
    ) -> None:
        self.root = Path(root)
        self.thumbs_root = Path(thumbs_root) if thumbs_root else None
        self._roots = (str(self.root), str(self.thumbs_root) if self.thumbs_root else None)
        self._cache: dict[Path, tuple[int, list[Photo]]] | None = {} if cache_listings else None
        self._meta: dict[str, PhotoMeta] = {}
        self._suffix_cache: dict[Path, tuple[list[Photo], list[int], list[int]]] = {}

    def locate(self, name: str, *, thumb: bool = False) -> str | None:
        """Where a photo (or its thumbnail) of this name would be, or None for a name
        this store never writes; nothing is checked on disk.

        The web app's fast path calls this on every request: a regex and a string join,
        no Path objects and no date arithmetic (a name of the right shape that no photo
        has simply fails to open).
        """
        root = self._roots[1 if thumb else 0]
        if root is None or not PHOTO_NAME.fullmatch(name):
            return None
        return f"{root}/{_relative(name)}"

    def path(self, name: str) -> Path:
        """The path of an existing photo.

        :raises PhotoNotFound: the name is not a photo name or no such photo is stored.
        """
        if parse_name(name) is None:
            raise PhotoNotFound(f"{name!r} is not a photo name")
        path = self.root / _relative(name)
        if not path.is_file():
            raise PhotoNotFound(f"no photo named {name}")
        return path

    def read(self, name: str) -> bytes:
        """The bytes of an existing photo."""
        try:
            return self.path(name).read_bytes()
        except FileNotFoundError:
            raise PhotoNotFound(f"no photo named {name}") from None

    def meta(self, name: str) -> PhotoMeta:
        """A stored photo's kind and activity (``camera.meta``), cached by name; a photo
        that is gone or unreadable reads as an interval photo of unknown activity."""
        found = self._meta.get(name)
        if found is not None:
            return found
        where = self.locate(name)
        if where is None:
            return UNKNOWN
        try:
            found = read_meta(where)
        except OSError:
            return UNKNOWN  # not cached: the photo may be being written right now
        if len(self._meta) >= META_CACHE:
            del self._meta[next(iter(self._meta))]  # the oldest entry made room first
        self._meta[name] = found
        return found

    def save(
        self,
        jpeg: bytes,
        taken_at: float,
        verify: Callable[[bytes], object] | None = None,
        meta: PhotoMeta | None = None,
    ) -> Photo:
        """Store a photo atomically, read it back and check it before it counts.

        ``meta`` goes into the photo's own bytes (``camera.meta``), in the same write.

        :raises StorageFull: the disk is full; nothing was left behind.
        :raises StorageError: the write failed or the file did not read back intact.
        """
        # The name is the time to the millisecond; the directory must come from that same
        # rounded time, or a photo at 06:59:59.9996 would be filed under 06 as 07:00:00.
        if meta is not None:
            jpeg = with_meta(jpeg, meta)
        taken_at = round(taken_at * 1000) / 1000
        name = photo_name(taken_at)
        # Two photos in one millisecond only happen when the clock steps back: keep both.
        while (self.root / _relative(name)).exists():
            taken_at = round(taken_at * 1000 + 1) / 1000
            name = photo_name(taken_at)
        path = self.root / _relative(name)
        self._make_dir(path.parent)
        write_atomic(path, jpeg)
        try:
            stored = path.read_bytes()
            if stored != jpeg:
                raise StorageError(f"{name} read back different from what was written")
            if verify is not None:
                verify(stored)
        except Exception as exc:
            with contextlib.suppress(OSError):
                path.unlink()
            if isinstance(exc, StorageError):
                raise
            raise StorageError(f"{name} did not read back intact: {exc}") from exc
        return Photo(parse_name(name).taken_at, name)  # type: ignore[union-attr]

    @staticmethod
    def _make_dir(directory: Path) -> None:
        """Create an hour directory durably: its new entries in day and root are data too."""
        if directory.is_dir():
            return
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fsync_dir(directory.parent)
            fsync_dir(directory.parent.parent)
        except OSError as exc:
            raise StorageError(f"cannot create {directory}: {exc.strerror or exc}") from exc

    def _hour_dirs(
        self, since: float | None, until: float | None, newest_first: bool, root: Path | None = None
    ) -> list[Path]:
        """Hour directories under ``root`` (the photos) for photos taken in [since, until]."""
        root = root or self.root
        low = _hour_key(since) if since is not None else ("", "")
        high = _hour_key(until) if until is not None else ("99999999", "99")
        try:
            days = sorted(
                (
                    e.name
                    for e in os.scandir(root)
                    if _DAY.fullmatch(e.name) and low[0] <= e.name <= high[0]
                ),
                reverse=newest_first,
            )
        except FileNotFoundError:
            return []
        dirs = []
        for day in days:
            try:
                hours = sorted(
                    (e.name for e in os.scandir(root / day) if _HOUR.fullmatch(e.name)),
                    reverse=newest_first,
                )
            except FileNotFoundError:
                continue
            dirs += [root / day / h for h in hours if low <= (day, h) <= high]
        return dirs

    def _list(self, directory: Path) -> list[Photo]:
        """The photos in one hour directory, oldest first (do not modify the list)."""
        cache = self._cache
        if cache is not None:
            try:
                mtime = os.stat(directory).st_mtime_ns
            except FileNotFoundError:
                cache.pop(directory, None)
                return []
            hit = cache.get(directory)
            if hit is not None and hit[0] == mtime:
                return hit[1]
        try:
            names = [e.name for e in os.scandir(directory) if e.name.endswith("Z.jpg")]
        except FileNotFoundError:
            return []
        found = sorted(p for p in map(parse_name, names) if p is not None)
        if cache is not None and time.time() - mtime / 1e9 > self.SETTLE_SECONDS:
            cache[directory] = (mtime, found)
        return found

    def hour_counts(self, since: float, until: float) -> dict[int, int]:
        """Photos per hour in [since, until], keyed by the hour's start (epoch seconds)."""
        counts = {}
        for directory in self._hour_dirs(since, until, newest_first=False):
            found = self._list(directory)
            # sorted by time: two bisections instead of a look at every photo
            low = bisect.bisect_left(found, since, key=lambda p: p.taken_at)
            high = bisect.bisect_right(found, until, key=lambda p: p.taken_at)
            if found:
                counts[int(found[0].taken_at // 3600) * 3600] = high - low
        return counts

    def hour_activity(self, since: float, until: float) -> dict[int, tuple[int, int]]:
        """Per hour in [since, until], keyed by its start: the highest activity of its
        photos and how many of them show movement (``PhotoMeta.moving``).

        Each hour's running maxima and counts are kept with its cached listing, so with
        ``cache_listings`` a day of 100,000 photos costs a bisection per hour, not a
        metadata lookup per photo (README: Measured, gallery with activity).
        """
        result = {}
        for directory in self._hour_dirs(since, until, newest_first=False):
            found = self._list(directory)
            low = bisect.bisect_left(found, since, key=lambda p: p.taken_at)
            high = bisect.bisect_right(found, until, key=lambda p: p.taken_at)
            if low >= high:
                continue
            if high == len(found):
                peaks, moving = self._suffixes(directory, found)
                result[int(found[0].taken_at // 3600) * 3600] = (peaks[low], moving[low])
            else:  # an hour cut off at ``until``: rare, and at most one hour
                metas = [self.meta(p.name) for p in found[low:high]]
                result[int(found[0].taken_at // 3600) * 3600] = (
                    max(m.activity or 0 for m in metas),
                    sum(m.moving for m in metas),
                )
        return result

    def _suffixes(self, directory: Path, found: list[Photo]) -> tuple[list[int], list[int]]:
        """For each position in an hour's listing, the highest activity and the count of
        moving photos from there to the hour's end; kept while the listing is."""
        hit = self._suffix_cache.get(directory)
        if hit is not None and hit[0] is found:
            return hit[1], hit[2]
        peaks, moving = [0] * len(found), [0] * len(found)
        peak = count = 0
        for i in range(len(found) - 1, -1, -1):
            meta = self.meta(found[i].name)
            peak, count = max(peak, meta.activity or 0), count + meta.moving
            peaks[i], moving[i] = peak, count
        if self._cache is not None:
            if len(self._suffix_cache) > 100:  # hours long deleted by retention
                self._suffix_cache.clear()
            self._suffix_cache[directory] = (found, peaks, moving)
        return peaks, moving

    def thumb_path(self, name: str) -> Path:
        """Where the thumbnail of an existing photo lives (it may not exist yet)."""
        self.path(name)
        if self.thumbs_root is None:
            raise PhotoNotFound("this store keeps no thumbnails")
        return self.thumbs_root / _relative(name)

    def photos(
        self, since: float | None = None, until: float | None = None, *, newest_first: bool = False
    ) -> Iterator[Photo]:
        """Photos taken in [since, until], in time order, read one hour at a time."""
        for directory in self._hour_dirs(since, until, newest_first):
            found = self._list(directory)
            for photo in reversed(found) if newest_first else found:
                if (since is None or photo.taken_at >= since) and (
                    until is None or photo.taken_at <= until
                ):
                    yield photo

    def exists(self, name: str) -> bool:
        """Is a photo of this name stored?"""
        path = self.locate(name)
        return path is not None and os.path.isfile(path)

    def oldest_hour(self, after: float | None = None) -> list[Photo]:
        """The photos of the oldest hour directory that has any (taken after ``after``),
        oldest first."""
        for directory in self._hour_dirs(after, None, newest_first=False):
            found = self._list(directory)
            if after is not None:
                found = [p for p in found if p.taken_at > after]
            if found:
                return found
        return []

    def latest(self) -> Photo | None:
        """The newest photo, found by reading only the newest hour directory that has one."""
        return next(self.photos(newest_first=True), None)

    def delete(self, photo: Photo) -> None:
        """Remove a photo and its thumbnail, and their directories once empty."""
        self._meta.pop(photo.name, None)
        for root in (self.root, self.thumbs_root):
            if root is None:
                continue
            path = root / _relative(photo.name)
            directory = path.parent
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise StorageError(f"cannot delete {photo.name}: {exc.strerror or exc}") from exc
            for empty in (directory, directory.parent):
                try:
                    empty.rmdir()
                except OSError:
                    break

    def remove_orphan_thumbs(self) -> int:
        """Delete thumbnails whose photo is gone, and their directories once empty.

        ``delete`` removes a photo's thumbnail with it; an orphan is left only when a
        thumbnail was being made as its photo was deleted, or by a crash in between.
        """
        if self.thumbs_root is None:
            return 0
        removed = 0
        for directory in self._hour_dirs(None, None, newest_first=False, root=self.thumbs_root):
            photos_dir = self.root / directory.relative_to(self.thumbs_root)
            try:
                photos = set(os.listdir(photos_dir))
            except FileNotFoundError:
                photos = set()
            for entry in os.scandir(directory):
                if entry.name.endswith("Z.jpg") and entry.name not in photos:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
                        removed += 1
            for empty in (directory, directory.parent):
                try:
                    empty.rmdir()
                except OSError:
                    break
        if removed:
            log.info("removed %d thumbnail(s) whose photo is gone", removed)
        return removed

    def remove_stale_temps(self) -> int:
        """Delete temp files killed writers left among the photos and thumbnails."""
        roots = [self.root] + ([self.thumbs_root] if self.thumbs_root else [])
        removed = sum(
            remove_stale_temps(directory)
            for root in roots
            for directory in self._hour_dirs(None, None, newest_first=False, root=root)
        )
        if removed:
            log.info("removed %d stale temp file(s) left by an interrupted save", removed)
        return removed
