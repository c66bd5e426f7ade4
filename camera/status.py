"""The grabber's status file: what the web app and ``puccicam status`` show operators."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from camera.fsutil import write_atomic
from camera.source import redact, redact_text

log = logging.getLogger(__name__)

LATE_GRACE = 60.0


def late_after(interval: float, warmup_delay: float) -> float:
    """Seconds after which the newest photo counts as late: two intervals (one missed
    photo is not yet a problem), the warm-up delay, and a minute of slack for retries.

    The one rule behind ``/healthz`` and the gallery's banner; the README states it.
    """
    return 2 * interval + warmup_delay + LATE_GRACE


@dataclass
class Status:
    """A snapshot of the grabber, rewritten atomically after every cycle."""

    pid: int = 0
    started: float | None = None
    interval: float = 0.0
    source: str = ""
    camera: str = "unknown"  # "ok", "missing" or "unknown"
    camera_found: bool = False  # opened at least once: a missing camera is lost, not unfound
    last_attempt: float | None = None
    last_success: float | None = None
    last_photo: str | None = None
    saved: int = 0
    failed: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    last_error: str | None = None
    next_capture: float | None = None
    mode: str = "interval"  # "interval", or "live" while someone watches
    viewers: int = 0

    def reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1


def grabber_running(pid: int) -> bool | None:
    """Whether ``pid`` is a live puccicam process (not a pid reused by another program);
    None if this user cannot see it (another user's process under ``hidepid``)."""
    if pid <= 0:
        return False
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError):
        return False
    except PermissionError:
        return None
    # ``python -m puccicam grab`` or ``.../venv/bin/puccicam grab``; a zombie has no args.
    return any(os.path.basename(arg) == b"puccicam" for arg in args)


def write_status(path: Path, status: Status) -> None:
    """Replace the status file in one rename; readers never see half of it.

    Not fsynced: it is rewritten every cycle, and after a power cut a stale or missing
    status is harmless, while an fsync per cycle would wear an SD card for nothing.
    """
    write_atomic(path, json.dumps(asdict(status), indent=1).encode(), durable=False)


def read_status(path: Path) -> Status | None:
    """The last status written, or None if the grabber never ran (or the file is bad).

    The source and the last error are redacted again: a file written by an older version
    may hold a camera URL's credentials, and what is read here is shown.
    """
    try:
        raw = json.loads(path.read_text())
        known = Status.__dataclass_fields__
        status = Status(**{k: v for k, v in raw.items() if k in known})
        status.source = redact(str(status.source))
        status.last_error = redact_text(status.last_error) if status.last_error else None
        return status
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        log.warning("status file %s is unreadable: %s", path, exc)
        return None


def live_grabber(status: Status | None) -> int | None:
    """The pid of the grabber daemon that wrote ``status`` if it is still running, else None.

    A daemon that stopped cleanly clears ``next_capture``; one that was killed left a pid
    that is gone, or reused by a program that is no puccicam.
    """
    if status is None or not status.pid or status.next_capture is None:
        return None
    if status.pid == os.getpid():
        return None
    try:
        os.kill(status.pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, and another user's: the service's
    try:
        command = Path(f"/proc/{status.pid}/cmdline").read_bytes()
    except OSError:
        return status.pid  # cannot tell: better a refusal than a fight over the camera
    return status.pid if b"puccicam" in command else None
