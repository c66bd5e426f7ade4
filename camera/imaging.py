"""Turns a validated frame into the bytes of a photo: size, banner, JPEG.

The banner is drawn with a bundled TrueType font (DejaVu Sans, ``camera/fonts/``, its
licence beside it) through Pillow: OpenCV's built-in Hershey fonts know ASCII only and
drew ``Bärli`` as ``B??rli``.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import cv2
import numpy as np
import simplejpeg
from PIL import Image, ImageDraw, ImageFont

FONT_FILE = Path(__file__).with_name("fonts") / "DejaVuSans.ttf"
_NOT_A_CHARACTER = "\uffff"  # never in a font: draws as the font's "missing glyph" box


@functools.lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont:
    # The basic layout: no shaping library needed, and a banner needs none.
    return ImageFont.truetype(str(FONT_FILE), size, layout_engine=ImageFont.Layout.BASIC)


def _glyph(font: ImageFont.FreeTypeFont, char: str) -> bytes:
    mask = Image.new("L", (2 * font.size, 2 * font.size))
    ImageDraw.Draw(mask).text((0, 0), char, fill=255, font=font)
    return mask.tobytes()


def missing_glyphs(text: str) -> list[str]:
    """The characters of ``text`` the banner font cannot draw (it would draw a box)."""
    font = _font(16)
    box = _glyph(font, _NOT_A_CHARACTER)
    return [c for c in dict.fromkeys(text) if c.isprintable() and _glyph(font, c) == box]


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


def _banner_font(height: int) -> ImageFont.FreeTypeFont:
    return _font(max(9, round(height * 0.045)))


def banner_top(height: int) -> int:
    """The first row of the banner band in a photo ``height`` rows high."""
    ascent, descent = _banner_font(height).getmetrics()
    # The band's top edge sits halfway between 8-pixel block rows, where neither JPEG's
    # blocking nor the validator's block-seam check can mistake it for a corrupt seam.
    return max(0, (height - (ascent + descent + 6) - 4) // 8 * 8 + 4)


def draw_banner(image: np.ndarray, taken_at: float, text_format: str) -> np.ndarray:
    """Return a copy of ``image`` with ``text_format`` (strftime, local time) on a dark band.

    The band darkens rather than covers what is under it, like fswebcam's translucent
    banner, so the photo stays visible underneath and ``puccicam check`` passes it.
    """
    out = image.copy()
    height, width = out.shape[:2]
    font = _banner_font(height)
    text = time.strftime(text_format, time.localtime(taken_at))
    descent = font.getmetrics()[1]
    top = banner_top(height)
    mask = Image.new("L", (width, height - top))
    ImageDraw.Draw(mask).text(
        (4, height - top - descent - 3), text, fill=255, font=font, anchor="ls"
    )
    alpha = np.asarray(mask, dtype=np.uint16)
    if out.ndim == 3:
        alpha = alpha[:, :, None]
    dark = out[top:].astype(np.uint16) * 2 // 5
    out[top:] = (dark + (255 - dark) * alpha // 255).astype(np.uint8)
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
