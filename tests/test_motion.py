"""Motion mode: a clip with known movement, noise, dimming, a light switch and corrupt
frames, played to the real grabber by the fake clock; the detector on its own; activity."""

from __future__ import annotations

import itertools
import os
import re
import threading
import time
from dataclasses import replace

import numpy as np
import pytest

from camera.errors import CorruptFrame
from camera.frame import Frame
from camera.meta import MOVING, read_meta
from camera.motion import MotionDetector, changed_share, photo_grey, small_grey
from camera.notify import Notifier
from camera.settings import MotionConfig
from camera.store import PhotoStore
from camera.validate import validate_jpeg
from puccicam.wiring import make_grabber
from tests.helpers.fakes import EPOCH, FakeCamera, FakeClock
from tests.helpers.frames import BAD, FRAMES_DIR, frame_bytes
from tests.helpers.motionclip import ClipCamera, build_clip

START = EPOCH + 20  # EPOCH + 20 is a whole minute: the clip's seconds are the schedule's


class PingLog(Notifier):
    """systemd's side of the watchdog: when each ping came, on the grabber's clock."""

    def __init__(self, clock) -> None:
        super().__init__({})
        self.clock = clock
        self.pings: list[float] = []

    def watchdog(self) -> None:
        self.pings.append(self.clock.now())


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return build_clip(tmp_path_factory.mktemp("clip") / "frames")


def _motion_config(make_config, **overrides):
    config = make_config(capture__motion=True, capture__interval=60, **overrides)
    return replace(config, live=replace(config.live, enabled=False))


@pytest.fixture(scope="module")
def clip_run(clip, tmp_path_factory):
    """The whole clip through the grabber in motion mode, once for the module's tests."""
    from puccicam.config import load_config

    assert START % 60 == 0
    data = tmp_path_factory.mktemp("run") / "data"
    config = load_config(
        env={},
        overrides={
            "data_dir": data,
            "camera.warmup_delay": 0,
            "camera.warmup_frames": 2,
            "camera.drain_frames": 0,
            "capture.interval": 60,
            "capture.motion": True,
            "live.enabled": False,
        },
    )
    clock = FakeClock(START, stop_at=START + clip.duration)
    camera = ClipCamera(clip, clock, START)
    notifier = PingLog(clock)
    grabber = make_grabber(config, source=camera, clock=clock, notifier=notifier)
    grabber.run()
    photos = [(p.taken_at - START, grabber.store.meta(p.name), p) for p in grabber.store.photos()]
    return grabber, photos, notifier, camera


def _motion_times(photos):
    return [t for t, meta, _ in photos if meta.kind == "motion"]


def test_every_movement_gets_a_motion_photo_within_1_s_of_its_start(clip, clip_run):
    _, photos, _, _ = clip_run
    motion = _motion_times(photos)
    for start, _end in clip.moves:
        first = [t for t in motion if start <= t <= start + 1.0]
        assert first, f"no motion photo within 1 s of the movement at {start} s: {motion}"


def test_no_motion_photo_from_noise_dimming_or_the_light_switch(clip, clip_run):
    _, photos, _, _ = clip_run
    motion = _motion_times(photos)
    calm = [*clip.quiet, clip.ramp, (clip.light_switch - 1, clip.light_switch + 1)]
    false = [t for t in motion for low, high in calm if low <= t <= high]
    assert not false, f"motion photos where nothing moved: {false}"
    # Every motion photo belongs to a movement (or the scene settling just after it).
    stray = [t for t in motion if not any(s <= t <= e + 6 for s, e in clip.moves)]
    assert not stray


def test_min_gap_holds_even_during_a_long_spell_of_play(clip, clip_run):
    grabber, photos, _, _ = clip_run
    motion = _motion_times(photos)
    gaps = np.diff(motion)
    assert min(gaps) >= grabber.motion.min_gap - 1e-6, motion
    play_start, play_end = clip.moves[-1]
    during_play = [t for t in motion if play_start <= t <= play_end]
    # 70 s of play: a photo at its start and then one per min_gap, not one per look.
    assert len(during_play) == 3, during_play


