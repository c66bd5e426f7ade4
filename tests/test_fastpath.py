"""The photo fast path answers exactly as Flask would, on every input it is given.

Each case is sent twice through the same app: once with the fast path in front, once
straight to Flask; status, body and every header a client acts on must be the same.
"""

from __future__ import annotations

import re
import time

import pytest
from itsdangerous.timed import TimestampSigner

from tests.helpers.site import PASSWORD
from webapp.sessions import make_token

# Headers that differ by nature: the session cookie Flask refreshes on each request.
IGNORED = {"set-cookie", "date"}


CSRF_VALUE = re.compile(rb'(name="csrf_token"[^>]*value=")[^"]+')


def _answer(app, path: str, method: str, headers: dict):
    client = app.test_client(use_cookies=False)
    response = client.open(path, method=method, headers=headers)
    kept = {k.lower(): v for k, v in response.headers.items() if k.lower() not in IGNORED}
    # Error pages carry a fresh CSRF token each time (the language form).
    body = CSRF_VALUE.sub(rb"\1", response.data)
    return response.status_code, body, dict(sorted(kept.items()))


@pytest.fixture
def owner(auth, client, app, photos):
    """A logged-in owner: (session cookie value, photos)."""
    auth.create()
    auth.login()
    return client.get_cookie("puccicam_session").value


def _signed(app, data: dict, age: float = 0) -> str:
    serializer = app.session_interface.get_signing_serializer(app)
    real = TimestampSigner.get_timestamp
    try:
        TimestampSigner.get_timestamp = lambda self: int(time.time() - age)
        return serializer.dumps(data)
    finally:
        TimestampSigner.get_timestamp = real


def _cases(app, cookie: str, photos) -> dict[str, tuple[str, str, dict]]:
    name = photos[-1].name
    photo = f"/photos/{name}"
    fast = app.wsgi_app
    status, _body, first = _answer(app, photo, "GET", {"Cookie": f"puccicam_session={cookie}"})
    assert status == 200 and fast.files.get(fast.store.locate(name)) is not None
    etag, modified = first["etag"], first["last-modified"]
    earlier = "Mon, 01 Jan 2001 00:00:00 GMT"
    expired = _signed(app, {"_user_id": make_token(1, 1), "_fresh": True}, age=40 * 86400)
    forged_version = _signed(app, {"_user_id": make_token(1, 7)})
    no_user = _signed(app, {"_user_id": make_token(99, 1)})
    junk_token = _signed(app, {"_user_id": "1:x"})
    old_format = _signed(app, {"_user_id": "1:1"})
    token_too_old = _signed(app, {"_user_id": make_token(1, 1, int(time.time()) - 31 * 86400)})
    session = f"puccicam_session={cookie}"
    return {
        "plain": ("GET", photo, {"Cookie": session}),
        "head": ("HEAD", photo, {"Cookie": session}),
        "thumbnail not made yet": ("GET", f"/thumbs/{photos[0].name}", {"Cookie": session}),
        "if-none-match hit": ("GET", photo, {"Cookie": session, "If-None-Match": etag}),
        "if-none-match star": ("GET", photo, {"Cookie": session, "If-None-Match": "*"}),
        "if-none-match list": (
            "GET",
            photo,
            {"Cookie": session, "If-None-Match": f'"other", {etag}'},
        ),
        "if-none-match weak": ("GET", photo, {"Cookie": session, "If-None-Match": f"W/{etag}"}),
        "if-none-match miss": ("GET", photo, {"Cookie": session, "If-None-Match": '"nope"'}),
        "if-modified-since same": (
            "GET",
            photo,
            {"Cookie": session, "If-Modified-Since": modified},
        ),
        "if-modified-since earlier": (
            "GET",
            photo,
            {"Cookie": session, "If-Modified-Since": earlier},
        ),
        "if-modified-since garbage": (
            "GET",
            photo,
            {"Cookie": session, "If-Modified-Since": "yesterday-ish"},
        ),
        "if-modified-since absurd zone": (
            "GET",
            photo,
            {"Cookie": session, "If-Modified-Since": "Mon, 01 Jan 2020 00:00:00 +99999999999"},
        ),
        "both validators, etag wins": (
            "GET",
            photo,
            {"Cookie": session, "If-None-Match": '"nope"', "If-Modified-Since": modified},
        ),
        "head not modified": ("HEAD", photo, {"Cookie": session, "If-None-Match": etag}),
        "range": ("GET", photo, {"Cookie": session, "Range": "bytes=0-99"}),
        "if-match": ("GET", photo, {"Cookie": session, "If-Match": '"nope"'}),
        "duplicate cookie, good first": (
            "GET",
            photo,
            {"Cookie": f"{session}; puccicam_session=garbage"},
        ),
        "duplicate cookie, garbage first": (
            "GET",
            photo,
            {"Cookie": f"puccicam_session=garbage; {session}"},
        ),
        "duplicate cookie, two headers' worth": (
            "GET",
            photo,
            {"Cookie": f"other=1; {session};puccicam_session={cookie}x"},
        ),
        "quoted cookie": ("GET", photo, {"Cookie": f'puccicam_session="{cookie}"'}),
        "expired session": ("GET", photo, {"Cookie": f"puccicam_session={expired}"}),
        "stale session version": ("GET", photo, {"Cookie": f"puccicam_session={forged_version}"}),
        "session of no user": ("GET", photo, {"Cookie": f"puccicam_session={no_user}"}),
        "token not id:version": ("GET", photo, {"Cookie": f"puccicam_session={junk_token}"}),
        "token of the old format": ("GET", photo, {"Cookie": f"puccicam_session={old_format}"}),
        "token past remember_days": (
            "GET",
            photo,
            {"Cookie": f"puccicam_session={token_too_old}"},
        ),
        "tampered cookie": ("GET", photo, {"Cookie": f"puccicam_session={cookie[:-2]}AA"}),
        "no cookie": ("GET", photo, {}),
        "no such photo": ("GET", "/photos/20000101T000000.000Z.jpg", {"Cookie": session}),
        "not a photo name": ("GET", "/photos/secret_key", {"Cookie": session}),
        "post": ("POST", photo, {"Cookie": session}),
    }


