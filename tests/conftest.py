"""Shared fixtures: fixture frames, a config rooted in tmp_path, fake clock and camera."""

from __future__ import annotations

import contextlib
import re
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from puccicam.config import load_config
from tests.fakes import FakeCamera, FakeClock

FRAMES_DIR = Path(__file__).parent / "fixtures" / "frames"
GOOD = sorted(p.name for p in FRAMES_DIR.glob("good-*.jpg"))
BAD = sorted(p.name for p in FRAMES_DIR.glob("bad-*.jpg"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--hardware", action="store_true", help="also run tests that need a real /dev/video0"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--hardware"):
        return
    skip = pytest.mark.skip(reason="needs a real camera: run with --hardware")
    for item in items:
        if "hardware" in item.keywords:
            item.add_marker(skip)


def frame_bytes(name: str) -> bytes:
    return (FRAMES_DIR / name).read_bytes()


@pytest.fixture
def good_frame() -> bytes:
    return frame_bytes("good-chelsea.jpg")


@pytest.fixture
def make_config(tmp_path: Path):
    """A config in tmp_path with test-speed warm-up; keyword overrides use dotted keys."""

    def make(**overrides):
        values = {
            "data_dir": tmp_path / "data",
            "camera.warmup_delay": 0,
            "camera.warmup_frames": 2,
            "capture.interval": 300,
        }
        values.update({k.replace("__", "."): v for k, v in overrides.items()})
        return load_config(env={}, overrides=values)

    return make


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def camera(clock: FakeClock) -> FakeCamera:
    return FakeCamera([frame_bytes("good-chelsea.jpg"), frame_bytes("good-coffee-422.jpg")], clock)


# -- the web app ------------------------------------------------------------------

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


@pytest.fixture
def app(make_config):
    from webapp import create_app
    from webapp.extensions import limiter

    application = create_app(make_config(web__bcrypt_rounds=4), TESTING=True)
    limiter.reset()
    return application


@pytest.fixture
def client(app):
    return app.test_client()


class AuthActions:
    """Create an owner, log in and out through the real forms (with CSRF tokens)."""

    def __init__(self, client, app) -> None:
        self.client = client
        self.app = app

    def create(self, username: str = "owner", password: str = PASSWORD) -> None:
        from webapp import state

        with self.app.app_context():
            state().accounts.add(username, password)

    def token(self, path: str = "/login") -> str:
        match = CSRF.search(self.client.get(path).get_data(as_text=True))
        assert match, f"no CSRF token on {path}"
        return match.group(1)

    def login(self, username: str = "owner", password: str = PASSWORD, next: str | None = None,
              remember: bool = False):  # fmt: skip
        data = {"username": username, "password": password, "csrf_token": self.token()}
        if remember:
            data["remember"] = "y"
        url = "/login" + (f"?next={quote(next)}" if next else "")
        return self.client.post(url, data=data)

    def logout(self):
        return self.client.post("/logout", data={"csrf_token": self.token("/")})


@pytest.fixture
def auth(client, app) -> AuthActions:
    return AuthActions(client, app)


@pytest.fixture
def photos(app, good_frame):
    """Twelve photos, one every 5 minutes up to a minute ago, through the real store."""
    from webapp import state

    now = time.time()
    with app.app_context():
        store = state().store
        return [store.save(good_frame, now - 60 - 300 * i) for i in range(12)][::-1]


@contextlib.contextmanager
def serving(app):
    """The app under a real waitress server on a free loopback port; yields the server."""
    from webapp import state
    from webapp.server import make_server

    with app.app_context():
        config = state().config
    server = make_server(app, config, host="127.0.0.1", port=0)

    def run() -> None:
        with contextlib.suppress(OSError):  # sockets closed from the test's thread: done
            server.run()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.task_dispatcher.shutdown()  # let workers finish before their wake-up pipe goes
        server.close()
        thread.join(5)


@contextlib.contextmanager
def waitress_thread(app):
    """The app under a real waitress server on a free loopback port; yields its URL."""
    with serving(app) as server:
        yield f"http://127.0.0.1:{server.effective_port}"