def test_interval_photos_keep_their_schedule_in_motion_mode(clip, clip_run):
    _, photos, _, _ = clip_run
    interval = [t for t, meta, _ in photos if meta.kind == "interval"]
    assert interval[0] < 2  # the first at once (after the warm-up frames), as ever
    # Then on every minute, within the half second the camera takes for a frame, even
    # when the frame due was corrupt (at 60, 180 and 300 s) or movement was being saved.
    ticks = [60.0 * k for k in range(1, 7)]  # the last at 360 s, as the clip ends
    assert len(interval) == 1 + len(ticks), interval
    assert all(abs(t - tick) <= 0.5 for t, tick in zip(interval[1:], ticks, strict=True))


def test_corrupt_frames_never_make_or_trigger_a_photo(clip, clip_run):
    grabber, photos, _, _ = clip_run
    for t, _meta, photo in photos:
        assert all(abs(t - bad) > 0.25 for bad in clip.corrupt if _meta.kind == "motion")
        validate_jpeg(grabber.store.read(photo.name))  # the full validation, content too
    assert sum(grabber.status.rejected.values()) >= len(clip.corrupt)


def test_the_watchdog_is_pinged_on_every_look(clip, clip_run):
    _, _, notifier, _ = clip_run
    pings = np.array(notifier.pings)
    assert pings[-1] - pings[0] > clip.duration - 5
    # A look every 1/motion.fps s; an interval photo's frames (a corrupt one among them)
    # may take a little longer.
    assert np.median(np.diff(pings)) == pytest.approx(0.5)
    assert np.diff(pings).max() <= 1.5


def test_frames_are_looked_at_motion_fps_times_a_second(clip, clip_run):
    _, _, _, camera = clip_run
    looks = len(camera.served)
    # 2 per second, plus the warm-up and the drained frames of the 6 interval photos.
    assert clip.duration * 2 <= looks <= clip.duration * 2 + 6 * 5


def test_activity_says_who_moved(clip, clip_run):
    """A photo's activity is the movement since the photo before it, of either kind."""
    _, photos, _, _ = clip_run
    still, moved = [], []
    for (before, _, _), (t, meta, _) in itertools.pairwise(photos):
        if meta.kind == "motion":
            assert meta.activity >= MOVING
        elif any(before < end + 6 and start < t for start, end in clip.moves):
            moved.append(meta.activity)
        else:
            still.append(meta.activity)
    assert still and moved
    assert max(still) < MOVING <= min(moved), (still, moved)


# -- the detector on its own -----------------------------------------------------


def _grey(clip, second: float) -> np.ndarray:
    index = round(second * clip.fps)
    return small_grey(Frame(received=0, jpeg=clip.frames[index].read_bytes()))


def test_scores_order_still_below_moving(clip):
    detector = MotionDetector(MotionConfig())
    for second in np.arange(0, 10, 0.5):
        detector.learn(_grey(clip, second), detector.look(_grey(clip, second)))
    still = detector.look(_grey(clip, 10))
    moving = detector.look(_grey(clip, 32))
    assert still.changed < 0.001 < MotionConfig().min_area / 100 < moving.changed
    assert not still.moving and moving.moving


def test_a_light_switched_on_is_learnt_not_reported(clip):
    detector = MotionDetector(MotionConfig())
    for second in (195, 196, 197, 198, 199):
        detector.learn(_grey(clip, second), detector.look(_grey(clip, second)))
    switched = detector.look(_grey(clip, 200))
    assert switched.light and not switched.moving
    detector.learn(_grey(clip, 200), switched)
    after = detector.look(_grey(clip, 201))
    assert not after.moving and not after.light


@pytest.mark.parametrize("name", BAD)
def test_the_quick_decode_or_the_full_check_refuses_every_corrupt_fixture(name):
    """Either small_grey refuses it, or it is so unlike any scene that a look calls it
    movement or light and the full validation refuses it before it can count."""
    frame = Frame(received=0, jpeg=frame_bytes(name))
    try:
        small_grey(frame)
    except CorruptFrame:
        return
    with pytest.raises(CorruptFrame):
        validate_jpeg(frame.jpeg)


