"""The owners' pages: nobody else gets a byte, owners get photos that cache well."""

from __future__ import annotations

import json
import time

import pytest

from camera.status import Status, write_status

PROTECTED = [
    "/gallery",
    "/gallery?before={name}",
    "/gallery?after={name}",
    "/photo/{name}",
    "/photos/{name}",
    "/thumbs/{name}",
    "/api/latest",
    "/status",
]


@pytest.mark.parametrize("url", PROTECTED)
def test_anonymous_gets_a_redirect_and_never_a_photo_byte(client, photos, url):
    response = client.get(url.format(name=photos[-1].name))
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")
    assert b"\xff\xd8" not in response.data


@pytest.mark.parametrize("url", PROTECTED)
def test_owner_gets_every_page(auth, client, photos, url):
    auth.create()
    auth.login()
    response = client.get(url.format(name=photos[5].name))
    assert response.status_code == 200


def test_gallery_shows_newest_large_and_thumbnails_by_hour(auth, client, photos):
    auth.create()
    auth.login()
    page = client.get("/gallery").get_data(as_text=True)
    assert f'data-latest="{photos[-1].name}"' in page
    assert f"/photos/{photos[-1].name}" in page
    assert page.count("/thumbs/") == len(photos)
    assert 'loading="lazy"' in page
    assert page.count('<li class="') >= 24  # the 24-hour timeline
    assert "ago" in page


def test_gallery_pages_older_and_newer(auth, client, app, good_frame):
    from webapp import gallery, state

    now = time.time()
    with app.app_context():
        store = state().store
        saved = [store.save(good_frame, now - 30 * i) for i in range(gallery.PAGE + 10)]
    auth.create()
    auth.login()
    first = client.get("/gallery").get_data(as_text=True)
    assert first.count("/thumbs/") == gallery.PAGE
    oldest_shown = saved[gallery.PAGE - 1].name
    assert f"/gallery?before={oldest_shown}" in first
    second = client.get(f"/gallery?before={oldest_shown}").get_data(as_text=True)
    assert second.count("/thumbs/") == 10
    assert f"/gallery?after={saved[gallery.PAGE].name}" in second
    back = client.get(f"/gallery?after={saved[gallery.PAGE].name}").get_data(as_text=True)
    assert back.count("/thumbs/") == gallery.PAGE


def test_single_photo_links_to_older_and_newer(auth, client, photos):
    auth.create()
    auth.login()
    page = client.get(f"/photo/{photos[5].name}").get_data(as_text=True)
    assert f"/photo/{photos[4].name}" in page and f"/photo/{photos[6].name}" in page
    oldest = client.get(f"/photo/{photos[0].name}").get_data(as_text=True)
    assert 'rel="next"' not in oldest


def test_photo_and_thumbnail_carry_validators_and_private_caching(auth, client, photos, app):
    from webapp import state

    auth.create()
    auth.login()
    for url in (f"/photos/{photos[3].name}", f"/thumbs/{photos[3].name}"):
        first = client.get(url)
        assert first.status_code == 200 and first.data[:2] == b"\xff\xd8"
        assert first.mimetype == "image/jpeg"
        assert "private" in first.headers["Cache-Control"]
        assert "public" not in first.headers["Cache-Control"]
        assert first.headers["ETag"] and first.headers["Last-Modified"]
        again = client.get(url, headers={"If-None-Match": first.headers["ETag"]})
        assert again.status_code == 304 and again.data == b""
    with app.app_context():
        thumb = state().store.thumb_path(photos[3].name)
    assert thumb.is_file()  # made once, kept
    made = thumb.stat().st_mtime_ns
    client.get(f"/thumbs/{photos[3].name}")
    assert thumb.stat().st_mtime_ns == made


@pytest.mark.parametrize(
    "name",
    [
        "20200101T000000.000Z.jpg",
        "..%2Fstatus.json",
        "..%252Fstatus.json",
        "%2Fetc%2Fpasswd",
        "..\\status.json",
        "20261118T110640.000Z.jpg%00.png",
        "%C0%AE%C0%AE%2Fstatus.json",
        "status.json",
        "secret_key",
    ],
)
def test_unknown_or_hostile_names_are_404(auth, client, photos, name):
    auth.create()
    auth.login()
    for prefix in ("/photos/", "/thumbs/", "/photo/"):
        response = client.get(prefix + name)
        assert response.status_code == 404, prefix + name
        assert b"\xff\xd8" not in response.data


