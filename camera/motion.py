"""Movement detection on small grey pictures: is it a pet, sensor noise, or the light?

Everything works on a picture about 80 pixels wide (``SMALL_WIDTH``): an MJPEG frame is
decoded straight to that size by libjpeg's scaled decoding (1/2, 1/4 or 1/8: most of the
inverse DCT work is skipped), a decoded frame is shrunk with ``INTER_AREA``. Averaging
so many pixels into one already removes most sensor noise; a blur removes the rest.

The detector keeps a background that follows the scene slowly
(``cv2.accumulateWeighted``), compares each new picture with it after matching their
mean brightness (a cloud or a dimming lamp changes the mean, not the shape), counts the
pixels that differ by more than ``threshold`` after an opening that removes isolated
specks, and calls it movement when their share reaches ``min_area``. A change over
``light_area`` of the picture at once, or a jump of the mean brightness by more than
``light_jump``, is a light switched on or off: the background is learnt anew.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np
import simplejpeg

from camera.errors import CorruptFrame
from camera.frame import Frame
from camera.imaging import banner_top, fit
from camera.settings import MotionConfig

log = logging.getLogger(__name__)

SMALL_WIDTH = 80  # pixels: enough for a cat at 3 m in 640x480, cheap at any frame size
_KERNEL = np.ones((3, 3), np.uint8)


def small_grey(frame: Frame) -> np.ndarray:
    """The frame as a small grey picture, decoded at reduced scale where it is a JPEG.

    libjpeg decodes every byte of the entropy data even at 1/8 scale, and ``strict``
    turns its warnings into errors, so a truncated or garbled frame is refused here as
    cheaply as it is decoded.

    :raises CorruptFrame: the frame cannot be decoded whole.
    """
    if frame.jpeg is not None:
        try:
            grey = simplejpeg.decode_jpeg(
                frame.jpeg,
                colorspace="GRAY",
                fastdct=True,
                min_width=SMALL_WIDTH,
                strict=True,
            )
        except ValueError as exc:
            raise CorruptFrame("undecodable", f"not decodable for motion ({exc})") from None
        grey = grey[:, :, 0] if grey.ndim == 3 else grey
    else:
        image = frame.image
        if image is None or image.size == 0:
            raise CorruptFrame("blank", "the camera returned an empty image")
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    return shrink(grey)


def shrink(grey: np.ndarray) -> np.ndarray:
    """A grey picture scaled to ``SMALL_WIDTH`` wide, aspect kept."""
    height, width = grey.shape[:2]
    if width == SMALL_WIDTH:
        return grey
    size = (SMALL_WIDTH, max(1, round(height * SMALL_WIDTH / width)))
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA)


def photo_grey(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """The small grey picture of a photo's content above where its banner goes.

    Consecutive interval photos are compared on this: the banner's clock changes on every
    photo and must not count as movement, so its band is cut off whether or not the
    photo has one (the same picture area on both sides either way).
    """
    fitted = fit(image, width, height)
    grey = cv2.cvtColor(fitted, cv2.COLOR_BGR2GRAY) if fitted.ndim == 3 else fitted
    return shrink(grey[: banner_top(height)])


def stored_grey(jpeg: bytes, height: int) -> np.ndarray:
    """The small grey picture of a stored photo ``height`` rows high, without its banner
    band: what ``photo_grey`` gave for it when it was taken, give or take JPEG's loss.

    :raises CorruptFrame: the photo cannot be decoded.
    """
    try:
        grey = simplejpeg.decode_jpeg(jpeg, colorspace="GRAY", strict=True)
    except ValueError as exc:
        raise CorruptFrame("undecodable", f"the stored photo cannot be decoded ({exc})") from None
    grey = grey[:, :, 0] if grey.ndim == 3 else grey
    return shrink(grey[: banner_top(height)])


def _prepared(grey: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(grey, (5, 5), 0).astype(np.float32)


def _changed(settings: MotionConfig, picture: np.ndarray, background: np.ndarray) -> float:
    """The share (0..1) of the picture that differs from ``background`` beyond noise,
    both already blurred floats, after matching their mean brightness."""
    shift = float(picture.mean() - background.mean())
    diff = cv2.absdiff(picture - shift, background)
    mask = (diff > settings.threshold).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, _KERNEL)
    return float(mask.mean())


def changed_share(settings: MotionConfig, before: np.ndarray, after: np.ndarray) -> float:
    """How much of the picture changed between two small grey pictures (0..1): the
    activity of an interval photo taken without motion mode."""
    if before.shape != after.shape:
        return 1.0
    return _changed(settings, _prepared(after), _prepared(before))


@dataclass(frozen=True)
class Verdict:
    """What one look found: the changed share (0..1) and what it means."""

    changed: float
    moving: bool = False
    light: bool = False  # a sudden global change: not a pet, the background is relearnt
    learning: bool = False  # the first picture: nothing to compare with yet


class MotionDetector:
    """Fed small grey pictures, one per look; tells movement from noise and light.

    ``look`` judges without changing anything; ``learn`` then takes the picture into the
    background. The grabber validates a frame that looks like movement (or a light
    change) in full before it calls ``learn``, so a corrupt frame neither triggers a
    photo nor spoils the background.
    """

    def __init__(self, settings: MotionConfig) -> None:
        self.settings = settings
        self.background: np.ndarray | None = None
        self.peak = 0.0  # the most movement seen since ``take_peak`` was last called

    def look(self, grey: np.ndarray) -> Verdict:
        """Compare one picture with the background."""
        background = self.background
        if background is None or background.shape != grey.shape:
            return Verdict(0.0, learning=True)
        picture = _prepared(grey)
        settings = self.settings
        jump = abs(float(picture.mean() - background.mean()))
        changed = _changed(settings, picture, background)
        if jump > settings.light_jump or changed * 100 >= settings.light_area:
            return Verdict(changed, light=True)
        return Verdict(changed, moving=changed * 100 >= settings.min_area)

    def learn(self, grey: np.ndarray, verdict: Verdict) -> None:
        """Take a looked-at picture into the background (anew after a light change)."""
        picture = _prepared(grey)
        if self.background is None or verdict.learning or verdict.light:
            if verdict.light:
                log.info(
                    "sudden light change (%.0f%% of the picture): background relearnt",
                    100 * verdict.changed,
                )
            self.background = picture
            return
        cv2.accumulateWeighted(picture, self.background, self.settings.adapt)
        self.peak = max(self.peak, verdict.changed)

    def take_peak(self) -> float:
        """The largest movement since the last call (a photo's activity), then reset."""
        peak, self.peak = self.peak, 0.0
        return peak