def test_decoded_frames_are_shrunk_the_same_way():
    import cv2

    image = cv2.imread(str(FRAMES_DIR / "good-640x480.jpg"))
    from_jpeg = small_grey(Frame(received=0, jpeg=frame_bytes("good-640x480.jpg")))
    from_image = small_grey(Frame(received=0, image=image))
    assert from_jpeg.shape == from_image.shape == (60, 80)
    assert np.abs(from_jpeg.astype(int) - from_image).mean() < 3


# -- activity without motion mode ------------------------------------------------


def test_interval_activity_compares_consecutive_photos_without_the_banner(make_config):
    clock = FakeClock(stop_at=EPOCH + 5 * 300)
    same = frame_bytes("good-chelsea.jpg")
    other = frame_bytes("good-coffee-422.jpg")
    # Two photos of the same scene, then a different one, then the same again.
    camera = FakeCamera([same, same, other, same, same], clock)
    config = make_config(camera__warmup_frames=0, camera__drain_frames=0)
    config = replace(config, live=replace(config.live, enabled=False))
    grabber = make_grabber(config, source=camera, clock=clock, notifier=Notifier({}))
    grabber.run()
    metas = [grabber.store.meta(p.name) for p in grabber.store.photos()]
    activity = [m.activity for m in metas]
    assert all(m.kind == "interval" for m in metas)
    assert activity[0] is None  # nothing before it to compare with
    assert activity[1] < MOVING  # the banner's clock changed, nothing else
    assert activity[2] >= 50 and activity[3] >= 50  # another scene, and back
    assert activity[4] < MOVING


def test_after_a_restart_the_newest_stored_photo_is_the_previous_one(make_config, camera, clock):
    config = make_config()
    config = replace(config, live=replace(config.live, enabled=False))
    chelsea = FakeCamera([frame_bytes("good-chelsea.jpg")], clock)
    make_grabber(config, source=chelsea, clock=clock, notifier=Notifier({})).run_once()
    clock.advance(300)
    again = make_grabber(config, source=chelsea, clock=clock, notifier=Notifier({})).run_once()
    store = PhotoStore(config.photos_dir)
    assert store.meta(again.name).activity < MOVING
    clock.advance(300)
    coffee = FakeCamera([frame_bytes("good-coffee-422.jpg")], clock)
    moved = make_grabber(config, source=coffee, clock=clock, notifier=Notifier({})).run_once()
    assert store.meta(moved.name).activity >= 50


def test_photo_grey_cuts_the_banner_band():
    image = np.full((240, 320, 3), 100, np.uint8)
    banner = image.copy()
    banner[225:] = 255  # only inside the banner's band
    before, after = photo_grey(image, 320, 240), photo_grey(banner, 320, 240)
    assert changed_share(MotionConfig(), before, after) == 0


# -- a real process ----------------------------------------------------------------


@pytest.mark.slow
def test_grab_motion_as_a_process_saves_a_motion_photo_and_stops_cleanly(clip, tmp_path):
    """``puccicam grab --motion`` on a replay of the first crossing, at real time."""
    import shutil
    import signal
    import subprocess
    import sys

    frames = tmp_path / "camera"
    frames.mkdir()
    for path in clip.frames[40:80]:  # 20 s to 40 s: still, the crossing at 30 s, still
        shutil.copy(path, frames / path.name)
    data = tmp_path / "data"
    env = {
        "PUCCICAM_CAMERA_SOURCE": f"replay:{frames}",
        "PUCCICAM_CAMERA_FPS": "2",
        "PUCCICAM_CAMERA_WARMUP_DELAY": "0",
        "PUCCICAM_CAMERA_WARMUP_FRAMES": "0",
        "PUCCICAM_CAMERA_DRAIN_FRAMES": "0",
        "PUCCICAM_LIVE_ENABLED": "false",
    }
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("PUCCICAM")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "puccicam", "grab", "--motion", "--data-dir", str(data)],
        env={**inherited, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        store = PhotoStore(data / "photos")
        while time.monotonic() < deadline:
            kinds = [store.meta(p.name).kind for p in store.photos()]
            if "motion" in kinds:
                break
            time.sleep(0.2)
        assert "motion" in kinds
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=15)[0].decode()
    assert proc.returncode == 0, out
    assert "motion mode: looking 2 time(s) a second" in out
    assert "motion photo" in out and "of the picture changed" in out
    for photo in store.photos():
        assert read_meta(store.path(photo.name)).kind in ("interval", "motion")


