"""The tables: owners who may see the photos, and read-only tokens for other clients."""

from __future__ import annotations

from datetime import UTC, datetime

from flask_login import UserMixin
from sqlalchemy import Float, Index, Integer, LargeBinary, String, func
from sqlalchemy.orm import Mapped, mapped_column

from webapp.extensions import db


class User(UserMixin, db.Model):
    """An owner. ``session_version`` goes up at logout and password change, which ends
    every session and remember-me cookie issued before (they carry the old version).

    Usernames are unique whatever their case: ``alice`` and ``Alice`` are one name
    (the index on ``lower(username)``), shown as it was created."""

    __tablename__ = "user"
    # Never reuse a removed owner's id: its old cookies ("id:version:...") must stay dead.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    email: Mapped[str | None] = mapped_column(String(254))
    password_hash: Mapped[bytes] = mapped_column(LargeBinary(60), nullable=False)
    session_version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    created_at: Mapped[datetime] = mapped_column(default=lambda: datetime.now(UTC))

    def session_token(self) -> str:
        """A new token for a login now (Flask-Login's ``id_attribute``: see auth.py)."""
        from webapp.sessions import make_token

        return make_token(self.id, self.session_version)


# Made with a new database; in one made before, the check in ``Accounts.add`` keeps it so.
Index("ix_user_username_lower", func.lower(User.username), unique=True)


class ApiToken(db.Model):
    """A read-only token for other clients (``puccicam token``): only its SHA-256 digest
    is kept, so the database (or a backup of it) opens nothing.

    ``scope`` says what it opens, one thing each: ``photo`` (``/api/latest.jpg`` and
    ``.json``) or ``metrics`` (``/metrics``). Times are Unix seconds."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    digest: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True, nullable=False)
    scope: Mapped[str] = mapped_column(String(16), nullable=False, default="photo")
    created: Mapped[float] = mapped_column(Float, nullable=False)
    last_used: Mapped[float | None] = mapped_column(Float)


Index("ix_api_token_name_lower", func.lower(ApiToken.name), unique=True)