def test_directories_are_never_listed(auth, client, photos):
    auth.create()
    auth.login()
    for url in ("/photos/", "/thumbs/", "/photos", "/static/", "/photo/"):
        assert client.get(url).status_code == 404


def test_latest_api_for_the_self_refreshing_hero(auth, client, photos, app, good_frame):
    from webapp import state

    auth.create()
    auth.login()
    body = json.loads(client.get("/api/latest").data)
    assert body["name"] == photos[-1].name and body["offline"] is False and body["late"] is False
    with app.app_context():
        newest = state().store.save(good_frame, time.time())
    body = json.loads(client.get("/api/latest").data)
    assert body["name"] == newest.name and body["photo"] == f"/photos/{newest.name}"


def test_offline_banner_from_the_status_file(auth, client, photos, app):
    from webapp import state

    auth.create()
    auth.login()
    page = client.get("/gallery").get_data(as_text=True)
    assert 'id="offline" class="banner" hidden' in page
    with app.app_context():
        write_status(state().config.status_path, Status(camera="missing", interval=300))
    page = client.get("/gallery").get_data(as_text=True)
    assert '<span id="banner-offline">' in page and 'class="banner" hidden' not in page


def test_late_banner_when_the_newest_photo_is_old(auth, client, app, good_frame):
    from webapp import state

    with app.app_context():
        state().store.save(good_frame, time.time() - 3 * 3600)
    auth.create()
    auth.login()
    page = client.get("/gallery").get_data(as_text=True)
    assert '<span id="banner-late">' in page and 'class="banner" hidden' not in page


def test_status_page_reads_the_status_file(auth, client, app, photos):
    from webapp import state

    auth.create()
    auth.login()
    assert "has not reported yet" in client.get("/status").get_data(as_text=True)
    with app.app_context():
        write_status(
            state().config.status_path, Status(camera="ok", saved=42, rejected={"blank": 3})
        )
    page = client.get("/status").get_data(as_text=True)
    assert "42" in page and "blank" in page and "working" in page
    assert "interval photos" in page


def test_status_page_shows_live_view_and_its_viewers(auth, client, app, photos):
    from webapp import state

    auth.create()
    auth.login()
    with app.app_context():
        write_status(state().config.status_path, Status(camera="ok", mode="live", viewers=2))
    assert "live view, 2 viewers" in client.get("/status").get_data(as_text=True)


def test_fast_path_serves_photos_without_flask_dispatch(auth, client, app, photos):
    auth.create()
    auth.login()

    def must_not_run(name):
        raise AssertionError("the Flask view ran")

    app.view_functions["gallery.photo_bytes"] = must_not_run
    response = client.get(f"/photos/{photos[0].name}")
    assert response.status_code == 200 and response.data[:2] == b"\xff\xd8"
    assert (
        response.headers["Content-Security-Policy"]
        and "private" in response.headers["Cache-Control"]
    )
    head = client.head(f"/photos/{photos[0].name}")
    assert head.status_code == 200 and head.data == b""
    since = client.get(
        f"/photos/{photos[0].name}",
        headers={"If-Modified-Since": response.headers["Last-Modified"]},
    )
    assert since.status_code == 304


def test_fast_path_and_flask_path_agree_on_validators(auth, client, app, photos):
    auth.create()
    auth.login()
    fast = client.get(f"/photos/{photos[1].name}")
    app.wsgi_app = app.wsgi_app.next  # only Flask now
    slow = client.get(f"/photos/{photos[1].name}")
    assert fast.headers["ETag"] == slow.headers["ETag"]
    assert fast.data == slow.data
    assert (
        client.get(
            f"/photos/{photos[1].name}", headers={"If-None-Match": fast.headers["ETag"]}
        ).status_code
        == 304
    )


