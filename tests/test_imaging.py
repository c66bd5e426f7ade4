"""Photos are fitted without squashing, bannered on request, and encoded as asked."""

from __future__ import annotations

import numpy as np
import pytest

from camera.imaging import draw_banner, fit, make_photo
from camera.validate import validate_jpeg
from tests.helpers.fakes import EPOCH
from tests.helpers.frames import frame_bytes


def test_fit_crops_wide_frames_instead_of_squashing():
    wide = np.zeros((720, 1280, 3), np.uint8)
    wide[:, :160] = 255  # a white strip at the far left is cropped away
    out = fit(wide, 320, 240)
    assert out.shape == (240, 320, 3) and out[:, :5].max() == 0


def test_banner_darkens_the_bottom_and_writes_text():
    image = validate_jpeg(frame_bytes("good-chelsea.jpg")).image
    out = draw_banner(image, EPOCH, "puccicam %Y-%m-%d %H:%M:%S")
    assert (out[:200] == image[:200]).all()
    bottom_before, bottom_after = image[-8:].astype(int), out[-8:].astype(int)
    assert (out[-24:].max(axis=2) >= 250).any()  # white text in the band
    assert np.median(bottom_after) < np.median(bottom_before)


def test_overlay_can_be_switched_off_and_the_photo_still_validates():
    image = validate_jpeg(frame_bytes("good-640x480.jpg")).image
    plain = make_photo(image, EPOCH, width=320, height=240, quality=80, banner=None)
    bannered = make_photo(image, EPOCH, width=320, height=240, quality=80, banner="%H:%M")
    assert plain != bannered
    for photo in (plain, bannered):
        assert validate_jpeg(photo).image.shape == (240, 320, 3)


def test_quality_is_applied():
    image = validate_jpeg(frame_bytes("good-chelsea.jpg")).image
    low = make_photo(image, EPOCH, width=320, height=240, quality=30, banner=None)
    high = make_photo(image, EPOCH, width=320, height=240, quality=95, banner=None)
    assert len(low) < len(high) / 2


def _banner(text: str) -> np.ndarray:
    image = np.full((240, 320, 3), 128, np.uint8)
    return draw_banner(image, EPOCH, text)[200:]


def test_a_non_ascii_banner_is_drawn_with_its_letters():
    # OpenCV's Hershey font drew each byte of a UTF-8 letter as "?": "Bärli" was "B??rli".
    umlaut = _banner("Bärli %H:%M")
    assert not np.array_equal(umlaut, _banner("B??rli %H:%M"))
    assert not np.array_equal(umlaut, _banner("B?rli %H:%M"))
    # ...and the dots are drawn: "ä" is not "a"
    assert not np.array_equal(umlaut, _banner("Barli %H:%M"))
    assert not np.array_equal(_banner("Grüße aus Zürich"), _banner("Gruse aus Zurich"))


def test_the_banner_font_knows_latin_greek_and_cyrillic_but_not_everything():
    from camera.imaging import missing_glyphs

    assert missing_glyphs("Bärli Ødegård Łódź ß € ° Πούτσι Пуччи 12:34") == []
    assert missing_glyphs("猫 Bärli") == ["猫"]


def test_a_banner_the_font_cannot_draw_is_refused_at_start(make_config):
    from puccicam.config import ConfigError
    from puccicam.wiring import make_grabber

    with pytest.raises(ConfigError, match=r"capture.overlay_text: .*'猫' \(U\+732B\)"):
        make_grabber(make_config(capture__overlay_text="猫 %H:%M"))
    make_grabber(make_config(capture__overlay_text="猫 %H:%M", capture__overlay=False))
    make_grabber(make_config(capture__overlay_text="Bärli %H:%M"))


def test_a_bannered_photo_with_an_umlaut_passes_validation():
    image = validate_jpeg(frame_bytes("good-chelsea.jpg")).image
    photo = make_photo(image, EPOCH, width=320, height=240, quality=80, banner="Bärli %H:%M")
    assert validate_jpeg(photo).image.shape == (240, 320, 3)
