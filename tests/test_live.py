"""Live view end to end: the real grabber and the real ``puccicam serve``, on a replay camera.

Both run as their own processes, as systemd runs them, talking over the live socket; a
client logs in through the real form and reads ``/live/stream`` over a real socket.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import pytest

from camera.errors import CorruptFrame
from camera.live import HELLO
from camera.store import parse_name
from camera.validate import validate_jpeg, validate_structure
from tests.helpers.frames import BAD, FRAMES_DIR, GOOD
from tests.helpers.live import CSRF, GrabberProcess, ServerProcess, login
from tests.helpers.mjpeg import MjpegStream

pytestmark = pytest.mark.slow

PASSWORD = "live view password"


class LiveSite:
    """A data dir, a replay camera, the grabber and the server, and an owner."""

    def __init__(self, tmp: Path, **settings: str) -> None:
        self.data = tmp / "data"
        self.frames = tmp / "camera"
        self.frames.mkdir()
        # Good frames with a corrupt one after every second, as a flaky USB camera sends.
        good = [name for name in GOOD if "640" not in name]
        for i, name in enumerate(good * 3):
            shutil.copy(FRAMES_DIR / name, self.frames / f"{i:03d}-{name}")
            if i % 2:
                bad = BAD[(i // 2) % len(BAD)]
                shutil.copy(FRAMES_DIR / bad, self.frames / f"{i:03d}-x-{bad}")
        # Unix socket paths are short (108 bytes): not under pytest's long tmp path.
        self.sockdir = Path(tempfile.mkdtemp(prefix="pl-", dir="/tmp"))
        self.env = {
            "PUCCICAM_LIVE_SOCKET": str(self.sockdir / "live.sock"),
            "PUCCICAM_CAMERA_SOURCE": f"replay:{self.frames}",
            "PUCCICAM_CAMERA_WARMUP_DELAY": "0.5",
            "PUCCICAM_CAMERA_WARMUP_FRAMES": "3",
            "PUCCICAM_CAPTURE_INTERVAL": "60",
            "PUCCICAM_WEB_BCRYPT_ROUNDS": "4",
            **settings,
        }
        self.grabber_log = tmp / "grabber.log"
        self.server_log = tmp / "server.log"
        self.puccicam("user", "add", "owner", "--password-stdin", stdin=PASSWORD + "\n")
        self.grabber = GrabberProcess(self.data, self.env, self.grabber_log)
        self.server = ServerProcess(self.data, self.env, self.server_log)
        self.port = self.server.port
        self.cookie = login(self.server.base, "owner", PASSWORD)

    def puccicam(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PUCCICAM_")}
        return subprocess.run(
            [sys.executable, "-m", "puccicam", *args, "--data-dir", str(self.data)],
            input=stdin, capture_output=True, text=True, env={**env, **self.env}, check=True,
        )  # fmt: skip

    def stream(self, **kwargs) -> MjpegStream:
        return MjpegStream(self.port, self.cookie, **kwargs)

    def status(self) -> dict:
        return json.loads((self.data / "status.json").read_text())

    def wait_for(self, predicate, seconds: float, what: str) -> float:
        started = time.monotonic()
        while not predicate():
            assert time.monotonic() - started < seconds, f"not within {seconds} s: {what}"
            time.sleep(0.05)
        return time.monotonic() - started

    def get(self, path: str, cookie: str | None = None) -> tuple[int, float]:
        started = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request("GET", path, headers={"Cookie": cookie or self.cookie})
        response = conn.getresponse()
        response.read()
        conn.close()
        return response.status, time.monotonic() - started

    def close(self) -> None:
        self.server.stop()
        self.grabber.stop()
        shutil.rmtree(self.sockdir, ignore_errors=True)


@pytest.fixture
def site(tmp_path):
    live = LiveSite(tmp_path)
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
    started = time.monotonic()
    if how == "logout":
        _logout(site)
    elif how == "user passwd":
        site.puccicam("user", "passwd", "owner", "--password-stdin", stdin="a new password\n")
    else:
        site.puccicam("user", "remove", "owner")
    took = stream.ended_within(5)
    assert took is not None
    assert time.monotonic() - started < 2.5  # the command itself takes a moment
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
    site = LiveSite(tmp_path, PUCCICAM_LIVE_MAX_MINUTES="0.05")  # 3 seconds
    try:
        stream = site.stream()
        took = stream.ended_within(10)
        assert took is not None and 2 < took < 5  # counted from the request, not from here
        assert _logged(site.server_log, "ended: time limit")
    finally:
        site.close()


def test_interval_photos_keep_their_schedule_during_live_view(tmp_path):
    site = LiveSite(tmp_path, PUCCICAM_CAPTURE_INTERVAL="2", PUCCICAM_CAMERA_KEEP_OPEN_BELOW="1")
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
            assert moment % 2 < 1.0, f"photo {moment % 2:.2f} s after its tick"
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


def test_every_live_frame_passes_the_structure_check():
    """The live check rejects every fixture the full validator rejects for structure."""
    structural = {"not_jpeg", "truncated", "ended_early", "undecodable", "unsupported"}
    for name in BAD:
        data = (FRAMES_DIR / name).read_bytes()
        try:
            validate_jpeg(data)
        except CorruptFrame as exc:
            if exc.reason in structural:
                with pytest.raises(CorruptFrame):
                    validate_structure(data)
    for name in GOOD:
        validate_structure((FRAMES_DIR / name).read_bytes())


def test_live_lines_name_the_reason(site):
    stream = site.stream()
    next(stream.frames(seconds=5))
    stream.close()
    site.wait_for(lambda: _logged(site.grabber_log, "live view ended"), 10, "the end logged")
    text = site.grabber_log.read_text()
    assert re.search(r"live view started: camera kept open for 1 viewer", text)
