"""Read-only tokens for other clients: made and revoked by ``puccicam token``, checked
per request by the still-image API (``webapp.api``) and ``/metrics`` (``webapp.metrics``).

A token is 32 random bytes (``secrets.token_urlsafe``) behind a ``pcam_`` prefix that
secret scanners and people recognise. Only its SHA-256 digest is stored: a token has 256
bits of entropy, so a plain hash is as good as a slow one (bcrypt exists for passwords
people choose), and it lets a request find its token by digest in one indexed query.
The timing of that query depends on the digest, which a client cannot steer byte by
byte, never on how many bytes of the token it guessed right; the stored digest is then
compared once more with :func:`hmac.compare_digest`.

Nothing is cached: every request reads the table, so ``puccicam token revoke`` takes
effect on the next request, from another process, while the server runs.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from dataclasses import dataclass

from flask import request
from sqlalchemy import func, select

from webapp.accounts import AccountError
from webapp.extensions import db
from webapp.models import ApiToken

log = logging.getLogger(__name__)

PREFIX = "pcam_"
SCOPES = ("photo", "metrics")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# last_used is written at most this often: Home Assistant polls every 10 s, and a
# database write per poll would wear an SD card to say "just now" a little more exactly.
TOUCH_EVERY = 60.0
# Longer presented values are cut before hashing: a megabyte of "token" costs no more.
_LONGEST = 256


class TokenError(AccountError):
    """A token operation was refused; the message says why and what to do."""


@dataclass(frozen=True)
class TokenInfo:
    """What ``token list`` shows: never the token, which is not kept."""

    name: str
    scope: str
    created: float
    last_used: float | None


def digest(token: str) -> bytes:
    """The SHA-256 of a presented token, the key it is stored and looked up under."""
    raw = token[:_LONGEST].encode("utf-8", "surrogatepass")
    return hashlib.sha256(raw).digest()


def check_name(name: str) -> None:
    """:raises TokenError: ``name`` is not a name a token may have."""
    if not _NAME.match(name):
        raise TokenError(
            "a token name is 1 to 64 letters, digits, dots, dashes or underscores, "
            "starting with a letter or digit (say 'home-assistant')"
        )


def _find(name: str) -> ApiToken | None:
    if not name.isascii():
        return None
    query = select(ApiToken).where(func.lower(ApiToken.name) == name.lower())
    return db.session.execute(query).scalar_one_or_none()


def add(name: str, scope: str = "photo") -> str:
    """Make a token; returns it, the only time it is ever seen.

    :raises TokenError: a bad or taken name.
    """
    check_name(name)
    if scope not in SCOPES:
        raise TokenError(f"unknown token scope {scope!r}; one of {', '.join(SCOPES)}")
    existing = _find(name)
    if existing is not None:
        raise TokenError(
            f"a token named {existing.name!r} already exists (names are the same whatever "
            f"their case): revoke it first with 'puccicam token revoke {existing.name}'"
        )
    token = PREFIX + secrets.token_urlsafe(32)
    db.session.add(ApiToken(name=name, digest=digest(token), scope=scope, created=time.time()))
    db.session.commit()
    log.info("token %s (%s) created", name, scope)
    return token


def all_tokens() -> list[TokenInfo]:
    rows = db.session.execute(select(ApiToken).order_by(ApiToken.name)).scalars()
    return [TokenInfo(t.name, t.scope, t.created, t.last_used) for t in rows]


def revoke(name: str) -> str:
    """Delete the token of that name; returns the name as stored.

    :raises TokenError: there is none.
    """
    token = _find(name)
    if token is None:
        raise TokenError(f"there is no token named {name!r}: 'puccicam token list' shows the names")
    stored = token.name
    db.session.delete(token)
    db.session.commit()
    log.info("token %s revoked", stored)
    return stored


def presented() -> str | None:
    """The token a request carries: ``Authorization: Bearer``, or the password of
    ``Authorization: Basic`` (for clients that send only that, Home Assistant's camera),
    or ``?token=`` for clients that send no header at all."""
    auth = request.authorization
    if auth is not None and auth.type == "bearer":
        return auth.token or None
    if auth is not None and auth.type == "basic":
        return auth.password or None
    return request.args.get("token") or None


def authorized(scope: str) -> ApiToken | None:
    """The token of this request if it exists and opens ``scope``, else None (logged
    with the client's address, never the token). Its last use is recorded."""
    token = presented()
    found = None
    if token is not None:
        wanted = digest(token)
        query = select(ApiToken).where(ApiToken.digest == wanted)
        found = db.session.execute(query).scalar_one_or_none()
        if found is not None and not hmac.compare_digest(found.digest, wanted):
            found = None
    if found is None or found.scope != scope:
        why = "no token" if token is None else "an unknown or revoked token"
        if found is not None:
            why = f"token {found.name}, which opens {found.scope} only"
        log.warning("%s refused from %s: %s", request.path, request.remote_addr, why)
        return None
    now = time.time()
    if found.last_used is None or now - found.last_used >= TOUCH_EVERY:
        found.last_used = now
        db.session.commit()
    return found
