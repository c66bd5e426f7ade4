"""Error pages: a readable sentence in the visitor's language, never a stack trace."""

from __future__ import annotations

import logging

from flask import Flask, render_template, request
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

log = logging.getLogger(__name__)

MESSAGES = {
    400: _l("The request was not understood. Reload the page and try again."),
    403: _l("You may not do that."),
    404: _l("There is nothing here. The photo may be older than a day and gone."),
    405: _l("That is not how this page is used."),
    413: _l("That request is too large."),
    429: _l("Too many attempts. Wait a few minutes, then try again."),
    500: _l("Something went wrong on the camera's side. Try again in a minute."),
}


def _page(code: int, message=None):
    text = message or MESSAGES.get(code, MESSAGES[400])
    return render_template("error.html", code=code, message=text), code


def register(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_failed(exc: CSRFError):
        log.warning(
            "CSRF check failed for %s %s: %s", request.method, request.path, exc.description
        )
        return _page(400, _l("The form has expired. Reload the page and try again."))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if exc.code == 429:
            log.warning(
                "rate limited: %s %s from %s", request.method, request.path, request.remote_addr
            )
        return _page(exc.code or 400)

    @app.errorhandler(Exception)
    def crashed(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _page(InternalServerError.code)
