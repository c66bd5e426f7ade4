"""What the owner is told and when: camera offline and back, disk nearly full, motion,
and a daily summary.

The policy only: it decides, from photos saved and the clock, which :class:`Message` goes
out, and hands it to an outbox (``camera.sender.Sender``, which does the network). The
grabber calls :meth:`Alerts.photo_saved` for each photo; a thread of its own calls
:meth:`Alerts.tick`, so an outage is noticed even while the grabber is stuck in a read.
Each state is announced once per change: one "offline" per outage, one "back", one
"disk nearly full" per crossing of the threshold (re-armed only 5 points above it).
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from camera.clock import SystemClock
from camera.settings import NotifyConfig
from camera.store import Photo

log = logging.getLogger(__name__)

DAY = 86400.0
DISK_REARM = 5.0  # percentage points above the threshold before "disk" can be sent again


@dataclass
class Message:
    """One alert: what it says, whether dropping it is worse than sending it late, and its
    photo."""

    event: str
    title: str
    body: str
    critical: bool = False
    photo: bytes | None = None  # a JPEG, attached where the service takes attachments
    photo_name: str = "photo.jpg"


class Outbox(Protocol):
    sent: int
    failed: int

    def put(self, message: Message) -> None: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...


def next_daily(now: float, at: str) -> float | None:
    """The next local ``HH:MM`` strictly after ``now``, or None for an empty ``at``."""
    if not at:
        return None
    hour, minute = (int(part) for part in at.split(":"))
    day = time.localtime(now)
    for ahead in range(3):  # today, tomorrow, or (across a DST gap) the day after
        moment = time.mktime(
            (day.tm_year, day.tm_mon, day.tm_mday + ahead, hour, minute, 0, 0, 0, -1)
        )
        if moment > now:
            return moment
    return None


def _clock_time(stamp: float) -> str:
    return time.strftime("%H:%M", time.localtime(stamp))


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 120 else f"{seconds / 3600:.1f} h"


class Alerts:
    """Turns the grabber's photos and the passing time into alerts for an outbox."""

    def __init__(
        self,
        outbox: Outbox,
        settings: NotifyConfig,
        *,
        data_dir: Path,
        hour_counts: Callable[[float, float], dict[int, int]],
        hour_activity: Callable[[float, float], dict[int, tuple[int, int]]] | None = None,
        clock: SystemClock | None = None,
        disk_usage: Callable[[Path], Any] = shutil.disk_usage,
    ) -> None:
        self.outbox = outbox
        self.settings = settings
        self.data_dir = data_dir
        self.hour_counts = hour_counts
        self.hour_activity = hour_activity
        self.clock = clock or SystemClock()
        self.disk_usage = disk_usage
        self.offline_after = settings.offline_after * 60
        self.status: Any = None  # the grabber's Status: rejected frames for the summary
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        now = self.clock.now()
        self.last_photo = now  # a camera dark from the start is offline after the delay too
        self.offline = False
        self.outages: list[list[float | None]] = []  # [last photo, back or None]
        self.disk_low = False
        self.last_motion: float | None = None
        self.next_daily = next_daily(now, settings.daily_at)
        self._rejected_before = 0

    @property
    def sent(self) -> int:
        return self.outbox.sent

    @property
    def failed(self) -> int:
        return self.outbox.failed

    # -- running --------------------------------------------------------------------

    def start(self, status: Any = None) -> None:
        """Start the outbox and the thread that ticks; ``status`` is the grabber's."""
        self.status = status
        self._rejected_before = self._rejected_total()
        self.outbox.start()
        # Often enough to be on time for a short offline_after, rarely enough to cost nothing.
        period = min(10.0, max(0.2, self.offline_after / 10))
        self._thread = threading.Thread(
            target=self._run, args=(period,), name="notify-alerts", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1.0)
        self.outbox.stop()

    def _run(self, period: float) -> None:
        while not self._stop.wait(period):
            try:
                self.tick(self.clock.now())
            except Exception:  # an alert bug must never end the checks, nor capture
                log.exception("alert check failed")

    # -- the events -----------------------------------------------------------------

    def _emit(self, message: Message) -> None:
        if message.event in self.settings.events:
            log.info("alert: %s", message.title)
            self.outbox.put(message)

    def photo_saved(self, photo: Photo, jpeg: bytes, kind: str = "interval") -> None:
        """The grabber saved ``photo``: the camera is back if it was offline; motion alerts."""
        with self._lock:
            taken = photo.taken_at
            self.last_photo = max(self.last_photo, taken)
            if self.offline:
                self.offline = False
                since = self.outages[-1][0] or taken
                self.outages[-1][1] = taken
                self._emit(
                    Message(
                        "back",
                        "puccicam: camera back",
                        f"Photos again since {_clock_time(taken)}, after "
                        f"{_duration(taken - since)} without one.",
                        critical=True,
                    )
                )
            gap = self.settings.motion_gap * 60
            if kind == "motion" and (self.last_motion is None or taken - self.last_motion >= gap):
                self.last_motion = taken
                self._emit(
                    Message(
                        "motion",
                        "puccicam: motion",
                        f"Motion at {_clock_time(taken)}.",
                        photo=jpeg,
                        photo_name=photo.name,
                    )
                )

    def tick(self, now: float) -> None:
        """Check the time-driven events: offline, disk, the daily summary."""
        with self._lock:
            self._check_offline(now)
            self._check_disk()
            if self.next_daily is not None and now >= self.next_daily:
                self._emit(self._summary(self.next_daily, now))
                self.next_daily = next_daily(now, self.settings.daily_at)

    def _check_offline(self, now: float) -> None:
        if self.offline or now - self.last_photo < self.offline_after:
            return
        self.offline = True
        self.outages.append([self.last_photo, None])
        self._emit(
            Message(
                "offline",
                "puccicam: camera offline",
                f"No photo since {_clock_time(self.last_photo)} "
                f"({_duration(now - self.last_photo)}). Is the camera plugged in and the "
                "grabber running? 'journalctl -u puccicam-grabber' says why.",
                critical=True,
            )
        )

    def _check_disk(self) -> None:
        threshold = self.settings.disk_free_percent
        if not threshold:
            return
        try:
            usage = self.disk_usage(self.data_dir)
        except OSError as exc:
            log.debug("disk space of %s unknown: %s", self.data_dir, exc)
            return
        free = 100.0 * usage.free / usage.total if usage.total else 100.0
        if not self.disk_low and free < threshold:
            self.disk_low = True
            self._emit(
                Message(
                    "disk",
                    "puccicam: disk nearly full",
                    f"{free:.1f}% free ({usage.free / 2**30:.1f} GiB) on the disk holding "
                    f"{self.data_dir}; the oldest photos go first when it is full.",
                    critical=True,
                )
            )
        elif self.disk_low and free >= threshold + DISK_REARM:
            self.disk_low = False
            log.info("disk space back above %g%% free", threshold + DISK_REARM)

    # -- the daily summary ------------------------------------------------------------

    def _rejected_total(self) -> int:
        return sum(self.status.rejected.values()) if self.status is not None else 0

    def _offline_seconds(self, since: float, until: float, now: float) -> float:
        total = 0.0
        for start, end in self.outages:
            total += max(0.0, min(now if end is None else end, until) - max(start, since))
        self.outages = [o for o in self.outages if o[1] is None or o[1] > since]
        return total

    def _most_active(self, since: float, until: float, counts: dict[int, int]) -> int | None:
        """The hour with the most photos showing movement (then the highest activity);
        with no movement at all (or no activity stored), the hour with the most photos."""
        activity = self.hour_activity(since, until) if self.hour_activity else {}
        moved = {hour: (moving, peak) for hour, (peak, moving) in activity.items() if peak}
        if moved:
            return max(moved, key=lambda hour: (moved[hour], -hour))
        busiest = max(counts, key=lambda hour: (counts[hour], -hour), default=None)
        return busiest if busiest is not None and counts[busiest] else None

    def _summary(self, due: float, now: float) -> Message:
        since = due - DAY
        counts = self.hour_counts(since, due)
        rejected = self._rejected_total()
        offline = self._offline_seconds(since, due, now)
        busiest = self._most_active(since, due, counts)
        shown = "none"
        if busiest is not None:
            shown = f"{_clock_time(busiest)}-{_clock_time(busiest + 3600)}"
        body = (
            f"Last 24 hours: {sum(counts.values())} photos taken, "
            f"{rejected - self._rejected_before} frames rejected, "
            f"{offline / 3600:.1f} h offline; most active hour: {shown}."
        )
        self._rejected_before = rejected
        return Message("daily", "puccicam: daily summary", body)
