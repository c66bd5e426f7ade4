"""Login and logout for owners, rate limited and with the same answer for every failure."""

from __future__ import annotations

import logging

from flask import (
    Blueprint,
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
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, StringField

from webapp import state
from webapp.extensions import db, limiter, login_manager
from webapp.models import User
from webapp.security import here, safe_next
from webapp.sessions import current_user_id

log = logging.getLogger(__name__)
bp = Blueprint("auth", __name__)

login_manager.login_view = "auth.login"
login_manager.login_message = _l("Please log in to see the photos.")
login_manager.session_protection = "basic"


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
    remember = BooleanField(_l("Keep me logged in for 30 days"))


@login_manager.user_loader
def load_user(token: str) -> User | None:
    """The owner of a session whose version is still current; None if it ended."""

    def version(user_id: int) -> int | None:
        user = db.session.get(User, user_id)
        return user.session_version if user is not None else None

    user_id = current_user_id(token, version)
    # The same identity-map entry the check loaded: no second query.
    return db.session.get(User, user_id) if user_id is not None else None


def _username_key() -> str:
    return "login-user:" + (request.form.get("username") or "").strip().lower()[:64]


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_LIMIT_IP"], methods=["POST"])
@limiter.limit(
    lambda: current_app.config["LOGIN_LIMIT_USER"], key_func=_username_key, methods=["POST"]
)
def login():
    """Show the login form; on POST check the password and start a fresh session."""
    if current_user.is_authenticated:
        return redirect(url_for("gallery.index"))
    # Form fields only: Flask-WTF would also read a JSON body, whose numbers, lists and
    # objects reach the checks below as non-strings (a 500, found by tests/test_hostile.py).
    form = LoginForm(formdata=request.form)
    failed = False
    if form.validate_on_submit():
        username = (form.username.data or "").strip()
        user = state().accounts.verify(username, form.password.data or "")
        if user is not None:
            target = safe_next(request.args.get("next"))
            session.clear()  # a fresh session: nothing from before login survives
            login_user(user, remember=bool(form.remember.data))
            log.info("login ok: %s from %s", user.username, request.remote_addr)
            return redirect(target or url_for("gallery.index"))
        failed = True
        log.warning("login failed for %r from %s", username[:64], request.remote_addr)
        flash(_("Wrong username or password."), "error")
    return render_template("login.html", form=form, failed=failed), 401 if failed else 200


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    """Log out everywhere: every session of this owner ends, on every device."""
    username = current_user.username
    state().accounts.end_sessions(current_user)
    logout_user()
    session.clear()
    log.info("logout: %s", username)
    flash(_("You are logged out."), "info")
    response = redirect(url_for("public.home"))
    # Photos are cached privately for quick reloads; a shared computer forgets them here.
    response.headers["Clear-Site-Data"] = '"cache"'
    return response
