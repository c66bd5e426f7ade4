"""Hostile paths and hosts: traversal out of the photo and static routes, input the
pages reflect, and bytes werkzeug cannot decode.

Sent as raw bytes (tests/helpers/rawhttp.py), so dot segments, doubled slashes, NUL bytes
and bad percent-encoding reach the server as written. Every attack goes through
``Site.refused`` (tests/helpers/site.py): refused, nothing leaked, nothing changed; beside
each group stands a control, the same request made well-formed, which succeeds.
"""

from __future__ import annotations

import pytest

from tests.helpers.rawhttp import build
from tests.helpers.site import ATTACKS

# A real waitress server per test, about a second each to start and stop: with the
# other hostile files, some 25 s; scripts/test and CI pass --slow.
pytestmark = pytest.mark.slow

# -- path traversal ---------------------------------------------------------------------

TRAVERSALS = [
    "../../../../etc/passwd",
    "..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "%2e%2e%2f%2e%2e%2fsecret_key",
    "%252e%252e%252f%252e%252e%252fsecret_key",  # double-encoded
    "..%252f..%252fpuccicam.sqlite3",
    "/etc/passwd",  # absolute: /photos//etc/passwd
    "%2Fetc%2Fpasswd",
    "%2Fsecret_key",  # one segment once decoded: was a 308 to /photos/secret_key
    "..\\..\\secret_key",
    "..%5C..%5Csecret_key",
    "%2e%2e%5c%2e%2e%5csecret_key",
    "%00",
    "{name}%00.png",
    "{name}%00",
    "{name}\x00",  # a raw NUL in the request line
    "%00{name}",
    "%c0%ae%c0%ae/%c0%ae%c0%ae/secret_key",  # overlong UTF-8 dots
    "%c0%ae%c0%ae%c0%afsecret_key",
    "..%c0%af..%c0%afsecret_key",
    "%e0%80%ae%e0%80%ae%e0%80%afsecret_key",  # three-byte overlong
    "%ef%bc%8e%ef%bc%8e%ef%bc%8fsecret_key",  # fullwidth dots and slash
    "{name}/../../secret_key",
    "./{name}",
    "../{name}",
    "{day}/{hour}/{name}",  # the layout on disk
    "{day}%2F{hour}%2F{name}",
    "{upper}",
    "{name}%20",
    "{name}/",
    "secret_key",
    "puccicam.sqlite3",
    "status.json",
    "file:%2F%2F%2Fetc%2Fpasswd",
    "~root",
]


def _traversal(payload: str, name: str) -> bytes:
    text = payload.format(name=name, day=name[:8], hour=name[9:11], upper=name.upper())
    return text.encode("latin-1")


def test_traversal_on_photo_routes_is_refused(site):
    owner, _token = site.owner()
    # Controls: the owner's cookie opens the photo on all three routes (this also makes
    # the thumbnail, before the snapshots), and an anonymous visitor is sent to log in.
    for prefix in ("/photo/", "/photos/", "/thumbs/"):
        assert site.fetch("GET", prefix + site.photo, cookies=owner).status == 200
        anonymous = site.fetch("GET", prefix + site.photo)
        assert anonymous.status == 302 and anonymous.header("Location").startswith("/login")
    for prefix in ("/photo/", "/photos/", "/thumbs/"):
        for payload in TRAVERSALS:
            target = prefix.encode() + _traversal(payload, site.photo)
            site.refused(
                f"owner GET {target!r}",
                build("GET", target, cookies=owner),
                anonymous=False,
                statuses=(404,),
            )
            site.refused(f"anonymous GET {target!r}", build("GET", target), anonymous=True)
    assert site.has_access(owner)  # nothing above ended the session


