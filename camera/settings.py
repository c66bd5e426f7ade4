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
    motion: bool = setting(
        False,
        "also save a photo when something moves (see [motion]); keeps the camera open "
        "(`grab --motion`)",
    )


@dataclass(frozen=True)
class MotionConfig:
    """Motion-triggered photos (with ``capture.motion``): how movement is told from noise."""

    fps: float = setting(2.0, "frames looked at per second for movement", min=0.2, max=15)
    min_gap: float = setting(
        30.0,
        "seconds at least between two motion photos (a pet at play does not fill the card)",
        min=1,
    )
    threshold: int = setting(
        25,
        "grey levels a pixel of the small picture must differ from the background to count "
        "as changed (higher: less sensitive to noise)",
        min=1,
        max=255,
    )
    min_area: float = setting(
        0.5, "percent of the picture that must change to count as movement", min=0.01, max=50
    )
    light_area: float = setting(
        60.0,
        "percent of the picture changing at once that counts as a light change, not a pet "
        "(the background is learnt anew)",
        min=1,
        max=100,
    )
    light_jump: float = setting(
        20.0,
        "grey levels the mean brightness may jump at once before it counts as a light change",
        min=1,
        max=255,
    )
    adapt: float = setting(
        0.05,
        "share of each looked-at frame blended into the background: how fast it follows "
        "slow light changes",
        min=0.001,
        max=0.5,
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


NOTIFY_EVENTS = ("offline", "back", "disk", "motion", "daily")


@dataclass(frozen=True)
class NotifyConfig:
    """Alerts sent to the owner's phone (or anything Apprise speaks) by the grabber."""

    urls: tuple[str, ...] = setting(
        (),
        "Apprise URLs to notify (ntfy://, tgram://, pover://, mailto://, json://...); a TOML "
        "list, or in the environment separated by spaces or commas; empty: nothing is sent. "
        "A secret: keep it in a mode 0600/0640 config file",
        secret=True,
    )
    events: tuple[str, ...] = setting(
        NOTIFY_EVENTS,
        "which alerts go out: offline, back, disk, motion, daily",
        choices=NOTIFY_EVENTS,
    )
    offline_after: float = setting(
        15.0, "minutes without a photo before 'camera offline' is sent (once per outage)", min=0.05
    )
    motion_gap: float = setting(
        10.0, "minutes at least between two motion alerts (each with its photo)", min=0
    )
    daily_at: str = setting(
        "20:00", "local time (HH:MM) of the daily summary; empty: none", clock_time=True
    )
    disk_free_percent: float = setting(
        5.0,
        "'disk nearly full' is sent when free space falls below this percentage of the data "
        "dir's disk, again only after it has been 5 points above; 0: never",
        min=0,
        max=50,
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
