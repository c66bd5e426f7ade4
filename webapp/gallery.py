"""The owners' side: the gallery, single photos, photo and thumbnail bytes, status.

Every route here needs a login. Photo names go through the store's name parser and
nothing else: a name the store would not write is a 404, and nothing a client sends
becomes a filesystem path.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from itertools import groupby, islice

from flask import Blueprint, abort, jsonify, render_template, request, send_file, url_for
from flask_babel import format_datetime, get_timezone
from flask_login import login_required

from camera.errors import PhotoNotFound
from camera.meta import MOVING
from camera.status import read_status
from camera.store import Photo, parse_name
from webapp import state
from webapp.fastpath import CACHE_CONTROL, etag_for
from webapp.health import health
from webapp.i18n import ago, when
from webapp.thumbs import thumbnail

bp = Blueprint("gallery", __name__)
PAGE = 96  # thumbnails per gallery page
STEP = 0.0005  # half a millisecond: the gap between a cursor and the next photo name


@bp.before_request
@login_required
def require_login() -> None:
    """Every route of this blueprint is for owners only."""


def _photo_or_404(name: str) -> Photo:
    photo = parse_name(name)
    if photo is None:
        abort(404)
    return photo


def _send(path):
    """The file with the same validators and caching as the fast path's.

    One conditional check, send_file's own, with our ETag: If-None-Match then takes
    precedence over If-Modified-Since, as RFC 9110 says.
    """
    response = send_file(path, mimetype="image/jpeg", etag=etag_for(path.stat()))
    response.headers["Cache-Control"] = CACHE_CONTROL
    return response


def _timeline(since: float, now: float, interval: float) -> list[dict]:
    """24 hourly cells, each saying how full of photos it is (empty cells are gaps) and
    how much moved in it (the highest activity of its photos)."""
    counts = state().store.hour_counts(since, now)
    activity = state().store.hour_activity(since, now)
    expected = max(1.0, 3600 / interval)
    cells = []
    start = int(since // 3600) * 3600
    for hour in range(start, int(now) + 1, 3600):
        count = counts.get(hour, 0)
        peak, moving = activity.get(hour, (0, 0))
        cells.append(
            {
                "label": format_datetime(datetime.fromtimestamp(hour, UTC), "HH:mm"),
                "count": count,
                "fill": min(100, round(100 * count / expected)),
                "activity": peak,
                "moving": moving,
            }
        )
    return cells[-24:]


@bp.route("/gallery")
def index():
    """The newest photo large, and the last day's thumbnails grouped by hour."""
    current = state()
    store = current.store
    now = time.time()
    since = now - current.config.storage.retention_hours * 3600
    latest = store.latest()
    before = request.args.get("before")
    after = request.args.get("after")
    # ?moving=1: only photos with movement (camera.meta.PhotoMeta.moving: a motion photo,
    # or activity at least camera.meta.MOVING).
    moving = request.args.get("moving") == "1"

    def shown(photos):
        return (p for p in photos if store.meta(p.name).moving) if moving else photos

    if after:
        cursor = _photo_or_404(after)
        newer = list(islice(shown(store.photos(since=cursor.taken_at + STEP)), PAGE + 1))
        page = newer[:PAGE][::-1]
        has_newer = len(newer) > PAGE
        has_older = True
    else:
        until = _photo_or_404(before).taken_at - STEP if before else None
        older = list(
            islice(shown(store.photos(since=since, until=until, newest_first=True)), PAGE + 1)
        )
        page = older[:PAGE]
        has_older = len(older) > PAGE
        has_newer = bool(before)
    # Up to 96 thumbnails: one Babel call per hour, plain strftime per photo (24-hour
    # clock in both languages), and URLs by concatenation (names are [0-9TZ.jpg] only).
    zone = get_timezone()
    local = [(p.name, datetime.fromtimestamp(p.taken_at, zone)) for p in page]
    hours = [
        (
            format_datetime(group[0][1], "EEE HH:00"),
            [(n, t.strftime("%H:%M"), store.meta(n).kind == "motion") for n, t in group],
        )
        for _hour, grouped in groupby(local, key=lambda item: item[1].strftime("%Y%m%d%H"))
        for group in [list(grouped)]
    ]
    checked = health(latest)
    return render_template(
        "gallery.html",
        latest=latest,
        hours=hours,
        older=page[-1].name if has_older and page else None,
        newer=page[0].name if has_newer and page else None,
        timeline=_timeline(since, now, checked["interval"]),
        health=checked,
        when=when,
        ago=ago,
        refresh_ms=int(current.config.web.refresh_seconds * 1000),
        moving=moving,
        moving_threshold=MOVING,
        view_prefix=url_for("gallery.view", name="x")[:-1],
        thumb_prefix=url_for("gallery.thumb_bytes", name="x")[:-1],
    )


@bp.route("/photo/<name>")
def view(name: str):
    """One photo with links to the one before and the one after."""
    store = state().store
    photo = _photo_or_404(name)
    try:
        store.path(name)
    except PhotoNotFound:
        abort(404)
    older = next(store.photos(until=photo.taken_at - STEP, newest_first=True), None)
    newer = next(store.photos(since=photo.taken_at + STEP), None)
    return render_template("photo.html", photo=photo, older=older, newer=newer, when=when, ago=ago)


@bp.route("/photos/<name>")
def photo_bytes(name: str):
    """The JPEG of one photo, cacheable by the owner's browser only."""
    try:
        return _send(state().store.path(name))
    except PhotoNotFound:
        abort(404)


@bp.route("/thumbs/<name>")
def thumb_bytes(name: str):
    """A photo's thumbnail, made on first request and kept."""
    current = state()
    try:
        return _send(thumbnail(current.store, name, current.config.web.thumb_width))
    except PhotoNotFound:
        abort(404)


@bp.route("/api/latest")
def latest_json():
    """What the gallery page polls to swap in a new photo without reloading."""
    latest = state().store.latest()
    checked = health(latest)
    body = {"offline": checked["offline"], "late": checked["late"], "name": None}
    if latest is not None:
        body.update(
            name=latest.name,
            photo=url_for("gallery.photo_bytes", name=latest.name),
            page=url_for("gallery.view", name=latest.name),
            taken=when(latest.taken_at),
            ago=ago(latest.taken_at),
        )
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/status")
def status():
    """The grabber's status file, for the owner."""
    current = state()
    return render_template(
        "status.html",
        status=read_status(current.config.status_path),
        latest=current.store.latest(),
        when=when,
        ago=ago,
    )