def test_traversal_out_of_the_static_folder_is_refused(site):
    owner, _token = site.owner()
    assert site.fetch("GET", "/static/style.css").status == 200  # control
    payloads = [
        "../__init__.py",
        "..%2F__init__.py",
        "%2e%2e%2f__init__.py",
        "..%252f__init__.py",
        "%2Fetc%2Fpasswd",
        "/etc/passwd",
        "..\\__init__.py",
        "%c0%ae%c0%ae%c0%af__init__.py",
        "style.css%00",
        "style.css\x00",
        "../../../../etc/passwd",
        "..%2F..%2Fsecret_key",
        "../templates/base.html",
        ".",
    ]
    for payload in payloads:
        target = b"/static/" + payload.encode("latin-1")
        for cookies in (owner, None):
            site.refused(
                f"GET {target!r}",
                build("GET", target, cookies=cookies),
                anonymous=False,
                statuses=(404,),
            )


def test_reflected_input_is_escaped(site):
    """The language switcher echoes the current path into every page: escaped."""
    script = "%22%3E%3Cscript%3Ealert(1)%3C/script%3E"  # decoded into the path
    raw = '"><script>alert(1)</script>'  # the query is echoed as sent: raw, then
    for target in (f"/nope{script}", f"/login?next={raw}", f"/?x={raw}"):
        ATTACKS[0] += 1
        reply = site.fetch("GET", target)
        assert reply.status in (200, 404), target
        assert "<script>alert(1)" not in reply.text and '"><script' not in reply.text, target


# -- what werkzeug cannot decode ---------------------------------------------------------------


def test_hosts_and_query_bytes_werkzeug_cannot_decode_are_400(site):
    """Both were 500s: werkzeug raised while building URLs from the Host (IDNA) or
    reading the query (strict UTF-8), and again on the error page."""
    owner, _token = site.owner()
    photo = f"/photos/{site.photo}"
    # Controls: what browsers and proxies send, IDNA 2008 punycode (straße.de, which
    # Python's IDNA 2003 codec cannot decode) and an nginx upstream name included; and
    # punycode nobody can decode, which werkzeug can still encode.
    for host in ("cam.example", "CAM.example:8080", "[::1]:8080", "127.0.0.1", "localhost",
                 "localhost:8080", "example.org.", "xn--bcher-kva.example", "xn--strae-oqa.de",
                 "puccicam_web", "xn--zz", "XN--zz", "a.xn--"):  # fmt: skip
        assert site.fetch("GET", "/", host=host).status == 200, host
        assert site.fetch("GET", photo, host=host, cookies=owner).status == 200, host
        assert site.fetch("GET", "/gallery", host=host, cookies=owner).status == 200, host
        to_login = site.fetch("GET", "/gallery?x=1", host=host)  # the login redirect
        assert to_login.status == 302, host
        assert to_login.header("Location") == "/login?next=/gallery?x%3D1", host
    assert site.fetch("GET", "/?%80").status == 200  # percent-encoded, as clients send it
    hosts = ["x" * 64, "a..b", "...", "[::1", "ex ample", "\xff", "x:99999999"]
    pages = ("/", "/gallery", f"/photo/{site.photo}", "/nope")
    cases = [(page, cookies) for page in pages for cookies in (owner, None)]
    # The fast path serves the owner's photo whatever the Host (it builds no URLs); what
    # it passes on to Flask, the anonymous request shows.
    cases.append((photo, None))
    for host in hosts:
        for route, cookies in cases:
            site.refused(
                f"Host {host!r} on {route}",
                build("GET", route, host=host.encode("latin-1"), cookies=cookies),
                anonymous=False,
                statuses=(400,),
            )
    # waitress refuses raw non-ASCII in a request target, except after "//".
    for target in (
        b"/?\x80",
        b"//?\x80",
        b"//gallery?\xff",
        b"//nope?a=\xc3",
        b"//login?next=\xff",
    ):
        for cookies in (owner, None):
            site.refused(
                f"GET {target!r}",
                build("GET", target, cookies=cookies),
                anonymous=False,
                statuses=(400,),
            )
    assert site.has_access(owner)
