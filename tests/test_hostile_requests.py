"""Oversized and lying requests: headers past waitress's limit, bodies too large, chunked
encodings and Content-Lengths that do not add up.

Each body holds a correct login, so a request the server wrongly took would let the
attacker in. Sent as raw bytes (tests/helpers/rawhttp.py); every attack goes through
``Site.refused`` (tests/helpers/site.py): refused, nothing leaked, nothing changed.
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from tests.helpers.rawhttp import FORM, build, merge_cookies, parse_replies
from tests.helpers.site import PASSWORD

# A real waitress server per test, about a second each to start and stop: with the
# other hostile files, some 25 s; scripts/test and CI pass --slow.
pytestmark = pytest.mark.slow


def test_oversized_headers_are_431(site):
    owner, _token = site.owner()
    photo = f"/photos/{site.photo}"
    control = site.fetch("GET", photo, cookies=owner, headers=[("X-Filler", "a" * 1000)])
    assert control.status == 200 and control.body[:2] == b"\xff\xd8"
    big = 20 * 1024  # waitress's limit is 16 KiB of request line and headers
    cases = {
        "one long header line": build(
            "GET", photo, cookies=owner, headers=[("X-Filler", "a" * big)]
        ),
        "too many headers": build(
            "GET", photo, cookies=owner, headers=[(f"X-H{i}", "a") for i in range(2000)]
        ),
        "a huge cookie": build("GET", photo, cookies={**owner, "junk": "j" * big}),
        "a huge request target": build("GET", photo + "x" * big, cookies=owner),
        "a huge query string": build("GET", f"{photo}?q={'q' * big}", cookies=owner),
        "a long header before a login": site.login_request().replace(
            b"Connection: close", b"X-Filler: " + b"a" * big + b"\r\nConnection: close"
        ),
    }
    for what, data in cases.items():
        site.refused(what, data, anonymous=False, statuses=(431,))
    assert site.has_access(owner)


def _chunked(body: bytes, size: int = 1000) -> bytes:
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def test_bodies_too_large_or_lying_about_their_length_are_refused(site):
    """Each body holds a correct login: had the server taken it, the attacker would be in."""
    cookies, token = site.visitor()
    form = urlencode({"username": "owner", "password": PASSWORD, "csrf_token": token}).encode()
    padded = form + b"&pad=" + b"p" * (20 * 1024)

    def login(body: bytes, *headers, length: bool = True) -> bytes:
        return build(
            "POST", "/login", headers=[FORM, *headers], body=body, cookies=cookies, length=length
        )

    chunked = ("Transfer-Encoding", "chunked")
    # Controls: the same login, plain and chunked, succeeds.
    for data in (login(form), login(_chunked(form), chunked, length=False)):
        reply = parse_replies(site.send(data))[0]
        assert reply.status == 302 and site.has_access(merge_cookies(cookies, reply))
    parts = b"".join(
        b'--b\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nx\r\n' % i for i in range(30)
    )
    cases = {
        "a body over web.max_body_kb": (login(padded), (413,)),
        "a chunked body over the limit": (login(_chunked(padded), chunked, length=False), (413,)),
        "more multipart parts than allowed": (
            build(
                "POST",
                "/login",
                body=parts + b"--b--\r\n",
                cookies=cookies,
                headers=[
                    ("Content-Type", "multipart/form-data; boundary=b"),
                    ("X-CSRFToken", token),
                ],
            ),
            (413,),
        ),
        "a bad chunk size": (
            login(b"zz\r\n" + form + b"\r\n0\r\n\r\n", chunked, length=False),
            (400,),
        ),
        "a chunk size past any limit": (
            login(b"ffffffffffffffffffff\r\n" + padded, chunked, length=False),
            (413,),
        ),
        "an unsupported transfer coding": (
            login(_chunked(form), ("Transfer-Encoding", "gzip, chunked"), length=False),
            (400,),
        ),
        "the identity transfer coding": (
            login(
                form,
                ("Transfer-Encoding", "identity"),
                ("Content-Length", str(len(form))),
                length=False,
            ),
            (400,),
        ),
        "a negative Content-Length": (login(form, ("Content-Length", "-1"), length=False), (400,)),
        "a Content-Length that is not a number": (
            login(form, ("Content-Length", "abc"), length=False),
            (400,),
        ),
        "a Content-Length with a sign": (
            login(form, ("Content-Length", f"+{len(form)}"), length=False),
            (400,),
        ),
        "two different Content-Lengths": (
            login(form, ("Content-Length", "3"), ("Content-Length", str(len(form))), length=False),
            (400,),
        ),
        "a list as Content-Length": (
            login(form, ("Content-Length", f"{len(form)}, {len(form)}"), length=False),
            (400,),
        ),
        "a Content-Length shorter than the body": (
            login(form, ("Content-Length", str(len(form) - 20)), length=False),
            (400,),
        ),
        "Content-Length and chunked together": (
            login(
                _chunked(form.replace(b"password=", b"password=wrong")),
                chunked,
                ("Content-Length", "4"),
                length=False,
            ),
            (400, 401),
        ),
    }
    for what, (data, statuses) in cases.items():
        replies = site.refused(what, data, anonymous=True, statuses=statuses)
        for reply in replies:
            assert not site.has_access(merge_cookies(cookies, reply)), what
    # A Content-Length promising more than is sent, then the client hangs up: the server
    # must not act on the part it has.
    lying = login(form, ("Content-Length", str(len(form) + 100)), length=False)
    replies = site.refused(
        "a Content-Length longer than the body", lying, anonymous=True, half_close=True
    )
    assert all(not site.has_access(merge_cookies(cookies, r)) for r in replies)
