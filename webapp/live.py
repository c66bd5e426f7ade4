"""Live view for owners: the grabber's frames as an MJPEG stream an ``<img>`` shows.

The web app never opens the camera: each stream is one connection to the grabber's live
socket (``camera.live``), which makes the grabber stream while anyone watches. Frames
are the camera's own JPEG bytes, passed through as ``multipart/x-mixed-replace``.

A stream holds one waitress worker thread for as long as it runs, so the server gets
``live.max_viewers`` threads on top of ``web.threads`` (``webapp.server``): at most that
many streams run, one more gets a clear 503 at once, and photos, the gallery and login
keep their own threads. A stream ends when the viewer leaves (waitress reports the
socket closed, or the guard a client that stopped reading), when the session ends
(checked every second, so a logout or ``puccicam user passwd`` elsewhere ends it within
2 s), or after ``live.max_minutes``; each end is logged with its reason.
"""

from __future__ import annotations

import logging
import socket
import sqlite3
import threading
import time
from collections import deque
from pathlib import Path

import cv2
import numpy as np
from flask import (
    Blueprint,
    Response,
    abort,
    jsonify,
    render_template,
    request,
    session,
)
from flask_login import current_user, login_required

from camera.imaging import encode
from camera.live import FRAME, HELLO, MAX_MESSAGE, decode
from webapp import state
from webapp.sessions import VersionReader, current_user_id

log = logging.getLogger(__name__)
bp = Blueprint("live", __name__)

BOUNDARY = b"frame"
RECONNECT_SECONDS = 1.0
SESSION_CHECK_SECONDS = 1.0
SILENT_SECONDS = 5.0  # no frame for this long after the first: show the camera as offline


def offline_jpeg(width: int = 320, height: int = 240) -> bytes:
    """A dark frame with a crossed-out camera: shown instead of a frozen picture."""
    image = np.full((height, width, 3), 40, np.uint8)
    cx, cy = width // 2, height // 2
    grey = (150, 150, 150)
    cv2.rectangle(image, (cx - 40, cy - 25), (cx + 25, cy + 25), grey, 3)
    cv2.fillConvexPoly(
        image,
        np.array([(cx + 25, cy - 5), (cx + 45, cy - 20), (cx + 45, cy + 20), (cx + 25, cy + 5)]),
        grey,
    )
    cv2.line(image, (cx - 55, cy + 40), (cx + 55, cy - 40), (60, 60, 220), 4)
    return encode(image, 70)


def _part(jpeg: bytes, taken: float | None = None) -> bytes:
    """One multipart part; ``X-Timestamp`` is when the grabber read the frame (epoch s),
    for latency measurements (benchmarks/bench_live.py); browsers ignore it."""
    stamp = b"X-Timestamp: %.6f\r\n" % taken if taken else b""
    head = b"--%s\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n%s\r\n" % (
        BOUNDARY,
        len(jpeg),
        stamp,
    )
    return head + jpeg + b"\r\n"


class LiveHub:
    """The web process's side: viewer slots, the grabber's socket, what the page shows."""

    def __init__(
        self,
        socket_path: Path,
        database: Path,
        max_viewers: int,
        max_minutes: float,
        token_age: float,
    ):
        self.socket_path = socket_path
        self.versions = VersionReader(database)
        self.token_age = token_age  # a session older than this has ended (webapp/sessions.py)
        self.max_viewers = max_viewers
        self.max_seconds = max_minutes * 60
        self.offline = offline_jpeg()
        self._lock = threading.Lock()
        self.streams = 0
        self.online: bool | None = None  # None: no stream has heard from the grabber yet
        self._frames: deque[float] = deque(maxlen=1024)  # 3 s of 10 viewers at 30 fps

    def acquire(self) -> bool:
        with self._lock:
            if self.streams >= self.max_viewers:
                return False
            self.streams += 1
            return True

    def release(self) -> None:
        with self._lock:
            self.streams -= 1

    def frame_sent(self, now: float) -> None:
        self._frames.append(now)

    def fps(self) -> float:
        """Frames per second each viewer gets, over the last few seconds."""
        now = time.monotonic()
        recent = [t for t in list(self._frames) if now - t < 3.0]
        streams = max(1, self.streams)
        return round(len(recent) / 3.0 / streams, 1) if recent else 0.0

    def connect(self) -> socket.socket | None:
        """A connection to the grabber that has said WATCH, or None if it is not there."""
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        conn.settimeout(1.0)
        try:
            conn.connect(str(self.socket_path))
            conn.send(HELLO)
        except OSError as exc:
            conn.close()
            if self.online is not False:
                log.warning(
                    "live view: the grabber is not reachable at %s (%s)",
                    self.socket_path,
                    exc.strerror or exc,
                )
            self.online = False
            return None
        return conn

    def frames(self, token: object, disconnected, started: float):
        """The multipart body of one stream; the generator's end is the stream's end.

        The slot is released by the response's close (``stream``), which runs even when
        this generator never starts (a HEAD request)."""
        viewer = _Viewer(self, token, started)
        reason = "viewer left"
        try:
            while not disconnected():
                ended = viewer.ended()
                if ended:
                    reason = ended
                    break
                shown = viewer.next_jpeg()
                if shown is not None:
                    yield _part(*shown)
        finally:
            viewer.close()
            log.info(
                "live stream of user %s ended: %s, after %.0f s and %d frame(s)",
                str(token).partition(":")[0],
                reason,
                time.monotonic() - started,
                viewer.sent,
            )


