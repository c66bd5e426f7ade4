"""Is the camera keeping up? What the gallery's banner and ``/healthz`` both ask."""

from __future__ import annotations

import time

from camera.status import late_after, read_status
from camera.store import Photo
from webapp import state


def health(latest: Photo | None) -> dict:
    """Whether the camera is offline and the newest photo late, by one rule
    (:func:`camera.status.late_after`) with the grabber's own interval when it has run."""
    current = state()
    config = current.config
    status = read_status(config.status_path)
    interval = status.interval if status and status.interval else config.capture.interval
    limit = late_after(interval, config.camera.warmup_delay)
    return {
        "offline": bool(status and status.camera == "missing"),
        "late": latest is None or time.time() - latest.taken_at > limit,
        "interval": interval,
    }
