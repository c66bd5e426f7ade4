"""A real waitress server on a free loopback port, and the puccicam serve/demo commands."""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests.helpers.site import CSRF, PASSWORD, waitress_thread


@pytest.fixture
def live_server(app, photos, auth):
    """The app under waitress on 127.0.0.1 with an owner; yields the base URL."""
    auth.create()
    with waitress_thread(app) as url:
        yield url


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _opener(redirects: bool = True):
    jar = http.cookiejar.CookieJar()
    handlers = [urllib.request.HTTPCookieProcessor(jar)]
    if not redirects:
        handlers.append(NoRedirect())
    return urllib.request.build_opener(*handlers)


def _login(opener, base: str) -> None:
    page = opener.open(base + "/login").read().decode()
    token = CSRF.search(page).group(1)
    form = urllib.parse.urlencode({"username": "owner", "password": PASSWORD, "csrf_token": token})
    response = opener.open(base + "/login", data=form.encode())
    assert response.url.endswith("/gallery")


def test_waitress_serves_the_gallery_and_photos(live_server, photos):
    opener = _opener()
    _login(opener, live_server)
    photo = opener.open(f"{live_server}/photos/{photos[-1].name}")
    assert photo.headers["Content-Type"] == "image/jpeg" and photo.read()[:2] == b"\xff\xd8"
    assert photo.headers["Server"] == "puccicam"  # no version string
    assert "private" in photo.headers["Cache-Control"]


def test_waitress_anonymous_photo_is_a_redirect(live_server, photos):
    with pytest.raises(urllib.error.HTTPError) as caught:
        _opener(redirects=False).open(f"{live_server}/photos/{photos[-1].name}")
    assert caught.value.code == 302 and b"\xff\xd8" not in caught.value.read()


def test_waitress_healthz(live_server):
    with urllib.request.urlopen(live_server + "/healthz") as response:
        assert response.status == 200 and response.read() == b'{"status":"ok"}\n'


def test_waitress_caps_request_bodies(live_server):
    body = b"x" * (64 * 1024)
    request = urllib.request.Request(live_server + "/login", data=body, method="POST")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request)
    assert caught.value.code == 413


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_demo_command_runs_grabber_and_server_and_stops_on_ctrl_c(tmp_path):
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "puccicam", "demo", "--port", str(port), "--interval", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    try:
        banner = ""
        deadline = time.monotonic() + 30
        while "log in as" not in banner and time.monotonic() < deadline:
            banner += proc.stderr.readline()
        name, password = re.search(r"log in as (\S+) / (\S+)", banner).groups()
        base = f"http://127.0.0.1:{port}"
        opener = _opener()
        page = opener.open(base + "/login").read().decode()
        token = CSRF.search(page).group(1)
        form = urllib.parse.urlencode({"username": name, "password": password, "csrf_token": token})
        assert opener.open(base + "/login", data=form.encode()).url.endswith("/gallery")
        deadline = time.monotonic() + 30
        latest = b'"name":null'
        while b'"name":null' in latest and time.monotonic() < deadline:
            time.sleep(0.5)
            latest = opener.open(base + "/api/latest").read()
        assert b'"name":"' in latest  # the grabber has delivered a photo to the gallery
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    finally:
        proc.kill()
    rest = proc.stderr.read()
    assert proc.returncode == 0, rest
    assert "frame rejected" in banner + rest


