"""A fast path for the two hottest routes, ``/photos/<name>`` and ``/thumbs/<name>``.

A gallery page pulls dozens of thumbnails and every refresh a photo; through Flask's
full dispatch (session, Flask-Login's ORM user load, limiter, send_file) each one cost
about 4 ms, a tenth of what waitress can serve. This WSGI middleware answers only the
happy case itself: a GET or HEAD with a valid signed session whose user still has that
session version, for a photo (or an existing thumbnail) the store knows. Everything
else (no or expired session, remember-me only, unknown names, missing thumbnails, other
methods) falls through to Flask unchanged, so redirects, 404 pages, localisation and
thumbnail creation stay in one place.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import threading
import time
from email.utils import formatdate, parsedate_to_datetime

from flask import Flask
from itsdangerous import BadSignature

from camera.store import PHOTO_NAME, PhotoStore
from webapp.security import security_headers

request_log = logging.getLogger("webapp.requests")

PREFIXES = ("/photos/", "/thumbs/")
_TOKEN = re.compile(r"[A-Za-z0-9_.\-]+")
# Kept by the owner's browser only, and revalidated on every use: a reload costs a
# 304 with no body, and after logout the cached copy is refused, not shown.
CACHE_CONTROL = "private, no-cache"


def etag_for(stat: os.stat_result) -> str:
    """A photo's validator, the same on the fast path and through Flask."""
    return f"{stat.st_mtime_ns:x}-{stat.st_size:x}"


class SessionCache:
    """Session cookies checked in the last second, so a page of thumbnails checks once.

    Cleared whenever this process ends a session (logout, password change); a change
    made by another process (``puccicam user passwd``) takes effect within ``TTL``.
    """

    TTL = 1.0
    LIMIT = 512

    def __init__(self) -> None:
        self._seen: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self.generation = 0  # bumped by clear(): a check begun before it is not cached

    def get(self, cookie: str) -> str | None:
        hit = self._seen.get(cookie)
        return hit[0] if hit and hit[1] > time.monotonic() else None

    def put(self, cookie: str, user_id: str, generation: int) -> None:
        with self._lock:
            if generation != self.generation:
                return
            if len(self._seen) >= self.LIMIT:
                self._seen.clear()
            self._seen[cookie] = (user_id, time.monotonic() + self.TTL)

    def clear(self) -> None:
        with self._lock:
            self.generation += 1
            self._seen.clear()


class FileCache:
    """Recently served photo files, kept in memory for ``TTL`` seconds.

    Photos never change under their name (they are renamed into place whole), so the
    only staleness is a photo pruned in the last ``TTL`` seconds being shown once more.
    What this saves is not disk I/O but the four system calls per request (open, fstat,
    read, close), each of which hands the GIL back and forth between waitress's threads:
    measured, they cost the photo route 60% of its rate.
    """

    TTL = 60.0
    LIMIT = 32 * 2**20

    def __init__(self) -> None:
        self._files: dict[str, tuple[float, bytes, str, str]] = {}
        self._size = 0
        self._lock = threading.Lock()

    def get(self, path: str) -> tuple[bytes, str, str] | None:
        """(body, ETag, Last-Modified) of a file, from memory or from disk."""
        hit = self._files.get(path)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1], hit[2], hit[3]
        try:
            with open(path, "rb") as fh:
                stat = os.fstat(fh.fileno())
                body = fh.read()
        except OSError:  # no such photo, thumbnail not made yet, or just pruned
            with self._lock:
                gone = self._files.pop(path, None)
                self._size -= len(gone[1]) if gone else 0
            return None
        etag = f'"{etag_for(stat)}"'
        entry = (now + self.TTL, body, etag, formatdate(stat.st_mtime, usegmt=True))
        with self._lock:
            if self._size + len(body) > self.LIMIT:
                self._files.clear()
                self._size = 0
            old = self._files.get(path)
            self._size += len(body) - (len(old[1]) if old else 0)
            self._files[path] = entry
        return body, etag, entry[3]


