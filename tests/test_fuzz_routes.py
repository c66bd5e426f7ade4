"""A generated fuzz pass over every route: never a 5xx, never a traceback, no photo leaked.

Every rule in ``app.url_map`` is fuzzed, so a new route is fuzzed without anyone
remembering to; a route whose arguments use a converter with no strategy here fails.
Each request has a random method (mostly the route's own), random path arguments
(valid photo names and near misses, traversal payloads, arbitrary bytes and text,
double-encoded), a random query string, a random body (forms, duplicated fields,
multipart, JSON, bytes, too large), random headers and random cookies, sent once as an
anonymous visitor (whose cookies are only ever forged, tampered or junk) and once as a
logged-in owner. Most of it goes through the Flask test client for speed, with the WSGI
environ waitress would build; a smaller pass sends raw bytes to a real waitress server.

The anonymous visitor never gets image bytes other than the public files in
``webapp/static`` (the portrait at ``/pet.jpg`` is the bundled one).
"""

from __future__ import annotations

import json
import re
import sqlite3
import string
from pathlib import Path
from urllib.parse import quote_from_bytes, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers.rawhttp import build, parse_replies, send_raw
from tests.helpers.site import PASSWORD, AuthActions, waitress_thread
from tests.helpers.soak import record, scaled

pytestmark = pytest.mark.slow

EXAMPLES = scaled(20, 300)  # per route, per visitor (13 routes today)
RAW_EXAMPLES = scaled(60, 600)  # through a real waitress server
STATIC = Path(__file__).resolve().parents[1] / "webapp" / "static"
PUBLIC_FILES = [path.read_bytes() for path in STATIC.iterdir() if path.is_file()]
ROUTE_ARGUMENT = re.compile(r"<(?:([^:<>()]+)(?:\([^<>]*\))?:)?([^<>]+)>")
EXECUTED = [0]  # requests sent by this module, for tests/helpers/soak.py's figures
SETTINGS = {
    "deadline": None,
    "database": None,  # one inner test per route: a shared database would mix them up
    "print_blob": True,
    "suppress_health_check": list(HealthCheck),
}


@pytest.fixture
def app(make_config):
    """The conftest app, with login limits out of the way: the fuzz measures the app."""
    from webapp import create_app
    from webapp.extensions import limiter

    config = make_config(
        web__bcrypt_rounds=4,
        web__login_limit_ip="100000 per minute",
        web__login_limit_user="100000 per minute",
        capture__interval=86400,
    )
    # A day's interval keeps /healthz at 200 however long the run, so a 503 there is news.
    application = create_app(config)
    limiter.reset()
    return application


# -- strategies -----------------------------------------------------------------------------

SPECIAL_NAMES = [
    "", ".", "..", "../..", "/", "\x00", "%00", "secret_key", "puccicam.sqlite3", "status.json",
    "style.css", "pet.jpg", "favicon.png", "gallery.js", "../__init__.py", "..%2Fsecret_key",
    "%2e%2e%2fsecret_key", "..\\secret_key", "%c0%ae%c0%ae%c0%afsecret_key",
    "20200101T000000.000Z.jpg", "20261301T000000.000Z.jpg", "20260230T000000.000Z.jpg",
    "20260101T240000.000Z.jpg", "00000101T000000.000Z.jpg", "29991231T235959.999Z.jpg",
    "19700101T000000.000Z.jpg",
]  # fmt: skip
FIELDS = ["username", "password", "csrf_token", "remember", "lang", "next"]
TOKEN = "\x00token\x00"  # replaced by the visitor's real CSRF token when sent
VALUES = [
    "owner", PASSWORD, TOKEN, TOKEN, "x" * 100, "y", "de", "en", "xx", "/gallery",
    "//evil.example", "/\\evil.example", "https:evil.example",
]  # fmt: skip
METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND",
           "CONNECT"]  # fmt: skip
