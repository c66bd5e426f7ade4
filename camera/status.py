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
    notify_sent: int = 0
    notify_failed: int = 0
    reconnects: int = 0
    deleted: int = 0

    def reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1


def grabber_running(pid: int) -> bool | None:
    """Whether ``pid`` is a live ``puccicam grab`` process: True, False (gone, a zombie,
    or a pid reused by another program), or None if this user cannot tell (another user's
    process under ``hidepid``). The one rule behind ``status`` and ``grab --once``."""
    if pid <= 0:
        return False
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError):
        # Gone, or another user's hidden from us (``hidepid=2``): a signal 0 tells which.
        return None if _exists(pid) else False
    except OSError:  # PermissionError under ``hidepid=1``
        return None
    return is_grab_command([arg.decode(errors="replace") for arg in args if arg])


def is_grab_command(argv: list[str]) -> bool:
    """Whether ``argv`` runs puccicam's ``grab``: ``puccicam grab``,
    ``python .../bin/puccicam grab`` (a script through its interpreter) or
    ``python -m puccicam grab``, with any options; not any program that merely names a
    puccicam path (``less /var/lib/puccicam/status.json``)."""
    if not argv:  # a zombie has no arguments
        return False
    rest = _after_entry_point(argv)
    return rest is not None and "grab" in rest


def _after_entry_point(argv: list[str]) -> list[str] | None:
    """The arguments after puccicam's entry point in ``argv``, or None if it has none."""
    if os.path.basename(argv[0]) == "puccicam":
        return argv[1:]
    if not os.path.basename(argv[0]).startswith("python"):
        return None
    args = iter(enumerate(argv[1:], start=1))
    for i, arg in args:
        if arg == "-m":
            return argv[i + 2 :] if argv[i + 1 : i + 2] == ["puccicam"] else None
        if arg.startswith("-m"):
            return argv[i + 1 :] if arg == "-mpuccicam" else None
        if arg in ("-W", "-X"):  # options that take a value
            next(args, None)
        elif arg.startswith("-c") or arg == "-":  # a command or stdin: not puccicam
            return None
        elif not arg.startswith("-"):  # the script
            return argv[i + 1 :] if os.path.basename(arg) == "puccicam" else None
    return None


def _exists(pid: int) -> bool:
    """Whether a process ``pid`` exists, whoever's it is."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


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
    """The pid of the grabber daemon that wrote ``status`` if it is certainly still
    running, else None.

    A daemon that stopped cleanly clears ``next_capture``; one that was killed left a pid
    that is gone, or reused by another program. A process this user cannot see counts
    as not running: ``grab --once`` refuses only a grabber it knows is there.
    """
    if status is None or not status.pid or status.next_capture is None:
        return None
    if status.pid == os.getpid():
        return None
    return status.pid if grabber_running(status.pid) is True else None
