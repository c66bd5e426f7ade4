"""Cameras and streams through OpenCV: V4L2 devices, video files, image sequences, URLs.

A V4L2 camera is asked for MJPG at the configured size with a small buffer, and
``CAP_PROP_CONVERT_RGB`` is switched off so OpenCV hands over the raw MJPEG bytes: the
validator then sees exactly what the camera sent, instead of whatever OpenCV's decoder
made of a corrupt frame. Cameras that only offer YUYV give decoded frames instead.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import cv2

from camera.errors import CameraUnavailable
from camera.frame import Frame
from camera.source import SourceBase, redact

log = logging.getLogger(__name__)

_MJPG = cv2.VideoWriter.fourcc(*"MJPG")


def _is_v4l2(spec: str) -> bool:
    return spec.isdigit() or spec.startswith("/dev/")


def _quiet_opencv() -> None:
    """Silence OpenCV's and FFmpeg's own stderr lines; an operator's own setting wins.

    They bypass logging (so under systemd they carry no priority and ``journalctl -p``
    cannot filter them) and repeat on every retry of a missing camera, while
    :class:`CameraUnavailable` already says what failed and what to check. Both are read
    when the first capture is made, so this runs before any.
    """
    if "OPENCV_LOG_LEVEL" not in os.environ:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET


def _fourcc_text(code: int) -> str:
    return "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4)).strip("\0") or "?"


class OpenCVSource(SourceBase):
    """Anything ``cv2.VideoCapture`` opens, with V4L2 cameras set up for raw MJPEG."""

    def __init__(
        self,
        spec: str,
        *,
        width: int = 320,
        height: int = 240,
        fps: float = 30.0,
        buffer_size: int = 1,
        read_timeout: int = 5,
    ) -> None:
        self.spec = spec  # the real thing, credentials included: only ever given to OpenCV
        self.name = redact(spec)
        self.v4l2 = _is_v4l2(spec)
        self.width, self.height, self.fps = width, height, fps
        self.buffer_size = buffer_size
        self.read_timeout = read_timeout
        self.raw = False
        self._cap: cv2.VideoCapture | None = None
        _quiet_opencv()

    def _unavailable(self) -> CameraUnavailable:
        if self.v4l2:
            return CameraUnavailable(
                f"camera {self.name} could not be opened: is it plugged in (ls /dev/video*), "
                "is this user in the 'video' group, and is no other program "
                "(motion, fswebcam, another puccicam) using it?"
            )
        if "://" not in self.spec and "%" not in self.spec and not Path(self.spec).exists():
            return CameraUnavailable(f"video source {self.name} does not exist")
        return CameraUnavailable(
            f"video source {self.name} could not be opened: not a format or URL OpenCV can read"
        )

    def open(self) -> None:
        if self.v4l2:
            # OpenCV's V4L2 backend waits this long in select() for a frame; it reads the
            # variable once per process, and an operator's own setting wins.
            os.environ.setdefault("OPENCV_VIDEOIO_V4L_SELECT_TIMEOUT", str(self.read_timeout))
            target: int | str = int(self.spec) if self.spec.isdigit() else self.spec
            cap = cv2.VideoCapture(target, cv2.CAP_V4L2)
        else:
            cap = cv2.VideoCapture(self.spec)
        if not cap.isOpened():
            cap.release()
            raise self._unavailable()
        self._cap = cap
        if self.v4l2:
            cap.set(cv2.CAP_PROP_FOURCC, _MJPG)
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            cap.set(cv2.CAP_PROP_FPS, self.fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, self.buffer_size)
            fourcc = int(cap.get(cv2.CAP_PROP_FOURCC))
            self.raw = fourcc == _MJPG and cap.set(cv2.CAP_PROP_CONVERT_RGB, 0)
            log.info(
                "camera %s opened: %dx%d %s at %g fps%s",
                self.name,
                cap.get(cv2.CAP_PROP_FRAME_WIDTH),
                cap.get(cv2.CAP_PROP_FRAME_HEIGHT),
                _fourcc_text(fourcc),
                cap.get(cv2.CAP_PROP_FPS),
                ", raw MJPEG" if self.raw else ", decoded by OpenCV",
            )
        else:
            log.info("video source %s opened (%s backend)", self.name, cap.getBackendName())

    def read(self) -> Frame:
        if self._cap is None:
            raise CameraUnavailable(f"{self.name} is not open")
        ok, frame = self._cap.read()
        if not ok or frame is None or frame.size == 0:
            if self.v4l2:
                raise CameraUnavailable(
                    f"camera {self.name} delivered no frame within {self.read_timeout} s "
                    "(unplugged, or hung)"
                )
            raise CameraUnavailable(f"video source {self.name} has no more frames")
        if self.raw:
            return Frame(received=time.time(), jpeg=frame.tobytes())
        return Frame(received=time.time(), image=frame)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
