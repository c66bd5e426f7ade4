"""Fakes at the true boundaries: the camera hardware and the clock.

FakeCamera implements the same Source protocol as the OpenCV and replay sources and
replays real fixture bytes; it fails only when a test tells it to, the way real
cameras fail (unplugged, hung, spewing garbage).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from camera.errors import CameraUnavailable
from camera.frame import Frame
from camera.source import SourceBase

EPOCH = 1_795_000_000.0  # 2026-11-18T11:06:40Z: a fixed "now" for deterministic tests


class FakeClock:
    """Time that passes only when the grabber sleeps (or a test advances it)."""

    def __init__(self, now: float = EPOCH, stop_at: float | None = None) -> None:
        self.t = now
        self.stop_at = stop_at
        self.sleeps: list[float] = []
        self.events: list[tuple[float, object]] = []

    def at(self, when: float, action) -> None:
        """Run ``action()`` once the clock has passed ``when`` (a plug-in, a repair...)."""
        self.events.append((when, action))
        self.events.sort(key=lambda e: e[0])

    def _fire(self) -> None:
        while self.events and self.events[0][0] <= self.t:
            self.events.pop(0)[1]()

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds
        self._fire()

    def sleep(self, seconds: float, stop: threading.Event) -> bool:
        self.sleeps.append(seconds)
        self.t += max(0.0, seconds)
        self._fire()
        if self.stop_at is not None and self.t >= self.stop_at:
            stop.set()
        return stop.is_set()


class FakeCamera(SourceBase):
    """Replays fixture frames in order, looping; fails on demand."""

    def __init__(
        self,
        frames: Sequence[bytes],
        clock: FakeClock | None = None,
        read_timeout: float = 5.0,
        frame_period: float = 0.0,
    ) -> None:
        self.name = "fake"
        self.frame_period = frame_period  # each read takes this long on the clock (1/fps)
        self.frames = list(frames)
        self.clock = clock
        self.read_timeout = read_timeout
        self.index = 0
        self.reads = 0
        self.opens = 0
        self.closes = 0
        self.is_open = False
        self.plugged = True
        self.hung = False
        self.blocking_hang: threading.Event | None = None
        self.garbage_left = 0

    # the failures a test can cause
    def unplug(self) -> None:
        self.plugged = False

    def plug_in(self) -> None:
        self.plugged = True

    def hang(self) -> None:
        """Reads time out, as OpenCV's V4L2 select() does when no frame arrives."""
        self.hung = True

    def hang_forever(self) -> threading.Event:
        """Reads block until the returned event is set (a driver stuck in an ioctl)."""
        self.blocking_hang = threading.Event()
        return self.blocking_hang

    def spew_garbage(self, count: int) -> None:
        self.garbage_left = count

    # the Source protocol
    def open(self) -> None:
        if not self.plugged:
            raise CameraUnavailable("fake camera could not be opened: it is unplugged")
        self.is_open = True
        self.opens += 1

    def read(self) -> Frame:
        if not self.is_open:
            raise CameraUnavailable("fake camera is not open")
        if self.blocking_hang is not None:
            self.blocking_hang.wait()
        if not self.plugged:
            raise CameraUnavailable("fake camera delivered no frame: unplugged")
        if self.hung:
            if self.clock is not None:
                self.clock.advance(self.read_timeout)
            raise CameraUnavailable(f"fake camera delivered no frame within {self.read_timeout} s")
        self.reads += 1
        if self.clock is not None and self.frame_period:
            self.clock.advance(self.frame_period)
        now = self.clock.now() if self.clock else 0.0
        if self.garbage_left:
            self.garbage_left -= 1
            return Frame(received=now, jpeg=bytes((self.reads * 37 + i) % 256 for i in range(2048)))
        data = self.frames[self.index % len(self.frames)]
        self.index += 1
        return Frame(received=now, jpeg=data)

    def close(self) -> None:
        if self.is_open:
            self.closes += 1
        self.is_open = False
