"""The time-lapse of the retention window: one frame per photo, built as photos arrive.

Each stretch of photos (an hour at the default interval; down to ten minutes when photos
come more often, so that a segment holds at most 60 at intervals of 10 s or more) is one
VP8 segment, named after its start and the photos in it
(``segments/20261126070000-<digest>.mkv``): a new photo re-encodes only its own segment
(12 frames at the default interval), retention moving the window on re-encodes only the
oldest, and every other segment is left as it is.
After the segments, the builder replaces ``segments.json``, the list of the current
ones, and only then deletes the segments it replaced: a SIGKILL at any moment leaves a
list whose segments all exist, whole. The day's file is those segments joined by
``camera.webm`` (a byte copy of a few MB, no re-encoding), made by :func:`day_file` when
someone asks for it and kept until the list changes: writing it after every photo
would rewrite megabytes on the SD card every few minutes for a file seldom watched.

VP8 WebM because the OpenCV wheel's FFmpeg writes it (libvpx; it has no H.264
encoder, and MPEG-4 part 2 in MP4 does not play in Chromium) and every current
browser plays it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from itertools import groupby
from pathlib import Path

import cv2
import numpy as np

from camera.errors import Interrupted, StorageError, StorageFull
from camera.fsutil import TEMP_PREFIX, fsync_dir, remove_stale_temps, write_atomic
from camera.retention import disk_free
from camera.store import Photo, PhotoStore
from camera.webm import WebmError, frame_count, join

log = logging.getLogger(__name__)

FOURCC = cv2.VideoWriter_fourcc(*"VP80")
MANIFEST = "segments.json"
DAY_FILE = re.compile(r"timelapse-[0-9a-f]{16}\.webm")


class NoFrames(StorageError):
    """None of the photos given could be made a frame (all gone or undecodable)."""


def _frame(jpeg: bytes, size: tuple[int, int]) -> np.ndarray | None:
    """The decoded photo at ``size`` (width, height), or None if it does not decode."""
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        return None
    if (image.shape[1], image.shape[0]) != size:
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return image


def encode(jpegs: Iterable[bytes], path: Path, fps: float, size: tuple[int, int]) -> int:
    """Write the photos as frames of a VP8 Matroska file at ``path`` (``.mkv``; see
    ``camera.webm`` for why not WebM), atomically; the frame count.

    A photo that does not decode is left out (the store holds only validated photos;
    this is for one that went bad on disk since). The file is read back and its frames
    counted before it replaces ``path``.
    :raises StorageError: nothing to write, or the file could not be written whole.
    """
    path = Path(path)
    # ``.PID.mkv``: the container comes from the extension, and remove_stale_temps
    # finds the writer's pid second from the end.
    tmp = path.with_name(f"{TEMP_PREFIX}{path.name}.{os.getpid()}.mkv")
    writer = cv2.VideoWriter(str(tmp), cv2.CAP_FFMPEG, FOURCC, fps, size)
    written = 0
    try:
        if not writer.isOpened():
            raise StorageError(f"cannot write a video at {path}")
        for jpeg in jpegs:
            image = _frame(jpeg, size)
            if image is None:
                log.warning("a photo does not decode: left out of the time-lapse")
                continue
            writer.write(image)
            written += 1
        writer.release()
        if not written:
            raise NoFrames("no photo to make a time-lapse of")
        try:
            data = tmp.read_bytes()
            if frame_count(data) != written:
                raise StorageError(f"{path.name} was not written whole (disk full?)")
        except (OSError, WebmError) as exc:
            raise StorageError(f"{path.name} was not written whole: {exc}") from exc
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        writer.release()
        tmp.unlink(missing_ok=True)
    return written


def write_timelapse(
    store: PhotoStore, out: Path, since: float, until: float, fps: float, size: tuple[int, int]
) -> int:
    """Encode every photo taken in [since, until] into one WebM at ``out``; frames written.

    :raises StorageError: no photo in the window, or ``out`` cannot be written.
    """
    photos = list(store.photos(since=since, until=until))
    if not photos:
        raise StorageError("no photos in that window: nothing to make a time-lapse of")
    out = Path(out)
    segment = out.with_name(f"{TEMP_PREFIX}{out.name}.{os.getpid()}.mkv")
    try:
        frames = encode(_read_all(store, photos), segment, fps, size)
        write_atomic(out, join([segment], 1000 / fps))
    finally:
        segment.unlink(missing_ok=True)
    return frames


def _read_all(
    store: PhotoStore, photos: list[Photo], stop: threading.Event | None = None
) -> Iterable[bytes]:
    for photo in photos:
        if stop is not None and stop.is_set():
            raise Interrupted("stopping")
        try:
            yield store.read(photo.name)
        except (OSError, LookupError):
            continue  # deleted by retention while we read: not a frame


class TimeLapse:
    """The window's time-lapse under ``directory``, brought up to date by :meth:`update`.

    Building stops while free space is below ``min_free_bytes`` (set above the
    retention's floor), so a filling disk costs the time-lapse before it costs a photo.
    """

    def __init__(
        self,
        store: PhotoStore,
        directory: Path,
        *,
        window_seconds: float,
        fps: float,
        size: tuple[int, int],
        min_free_bytes: int = 0,
        free_bytes: Callable[[Path], int] = disk_free,
        segment_seconds: int = 3600,
    ) -> None:
        self.store = store
        self.directory = Path(directory)
        self.segments = self.directory / "segments"
        self.window_seconds = window_seconds
        self.fps = fps
        self.size = size
        self.min_free_bytes = min_free_bytes
        self.free_bytes = free_bytes
        self.segment_seconds = segment_seconds
        self.stop: threading.Event | None = None  # set: an update ends at the next frame
        self._joined: list[Path] | None = None
        self._starved = False

    def _room(self) -> bool:
        if not self.min_free_bytes:
            return True
        # the data dir, before the first photo made the others
        places = (self.directory, self.store.root, self.directory.parent)
        where = next((p for p in places if p.exists()), None)
        if where is None:
            return True
        free = self.free_bytes(where)
        if free >= self.min_free_bytes:
            if self._starved:
                log.info("time-lapse building again: %d MB free", free // 2**20)
            self._starved = False
            return True
        if not self._starved:
            log.warning(
                "time-lapse not updated: %d MB free, below the %d MB it needs "
                "(photos go on until the storage floor)",
                free // 2**20,
                self.min_free_bytes // 2**20,
            )
        self._starved = True
        return False

    def remove_stale_temps(self) -> int:
        """Delete the temp files a killed builder (or web app) left; how many."""
        return remove_stale_temps(self.segments) + remove_stale_temps(self.directory)

    def _segment_start(self, photo: Photo) -> str:
        start = int(photo.taken_at // self.segment_seconds) * self.segment_seconds
        return f"{datetime.fromtimestamp(start, UTC):%Y%m%d%H%M%S}"

    def update(self, now: float) -> bool:
        """Re-encode the segments whose photos changed and rejoin; False if nothing changed.

        :raises StorageError: a segment or the file could not be written.
        :raises Interrupted: :attr:`stop` was set; the previous file stands.
        """
        if not self._room():
            return False
        try:
            self.segments.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create {self.segments}: {exc.strerror or exc}") from exc
        if self._joined is None:  # first run in this process: what a kill left behind
            self.remove_stale_temps()
        photos = list(self.store.photos(since=now - self.window_seconds, until=now))
        wanted = []
        for start, group in groupby(photos, key=self._segment_start):
            members = list(group)
            # The rate and size too: segments made before a change of either are remade.
            shape = f"{self.fps:g} {self.size[0]}x{self.size[1]}"
            names = "\n".join([shape, *(p.name for p in members)])
            digest = hashlib.sha256(names.encode()).hexdigest()
            segment = self.segments / f"{start}-{digest[:16]}.mkv"
            if not segment.exists():
                frames = _read_all(self.store, members, self.stop)
                try:
                    encode(frames, segment, self.fps, self.size)
                except NoFrames:
                    continue  # every photo of the segment went meanwhile
            wanted.append(segment)
        if wanted == self._joined:
            return False
        manifest = {"fps": self.fps, "segments": [p.name for p in wanted]}
        write_atomic(self.directory / MANIFEST, json.dumps(manifest).encode())
        self._joined = wanted
        self._remove_unused(set(wanted))
        return True

    @property
    def path(self) -> Path | None:
        """The day's file (see :func:`day_file`)."""
        return day_file(self.directory)

    def _remove_unused(self, wanted: set[Path]) -> None:
        """Segments of hours that left the window, or of an older set of photos."""
        for entry in os.scandir(self.segments):
            path = Path(entry.path)
            temp = entry.name.startswith(TEMP_PREFIX)
            if entry.name.endswith(".mkv") and not temp and path not in wanted:
                path.unlink(missing_ok=True)


def manifest(directory: Path) -> tuple[float, list[str]] | None:
    """The fps and current segments the builder last listed, or None before its first."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
        return float(manifest["fps"]), [str(n) for n in manifest["segments"]]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StorageError(f"{directory / MANIFEST} is unreadable: {exc}") from exc


def day_file(
    directory: Path,
    min_free_bytes: int = 0,
    free_bytes: Callable[[Path], int] = disk_free,
) -> Path | None:
    """The time-lapse of the current segments as one WebM file, joined now if it was not
    yet; None while there is no photo in the window.

    Named after its segments (``timelapse-<digest>.webm``), so the file of a list is
    made once, by whoever asks first (two at once each write a whole one and rename);
    files of older lists are deleted (a reader still sending one keeps its open file).
    A join that would leave less than ``min_free_bytes`` free (the storage floor plus the
    time-lapse's margin) is refused, like the builder's updates: the photos' floor is
    never spent on a video.
    :raises StorageError: the list is unreadable or the file cannot be written.
    :raises StorageFull: joining would take the disk below ``min_free_bytes``.
    """
    directory = Path(directory)
    for _attempt in range(3):
        found = manifest(directory)
        if found is None or not found[1]:
            return None
        fps, names = found
        digest = hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]
        path = directory / f"timelapse-{digest}.webm"
        if path.exists():
            return path
        try:
            data = join([directory / "segments" / n for n in names], 1000 / fps)
        except FileNotFoundError:
            continue  # the builder replaced a segment meanwhile: read the new list
        except (OSError, WebmError) as exc:
            raise StorageError(f"cannot join the time-lapse: {exc}") from exc
        # The older day files go first: the new one replaces them, and the disk never
        # holds both at once.
        for entry in os.scandir(directory):
            if DAY_FILE.fullmatch(entry.name) and entry.name != path.name:
                Path(entry.path).unlink(missing_ok=True)
        free = free_bytes(directory) if min_free_bytes else 0
        if min_free_bytes and free - len(data) < min_free_bytes:
            raise StorageFull(
                f"joining the time-lapse ({len(data) // 2**20} MB) would leave "
                f"{max(0, free - len(data)) // 2**20} MB free, below the "
                f"{min_free_bytes // 2**20} MB kept for photos"
            )
        write_atomic(path, data)
        return path
    raise StorageError("the time-lapse kept changing while it was being joined")


class TimeLapseBuilder:
    """Runs :meth:`TimeLapse.update` in a background thread, at a lower CPU priority,
    whenever the grabber says a photo arrived: capture never waits for an encoder.

    Updates start at least ``min_gap`` seconds apart: at short intervals photos that
    arrive meanwhile are taken together, so the encoder's share of the CPU stays bounded
    however often photos come."""

    def __init__(
        self, timelapse: TimeLapse, now: Callable[[], float], min_gap: float = 30.0
    ) -> None:
        self.timelapse = timelapse
        self.now = now
        self.min_gap = min_gap
        self._wake = threading.Event()
        self._stop = threading.Event()
        timelapse.stop = self._stop
        self._idle = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="timelapse", daemon=True)
        self._thread.start()
        self.poke()

    def poke(self) -> None:
        """A photo was saved (or deleted): bring the time-lapse up to date soon."""
        self._idle.clear()
        self._wake.set()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no update is pending (tests and the benchmark)."""
        return self._idle.wait(timeout)

    def close(self, timeout: float = 2.0) -> None:
        """Stop the thread; an update under way ends at its next frame."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        # Per thread on Linux: the encoder yields the CPU to capture and the web app.
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except (AttributeError, OSError) as exc:
            log.debug("time-lapse encoder keeps the grabber's priority: %s", exc)
        while not self._stop.is_set():
            self._wake.wait()
            if self._stop.is_set():
                break
            self._wake.clear()
            started = time.monotonic()
            try:
                if self.timelapse.update(self.now()):
                    log.debug("time-lapse updated")
            except Interrupted:
                break
            except StorageError as exc:
                log.error("time-lapse not updated: %s", exc)
            except Exception:
                log.exception("time-lapse not updated")
            if not self._wake.is_set():
                self._idle.set()
            self._stop.wait(max(0.0, self.min_gap - (time.monotonic() - started)))
