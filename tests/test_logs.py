"""Under systemd every line a process writes carries a journal priority, the line that
says why it stopped included, and OpenCV writes nothing of its own."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

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
    assert "<3>Traceback" in result.stderr


def test_on_a_terminal_click_reports_errors_as_before(tmp_path):
    result = run("grab", "--interval", "0.1", tmp_path=tmp_path, journal=False)
    assert result.returncode == 1
    assert result.stderr.startswith("Error: configuration: capture.interval")
