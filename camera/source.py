"""A camera is a small protocol: open, read, close, and a context manager.

The OpenCV source, the replay source and the tests' fake all implement it, and the
grabber cannot tell them apart. ``open_source`` turns a ``camera.source`` string into one.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from camera.frame import Frame

log = logging.getLogger(__name__)

REPLAY_PREFIX = "replay:"
# Query parameters cheap IP cameras take credentials in (``?user=admin&pwd=...``).
_SECRET_PARAM = re.compile(r"(?i)^(user|username|usr|login|pass|passwd|password|pwd|pw|key"
                           r"|token|auth|secret|sig|signature)$")  # fmt: skip


def redact(spec: str) -> str:
    """``spec`` as it may be logged, stored or shown: a URL's ``user:password@`` becomes
    ``***@`` and the values of credential-like query parameters ``***``.

    The authority ends at the first ``/``, ``?`` or ``#``, as in RFC 3986 and FFmpeg's
    own URL parser, so what is hidden is exactly what the camera library would send as
    credentials. Only the grabber's source object ever holds the real string.
    """
    scheme, sep, rest = spec.partition("://")
    if not sep:
        return spec
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    if "@" in authority:
        authority = "***@" + authority.rpartition("@")[2]
    path, qmark, query = tail.partition("?")
    if qmark:
        query, hash_, fragment = query.partition("#")
        params = []
        for param in query.split("&"):
            name, eq, _value = param.partition("=")
            params.append(f"{name}=***" if eq and _SECRET_PARAM.match(name) else param)
        tail = f"{path}?{'&'.join(params)}{hash_}{fragment}"
    return f"{scheme}://{authority}{tail}"


_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://\S+")


def redact_text(text: str) -> str:
    """``text`` with every URL in it redacted (an error message that names a source)."""
    return _URL.sub(lambda match: redact(match.group()), text)


@runtime_checkable
class Source(Protocol):
    """Something frames come from. ``close`` is safe to call twice, or before ``open``.

    ``name`` is what logs, the status file and error messages show: never a secret.
    """

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
