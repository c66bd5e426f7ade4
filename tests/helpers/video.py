"""Photos whose content says their place in a sequence, and reading a video back.

Photo ``i`` is a uniform grey of level ``BASE + STEP * i``: a decoded frame's mean
level gives its index back, so a test sees each frame's photo, in the order played.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

BASE = 20
STEP = 8
MAX_INDEX = (235 - BASE) // STEP


def level_jpeg(index: int, size: tuple[int, int] = (320, 240)) -> bytes:
    """A JPEG of grey level BASE + STEP * index (index 0 to MAX_INDEX)."""
    assert 0 <= index <= MAX_INDEX, index
    image = np.full((size[1], size[0], 3), BASE + STEP * index, np.uint8)
    return cv2.imencode(".jpg", image)[1].tobytes()


def frames(path: Path) -> tuple[list[int], float, list[float]]:
    """The photo index of each frame, the fps the file declares, and each frame's time (ms)."""
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), f"OpenCV cannot open {path}"
    indexes, times = [], []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        times.append(capture.get(cv2.CAP_PROP_POS_MSEC))
        indexes.append(round((float(frame.mean()) - BASE) / STEP))
    fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    return indexes, fps, times
