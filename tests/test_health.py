"""When is the newest photo late: one rule for ``/healthz`` and the gallery's banner; and
the URL map's doubled slashes, a leading one included, over a real socket."""

from __future__ import annotations

import time

import pytest

from camera.status import LATE_GRACE, Status, late_after, write_status
from tests.helpers.site import PASSWORD, AuthActions

INTERVAL, WARMUP = 300, 3


def test_late_after_is_two_intervals_the_warm_up_and_a_minute():
    assert late_after(300, 3) == 2 * 300 + 3 + LATE_GRACE == 663


@pytest.fixture
def owner_app(make_config, tmp_path):
    from webapp import create_app, state

    config = make_config(
        capture__interval=INTERVAL, camera__warmup_delay=WARMUP, web__bcrypt_rounds=4
    )
    app = create_app(config, TESTING=True)
    with app.app_context():
        state().accounts.add("owner", PASSWORD)
    return app


def _answers(app, good_frame, age: float) -> tuple[int, bool, bool]:
    """(/healthz status, /api/latest's late, the gallery's late banner shown) for a store
    whose newest photo is ``age`` seconds old."""
    from webapp import state
    from webapp.extensions import limiter

    limiter.reset()
    with app.app_context():
        store = state().store
        for photo in store.photos():
            store.path(photo.name).unlink()
        store.save(good_frame, time.time() - age)
    client = app.test_client()
    health = client.get("/healthz").status_code
    AuthActions(client, app).login()
    late = client.get("/api/latest").get_json()["late"]
    page = client.get("/gallery").get_data(as_text=True)
    banner = 'id="banner-late" hidden' not in page and 'id="banner-late"' in page
    return health, late, banner


@pytest.mark.parametrize(
    ("age", "late"),
    [
        (late_after(INTERVAL, WARMUP) - 10, False),
        # Between the gallery's old rule (2 x interval + 60 s) and /healthz's: the two
        # used to disagree here, the banner saying late while /healthz said ok.
        (2 * INTERVAL + LATE_GRACE + WARMUP / 2, False),
        (late_after(INTERVAL, WARMUP) + 10, True),
    ],
)
def test_healthz_and_the_gallery_banner_agree_on_late(owner_app, good_frame, age, late):
    health, api_late, banner = _answers(owner_app, good_frame, age)
    assert (health, api_late, banner) == (503 if late else 200, late, late)


def test_the_grabbers_own_interval_counts_for_both(owner_app, good_frame):
    from webapp import state

    with owner_app.app_context():
        path = state().config.status_path
    # The grabber runs every 60 s (an --interval override): a photo 400 s old is late,
    # although the configured 300 s would allow 663 s.
    write_status(path, Status(pid=1, interval=60, camera="ok"))
    assert _answers(owner_app, good_frame, 400) == (503, True, True)


@pytest.mark.parametrize(
    "target",
    [
        "//gallery",
        "//",
        "//login",
        "//static/style.css",
        "//photo/{name}",
        "//photos/{name}",  # the fast path's
        "//thumbs/{name}",
        "///status",
    ],
)
def test_a_leading_doubled_slash_is_a_404(site, target):
    owner, _token = site.owner()
    target = target.format(name=site.photo)
    for cookies in (owner, None):
        reply = site.fetch("GET", target, cookies=cookies)
        assert reply.status == 404, (target, cookies is not None, reply.status)
    # the control: the same path with one slash is answered as usual (/login redirects
    # an owner who is logged in already)
    assert site.fetch("GET", "/" + target.lstrip("/"), cookies=owner).status in (200, 302)
