"""The time-lapse: one frame per photo of the window, in order, at its fps; built hour by
hour, never past the window, paused before photos are when the disk fills, and whole
after a SIGKILL."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from camera.errors import StorageError, StorageFull
from camera.retention import Retention
from camera.store import PhotoStore
from camera.timelapse import TimeLapse, day_file, encode, write_timelapse
from camera.webm import WebmError, frame_count, join
from tests.helpers.fakes import EPOCH
from tests.helpers.video import MAX_INDEX, frames, level_jpeg

HOUR = 3600.0
DAY = 24 * HOUR


def _fill(store: PhotoStore, count: int, first: float, step: float = 300.0) -> list[float]:
    """``count`` photos, photo i of grey level i, ``step`` seconds apart from ``first``."""
    return [store.save(level_jpeg(i), first + i * step).taken_at for i in range(count)]


def _timelapse(tmp_path: Path, store: PhotoStore, **kwargs) -> TimeLapse:
    values = {"window_seconds": DAY, "fps": 10.0, "size": (320, 240)}
    values.update(kwargs)
    return TimeLapse(store, tmp_path / "timelapse", **values)


@pytest.mark.parametrize("fps", [5.0, 10.0])
def test_one_frame_per_photo_in_order_at_the_configured_fps(tmp_path, fps):
    store = PhotoStore(tmp_path / "photos")
    _fill(store, MAX_INDEX + 1, EPOCH - 2 * HOUR, step=271)  # spans three hour segments
    timelapse = _timelapse(tmp_path, store, fps=fps)
    assert timelapse.update(EPOCH)
    indexes, declared, times = frames(timelapse.path)
    assert indexes == list(range(MAX_INDEX + 1))
    assert declared == fps
    assert [round(t) for t in times] == [round(i * 1000 / fps) for i in range(len(times))]
    assert len(list(timelapse.segments.iterdir())) == 3


def test_a_new_photo_re_encodes_only_its_own_hour(tmp_path):
    store = PhotoStore(tmp_path / "photos")
    _fill(store, 20, EPOCH - 3000, step=150)  # 10:16 to 11:04; EPOCH is 11:06
    timelapse = _timelapse(tmp_path, store)
    timelapse.update(EPOCH)
    before = {p.name: p.stat().st_mtime_ns for p in timelapse.segments.iterdir()}
    newest = max(before)
    store.save(level_jpeg(20), EPOCH + 1)
    assert timelapse.update(EPOCH + 2)
    after = {p.name: p.stat().st_mtime_ns for p in timelapse.segments.iterdir()}
    assert len(after) == len(before)
    unchanged = {n: t for n, t in before.items() if n != newest}
    assert {n: after[n] for n in unchanged} == unchanged  # the older hours untouched
    assert frames(timelapse.path)[0] == list(range(21))
    assert not timelapse.update(EPOCH + 3)  # nothing new: nothing done


def test_no_frame_older_than_the_window_as_retention_moves_on(tmp_path):
    store = PhotoStore(tmp_path / "photos")
    # 26 photos an hour apart: the two oldest are past the 24 h window already
    taken = _fill(store, 26, EPOCH - 25.5 * HOUR, step=HOUR)
    retention = Retention(store, DAY, 0)
    timelapse = _timelapse(tmp_path, store)
    retention.prune(EPOCH)
    timelapse.update(EPOCH)
    assert frames(timelapse.path)[0] == list(range(2, 26))
    # three hours later, three more photos have left the window
    later = EPOCH + 3 * HOUR
    retention.prune(later)
    timelapse.update(later)
    inside = [i for i, t in enumerate(taken) if t >= later - DAY]
    assert frames(timelapse.path)[0] == inside == list(range(5, 26))
    oldest_hour = time.strftime("%Y%m%d%H", time.gmtime(taken[5]))
    assert min(p.name[:10] for p in timelapse.segments.iterdir()) == oldest_hour


def test_the_window_ignores_kept_photos_older_than_it(tmp_path):
    from camera.keep import KeptPhotos

    store = PhotoStore(tmp_path / "photos")
    taken = _fill(store, 3, EPOCH - 30 * HOUR, step=3 * HOUR)
    kept = KeptPhotos(tmp_path / "kept")
    names = [p.name for p in store.photos()]
    kept.keep(names[0], store.exists)
    Retention(store, DAY, 0, kept=kept).prune(EPOCH)
    assert store.exists(names[0])  # kept, so still stored, but not in the window
    timelapse = _timelapse(tmp_path, store)
    timelapse.update(EPOCH)
    assert frames(timelapse.path)[0] == [i for i, t in enumerate(taken) if t >= EPOCH - DAY]


def test_a_photo_that_does_not_decode_never_becomes_a_frame(tmp_path):
    store = PhotoStore(tmp_path / "photos")
    _fill(store, 3, EPOCH - 1000)
    store.save(b"\xff\xd8" + b"\x00" * 500 + b"\xff\xd9", EPOCH - 10)  # went bad on disk
    timelapse = _timelapse(tmp_path, store)
    timelapse.update(EPOCH)
    assert frames(timelapse.path)[0] == [0, 1, 2]


def test_an_empty_window_leaves_no_file(tmp_path):
    store = PhotoStore(tmp_path / "photos")
    _fill(store, 2, EPOCH - 1000)
    timelapse = _timelapse(tmp_path, store)
    timelapse.update(EPOCH)
    assert timelapse.path is not None
    timelapse.update(EPOCH + 2 * DAY)
    assert timelapse.path is None
    assert list(timelapse.segments.iterdir()) == []


def test_a_full_disk_stops_the_time_lapse_before_it_stops_photos(tmp_path, caplog):
    store = PhotoStore(tmp_path / "photos")
    floor, margin = 100 * 2**20, 32 * 2**20
    free = {"bytes": floor + margin // 2}  # above the photos' floor, below the time-lapse's
    retention = Retention(store, DAY, floor, free_bytes=lambda _path: free["bytes"])
    timelapse = _timelapse(
        tmp_path, store, min_free_bytes=floor + margin, free_bytes=lambda _path: free["bytes"]
    )
    caplog.set_level(logging.INFO, logger="camera.timelapse")
    for i in range(3):
        store.save(level_jpeg(i), EPOCH + i)
        assert retention.prune(EPOCH + i).for_space == 0
        assert not timelapse.update(EPOCH + i)
    assert len(list(store.photos())) == 3  # photos went on
    assert timelapse.path is None  # the time-lapse did not
    assert [r.levelname for r in caplog.records] == ["WARNING"]  # said once
    assert "time-lapse not updated" in caplog.records[0].getMessage()
    free["bytes"] = floor + 2 * margin
    assert timelapse.update(EPOCH + 5)
    assert frames(timelapse.path)[0] == [0, 1, 2]


def test_write_timelapse_for_any_window(tmp_path):
    store = PhotoStore(tmp_path / "photos")
    _fill(store, 12, EPOCH - 12 * HOUR, step=HOUR)
    out = tmp_path / "six-hours.webm"
    assert write_timelapse(store, out, EPOCH - 6 * HOUR, EPOCH, 10.0, (320, 240)) == 6
    assert frames(out)[0] == list(range(6, 12))
    with pytest.raises(StorageError, match="no photos in that window"):
        write_timelapse(store, out, EPOCH + HOUR, EPOCH + 2 * HOUR, 10.0, (320, 240))
    assert frames(out)[0] == list(range(6, 12))  # the refused call left the file alone


def test_an_unwritable_place_is_a_clear_error(tmp_path):
    with pytest.raises(StorageError, match="cannot write"):
        encode([level_jpeg(0)], Path("/proc/no-such-dir/out.mkv"), 10.0, (320, 240))


def test_the_joined_file_is_webm_with_nothing_only_matroska_has(tmp_path):
    from camera import webm

    parts = [tmp_path / "a.mkv", tmp_path / "b.mkv"]
    encode([level_jpeg(0), level_jpeg(1)], parts[0], 10.0, (320, 240))
    encode([level_jpeg(2)], parts[1], 10.0, (320, 240))
    data = join(parts, 100)
    assert b"\x42\x82\x84webm" in data[:64]  # DocType "webm"
    found = set()

    def walk(start: int, end: int) -> None:
        for element_id, _head, s, e in webm.elements(data, start, end):
            found.add(element_id)
            if element_id in (webm.SEGMENT, webm.INFO, webm.TRACKS, webm.CLUSTER):
                walk(s, e)

    walk(0, len(data))
    assert webm.CRC32 not in found and webm.SEGMENT_UID not in found
    out = tmp_path / "joined.webm"
    out.write_bytes(data)
    assert frames(out)[0] == [0, 1, 2]


def test_join_refuses_what_is_not_webm(tmp_path):
    bad = tmp_path / "bad.webm"
    bad.write_bytes(b"\x1a\x45\xdf\xa3\x8f not really a webm file")
    with pytest.raises(WebmError):
        join([bad], 100)
    with pytest.raises(WebmError):
        frame_count(b"")
    with pytest.raises(WebmError, match="nothing to join"):
        join([], 100)


def test_join_refuses_segments_of_another_size(tmp_path):
    a, b = tmp_path / "a.mkv", tmp_path / "b.mkv"
    encode([level_jpeg(0)], a, 10.0, (320, 240))
    encode([level_jpeg(1, (160, 120))], b, 10.0, (160, 120))
    with pytest.raises(WebmError, match="track differs"):
        join([a, b], 100)


EXTENDER = """
import sys, time
from pathlib import Path
from camera.store import PhotoStore
from camera.timelapse import TimeLapse
from tests.helpers.video import level_jpeg
root = Path(sys.argv[1])
store = PhotoStore(root / "photos")
timelapse = TimeLapse(store, root / "timelapse", window_seconds=1e9, fps=10.0, size=(320, 240))
now = float(sys.argv[2])
i = 0
while True:
    store.save(level_jpeg(i % 27), now + i)
    timelapse.update(now + i)
    timelapse.path  # joined, as the web app does when asked
    print(i, flush=True)
    i += 1