class PhotoFastPath:
    """Wraps ``app.wsgi_app``; serves authenticated photo bytes without Flask dispatch."""

    def __init__(
        self, app: Flask, store: PhotoStore, database: str, sessions: SessionCache
    ) -> None:
        self.app = app
        self.next = app.wsgi_app
        self.store = store
        self.database = database
        self.sessions = sessions
        self.cookie = app.config["SESSION_COOKIE_NAME"]
        self.serializer = app.session_interface.get_signing_serializer(app)
        self.max_age = int(app.permanent_session_lifetime.total_seconds())
        self.headers = security_headers(app.config["HSTS"])
        self.roots = {"/photos/": str(store.root), "/thumbs/": str(store.thumbs_root)}
        self.files = FileCache()
        self._local = threading.local()

    def _session_version(self, user_id: int) -> int | None:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                f"file:{self.database}?mode=ro", uri=True, check_same_thread=False
            )
            self._local.conn = conn
        row = conn.execute("SELECT session_version FROM user WHERE id = ?", (user_id,)).fetchone()
        return row[0] if row else None

    def _user(self, environ) -> str | None:
        """The user id of a valid, current session cookie, or None."""
        value = self._cookie_value(environ.get("HTTP_COOKIE", ""))
        if not value:
            return None
        known = self.sessions.get(value)
        if known is not None:
            return known
        generation = self.sessions.generation
        try:
            data = self.serializer.loads(value, max_age=self.max_age)
        except (BadSignature, ValueError):
            return None
        token = data.get("_user_id") if isinstance(data, dict) else None
        user_id, _sep, version = str(token or "").partition(":")
        if not (user_id.isdigit() and version.isdigit()):
            return None
        if self._session_version(int(user_id)) != int(version):
            return None
        self.sessions.put(value, user_id, generation)
        return user_id

    def _cookie_value(self, header: str) -> str | None:
        """The session cookie's value. Flask's signed values are base64url and dots,
        never quoted, so a split is exact; anything else is left to Flask."""
        for part in header.split(";"):
            name, sep, value = part.strip().partition("=")
            if sep and name == self.cookie:
                return value if _TOKEN.fullmatch(value) else None
        return None

    def _path(self, route: str, name: str) -> str | None:
        """The file for a photo name the store writes, by string joins (no Path objects).

        Only the name's shape is checked here; a name of the right shape that no photo
        has simply fails to open and falls through to Flask's 404."""
        if not PHOTO_NAME.fullmatch(name):
            return None
        return f"{self.roots[route]}/{name[:8]}/{name[9:11]}/{name}"

    def __call__(self, environ, start_response):
        path_info = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD")
        route = path_info[:8]
        if route not in PREFIXES or method not in ("GET", "HEAD"):
            return self.next(environ, start_response)
        started = time.perf_counter()
        user = self._user(environ)
        path = self._path(route, path_info[8:]) if user else None
        if path is None:
            return self.next(environ, start_response)
        found = self.files.get(path)
        if found is None:
            return self.next(environ, start_response)
        body, etag, modified = found
        headers = [
            ("ETag", etag),
            ("Last-Modified", modified),
            ("Cache-Control", CACHE_CONTROL),
            *self.headers,
        ]
        if _not_modified(environ, etag, modified):
            status, body = "304 NOT MODIFIED", b""
        else:
            status = "200 OK"
            headers += [("Content-Type", "image/jpeg"), ("Content-Length", str(len(body)))]
            if method == "HEAD":
                body = b""
        start_response(status, headers)
        request_log.info(
            "%s %s %s %.1fms user=%s",
            method,
            path_info,
            status[:3],
            (time.perf_counter() - started) * 1000,
            user,
        )
        return [body]


def _not_modified(environ, etag: str, modified: str) -> bool:
    match = environ.get("HTTP_IF_NONE_MATCH")
    if match is not None:
        return etag in (tag.strip() for tag in match.split(",")) or match.strip() == "*"
    since = environ.get("HTTP_IF_MODIFIED_SINCE")
    if since:
        try:
            return parsedate_to_datetime(modified) <= parsedate_to_datetime(since)
        except (TypeError, ValueError, OverflowError):
            return False
    return False