@pytest.mark.slow
def test_serve_stops_on_sigterm_after_load(tmp_path):
    """waitress swallows ordinary exceptions raised in its loop; SIGTERM must still stop it."""
    port = _free_port()
    env = {**os.environ, "PUCCICAM_DATA_DIR": str(tmp_path), "PUCCICAM_WEB_BCRYPT_ROUNDS": "4"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "puccicam", "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/")
                break
            except OSError:
                assert time.monotonic() < deadline, "puccicam serve did not come up"
                time.sleep(0.1)

        def load() -> None:
            for _ in range(20):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/login").read()
                except OSError:
                    return  # the server has gone, as asked

        threads = [threading.Thread(target=load) for _ in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(0.2)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        for thread in threads:
            thread.join(10)
    finally:
        proc.kill()
    assert proc.returncode == 0 and time.monotonic() - sent < 8


def _channel(**state):
    """A GuardedServer channel in a given state, without a socket (only its state matters).

    The clock reads 100; ``progress`` (the last answer sent) defaults to 10 s ago."""
    from webapp.guard import _Channel

    channel = _Channel.__new__(_Channel)
    defaults = {"requests": [], "total_outbufs_len": 0, "will_close": False,
                "close_when_flushed": False, "request": None, "began": 0.0,
                "progress": 90.0}  # fmt: skip
    for name, value in {**defaults, **state}.items():
        setattr(channel, name, value)
    return channel


@pytest.mark.parametrize(
    ("state", "idle"),
    [
        ({}, 10.0),  # nothing since the last answer (bare CRLFs and idle keep-alive alike)
        ({"request": object(), "began": 95.0}, 5.0),  # a request trickling in since 95
        ({"request": object(), "began": 80.0}, 10.0),  # ...begun before the last answer
        ({"progress": 99.0}, 1.0),  # answered a second ago
        ({"requests": [object()], "request": object(), "began": 1.0}, None),  # being answered
        ({"total_outbufs_len": 5}, None),  # an answer still to send
        ({"will_close": True}, None),  # closing anyway
        ({"close_when_flushed": True}, None),
    ],
)
def test_how_long_a_connection_has_gone_without_progress(state, idle):
    """The guard makes room by closing connections longest without an answer sent."""
    assert _channel(**state).idle_for(now=100.0) == idle


def _full_server(channels: dict[str, tuple[str, float | None]], slots: int = 8):
    """A GuardedServer holding ``channels`` (name: (address, seconds idle or None if busy))."""
    from types import SimpleNamespace

    from webapp.guard import GuardedServer

    server = GuardedServer.__new__(GuardedServer)
    server.adj = SimpleNamespace(connection_limit=slots + 2, listen=[object()])
    server.active_channels = {}
    now = time.monotonic()
    for fd, (name, (address, idle)) in enumerate(channels.items()):
        busy = {"requests": [object()]} if idle is None else {}
        channel = _channel(progress=now - (idle or 0), addr=(address, 1000 + fd), **busy)
        channel.name = name
        server.active_channels[fd] = channel
    return server


@pytest.mark.parametrize(
    ("channels", "closed"),
    [
        # Past patience (3 s): all go; being answered: never, however long.
        (
            {
                "slow1": ("10.0.0.1", 9),
                "slow2": ("10.0.0.2", 4),
                "busy": ("10.0.0.3", None),
                "owner": ("10.0.0.4", 2),
            },
            {"slow1", "slow2"},
        ),
        # An address over its share (a quarter of 8 slots): its surplus, longest idle first.
        (
            {
                "a1": ("10.0.0.1", 2.5),
                "a2": ("10.0.0.1", 2),
                "a3": ("10.0.0.1", 1),
                "a4": ("10.0.0.1", 0.1),
                "owner": ("10.0.0.9", 2.9),
            },
            {"a1", "a2"},
        ),
        # Nobody stalled or over a share: the one longest without an answer.
        ({"b1": ("10.0.0.1", 1), "b2": ("10.0.0.2", 2), "b3": ("10.0.0.3", 0.7)}, {"b2"}),
        # Answered or let in within the last half second, or being answered: nobody.
        ({"new": ("10.0.0.1", 0.1), "busy": ("10.0.0.2", None)}, set()),
    ],
)
def test_which_connections_make_room_for_a_waiting_client(channels, closed):
    server = _full_server(channels)
    server._make_room()
    assert {c.name for c in server.active_channels.values() if c.will_close} == closed