"""


@pytest.mark.slow  # a real process, killed three times: seconds
@pytest.mark.parametrize("delay", [0.05, 0.3, 0.7])
def test_sigkill_while_extending_leaves_a_playable_previous_file(tmp_path, delay):
    root = tmp_path / "data"
    store = PhotoStore(root / "photos")
    for i in range(200):  # a long file, so a kill is likely to land while one is written
        store.save(level_jpeg(i % 27), EPOCH - 400 + i)
    TimeLapse(store, root / "timelapse", window_seconds=1e9, fps=10.0, size=(320, 240)).update(
        EPOCH
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", EXTENDER, str(root), str(EPOCH + 1)],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).parents[1],
    )
    assert proc.stdout.readline()  # it has extended once
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # whatever the kill interrupted, the list names whole segments: a playable file
    path = day_file(root / "timelapse")
    count = frame_count(path.read_bytes())
    assert count >= 201
    assert len(frames(path)[0]) == count
    # the next build cleans what the kill left and extends from there
    timelapse = TimeLapse(store, root / "timelapse", window_seconds=1e9, fps=10.0, size=(320, 240))
    timelapse.update(EPOCH + 10_000)
    assert frame_count(timelapse.path.read_bytes()) == len(list(store.photos()))
    leftovers = [p for p in (root / "timelapse").rglob(".tmp-*")]
    assert leftovers == []


# -- puccicam timelapse ---------------------------------------------------------------


def _cli_store(tmp_path: Path) -> PhotoStore:
    store = PhotoStore(tmp_path / "photos")
    now = time.time()
    for i in range(6):
        store.save(level_jpeg(i), now - (6 - i) * HOUR + 60)
    return store


def test_cli_writes_any_window(tmp_path):
    from click.testing import CliRunner

    from puccicam.cli import main

    _cli_store(tmp_path)
    out = tmp_path / "out.webm"
    result = CliRunner().invoke(
        main, ["timelapse", "--out", str(out), "--hours", "3", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "3 photo(s) of the last 3 h" in result.output
    assert frames(out)[0] == [3, 4, 5]
    result = CliRunner().invoke(main, ["timelapse", "--out", str(out), "--data-dir", str(tmp_path)])
    assert frames(out)[0] == list(range(6))  # default: the retention window
    assert list(tmp_path.glob(".tmp-*")) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--hours", "0"], "Invalid value for '--hours'"),
        (["--hours", "-2"], "Invalid value for '--hours'"),
        (["--hours", "lots"], "Invalid value for '--hours'"),
        (["--hours", "0.001"], "no photos in that window"),
        (["--out", "{tmp}/out.mp4"], "name it FILE.webm"),
        (["--out", "{tmp}/missing/out.webm"], "no directory"),
        (["--out", "/proc/out.webm"], "cannot write"),
    ],
)
def test_cli_errors_are_one_clear_line(tmp_path, args, message):
    from click.testing import CliRunner

    from puccicam.cli import main

    _cli_store(tmp_path)
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "out.webm")]
    result = CliRunner().invoke(main, ["timelapse", *args, "--data-dir", str(tmp_path)])
    assert result.exit_code != 0
    assert message in result.output, result.output
    assert "Traceback" not in result.output


def test_shorter_intervals_get_shorter_segments(tmp_path):
    store = PhotoStore(tmp_path / "photos")
    _fill(store, 27, EPOCH - 27 * 30, step=30)  # every 30 s: 13.5 minutes
    timelapse = _timelapse(tmp_path, store, segment_seconds=600)
    timelapse.update(EPOCH)
    assert frames(timelapse.path)[0] == list(range(27))
    names = sorted(p.name for p in timelapse.segments.iterdir())
    assert len(names) == 2 and all(n[10:14] in {"0000", "1000", "5000"} for n in names), names


def test_closing_the_builder_ends_an_update_under_way(tmp_path):
    from camera.timelapse import TimeLapseBuilder

    store = PhotoStore(tmp_path / "photos")
    jpegs = [level_jpeg(i) for i in range(MAX_INDEX + 1)]
    for i in range(800):  # changing content: seconds to encode
        store.save(jpegs[i % len(jpegs)], EPOCH - 800 + i)
    timelapse = _timelapse(tmp_path, store, segment_seconds=3600)
    builder = TimeLapseBuilder(timelapse, lambda: EPOCH)
    builder.start()
    time.sleep(0.2)  # into the encoding of 800 frames
    started = time.perf_counter()
    builder.close()
    assert time.perf_counter() - started < 2
    assert not builder._thread.is_alive()
    assert timelapse.path is None  # interrupted: no half file
    assert list(timelapse.segments.glob(".tmp-*")) == []


def test_a_new_fps_or_size_remakes_every_segment(tmp_path):
    store = PhotoStore(tmp_path / "photos")
    _fill(store, 6, EPOCH - 3 * HOUR, step=1800)
    _timelapse(tmp_path, store, fps=10.0).update(EPOCH)
    for values in ({"fps": 4.0}, {"fps": 4.0, "size": (160, 120)}):
        timelapse = _timelapse(tmp_path, store, **values)
        assert timelapse.update(EPOCH)
        indexes, fps, _times = frames(timelapse.path)
        assert indexes == list(range(6)) and fps == 4.0
    assert cv2_size(timelapse.path) == (160, 120)


def cv2_size(path: Path) -> tuple[int, int]:
    import cv2

    capture = cv2.VideoCapture(str(path))
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    capture.release()
    return size


def test_joining_the_day_file_never_spends_the_photos_floor(tmp_path):
    """The web process joins the day's file on request: like the builder, it must stop
    before the storage floor plus the time-lapse's margin, or a video would cost photos."""
    store = PhotoStore(tmp_path / "photos")
    _fill(store, 6, EPOCH - 1800)
    timelapse = _timelapse(tmp_path, store)
    assert timelapse.update(EPOCH)
    size = sum(p.stat().st_size for p in timelapse.segments.iterdir())
    floor = 100 * 2**20
    with pytest.raises(StorageFull, match="below the 100 MB kept for photos"):
        day_file(timelapse.directory, floor, free_bytes=lambda _path: floor + size // 2)
    assert not list(timelapse.directory.glob("timelapse-*.webm"))  # nothing half-written
    path = day_file(timelapse.directory, floor, free_bytes=lambda _path: floor + 4 * size)
    assert frames(path)[0] == list(range(6))


@pytest.mark.parametrize(
    ("motion", "interval", "min_gap", "expected"),
    [(False, 300, 30, 3600), (True, 300, 30, 1800), (True, 30, 300, 1800), (False, 5, 30, 600)],
)
def test_segments_stay_short_for_the_photo_rate_motion_mode_can_reach(
    motion, interval, min_gap, expected
):
    """At most about 60 photos a segment: in motion mode a pet at play adds a photo every
    ``motion.min_gap``, so that, not only the interval, sets the segment's length."""
    from puccicam.config import load_config
    from puccicam.wiring import make_timelapse

    config = load_config(
        env={},
        overrides={
            "capture.motion": motion,
            "capture.interval": interval,
            "motion.min_gap": min_gap,
        },
    )
    timelapse = make_timelapse(config, PhotoStore(Path("/nonexistent")))
    assert timelapse.segment_seconds == expected
