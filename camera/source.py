"""A camera is a small protocol: open, read, close, and a context manager.

The OpenCV source, the replay source and the tests' fake all implement it, and the
grabber cannot tell them apart. ``open_source`` turns a ``camera.source`` string into one.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from camera.frame import Frame

log = logging.getLogger(__name__)

REPLAY_PREFIX = "replay:"


@runtime_checkable
class Source(Protocol):
    """Something frames come from. ``close`` is safe to call twice, or before ``open``."""

    name: str

    def open(self) -> None:
        """Start delivering frames. :raises CameraUnavailable: with what to check."""

    def read(self) -> Frame:
        """The next frame. :raises CameraUnavailable: the camera vanished or timed out."""

    def close(self) -> None:
        """Release the device (the LED goes off)."""


class SourceBase:
    """Context-manager plumbing shared by every source."""

    name = "source"

    def open(self) -> None:  # pragma: no cover - every source overrides it
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - every source overrides it
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def open_source(
    spec: str, *, width: int, height: int, fps: float, buffer_size: int = 1, read_timeout: int = 5
) -> Source:
    """The source a ``camera.source`` string names (not yet opened)."""
    if spec.startswith(REPLAY_PREFIX):
        from camera.replay import ReplaySource

        return ReplaySource(Path(spec.removeprefix(REPLAY_PREFIX)).expanduser(), fps=fps)
    from camera.opencv_source import OpenCVSource

    return OpenCVSource(
        spec,
        width=width,
        height=height,
        fps=fps,
        buffer_size=buffer_size,
        read_timeout=read_timeout,
    )
