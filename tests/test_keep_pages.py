"""The Keep and Download buttons, and /kept: owners only, POST with CSRF, a clear 404 for
a photo retention just deleted, and a download named after the pet and the time."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest

from tests.helpers.rawhttp import FORM, build

CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def _token(client, url: str) -> str:
    return CSRF.search(client.get(url).get_data(as_text=True)).group(1)


@pytest.fixture
def owner(auth):
    auth.create()
    auth.login()


def _kept(app):
    from webapp import state

    with app.app_context():
        return state().kept


def test_keep_then_unkeep_from_the_photo_page(app, client, owner, photos):
    name = photos[3].name
    page = client.get(f"/photo/{name}").get_data(as_text=True)
    assert f'action="/photo/{name}/keep"' in page and f"/photo/{name}/download" in page
    token = _token(client, f"/photo/{name}")
    response = client.post(f"/photo/{name}/keep", data={"csrf_token": token})
    assert response.status_code == 303 and response.headers["Location"] == f"/photo/{name}"
    assert _kept(app).names() == [name]
    page = client.get(f"/photo/{name}").get_data(as_text=True)
    assert f'action="/photo/{name}/unkeep"' in page and "Kept: this photo stays" in page
    listing = client.get("/kept").get_data(as_text=True)
    assert f"/thumbs/{name}" in listing and "1 of at most 500" in listing
    response = client.post(f"/photo/{name}/unkeep", data={"csrf_token": token})
    assert response.status_code == 303
    assert _kept(app).names() == []
    assert "No photo is kept" in client.get("/kept").get_data(as_text=True)


def test_at_the_cap_the_page_says_so_and_the_keep_is_refused(app, client, owner, photos):
    kept = _kept(app)
    kept.limit = 2
    token = _token(client, "/kept")
    for photo in photos[:2]:
        client.post(f"/photo/{photo.name}/keep", data={"csrf_token": token})
    page = client.get(f"/photo/{photos[5].name}").get_data(as_text=True)
    assert "As many photos are kept as allowed" in page
    assert f"/photo/{photos[5].name}/keep" not in page
    response = client.post(
        f"/photo/{photos[5].name}/keep", data={"csrf_token": token}, follow_redirects=True
    )
    assert "2 photos are kept already, the most allowed" in response.get_data(as_text=True)
    assert kept.names() == [photos[0].name, photos[1].name]
    assert "As many photos are kept as allowed" in client.get("/kept").get_data(as_text=True)
    assert len(list(_store(app).photos())) == len(photos)  # nothing deleted to make room


def _store(app):
    from webapp import state

    with app.app_context():
        return state().store


@pytest.mark.parametrize("action", ["keep", "unkeep"])
def test_a_photo_retention_just_deleted_is_a_clear_404_and_leaves_no_mark(
    app, client, owner, photos, action
):
    token = _token(client, "/kept")
    name = photos[0].name
    _store(app).delete(photos[0])
    response = client.post(f"/photo/{name}/{action}", data={"csrf_token": token})
    assert response.status_code == 404
    assert _kept(app).names() == []
    assert not (_kept(app).directory / name).exists()


@pytest.mark.parametrize("name", ["x.jpg", "..", "20261131T073000.200Z.jpg"])
def test_a_name_the_store_never_writes_is_a_404(app, client, owner, name):
    token = _token(client, "/kept")
    for url in (f"/photo/{quote(name)}/keep", f"/photo/{quote(name)}/unkeep"):
        assert client.post(url, data={"csrf_token": token}).status_code == 404
    assert client.get(f"/photo/{quote(name)}/download").status_code == 404
    assert not _kept(app).directory.exists()


def test_download_is_an_attachment_named_after_the_pet_and_the_time(client, owner, photos):
    response = client.get(f"/photo/{photos[0].name}/download")
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    assert response.data.startswith(b"\xff\xd8")
    disposition = response.headers["Content-Disposition"]
    assert re.fullmatch(
        r'attachment; filename="Pucci \d{4}-\d\d-\d\d \d\d\.\d\d\.\d\d\.jpg"', disposition
    ), disposition
    assert "no-store" in response.headers["Cache-Control"]


@pytest.mark.parametrize(
    ("pet", "ascii_name", "utf8_name"),
    [
        ("Bärli", "Barli", "B%C3%A4rli"),
        ('Rex"; filename=evil.exe', "Rex- filename-evil.exe", None),
        ("../../etc/passwd", "etc-passwd", None),
        ("\r\nSet-Cookie: x", "Set-Cookie- x", None),
        ("🐶", "pet", None),
    ],
)
def test_the_download_name_is_safe_whatever_the_pet_is_called(
    make_config, auth, pet, ascii_name, utf8_name
):
    from webapp import create_app, state

    app = create_app(make_config(web__bcrypt_rounds=4, pet__name=pet), TESTING=True)
    with app.app_context():
        photo = state().store.save(b"\xff\xd8x\xff\xd9", 1_795_000_000.0)
    client = app.test_client()
    from tests.helpers.site import AuthActions

    actions = AuthActions(client, app)
    actions.create()
    actions.login()
    disposition = client.get(f"/photo/{photo.name}/download").headers["Content-Disposition"]
    assert "\r" not in disposition and "\n" not in disposition and "/" not in disposition
    assert f'filename="{ascii_name} ' in disposition or f"filename={ascii_name} " in disposition
    if utf8_name:
        assert f"filename*=UTF-8''{utf8_name}%20" in disposition


def test_the_pages_speak_german(client, owner, photos):
    client.set_cookie("lang", "de")
    page = client.get(f"/photo/{photos[0].name}").get_data(as_text=True)
    assert "Behalten" in page and "Herunterladen" in page
    assert "Behaltene Fotos" in client.get("/kept").get_data(as_text=True)


# -- through a real server, with the raw client: no byte, no change ------------------


@pytest.mark.slow  # a real waitress server
def test_anonymous_and_tokenless_requests_change_nothing(site):
    owner, token = site.owner()
    visitor, visitor_token = site.visitor()
    name = site.photo
    for action in ("keep", "unkeep"):
        url = f"/photo/{name}/{action}"
        body = f"csrf_token={visitor_token}".encode()
        site.refused(
            f"anonymous {action}",
            build("POST", url, headers=[FORM], body=body, cookies=visitor),
            anonymous=True,
        )
        site.refused(
            f"{action} without a token",
            build("POST", url, headers=[FORM], body=b"", cookies=owner),
            anonymous=False,
            statuses=(400,),
        )
        site.refused(
            f"{action} with a wrong token",
            build("POST", url, headers=[FORM], body=b"csrf_token=junk", cookies=owner),
            anonymous=False,
            statuses=(400,),
        )
        site.refused(
            f"{action} with a visitor's token",
            build("POST", url, headers=[FORM], body=body, cookies=owner),
            anonymous=False,
            statuses=(400,),
        )
    for url in (f"/photo/{name}/download", "/kept", "/timelapse", "/timelapse.webm",
                "/timelapse/download"):  # fmt: skip
        site.refused(f"anonymous GET {url}", build("GET", url, cookies=visitor), anonymous=True)
    # and with its token the owner's keep works, through the same server
    reply = site.fetch(
        "POST", f"/photo/{name}/keep", headers=[FORM],
        body=f"csrf_token={token}".encode(), cookies=owner,
    )  # fmt: skip
    assert reply.status == 303
    assert (site.data_dir / "kept" / name).exists()
