"""``replay:DIR``: the JPEG files in a directory, played like an MJPEG camera.

The bytes are handed over untouched, corrupt files included, in name order, looping, at
the configured frame rate; the demo and the tests see exactly what a camera would send.
Like a camera, it does not rewind when reopened: it carries on after the last frame it
played, and the directory is listed again at every open, so files added or removed
meanwhile (the fault tests' way of changing what the "camera" sends) take effect.
"""

from __future__ import annotations

import bisect
import logging
import time
from pathlib import Path

from camera.errors import CameraUnavailable
from camera.frame import Frame
from camera.source import SourceBase

log = logging.getLogger(__name__)


class ReplaySource(SourceBase):
    """Replays a directory of JPEG files as camera frames."""

    def __init__(self, directory: Path, fps: float = 30.0) -> None:
        self.directory = Path(directory)
        self.name = f"replay:{self.directory}"
        self.period = 1.0 / fps if fps > 0 else 0.0
        self._files: list[Path] = []
        self._next = 0
        self._last: str | None = None  # name of the last frame played, kept across opens
        self._due = 0.0

    def open(self) -> None:
        try:
            self._files = sorted(
                p for p in self.directory.iterdir() if p.suffix.lower() in (".jpg", ".jpeg")
            )
        except OSError as exc:
            raise CameraUnavailable(
                f"replay directory {self.directory} cannot be read ({exc.strerror}): "
                "check the path given as camera.source"
            ) from None
        if not self._files:
            raise CameraUnavailable(f"replay directory {self.directory} has no .jpg files")
        names = [p.name for p in self._files]
        self._next = bisect.bisect_right(names, self._last) if self._last else 0
        self._due = time.monotonic()
        log.debug("replaying %d frames from %s", len(self._files), self.directory)

    def read(self) -> Frame:
        if not self._files:
            raise CameraUnavailable(f"{self.name} is not open")
        wait = self._due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self._due = max(self._due, time.monotonic() - self.period) + self.period
        path = self._files[self._next % len(self._files)]
        self._next += 1
        self._last = path.name
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CameraUnavailable(f"replay frame {path} vanished ({exc.strerror})") from None
        return Frame(received=time.time(), jpeg=data)

    def close(self) -> None:
        self._files = []
