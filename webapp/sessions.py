"""What a login session carries and when it still counts, for Flask-Login and the fast path.

A session (and a remember-me cookie) carries ``"<user id>:<session version>"``. The
version goes up at logout and password change, so every session issued before ends. The
Flask user loader and the photo fast path both call :func:`current_user_id`, with their
own way of reading a version: the ORM inside a request, :class:`VersionReader` (one
read-only SQLite connection per thread, no ORM) on the fast path.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from webapp.models import User

# Built from the model, so the table and column names live in models.py alone.
_VERSION_SQL = (
    f"SELECT {User.session_version.key} FROM {User.__table__.name} WHERE {User.id.key} = ?"
)


def make_token(user_id: int, version: int) -> str:
    """The value a session carries for this user at this session version."""
    return f"{user_id}:{version}"


def parse_token(token: object) -> tuple[int, int] | None:
    """(user id, version) from a session's token, or None if it is not one."""
    user_id, _sep, version = str(token or "").partition(":")
    if not (user_id.isdigit() and version.isdigit()):
        return None
    return int(user_id), int(version)


def current_user_id(token: object, read_version: Callable[[int], int | None]) -> int | None:
    """The user id a token stands for, if that user exists and its version is current."""
    parsed = parse_token(token)
    if parsed is None:
        return None
    user_id, version = parsed
    return user_id if read_version(user_id) == version else None


class VersionReader:
    """Reads a user's session version straight from SQLite, one connection per thread."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self._local = threading.local()

    def __call__(self, user_id: int) -> int | None:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                f"file:{self.database}?mode=ro", uri=True, check_same_thread=False
            )
            self._local.conn = conn
        row = conn.execute(_VERSION_SQL, (user_id,)).fetchone()
        return row[0] if row else None