def test_stop_while_watching_returns_promptly(make_config):
    config = _motion_config(make_config)
    stop = threading.Event()
    camera = FakeCamera([frame_bytes("good-chelsea.jpg")])
    grabber = make_grabber(config, source=camera, notifier=Notifier({}), stop=stop)
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    grabber.run()
    assert time.monotonic() - started < 2
    assert grabber.status.saved == 1 and not camera.is_open


class Viewers:
    """The live socket's side the grabber sees (camera.live.LiveServer): viewers that
    come and go on the fake clock, and the frames they were sent."""

    def __init__(self, clock, watching: tuple[float, float]) -> None:
        self.clock = clock
        self.watching = watching
        self.changed = threading.Event()
        self.sent: list[float] = []
        self.path = "fake.sock"

    @property
    def viewers(self) -> int:
        return int(self.watching[0] <= self.clock.now() < self.watching[1])

    def start(self) -> None:
        pass

    def publish(self, message: bytes) -> None:
        self.sent.append(self.clock.now())

    def close(self) -> None:
        pass


def test_motion_is_detected_in_the_frames_streamed_to_live_viewers(clip, make_config):
    config = _motion_config(make_config, camera__drain_frames=0)
    clock = FakeClock(START)
    camera = ClipCamera(clip, clock, START)
    grabber = make_grabber(config, source=camera, clock=clock, notifier=Notifier({}))
    grabber.live = Viewers(clock, (START + 20, START + 50))  # watching across the crossing
    # Not stop_at: with live view on, the grabber's sleeps wait on the viewers' event.
    clock.at(START + 100, grabber.request_stop)
    grabber.run()
    photos = [(p.taken_at - START, grabber.store.meta(p.name).kind) for p in grabber.store.photos()]
    motion = [t for t, kind in photos if kind == "motion"]
    assert len(motion) == 1 and 30 <= motion[0] <= 31, photos
    sent = [t - START for t in grabber.live.sent]
    assert min(sent) >= 20 and max(sent) <= 50 and len(sent) >= 50  # streamed meanwhile
    interval = [t for t, kind in photos if kind == "interval"]
    assert len(interval) == 2 and abs(interval[1] - 60) <= 0.5  # the schedule held


def test_once_in_motion_mode_is_an_interval_photo_of_unknown_activity(make_config, camera, clock):
    grabber = make_grabber(
        _motion_config(make_config), source=camera, clock=clock, notifier=Notifier({})
    )
    photo = grabber.run_once()
    assert grabber.store.meta(photo.name) == read_meta(grabber.store.path(photo.name))
    assert read_meta(grabber.store.path(photo.name)).activity is None
    assert read_meta(grabber.store.path(photo.name)).kind == "interval"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PUCCICAM_MOTION_FPS": "0"}, "motion.fps (from PUCCICAM_MOTION_FPS): must be at least"),
        ({"PUCCICAM_MOTION_MIN_AREA": "80"}, "motion.min_area (from PUCCICAM_MOTION_MIN_AREA)"),
        ({"PUCCICAM_CAPTURE_MOTION": "sometimes"}, "capture.motion (from PUCCICAM_CAPTURE_MOTION)"),
    ],
)
def test_bad_motion_settings_name_the_key(tmp_path, env, message):
    from puccicam.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(env={"PUCCICAM_DATA_DIR": str(tmp_path), **env})
