"""Every corrupt fixture is rejected for the right reason; every good one is accepted."""

from __future__ import annotations

import contextlib

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from camera.errors import CorruptFrame
from camera.frame import Frame
from camera.validate import check_picture, validate, validate_jpeg
from tests.helpers.frames import BAD, EXPECTED_REASON, GOOD, frame_bytes


def test_every_bad_fixture_has_an_expected_reason():
    assert sorted(EXPECTED_REASON) == BAD


@pytest.mark.parametrize("name", GOOD)
def test_good_frames_are_accepted(name):
    good = validate_jpeg(frame_bytes(name))
    assert good.image.ndim == 3 and good.image.shape[2] == 3


@pytest.mark.parametrize("name", BAD)
def test_bad_frames_are_rejected_with_their_reason(name):
    with pytest.raises(CorruptFrame) as caught:
        validate_jpeg(frame_bytes(name))
    assert caught.value.reason == EXPECTED_REASON[name]
    assert len(caught.value.detail) > 10  # a sentence, not a code


def test_stray_bytes_before_restart_markers_warn_but_pass():
    good = validate_jpeg(frame_bytes("good-stray-bytes.jpg"))
    assert "extraneous bytes before marker 0xd" in good.warning


def test_the_same_stray_bytes_before_the_end_marker_are_garbage():
    data = frame_bytes("good-chelsea.jpg")
    tampered = data[:-2] + bytes(range(1, 17)) + data[-2:]
    with pytest.raises(CorruptFrame) as caught:
        validate_jpeg(tampered)
    assert caught.value.reason == "garbled"


def test_a_decoder_that_returns_an_image_is_not_enough():
    """OpenCV decodes the data-ended-early frame without complaint; we do not accept it."""
    data = frame_bytes("bad-ended-early.jpg")
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is not None
    with pytest.raises(CorruptFrame):
        validate_jpeg(data)


def test_read_back_check_skips_the_picture_but_not_the_structure():
    assert validate_jpeg(frame_bytes("bad-grey.jpg"), picture=False).image is not None
    with pytest.raises(CorruptFrame):
        validate_jpeg(frame_bytes("bad-truncated.jpg"), picture=False)


def test_decoded_frames_get_the_picture_checks():
    image = validate_jpeg(frame_bytes("good-chelsea.jpg")).image
    assert validate(Frame(received=0, image=image)).image.shape == image.shape
    with pytest.raises(CorruptFrame, match="blank"):
        validate(Frame(received=0, image=np.zeros((240, 320, 3), np.uint8)))
    band = image.copy()
    band[200:] = (0, 135, 0)
    with pytest.raises(CorruptFrame, match="flat_band"):
        validate(Frame(received=0, image=band))


def test_grayscale_decoded_frames_are_checked_too():
    grey = cv2.cvtColor(validate_jpeg(frame_bytes("good-grayscale.jpg")).image, cv2.COLOR_BGR2GRAY)
    assert validate(Frame(received=0, image=grey)).image.shape == (240, 320, 3)


# Real photographs of every kind, re-encoded as cameras do, never trip the picture checks.
@pytest.mark.parametrize("quality", [30, 50, 80, 95])
@pytest.mark.parametrize("name", GOOD)
def test_no_false_rejections_across_qualities(name, quality):
    image = validate_jpeg(frame_bytes(name)).image
    reencoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()
    validate_jpeg(reencoded)


def _lose_a_transfer(data: bytes, rng: np.random.Generator) -> bytes:
    """Delete a run of bytes from the scan, as a lost USB isochronous packet does."""
    start = data.index(b"\xff\xda") + 20
    at = int(rng.integers(start, len(data) - 300))
    return data[:at] + data[at + int(rng.integers(16, 1024)) :]


def test_lost_transfers_are_caught(tmp_path):
    """Measured, not assumed: at least 97% of 200 random packet losses are rejected."""
    rng = np.random.default_rng(7)
    sources = [
        frame_bytes(n) for n in ("good-chelsea.jpg", "good-coffee-422.jpg", "good-640x480.jpg")
    ]
    caught = 0
    for i in range(200):
        try:
            validate_jpeg(_lose_a_transfer(sources[i % len(sources)], rng))
        except CorruptFrame:
            caught += 1
    assert caught >= 194, f"only {caught}/200 damaged frames rejected"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_never_crash_the_validator(blob):
    try:
        validate_jpeg(blob)
    except CorruptFrame as exc:
        assert exc.reason


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=2, max_value=14029), st.integers(min_value=0, max_value=255))
def test_single_byte_damage_never_crashes_and_never_passes_truncation(position, value):
    data = bytearray(frame_bytes("good-chelsea.jpg"))
    data[position] = value
    with contextlib.suppress(CorruptFrame):
        validate_jpeg(bytes(data))
    with pytest.raises(CorruptFrame):
        validate_jpeg(
            bytes(data[: position + 1]) if position < len(data) - 3 else bytes(data[:100])
        )


def test_dark_noisy_night_scene_is_not_blank():
    night = validate_jpeg(frame_bytes("good-night-noise.jpg")).image
    assert night.mean() < 30  # it really is dark
    check_picture(night)


def test_a_giant_frame_header_is_rejected_before_decoding():
    data = bytearray(frame_bytes("good-chelsea.jpg"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = (60000).to_bytes(2, "big") + (60000).to_bytes(2, "big")
    with pytest.raises(CorruptFrame) as caught:
        validate_jpeg(bytes(data))
    assert caught.value.reason == "unsupported"


def test_very_narrow_pictures_do_not_crash_the_checks():
    narrow = np.random.default_rng(1).integers(0, 255, (240, 6, 3), dtype=np.uint8)
    check_picture(narrow)
