"""The web gallery: a public pet page, and behind a login the photos of the last day.

``create_app`` is the factory; everything it needs comes from the one puccicam
:class:`~puccicam.config.Config`, and all state (SQLite file, secret key, photos,
thumbnails) lives under its data dir, which is never inside a static folder.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from babel.dates import get_timezone as babel_timezone
from flask import Flask, current_app, g, request
from flask_babel import get_locale
from flask_login import current_user
from sqlalchemy.engine import URL
from werkzeug.datastructures import ImmutableDict
from werkzeug.routing import Map

from camera.errors import DataDirError
from camera.keep import KeptPhotos
from camera.store import PhotoStore
from puccicam.config import Config, load_config
from puccicam.wiring import make_kept, make_store
from webapp.accounts import Accounts, usable_database
from webapp.extensions import babel, csrf, db, limiter, login_manager
from webapp.fastpath import PhotoFastPath, SessionCache
from webapp.i18n import LANGUAGES, select_locale
from webapp.requestlog import log_request
from webapp.security import (
    HostGuard,
    SessionInterface,
    add_security_headers,
    here,
    load_secret_key,
    refuse_leading_doubled_slash,
    refuse_nameless_fields,
    refuse_undecodable_query,
)

if TYPE_CHECKING:
    from webapp.live import LiveHub
    from webapp.metrics import Metrics

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent
TEMPLATES = ROOT.parent / "templates"


@dataclass
class State:
    """What the views share: the config, the photo store and the accounts."""

    config: Config
    store: PhotoStore
    accounts: Accounts
    sessions: SessionCache
    live: LiveHub | None = None  # None when live.enabled is off
    metrics: Metrics | None = None  # None when metrics.enabled is off
    kept: KeptPhotos | None = None


def state() -> State:
    return current_app.extensions["puccicam"]


def _system_timezone() -> str:
    """The Pi's own zone name, so photo times show in the owner's local time.

    Only a name Babel knows is used (``TZ=:/etc/localtime`` or ``CET-1CEST`` are not
    names); anything else falls back to UTC rather than failing every page.
    """
    name = os.environ.get("TZ", "").lstrip(":")
    if not name or "/" not in name or name.startswith("/"):
        try:
            target = os.readlink("/etc/localtime")
        except OSError:
            target = ""
        name = target.split("zoneinfo/", 1)[1] if "zoneinfo/" in target else "UTC"
    name = name.removeprefix("posix/").removeprefix("right/")
    try:
        babel_timezone(name)
    except LookupError:
        log.warning("time zone %r is unknown; showing times in UTC", name)
        return "UTC"
    return name


def _create_database(path: Path) -> None:
    """Create the SQLite file owner-only before SQLAlchemy opens it."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


