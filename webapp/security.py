"""Secret key, security headers and redirect checks.

The secret key is never a literal: it comes from config or the environment, or is
generated on first run into ``DATA_DIR/secret_key`` with mode 0600.
"""

from __future__ import annotations

import logging
import re
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from flask import Flask, Response, abort, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.http import parse_date

from camera.errors import DataDirError
from camera.fsutil import create_exclusive

log = logging.getLogger(__name__)

CSP = (
    "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


SECRET_KEY_MIN_BYTES = 32


def load_secret_key(data_dir: Path, configured: str) -> str:
    """The configured key, or the one in DATA_DIR/secret_key, created 0600 if missing.

    :raises DataDirError: the file holds less than a key (say it was emptied by hand).
    """
    if configured:
        return configured
    path = data_dir / "secret_key"
    try:
        key = path.read_text().strip()
    except FileNotFoundError:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
        key = secrets.token_urlsafe(48)
        try:
            create_exclusive(path, (key + "\n").encode(), 0o600)
        except FileExistsError:  # another process made it first: use theirs
            key = path.read_text().strip()
        else:
            log.info("generated a new secret key in %s", path)
    if len(key.encode()) < SECRET_KEY_MIN_BYTES:
        raise DataDirError(
            f"{path} holds no usable secret key (fewer than {SECRET_KEY_MIN_BYTES} bytes): "
            "delete it and start again (a new one is made; every owner logs in once more)"
        )
    return key


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a path on this site, else None (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return None
    if any(ord(c) < 32 or c == "\\" for c in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def cookie_secure(app: Flask) -> bool:
    """The one rule for the session and remember cookies: Secure when the site is
    configured for HTTPS or this request came over it."""
    return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure)


class SessionInterface(SecureCookieSessionInterface):
    """Marks the session cookie Secure by :func:`cookie_secure`."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return cookie_secure(app)


def security_headers(hsts: bool) -> list[tuple[str, str]]:
    """The headers every response carries (HSTS only when served over HTTPS)."""
    headers = [
        ("Content-Security-Policy", CSP),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "same-origin"),
        ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
    ]
    if hsts:
        headers.append(("Strict-Transport-Security", "max-age=31536000"))
    return headers


def add_security_headers(response: Response, hsts: bool) -> Response:
    for name, value in security_headers(hsts):
        response.headers[name] = value
    return response


def refuse_nameless_fields() -> None:
    """A form with a multipart part that has no usable name is a 400.

    werkzeug files such a part under the key None, and Flask-WTF's CSRF check, looking
    through the form's keys for a token, fails on it: a 500 for any visitor posting
    anywhere, no token needed (found by tests/test_fuzz_routes.py)."""
    if request.method in ("POST", "PUT", "PATCH", "DELETE") and None in request.form:
        abort(400)


def refuse_undecodable_query() -> None:
    """A query that is not UTF-8 is a 400: werkzeug's ``request.args`` decodes it
    strictly and would raise (a 500). waitress refuses raw non-ASCII bytes in a
    request target, but not in one starting with "//": ``GET //?`` and a raw 0x80
    byte was a 500 (found by tests/test_fuzz_routes.py)."""
    try:
        request.query_string.decode("utf-8")
    except UnicodeDecodeError:
        abort(400)


def leading_doubled_slash(environ) -> bool:
    """Does the request target start with "//"? waitress strips leading slashes from
    PATH_INFO (and werkzeug's router strips them again), so only the target as sent
    (``REQUEST_URI``, or an absolute-form target's path) still shows them."""
    target = environ.get("REQUEST_URI") or environ.get("RAW_URI") or environ.get("PATH_INFO", "")
    if not target.startswith("/"):  # absolute form: http://host//gallery
        target = urlsplit(target).path
    return target.startswith("//")


def refuse_leading_doubled_slash() -> None:
    """``//gallery`` is a 404 like every doubled slash (``_Map`` does not merge them), not
    the page at ``/gallery``: a path is either the one the site links to or nothing."""
    if leading_doubled_slash(request.environ):
        abort(404)


def here() -> str:
    """This page's path and query: where to come back to after login or a language switch.

    Not ``request.full_path``, which decodes the query as strict UTF-8 and raised on any
    other byte, nor ``request.url``, which also decodes the Host header (see HostGuard)."""
    query = request.query_string.decode("utf-8", "replace")
    return f"{request.path}?{query}" if query else request.path


# A host name (labels of 1 to 63 letters, digits, dashes and underscores, as nginx
# upstream names have) or a bracketed IPv6 address, with an optional port: what browsers
# and proxies send, punycode included.
_HOST = re.compile(
    r"(?:\[[0-9A-Fa-f:.]+\]|(?:[A-Za-z0-9_-]{1,63}\.)*[A-Za-z0-9_-]{1,63}\.?)(?::[0-9]{1,5})?"
)


def plausible_host(host: str) -> bool:
    """Can werkzeug build URLs with this Host header (``Map.bind`` IDNA-encodes it)?

    Only encoding is checked. Decoding, which ``request.url`` does, fails on names
    browsers send every day: Python's codec is IDNA 2003, browsers use IDNA 2008, so
    ``xn--strae-oqa.de`` (straße.de) does not round-trip. Nothing here uses
    ``request.url`` (the login redirect is built from :func:`here`)."""
    if not _HOST.fullmatch(host):
        return False
    if host.startswith("["):
        return True
    try:
        host.partition(":")[0].encode("idna")
    except UnicodeError:
        return False
    return True


_DATE_HEADERS = ("HTTP_IF_MODIFIED_SINCE", "HTTP_IF_UNMODIFIED_SINCE")


def drop_unparseable_dates(environ) -> None:
    """Remove conditional date headers werkzeug cannot parse, as RFC 9110 says to ignore them.

    werkzeug's ``parse_date`` returns None for most bad dates but lets an OverflowError
    escape for an absurd zone offset ("+99999999999999"): a 500 on every photo route.
    """
    for key in _DATE_HEADERS:
        value = environ.get(key)
        if value is not None:
            try:
                parse_date(value)
            except (OverflowError, ValueError):
                del environ[key]


class HostGuard:
    """WSGI middleware: a request whose Host header is no host name gets a plain 400;
    conditional date headers werkzeug cannot parse are dropped
    (:func:`drop_unparseable_dates`).

    werkzeug IDNA-encodes the Host to build URLs; a label over 63 characters or an
    empty label ("a..b") raised inside Flask's request set-up, and again on the error
    page: a 500 (found by tests/test_fuzz_routes.py). Behind Caddy only the configured
    host gets through; waitress on its own passes any Host on.
    """

    def __init__(self, app, hsts: bool) -> None:
        self.app = app
        self.headers = security_headers(hsts)

    def __call__(self, environ, start_response):
        drop_unparseable_dates(environ)
        host = environ.get("HTTP_HOST")
        if host is None or plausible_host(host):
            return self.app(environ, start_response)
        log.debug(  # anyone can send these: not worth a journal line each
            "refused %s %s: Host %r is no host name",
            environ.get("REQUEST_METHOD"),
            environ.get("PATH_INFO"),
            host[:80],
        )
        body = b"Bad request: the Host header is not a host name.\n"
        start_response(
            "400 BAD REQUEST",
            [
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", str(len(body))),
                *self.headers,
            ],
        )
        return [body]