TOKEN_CHARS = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
HEADER_TEXT = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=60,
)
HEADER_SAMPLES = {
    "Accept-Language": ["de", "de-DE,de;q=0.9", "*", "xx;q=abc", "en;q=2", ",;,"],
    "If-None-Match": ["*", '"abc"', "W/", '"1-2", *'],
    "If-Modified-Since": ["Mon, 01 Jan 0001 00:00:00 GMT", "Thu, 01 Jan 2099 00:00:00 -0000",
                          "Fri, 31 Dec 9999 23:59:59 GMT", "0", "yesterday"],
    "If-Unmodified-Since": ["Mon, 01 Jan 1990 00:00:00 GMT", "junk"],
    "Range": ["bytes=0-1", "bytes=5-1", "bytes=-99999999999999999999", "bytes=0-0,1-1,2-2",
              "items=0-1", "bytes="],
    "If-Range": ['"x"', "Mon, 01 Jan 1990 00:00:00 GMT"],
    "Host": ["evil.example", "127.0.0.1:99999", "[::1", "[::1]:80", "", "xn--zz", "a..b",
             "x" * 64, "ex ample"],
    "Origin": ["https://evil.example", "null"],
    "Referer": ["https://evil.example/", "/"],
    "X-Forwarded-For": ["1.2.3.4", "junk"],
    "X-Forwarded-Proto": ["https", "gopher"],
    "Accept-Encoding": ["gzip", "br;q=0"],
    "Content-Encoding": ["gzip", "deflate"],
    "Authorization": ["Basic b3duZXI6eA==", "Bearer x"],
    "User-Agent": ["", "x" * 200],
}  # fmt: skip


def _replace(name: str, index: int, char: str) -> str:
    index %= max(1, len(name))
    return name[:index] + char + name[index + 1 :]


def segments(names: list[str]) -> st.SearchStrategy[bytes]:
    """One path argument as the bytes waitress would decode it to."""
    known = st.sampled_from(names + SPECIAL_NAMES)
    raw = st.one_of(
        known.map(lambda s: s.encode("utf-8")),
        # a photo name with one character changed (perhaps to a lone surrogate)
        st.builds(_replace, st.sampled_from(names), st.integers(0, 30), st.characters()).map(
            lambda s: s.encode("utf-8", "surrogatepass")
        ),
        st.binary(max_size=40),
        st.text(max_size=30).map(lambda s: s.encode("utf-8")),
        # lone surrogates, as a sloppy encoder would write them: invalid UTF-8
        st.text(st.characters(categories=["Cs", "Ll", "Nd"]), max_size=10).map(
            lambda s: s.encode("utf-8", "surrogatepass")
        ),
    )
    # Double encoding: the app then sees "%2e%2e%2f" where the first decoding left it.
    return st.one_of(raw, raw.map(lambda b: quote_from_bytes(b, safe="").encode()))


def path_info(rule, names: list[str], mangle: bool = True) -> st.SearchStrategy[bytes]:
    """PATH_INFO for a rule, its arguments fuzzed by their converter's strategy, and
    (``mangle``) sometimes with a suffix or a doubled slash."""
    parts = []
    last = 0
    for match in ROUTE_ARGUMENT.finditer(rule.rule):
        converter = match.group(1) or "default"
        if converter not in CONVERTERS:
            pytest.fail(
                f"{rule.rule}: no fuzz strategy for the {converter!r} converter: "
                "add one to CONVERTERS in tests/test_fuzz_routes.py"
            )
        parts.append(st.just(rule.rule[last : match.start()].encode()))
        parts.append(CONVERTERS[converter](names))
        last = match.end()
    parts.append(st.just(rule.rule[last:].encode()))
    path = st.tuples(*parts).map(b"".join)
    if not mangle:
        return path
    mangled = st.tuples(path, st.sampled_from([b"", b"/", b"//", b"/..", b"/.", b"%00"])).map(
        b"".join
    )
    return st.one_of(path, mangled, path.map(lambda p: p.replace(b"/", b"//", 1)))


def _static_paths(names: list[str]) -> st.SearchStrategy[bytes]:
    deeper = st.lists(segments(names), min_size=1, max_size=4).map(b"/".join)
    return st.one_of(segments(names), deeper, deeper.map(lambda p: b"../" + p))


CONVERTERS = {"default": segments, "string": segments, "path": _static_paths}


def queries(names: list[str]) -> st.SearchStrategy[bytes]:
    keys = st.one_of(st.sampled_from(["next", "before", "after", "lang", "x"]), st.text(max_size=8))
    values = st.one_of(st.sampled_from(VALUES + names), segments(names).map(_latin1))
    pairs = st.lists(st.tuples(keys, values), max_size=4)
    return st.one_of(
        st.just(b""),
        pairs.map(lambda p: urlencode(p).encode()),
        st.binary(max_size=60).filter(lambda b: b"#" not in b),
    )


def _latin1(data: bytes) -> str:
    return data.decode("latin-1")


def _multipart(pairs: list[tuple[str, str]], boundary: str) -> bytes:
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in pairs
    ]
    return ("".join(parts) + f"--{boundary}--\r\n").encode("utf-8", "surrogatepass")


