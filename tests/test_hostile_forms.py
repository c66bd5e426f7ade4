"""Hostile forms and accounts: malformed and duplicated login fields, odd usernames,
passwords past bcrypt's 72 bytes. None logs in, none is a 500.

Every attack goes through ``Site.refused`` (tests/helpers/site.py): refused, nothing
leaked, nothing changed; each has a control, the right login, which succeeds.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.helpers.rawhttp import FORM, build, merge_cookies, parse_replies
from tests.helpers.site import PASSWORD

# A real waitress server per test, about a second each to start and stop: with the
# other hostile files, some 25 s; scripts/test and CI pass --slow.
pytestmark = pytest.mark.slow


def test_malformed_and_duplicated_form_fields_are_refused(site):
    cookies, token = site.visitor()

    def post(body: bytes, content_type: str | None = FORM[1], *extra) -> bytes:
        headers = [("Content-Type", content_type)] if content_type else []
        return build("POST", "/login", headers=[*headers, *extra], body=body, cookies=cookies)

    right = f"username=owner&password={quote(PASSWORD)}&csrf_token={token}".encode()
    header_token = ("X-CSRFToken", token)
    cases = {
        "a second username after a wrong one": (post(b"username=evil&" + right), (401,)),
        "a second password after a wrong one": (
            post(right.replace(b"password=", b"password=wrong&password=")),
            (401,),
        ),
        "a second csrf_token after a bogus one": (
            post(right.replace(b"csrf_token=", b"csrf_token=bogus&csrf_token=")),
            (400,),
        ),
        "invalid percent-encoding": (
            post(b"username=%zz%&password=%G0%&csrf_token=" + token.encode()),
            (401,),
        ),
        "invalid percent-encoding in the token": (
            post(right.replace(b"csrf_token=", b"csrf_token=%ZZ")),
            (400,),
        ),
        "a non-UTF-8 body": (
            post(b"username=\xff\xfe&password=\xc3\x28&csrf_token=" + token.encode()),
            (400, 401),
        ),
        "a NUL after the username": (post(right.replace(b"owner", b"owner%00")), (401,)),
        "semicolons between fields": (post(right.replace(b"&", b";")), (400,)),
        "no Content-Type": (post(right, None), (400,)),
        "text/plain": (post(right, "text/plain"), (400,)),
        "multipart with a boundary the body lacks": (
            post(right, "multipart/form-data; boundary=XYZ"),
            (400,),
        ),
        "multipart without a boundary": (post(right, "multipart/form-data"), (400,)),
        "multipart cut off inside a part": (
            post(
                b'--XYZ\r\nContent-Disposition: form-data; name="username"\r\n\r\nown',
                "multipart/form-data; boundary=XYZ",
            ),
            (400,),
        ),
        # werkzeug files a part without a usable name under None, and Flask-WTF's CSRF
        # check failed on that key: a 500 for anyone, no token needed.
        "a multipart part without a name": (
            post(
                b"--XYZ\r\nContent-Disposition: form-data\r\n\r\nx\r\n--XYZ--\r\n",
                "multipart/form-data; boundary=XYZ",
                header_token,
            ),
            (400,),
        ),
        "a multipart part whose name a newline cuts off": (
            post(
                b'--XYZ\r\nContent-Disposition: form-data; name="\n"\r\n\r\nx\r\n--XYZ--\r\n',
                "multipart/form-data; boundary=XYZ",
            ),
            (400,),
        ),
        "urlencoded with a UTF-16 charset": (
            post(right.decode().encode("utf-16"), FORM[1] + "; charset=utf-16"),
            (400,),
        ),
        "an empty body": (post(b""), (400,)),
        # JSON, with the token in the header CSRFProtect accepts: Flask-WTF used to read
        # the body and hand numbers and lists to the login view (a 500), or log in.
        "a JSON login": (
            post(
                b'{"username": "owner", "password": "%s", "csrf_token": "%s"}'
                % (PASSWORD.encode(), token.encode()),
                "application/json",
                header_token,
            ),
            (401,),
        ),
        "JSON with a number for a username": (
            post(
                b'{"username": 5, "password": 5, "csrf_token": "%s"}' % token.encode(),
                "application/json",
                header_token,
            ),
            (401,),
        ),
        "JSON with an object for a username": (
            post(b'{"username": {"a": 1}, "password": [1]}', "application/json", header_token),
            (401,),
        ),
        "a JSON list": (post(b"[1, 2]", "application/json", header_token), (401,)),
        "a JSON string": (post(b'"owner"', "application/json", header_token), (401,)),
        "broken JSON": (post(b'{"username": ', "application/json", header_token), (400, 401)),
    }
    assert site.fetch("POST", "/login", headers=[FORM], body=right, cookies=cookies).status == 302
    for what, (data, statuses) in cases.items():
        for reply in site.refused(what, data, anonymous=True, statuses=statuses):
            assert not site.has_access(merge_cookies(cookies, reply)), what


ODD_USERNAMES = [
    "",
    " ",
    "ünïcödé",
    "用户",
    "ówner",  # ("OWNER" logs in: names are one whatever their case, tests/test_auth.py)
    "\uff4f\uff57\uff4e\uff45\uff52",  # fullwidth "owner": NFKC would make it "owner"
    "own\u0435r",  # a Cyrillic e
    "owner\u200b",
    "owner\x00",
    "owner\r\nX-Injected: 1",
    "owner' OR '1'='1",
    '" OR ""="',
    "../owner",
    "x" * 10_000,
    "\U0001f415" * 1000,
]


def test_odd_usernames_never_log_in(site):
    assert parse_replies(site.send(site.login_request()))[0].status == 302  # control
    for username in ODD_USERNAMES:
        what = f"username {username[:20]!r} ({len(username)} chars)"
        for reply in site.refused(
            what, site.login_request(username), anonymous=True, statuses=(401,)
        ):
            assert not site.has_access(merge_cookies({}, reply)), what


def test_passwords_past_72_bytes_never_log_in(site, app):
    """bcrypt reads 72 bytes: a longer guess sharing those must not pass for the password."""
    from webapp import state

    ascii72, multibyte72 = "p" * 72, "ü" * 36
    with app.app_context():
        state().accounts.add("ascii72", ascii72)
        state().accounts.add("umlaut72", multibyte72)
    for name, password in (("ascii72", ascii72), ("umlaut72", multibyte72)):
        assert parse_replies(site.send(site.login_request(name, password)))[0].status == 302
    cases = [
        ("ascii72", ascii72 + "q"),  # 73 bytes
        ("ascii72", ascii72 + "\x00"),
        ("ascii72", ascii72 + "ü"),
        ("umlaut72", multibyte72 + "x"),  # 73 bytes
        ("umlaut72", "ü" * 37),  # 74 bytes
        ("owner", PASSWORD + "x" * 60),
        ("owner", "x" * 10_000),
        ("owner", "ä" * 2000),  # 4,000 bytes
    ]
    for name, password in cases:
        what = f"{name} with a {len(password.encode())}-byte password"
        for reply in site.refused(
            what, site.login_request(name, password), anonymous=True, statuses=(401,)
        ):
            assert not site.has_access(merge_cookies({}, reply)), what
