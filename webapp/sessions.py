"""What a login session carries and when it still counts, for Flask-Login and the fast path.

A session and a remember-me cookie carry the same token,
``"<user id>:<session version>:<issued at>:<nonce>"``, made fresh at each login. It
counts while that user's version is unchanged (logout and password change bump it,
ending every session issued before) and for at most ``max_age`` seconds after it was
issued (``web.remember_days``), whatever the browser keeps. Flask-Login signs the
remember cookie (HMAC with the secret key) and Flask the session, so the token itself
needs no signature: this is Django's choice (signed, with a timestamp checked at the
server), not GitLab's table of tokens. The Flask user loader and the photo fast path
both call :func:`current_user_id`, with their own way of reading a version: the ORM
inside a request, :class:`VersionReader` (one read-only SQLite connection per thread,
no ORM) on the fast path.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from webapp.models import User

# Built from the model, so the table and column names live in models.py alone.
_VERSION_SQL = (
    f"SELECT {User.session_version.key} FROM {User.__table__.name} WHERE {User.id.key} = ?"
)


class Token(NamedTuple):
    user_id: int
    version: int
    issued: int


def _now() -> float:
    return time.time()


def make_token(user_id: int, version: int, issued: int | None = None) -> str:
    """A new token for this user at this session version, issued now.

    The nonce makes two logins in the same second differ: every login gets its own value.
    """
    issued = int(_now()) if issued is None else issued
    return f"{user_id}:{version}:{issued}:{secrets.token_hex(4)}"


def parse_token(token: object) -> Token | None:
    """(user id, version, issued) from a session's token, or None if it is not one."""
    parts = str(token or "").split(":")
    if len(parts) != 4 or not all(p.isdigit() and p.isascii() for p in parts[:3]):
        return None
    if len(parts[3]) != 8 or not all(c in "0123456789abcdef" for c in parts[3]):
        return None
    return Token(int(parts[0]), int(parts[1]), int(parts[2]))


def current_user_id(
    token: object, read_version: Callable[[int], int | None], max_age: float
) -> int | None:
    """The user id a token stands for, if it is younger than ``max_age`` seconds and
    that user exists at the token's version."""
    parsed = parse_token(token)
    if parsed is None or _now() - parsed.issued > max_age:
        return None
    return parsed.user_id if read_version(parsed.user_id) == parsed.version else None


class VersionReader:
    """Reads a user's session version straight from SQLite, one connection per thread.

    The URI comes from ``Path.as_uri()``, which percent-encodes ``#``, ``?`` and ``%``
    in the data dir's path (written by hand, ``/srv/cam#1/...`` opened another file).
    """

    def __init__(self, database: Path) -> None:
        self.uri = Path(database).absolute().as_uri() + "?mode=ro"
        self._local = threading.local()

    def __call__(self, user_id: int) -> int | None:
        """:raises sqlite3.Error: the database cannot be read (the caller falls back)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.uri, uri=True, check_same_thread=False)
            self._local.conn = conn
        row = conn.execute(_VERSION_SQL, (user_id,)).fetchone()
        return row[0] if row else None
