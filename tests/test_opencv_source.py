"""The real cv2.VideoCapture path: a video file and an image sequence made from fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import pytest

from camera.errors import CameraUnavailable
from camera.notify import Notifier
from camera.opencv_source import OpenCVSource
from camera.replay import ReplaySource
from camera.source import Source, open_source
from camera.validate import validate_jpeg
from puccicam.wiring import make_grabber, make_store
from tests.helpers.fakes import FakeCamera
from tests.helpers.frames import FRAMES_DIR, GOOD, frame_bytes


def _good_images():
    return [validate_jpeg(frame_bytes(n)).image for n in GOOD if "640" not in n]


@pytest.fixture(scope="module")
def video_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("video") / "pets.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10, (320, 240))
    assert writer.isOpened()
    for image in _good_images() * 3:
        writer.write(image)
    writer.release()
    return path


@pytest.fixture(scope="module")
def image_sequence(tmp_path_factory) -> str:
    directory = tmp_path_factory.mktemp("sequence")
    for i, image in enumerate(_good_images()):
        cv2.imwrite(str(directory / f"frame{i:03d}.jpg"), image)
    return str(directory / "frame%03d.jpg")


def test_every_source_implements_the_protocol():
    for source in (OpenCVSource("x.avi"), ReplaySource(FRAMES_DIR), FakeCamera([b""])):
        assert isinstance(source, Source)


def test_video_file_frames_pass_validation(video_file):
    with OpenCVSource(str(video_file)) as source:
        frames = [source.read() for _ in range(5)]
    assert all(f.image is not None and f.image.shape == (240, 320, 3) for f in frames)


def test_video_file_runs_out_cleanly(video_file):
    with (
        OpenCVSource(str(video_file)) as source,
        pytest.raises(CameraUnavailable, match="no more frames"),
    ):
        for _ in range(1000):
            source.read()


def test_image_sequence_through_the_grabber(make_config, image_sequence):
    config = make_config(camera__source=image_sequence)
    source = open_source(image_sequence, width=320, height=240, fps=30)
    photo = make_grabber(config, source=source, notifier=Notifier({})).run_once()
    saved = validate_jpeg(make_store(config).read(photo.name))
    assert saved.image.shape == (240, 320, 3)


def test_video_file_through_the_grabber_at_another_size(make_config, video_file):
    config = make_config(capture__width=160, capture__height=120)
    source = open_source(str(video_file), width=160, height=120, fps=30)
    grabber = make_grabber(config, source=source, notifier=Notifier({}))
    photo = grabber.run_once()
    assert validate_jpeg(grabber.store.read(photo.name)).image.shape == (120, 160, 3)


def test_missing_file_says_so(tmp_path):
    with pytest.raises(CameraUnavailable, match="does not exist"):
        OpenCVSource(str(tmp_path / "nope.avi")).open()


def test_missing_device_says_what_to_check():
    with pytest.raises(CameraUnavailable, match=r"plugged in.*'video' group.*using it"):
        OpenCVSource("/dev/video99").open()


def test_close_is_safe_twice_and_before_open():
    source = OpenCVSource("/dev/video99")
    source.close()
    source.close()


def test_replay_plays_raw_bytes_in_name_order_looping():
    source = ReplaySource(FRAMES_DIR, fps=1000)
    with source:
        frames = [source.read().jpeg for _ in range(len(GOOD) + 13 + 1)]
    names = sorted(p.name for p in FRAMES_DIR.glob("*.jpg"))
    assert frames[0] == frame_bytes(names[0])  # corrupt ones too, untouched
    assert frames[len(names)] == frame_bytes(names[0])


def test_replay_carries_on_after_a_reopen_and_sees_new_files(tmp_path):
    for name in ("a.jpg", "c.jpg"):
        (tmp_path / name).write_bytes(name.encode())
    source = ReplaySource(tmp_path, fps=1000)
    with source:
        assert source.read().jpeg == b"a.jpg"
    (tmp_path / "b.jpg").write_bytes(b"b.jpg")  # added while closed: played next
    with source:
        assert [source.read().jpeg for _ in range(3)] == [b"b.jpg", b"c.jpg", b"a.jpg"]
    (tmp_path / "b.jpg").unlink()
    with source:  # the last one played was a.jpg; b.jpg is gone, so c.jpg
        assert source.read().jpeg == b"c.jpg"


def test_replay_of_a_missing_directory(tmp_path):
    with pytest.raises(CameraUnavailable, match="cannot be read"):
        ReplaySource(tmp_path / "gone").open()
    with pytest.raises(CameraUnavailable, match=r"no \.jpg files"):
        ReplaySource(tmp_path).open()


@pytest.mark.hardware
def test_real_camera_gives_raw_mjpeg_that_validates(make_config):
    """Needs a UVC camera at /dev/video0 (or $PCTEST_DEVICE): pytest --hardware."""
    device = os.environ.get("PCTEST_DEVICE", "/dev/video0")
    config = make_config(camera__source=device, camera__warmup_delay=2, camera__warmup_frames=13)
    source = open_source(device, width=320, height=240, fps=30)
    grabber = make_grabber(config, source=source, notifier=Notifier({}))
    photo = grabber.run_once()
    assert validate_jpeg(grabber.store.read(photo.name)).image.shape == (240, 320, 3)


@pytest.mark.slow
def test_live_view_from_a_video_file_sends_whole_jpegs(video_file, make_config):
    """Decoded sources (video files, IP cameras, YUYV cameras) go live too: the grabber
    encodes their frames as JPEG for the viewers."""
    import socket
    import tempfile
    import threading

    from camera.live import FRAME, HELLO, decode
    from camera.validate import validate_structure

    sockets = Path(tempfile.mkdtemp(prefix="pv-", dir="/tmp"))
    config = make_config(live__socket=str(sockets / "live.sock"), capture__interval=60)
    grabber = make_grabber(config, source=OpenCVSource(str(video_file)), notifier=Notifier({}))
    thread = threading.Thread(target=grabber.run, daemon=True)
    thread.start()
    try:
        path = str(sockets / "live.sock")
        for _ in range(100):
            if Path(path).exists():
                break
            threading.Event().wait(0.05)
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as viewer:
            viewer.settimeout(10)
            viewer.connect(path)
            viewer.send(HELLO)
            kinds = []
            for _ in range(5):
                kind, _taken, payload = decode(viewer.recv(2**22))
                kinds.append(kind)
                if kind == FRAME:
                    validate_structure(payload)
        # A file runs out (then the viewers are told "offline" and it is reopened).
        assert kinds.count(FRAME) >= 3
    finally:
        grabber.request_stop()
        thread.join(10)
