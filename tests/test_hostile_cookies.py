"""Hostile cookies: session and remember cookies tampered with, forged with another key
or for another user, or replayed after logout. None opens an owner's page.

Every attack goes through ``Site.refused`` (tests/helpers/site.py) on every owners'
route; each group has a control, the genuine cookie, which opens them all.
"""

from __future__ import annotations

import pytest

from tests.helpers.rawhttp import FORM, build

# A real waitress server per test, about a second each to start and stop: with the
# other hostile files, some 25 s; scripts/test and CI pass --slow.
pytestmark = pytest.mark.slow


def _owner_routes(site) -> list[str]:
    name = site.photo
    return ["/gallery", f"/photo/{name}", f"/photos/{name}", f"/thumbs/{name}", "/api/latest"]


def _refused_everywhere(site, what: str, cookies: dict) -> None:
    for route in _owner_routes(site):
        site.refused(f"{what} on {route}", build("GET", route, cookies=cookies), anonymous=True)


def _flip(value: str, index: int) -> str:
    return value[:index] + ("B" if value[index] == "A" else "A") + value[index + 1 :]


def test_tampered_session_cookies_open_nothing(site):
    owner, _token = site.owner()
    for route in _owner_routes(site):  # control: the untouched cookie opens every page
        assert site.fetch("GET", route, cookies=owner).status == 200, route
    value = owner["puccicam_session"]
    payload, stamp, signature = value.rsplit(".", 2)  # a compressed payload starts with "."
    middle = len(payload) + 1 + len(stamp) + 1 + len(signature) // 2
    tampered = {
        "a flipped payload character": _flip(value, len(payload) // 2),
        "a flipped timestamp character": _flip(value, len(payload) + 1 + len(stamp) // 2),
        # Mid-signature: the last base64 character may only carry padding bits.
        "a flipped signature character": _flip(value, middle),
        "the signature cut short": value[:-4],
        "no signature": f"{payload}.{stamp}",
        "another payload": f"eyJfdXNlcl9pZCI6IjE6MSJ9.{stamp}.{signature}",
        "quotes around a flipped signature": f'"{_flip(value, middle)}"',
        "junk": "%00%ff" * 20,
    }
    for what, cookie in tampered.items():
        _refused_everywhere(site, f"session cookie with {what}", {"puccicam_session": cookie})


def test_forged_session_cookies_open_nothing(site, app):
    from flask import Flask
    from flask.sessions import SecureCookieSessionInterface

    from webapp.sessions import make_token, parse_token

    owner, _token = site.owner()
    token = _signed_session(app, owner["puccicam_session"])["_user_id"]
    user_id, version, issued = parse_token(token)

    def signed(data: dict, key: str, salt: str = "cookie-session") -> str:
        forger = Flask("forger")
        forger.secret_key = key
        interface = SecureCookieSessionInterface()
        interface.salt = salt
        return interface.get_signing_serializer(forger).dumps(data)

    session = {"_user_id": token, "_fresh": True}
    real = signed(session, app.secret_key)
    # Control: the same session signed with the real key opens everything, so what the
    # forgeries below lack is only the key.
    for route in _owner_routes(site):
        assert site.fetch("GET", route, cookies={"puccicam_session": real}).status == 200
    forged = {
        "another key": signed(session, "not the secret key"),
        "another salt": signed(session, app.secret_key, salt="another-salt"),
        "an ended session version": signed(
            {**session, "_user_id": make_token(user_id, version - 1, issued)}, app.secret_key
        ),
        "a user that does not exist": signed(
            {**session, "_user_id": make_token(user_id + 1, version, issued)}, app.secret_key
        ),
        "a token issued before remember_days": signed(
            {**session, "_user_id": make_token(user_id, version, issued - 31 * 86400)},
            app.secret_key,
        ),
    }
    for what, cookie in forged.items():
        _refused_everywhere(site, f"session signed with {what}", {"puccicam_session": cookie})


def _signed_session(app, value: str) -> dict:
    return app.session_interface.get_signing_serializer(app).loads(value)


def test_forged_remember_cookies_open_nothing(site, app):
    from flask_login.utils import encode_cookie

    from webapp.sessions import make_token, parse_token

    owner, _token = site.owner(remember=True)
    user_token = _signed_session(app, owner["puccicam_session"])["_user_id"]
    user_id, version, issued = parse_token(user_token)
    # Control: a remember cookie with the real key, and no session, logs the owner back in.
    real = encode_cookie(user_token, key=app.secret_key)
    assert site.has_access({"puccicam_remember": real})
    forged = {
        "another key": encode_cookie(user_token, key="not the secret key"),
        "no digest": user_token,
        "a zero digest": f"{user_token}|{'0' * 128}",
        "an ended session version": encode_cookie(
            make_token(user_id, version - 1, issued), key=app.secret_key
        ),
        "another user": encode_cookie(make_token(user_id + 1, version, issued), key=app.secret_key),
        "a bare user id": encode_cookie(str(user_id), key=app.secret_key),
        "the old id:version form": encode_cookie(f"{user_id}:{version}", key=app.secret_key),
        "a token issued before remember_days": encode_cookie(
            make_token(user_id, version, issued - 31 * 86400), key=app.secret_key
        ),
    }
    for what, cookie in forged.items():
        _refused_everywhere(site, f"remember cookie with {what}", {"puccicam_remember": cookie})


def test_cookies_replayed_after_logout_open_nothing(site):
    owner, token = site.owner(remember=True)
    for route in _owner_routes(site):  # also puts the session in the fast path's cache
        assert site.fetch("GET", route, cookies=owner).status == 200
    form = f"csrf_token={token}".encode()
    logout = site.fetch("POST", "/logout", headers=[FORM], body=form, cookies=owner)
    assert logout.status == 302
    replays = {
        "session and remember cookies": owner,
        "the session cookie": {"puccicam_session": owner["puccicam_session"]},
        "the remember cookie": {"puccicam_remember": owner["puccicam_remember"]},
    }
    for what, cookies in replays.items():
        _refused_everywhere(site, f"{what} replayed after logout", cookies)
