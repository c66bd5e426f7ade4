"""Kept photos: exempt from retention (age and space), capped, survive prune and restart;
un-kept they go at the next prune; a hostile or vanished name changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from camera.errors import KeepLimitReached, PhotoNotFound
from camera.keep import KeptPhotos
from camera.retention import Retention
from camera.store import PhotoStore
from tests.helpers.fakes import EPOCH

DAY = 86400.0
JPEG = b"\xff\xd8photo\xff\xd9"


@pytest.fixture
def store(tmp_path) -> PhotoStore:
    return PhotoStore(tmp_path / "photos")


@pytest.fixture
def kept(tmp_path) -> KeptPhotos:
    return KeptPhotos(tmp_path / "kept", limit=3)


def test_keep_and_unkeep(store, kept):
    photo = store.save(JPEG, EPOCH)
    assert not kept.is_kept(photo.name)
    assert kept.keep(photo.name, store.exists)
    assert not kept.keep(photo.name, store.exists)  # already kept
    assert kept.is_kept(photo.name) and kept.names() == [photo.name] and kept.count() == 1
    assert (kept.directory / photo.name).read_bytes() == b""
    assert kept.unkeep(photo.name)
    assert not kept.unkeep(photo.name)
    assert kept.names() == []


@pytest.mark.parametrize(
    "name",
    [
        "../photos/x.jpg",
        "..",
        "",
        "20261126T073000.200Z.jpg/../../secret_key",
        "20261126T073000.200Z.jpg\x00",
        "20261131T073000.200Z.jpg",  # 31 November
        "/etc/passwd",
        "20261126T073000.200z.JPG",
    ],
)
def test_a_hostile_name_never_reaches_the_filesystem(store, kept, name):
    with pytest.raises(PhotoNotFound):
        kept.keep(name, lambda _name: True)
    with pytest.raises(PhotoNotFound):
        kept.unkeep(name)
    assert not kept.is_kept(name)
    assert not kept.directory.exists()


def test_keeping_a_photo_that_is_gone_is_not_found_and_leaves_no_mark(store, kept):
    with pytest.raises(PhotoNotFound):
        kept.keep("20261126T073000.200Z.jpg", store.exists)
    assert kept.names() == []


def test_a_photo_deleted_while_being_kept_loses_its_mark(store, kept):
    photo = store.save(JPEG, EPOCH)
    answers = iter([True, False])  # there when asked first, gone once the mark is made
    with pytest.raises(PhotoNotFound):
        kept.keep(photo.name, lambda _name: next(answers))
    assert kept.names() == []


def test_the_cap_holds_and_says_why(store, kept):
    photos = [store.save(JPEG, EPOCH + i) for i in range(4)]
    for photo in photos[:3]:
        kept.keep(photo.name, store.exists)
    with pytest.raises(KeepLimitReached, match="3 photos are kept already"):
        kept.keep(photos[3].name, store.exists)
    assert kept.count() == 3 and not kept.is_kept(photos[3].name)
    kept.unkeep(photos[0].name)
    assert kept.keep(photos[3].name, store.exists)


def test_a_kept_photo_outlives_the_window_and_unkept_goes_at_the_next_prune(store, kept):
    old = store.save(JPEG, EPOCH - 3 * DAY)
    other = store.save(JPEG, EPOCH - 2 * DAY)
    new = store.save(JPEG, EPOCH)
    kept.keep(old.name, store.exists)
    retention = Retention(store, DAY, 0, kept=kept)
    assert retention.prune(EPOCH).expired == 1
    assert [p.name for p in store.photos()] == [old.name, new.name]
    assert retention.prune(EPOCH + 60).expired == 0
    kept.unkeep(old.name)
    assert retention.prune(EPOCH + 120).expired == 1  # the same, long-lived retention
    assert [p.name for p in store.photos()] == [new.name]
    assert other.name not in kept.names()


def test_the_free_space_floor_never_takes_a_kept_photo(store, kept, caplog):
    photos = [store.save(JPEG, EPOCH + i) for i in range(5)]
    for photo in photos[:2]:
        kept.keep(photo.name, store.exists)
    retention = Retention(store, 10 * DAY, 100, free_bytes=lambda _path: 0, kept=kept)
    assert retention.prune(EPOCH + 10).for_space == 2  # the unkept ones but the newest
    assert [p.name for p in store.photos()] == [p.name for p in photos[:2]] + [photos[-1].name]
    assert "no older photo left to delete" in caplog.text


def test_many_hours_of_only_kept_photos_do_not_stall_retention(store, tmp_path):
    kept = KeptPhotos(tmp_path / "kept", limit=1000)
    hours = 60
    for hour in range(hours):  # two days and a half, one kept photo each hour...
        photo = store.save(JPEG, EPOCH - (hours - hour) * 3600)
        kept.keep(photo.name, store.exists)
    unkept = [store.save(JPEG, EPOCH - DAY - 1800 + i) for i in range(3)]  # ...and 3 expired
    fresh = store.save(JPEG, EPOCH)
    retention = Retention(store, DAY, 0, kept=kept)
    started = time.perf_counter()
    assert retention.prune(EPOCH).expired == 3
    assert retention.prune(EPOCH + 300).expired == 0
    assert time.perf_counter() - started < 5
    names = {p.name for p in store.photos()}
    assert fresh.name in names and not names & {p.name for p in unkept}
    assert len(names) == hours + 1
    # a photo that expires later, after all those kept hours, is still found
    late = store.save(JPEG, EPOCH + 600)
    assert retention.prune(EPOCH + 600 + DAY + 1).expired == 2  # fresh and late
    assert late.name not in {p.name for p in store.photos()}


def test_a_mark_whose_photo_was_deleted_by_hand_is_swept(store, kept):
    photo = store.save(JPEG, EPOCH)
    kept.keep(photo.name, store.exists)
    store.path(photo.name).unlink()
    Retention(store, DAY, 0, kept=kept).prune(EPOCH)
    assert kept.names() == []


def _cli(data: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "puccicam", *args, "--data-dir", str(data)],
        check=False,
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("PUCCICAM_")},
        timeout=60,
    )


def test_kept_photos_survive_the_real_prune_and_a_restart(tmp_path):
    """Each ``puccicam prune`` is a fresh process: what it honours survives a restart."""
    data = tmp_path / "data"
    store = PhotoStore(data / "photos")
    now = time.time()
    old = store.save(JPEG, now - 3 * DAY)
    gone = store.save(JPEG, now - 2 * DAY)
    new = store.save(JPEG, now - 60)
    kept = KeptPhotos(data / "kept")
    kept.keep(old.name, store.exists)

    first = _cli(data, "prune")
    assert first.returncode == 0, first.stderr
    assert "deleted 1 photo(s)" in first.stdout
    second = _cli(data, "prune")  # the next start
    assert "deleted 0 photo(s)" in second.stdout
    assert [p.name for p in store.photos()] == [old.name, new.name]
    assert gone.name not in kept.names()

    kept.unkeep(old.name)
    third = _cli(data, "prune")
    assert "deleted 1 photo(s)" in third.stdout
    assert [p.name for p in store.photos()] == [new.name]