FORM_TYPE = "application/x-www-form-urlencoded"
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(VALUES),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(FIELDS), inner, max_size=4)
    ),
    max_leaves=8,
)


def bodies() -> st.SearchStrategy[tuple[bytes, str | None] | None]:
    """(body, Content-Type) or None."""
    fields = st.lists(
        st.tuples(
            st.one_of(st.sampled_from(FIELDS), st.text(max_size=8)),
            st.one_of(st.sampled_from(VALUES), st.text(max_size=40)),
        ),
        max_size=8,
    )
    content_types = st.sampled_from(
        [
            FORM_TYPE,
            "multipart/form-data; boundary=b",
            "multipart/form-data",
            "application/json",
            "text/plain",
            FORM_TYPE + "; charset=utf-16",
            "",
            "x/y; z",
        ]
    )
    return st.one_of(
        st.none(),
        fields.map(lambda p: (urlencode(p).encode("utf-8", "surrogatepass"), FORM_TYPE)),
        fields.map(lambda p: (_multipart(p, "b"), "multipart/form-data; boundary=b")),
        st.tuples(fields.map(lambda p: _multipart(p, "b")), content_types),
        st.one_of(JSON_VALUES, st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES)).map(
            lambda v: (json.dumps(v).encode(), "application/json")
        ),
        st.tuples(st.binary(max_size=200), content_types),
        st.integers(16 * 1024, 20 * 1024).map(lambda n: (b"x=" + b"x" * n, FORM_TYPE)),  # 413
    )


def headers() -> st.SearchStrategy[dict[str, str]]:
    """A few headers, each with a telling sample value or any text."""

    def value(name: str) -> st.SearchStrategy[str]:
        return st.one_of(st.sampled_from(HEADER_SAMPLES[name]), HEADER_TEXT)

    names = st.lists(st.sampled_from(sorted(HEADER_SAMPLES)), max_size=4, unique=True)
    return names.flatmap(lambda chosen: st.fixed_dictionaries({n: value(n) for n in chosen}))


def requests(rule, names: list[str]) -> st.SearchStrategy[dict]:
    """Half of them deep: the route's own method (HEAD is GET to the app), its path with
    fuzzed arguments, the visitor's own session and a valid CSRF token in the header,
    so the odd bodies and queries get past routing and CSRF into the view. The other
    half wild: any method, mangled paths, forged and junk cookies, any token."""
    own = sorted(rule.methods - {"HEAD"})
    deep = {
        "method": st.sampled_from(own),
        "path": path_info(rule, names, mangle=False),
        "cookies": st.lists(st.sampled_from(["junk", "lang", "forged remember"]), max_size=2),
        "csrf header": st.sampled_from([TOKEN, None]),
    }
    wild = {
        "method": st.one_of(
            st.sampled_from(sorted(rule.methods)),
            st.sampled_from(METHODS),
            st.text(TOKEN_CHARS, min_size=1, max_size=10),
        ),
        "path": path_info(rule, names),
        "cookies": st.lists(st.sampled_from(COOKIE_KINDS), max_size=3),
        # CSRFProtect also takes the token from this header, whatever the body is
        "csrf header": st.sampled_from([None, TOKEN, "junk"]),
    }
    rest = {"query": queries(names), "body": bodies(), "headers": headers()}
    return st.one_of(
        st.fixed_dictionaries({**deep, **rest}), st.fixed_dictionaries({**wild, **rest})
    )


# -- visitors -------------------------------------------------------------------------------

COOKIE_KINDS = ["tampered", "forged", "forged remember", "junk", "junk session", "lang",
                "duplicate", "quoted"]  # fmt: skip


