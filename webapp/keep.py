"""Keeping photos past the retention window, the kept list, and photo downloads.

Keeping and un-keeping are POSTs with the CSRF token (CSRFProtect checks every POST);
every route needs a login. A name goes through the store's parser before anything
else, so a hostile name is a 404 and never a path.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime

from flask import Blueprint, abort, flash, redirect, render_template, send_file, url_for
from flask_babel import get_timezone
from flask_babel import gettext as _
from flask_login import login_required

from camera.errors import KeepLimitReached, PhotoNotFound
from camera.store import parse_name
from webapp import state
from webapp.i18n import ago, when

bp = Blueprint("keep", __name__)
_UNSAFE = re.compile(r"[^\w .-]+")


@bp.before_request
@login_required
def require_login() -> None:
    """Every route of this blueprint is for owners only."""


@bp.app_context_processor
def keep_globals() -> dict:
    """What the photo page asks: is this photo kept, and is there room to keep one more."""
    kept = state().kept
    return {"is_kept": kept.is_kept, "keep_room": lambda: kept.count() < kept.limit}


def safe_pet(pet: str) -> str:
    """The pet's name as part of a file name.

    Anything but letters, digits, space, dot and dash becomes a dash (no quote, slash or
    control character reaches the header); werkzeug's ``send_file`` adds an ASCII
    ``filename`` and an RFC 6266 ``filename*`` for a name such as "Bärli"."""
    return _UNSAFE.sub("-", unicodedata.normalize("NFC", pet)).strip(" .-")[:40] or "pet"


def download_name(pet: str, taken_at: float) -> str:
    """``Pucci 2026-11-26 08.30.00.jpg``: the pet and the local capture time."""
    local = datetime.fromtimestamp(taken_at, UTC).astimezone(get_timezone())
    return f"{safe_pet(pet)} {local:%Y-%m-%d %H.%M.%S}.jpg"


def _existing(name: str):
    photo = parse_name(name)
    if photo is None or not state().store.exists(name):
        abort(404)
    return photo


@bp.route("/photo/<name>/download")
def download(name: str):
    """The photo as a file to save, named after the pet and the time."""
    current = state()
    photo = _existing(name)
    try:
        path = current.store.path(name)
    except PhotoNotFound:
        abort(404)
    response = send_file(
        path,
        mimetype="image/jpeg",
        as_attachment=True,
        download_name=download_name(current.config.pet.name, photo.taken_at),
    )
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.route("/photo/<name>/keep", methods=["POST"])
def keep(name: str):
    """Keep a photo past the retention window (a 404 if retention deleted it meanwhile)."""
    current = state()
    try:
        current.kept.keep(name, current.store.exists)
    except PhotoNotFound:
        abort(404)
    except KeepLimitReached:
        flash(
            _(
                "%(limit)d photos are kept already, the most allowed: un-keep one first.",
                limit=current.kept.limit,
            ),
            "error",
        )
    else:
        flash(_("Kept: this photo stays after the others are deleted."), "info")
    return redirect(url_for("gallery.view", name=name), code=303)


@bp.route("/photo/<name>/unkeep", methods=["POST"])
def unkeep(name: str):
    """Return a photo to normal retention."""
    current = state()
    if parse_name(name) is None:
        abort(404)
    try:
        current.kept.unkeep(name, current.store.exists)
    except PhotoNotFound:
        abort(404)
    flash(_("No longer kept: this photo is deleted with the others when it is old."), "info")
    return redirect(url_for("gallery.view", name=name), code=303)


@bp.route("/kept")
def kept():
    """Every kept photo, newest first, with how many more may be kept."""
    current = state()
    names = [n for n in reversed(current.kept.names()) if current.store.exists(n)]
    photos = [parse_name(n) for n in names]
    return render_template("kept.html", photos=photos, limit=current.kept.limit, when=when, ago=ago)
