"""Login and logout for owners, rate limited and with the same answer for every failure."""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from limits import parse_many
from wtforms import BooleanField, PasswordField, StringField

from webapp import state
from webapp.clients import client_key
from webapp.extensions import db, limiter, login_manager
from webapp.metrics import login_failed
from webapp.models import User
from webapp.security import here, safe_next
from webapp.sessions import current_user_id

log = logging.getLogger(__name__)
bp = Blueprint("auth", __name__)

login_manager.login_view = "auth.login"
login_manager.login_message = _l("Please log in to see the photos.")
login_manager.session_protection = "basic"
# A new token per login (webapp.sessions), not a fixed user id.
login_manager.id_attribute = "session_token"


@login_manager.unauthorized_handler
def unauthorized():
    """To the login page, and back here after it.

    Flask-Login's own handler reads ``request.url``, which decodes the Host header, and
    raised (a 500) for hosts browsers send such as ``xn--strae-oqa.de`` or broken
    punycode ("xn--zz"). The path and query are all the redirect needs."""
    flash(login_manager.login_message, login_manager.login_message_category)
    return redirect(url_for("auth.login", next=here()))


class LoginForm(FlaskForm):
    username = StringField(_l("Username"))
    password = PasswordField(_l("Password"))
    remember = BooleanField()  # labelled in login(): it names web.remember_days


@login_manager.user_loader
def load_user(token: str) -> User | None:
    """The owner of a session whose version is still current; None if it ended."""

    def version(user_id: int) -> int | None:
        user = db.session.get(User, user_id)
        return user.session_version if user is not None else None

    max_age = current_app.config["REMEMBER_COOKIE_DURATION"].total_seconds()
    user_id = current_user_id(token, version, max_age)
    # The same identity-map entry the check loaded: no second query.
    return db.session.get(User, user_id) if user_id is not None else None


# Login limits. Only failed logins count (a 401: a wrong name or password), never a
# successful one. The hard limits, a 429, are per client address and per (username,
# client address): a stranger can block only their own address, never the owner's. A
# name guessed at from many addresses is slowed down instead: past LOGIN_LIMIT_USER
# failures for it from everywhere, each attempt for it waits before the password is
# checked, twice as long after each further failure, at most SLOWDOWN_MAX seconds. An
# address that has logged in before (within web.remember_days) is in good standing and
# never waits: the owner at home gets in at once, however many strangers guess. The wait
# holds a waitress worker thread, so at most half of them wait at once; one attempt more
# is a 429 at once, and photos, pages and the owner's login keep their threads.
# Addresses are counted as webapp.clients counts them: an IPv6 /64 is one client.
SLOWDOWN_FIRST = 0.25
SLOWDOWN_MAX = 3.0
_waiting = [0]
_waiting_lock = threading.Lock()


def name_digest(username: str) -> str:
    """A short stand-in for a typed username, for limiter keys and log lines: an owner
    who typed the password into the name field must not find it in the journal. Keyed
    with the app's secret (HMAC), so the journal holds nothing a dictionary can test."""
    normal = username.strip().lower().encode("utf-8", "replace")
    key = str(current_app.secret_key).encode()
    return hmac.new(key, normal, hashlib.sha256).hexdigest()[:8]


def _client() -> str:
    return client_key(get_remote_address())


def _typed_name() -> str:
    return request.form.get("username") or ""


def _user_and_address_key() -> str:
    return f"login-user:{name_digest(_typed_name())}@{_client()}"


def _failed(response) -> bool:
    return response.status_code == 401


def _slowdown_items():
    return parse_many(current_app.config["LOGIN_LIMIT_USER"])


def _slowdown_key(item, digest: str) -> str:
    return item.key_for("login-slowdown", digest)