class Visitors:
    """Cookies and CSRF tokens of an anonymous visitor and of a logged-in owner."""

    def __init__(self, app) -> None:
        from flask import Flask
        from flask.sessions import SecureCookieSessionInterface

        self.app = app
        AuthActions(app.test_client(), app).create()
        visitor = app.test_client()
        self.visitor_token = AuthActions(visitor, app).token()
        self.visitor_session = visitor.get_cookie("puccicam_session").value
        forger = Flask("forger")
        forger.secret_key = "not the secret key"
        self.forged = (
            SecureCookieSessionInterface()
            .get_signing_serializer(forger)
            .dumps({"_user_id": "1:1", "_fresh": True})
        )
        self.log_in()

    def log_in(self) -> None:
        owner = self.app.test_client()
        actions = AuthActions(owner, self.app)
        assert actions.login(remember=True).status_code == 302
        self.owner_token = actions.token("/")
        self.owner_session = owner.get_cookie("puccicam_session").value
        self.owner_remember = owner.get_cookie("puccicam_remember").value
        self.version = self.session_version()

    def session_version(self) -> int:
        from webapp import state

        with self.app.app_context():
            database = state().config.database_path
        conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
        try:
            return conn.execute("SELECT session_version FROM user").fetchone()[0]
        finally:
            conn.close()

    def cookie_header(self, owner: bool, kinds: list[str]) -> str:
        session = self.owner_session if owner else self.visitor_session
        payload, stamp, signature = self.owner_session.rsplit(".", 2)
        middle = len(signature) // 2
        flipped = "A" if signature[middle] != "A" else "B"
        extra = {
            "tampered": f"puccicam_session={payload}.{stamp}.{signature[:middle]}{flipped}"
            f"{signature[middle + 1 :]}",
            "forged": f"puccicam_session={self.forged}",
            "forged remember": "puccicam_remember=1:1|" + "0" * 128,
            "junk": "a=b; =; ;;; c",
            "junk session": "puccicam_session=%00%ff.x.y",
            "lang": "lang=xx",
            "duplicate": f"puccicam_session={session}",
            "quoted": 'puccicam_session="x.y.z"',
        }
        # The first extra cookie goes before the real one, the rest after: which one wins is the
        # app's business, but neither order may crash it or let the anonymous visitor in.
        parts = [extra[k] for k in kinds[:1]] + [f"puccicam_session={session}"]
        parts += [extra[k] for k in kinds[1:]]
        if owner:
            parts.append(f"puccicam_remember={self.owner_remember}")
        return "; ".join(parts)

    def token(self, owner: bool) -> str:
        return self.owner_token if owner else self.visitor_token


# -- the checks -------------------------------------------------------------------------------


def check(what: str, status: int, body: bytes, content_type: str, anonymous: bool) -> None:
    assert status < 500, f"{what}: {status}"
    assert b"Traceback" not in body and b'File "' not in body, f"{what}: a traceback"
    if anonymous and (content_type.startswith("image/") or body[:2] == b"\xff\xd8"):
        assert any(body in public for public in PUBLIC_FILES), f"{what}: image bytes leaked"


def test_check_catches_what_it_names():
    """The check itself must be able to fail."""
    photo = b"\xff\xd8\xff\xe0 a camera photo"
    for args in [
        (500, b"", "text/html", False),
        (200, b"Traceback (most", "text/html", False),
        (200, photo, "image/jpeg", True),
        (206, photo[2:], "image/jpeg", True),
    ]:
        with pytest.raises(AssertionError):
            check("x", *args)
    check("x", 200, PUBLIC_FILES[0][:100], "image/jpeg", True)
    check("x", 200, photo, "image/jpeg", False)


def _rules(app) -> list:
    rules = sorted(app.url_map.iter_rules(), key=lambda rule: rule.rule)
    endpoints = {rule.endpoint for rule in rules}
    # The enumeration must see the routes that matter, or the fuzz would pass vacuously.
    assert endpoints >= {
        "public.portrait",
        "auth.login",
        "gallery.photo_bytes",
        "gallery.thumb_bytes",
        "static",
    }, endpoints
    return rules


def test_every_route_has_a_strategy(app, photos):
    names = [photo.name for photo in photos]
    for rule in _rules(app):
        requests(rule, names)  # fails the test for a converter with no strategy


def _with_token(data: bytes, token: str) -> bytes:
    """The body with the TOKEN placeholder, however it was encoded, made the real token."""
    for placeholder in (TOKEN.encode(), b"%00token%00", b"\\u0000token\\u0000"):
        data = data.replace(placeholder, token.encode())
    return data


def _send(client, visitors: Visitors, request: dict, owner: bool):
    token = visitors.token(owner)
    path = _latin1(request["path"])
    environ = {
        "PATH_INFO": path,
        "QUERY_STRING": _latin1(request["query"]),
        "REQUEST_URI": quote_from_bytes(request["path"], safe="/"),
        "HTTP_COOKIE": visitors.cookie_header(owner, request["cookies"]),
    }
    # Not Host: werkzeug's test client itself fails on one it cannot IDNA-decode, before
    # the app is called. The pass through waitress below sends it.
    headers = {k: v.replace(TOKEN, token) for k, v in request["headers"].items() if k != "Host"}
    if request["csrf header"]:
        headers["X-CSRFToken"] = request["csrf header"].replace(TOKEN, token)
    data, content_type = request["body"] or (None, None)
    response = client.open(
        "/",
        method=request["method"],
        data=None if data is None else _with_token(data, token),
        content_type=content_type,
        headers=headers,
        environ_overrides=environ,
        buffered=False,  # a live stream never ends by itself: see _body
    )
    return response


