"""Flask extensions, created once and bound to an app in ``create_app``."""

from __future__ import annotations

import flask_login
from flask import current_app
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect

from webapp.clients import client_key
from webapp.security import cookie_secure


class LoginManager(flask_login.LoginManager):
    """Flask-Login, with the remember cookie marked Secure by the session cookie's rule.

    Flask-Login reads ``REMEMBER_COOKIE_SECURE`` from the app's config, one value for
    every request; behind an HTTPS proxy with ``web.https`` off, the session cookie was
    Secure and the remember cookie, which logs in as well, was not."""

    def _set_cookie(self, response) -> None:
        super()._set_cookie(response)
        if not cookie_secure(current_app):
            return
        name = current_app.config["REMEMBER_COOKIE_NAME"] + "="
        response.headers.setlist(
            "Set-Cookie",
            [
                f"{c}; Secure" if c.startswith(name) and "; Secure" not in c else c
                for c in response.headers.getlist("Set-Cookie")
            ],
        )


db = SQLAlchemy()
login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()
# In-process counters: the web app runs as one waitress process; limits reset on restart.
limiter = Limiter(
    key_func=lambda: client_key(get_remote_address()), storage_uri="memory://", headers_enabled=True
)
