"""The store writes atomically, lists by time cheaply and only opens its own names."""

from __future__ import annotations

import errno
import os
import time

import pytest

from camera.errors import CorruptFrame, PhotoNotFound, StorageError, StorageFull
from camera.store import PhotoStore, parse_name, photo_name
from camera.validate import validate_jpeg
from tests.helpers.fakes import EPOCH


def test_names_sort_by_time_and_round_trip():
    times = [EPOCH, EPOCH + 0.2, EPOCH + 0.999, EPOCH + 3600.001, EPOCH + 86400 * 3]
    names = [photo_name(t) for t in times]
    assert names == sorted(names)
    assert [round(parse_name(n).taken_at, 3) for n in names] == [round(t, 3) for t in times]
    assert photo_name(EPOCH) == "20261118T110640.000Z.jpg"


@pytest.mark.parametrize(
    "name",
    [
        "../status.json",
        "..%2fstatus.json",
        "/etc/passwd",
        "20261118T082640.000Z.jpg/..",
        "20261118T082640.000Z.JPG",
        "20261399T082640.000Z.jpg",
        "x\0.jpg",
        "",
        ".tmp-20261118T082640.000Z.jpg.1",
    ],
)
def test_only_store_names_resolve(tmp_path, name):
    with pytest.raises(PhotoNotFound):
        PhotoStore(tmp_path).path(name)


def test_save_is_atomic_and_leaves_no_temp(tmp_path, good_frame):
    store = PhotoStore(tmp_path)
    photo = store.save(good_frame, EPOCH, verify=validate_jpeg)
    assert store.read(photo.name) == good_frame
    assert store.path(photo.name).parent == tmp_path / "20261118" / "11"
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [photo.name]


def test_same_millisecond_keeps_both(tmp_path, good_frame):
    store = PhotoStore(tmp_path)
    a, b = store.save(good_frame, EPOCH), store.save(good_frame, EPOCH)
    assert a.name != b.name and len(list(store.photos())) == 2


def test_listing_by_time(tmp_path, good_frame):
    store = PhotoStore(tmp_path)
    for i in range(0, 30 * 3600, 1800):  # every half hour for 30 hours
        store.save(good_frame, EPOCH + i)
    every = list(store.photos())
    assert len(every) == 60 and every == sorted(every)
    recent = list(store.photos(since=EPOCH + 6 * 3600))
    assert len(recent) == 48 and recent[0].taken_at == EPOCH + 6 * 3600
    window = list(store.photos(since=EPOCH + 3600, until=EPOCH + 7200))
    assert [p.taken_at - EPOCH for p in window] == [3600, 5400, 7200]
    assert store.latest().taken_at == EPOCH + 29.5 * 3600
    assert list(store.photos(newest_first=True)) == every[::-1]


def test_failed_read_back_check_removes_the_photo(tmp_path, good_frame):
    store = PhotoStore(tmp_path)

    def reject(data):
        raise CorruptFrame("garbled", "read back wrong")

    with pytest.raises(StorageError, match="did not read back intact"):
        store.save(good_frame, EPOCH, verify=reject)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


@pytest.mark.parametrize(
    ("code", "kind"), [(errno.ENOSPC, StorageFull), (errno.EROFS, StorageError)]
)
def test_full_or_read_only_disk_leaves_nothing_partial(
    tmp_path, good_frame, monkeypatch, code, kind
):
    store = PhotoStore(tmp_path)
    real_write = os.write

    def failing_write(fd, data):
        real_write(fd, bytes(data[:100]))  # part of the photo reaches the disk first
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr("camera.fsutil.os.write", failing_write)
    with pytest.raises(kind):
        store.save(good_frame, EPOCH)
    monkeypatch.undo()
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]
    assert list(store.photos()) == []


def test_stale_temp_files_are_removed_and_nothing_else(tmp_path, good_frame):
    store = PhotoStore(tmp_path)
    photo = store.save(good_frame, EPOCH)
    hour = store.path(photo.name).parent
    (hour / ".tmp-20261118T082640.200Z.jpg.4242").write_bytes(good_frame[:500])
    (hour / "owner-notes.txt").write_text("mine")
    assert store.remove_stale_temps() == 1
    assert sorted(p.name for p in hour.iterdir()) == [photo.name, "owner-notes.txt"]


def test_delete_cleans_up_empty_directories(tmp_path, good_frame):
    store = PhotoStore(tmp_path)
    photo = store.save(good_frame, EPOCH)
    store.delete(photo)
    assert list(tmp_path.iterdir()) == []


def test_a_photo_in_the_last_half_millisecond_of_an_hour_is_filed_by_its_name(tmp_path, good_frame):
    store = PhotoStore(tmp_path)
    photo = store.save(good_frame, 1764140399.9996)  # rounds to 07:00:00.000
    assert photo.name == "20251126T070000.000Z.jpg"
    assert store.path(photo.name).parent.name == "07"
    store.delete(photo)
    assert list(store.photos()) == []


def test_names_with_non_ascii_digits_are_not_ours():
    arabic_indic = "".join(chr(0x660 + int(d)) for d in "20261126")
    assert parse_name(arabic_indic + "T073000.200Z.jpg") is None
    assert parse_name("20261126T073000.200Z.jpg\n") is None


def test_a_live_writers_temp_file_is_left_alone(tmp_path, good_frame):
    import subprocess
    import sys

    store = PhotoStore(tmp_path)
    photo = store.save(good_frame, EPOCH)
    hour = store.path(photo.name).parent
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        live = hour / f".tmp-{photo.name}.{sleeper.pid}.1"
        dead = hour / f".tmp-{photo.name}.999999999.1"
        live.write_bytes(b"half")
        dead.write_bytes(b"half")
        assert store.remove_stale_temps() == 1
        assert live.exists() and not dead.exists()
    finally:
        sleeper.kill()


def test_a_temp_file_older_than_the_process_with_its_pid_is_stale(tmp_path, good_frame):
    """After a reboot the pids come round again: a process of the writer's pid that
    started after the file was last written is not its writer (the VM's power-cut test
    found a time-lapse temp file kept for ever this way)."""
    import subprocess
    import sys

    store = PhotoStore(tmp_path)
    photo = store.save(good_frame, EPOCH)
    hour = store.path(photo.name).parent
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        reused = hour / f".tmp-{photo.name}.{sleeper.pid}.1"
        reused.write_bytes(b"half")
        an_hour_ago = time.time() - 3600
        os.utime(reused, (an_hour_ago, an_hour_ago))  # written before its pid's process began
        assert store.remove_stale_temps() == 1
        assert not reused.exists()
    finally:
        sleeper.kill()
