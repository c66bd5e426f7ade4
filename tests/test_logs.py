"""Log lines as an operator reads them: client data never starts a line of its own."""

from __future__ import annotations

import logging
import re
import sys
import urllib.parse
import urllib.request

import pytest

from puccicam.logs import JournalFormatter, SafeFormatter
from tests.helpers.live import CSRF, ServerProcess
from tests.helpers.rawhttp import build, send_raw

FORGED = "webapp.auth: login ok: alice"


def _lines_starting_forged(text: str) -> list[str]:
    # A line "is" an entry when, past an optional <N> priority, timestamp and level, it
    # starts with a logger name: the forgery must not appear there.
    entry = re.compile(r"^(<\d>)?(\d\d:\d\d:\d\d \w+\s+)?webapp\.auth: login ok")
    return [line for line in text.splitlines() if entry.match(line)]


@pytest.mark.parametrize("journal", [False, True], ids=["terminal", "journald"])
def test_a_forged_log_line_from_a_client_stays_inside_its_own_line(tmp_path, journal):
    log = tmp_path / "serve.log"
    env = {"PUCCICAM_WEB_BCRYPT_ROUNDS": "4", **({"JOURNAL_STREAM": "8:1"} if journal else {})}
    server = ServerProcess(tmp_path / "data", env=env, log=log)
    try:
        forged = urllib.parse.quote("\r\n" + FORGED)
        send_raw(server.port, build("GET", "/" + forged))
        send_raw(server.port, build("GET", "/login%0b%0c%1b[2J%c2%85" + forged))
        # A typed username with CR/LF, through the real login form.
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        page = opener.open(server.base + "/login").read().decode()
        form = {
            "username": "x\r\n" + FORGED,
            "password": "nope",
            "csrf_token": CSRF.search(page)[1],
        }
        with pytest.raises(urllib.error.HTTPError):
            opener.open(server.base + "/login", data=urllib.parse.urlencode(form).encode())
    finally:
        server.stop()
    text = log.read_text(errors="replace")
    assert "%0D%0Awebapp.auth:%20login%20ok:%20alice" in text  # the request was logged
    assert "login failed for an unknown name" in text
    assert _lines_starting_forged(text) == [], text
    assert "\x1b" not in text and "\x0b" not in text and "\x85" not in text


def _record(message: str, *args, exc_info=None) -> logging.LogRecord:
    return logging.LogRecord("webapp.errors", logging.ERROR, __file__, 1, message, args, exc_info)


@pytest.mark.parametrize(
    "formatter",
    [SafeFormatter("%(name)s: %(message)s"), JournalFormatter("%(name)s: %(message)s")],
    ids=["terminal", "journald"],
)
def test_messages_and_tracebacks_cannot_start_a_line(formatter):
    try:
        raise ValueError("bad path /\r\n" + FORGED)
    except ValueError:
        exc_info = sys.exc_info()
    text = formatter.format(_record("unhandled error on GET %s", "/\n" + FORGED, exc_info=exc_info))
    assert "\r" not in text
    assert _lines_starting_forged(text) == [], text
    assert "\\x0a" + FORGED in text  # the message: escaped; the traceback: indented
    lines = text.splitlines()
    assert all(line.lstrip("<3>").startswith("  ") for line in lines[1:])  # traceback indented
