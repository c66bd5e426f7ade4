"""Log lines as an operator reads them: client data never starts a line of its own; under
systemd every line carries a journal priority, the line that says why a process stopped
included; OpenCV writes nothing of its own."""

from __future__ import annotations

import logging
import os
import re
import subprocess
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


PRIORITY = re.compile(r"^<[0-7]>")


def run(*args: str, tmp_path, journal: bool = True, code: str | None = None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PUCCICAM_", "OPENCV_"))}
    env["PUCCICAM_DATA_DIR"] = str(tmp_path / "data")
    if journal:
        env["JOURNAL_STREAM"] = "8:1234"
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "puccicam"]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


def assert_journal_lines(stderr: str, fatal: str) -> None:
    lines = stderr.splitlines()
    assert lines, "nothing logged"
    assert all(PRIORITY.match(line) for line in lines), stderr
    assert not any("[ WARN" in line or "[ERROR" in line for line in lines), stderr
    assert [line for line in lines if line.startswith("<3>") and fatal in line], stderr


def test_a_missing_camera_stops_grab_once_with_an_error_priority_line(tmp_path):
    result = run("grab", "--once", "--source", "/dev/video99", tmp_path=tmp_path)
    assert result.returncode == 1
    assert_journal_lines(result.stderr, "camera /dev/video99 could not be opened")
    assert result.stderr.count("could not be opened") == 1  # once, not also as "Error:"


@pytest.mark.parametrize(
    ("args", "fatal", "code"),
    [
        (["grab", "--interval", "0.1"], "capture.interval (from command line)", 1),
        (["grab", "--no-such-option"], "No such option", 2),
        (["no-such-command"], "No such command", 2),
        (["status"], "no status in", 1),
    ],
)
def test_every_fatal_error_goes_through_logging(tmp_path, args, fatal, code):
    result = run(*args, tmp_path=tmp_path)
    assert result.returncode == code
    assert_journal_lines(result.stderr, fatal)


def test_an_unexpected_exception_is_logged_with_its_traceback(tmp_path):
    # A command that fails the way a bug would: the group reports it, not Python.
    code = (
        "import sys\n"
        "from puccicam.cli import main\n"
        "@main.command('explode')\n"
        "def explode():\n"
        "    raise RuntimeError('boom')\n"
        "sys.argv[0] = 'puccicam'\n"
        "main()\n"
    )
    result = run("explode", tmp_path=tmp_path, code=code)
    assert result.returncode == 1
    assert_journal_lines(result.stderr, "RuntimeError('boom')")
    assert "<3>  Traceback" in result.stderr  # indented: it cannot pass for an entry


def test_on_a_terminal_click_reports_errors_as_before(tmp_path):
    result = run("grab", "--interval", "0.1", tmp_path=tmp_path, journal=False)
    assert result.returncode == 1
    assert result.stderr.startswith("Error: configuration: capture.interval")
