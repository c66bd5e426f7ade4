"""A fast path for the two hottest routes, ``/photos/<name>`` and ``/thumbs/<name>``.

A gallery page pulls dozens of thumbnails and every refresh a photo; through Flask's
full dispatch (session, Flask-Login's ORM user load, limiter, send_file) each one cost
about 4 ms, a tenth of what waitress can serve. This WSGI middleware answers only the
happy case itself: a GET or HEAD with a valid signed session whose user still has that
session version, for a photo (or an existing thumbnail) the store knows. Everything
else (no or expired session, remember-me only, unknown names, missing thumbnails, other
methods, a database it cannot read) falls through to Flask unchanged, so redirects, 404
pages, localisation and thumbnail creation stay in one place.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from email.utils import formatdate
from pathlib import Path
from typing import TYPE_CHECKING

from flask import Flask
from itsdangerous import BadSignature
from werkzeug.http import is_resource_modified, parse_cookie

from camera.store import PhotoStore
from webapp.requestlog import log_request
from webapp.security import drop_unparseable_dates, leading_doubled_slash, security_headers
from webapp.sessions import VersionReader, current_user_id

if TYPE_CHECKING:
    from webapp.metrics import Metrics

PREFIXES = {"/photos/": False, "/thumbs/": True}  # route -> is a thumbnail
# What /metrics counts these requests under: Flask's endpoint names for the same routes.
ENDPOINTS = {False: "gallery.photo_bytes", True: "gallery.thumb_bytes"}
# Requests these headers shape (ranges, preconditions) are Flask's: send_file answers
# them (206, 412) and the fast path keeps to the common case.
_FLASK_ONLY = ("HTTP_RANGE", "HTTP_IF_RANGE", "HTTP_IF_MATCH", "HTTP_IF_UNMODIFIED_SINCE")
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
        self._seen: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()
        self.generation = 0  # bumped by clear(): a check begun before it is not cached

    def get(self, cookie: str) -> int | None:
        hit = self._seen.get(cookie)
        return hit[0] if hit and hit[1] > time.monotonic() else None

    def put(self, cookie: str, user_id: int, generation: int) -> None:
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
    """Wraps ``app.wsgi_app``; serves authenticated photo bytes without Flask dispatch.

    Every decision is made by the helpers Flask's own path uses (werkzeug's cookie
    parsing and conditional-GET check, the session serializer, ``webapp.sessions``, the
    store's ``locate``), so on every input the answer is Flask's or Flask gives it.
    """

    def __init__(
        self,
        app: Flask,
        store: PhotoStore,
        database: Path,
        sessions: SessionCache,
        metrics: Metrics | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.next = app.wsgi_app
        self.store = store
        self.versions = VersionReader(database)
        self.sessions = sessions
        self.cookie = app.config["SESSION_COOKIE_NAME"]
        self.serializer = app.session_interface.get_signing_serializer(app)
        self.max_age = int(app.permanent_session_lifetime.total_seconds())
        self.token_age = app.config["REMEMBER_COOKIE_DURATION"].total_seconds()  # as auth.py
        self.headers = security_headers(app.config["HSTS"])
        self.files = FileCache()

    def _user(self, environ) -> int | None:
        """The user id of a valid, current session cookie, or None."""
        # As Flask reads it: werkzeug's parser, the first cookie of the name.
        value = parse_cookie(environ).get(self.cookie)
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
        try:
            user_id = current_user_id(token, self.versions, self.token_age)
        except sqlite3.Error:  # locked, missing, unreadable: Flask's path says why
            return None
        if user_id is not None:
            self.sessions.put(value, user_id, generation)
        return user_id

    def __call__(self, environ, start_response):
        path_info = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD")
        thumb = PREFIXES.get(path_info[:8])
        if (
            thumb is None
            or method not in ("GET", "HEAD")
            or any(map(environ.get, _FLASK_ONLY))
            or leading_doubled_slash(environ)  # //photos/NAME: Flask's 404
        ):
            return self.next(environ, start_response)
        started = time.perf_counter()
        user = self._user(environ)
        name = path_info[8:]
        path = self.store.locate(name, thumb=thumb) if user is not None else None
        if thumb and path is not None and not os.path.exists(self.store.locate(name) or ""):
            path = None  # a thumbnail lives and dies with its photo: Flask's 404
        found = self.files.get(path) if path is not None else None
        if found is None:  # not logged in, not a photo name, or no such file: Flask's case
            return self.next(environ, start_response)
        body, etag, modified = found
        drop_unparseable_dates(environ)
        headers = [
            ("ETag", etag),
            ("Cache-Control", CACHE_CONTROL),
            ("Vary", "Cookie"),  # as Flask says of any response that read the session
            # As Flask's send_file: ranges are served (by Flask: see _FLASK_ONLY).
            ("Accept-Ranges", "bytes"),
            ("Content-Disposition", f"inline; filename={name}"),
            *self.headers,
        ]
        if not is_resource_modified(environ, etag, last_modified=modified):
            status, body = "304 NOT MODIFIED", b""
        else:
            status = "200 OK"
            headers += [
                ("Last-Modified", modified),
                ("Content-Type", "image/jpeg"),
                ("Content-Length", str(len(body))),
            ]
            if method == "HEAD":
                body = b""
        start_response(status, headers)
        log_request(method, path_info, status[:3], started, user)
        if self.metrics is not None:
            self.metrics.request(ENDPOINTS[thumb], status[:3])
        return [body]
