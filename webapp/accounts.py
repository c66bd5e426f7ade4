"""Owner accounts: creation, passwords and checks, shared by the CLI and the login view.

Passwords are bcrypt hashes. bcrypt reads at most 72 bytes and bcrypt 5 raises past
that, so new passwords must be 8 to 72 UTF-8 bytes, and a longer one typed at login is
simply a wrong password. Unknown users are checked against a dummy hash so that they
take as long as known ones.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import bcrypt
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError

from camera.errors import DataDirError
from webapp.extensions import db
from webapp.models import User

log = logging.getLogger(__name__)

MIN_PASSWORD_BYTES = 8
MAX_PASSWORD_BYTES = 72
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# Only the shape: something, an @, a host. Who reads it is a person, not a mailer.
_EMAIL = re.compile(r"^[^@\s\x00-\x1f]{1,64}@[^@\s\x00-\x1f]{1,189}$")


class AccountError(Exception):
    """An account operation was refused; the message says why and what to do."""


def check_new_account(username: str, email: str | None) -> None:
    """:raises AccountError: the name (or e-mail address) is not one an account may have.

    Checked by ``Accounts.add`` and, before anything is created, by ``puccicam user add``.
    """
    if not _USERNAME.match(username):
        raise AccountError(
            "a username is 1 to 64 letters, digits, dots, dashes or underscores, "
            "starting with a letter or digit"
        )
    if email is not None and not _EMAIL.match(email):
        raise AccountError(f"{email!r} is not an e-mail address (name@host, at most 254 bytes)")


class DatabaseUnusable(DataDirError):
    """The accounts database cannot be used: not an SQLite file, read-only, locked."""


@contextlib.contextmanager
def usable_database(path: Path) -> Iterator[None]:
    """Turn a database failure inside into one :class:`DatabaseUnusable` naming the file,
    for the app's start and the ``user`` commands alike."""
    try:
        yield
    except DBAPIError as exc:
        raise DatabaseUnusable(f"database {path} is not usable: {exc.orig}") from exc


def check_password_policy(password: str) -> None:
    """:raises AccountError: the password is too short or too long for bcrypt."""
    size = len(password.encode("utf-8"))
    if size < MIN_PASSWORD_BYTES:
        raise AccountError(f"the password must be at least {MIN_PASSWORD_BYTES} bytes long")
    if size > MAX_PASSWORD_BYTES:
        raise AccountError(
            f"the password must be at most {MAX_PASSWORD_BYTES} bytes (UTF-8): "
            "bcrypt ignores anything longer"
        )


def hash_password(password: str, rounds: int) -> bytes:
    check_password_policy(password)
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds))


def _matches(password: str, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password.encode("utf-8"), hashed)
    except ValueError:  # longer than 72 bytes (bcrypt 5), or a malformed hash
        return False


class Accounts:
    """Account operations on the app's database."""

    def __init__(self, rounds: int, on_sessions_ended: Callable[[], None] = lambda: None) -> None:
        self.rounds = rounds
        self.on_sessions_ended = on_sessions_ended
        # Same cost as real hashes, so an unknown name costs the same time as a known one.
        self._dummy = bcrypt.hashpw(b"no such user, no such password", bcrypt.gensalt(rounds))

    @staticmethod
    def find(username: str) -> User | None:
        """The account of that name, whatever its case (``Alice`` finds ``alice``).

        An exact match comes first: a database made before names were unique regardless
        of case may hold both spellings. Names are ASCII: only ASCII letters fold (Python
        folds the Kelvin sign to "k", SQLite's lower() does not)."""
        if not username.isascii():
            return None
        query = (
            select(User)
            .where(func.lower(User.username) == username.lower())
            .order_by(User.username != username, User.id)
            .limit(1)
        )
        return db.session.execute(query).scalar_one_or_none()

    @staticmethod
    def all() -> list[User]:
        return list(db.session.execute(select(User).order_by(User.username)).scalars())

    @staticmethod
    def any() -> bool:
        return db.session.execute(select(User.id).limit(1)).first() is not None

    def add(self, username: str, password: str, email: str | None = None) -> User:
        check_new_account(username, email)
        existing = self.find(username)
        if existing is not None:
            raise AccountError(
                f"an account named {existing.username!r} already exists "
                "(names are the same whatever their case)"
            )
        user = User(
            username=username, email=email, password_hash=hash_password(password, self.rounds)
        )
        db.session.add(user)
        db.session.commit()
        log.info("account %s created", username)
        return user

    def remove(self, username: str) -> str:
        """Delete the account of that name in any case; returns the name as stored."""
        user = self._existing(username)
        stored = user.username
        db.session.delete(user)
        db.session.commit()
        self.on_sessions_ended()
        log.info("account %s removed", stored)
        return stored

    def set_password(self, username: str, password: str) -> str:
        """Change a password and end every session of that user; returns the name as
        stored."""
        user = self._existing(username)
        user.password_hash = hash_password(password, self.rounds)
        user.session_version += 1
        db.session.commit()
        self.on_sessions_ended()
        log.info("password of %s changed; its sessions ended", user.username)
        return user.username

    def verify(self, username: str, password: str) -> User | None:
        """The user if the password is right; None otherwise, in comparable time."""
        user = self.find(username) if _USERNAME.match(username or "") else None
        if user is None:
            _matches(password, self._dummy)
            return None
        return user if _matches(password, user.password_hash) else None

    def end_sessions(self, user: User) -> None:
        user.session_version += 1
        db.session.commit()
        self.on_sessions_ended()

    def _existing(self, username: str) -> User:
        user = self.find(username)
        if user is None:
            raise AccountError(f"there is no account named {username!r}")
        return user
