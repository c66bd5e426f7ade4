"""The still-image API for other clients: the newest photo, and when it was taken.

Only a ``photo`` token opens these two routes (``webapp.tokens``), and a token opens
nothing else: no page, no older photo, no thumbnail, no live view. A session cookie
does not open them either. Refusals are rate limited per client as failed logins are
(``api.limit``, counted only on a 401). They are served through Flask, not the photo
fast path (``webapp.fastpath``): a dashboard asks every few seconds, not dozens of times
a page, and the token check is one indexed query.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from flask import Blueprint, current_app, jsonify, send_file
from flask_babel import gettext as _

from camera.errors import PhotoNotFound
from webapp import state, tokens
from webapp.extensions import limiter
from webapp.fastpath import CACHE_CONTROL, etag_for

bp = Blueprint("api", __name__)


def _refused(response) -> bool:
    return response.status_code == 401


# One budget for every route a token opens (these and /metrics), per client address.
token_limit = limiter.shared_limit(
    lambda: current_app.config["API_LIMIT"], scope="api-token", deduct_when=_refused
)


def _error(status: int, message: str):
    """A short JSON answer a program reads, never cached."""
    response = jsonify(error=message)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def unauthorized():
    """401, with the challenge a client needs to know a token is asked for."""
    response = _error(401, _("A valid token is needed: see 'puccicam token add'."))
    response.headers["WWW-Authenticate"] = 'Bearer realm="puccicam"'
    return response


@bp.route("/api/latest.jpg")
@token_limit
def latest_jpg():
    """The newest photo's JPEG; revalidated on every use (a 304 when it is unchanged)."""
    # In the view, not a before_request hook: the limiter checks a route's limit in its
    # decorator, which a hook's early answer would skip.
    if tokens.authorized("photo") is None:
        return unauthorized()
    store = state().store
    latest = store.latest()
    try:
        path = store.path(latest.name) if latest is not None else None
    except PhotoNotFound:  # pruned between the listing and now
        path = None
    if path is None:
        return _error(404, _("There is no photo yet."))
    response = send_file(path, mimetype="image/jpeg", etag=etag_for(path.stat()))
    response.headers["Cache-Control"] = CACHE_CONTROL
    return response


@bp.route("/api/latest.json")
@token_limit
def latest_info():
    """The newest photo's name, capture time (UTC, ISO 8601) and age in seconds."""
    if tokens.authorized("photo") is None:
        return unauthorized()
    latest = state().store.latest()
    if latest is None:
        return _error(404, _("There is no photo yet."))
    taken = datetime.fromtimestamp(latest.taken_at, UTC)
    response = jsonify(
        name=latest.name,
        taken=taken.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        age_seconds=round(max(0.0, time.time() - latest.taken_at), 3),
    )
    response.headers["Cache-Control"] = "no-store"
    return response
