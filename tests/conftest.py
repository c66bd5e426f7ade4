"""Shared fixtures and hooks: a config rooted in tmp_path, fake clock and camera, the app,
a running site; ``--hardware`` and ``--slow`` opt in to the tests they name."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from puccicam.config import load_config
from tests.helpers.fakes import FakeCamera, FakeClock
from tests.helpers.frames import frame_bytes
from tests.helpers.site import ATTACKS, AuthActions, Site, waitress_thread
from tests.helpers.soak import record

OPT_INS = {
    "hardware": "needs a real camera: run with --hardware",
    "slow": "slow: run with --slow, as scripts/test does",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--hardware", action="store_true", help="also run tests that need a real /dev/video0"
    )
    parser.addoption(
        "--slow",
        action="store_true",
        help="also run the slow tests (faults, load, fuzz, installs): scripts/test does",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skips = {
        marker: pytest.mark.skip(reason=reason)
        for marker, reason in OPT_INS.items()
        if not config.getoption(f"--{marker}")
    }
    for item in items:
        for marker, skip in skips.items():
            if item.get_closest_marker(marker):
                item.add_marker(skip)


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


# -- the site the hostile tests attack --------------------------------------------


@pytest.fixture(scope="session")
def _record_attacks():
    """After the session, how many handcrafted attacks the hostile tests sent."""
    yield
    if ATTACKS[0]:
        record("hostile", "handcrafted cases", ATTACKS[0])


@pytest.fixture
def site(app, auth, photos, tmp_path, _record_attacks):
    auth.create()
    # The limits are the limiter's business (tests/test_auth.py); here they would turn
    # the many logins into 429s and hide what the login itself does with the input.
    app.config.update(LOGIN_LIMIT_IP="100000 per minute", LOGIN_LIMIT_USER="100000 per minute")
    with waitress_thread(app) as url:
        yield Site(app, url, photos, tmp_path)
