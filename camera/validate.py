"""Decides whether a frame is a photo worth keeping; a corrupt frame never gets further.

Three layers, cheapest first:

1. the marker walk (:mod:`camera.jpeg`): not a JPEG, cut short, restart markers missing;
2. libjpeg-turbo's own warnings, read one by one rather than all treated as fatal:
   "premature end of data segment" means the data ended early and libjpeg filled the
   rest with flat grey (the frames fswebcam saves with exit code 0); "extraneous bytes
   before marker 0xd0..0xd7" is what some cameras produce on every good frame and is
   accepted; anything else (bad Huffman code, leftover data before the end marker) is
   garbled data;
3. the picture itself: blank frames (black while the sensor warms up, green from a zeroed
   YUV buffer, flat grey), a flat band across the bottom, and the colour or brightness
   jump along an 8-pixel block row that garbled entropy data leaves even when libjpeg
   resynchronises without a word.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import cv2
import numpy as np
import simplejpeg

from camera.errors import CorruptFrame
from camera.frame import Frame
from camera.jpeg import JpegInfo, inspect

log = logging.getLogger(__name__)

# libjpeg says this when bytes sit between a restart interval's data and its RST marker.
_BENIGN_WARNING = re.compile(r"extraneous bytes before marker 0xd[0-7]\b", re.IGNORECASE)

BLANK_STD = 2.0  # luma/chroma spread below which a frame holds no picture
FLAT_ROW_STD = 1.0  # a row this uniform across the whole width carries no image data
FLAT_BAND_ROWS = 8  # one MCU row: the smallest band that libjpeg's grey fill produces
SEAM_STEP = 8.0  # levels of jump at a block row that count as a discontinuity
SEAM_SCORE = 0.3  # share of the width more discontinuous at block rows than between them


@dataclass(frozen=True)
class GoodFrame:
    """A frame that passed validation, with its decoded picture (BGR)."""

    image: np.ndarray = field(repr=False)
    info: JpegInfo | None = None
    warning: str | None = None


def _decode(data: bytes, tolerant: bool, colorspace: str = "BGR") -> tuple[np.ndarray, str | None]:
    """Decode with libjpeg-turbo; return the picture and libjpeg's first warning, if any."""
    try:
        return simplejpeg.decode_jpeg(data, colorspace=colorspace, strict=True), None
    except ValueError as exc:
        message = str(exc)
    try:
        image = simplejpeg.decode_jpeg(data, colorspace=colorspace, strict=False)
    except ValueError:
        raise CorruptFrame("undecodable", f"libjpeg cannot decode it ({message})") from None
    lowered = message.lower()
    if tolerant and _BENIGN_WARNING.search(message):
        return image, message
    if "premature end of jpeg file" in lowered:
        raise CorruptFrame("truncated", f"the frame was cut short (libjpeg: {message})")
    if "premature end of data segment" in lowered:
        raise CorruptFrame(
            "ended_early",
            f"the image data ends early and the rest would be flat grey (libjpeg: {message})",
        )
    raise CorruptFrame("garbled", f"the image data is corrupt (libjpeg: {message})")


def _describe_colour(image: np.ndarray) -> str:
    b, g, r = (float(c) for c in image.reshape(-1, 3).mean(axis=0))
    if max(b, g, r) < 24:
        return "all black (the sensor is still warming up, or the lens is covered)"
    if g > r + 40 and g > b + 40:
        return "all green (the camera sent a zeroed YUV buffer)"
    return f"one flat colour (rgb {r:.0f},{g:.0f},{b:.0f}): no picture in it"


