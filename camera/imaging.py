"""Turns a validated frame into the bytes of a photo: size, banner, JPEG."""

from __future__ import annotations

import time

import cv2
import numpy as np
import simplejpeg

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def fit(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Centre-crop to the target aspect ratio and scale, so a 16:9 camera is not squashed."""
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    if w * height > h * width:
        crop = h * width // height
        image = image[:, (w - crop) // 2 : (w - crop) // 2 + crop]
    elif w * height < h * width:
        crop = w * height // width
        image = image[(h - crop) // 2 : (h - crop) // 2 + crop]
    interpolation = cv2.INTER_AREA if image.shape[1] > width else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


def draw_banner(image: np.ndarray, taken_at: float, text_format: str) -> np.ndarray:
    """Return a copy of ``image`` with ``text_format`` (strftime, local time) on a dark band.

    The band darkens rather than covers what is under it, like fswebcam's translucent
    banner, so the photo stays visible underneath and ``puccicam check`` passes it.
    """
    out = image.copy()
    height = out.shape[0]
    scale = max(0.3, height / 700)
    text = time.strftime(text_format, time.localtime(taken_at))
    (_, text_h), baseline = cv2.getTextSize(text, _FONT, scale, 1)
    # The band's top edge sits halfway between 8-pixel block rows, where neither JPEG's
    # blocking nor the validator's block-seam check can mistake it for a corrupt seam.
    top = max(0, (height - (text_h + baseline + 6) - 4) // 8 * 8 + 4)
    region = out[top:]
    region[:] = (region.astype(np.uint16) * 2 // 5).astype(np.uint8)
    cv2.putText(
        out, text, (4, height - baseline - 3), _FONT, scale, (255, 255, 255), 1, cv2.LINE_AA
    )
    return out


def encode(image: np.ndarray, quality: int) -> bytes:
    """Baseline 4:2:0 JPEG, what every browser and phone shows without fuss."""
    return simplejpeg.encode_jpeg(
        np.ascontiguousarray(image), quality=quality, colorspace="BGR", colorsubsampling="420"
    )


def make_photo(
    image: np.ndarray,
    taken_at: float,
    *,
    width: int,
    height: int,
    quality: int,
    banner: str | None,
) -> bytes:
    """The saved photo for a good frame: fitted, bannered if wanted, encoded."""
    image = fit(image, width, height)
    if banner:
        image = draw_banner(image, taken_at, banner)
    return encode(image, quality)
