"""Language choice and localised times: English and German, chosen per request."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import request
from flask_babel import format_datetime, format_timedelta

LANGUAGES = {"en": "English", "de": "Deutsch"}
LANG_COOKIE = "lang"


def select_locale() -> str:
    """The language the visitor chose with the switcher, else the browser's best match."""
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(list(LANGUAGES)) or "en"


def when(taken_at: float) -> str:
    """A capture time in the visitor's language and format (shown in local time)."""
    return format_datetime(datetime.fromtimestamp(taken_at, UTC), "medium")


def ago(taken_at: float, now: float | None = None) -> str:
    """'3 minutes ago' / 'vor 3 Minuten'."""
    now = datetime.now(UTC).timestamp() if now is None else now
    delta = datetime.fromtimestamp(taken_at, UTC) - datetime.fromtimestamp(now, UTC)
    return format_timedelta(delta, add_direction=True, threshold=1.0)
