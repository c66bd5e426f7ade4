"""Hostile input against a real waitress server: refused, nothing leaked, nothing changed.

Requests go out as raw bytes over a socket, because an HTTP client library would tidy
most of these attacks away (dot segments, doubled slashes, NUL bytes, bad
percent-encoding, lying lengths) before they reached the server. Every attack is checked
three ways: the answer is a 4xx (an anonymous visitor on an owners' page may instead get
the usual redirect to the login page), no answer carries a photo byte or anything secret,
and the data dir (photos, thumbnails, accounts, secret key) is byte for byte the same
afterwards. Beside each group of attacks stands a control, the same request made
well-formed, which succeeds: so a refusal proves the attack failed, not that the request
was broken in some other way.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import re
import socket
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest

from camera.store import PhotoStore
from tests.conftest import CSRF, PASSWORD, waitress_thread
from tests.soak import record

FORM = ("Content-Type", "application/x-www-form-urlencoded")
ROUTE_ARGUMENT = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
ATTACKS = [0]  # hostile requests sent by this module, for tests/soak.py's figures
# Words no answer may hold: a traceback, or the software and its versions. As words:
# cookies and CSRF tokens are random base64, which now and then spells "flask" inside.
SOFTWARE_WORDS = [
    re.compile(rb"(?<![a-z0-9_-])" + re.escape(word) + rb"(?![a-z])", re.IGNORECASE)
    for word in (b"traceback", b'file "', b"werkzeug", b"waitress", b"python", b"flask",
                 b"jinja", b"sqlalchemy", b"sqlite")
]  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def _record_attacks():
    yield
    if ATTACKS[0]:
        record("hostile", "handcrafted cases", ATTACKS[0])


# -- raw HTTP -----------------------------------------------------------------------


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def cookies(self) -> dict[str, str | None]:
        """The cookies this reply sets; None for one it deletes."""
        found: dict[str, str | None] = {}
        for name, value in self.headers:
            if name.lower() != "set-cookie":
                continue
            pair, _sep, attributes = value.partition(";")
            key, _sep, cookie = pair.strip().partition("=")
            gone = not cookie or "Max-Age=0" in attributes or "1970" in attributes
            found[key] = None if gone else cookie
        return found


class _Buffer(io.BytesIO):
    def close(self) -> None:
        """Kept open: several replies are read one after another from one buffer."""


class _Socket:
    def __init__(self, buffer: _Buffer) -> None:
        self.buffer = buffer

    def makefile(self, *_args, **_kwargs) -> _Buffer:
        return self.buffer


def parse_replies(raw: bytes, method: str = "GET") -> list[Reply]:
    """Every reply in what the server sent (a HEAD's replies have no body)."""
    buffer = _Buffer(raw)
    replies = []
    while buffer.tell() < len(raw):
        response = http.client.HTTPResponse(_Socket(buffer), method=method)  # type: ignore[arg-type]
        response.begin()
        body = response.read()
        if buffer.tell() < len(raw) and not raw.startswith(b"HTTP/", buffer.tell()):
            # waitress's own error replies carry their body even to a HEAD
            length = response.getheader("Content-Length")
            body = buffer.read(int(length) if length else -1)
        replies.append(Reply(response.status, response.getheaders(), body))
    return replies


def build(
    method: str | bytes,
    target: str | bytes,
    *,
    headers=(),
    body: bytes | None = None,
    cookies: dict | None = None,
    length: bool = True,
    host: str | bytes = "127.0.0.1",
) -> bytes:
    """One request exactly as given; Content-Length is added for a body unless told not."""
    lines = [_bytes(method) + b" " + _bytes(target) + b" HTTP/1.1", b"Host: " + _bytes(host)]
    if cookies:
        lines.append(b"Cookie: " + "; ".join(f"{k}={v}" for k, v in cookies.items()).encode())
    lines += [_bytes(name) + b": " + _bytes(value) for name, value in headers]
    if body is not None and length:
        lines.append(b"Content-Length: %d" % len(body))
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")


def send_raw(port: int, data: bytes, *, half_close: bool = False) -> bytes:
    """Send bytes to the server on loopback; everything it answers until it hangs up."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:  # answered and closed before reading all of an oversized request
            pass
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:  # the same: the answer arrived before the reset
            pass
    return b"".join(chunks)


def is_local(location: str) -> bool:
    """Does a browser following this Location stay on this site?

    Browsers drop tabs and newlines anywhere in a URL, strip leading and trailing spaces
    and control characters, and read a backslash as a slash (WHATWG URL standard). What
    is left must be a path on this host: one slash, then not another. Anything else is
    refused, even relative forms a browser would keep local, because the app only ever
    sends paths."""
    cleaned = re.sub(r"[\t\n\r]", "", location).strip("".join(map(chr, range(0x21))))
    cleaned = cleaned.replace("\\", "/")
    return cleaned.startswith("/") and not cleaned.startswith("//")


class Site:
    """The app under waitress, an owner, twelve photos, and the checks every attack gets."""

    def __init__(self, app, url: str, photos, tmp_path: Path) -> None:
        from webapp import state

        self.app = app
        self.port = int(url.rsplit(":", 1)[1])
        self.photo = photos[-1].name
        with app.app_context():
            config = state().config
        self.data_dir = config.data_dir
        self.database = config.database_path
        self.store = PhotoStore(config.photos_dir, config.thumbs_dir)
        passwd = Path("/etc/passwd")
        self.secrets = [
            app.secret_key.encode(),
            str(tmp_path).encode(),
            str(Path(__file__).resolve().parents[1]).encode(),  # where the code lives
            b"SQLite format 3",  # the accounts file
            b"$2b$",  # a bcrypt hash
            b"def create_app",  # source code
            passwd.read_bytes().splitlines()[0] if passwd.is_file() else b"root:x:0:0:",
        ]

    # -- sending

    def send(self, data: bytes, *, half_close: bool = False) -> bytes:
        return send_raw(self.port, data, half_close=half_close)

    def fetch(self, method: str, target: str | bytes, **kwargs) -> Reply:
        """A well-formed request expecting exactly one reply (controls and set-up)."""
        replies = parse_replies(self.send(build(method, target, **kwargs)))
        assert len(replies) == 1, replies
        return replies[0]

    # -- visitors

    def visitor(self) -> tuple[dict, str]:
        """A fresh visitor's cookies and the CSRF token of its login form."""
        reply = self.fetch("GET", "/login")
        return _merge({}, reply), CSRF.search(reply.text).group(1)

    def login_request(
        self,
        username: str = "owner",
        password: str = PASSWORD,
        target: str | bytes = "/login",
        remember: bool = False,
        cookies: dict | None = None,
    ) -> bytes:
        """A login by a fresh visitor (or, with its ``cookies``, a given one)."""
        fresh, token = self.visitor()
        if cookies is not None:
            cookies.update(fresh)
        form = {"username": username, "password": password, "csrf_token": token}
        if remember:
            form["remember"] = "y"
        body = urlencode(form).encode()
        return build("POST", target, headers=[FORM], body=body, cookies=fresh)

    def owner(self, remember: bool = False) -> tuple[dict, str]:
        """Cookies of a logged-in owner and a CSRF token for its forms."""
        cookies: dict = {}
        replies = parse_replies(self.send(self.login_request(remember=remember, cookies=cookies)))
        assert replies[0].status == 302, replies
        cookies = _merge(cookies, replies[0])
        page = self.fetch("GET", "/", cookies=cookies)
        return _merge(cookies, page), CSRF.search(page.text).group(1)

    def has_access(self, cookies: dict) -> bool:
        """Do these cookies open the gallery (Flask) or a photo (the fast path)?"""
        gallery = self.fetch("GET", "/gallery", cookies=cookies)
        photo = self.fetch("GET", f"/photos/{self.photo}", cookies=cookies)
        return gallery.status == 200 or photo.status == 200

    # -- what must not change

    def snapshot(self) -> dict:
        """Every file in the data dir (by content), the accounts table, the photo list."""
        files = {
            str(path.relative_to(self.data_dir)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(self.data_dir.rglob("*"))
            if path.is_file() and not path.name.endswith(("-journal", "-wal", "-shm"))
        }
        conn = sqlite3.connect(f"file:{self.database}?mode=ro", uri=True)
        try:
            accounts = conn.execute(
                "SELECT id, username, email, password_hash, session_version FROM user ORDER BY id"
            ).fetchall()
        finally:
            conn.close()
        return {"files": files, "accounts": accounts, "photos": list(self.store.photos())}

    # -- the checks

    def no_leak(self, what: str, raw: bytes, sent: bytes = b"") -> None:
        """No secret, and no word naming the software, unless the request said it first
        (every page echoes its own path into the language switcher's form)."""
        for secret in self.secrets:
            assert secret not in raw, f"{what}: the answer leaks {secret[:40]!r}"
        for word in SOFTWARE_WORDS:
            if not word.search(sent):
                assert not word.search(raw), f"{what}: the answer mentions {word.pattern!r}"

    def refused(
        self,
        what: str,
        data: bytes,
        *,
        anonymous: bool,
        half_close: bool = False,
        statuses: tuple[int, ...] | None = None,
    ) -> list[Reply]:
        """Send an attack; assert it was refused, leaked nothing and changed nothing."""
        before = self.snapshot()
        ATTACKS[0] += 1
        raw = self.send(data, half_close=half_close)
        replies = parse_replies(raw)
        assert replies or half_close, f"{what}: no answer at all"
        for reply in replies:
            location = reply.header("Location") or ""
            to_login = reply.status == 302 and location.startswith("/login?next=")
            refused = 400 <= reply.status < 500 or (anonymous and to_login)
            assert refused, f"{what}: answered {reply.status}"
            if statuses is not None:
                assert reply.status in statuses, f"{what}: {reply.status}, not {statuses}"
            assert b"\xff\xd8" not in reply.body, f"{what}: photo bytes in the answer"
        self.no_leak(what, raw, data)
        assert self.snapshot() == before, f"{what}: the data dir changed"
        return replies


def _merge(cookies: dict, reply: Reply) -> dict:
    merged = {**cookies, **reply.cookies()}
    return {k: v for k, v in merged.items() if v is not None}


@pytest.fixture
def site(app, auth, photos, tmp_path):
    auth.create()
    # The limits are the limiter's business (tests/test_auth.py); here they would turn
    # the many logins into 429s and hide what the login itself does with the input.
    app.config.update(LOGIN_LIMIT_IP="100000 per minute", LOGIN_LIMIT_USER="100000 per minute")
    with waitress_thread(app) as url:
        yield Site(app, url, photos, tmp_path)


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


# -- oversized and lying requests -----------------------------------------------------------


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
        assert reply.status == 302 and site.has_access(_merge(cookies, reply))
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
            assert not site.has_access(_merge(cookies, reply)), what
    # A Content-Length promising more than is sent, then the client hangs up: the server
    # must not act on the part it has.
    lying = login(form, ("Content-Length", str(len(form) + 100)), length=False)
    replies = site.refused(
        "a Content-Length longer than the body", lying, anonymous=True, half_close=True
    )
    assert all(not site.has_access(_merge(cookies, r)) for r in replies)


# -- forms and accounts ---------------------------------------------------------------


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
            assert not site.has_access(_merge(cookies, reply)), what


ODD_USERNAMES = [
    "",
    " ",
    "ünïcödé",
    "用户",
    "OWNER",
    "ówner",
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
            assert not site.has_access(_merge({}, reply)), what


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
            assert not site.has_access(_merge({}, reply)), what


# -- cookies -------------------------------------------------------------------------------


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

    owner, _token = site.owner()
    user_id, version = _signed_session(app, owner["puccicam_session"])["_user_id"].split(":")

    def signed(data: dict, key: str, salt: str = "cookie-session") -> str:
        forger = Flask("forger")
        forger.secret_key = key
        interface = SecureCookieSessionInterface()
        interface.salt = salt
        return interface.get_signing_serializer(forger).dumps(data)

    session = {"_user_id": f"{user_id}:{version}", "_fresh": True}
    real = signed(session, app.secret_key)
    # Control: the same session signed with the real key opens everything, so what the
    # forgeries below lack is only the key.
    for route in _owner_routes(site):
        assert site.fetch("GET", route, cookies={"puccicam_session": real}).status == 200
    forged = {
        "another key": signed(session, "not the secret key"),
        "another salt": signed(session, app.secret_key, salt="another-salt"),
        "an ended session version": signed(
            {**session, "_user_id": f"{user_id}:{int(version) - 1}"}, app.secret_key
        ),
        "a user that does not exist": signed(
            {**session, "_user_id": f"{int(user_id) + 1}:{version}"}, app.secret_key
        ),
    }
    for what, cookie in forged.items():
        _refused_everywhere(site, f"session signed with {what}", {"puccicam_session": cookie})


def _signed_session(app, value: str) -> dict:
    return app.session_interface.get_signing_serializer(app).loads(value)


def test_forged_remember_cookies_open_nothing(site, app):
    from flask_login.utils import encode_cookie

    owner, _token = site.owner(remember=True)
    user_token = _signed_session(app, owner["puccicam_session"])["_user_id"]
    user_id, version = user_token.split(":")
    # Control: a remember cookie with the real key, and no session, logs the owner back in.
    real = encode_cookie(user_token, key=app.secret_key)
    assert site.has_access({"puccicam_remember": real})
    forged = {
        "another key": encode_cookie(user_token, key="not the secret key"),
        "no digest": user_token,
        "a zero digest": f"{user_token}|{'0' * 128}",
        "an ended session version": encode_cookie(
            f"{user_id}:{int(version) - 1}", key=app.secret_key
        ),
        "another user": encode_cookie(f"{int(user_id) + 1}:{version}", key=app.secret_key),
        "a bare user id": encode_cookie(user_id, key=app.secret_key),
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


# -- CSRF ---------------------------------------------------------------------------------


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
            assert not site.has_access(_merge(visitor, reply)), what
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


# -- open redirects ------------------------------------------------------------------------

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


# -- methods -------------------------------------------------------------------------------

UNEXPECTED_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "TRACE", "OPTIONS", "PROPFIND",
                      "MKCOL", "CONNECT", "FOO", "G@T", "get", "X" * 300]  # fmt: skip


def _concrete(rule, site) -> str:
    samples = {"name": site.photo, "filename": "style.css"}
    missing = set(rule.arguments) - samples.keys()
    assert not missing, f"{rule.rule}: add a sample value for {missing} here"
    return ROUTE_ARGUMENT.sub(lambda m: samples[m.group(1)], rule.rule)


def test_unexpected_methods_are_refused_on_every_route(site, app):
    owner, _token = site.owner()
    rules = list(app.url_map.iter_rules())
    assert {rule.endpoint for rule in rules} >= {"gallery.photo_bytes", "auth.logout"}
    for rule in rules:
        url = _concrete(rule, site)
        # Not rule.methods as it stands: Flask would add OPTIONS there by itself.
        meant = rule.methods - {"OPTIONS"}
        for method in UNEXPECTED_METHODS:
            if method in meant:
                continue
            for who, cookies in (("owner", owner), ("anonymous", None)):
                what = f"{who} {method[:12]} {url}"
                site.refused(what, build(method, url, cookies=cookies), anonymous=False)
    assert site.has_access(owner)
