"""The public side: the pet page, its portrait, the health check, languages, headers."""

from __future__ import annotations

import json
import re
import time

import pytest

from camera.store import PhotoStore


def test_home_says_how_to_create_the_first_account(client):
    page = client.get("/").get_data(as_text=True)
    assert "No owner account yet" in page and "puccicam user add NAME" in page


def test_home_shows_the_pet_from_config(make_config, tmp_path):
    from webapp import create_app

    config = make_config(pet__name="Rex", pet__birth_year=2019, pet__bio="Loves naps.",
                         pet__contact_email="rex@example.org", web__bcrypt_rounds=4)  # fmt: skip
    page = create_app(config).test_client().get("/").get_data(as_text=True)
    assert "Hello, I am Rex!" in page and "Loves naps." in page
    assert "mailto:rex@example.org" in page
    assert re.search(r"\d+ years old", page)


def test_the_public_portrait_is_never_a_camera_photo(client, photos):
    body = client.get("/pet.jpg").data
    assert body[:2] == b"\xff\xd8"
    from tests.helpers.frames import frame_bytes

    assert body == frame_bytes("good-chelsea.jpg")  # the bundled portrait


def test_healthz_ok_then_stale_and_nothing_else(client, app, good_frame):
    from webapp import state

    response = client.get("/healthz")
    assert response.status_code == 503 and json.loads(response.data) == {"status": "stale"}
    with app.app_context():
        state().store.save(good_frame, time.time() - 30)
    response = client.get("/healthz")
    assert response.status_code == 200 and json.loads(response.data) == {"status": "ok"}
    assert set(json.loads(response.data)) == {"status"}


@pytest.mark.parametrize("url", ["/", "/login", "/healthz", "/nope", "/gallery"])
def test_security_headers_everywhere(client, url):
    headers = client.get(url).headers
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    assert "Strict-Transport-Security" not in headers  # plain http


def test_templates_hold_no_inline_script_or_style():
    from pathlib import Path

    for template in (Path(__file__).parents[1] / "templates").glob("*.html"):
        text = template.read_text()
        assert re.search(r"<script(?![^>]*\bsrc=)", text) is None, template.name
        assert " style=" not in text and "<style" not in text and " on" + "click=" not in text


def test_https_mode_marks_cookies_secure_and_sends_hsts(make_config):
    from webapp import create_app

    app = create_app(make_config(web__https=True, web__bcrypt_rounds=4))
    response = app.test_client().get("/login", base_url="https://cam.example")
    assert "max-age=" in response.headers["Strict-Transport-Security"]
    assert "Secure" in response.headers["Set-Cookie"]


def test_language_follows_accept_language_then_the_switcher(auth, client):
    german = client.get("/login", headers={"Accept-Language": "de-DE,de;q=0.9"})
    assert "Anmelden" in german.get_data(as_text=True)
    english = client.get("/login", headers={"Accept-Language": "en-GB"})
    assert "Log in" in english.get_data(as_text=True)
    token = auth.token("/")
    switched = client.post("/lang", data={"lang": "de", "next": "/login", "csrf_token": token})
    assert switched.status_code == 302 and switched.headers["Location"] == "/login"
    assert "Anmelden" in client.get("/login", headers={"Accept-Language": "en"}).get_data(
        as_text=True
    )


def test_language_switch_refuses_open_redirects(auth, client):
    token = auth.token("/")
    response = client.post(
        "/lang", data={"lang": "de", "next": "//evil.example", "csrf_token": token}
    )
    assert response.headers["Location"] == "/"


def test_relative_times_are_localised(auth, client, photos):
    auth.create()
    auth.login()
    page = client.get("/gallery", headers={"Accept-Language": "de"}).get_data(as_text=True)
    assert "vor 1 Minute" in page or "vor 2 Minuten" in page


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("PUT", "/login"),
        ("DELETE", "/gallery"),
        ("PATCH", "/"),
        ("GET", "/logout"),
        ("GET", "/lang"),
    ],
)
def test_unexpected_methods_are_405(client, method, url):
    response = client.open(url, method=method)
    assert response.status_code == 405
    assert "Traceback" not in response.get_data(as_text=True)


def test_oversized_body_is_413(auth, client):
    token = auth.token()
    response = client.post(
        "/login", data={"username": "x" * 40_000, "password": "y", "csrf_token": token}
    )
    assert response.status_code == 413


def test_no_version_or_traceback_in_errors(app, client):
    @app.route("/boom")
    def boom():
        raise RuntimeError("secret internals")

    response = client.get("/boom")
    text = response.get_data(as_text=True)
    assert (
        response.status_code == 500 and "secret internals" not in text and "Traceback" not in text
    )
    assert "Werkzeug" not in response.headers.get("Server", "")


def test_secret_key_is_generated_0600_and_kept(make_config):
    from webapp import create_app

    config = make_config(web__bcrypt_rounds=4)
    first = create_app(config).secret_key
    path = config.data_dir / "secret_key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert create_app(config).secret_key == first and len(first) >= 40
    assert (config.database_path.stat().st_mode & 0o777) == 0o600


@pytest.mark.parametrize("left", ["", "\n", "short-key"])
def test_a_secret_key_file_without_a_key_is_refused_not_used(make_config, left):
    """An emptied or cut-short key file (a crash used to leave one: the file was made,
    then written) would sign every session with a guessable key, or break every form."""
    from camera.errors import DataDirError
    from webapp import create_app

    config = make_config(web__bcrypt_rounds=4)
    config.data_dir.mkdir(parents=True)
    (config.data_dir / "secret_key").write_text(left)
    with pytest.raises(DataDirError, match=r"no usable secret key.*delete it"):
        create_app(config)


def test_the_secret_key_file_is_created_whole_or_not_at_all(tmp_path):
    from camera.fsutil import create_exclusive

    path = tmp_path / "secret_key"
    create_exclusive(path, b"first\n")
    with pytest.raises(FileExistsError):
        create_exclusive(path, b"second\n")  # the loser of a race reads the winner's
    assert path.read_bytes() == b"first\n" and path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"]  # no temp file left


def test_data_dir_is_not_inside_a_static_folder(app):
    from webapp import state

    with app.app_context():
        photos_dir = state().config.photos_dir.resolve()
    assert not photos_dir.is_relative_to(app.static_folder)


def test_store_is_the_only_path_to_photos(app):
    from webapp import state

    with app.app_context():
        assert isinstance(state().store, PhotoStore)
