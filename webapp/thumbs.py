"""Thumbnails, made once per photo on first request and kept beside the photos."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import simplejpeg

from camera.errors import PhotoNotFound
from camera.fsutil import write_atomic
from camera.imaging import encode, fit
from camera.store import PhotoStore

log = logging.getLogger(__name__)


def thumbnail(store: PhotoStore, name: str, width: int) -> Path:
    """The thumbnail of photo ``name``, created atomically if it does not exist yet.

    :raises PhotoNotFound: no such photo.
    """
    path = store.thumb_path(name)
    if path.is_file():
        return path
    data = store.read(name)
    # libjpeg decodes straight to half size when asked: cheaper than decode-then-shrink.
    image = simplejpeg.decode_jpeg(data, colorspace="BGR", min_width=width, min_factor=1)
    height = max(1, round(width * image.shape[0] / image.shape[1]))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, encode(fit(image, width, height), 75), durable=False)
    except FileNotFoundError:  # retention removed the hour directory meanwhile
        raise PhotoNotFound(f"no photo named {name}") from None
    # Retention may have deleted the photo (and looked for its thumbnail) while this one
    # was being made: checked after the write, so either it or we remove the thumbnail.
    if not os.path.exists(store.locate(name) or ""):
        path.unlink(missing_ok=True)
        raise PhotoNotFound(f"no photo named {name}")
    log.debug("thumbnail made for %s", name)
    return path
