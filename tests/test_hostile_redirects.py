"""Open redirects: whatever ``next`` says, the login and the language switch only ever
send a browser to a path on this site.

``next`` values are sent as raw bytes (tests/helpers/rawhttp.py), and each Location is
judged by ``is_local``, which reads it the way browsers do.
"""

from __future__ import annotations

import pytest

from tests.helpers.rawhttp import FORM, is_local, parse_replies
from tests.helpers.site import ATTACKS

EVIL_NEXT = [
    "//evil.example",
    "///evil.example",
    "////evil.example/x",
    "/\\evil.example",  # a raw backslash in the request line
    "/%5Cevil.example",
    "%5C%5Cevil.example",
    "%5C/evil.example",
    "\\/evil.example",
    "https:evil.example",
    "https:/evil.example",
    "https://evil.example/",
    "HTTPS://evil.example",
    "%2F%2Fevil.example",
    "%2f%2fevil.example",
    "/%2F/evil.example",
    "%09//evil.example",
    "/%09/evil.example",
    "/%0a/evil.example",
    "/%0d%0a/evil.example",
    "%0d%0aLocation:%20https://evil.example",
    "%20//evil.example",
    "%00//evil.example",
    "/%00/evil.example",
    "evil.example",
    "@evil.example",
    "/..//evil.example",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "%6A%61vascript:alert(1)",
    "data:text/html,%3Cscript%3Ealert(1)%3C/script%3E",
    "http://127.0.0.1@evil.example/",
]


@pytest.mark.slow
def test_login_never_redirects_off_site(site):
    control = parse_replies(site.send(site.login_request(target="/login?next=/status%3Fx%3D1")))
    assert control[0].status == 302 and control[0].header("Location") == "/status?x=1"
    for payload in EVIL_NEXT:
        ATTACKS[0] += 1
        target = b"/login?next=" + payload.encode("latin-1")
        replies = parse_replies(site.send(site.login_request(target=target)))
        assert len(replies) == 1, payload
        reply = replies[0]
        if reply.status == 400:  # a raw byte the request line may not hold: no login at all
            assert payload.startswith(("/\\", "\\")), payload
            continue
        location = reply.header("Location") or ""
        assert reply.status == 302 and is_local(location), f"next={payload}: {location!r}"


@pytest.mark.slow
def test_language_switch_never_redirects_off_site(site):
    cookies, token = site.visitor()
    for payload in EVIL_NEXT:
        ATTACKS[0] += 1
        body = f"lang=de&csrf_token={token}&next=".encode() + payload.encode("latin-1")
        reply = site.fetch("POST", "/lang", headers=[FORM], body=body, cookies=cookies)
        location = reply.header("Location") or ""
        assert reply.status == 302 and is_local(location), f"next={payload}: {location!r}"


def test_is_local_catches_what_browsers_follow_off_site():
    """The check above must itself be able to fail."""
    for location in (
        "//evil.example",
        "/\\evil.example",
        "/\t/evil.example",
        "\\/evil.example",
        " //evil.example",
        "https:evil.example",
        "\x01//evil.example",
        "https://evil.example/",
        "javascript:alert(1)",
    ):
        assert not is_local(location), location
    assert is_local("/gallery") and is_local("/..//evil.example")
