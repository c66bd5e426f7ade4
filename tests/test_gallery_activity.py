"""The gallery's activity: per hour on the timeline, the movement filter, motion badges."""

from __future__ import annotations

import re
import time

import pytest

from camera.meta import MOVING, PhotoMeta


@pytest.fixture
def day(app, good_frame):
    """Photos over the last few hours: still ones, one with activity, motion photos."""
    from webapp import state

    now = time.time()
    hour = int(now // 3600) * 3600
    with app.app_context():
        store = state().store
        plan = [
            (hour - 3 * 3600 + 60, PhotoMeta("interval", 2)),
            (hour - 3 * 3600 + 360, PhotoMeta("interval", 3)),
            (hour - 2 * 3600 + 60, PhotoMeta("interval", 35)),
            (hour - 2 * 3600 + 90, PhotoMeta("motion", 64)),
            (hour - 2 * 3600 + 360, PhotoMeta("interval", MOVING - 1)),
            (hour - 3600 + 60, PhotoMeta("interval", None)),  # taken before activity existed
            (hour - 3600 + 120, PhotoMeta("motion", 12)),
        ]
        saved = {meta: store.save(good_frame, t, meta=meta) for t, meta in plan}
    return hour, saved


@pytest.fixture
def owner(auth):
    auth.create()
    auth.login()


def _cells(page: str) -> list[str]:
    timeline = page[page.index('<ol class="timeline"') : page.index("</ol>")]
    return re.findall(r"<li class=.*?</li>", timeline, re.S)


def test_the_timeline_shows_each_hours_highest_activity(client, owner, day):
    page = client.get("/gallery").get_data(as_text=True)
    cells = _cells(page)
    assert len(cells) == 24
    # The newest cells: three hours ago (still), two hours ago (64), an hour ago (12), now.
    assert 'data-act="1"' in cells[-4] and "activity 3" in cells[-4]
    assert 'data-act="7"' in cells[-3] and "activity 64" in cells[-3]
    assert 'data-act="2"' in cells[-2] and "activity 12" in cells[-2]
    assert 'data-act="0"' in cells[-1] and 'class="gap"' in cells[-1]  # gaps as before
    assert "2 photos" in cells[-4] and "3 photos" in cells[-3]


def test_the_filter_shows_only_photos_with_movement(client, owner, day):
    _, saved = day
    everything = client.get("/gallery").get_data(as_text=True)
    assert everything.count("/thumbs/") == len(saved)
    assert 'href="/gallery?moving=1"' in everything  # the visible toggle
    page = client.get("/gallery?moving=1").get_data(as_text=True)
    shown = set(re.findall(r"/thumbs/([0-9TZ.a-z]+)", page))
    expected = {p.name for meta, p in saved.items() if meta.moving}
    assert shown == expected and len(expected) == 3
    assert f"at least {MOVING}" in page
    assert 'href="/gallery">Show all photos' in page
    # The timeline still shows the whole day.
    assert len(_cells(page)) == 24


def test_the_filter_pages_with_its_cursor(client, owner, app, good_frame):
    from webapp import gallery, state

    now = time.time()
    with app.app_context():
        store = state().store
        for i in range(gallery.PAGE + 5):
            store.save(good_frame, now - 60 - 20 * i, meta=PhotoMeta("motion", 50))
            store.save(good_frame, now - 70 - 20 * i, meta=PhotoMeta("interval", 0))
    first = client.get("/gallery?moving=1").get_data(as_text=True)
    assert first.count("/thumbs/") == gallery.PAGE
    older = re.search(r'href="(/gallery\?[^"]*before=[^"]+)"', first)[1].replace("&amp;", "&")
    assert "moving=1" in older
    second = client.get(older).get_data(as_text=True)
    assert second.count("/thumbs/") == 5
    assert second.count("motion-badge") == 5


def test_motion_photos_carry_a_badge_with_text(client, owner, day):
    _, saved = day
    page = client.get("/gallery").get_data(as_text=True)
    items = re.findall(r"<li><a href=\"/photo/.*?</li>", page, re.S)
    motion = {p.name for meta, p in saved.items() if meta.kind == "motion"}
    for item in items:
        name = re.search(r"/photo/([^\"]+)", item)[1]
        badged = '<span class="motion-badge"' in item
        assert badged == (name in motion)
        if badged:
            assert ">Motion</span>" in item and "(motion photo)" in item  # not colour only


def test_in_german(client, owner, day):
    client.set_cookie("lang", "de")
    page = client.get("/gallery").get_data(as_text=True)
    assert "Nur Fotos mit Bewegung" in page and "Aktivität 64" in page
    assert ">Bewegung</span>" in page and "(Bewegungsfoto)" in page
    filtered = client.get("/gallery?moving=1").get_data(as_text=True)
    assert "Alle Fotos zeigen" in filtered and f"mindestens {MOVING}" in filtered


def test_an_unknown_filter_value_is_the_whole_gallery(client, owner, day):
    _, saved = day
    for value in ("0", "yes", "", "1' or 1=1"):
        page = client.get("/gallery", query_string={"moving": value}).get_data(as_text=True)
        assert page.count("/thumbs/") == len(saved)
