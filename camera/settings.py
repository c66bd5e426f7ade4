"""The capture pipeline's settings: the sections of the configuration that ``camera/`` reads.

They live here, not in ``puccicam.config``, so that ``camera`` depends on nothing above
it: the application's ``Config`` is built from these sections (and the web's), and the
grabber, store and retention take them, or plain values, never the whole ``Config``.
Each field carries its documentation and limits beside its default; ``puccicam.config``
reads them to validate, to document and to print ``puccicam config --example``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def setting(default: Any, help: str, **limits: Any) -> Any:
    """A settings field with its documentation and limits kept beside its default."""
    return field(default=default, metadata={"help": help, **limits})


@dataclass(frozen=True)
class CameraConfig:
    """Where frames come from and how the device is treated."""

    source: str = setting(
        "/dev/video0",
        "/dev/videoN, /dev/v4l/by-id/..., an index, a video file, an image pattern, "
        "an http(s)/rtsp URL, or replay:DIR",
    )
    fps: float = setting(30.0, "frame rate asked of the camera; replay: sources play at it", min=1)
    warmup_delay: float = setting(3.0, "seconds to wait after opening before reading", min=0)
    warmup_frames: int = setting(13, "frames discarded after the delay, unchecked", min=0)
    max_attempts: int = setting(10, "frames tried per photo before giving up", min=1)
    read_timeout: int = setting(
        2,
        "seconds a V4L2 read may wait for a frame (sets `OPENCV_VIDEOIO_V4L_SELECT_TIMEOUT` "
        "unless you set it; SIGTERM may wait as long)",
        min=1,
        max=60,
    )
    keep_open_below: float = setting(
        30.0, "intervals shorter than this keep the device open between photos", min=0
    )
    drain_frames: int = setting(
        2, "stale frames read and dropped before each kept-open shot", min=0
    )
    buffer_size: int = setting(1, "V4L2 buffers asked for (fewer means fresher frames)", min=1)
    backoff_max: float = setting(
        60.0, "longest wait between attempts to reopen a lost camera", min=1
    )


@dataclass(frozen=True)
class CaptureConfig:
    """What a saved photo looks like and how often one is taken."""

    interval: float = setting(
        300.0, "seconds between photos, aligned to the clock (at least 0.2)", min=0.2
    )
    width: int = setting(320, "saved photo width in pixels", min=16, max=4096)
    height: int = setting(240, "saved photo height in pixels", min=16, max=4096)
    jpeg_quality: int = setting(80, "JPEG quality of saved photos", min=1, max=100)
    overlay: bool = setting(
        True, "draw a timestamp banner across the bottom (`--no-overlay` turns it off)"
    )
    overlay_text: str = setting(
        "puccicam  %Y-%m-%d %H:%M:%S %Z",
        "banner text, strftime format, local time; any character DejaVu Sans has "
        "(Latin, Greek, Cyrillic...)",
    )


@dataclass(frozen=True)
class StorageConfig:
    """How long photos are kept and how much disk must stay free."""

    retention_hours: float = setting(
        24.0, "photos older than this (by capture time) are deleted", min=0.01
    )
    min_free_mb: int = setting(64, "below this free space the oldest photos are deleted", min=0)
    keep_max: int = setting(
        500,
        "most photos kept past the retention window at once (the Keep button); "
        "at it, keeping another is refused",
        min=0,
        max=100000,
    )


@dataclass(frozen=True)
class LiveConfig:
    """Live view: the grabber streams frames to the web app while an owner watches."""

    enabled: bool = setting(True, "offer live view to logged-in owners")
    max_viewers: int = setting(3, "most live streams at once", min=1, max=10)
    max_minutes: float = setting(
        10.0, "a live stream ends after this long (the page offers to go on)", min=0.05, max=240
    )
    fps: float = setting(15.0, "frames per second sent to each viewer", min=1, max=30)
    socket: str = setting(
        "",
        "the grabber's live socket; empty: $RUNTIME_DIRECTORY/live.sock under systemd, "
        "else data_dir/live.sock",
    )


@dataclass(frozen=True)
class TimelapseConfig:
    """The automatic time-lapse of the retention window, built by the grabber."""

    enabled: bool = setting(True, "build the time-lapse as photos arrive (in the grabber)")
    fps: float = setting(
        10.0, "frames per second: one photo per frame (a day at 5 minutes is 29 s)", min=1, max=60
    )
    margin_mb: int = setting(
        32,
        "time-lapse building pauses while free space is below storage.min_free_mb plus this, "
        "so a filling disk stops the time-lapse before it stops photos",
        min=0,
    )
