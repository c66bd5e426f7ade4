"""Live view end to end: the real grabber and the real ``puccicam serve``, on a replay camera.

Both run as their own processes, as systemd runs them, talking over the live socket; a
client logs in through the real form and reads ``/live/stream`` over a real socket.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import socket
import time
import urllib.parse
from pathlib import Path

import pytest

from camera.errors import CorruptFrame
from camera.live import HELLO
from camera.store import parse_name
from camera.validate import validate_jpeg, validate_structure
from tests.helpers.frames import BAD, FRAMES_DIR, GOOD, flaky_camera
from tests.helpers.live import CSRF, PASSWORD, GrabberProcess, LiveSite, login

pytestmark = pytest.mark.slow


@pytest.fixture
def site(tmp_path):
    live = LiveSite(tmp_path, flaky_camera(tmp_path / "camera"))
    yield live
    live.close()


def _logged(path: Path, text: str) -> bool:
    return path.exists() and text in path.read_text()


def test_a_viewer_gets_whole_frames_and_the_camera_closes_when_it_leaves(site):
    stream = site.stream()
    assert stream.status == 200
    assert stream.response.getheader("Content-Type").startswith("multipart/x-mixed-replace")
    frames = list(stream.frames(seconds=3))
    # 15 fps for about 2.4 s after a 0.5 s warm-up; corrupt frames are skipped, not sent.
    assert len(frames) >= 15, len(frames)
    for jpeg in frames:
        validate_structure(jpeg)
    rejected = sum(site.status()["rejected"].values())
    assert rejected > 0  # the replay camera sent corrupt frames, and none reached the viewer
    assert site.status()["mode"] == "live" and site.status()["viewers"] == 1
    stream.close()
    site.wait_for(lambda: site.status()["mode"] == "interval", 10, "back to interval mode")
    assert _logged(site.grabber_log, "live view ended: no viewer left; camera closed")
    assert _logged(site.server_log, "ended: viewer left")


def test_one_viewer_over_the_cap_is_told_at_once(site):
    streams = [site.stream() for _ in range(3)]
    for stream in streams:
        next(stream.frames(seconds=5))
    started = time.monotonic()
    over = site.stream()
    assert over.status == 503 and time.monotonic() - started < 2
    status, _took = site.get("/live")
    assert status == 503
    streams[0].close()
    site.wait_for(lambda: site.stream().status == 200, 10, "a freed slot")
    for stream in streams[1:]:
        stream.close()


def test_streams_never_starve_the_gallery_photos_or_login(site):
    site.wait_for(lambda: site.status().get("last_photo"), 10, "the first photo")
    photo = site.status()["last_photo"]
    streams = [site.stream() for _ in range(3)]
    for stream in streams:
        next(stream.frames(seconds=5))
    for path in ("/gallery", f"/photos/{photo}", f"/thumbs/{photo}", "/status", "/live/status"):
        status, took = site.get(path)
        assert status == 200 and took < 2, (path, status, took)
    started = time.monotonic()
    assert login(site.server.base, "owner", PASSWORD)
    assert time.monotonic() - started < 3
    for stream in streams:
        assert next(stream.frames(seconds=5))  # still streaming
        stream.close()


def _logout(site) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", site.port, timeout=10)
    conn.request("GET", "/gallery", headers={"Cookie": site.cookie})
    token = CSRF.search(conn.getresponse().read().decode())[1]
    conn.request(
        "POST",
        "/logout",
        body=urllib.parse.urlencode({"csrf_token": token}),
        headers={"Cookie": site.cookie, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert conn.getresponse().status == 302


@pytest.mark.parametrize("how", ["logout", "user passwd", "user remove"])
def test_the_end_of_the_session_ends_the_stream_within_2_s(site, how):
    stream = site.stream()
    assert next(stream.frames(seconds=5))
    if how == "logout":
        _logout(site)
    elif how == "user passwd":
        site.puccicam("user", "passwd", "owner", "--password-stdin", stdin="a new password\n")
    else:
        site.puccicam("user", "remove", "owner")
    # The session ended inside the command (its commit); counted from its return, so the
    # start-up time of a CLI process on a loaded machine is not counted.
    took = stream.ended_within(5)
    assert took is not None and took < 2.0
    site.wait_for(lambda: _logged(site.server_log, "ended: session ended"), 2, "the log line")


def test_a_client_that_vanishes_frees_its_slot_within_10_s(site):
    streams = [site.stream() for _ in range(3)]
    for stream in streams:
        next(stream.frames(seconds=5))
    streams[0].reset()  # a TCP reset, no goodbye
    took = site.wait_for(lambda: site.stream().status == 200, 10, "the slot freed")
    assert took < 10
    for stream in streams[1:]:
        stream.close()


def test_a_client_that_stops_reading_frees_its_slot_within_10_s(site):
    streams = [site.stream() for _ in range(2)]
    stuck = site.stream(rcvbuf=4096)  # a locked phone: connected, reading nothing
    for stream in [*streams, stuck]:
        next(stream.frames(seconds=5))
    took = site.wait_for(lambda: site.stream().status == 200, 12, "the stuck slot freed")
    assert took < 10, took
    stuck.close()
    for stream in streams:
        stream.close()


def test_a_stream_ends_after_max_minutes(tmp_path):
    site = LiveSite(tmp_path, flaky_camera(tmp_path / "camera"), PUCCICAM_LIVE_MAX_MINUTES="0.05")
    try:
        stream = site.stream()
        took = stream.ended_within(10)
        assert took is not None and 2 < took < 5  # counted from the request, not from here
        assert _logged(site.server_log, "ended: time limit")
    finally:
        site.close()


def test_interval_photos_keep_their_schedule_during_live_view(tmp_path):
    site = LiveSite(
        tmp_path,
        flaky_camera(tmp_path / "camera"),
        PUCCICAM_CAPTURE_INTERVAL="2",
        PUCCICAM_CAMERA_KEEP_OPEN_BELOW="1",
    )
    try:
        stream = site.stream()
        frames = list(stream.frames(seconds=9))
        assert len(frames) > 60
        stream.close()
        photos = sorted((site.data / "photos").rglob("*Z.jpg"))
        taken = [parse_name(p.name).taken_at for p in photos]
        during = [t for t in taken if t > taken[0] + 1]
        assert len(during) >= 3
        for moment in during:
            # On schedule: within a second after its tick, or a hair before it (the
            # grabber starts a capture its measured lead time ahead of the tick).
            offset = (moment + 0.1) % 2 - 0.1
            assert -0.1 <= offset < 1.0, f"photo {offset:+.3f} s from its tick"
        for path in photos:
            validate_jpeg(path.read_bytes())  # the same validation as ever
    finally:
        site.close()


def test_a_lost_camera_shows_offline_and_the_stream_comes_back(site):
    from webapp.live import offline_jpeg

    offline = offline_jpeg()
    stream = site.stream()
    frames = stream.frames(seconds=30)
    assert next(frames) != offline
    away = site.frames.with_name("unplugged")
    site.frames.rename(away)
    seen_offline = False
    for jpeg in frames:
        if jpeg == offline:
            seen_offline = True
            break
    assert seen_offline
    away.rename(site.frames)
    assert any(jpeg != offline for jpeg in frames)  # live again, same stream
    stream.close()


def test_the_stream_survives_a_grabber_restart(site):
    stream = site.stream()
    frames = stream.frames(seconds=40)
    assert next(frames)
    site.grabber.stop(signal.SIGKILL)
    site.grabber = GrabberProcess(site.data, site.env, site.grabber_log)
    started = time.monotonic()
    # Frames from the new grabber arrive on the same HTTP response.
    site.wait_for(lambda: _logged(site.grabber_log, "a viewer joined"), 15, "reconnected")
    assert next(jpeg for jpeg in frames if time.monotonic() - started > 0.5)
    stream.close()


def _as_nobody(path: str) -> int:
    """errno of connecting to the live socket as uid 65534, from a forked child."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.setgid(65534)
            os.setuid(65534)
            with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as sock:
                sock.connect(path)
        except OSError as exc:
            code = exc.errno or 1
        os._exit(code)
    _pid, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_a_hostile_local_process_cannot_read_frames_or_crash_the_grabber(site):
    path = site.env["PUCCICAM_LIVE_SOCKET"]
    assert os.stat(path).st_mode & 0o777 == 0o600
    if os.getuid() == 0:
        assert _as_nobody(path) in (13, 1)  # EACCES: another user cannot even connect
    attacks = [b"", b"WATCH" * 1000, os.urandom(60_000), b"\x00" * 64, HELLO + b"\n", b"GET /"]
    for payload in attacks:
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as sock:
            sock.settimeout(3)
            sock.connect(path)
            if payload:
                with contextlib.suppress(OSError):  # too long for the socket: refused
                    sock.send(payload)
            try:
                reply = sock.recv(100)
            except TimeoutError:
                reply = b"(silence)"
            assert not reply.startswith(b"F"), payload[:10]  # no frame for a bad hello
    flood = [socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) for _ in range(40)]
    for sock in flood:
        with contextlib.suppress(OSError):
            sock.connect(path)
    time.sleep(2.5)  # past the hello timeout: the silent ones are dropped
    for sock in flood:
        sock.close()
    assert site.grabber.proc.poll() is None
    stream = site.stream()
    assert stream.status == 200 and next(stream.frames(seconds=10))
    stream.close()


