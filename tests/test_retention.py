"""Retention keeps exactly the window, frees disk oldest first, and touches nothing else."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from camera.retention import Retention
from camera.store import PhotoStore
from tests.helpers.fakes import EPOCH

DAY = 86400.0


@settings(max_examples=40, deadline=None)
@given(
    ages=st.lists(st.floats(min_value=0, max_value=3 * DAY), min_size=1, max_size=40),
    window_hours=st.floats(min_value=0.5, max_value=48),
)
def test_never_deletes_a_photo_younger_than_the_window(tmp_path_factory, ages, window_hours):
    store = PhotoStore(tmp_path_factory.mktemp("photos"))
    for age in ages:
        store.save(b"\xff\xd8photo\xff\xd9", EPOCH - age)
    result = Retention(store, window_hours * 3600, 0).prune(EPOCH)
    kept = list(store.photos())
    cutoff = EPOCH - window_hours * 3600
    assert all(p.taken_at >= cutoff for p in kept)
    expected_kept = sorted({round(EPOCH - a, 3) for a in ages if round(EPOCH - a, 3) >= cutoff})
    assert len(kept) >= len(expected_kept)
    assert result.expired + len(kept) == len(ages)


def test_exactly_24_hours_not_48(tmp_path):
    store = PhotoStore(tmp_path)
    for minutes in range(0, 48 * 60, 5):
        store.save(b"\xff\xd8x\xff\xd9", EPOCH - minutes * 60)
    retention = Retention(store, DAY, 0)
    retention.prune(EPOCH)
    kept = list(store.photos())
    assert len(kept) == 24 * 12 + 1  # the photo exactly 24 h old is still inside
    assert kept[0].taken_at == EPOCH - DAY
    # the next prune, five minutes later, removes exactly that one
    store.save(b"\xff\xd8x\xff\xd9", EPOCH + 300)
    assert retention.prune(EPOCH + 300).expired == 1


def test_disk_guard_deletes_oldest_first_and_keeps_the_newest(tmp_path):
    store = PhotoStore(tmp_path)
    for i in range(10):
        store.save(b"\xff\xd8x\xff\xd9", EPOCH + i)
    free = {"bytes": 0}

    def fake_free(path):
        return free["bytes"]

    retention = Retention(store, 10 * DAY, 100, free_bytes=fake_free)
    deleted = []
    real_delete = store.delete

    def tracking_delete(photo):
        deleted.append(photo.taken_at - EPOCH)
        real_delete(photo)
        if len(deleted) == 3:
            free["bytes"] = 1000  # enough space again after three photos

    store.delete = tracking_delete
    assert retention.prune(EPOCH + 20).for_space == 3
    assert deleted == [0, 1, 2]
    free["bytes"] = 0  # something else fills the disk: never delete the last photo
    retention.prune(EPOCH + 20)
    assert [p.taken_at - EPOCH for p in store.photos()] == [9]


def test_never_touches_files_it_did_not_write(tmp_path):
    store = PhotoStore(tmp_path / "photos")
    store.save(b"\xff\xd8x\xff\xd9", EPOCH - 2 * DAY)
    hour = next((tmp_path / "photos").rglob("*.jpg")).parent
    foreign = [hour / "holiday.jpg", tmp_path / "photos" / "README", tmp_path / "other.jpg"]
    for path in foreign:
        path.write_text("not ours")
    old = tmp_path / "photos" / "20200101" / "00"
    old.mkdir(parents=True)
    (old / "20200101T000000.000Z.jpeg").write_text("not our suffix")
    Retention(store, DAY, 10**15, free_bytes=lambda p: 0).prune(EPOCH)
    assert all(p.exists() for p in foreign)
    assert (old / "20200101T000000.000Z.jpeg").exists()


def test_an_undeletable_photo_ends_the_round_without_killing_anything(
    tmp_path, monkeypatch, caplog
):
    import errno
    from pathlib import Path

    store = PhotoStore(tmp_path)
    for i in range(3):
        store.save(b"\xff\xd8x\xff\xd9", EPOCH - 2 * DAY + i)

    def read_only(self, missing_ok=False):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(Path, "unlink", read_only)
    result = Retention(store, DAY, 0).prune(EPOCH)
    assert result.expired == 0 and "retention stopped for now" in caplog.text
    monkeypatch.undo()
    assert Retention(store, DAY, 0).prune(EPOCH).expired == 3


def _orphan(store: PhotoStore, photo) -> None:
    """A thumbnail whose photo is gone, as a crash mid-delete or a race leaves one."""
    thumb = store.thumb_path(photo.name)
    thumb.parent.mkdir(parents=True, exist_ok=True)
    thumb.write_bytes(b"thumb")
    Path(store.locate(photo.name)).unlink()


def test_thumbnails_die_with_their_photos(tmp_path):
    store = PhotoStore(tmp_path / "photos", tmp_path / "thumbs")
    jpeg = b"\xff\xd8 jpeg \xff\xd9"
    store.save(jpeg, EPOCH - 23.9 * 3600)
    kept = store.save(jpeg, EPOCH - 600)
    gone = store.save(jpeg, EPOCH - 300)
    store.thumb_path(kept.name).parent.mkdir(parents=True, exist_ok=True)
    store.thumb_path(kept.name).write_bytes(b"thumb")
    _orphan(store, gone)
    retention = Retention(store, 24 * 3600, 0)
    assert retention.prune(EPOCH).expired == 0  # the first round sweeps what a crash left
    assert [p.name for p in (tmp_path / "thumbs").rglob("*.jpg")] == [kept.name]
    # Later orphans go with the next round that deletes photos.
    _orphan(store, kept)
    assert retention.prune(EPOCH + 0.2 * 3600).expired == 1
    assert not list((tmp_path / "thumbs").rglob("*.jpg"))
    assert not list((tmp_path / "thumbs").iterdir())  # empty hour and day dirs gone too
