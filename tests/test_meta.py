"""Photo metadata in a JPEG comment: round trip, photos without it, damaged and hostile
segments, and the store's cached reads."""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest
from PIL import Image

from camera.meta import HEAD_BYTES, MOVING, UNKNOWN, PhotoMeta, read_meta, with_meta
from camera.store import PhotoStore
from camera.validate import validate_jpeg
from tests.helpers.fakes import EPOCH


@pytest.mark.parametrize(
    "meta",
    [PhotoMeta(), PhotoMeta("motion", 73), PhotoMeta("interval", 0), PhotoMeta("motion", 100)],
)
def test_round_trip(good_frame, meta):
    tagged = with_meta(good_frame, meta)
    assert read_meta(tagged) == meta


def test_a_tagged_photo_still_validates_and_decodes_everywhere(good_frame, tmp_path):
    tagged = with_meta(good_frame, PhotoMeta("motion", 42))
    validate_jpeg(tagged)
    assert cv2.imdecode(np.frombuffer(tagged, np.uint8), cv2.IMREAD_COLOR).shape == (240, 320, 3)
    path = tmp_path / "p.jpg"
    path.write_bytes(tagged)
    with Image.open(path) as image:
        image.load()
        assert image.size == (320, 240)
    assert read_meta(path) == PhotoMeta("motion", 42)


def test_a_photo_without_the_segment_is_an_interval_photo_of_unknown_activity(good_frame):
    assert read_meta(good_frame) == UNKNOWN == PhotoMeta("interval", None)


def _segment(payload: bytes, length: int | None = None) -> bytes:
    length = len(payload) + 2 if length is None else length
    return b"\xff\xd8\xff\xfe" + struct.pack(">H", length) + payload


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"\xff\xd8",
        b"\xff\xd8\xff\xfe",  # cut inside the length
        _segment(b"puccicam kind=motion activity=42")[:-5],  # cut inside the payload
        _segment(b"puccicam kind=motion activity=42", length=0),
        _segment(b"puccicam kind=motion activity=42", length=1),
        _segment(b"puccicam kind=motion activity=42", length=65535),  # a length that lies
        _segment(b"puccicam kind=burglar activity=42"),
        _segment(b"puccicam kind=motion activity=101"),
        _segment(b"puccicam kind=motion activity=-4"),
        _segment(b"puccicam kind=motion activity=4 extra"),
        _segment(b"someone else's comment"),
        _segment(b"puccicam \xff\xfe\x00\x00 kind=motion"),
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 100,
    ],
)
def test_damaged_or_hostile_segments_read_as_unknown(head):
    assert read_meta(head) == UNKNOWN


def test_a_long_foreign_comment_costs_no_more_than_the_head(good_frame, tmp_path):
    huge = _segment(b"x" * 60000) + good_frame[2:]
    path = tmp_path / "p.jpg"
    path.write_bytes(huge)
    assert read_meta(path) == UNKNOWN
    assert len(with_meta(good_frame, PhotoMeta("motion", 100))) - len(good_frame) < HEAD_BYTES


def test_bad_values_are_refused_when_written(good_frame):
    with pytest.raises(ValueError, match="kind"):
        PhotoMeta("burglar", 1)
    with pytest.raises(ValueError, match="activity"):
        PhotoMeta("motion", 101)
    with pytest.raises(ValueError, match="not a JPEG"):
        with_meta(b"GIF89a", PhotoMeta())


def test_moving_means_a_motion_photo_or_activity_from_the_threshold():
    assert PhotoMeta("motion", 0).moving
    assert PhotoMeta("interval", MOVING).moving
    assert not PhotoMeta("interval", MOVING - 1).moving
    assert not PhotoMeta("interval", None).moving


def test_the_store_writes_meta_in_the_photo_and_caches_reads(tmp_path, good_frame):
    store = PhotoStore(tmp_path / "photos")
    photo = store.save(good_frame, EPOCH, meta=PhotoMeta("motion", 30))
    plain = store.save(good_frame, EPOCH + 1)
    assert store.meta(photo.name) == PhotoMeta("motion", 30)
    assert store.meta(plain.name) == UNKNOWN
    # Photos never change: the second read comes from the cache, not the file.
    store.path(photo.name).write_bytes(good_frame)
    assert store.meta(photo.name) == PhotoMeta("motion", 30)
    # Deleted with the photo (retention's way), forgotten with it.
    store.delete(photo)
    assert store.meta(photo.name) == UNKNOWN
    assert list(store.photos()) == [plain]


def test_meta_of_names_the_store_never_writes_is_unknown(tmp_path):
    store = PhotoStore(tmp_path / "photos")
    assert store.meta("../../etc/passwd") == UNKNOWN
    assert store.meta("20261118T110640.000Z.jpg") == UNKNOWN  # no such photo


@pytest.mark.parametrize("cache_listings", [False, True])
def test_hour_activity_counts_whole_and_cut_hours(
    tmp_path, good_frame, cache_listings, monkeypatch
):
    store = PhotoStore(tmp_path / "photos", cache_listings=cache_listings)
    hour = int(EPOCH // 3600) * 3600
    for offset, meta in [
        (100, PhotoMeta("interval", 60)),
        (200, PhotoMeta("motion", 20)),
        (300, PhotoMeta("interval", 2)),
        (3700, PhotoMeta("interval", 5)),
        (3800, PhotoMeta()),
    ]:
        store.save(good_frame, hour + offset, meta=meta)
    # Listings settle (and are cached) once their directory is a few seconds old.
    monkeypatch.setattr("camera.store.time.time", lambda: hour + 10 * 3600)
    whole = {hour: (60, 2), hour + 3600: (5, 0)}
    assert store.hour_activity(hour, hour + 7200) == whole
    assert store.hour_activity(hour, hour + 7200) == whole  # again, from the cache
    assert store.hour_activity(hour + 150, hour + 7200)[hour] == (20, 1)  # cut at the start
    assert store.hour_activity(hour, hour + 250)[hour] == (60, 2)  # cut at the end
    assert store.hour_activity(hour + 250, hour + 3750) == {hour: (2, 0), hour + 3600: (5, 0)}
