"""The grabber: one good photo per interval, for months, without babysitting.

Each cycle opens the camera, warms it up like the original (a delay, then frames thrown
away unchecked), reads until a frame passes validation, saves it atomically and prunes.
A lost camera is retried with capped exponential backoff; a full disk skips the photo
and keeps running. The schedule is aligned to the wall clock, so it does not drift.
With motion mode (:mod:`camera.motionmode`) the camera stays open between photos and
movement saves extra photos through the same validation, save and retention.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections import Counter
from pathlib import Path

import numpy as np

from camera.alerts import Alerts
from camera.clock import SystemClock
from camera.errors import (
    CameraError,
    CameraUnavailable,
    CorruptFrame,
    Interrupted,
    NoGoodFrame,
    PhotoNotFound,
    StorageError,
    StorageFull,
)
from camera.frame import Frame
from camera.fsutil import remove_stale_temps
from camera.imaging import make_photo
from camera.live import LiveServer
from camera.livemode import LiveMode
from camera.meta import PhotoMeta, activity_from_share
from camera.motion import MotionDetector, changed_share, photo_grey, stored_grey
from camera.motionmode import MotionMode
from camera.notify import Notifier
from camera.retention import Retention
from camera.settings import CameraConfig, CaptureConfig, MotionConfig
from camera.source import Source
from camera.status import Status, write_status
from camera.store import Photo, PhotoStore
from camera.timelapse import TimeLapse, TimeLapseBuilder
from camera.validate import GoodFrame, validate, validate_jpeg

log = logging.getLogger(__name__)


def next_tick(now: float, interval: float) -> float:
    """The first multiple of ``interval`` since the epoch strictly after ``now``."""
    return (math.floor(now / interval + 1e-9) + 1) * interval


def _summary(counts: Counter[str]) -> str:
    return ", ".join(f"{reason}: {n}" for reason, n in counts.most_common()) or "none"


class Grabber(LiveMode, MotionMode):
    """Takes photos from a source on a schedule and keeps the store within its limits."""

    def __init__(
        self,
        source: Source,
        store: PhotoStore,
        retention: Retention,
        *,
        camera: CameraConfig,
        capture: CaptureConfig,
        status_path: Path,
        notifier: Notifier | None = None,
        clock: SystemClock | None = None,
        stop: threading.Event | None = None,
        live: LiveServer | None = None,
        live_fps: float = 15.0,
        alerts: Alerts | None = None,
        motion: MotionConfig | None = None,
        timelapse: TimeLapse | None = None,
    ) -> None:
        self.source = source
        self.store = store
        self.retention = retention
        self.camera = camera
        self.capture_settings = capture
        self.status_path = status_path
        self.notifier = notifier or Notifier()
        self.clock = clock or SystemClock()
        self.stop = stop or threading.Event()
        self.status = Status(
            pid=os.getpid(),
            started=self.clock.now(),
            interval=capture.interval,
            source=source.name,
        )
        self.live = live
        self.live_fps = live_fps
        self.alerts = alerts
        # Only the daemon builds the time-lapse (grab --once does not).
        self.timelapse = TimeLapseBuilder(timelapse, self.clock.now) if timelapse else None
        self._is_open = False
        self._failures = 0
        # The motion settings also judge interval photos' activity without motion mode.
        self.motion = motion or MotionConfig()
        self.detector = MotionDetector(self.motion) if capture.motion else None
        self._look_due = 0.0
        self._last_motion: float | None = None
        # The previous interval photo as a small grey picture, for its successor's activity.
        self._previous: np.ndarray | None = None
        # How long the last photo took from the start of its capture to its kept frame
        # (opening, warm-up delay, warm-up frames, rejected frames): the schedule starts
        # that much before the boundary so the photo lands on it.
        self.lead = 0.0 if self.keep_open else camera.warmup_delay

    def request_stop(self) -> None:
        """Ask the loop to end (from a signal handler's thread): wakes any sleep."""
        self.stop.set()
        if self.live is not None:
            self.live.changed.set()

    @property
    def keep_open(self) -> bool:
        """Short intervals and motion mode keep the device streaming; long ones let the
        LED go off."""
        return self.detector is not None or (
            self.capture_settings.interval < self.camera.keep_open_below
        )

    # -- one photo ------------------------------------------------------------------

    def _read(self) -> Frame:
        if self.stop.is_set():
            raise Interrupted("stopping")
        return self.source.read()

    def _stream_frame(self) -> Frame:
        """The next frame of an open stream (live view, motion mode), opening the camera
        first if it is closed; a lost camera is closed and logged once, then re-raised.

        :raises CameraUnavailable: the camera cannot be opened or stopped sending.
        :raises Interrupted: the grabber is stopping.
        """
        try:
            if not self._is_open:
                self._ensure_open()
            return self._read()
        except CameraUnavailable as exc:
            self._close()
            self._camera_state("missing", str(exc))
            raise

    def _ensure_open(self) -> int:
        """Open and warm up the camera, or drain stale frames; return frames discarded."""
        cam = self.camera
        if self._is_open:
            for _ in range(cam.drain_frames):
                self._read()
            return cam.drain_frames
        self.source.open()
        self._is_open = True
        self._camera_state("ok")
        if cam.warmup_delay and self.clock.sleep(cam.warmup_delay, self.stop):
            raise Interrupted("stopping")
        # Auto-exposure settles and the first frames after streaming starts are often
        # corrupt (70% on the original's LifeCam); they are dropped without decoding.
        for _ in range(cam.warmup_frames):
            self._read()
        return cam.warmup_frames

    def _close(self) -> None:
        if self._is_open:
            self._is_open = False
            self.source.close()

    def _first_good_frame(self) -> tuple[GoodFrame, Counter[str]]:
        rejected: Counter[str] = Counter()
        last: CorruptFrame | None = None
        for _ in range(self.camera.max_attempts):
            frame = self._read()
            try:
                return validate(frame), rejected
            except CorruptFrame as exc:
                rejected[exc.reason] += 1
                self.status.reject(exc.reason)
                last = exc
                log.info("frame rejected (%s): %s", exc.reason, exc.detail)
        raise NoGoodFrame(
            f"all {self.camera.max_attempts} frames tried were rejected "
            f"({_summary(rejected)}); last: {last}"
        )

    def capture(self) -> Photo:
        """Take, validate and store one photo.

        :raises CameraUnavailable: the camera cannot be opened or stopped sending.
        :raises NoGoodFrame: every frame tried was corrupt.
        :raises StorageError: the photo could not be written (StorageFull for a full disk).
        """
        started = self.status.last_attempt = self.clock.now()
        try:
            skipped = self._ensure_open()
            good, rejected = self._first_good_frame()
            taken_at = self.clock.now()
            self.lead = max(0.0, taken_at - started)
            photo, jpeg = self._keep(good, taken_at, "interval")
        except (CameraUnavailable, NoGoodFrame):
            self._close()
            raise
        finally:
            if not self.keep_open and not self._watched():
                self._close()
        log.info(
            "photo %s saved (%d bytes); discarded %d warm-up/stale frame(s), rejected %d (%s)",
            photo.name,
            len(jpeg),
            skipped,
            sum(rejected.values()),
            _summary(rejected),
        )
        self._saved(photo, jpeg, "interval")
        return photo

    def _keep(self, good: GoodFrame, taken_at: float, kind: str) -> tuple[Photo, bytes]:
        """Make the photo of a validated frame and store it with its kind and activity;
        the one way both interval and motion photos are written.

        :raises StorageError: the photo could not be written (StorageFull for a full disk).
        """
        cap = self.capture_settings
        jpeg = make_photo(
            good.image,
            taken_at,
            width=cap.width,
            height=cap.height,
            quality=cap.jpeg_quality,
            banner=cap.overlay_text if cap.overlay else None,
        )
        meta = PhotoMeta(kind, self._activity(good))
        photo = self.store.save(
            jpeg, taken_at, verify=lambda data: validate_jpeg(data, picture=False), meta=meta
        )
        return photo, jpeg

    def _activity(self, good: GoodFrame) -> int | None:
        """How much moved since the previous photo (0..100), None if unknown.

        In motion mode the detector's largest movement since then; otherwise the new
        picture against the previous interval photo (in memory, or the newest stored one
        after a restart), both without the banner's band.
        """
        if self.detector is not None:
            if self.detector.background is None:  # nothing looked at yet (``--once``)
                return None
            return activity_from_share(self.detector.take_peak())
        cap = self.capture_settings
        current = photo_grey(good.image, cap.width, cap.height)
        previous, self._previous = self._previous, current
        if previous is None:
            latest = self.store.latest()
            if latest is None:
                return None
            try:
                previous = stored_grey(self.store.read(latest.name), cap.height)
            except (PhotoNotFound, StorageError, CorruptFrame) as exc:
                log.debug("previous photo not comparable: %s", exc)
                return None
        return activity_from_share(changed_share(self.motion, previous, current))

    def _saved(self, photo: Photo, jpeg: bytes, kind: str) -> None:
        """Count a stored photo in the status and prune, for interval and motion photos."""
        self.status.saved += 1
        self.status.last_success = photo.taken_at
        self.status.last_photo = photo.name
        self.status.last_error = None
        self._failures = 0
        self._photo_saved(photo, jpeg, kind)
        self._prune()
        if self.timelapse is not None:
            self.timelapse.poke()

    def _prune(self) -> None:
        """Run retention and count what it deleted (status ``deleted``, for /metrics)."""
        result = self.retention.prune(self.clock.now())
        self.status.deleted += result.expired + result.for_space

    def _photo_saved(self, photo: Photo, jpeg: bytes, kind: str) -> None:
        """Tell the alerts (camera back, motion); their failure never costs a photo."""
        if self.alerts is None:
            return
        try:
            self.alerts.photo_saved(photo, jpeg, kind)
        except Exception:
            log.exception("alerts failed on photo %s", photo.name)

    # -- the daemon -----------------------------------------------------------------

    def _camera_state(self, state: str, error: str | None = None) -> None:
        """Log a camera state change once, not on every retry."""
        previous, self.status.camera = self.status.camera, state
        if state == previous:
            return
        found = self.status.camera_found
        if state == "ok":
            self.status.camera_found = True
            if previous == "missing" and found:
                self.status.reconnects += 1
            log.info("camera %s ready%s", self.source.name, " again" if found else "")
        else:
            # One never opened since start is "not found" (a wrong source, say), not "lost".
            log.warning(
                "camera %s %s: %s; retrying with backoff up to %g s",
                self.source.name,
                "lost" if found else "not found",
                error,
                self.camera.backoff_max,
            )

    def _prepare(self) -> None:
        """Create the data dir and clear what an interrupted run left behind."""
        data_dir = self.status_path.parent
        try:
            data_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
        except OSError as exc:
            raise StorageError(f"data dir {data_dir} cannot be created: {exc.strerror}") from exc
        self.store.remove_stale_temps()
        if self.timelapse is not None:
            self.timelapse.timelapse.remove_stale_temps()
        # The status file's own temp, if a kill landed while it was being replaced.
        remove_stale_temps(data_dir)

    def _write_status(self) -> None:
        if self.alerts is not None:
            self.status.notify_sent = self.alerts.sent
            self.status.notify_failed = self.alerts.failed
        try:
            write_status(self.status_path, self.status)
        except StorageError as exc:
            log.debug("status not written: %s", exc)

    def _sleep_until(self, deadline: float, tick: float) -> bool:
        """Wait for ``deadline`` (the device opens then, ``tick`` is the photo's moment),
        pinging the watchdog and streaming to live viewers meanwhile; False to stop."""
        step = self.notifier.watchdog_interval
        while not self.stop.is_set():
            now = self.clock.now()
            if self._watched():
                if now >= tick:  # the device is open: the photo comes from the stream
                    break
                self._stream(until=tick)
                continue
            if now >= deadline:
                break
            if self.detector is not None and self.status.camera == "ok":
                self._watch(until=deadline)  # returns early if a viewer arrives
                continue
            wait = min(deadline - now, step / 2) if step else deadline - now
            self.notifier.watchdog()
            if self.live is None:
                if self.clock.sleep(wait, self.stop):
                    break
                continue
            # Woken at once by a viewer arriving, or by request_stop().
            self.live.changed.clear()
            if not self.stop.is_set():
                self.clock.sleep(wait, self.live.changed)
        return not self.stop.is_set()

    def cycle(self) -> bool:
        """One scheduled capture with its errors handled; False if the camera is missing."""
        try:
            photo = self.capture()
        except Interrupted:
            return True
        except CameraUnavailable as exc:
            self._failures += 1
            self.status.failed += 1
            self.status.last_error = str(exc)
            self._camera_state("missing", str(exc))
            return False
        except NoGoodFrame as exc:
            self.status.failed += 1
            self.status.last_error = str(exc)
            log.warning("no photo this time: %s", exc)
        except StorageError as exc:
            self.status.failed += 1
            self.status.last_error = str(exc)
            hint = " (freeing space)" if isinstance(exc, StorageFull) else ""
            log.error("photo not saved: %s%s; will try again next time", exc, hint)
            self._prune()
        else:
            self.notifier.watchdog()
            self.notifier.status(
                f"last photo {photo.name}, {self.status.saved} saved, "
                f"{sum(self.status.rejected.values())} frames rejected"
            )
        return True

    def run(self) -> None:
        """Capture on schedule until ``stop`` is set (SIGTERM/SIGINT in the CLI)."""
        interval = self.capture_settings.interval
        self._prepare()
        self._prune()
        log.info(
            "grabbing from %s every %g s into %s (%s between photos)",
            self.source.name,
            interval,
            self.store.root,
            "device kept open" if self.keep_open else "device closed",
        )
        if self.detector is not None:
            log.info(
                "motion mode: looking %g time(s) a second, a motion photo at most every %g s",
                self.motion.fps,
                self.motion.min_gap,
            )
        self._start_live()
        if self.alerts is not None:
            self.alerts.start(self.status)
        if self.timelapse is not None:
            self.timelapse.start()
        self.notifier.ready(f"capturing every {interval:g} s from {self.source.name}")
        try:
            while not self.stop.is_set():
                if self.cycle():
                    # Start early by what the last capture took, so the photo lands on the
                    # boundary rather than that long after it.
                    lead = min(self.lead, interval)
                    tick = next_tick(self.clock.now() + lead, interval)
                    wake = tick - lead
                else:
                    delay = min(self.camera.backoff_max, 2.0 ** min(self._failures - 1, 16))
                    tick = wake = self.clock.now() + delay
                    self.notifier.status(f"camera missing, retrying in {delay:g} s")
                self.status.next_capture = tick
                self._write_status()
                if not self._sleep_until(wake, tick):
                    break
        finally:
            if self.live is not None:
                self.live.close()
            if self.alerts is not None:
                self.alerts.stop()
            if self.timelapse is not None:
                self.timelapse.close()
            self._close()
            self.status.next_capture = None
            self._write_status()
            self.notifier.stopping()
            log.info("grabber stopped after %d photo(s)", self.status.saved)

    def run_once(self) -> Photo:
        """Take one photo now (``grab --once``); errors propagate to the caller."""
        self._prepare()
        try:
            return self.capture()
        except CameraError as exc:
            self.status.failed += 1
            self.status.last_error = str(exc)
            raise
        finally:
            self._close()
            self._write_status()
