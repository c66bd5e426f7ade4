"""The grabber's motion mode: between interval photos, watch for movement and photograph it.

A mixin of :class:`camera.grabber.Grabber`, like :mod:`camera.livemode`: with
``capture.motion`` the camera stays open, ``motion.fps`` frames a second are looked at
(:mod:`camera.motion` on a small grey picture, cheap), and on movement the very frame
that showed it is validated in full and saved by the grabber's ordinary ``_keep``, at
most one motion photo per ``motion.min_gap`` seconds. The interval schedule is not
touched: watching ends at the moment the next interval photo is due. While live viewers
watch, the streamed frames are looked at instead (``_look`` from ``_stream``).
"""

from __future__ import annotations

import logging

from camera.errors import CameraUnavailable, CorruptFrame, Interrupted, StorageError
from camera.frame import Frame
from camera.motion import small_grey
from camera.validate import validate

log = logging.getLogger("camera.grabber")  # the grabber's own lines, as operators know them


class MotionMode:
    """Motion mode for a Grabber: needs its source, detector, store, status and clock."""

    def _watch(self, until: float) -> None:
        """Look at frames until ``until``, a viewer arrives, a stop, or the camera is lost.

        The watchdog is pinged on every look: a read that hangs stops the pings, as in
        interval mode, so systemd restarts a grabber stuck in the driver.
        """
        while not self.stop.is_set() and not self._watched():
            now = self.clock.now()
            if now >= until:
                return
            self.notifier.watchdog()
            if now >= self._look_due:
                try:
                    frame = self._stream_frame()
                except (Interrupted, CameraUnavailable):
                    return  # a lost camera: the interval loop retries with its backoff
                self._look(frame)
            wait = min(until, self._look_due) - self.clock.now()
            if wait <= 0:
                continue
            if self.live is None:
                self.clock.sleep(wait, self.stop)
            else:  # woken at once by a viewer arriving, or by request_stop()
                self.live.changed.clear()
                if not self.stop.is_set():
                    self.clock.sleep(wait, self.live.changed)

    def _look(self, frame: Frame) -> None:
        """Judge one frame if a look is due; save a motion photo if it shows movement."""
        now = self.clock.now()
        if now < self._look_due:
            return
        period = 1.0 / self.motion.fps
        self._look_due = max(self._look_due + period, now + period / 2)
        try:
            grey = small_grey(frame)
        except CorruptFrame as exc:
            self.status.reject(exc.reason)
            log.debug("frame not looked at (%s): %s", exc.reason, exc.detail)
            return
        verdict = self.detector.look(grey)
        good = None
        if verdict.light or (verdict.moving and self._motion_due(now)):
            # Before it may become a photo or the whole background: a frame damaged beyond
            # what the quick decode notices (blank, flat band, seams). Not on every moving
            # frame: within min_gap a frame only nudges the background by ``adapt``.
            try:
                good = validate(frame)
            except CorruptFrame as exc:
                self.status.reject(exc.reason)
                log.info("frame rejected (%s) while watching: %s", exc.reason, exc.detail)
                return
        self.detector.learn(grey, verdict)
        if verdict.moving and good is not None:
            self._motion_photo(good, verdict.changed)

    def _motion_due(self, now: float) -> bool:
        """Whether movement now may be photographed: ``min_gap`` since the last one."""
        return self._last_motion is None or now - self._last_motion >= self.motion.min_gap

    def _motion_photo(self, good, changed: float) -> None:
        """Save a validated frame that showed movement."""
        now = self.clock.now()
        self._last_motion = now
        try:
            photo, jpeg = self._keep(good, now, "motion")
        except StorageError as exc:
            self.status.failed += 1
            self.status.last_error = str(exc)
            log.error("motion photo not saved: %s", exc)
            self._prune()
            return
        log.info(
            "motion photo %s saved (%d bytes): %.1f%% of the picture changed",
            photo.name,
            len(jpeg),
            100 * changed,
        )
        self._saved(photo, jpeg, "motion")
        self._write_status()
