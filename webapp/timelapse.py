"""The time-lapse page: the grabber's segments as one file, played in the page or saved.

Nothing is encoded here: the grabber keeps the segments up to date as photos arrive,
and the day's file is those segments joined (a byte copy, once per change; see
``camera.timelapse.day_file``), so the page answers at once at any time of day. A file
is replaced by a rename, and an open file keeps its bytes, so a download is never half
of two.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import UTC, datetime

from flask import Blueprint, abort, render_template, request, send_file
from flask_babel import get_timezone
from flask_login import login_required
from werkzeug.exceptions import RequestedRangeNotSatisfiable

from camera.errors import StorageError
from camera.timelapse import MANIFEST, day_file, manifest
from webapp import state
from webapp.i18n import ago, when
from webapp.keep import safe_pet

bp = Blueprint("timelapse", __name__)
log = logging.getLogger(__name__)


@bp.before_request
@login_required
def require_login() -> None:
    """Every route of this blueprint is for owners only."""


@bp.route("/timelapse")
def page():
    """The last day as a video, with a download link."""
    config = state().config
    built = None
    try:
        listed = manifest(config.timelapse_dir)
        if listed and listed[1]:
            built = (config.timelapse_dir / MANIFEST).stat().st_mtime
    except (StorageError, FileNotFoundError) as exc:
        log.error("time-lapse not shown: %s", exc)
    return render_template(
        "timelapse.html",
        built=built,
        enabled=config.timelapse.enabled,
        hours=config.storage.retention_hours,
        fps=config.timelapse.fps,
        when=when,
        ago=ago,
    )


def _send(as_attachment: bool):
    handle = None
    for _attempt in range(3):
        try:
            config = state().config
            floor = config.storage.min_free_mb + config.timelapse.margin_mb
            path = day_file(config.timelapse_dir, floor * 2**20)
        except StorageError as exc:
            log.error("time-lapse not served: %s", exc)
            abort(503)
        if path is None:
            abort(404)
        try:
            handle = open(path, "rb")  # noqa: SIM115 - send_file closes it when sent
            break
        except FileNotFoundError:  # replaced by a newer one just now: ask again
            continue
    if handle is None:
        abort(503)
    info = os.fstat(handle.fileno())  # the file opened, even if replaced since
    stamp = datetime.fromtimestamp(time.time(), UTC).astimezone(get_timezone())
    response = send_file(
        handle,
        mimetype="video/webm",
        as_attachment=as_attachment,
        download_name=f"{safe_pet(state().config.pet.name)} {stamp:%Y-%m-%d %H.%M}.webm",
        conditional=False,
        etag=f"{info.st_mtime_ns}-{info.st_size}",
        last_modified=info.st_mtime,
    )
    # send_file knows no length for an open file, so no ranges: browsers seek with them.
    response.content_length = info.st_size
    try:
        response = response.make_conditional(
            request.environ, accept_ranges=True, complete_length=info.st_size
        )
    except RequestedRangeNotSatisfiable:
        handle.close()
        raise
    response.headers["Cache-Control"] = "private, no-cache"
    return response


@bp.route("/timelapse.webm")
def video():
    """The file the page plays (byte ranges for seeking)."""
    return _send(as_attachment=False)


@bp.route("/timelapse/download")
def download():
    """The same file, to save."""
    return _send(as_attachment=True)