STRUCTURAL = {"not_jpeg", "truncated", "ended_early", "undecodable", "unsupported"}


def _structure_agrees(data: bytes) -> None:
    """Whatever the full validator rejects for structure, the live check rejects too."""
    try:
        validate_jpeg(data)
    except CorruptFrame as exc:
        if exc.reason in STRUCTURAL:
            with pytest.raises(CorruptFrame):
                validate_structure(data)


@pytest.mark.parametrize("name", BAD + GOOD)
def test_the_live_check_rejects_what_the_validator_rejects_for_structure(name):
    data = (FRAMES_DIR / name).read_bytes()
    _structure_agrees(data)
    if name in GOOD:
        validate_structure(data)


def test_the_live_check_rejects_simulated_transfer_losses():
    """As tests/test_validate.py does for photos: bytes lost from the scan in transit."""
    import random

    rng = random.Random(7)
    for name in ("good-chelsea.jpg", "good-coffee-422.jpg", "good-640x480.jpg"):
        data = (FRAMES_DIR / name).read_bytes()
        scan = data.index(b"\xff\xda") + 20
        for _ in range(40):
            start = rng.randrange(scan, len(data) - 1100)
            _structure_agrees(data[:start] + data[start + rng.randrange(16, 1024) :])


def test_live_lines_name_the_reason(site):
    stream = site.stream()
    next(stream.frames(seconds=5))
    stream.close()
    site.wait_for(lambda: _logged(site.grabber_log, "live view ended"), 10, "the end logged")
    text = site.grabber_log.read_text()
    assert re.search(r"live view started: camera kept open for 1 viewer", text)