def _body(response) -> bytes:
    """The whole body; of a live stream (it runs until the viewer leaves) its first part."""
    try:
        if (response.content_type or "").startswith("multipart/x-mixed-replace"):
            return next(iter(response.response), b"")
        return response.get_data()
    finally:
        response.close()


def _fuzz_rule(rule, names: list[str], client, visitors: Visitors, owner: bool) -> None:
    """Run the fuzz on one route as one visitor."""

    @settings(max_examples=EXAMPLES, **SETTINGS)
    @given(request=requests(rule, names))
    def fuzz(request):
        EXECUTED[0] += 1
        response = _send(client, visitors, request, owner)
        what = f"{request['method']} {request['path']!r} ({rule.rule})"
        body = _body(response)
        check(what, response.status_code, body, response.content_type or "", not owner)
        if owner and visitors.session_version() != visitors.version:
            visitors.log_in()  # the fuzz found the logout button: log back in

    fuzz()


@pytest.mark.parametrize("who", ["anonymous", "owner"])
def test_fuzz_every_route(app, photos, who):
    visitors = Visitors(app)
    client = app.test_client(use_cookies=False)
    names = [photo.name for photo in photos]
    rules = _rules(app)
    for rule in rules:
        _fuzz_rule(rule, names, client, visitors, owner=who == "owner")
    record("hostile", "routes fuzzed", len(rules))
    record("hostile", "fuzzed requests", EXECUTED[0])


# -- the same through a real waitress server -----------------------------------------------------


def _target(path: bytes, query: bytes, form: str) -> bytes:
    """The request target: percent-encoded as a client should, or the raw bytes (but
    none that would end the request line), or raw after "//", which waitress does not
    check for non-ASCII bytes."""
    if form == "encoded":
        target = quote_from_bytes(path, safe="/%.:~@!$&'()*+,;=-_")
        return (target + ("?" + quote_from_bytes(query, safe="=&%+") if query else "")).encode()
    raw = re.sub(rb"[\r\n ]", b"_", path + (b"?" + query if query else b""))
    return b"/" + raw if form == "after //" else raw


def test_fuzz_through_waitress(app, photos):
    visitors = Visitors(app)
    names = [photo.name for photo in photos]
    # Not the live stream: it answers until the viewer leaves, so a raw reply never ends.
    # It is fuzzed through the test client above, and attacked raw in tests/test_live.py.
    rules = [rule for rule in _rules(app) if rule.endpoint != "live.stream"]
    request_strategy = st.sampled_from(rules).flatmap(lambda rule: requests(rule, names))

    with waitress_thread(app) as url:
        port = int(url.rsplit(":", 1)[1])

        @settings(max_examples=RAW_EXAMPLES, **SETTINGS)
        @given(
            request=request_strategy,
            owner=st.booleans(),
            method=st.one_of(st.none(), st.text(TOKEN_CHARS, min_size=1, max_size=8)),
            form=st.sampled_from(["encoded", "encoded", "raw", "after //"]),
        )
        def fuzz(request, owner, method, form):
            EXECUTED[0] += 1
            token = visitors.token(owner)
            method = method or request["method"]
            data, content_type = request["body"] or (None, None)
            head = [
                (k, v.replace(TOKEN, token).encode("latin-1"))
                for k, v in request["headers"].items()
                if k != "Host"
            ]
            if content_type:
                head.append(("Content-Type", content_type))
            if request["csrf header"]:
                head.append(("X-CSRFToken", request["csrf header"].replace(TOKEN, token)))
            head.append(("Cookie", visitors.cookie_header(owner, request["cookies"])))
            body = None if data is None else _with_token(data, token)
            host = request["headers"].get("Host", "127.0.0.1").encode("latin-1")
            raw = build(
                method,
                _target(request["path"], request["query"], form),
                headers=head,
                body=body,
                host=host,
            )
            replies = parse_replies(send_raw(port, raw), method)
            assert replies, f"no answer to {raw[:200]!r}"
            for reply in replies:
                kind = reply.header("Content-Type") or ""
                check(f"{raw[:120]!r}", reply.status, reply.body, kind, not owner)
            if owner and visitors.session_version() != visitors.version:
                visitors.log_in()

        fuzz()
    record("hostile", "fuzzed requests", EXECUTED[0])
