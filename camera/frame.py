"""What a source hands to the grabber: raw JPEG bytes, or a decoded image."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One frame as the camera delivered it.

    MJPEG cameras give ``jpeg`` (exactly the bytes the camera sent, so the validator
    sees any corruption); YUYV cameras, video files and streams give ``image`` (BGR).
    ``received`` is the wall-clock time the frame arrived.
    """

    received: float
    jpeg: bytes | None = None
    image: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if (self.jpeg is None) == (self.image is None):
            raise ValueError("a Frame holds either JPEG bytes or a decoded image")
