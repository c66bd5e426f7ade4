"""Hostile form posts without a valid CSRF token: login, logout and the language switch
refuse them, and with their own tokens the same posts work.

Every attack goes through ``Site.refused`` (tests/helpers/site.py): refused, nothing
leaked, nothing changed.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.helpers.rawhttp import FORM, build, merge_cookies
from tests.helpers.site import PASSWORD

# A real waitress server per test, about a second each to start and stop: with the
# other hostile files, some 25 s; scripts/test and CI pass --slow.
pytestmark = pytest.mark.slow


def test_posts_without_a_valid_csrf_token_are_refused(site):
    visitor, visitor_token = site.visitor()
    owner, owner_token = site.owner()
    _other, other_token = site.visitor()
    login = f"username=owner&password={quote(PASSWORD)}".encode()

    def post(route: str, body: bytes, cookies: dict | None, *headers) -> bytes:
        return build("POST", route, headers=[FORM, *headers], body=body, cookies=cookies)

    cases = {
        "login without a token": post("/login", login, visitor),
        "login with another visitor's token": post(
            "/login", login + f"&csrf_token={other_token}".encode(), visitor
        ),
        "login with a token and no session": post(
            "/login", login + f"&csrf_token={visitor_token}".encode(), None
        ),
        "login with an empty token": post("/login", login + b"&csrf_token=", visitor),
        "login with a junk token": post("/login", login + b"&csrf_token=junk.junk", visitor),
        "login with a wrong token in the header": post(
            "/login", login, visitor, ("X-CSRFToken", other_token)
        ),
        "logout without a token": post("/logout", b"", owner),
        "logout with a visitor's token": post(
            "/logout", f"csrf_token={visitor_token}".encode(), owner
        ),
        "language switch without a token": post("/lang", b"lang=de&next=/", visitor),
        "language switch with another visitor's token": post(
            "/lang", f"lang=de&next=/&csrf_token={other_token}".encode(), visitor
        ),
    }
    for what, data in cases.items():
        for reply in site.refused(what, data, anonymous=True, statuses=(400,)):
            assert "lang" not in reply.cookies(), what
            assert not site.has_access(merge_cookies(visitor, reply)), what
    assert site.has_access(owner)  # the logouts above did nothing
    # Controls: with their tokens the same posts work.
    switched = site.fetch(
        "POST",
        "/lang",
        headers=[FORM],
        cookies=visitor,
        body=f"lang=de&next=/&csrf_token={visitor_token}".encode(),
    )
    assert switched.status == 302 and switched.cookies().get("lang") == "de"
    logout = site.fetch(
        "POST", "/logout", headers=[FORM], cookies=owner, body=f"csrf_token={owner_token}".encode()
    )
    assert logout.status == 302 and not site.has_access(owner)