def test_fast_path_refuses_a_replayed_cookie_after_logout(auth, client, app, photos):
    auth.create()
    auth.login()
    cookie = client.get_cookie("puccicam_session").value
    assert client.get(f"/photos/{photos[2].name}").status_code == 200
    auth.logout()
    thief = app.test_client()
    thief.set_cookie("puccicam_session", cookie)
    for prefix in ("/photos/", "/thumbs/"):
        response = thief.get(prefix + photos[2].name)
        assert response.status_code == 302 and b"\xff\xd8" not in response.data


def test_missing_thumbnail_goes_through_flask_once(auth, client, app, photos):
    from webapp import state

    auth.create()
    auth.login()
    with app.app_context():
        thumb = state().store.thumb_path(photos[4].name)
    assert not thumb.exists()
    assert client.get(f"/thumbs/{photos[4].name}").status_code == 200
    assert thumb.exists()
    app.view_functions["gallery.thumb_bytes"] = lambda name: ("flask ran", 500)
    assert client.get(f"/thumbs/{photos[4].name}").status_code == 200  # now the fast path


@pytest.mark.parametrize(
    "name", ["00010101T000000.000Z.jpg", "00000101T000000.000Z.jpg", "99991231T235959.999Z.jpg"]
)
def test_implausible_years_are_404_not_500(auth, client, photos, name):
    auth.create()
    auth.login()
    for url in (
        f"/gallery?before={name}",
        f"/gallery?after={name}",
        f"/photo/{name}",
        f"/photos/{name}",
        f"/thumbs/{name}",
    ):
        assert client.get(url).status_code == 404, url


def test_absurd_if_modified_since_is_not_a_500(auth, client, photos):
    auth.create()
    auth.login()
    response = client.get(
        f"/photos/{photos[0].name}",
        headers={"If-Modified-Since": "Mon, 01 Jan 2020 00:00:00 +99999999999999"},
    )
    assert response.status_code == 200


def test_empty_cursor_is_the_first_page(auth, client, photos):
    auth.create()
    auth.login()
    assert 'rel="prev"' not in client.get("/gallery?before=").get_data(as_text=True)


def test_threads_making_the_same_thumbnail_all_succeed(app, photos):
    from concurrent.futures import ThreadPoolExecutor

    from camera.validate import validate_jpeg
    from webapp import state
    from webapp.thumbs import thumbnail

    with app.app_context():
        store = state().store
    with ThreadPoolExecutor(8) as pool:
        paths = list(pool.map(lambda _: thumbnail(store, photos[7].name, 160), range(32)))
    assert len(set(paths)) == 1
    assert validate_jpeg(paths[0].read_bytes()).image.shape[1] == 160
    assert not list(paths[0].parent.glob(".tmp-*"))


def test_logout_tells_the_browser_to_drop_cached_photos(auth):
    auth.create()
    auth.login()
    assert auth.logout().headers["Clear-Site-Data"] == '"cache"'


def test_a_thumbnail_is_not_served_once_its_photo_is_gone(auth, client, app, photos):
    from pathlib import Path

    from webapp import state

    auth.create()
    auth.login()
    name = photos[3].name
    assert client.get(f"/thumbs/{name}").status_code == 200  # made, through Flask
    assert client.get(f"/thumbs/{name}").status_code == 200  # served, by the fast path
    with app.app_context():
        store = state().store
    Path(store.locate(name)).unlink()  # the photo goes, its thumbnail (an orphan) stays
    assert Path(store.locate(name, thumb=True)).exists()
    response = client.get(f"/thumbs/{name}")
    assert response.status_code == 404 and b"\xff\xd8" not in response.data


def test_a_thumbnail_made_as_its_photo_is_deleted_is_not_kept(app, photos, monkeypatch):
    from pathlib import Path

    from camera.errors import PhotoNotFound
    from webapp import state
    from webapp.thumbs import thumbnail

    with app.app_context():
        store = state().store
    name = photos[5].name
    real_read = store.read

    def read_then_prune(photo_name: str) -> bytes:
        data = real_read(photo_name)
        store.delete(photos[5])  # retention, between reading the photo and the write
        return data

    monkeypatch.setattr(store, "read", read_then_prune)
    with pytest.raises(PhotoNotFound):
        thumbnail(store, name, 160)
    assert not Path(store.locate(name, thumb=True)).exists()