def _compare(app, cases) -> None:
    fast, flask_only = app.wsgi_app, app.wsgi_app.next
    for label, (method, path, headers) in cases.items():
        app.wsgi_app = fast
        through_fast = _answer(app, path, method, headers)
        app.wsgi_app = flask_only
        through_flask = _answer(app, path, method, headers)
        app.wsgi_app = fast
        assert through_fast[0] == through_flask[0], label
        assert through_fast[2] == through_flask[2], label
        assert through_fast[1] == through_flask[1], label


def test_fast_path_answers_as_flask_does(app, owner, photos):
    _compare(app, _cases(app, owner, photos))


def test_fast_path_answers_as_flask_does_for_a_removed_owner(app, owner, photos):
    from webapp import state

    cases = _cases(app, owner, photos)
    with app.app_context():
        state().accounts.remove("owner")
    _compare(app, cases)


def test_fast_path_answers_as_flask_does_after_a_password_change(app, owner, photos):
    from webapp import state

    cases = _cases(app, owner, photos)
    with app.app_context():
        state().accounts.set_password("owner", PASSWORD + "!")
    _compare(app, cases)


def _served_by_flask(app) -> list[str]:
    """Paths the fast path handed on to Flask from now on."""
    fast = app.wsgi_app
    handed, flask_app = [], fast.next

    def counting(environ, start_response):
        handed.append(environ["PATH_INFO"])
        return flask_app(environ, start_response)

    fast.next = counting
    return handed


@pytest.mark.parametrize("odd", ["cam#1", "cam?mode=rw", "cam%20x", "c#?%d"])
def test_a_data_dir_with_uri_characters_is_the_one_opened(tmp_path, make_config, odd, good_frame):
    from tests.helpers.site import AuthActions
    from webapp import create_app, state
    from webapp.extensions import limiter

    app = create_app(make_config(data_dir=tmp_path / odd, web__bcrypt_rounds=4), TESTING=True)
    limiter.reset()
    with app.app_context():
        photo = state().store.save(good_frame, time.time() - 60)
    client = app.test_client()
    actions = AuthActions(client, app)
    actions.create()
    assert actions.login().status_code == 302
    handed = _served_by_flask(app)
    response = client.get(f"/photos/{photo.name}")
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    assert handed == []  # the fast path read the session version from this data dir's file


def test_an_unreadable_database_falls_through_to_flask(app, owner, photos, tmp_path):
    from webapp.sessions import VersionReader

    fast = app.wsgi_app
    fast.versions = VersionReader(tmp_path / "no such dir" / "db.sqlite3")
    fast.sessions.clear()
    handed = _served_by_flask(app)
    response = app.test_client(use_cookies=False).get(
        f"/photos/{photos[-1].name}", headers={"Cookie": f"puccicam_session={owner}"}
    )
    assert response.status_code == 200  # Flask's own path, with its own database
    assert handed == [f"/photos/{photos[-1].name}"]