def _slowdown(digest: str) -> float:
    """Seconds an attempt for this name waits: 0 until it has failed LOGIN_LIMIT_USER
    times (from all addresses), then growing with each further failure."""
    excess = max(
        limiter.storage.get(_slowdown_key(item, digest)) - item.amount for item in _slowdown_items()
    )
    return 0.0 if excess < 0 else min(SLOWDOWN_MAX, SLOWDOWN_FIRST * 2 ** min(excess, 8))


def _good_standing_key() -> str:
    return f"login-good:{_client()}"


def _in_good_standing() -> bool:
    """Has an owner logged in from this address (or IPv6 /64) within remember_days?"""
    return bool(limiter.storage.get(_good_standing_key()))


def _wait(seconds: float) -> bool:
    """Sleep ``seconds`` holding a worker thread, unless half of them already wait."""
    with _waiting_lock:
        if _waiting[0] >= max(1, current_app.config["LOGIN_WAITERS"]):
            return False
        _waiting[0] += 1
    try:
        time.sleep(seconds)
    finally:
        with _waiting_lock:
            _waiting[0] -= 1
    return True


def _count_failure(digest: str) -> None:
    # The limiter's own storage (reset with it), with each limit's window as expiry.
    for item in _slowdown_items():
        limiter.storage.incr(_slowdown_key(item, digest), item.get_expiry())


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_LIMIT_IP"], methods=["POST"], deduct_when=_failed)
@limiter.limit(
    lambda: current_app.config["LOGIN_LIMIT_USER"],
    key_func=_user_and_address_key,
    methods=["POST"],
    deduct_when=_failed,
)
def login():
    """Show the login form; on POST check the password and start a fresh session."""
    if current_user.is_authenticated:
        return redirect(url_for("gallery.index"))
    # Form fields only: Flask-WTF would also read a JSON body, whose numbers, lists and
    # objects reach the checks below as non-strings (a 500, found by tests/test_hostile.py).
    form = LoginForm(formdata=request.form)
    form.remember.label.text = ngettext(
        "Keep me logged in for %(num)d day",
        "Keep me logged in for %(num)d days",
        current_app.config["REMEMBER_COOKIE_DURATION"].days,
    )
    failed = False
    if form.validate_on_submit():
        username = (form.username.data or "").strip()
        digest = name_digest(username)
        delay = 0.0 if _in_good_standing() else _slowdown(digest)
        if delay and not _wait(delay):
            log.warning(
                "login refused for now from %s: too many slowed attempts already waiting",
                request.remote_addr,
            )
            abort(429)
        user = state().accounts.verify(username, form.password.data or "")
        if user is not None:
            target = safe_next(request.args.get("next"))
            session.clear()  # a fresh session: nothing from before login survives
            login_user(user, remember=bool(form.remember.data))
            limiter.storage.incr(
                _good_standing_key(),
                int(current_app.config["REMEMBER_COOKIE_DURATION"].total_seconds()),
            )
            log.info("login ok: %s from %s", user.username, request.remote_addr)
            return redirect(target or url_for("gallery.index"))
        failed = True
        _count_failure(digest)
        login_failed()
        known = state().accounts.find(username) if username else None
        log.warning(
            "login failed for %s from %s%s",
            known.username if known is not None else f"an unknown name (digest {digest})",
            request.remote_addr,
            f" (waited {delay:.2f}s: this name is under attack)" if delay else "",
        )
        flash(_("Wrong username or password."), "error")
    return render_template("login.html", form=form, failed=failed), 401 if failed else 200


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    """Log out everywhere: every session of this owner ends, on every device."""
    username = current_user.username
    state().accounts.end_sessions(current_user)
    # Cleared before logout_user(), whose mark ("_remember": "clear") is what makes
    # Flask-Login delete the remember cookie in the browser.
    session.clear()
    logout_user()
    log.info("logout: %s", username)
    flash(_("You are logged out."), "info")
    response = redirect(url_for("public.home"))
    # Photos are cached privately for quick reloads; a shared computer forgets them here.
    response.headers["Clear-Site-Data"] = '"cache"'
    return response
