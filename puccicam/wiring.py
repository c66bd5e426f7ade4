"""Turns a ``Config`` into the objects that do the work, in one place.

The grabber daemon, ``grab --once``, ``prune``, the web app and the demo all get their
source, store, retention, notifier and alerts from here, so a setting (the V4L2 buffer count,
the retention window's unit) is translated once and cannot diverge between them.
``camera/`` itself only ever sees its own settings sections and plain values.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from camera.alerts import Alerts
from camera.clock import SystemClock
from camera.grabber import Grabber
from camera.keep import KeptPhotos
from camera.live import LiveServer
from camera.notify import Notifier
from camera.retention import Retention
from camera.source import Source, open_source
from camera.store import PhotoStore

if TYPE_CHECKING:
    from camera.timelapse import TimeLapse
from puccicam.config import Config, ConfigError


def make_source(config: Config, spec: str | None = None) -> Source:
    """The camera ``camera.source`` names (or ``spec``), not yet opened."""
    cam, cap = config.camera, config.capture
    return open_source(
        spec or cam.source,
        width=cap.width,
        height=cap.height,
        fps=cam.fps,
        buffer_size=cam.buffer_size,
        read_timeout=cam.read_timeout,
    )


def make_store(config: Config, *, cache_listings: bool = False) -> PhotoStore:
    """The photo store of the data dir, thumbnails included."""
    return PhotoStore(config.photos_dir, config.thumbs_dir, cache_listings=cache_listings)


def make_kept(config: Config) -> KeptPhotos:
    """The kept photos' markers, capped by ``storage.keep_max``."""
    return KeptPhotos(config.kept_dir, config.storage.keep_max)


def make_retention(config: Config, store: PhotoStore) -> Retention:
    """Retention with the window and free-space floor in the units it works in; kept
    photos are exempt from both."""
    return Retention(
        store,
        config.storage.retention_hours * 3600,
        config.storage.min_free_mb * 2**20,
        kept=make_kept(config),
    )


def make_timelapse(config: Config, store: PhotoStore) -> TimeLapse:
    """The window's time-lapse; it pauses above the storage floor by its margin."""
    from camera.timelapse import TimeLapse

    return TimeLapse(
        store,
        config.timelapse_dir,
        window_seconds=config.storage.retention_hours * 3600,
        fps=config.timelapse.fps,
        size=(config.capture.width, config.capture.height),
        min_free_bytes=(config.storage.min_free_mb + config.timelapse.margin_mb) * 2**20,
        # At most about 60 photos a segment (each new photo re-encodes its segment),
        # at least 10 minutes (a day is then at most 144 segments to join).
        segment_seconds=int(min(3600, max(600, 60 * _photo_spacing(config)))),
    )


def _photo_spacing(config: Config) -> float:
    """The shortest time between two photos: the interval, or in motion mode the
    motion photos' ``min_gap`` when that is shorter (a pet at play then adds a photo
    every ``min_gap``, and the time-lapse's segments must stay short for it)."""
    if config.capture.motion:
        return min(config.capture.interval, config.motion.min_gap)
    return config.capture.interval


def make_alerts(
    config: Config, store: PhotoStore, clock: SystemClock | None = None
) -> Alerts | None:
    """The alerts of ``[notify]`` with their Apprise sender, or None when no URL is set
    (then Apprise is not even imported)."""
    if not config.notify.urls:
        return None
    from camera.sender import Sender

    return Alerts(
        Sender.from_urls(config.notify.urls),
        config.notify,
        data_dir=config.data_dir,
        hour_counts=store.hour_counts,
        hour_activity=store.hour_activity,
        clock=clock,
    )


def make_grabber(
    config: Config,
    *,
    source: Source | None = None,
    store: PhotoStore | None = None,
    notifier: Notifier | None = None,
    clock: SystemClock | None = None,
    stop: threading.Event | None = None,
    alerts: bool = False,
) -> Grabber:
    """A grabber wired from the config; systemd's notifier unless one is given (the demo
    passes a silent one, tests a fake clock and camera); the daemon asks for ``alerts``.

    :raises ConfigError: the banner holds a character the banner font cannot draw.
    """
    cap = config.capture
    if cap.overlay:
        from camera.imaging import missing_glyphs

        missing = missing_glyphs(time.strftime(cap.overlay_text))
        if missing:
            shown = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in missing)
            raise ConfigError(
                f"capture.overlay_text: the banner font (DejaVu Sans) cannot draw {shown}; "
                "use Latin, Greek or Cyrillic letters, or turn the banner off "
                "(capture.overlay = false)"
            )
    store = store or make_store(config)
    live = config.live
    return Grabber(
        source or make_source(config),
        store,
        make_retention(config, store),
        camera=config.camera,
        capture=config.capture,
        status_path=config.status_path,
        notifier=notifier,
        clock=clock,
        stop=stop,
        live=LiveServer(config.live_socket, live.max_viewers) if live.enabled else None,
        live_fps=live.fps,
        alerts=make_alerts(config, store, clock) if alerts else None,
        motion=config.motion,
        timelapse=make_timelapse(config, store) if config.timelapse.enabled else None,
    )
