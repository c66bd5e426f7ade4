"""What a photo says about itself: its kind (interval or motion) and its activity score.

The metadata travels inside the photo, as a JPEG comment (COM) segment right after the
start-of-image marker: it is written in the same atomic write as the picture, so it
survives a SIGKILL exactly as the photo does and retention removes it with it, and
reading it costs the first few hundred bytes of the file. Decoders skip COM segments,
so the photo shows and validates as before. A photo without the segment (taken before
this existed, or by another tool) reads as an interval photo of unknown activity; a
damaged or hostile segment reads the same way, never as an error.
"""

from __future__ import annotations

import logging
import re
import struct
from dataclasses import dataclass
from os import PathLike

log = logging.getLogger(__name__)

KINDS = ("interval", "motion")
# Activity at or above this counts as "something moved" (the gallery's filter): about
# 1% of the picture changed (activity is 100 x the square root of the changed share).
MOVING = 10
# Enough for the segment and the SOI before it; nothing more of the photo is read.
HEAD_BYTES = 256

_SOI, _COM = b"\xff\xd8", b"\xff\xfe"
_TAG = b"puccicam "
_PAYLOAD = re.compile(rb"puccicam kind=(interval|motion) activity=([0-9]{1,3}|-)")


@dataclass(frozen=True)
class PhotoMeta:
    """A photo's kind (``interval`` or ``motion``) and activity (0..100, None unknown)."""

    kind: str = "interval"
    activity: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.activity is not None and not 0 <= self.activity <= 100:
            raise ValueError(f"activity must be 0..100, not {self.activity}")

    @property
    def moving(self) -> bool:
        """Whether the gallery's "with movement" filter shows this photo."""
        return self.kind == "motion" or (self.activity is not None and self.activity >= MOVING)


UNKNOWN = PhotoMeta()


def with_meta(jpeg: bytes, meta: PhotoMeta) -> bytes:
    """``jpeg`` with a COM segment holding ``meta`` right after its SOI marker.

    :raises ValueError: ``jpeg`` does not start with SOI.
    """
    if not jpeg.startswith(_SOI):
        raise ValueError("not a JPEG: no start-of-image marker")
    activity = "-" if meta.activity is None else str(meta.activity)
    payload = _TAG + f"kind={meta.kind} activity={activity}".encode("ascii")
    return _SOI + _COM + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def parse_meta(head: bytes) -> PhotoMeta:
    """The metadata in the first bytes of a photo; ``UNKNOWN`` if there is none or it is
    damaged (a truncated segment, a length that lies, values out of range)."""
    if len(head) < 6 or not head.startswith(_SOI + _COM):
        return UNKNOWN
    (length,) = struct.unpack(">H", head[4:6])
    payload = head[6 : 4 + length]
    if length < 2 or len(payload) != length - 2 or not payload.startswith(_TAG):
        return UNKNOWN
    match = _PAYLOAD.fullmatch(payload)
    if match is None:
        log.debug("photo metadata not understood: %r", payload[:64])
        return UNKNOWN
    raw = match.group(2)
    activity = None if raw == b"-" else int(raw)
    if activity is not None and activity > 100:
        return UNKNOWN
    return PhotoMeta(match.group(1).decode(), activity)


def read_meta(source: bytes | str | PathLike[str]) -> PhotoMeta:
    """The metadata of a photo given as bytes or as a path (reads ``HEAD_BYTES`` only).

    :raises OSError: the file cannot be read.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        return parse_meta(bytes(source[:HEAD_BYTES]))
    with open(source, "rb") as fh:
        return parse_meta(fh.read(HEAD_BYTES))


def activity_from_share(changed: float) -> int:
    """Activity 0..100 for the share of the picture that changed (0..1).

    The square root spreads the small shares a pet makes (1% of the picture is 10, 4%
    is 20, a quarter is 50) instead of crowding them near zero.
    """
    return max(0, min(100, round(100 * max(0.0, changed) ** 0.5)))