class _Map(Map):
    """Routes where a doubled slash is a 404, not a 308 to the merged path (an absolute
    URL built from the client's Host header): absolute-path probes such as
    ``/photos/%2Fsecret_key`` are refused, not redirected."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, merge_slashes=False, **kwargs)


class _Flask(Flask):
    """Flask with two defaults changed before any route exists, the static one included:
    an OPTIONS request is a 405 like any other method a page does not take (nothing here
    is for cross-origin use), and doubled slashes are not merged."""

    default_config = ImmutableDict(Flask.default_config, PROVIDE_AUTOMATIC_OPTIONS=False)
    url_map_class = _Map


def create_app(config: Config | None = None, **overrides: Any) -> Flask:
    """Build the app from a puccicam Config; ``overrides`` go into ``app.config`` last."""
    config = config or load_config()
    web = config.web
    app = _Flask(__name__, template_folder=str(TEMPLATES), static_folder="static")
    try:
        secret_key = load_secret_key(config.data_dir, web.secret_key)
        _create_database(config.database_path)
    except OSError as exc:
        raise DataDirError(
            f"data dir {config.data_dir} is not usable: {exc.strerror or exc} "
            f"({getattr(exc, 'filename', None) or config.data_dir})"
        ) from exc
    app.config.from_mapping(
        SECRET_KEY=secret_key,
        # A URL object, not "sqlite:///{path}": a "?" or "%" in the path would be parsed.
        SQLALCHEMY_DATABASE_URI=URL.create("sqlite", database=str(config.database_path)),
        SESSION_COOKIE_NAME="puccicam_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=web.https,
        REMEMBER_COOKIE_NAME="puccicam_remember",
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=web.https,
        REMEMBER_COOKIE_DURATION=timedelta(days=web.remember_days),
        PERMANENT_SESSION_LIFETIME=timedelta(days=web.remember_days),
        MAX_CONTENT_LENGTH=web.max_body_kb * 1024,
        MAX_FORM_MEMORY_SIZE=web.max_body_kb * 1024,
        MAX_FORM_PARTS=20,
        BABEL_DEFAULT_LOCALE="en",
        BABEL_TRANSLATION_DIRECTORIES=str(ROOT / "translations"),
        BABEL_DEFAULT_TIMEZONE=_system_timezone(),
        LOGIN_LIMIT_IP=web.login_limit_ip,
        LOGIN_LIMIT_USER=web.login_limit_user,
        # Slowed login attempts that may wait at once: half the threads (webapp/auth.py).
        LOGIN_WAITERS=max(1, web.threads // 2),
        API_LIMIT=config.api.limit,
        HSTS=web.https,
    )
    app.config.update(overrides)
    app.session_interface = SessionInterface()

    store = make_store(config, cache_listings=True)
    sessions = SessionCache()
    state_ = State(
        config, store, Accounts(web.bcrypt_rounds, on_sessions_ended=sessions.clear), sessions
    )
    if config.live.enabled:
        from webapp.live import LiveHub

        state_.live = LiveHub(
            config.live_socket,
            config.database_path,
            config.live.max_viewers,
            config.live.max_minutes,
            token_age=app.config["REMEMBER_COOKIE_DURATION"].total_seconds(),
        )
    if config.metrics.enabled:
        from webapp.metrics import Metrics

        state_.metrics = Metrics(config.status_path, store)
    state_.kept = make_kept(config)
    app.extensions["puccicam"] = state_

    db.init_app(app)
    login_manager.init_app(app)
    # Before CSRFProtect's check, which fails on what they refuse.
    app.before_request(refuse_nameless_fields)
    app.before_request(refuse_undecodable_query)
    app.before_request(refuse_leading_doubled_slash)
    csrf.init_app(app)
    babel.init_app(app, locale_selector=select_locale)
    limiter.init_app(app)
    with app.app_context(), usable_database(config.database_path):
        db.create_all()

    from webapp import api, auth, errors, gallery, keep, live, metrics, public, timelapse

    app.register_blueprint(public.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(gallery.bp)
    app.register_blueprint(live.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(keep.bp)
    app.register_blueprint(timelapse.bp)
    errors.register(app)
    _register_hooks(app)
    app.wsgi_app = HostGuard(app.wsgi_app, web.https)  # type: ignore[method-assign]
    app.wsgi_app = PhotoFastPath(  # type: ignore[method-assign]
        app, store, config.database_path, state_.sessions, state_.metrics
    )
    return app


def _register_hooks(app: Flask) -> None:
    @app.context_processor
    def page_globals() -> dict[str, Any]:
        return {
            "pet_name": state().config.pet.name,
            "live_enabled": state().live is not None,
            "locale": str(get_locale()),
            "languages": LANGUAGES,
            "here": here(),
        }

    @app.before_request
    def start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def finish(response):
        add_security_headers(response, app.config["HSTS"])
        if response.mimetype == "text/html" and "Cache-Control" not in response.headers:
            # Every page is made for one visitor (its CSRF token; for owners, their
            # photos): neither a shared computer's cache nor a proxy may keep it.
            response.headers["Cache-Control"] = "no-store"
        user = current_user.id if current_user and current_user.is_authenticated else "-"
        log_request(
            request.method,
            request.path,
            response.status_code,
            g.get("started", time.perf_counter()),
            user,
        )
        metrics = state().metrics
        if metrics is not None:
            metrics.request(request.endpoint, response.status_code)
        return response