def _seam_score(ycc: np.ndarray) -> float:
    """How much more the picture jumps at 8-pixel block rows than halfway between them.

    Garbled entropy data shifts the DC level of every block after it, which shows as a
    same-signed step along a block row (and the next one, where the shift wraps round).
    Natural edges fall on block rows no more often than between them, so the score of a
    real photo stays near zero.
    """
    height, width = ycc.shape[:2]
    width -= width % 8

    def worst(offset: int) -> float:
        rows = np.arange(8 + offset, height - 8, 8)
        step = (ycc[rows, :width] + ycc[rows + 1, :width]) - (
            ycc[rows - 1, :width] + ycc[rows - 2, :width]
        )
        blocks = (step / 2).reshape(len(rows), width // 8, 8, -1).mean(axis=2)
        best = 0.0
        for signed in (blocks > SEAM_STEP, blocks < -SEAM_STEP):
            share = signed.mean(axis=1)  # rows x channels
            best = max(best, float(share.max()))
            for gap in (1, 2):  # the shift continues on the next block row (8 or 16 px MCUs)
                if len(share) > gap:
                    best = max(best, float((share[:-gap] + share[gap:]).max()))
        return best

    return worst(0) - worst(4)


def _flat_band_rows(ycc: np.ndarray) -> int:
    """How many rows at the bottom are each one flat colour across the whole width."""
    height = ycc.shape[0]
    probe = FLAT_BAND_ROWS
    while True:  # almost always settled by the first probe: the bottom row is busy
        rows = ycc[height - probe :]
        flat = rows.std(axis=1).max(axis=1) < FLAT_ROW_STD
        busy = np.flatnonzero(~flat)
        if busy.size or probe == height:
            return probe - (int(busy.max()) + 1 if busy.size else 0)
        probe = min(height, probe * 2)


def check_picture(image: np.ndarray) -> None:
    """Reject pictures with no content, a flat band across the bottom, or a block seam."""
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    ycc8 = cv2.cvtColor(image, cv2.COLOR_BGR2YCrCb)
    if float(cv2.meanStdDev(ycc8)[1].max()) < BLANK_STD:
        raise CorruptFrame("blank", _describe_colour(image))
    ycc = ycc8.astype(np.float32)
    height = ycc.shape[0]
    band = _flat_band_rows(ycc)
    if band >= FLAT_BAND_ROWS and float(cv2.meanStdDev(ycc8[height - band :])[1].max()) < BLANK_STD:
        raise CorruptFrame(
            "flat_band",
            f"the bottom {band} of {height} rows are one flat colour "
            "(the image data stopped there)",
        )
    if height >= 40 and ycc.shape[1] >= 16 and _seam_score(ycc) >= SEAM_SCORE:
        raise CorruptFrame(
            "garbled",
            "colours jump along a block row: the image data was corrupted in transfer",
        )


def validate_jpeg(data: bytes, *, picture: bool = True) -> GoodFrame:
    """Validate raw camera bytes; ``picture=False`` skips the content checks.

    :raises CorruptFrame: with a reason code and a sentence saying what is wrong.
    """
    info = inspect(data)
    image, warning = _decode(data, tolerant=picture)
    if picture:
        check_picture(image)
    return GoodFrame(image=image, info=info, warning=warning)


def validate_structure(data: bytes) -> None:
    """The checks a live frame gets: a whole JPEG that libjpeg decodes without losing data.

    Rejects what would show as a broken picture (not a JPEG, truncated, ended early,
    garbled data libjpeg notices) at about a tenth of the cost of ``validate_jpeg``: the
    picture checks (blank, flat band, seams) are for photos that are kept, not for a
    frame that is on screen for a fifteenth of a second (README: Live view). Decoded to
    grey: libjpeg still reads every byte of every component (that is where damage shows)
    but skips the colour conversion, 0.28 ms instead of 0.45 ms per 320x240 frame here.

    :raises CorruptFrame: with the same reasons as ``validate_jpeg``.
    """
    inspect(data)
    _decode(data, tolerant=True, colorspace="GRAY")


def validate(frame: Frame) -> GoodFrame:
    """Validate a frame from any source: JPEG bytes in full, decoded images by content."""
    if frame.jpeg is not None:
        return validate_jpeg(frame.jpeg)
    assert frame.image is not None
    if frame.image.size == 0:
        raise CorruptFrame("blank", "the camera returned an empty image")
    check_picture(frame.image)
    image = frame.image if frame.image.ndim == 3 else cv2.cvtColor(frame.image, cv2.COLOR_GRAY2BGR)
    return GoodFrame(image=image)
