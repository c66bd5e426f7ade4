"""The grabber's live-view mode: while owners watch, keep the camera streaming to them.

A mixin of :class:`camera.grabber.Grabber`, kept apart because it is the grabber's
second way of using the camera: between interval photos, while ``live`` (a
:class:`camera.live.LiveServer`) has viewers, frames are read continuously, checked by
``validate_structure`` and handed to the viewers at ``live_fps``; the photo at each tick
is then taken from the open stream by the grabber's ordinary ``capture``.
"""

from __future__ import annotations

import logging

from camera.errors import CameraUnavailable, CorruptFrame, Interrupted
from camera.frame import Frame
from camera.imaging import encode
from camera.live import encode_frame, encode_offline
from camera.validate import validate_structure

log = logging.getLogger("camera.grabber")  # the grabber's own lines, as operators know them


class LiveMode:
    """Live view for a Grabber: needs its source, status, clock, stop and camera helpers."""

    def _watched(self) -> bool:
        return self.live is not None and self.live.viewers > 0

    def _live_jpeg(self, frame: Frame) -> bytes | None:
        """The bytes a viewer gets: the camera's own JPEG if it is whole, else None."""
        try:
            if frame.jpeg is not None:
                validate_structure(frame.jpeg)
                return frame.jpeg
            if frame.image is None or frame.image.size == 0:
                raise CorruptFrame("blank", "the camera returned an empty image")
            return encode(frame.image, self.capture_settings.jpeg_quality)
        except CorruptFrame as exc:
            self.status.reject(exc.reason)
            log.debug("live frame rejected (%s): %s", exc.reason, exc.detail)
            return None

    def _stream(self, until: float) -> None:
        """Keep the camera streaming to the viewers until ``until`` or the last one leaves.

        Frames go out at ``live_fps``, each checked by ``validate_structure`` first; a
        lost camera is reported to the viewers and retried every second while watched.
        """
        assert self.live is not None
        self._set_mode("live")
        period, due, sent = 1.0 / self.live_fps, 0.0, 0
        reported = self.clock.now()
        try:
            while self._watched() and not self.stop.is_set() and self.clock.now() < until:
                self.notifier.watchdog()
                try:
                    frame = self._stream_frame()
                except Interrupted:
                    return
                except CameraUnavailable as exc:
                    self.live.publish(encode_offline(str(exc), self.clock.now()))
                    self.clock.sleep(min(1.0, max(0.0, until - self.clock.now())), self.stop)
                    continue
                if self.detector is not None:  # motion mode looks at the streamed frames
                    self._look(frame)
                now = self.clock.now()
                if now < due:
                    continue
                due = max(due + period, now - period / 2)
                jpeg = self._live_jpeg(frame)
                if jpeg is not None:
                    self.live.publish(encode_frame(jpeg, frame.received))
                    sent += 1
                if self.live.viewers != self.status.viewers or now - reported > 2:
                    # Viewers and rejected frames, fresh for /status and `puccicam status`.
                    self.status.viewers, reported = self.live.viewers, now
                    self._write_status()
        finally:
            log.debug("live view: %d frame(s) sent in this stretch", sent)
            if not self._watched():
                self._set_mode("interval")

    def _set_mode(self, mode: str) -> None:
        """Note a change between interval and live mode: log, status, LED."""
        self.status.viewers = self.live.viewers if self.live is not None else 0
        if mode == self.status.mode:
            return
        self.status.mode = mode
        if mode == "live":
            log.info("live view started: camera kept open for %d viewer(s)", self.status.viewers)
        else:
            if not self.keep_open:
                self._close()
            log.info(
                "live view ended: no viewer left; %s",
                "camera kept open (short interval)" if self.keep_open else "camera closed",
            )
        self._write_status()

    def _start_live(self) -> None:
        """Open the live socket; without it photos go on, only live view is missing."""
        if self.live is None:
            return
        try:
            self.live.start()
        except OSError as exc:
            log.error(
                "live view unavailable: cannot create %s (%s); photos go on",
                self.live.path,
                exc.strerror or exc,
            )
            self.live = None