class _Viewer:
    """One stream's connection to the grabber and what it has seen."""

    def __init__(self, hub: LiveHub, token: object, started: float) -> None:
        self.hub = hub
        self.token = token
        self.started = started
        self.conn: socket.socket | None = None
        self.checked = self.last_frame = self.tried = 0.0
        self.sent = 0

    def ended(self) -> str | None:
        """Why this stream must end now, or None."""
        now = time.monotonic()
        if now - self.started >= self.hub.max_seconds:
            return "time limit"
        if now - self.checked >= SESSION_CHECK_SECONDS:
            self.checked = now
            try:
                current = current_user_id(self.token, self.hub.versions, self.hub.token_age)
            except sqlite3.Error as exc:  # cannot tell: end it rather than stream unchecked
                return f"session not checked ({exc})"
            if current is None:
                return "session ended"
        return None

    def next_jpeg(self) -> tuple[bytes, float | None] | None:
        """The next picture to show and when it was read: a frame, the offline picture, or
        None (nothing yet)."""
        hub = self.hub
        if self.conn is None:
            # Once a second at most; the first try at once, so the page shows something.
            time.sleep(max(0.0, self.tried + RECONNECT_SECONDS - time.monotonic()))
            self.tried = time.monotonic()
            self.conn = hub.connect()
            if self.conn is None:
                return hub.offline, None
        try:
            message: bytes | None = self.conn.recv(MAX_MESSAGE + 64)
        except TimeoutError:
            message = None
        except OSError:
            message = b""
        if message == b"":  # the grabber went away (a restart): reconnect
            self.close()
            return None
        try:
            kind, taken, payload = decode(message) if message else (None, 0.0, b"")
        except ValueError:
            log.warning("live view: dropped a malformed message from the grabber")
            kind = None
        now = time.monotonic()
        if kind == FRAME:
            hub.online = True
            self.last_frame = now
            hub.frame_sent(now)
            self.sent += 1
            return payload, taken
        if kind is not None or (self.last_frame and now - self.last_frame > SILENT_SECONDS):
            hub.online = False  # the grabber says the camera is gone, or it fell silent
            self.last_frame = now
            return hub.offline, None
        return None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def hub() -> LiveHub:
    return state().live


@bp.before_request
@login_required
def require_login() -> None:
    """Live view is for owners only, exactly like the photos."""
    if hub() is None:
        abort(404)


@bp.route("/live")
def page():
    """The live page: the stream, the pet's name, a live badge, the frame rate."""
    current = hub()
    full = current.streams >= current.max_viewers
    return (
        render_template(
            "live.html",
            full=full,
            max_viewers=current.max_viewers,
            max_minutes=current.max_seconds / 60,
        ),
        503 if full else 200,
    )


@bp.route("/live/stream")
def stream():
    """The MJPEG stream; one over ``live.max_viewers`` is refused at once."""
    current = hub()
    if not current.acquire():
        log.warning(
            "live stream refused for user %s: %d already running (cap)",
            current_user.id,
            current.max_viewers,
        )
        abort(503)
    log.info("live stream started for user %s from %s", current_user.id, request.remote_addr)
    disconnected = request.environ.get("waitress.client_disconnected", lambda: False)
    # The session's own token (webapp/sessions.py), checked again every second.
    body = current.frames(session.get("_user_id"), disconnected, time.monotonic())
    response = Response(body, mimetype=f"multipart/x-mixed-replace; boundary={BOUNDARY.decode()}")
    response.call_on_close(current.release)  # the stream's end, HEAD requests included
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/live/status")
def status():
    """What the live page polls: online or not, frames per second, viewers."""
    current = hub()
    response = jsonify(
        online=current.online,
        fps=current.fps(),
        viewers=current.streams,
        max_viewers=current.max_viewers,
    )
    response.headers["Cache-Control"] = "no-store"
    return response
