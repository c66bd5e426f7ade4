"""A camera source's credentials stay with the source: the log, the status file, ``/status``,
``puccicam status`` and error messages show it redacted."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from camera.errors import CameraUnavailable
from camera.opencv_source import OpenCVSource
from camera.source import redact
from camera.status import Status, read_status, write_status
from puccicam.cli import main

SECRET = "s3cr3t-Pa55"
# Port 9 (discard) on loopback: nothing listens, so OpenCV fails at once, as it does
# for a camera that is switched off.
URLS = [
    f"rtsp://admin:{SECRET}@127.0.0.1:9/stream",
    f"http://admin:{SECRET}@127.0.0.1:9/video.mjpg",
    f"http://127.0.0.1:9/videostream.cgi?user=admin&pwd={SECRET}",
]


@pytest.mark.parametrize(
    ("spec", "shown"),
    [
        ("rtsp://user:pass@cam.local:554/h264", "rtsp://***@cam.local:554/h264"),
        ("http://user@cam.local/video.mjpg", "http://***@cam.local/video.mjpg"),
        ("rtsp://u:p@ss@cam.local/x", "rtsp://***@cam.local/x"),  # '@' in the password
        ("http://cam.local/v.cgi?user=admin&pwd=x&res=1", "http://cam.local/v.cgi?user=***&pwd=***&res=1"),
        ("https://u:p@cam.local?token=abc#frag", "https://***@cam.local?token=***#frag"),
        ("rtsp://cam.local/stream", "rtsp://cam.local/stream"),
        ("http://cam.local/a@b.mjpg", "http://cam.local/a@b.mjpg"),  # '@' in the path only
        ("/dev/video0", "/dev/video0"),
        ("replay:/tmp/frames", "replay:/tmp/frames"),
        ("frames/%03d.jpg", "frames/%03d.jpg"),
    ],
)  # fmt: skip
def test_redact_hides_credentials_and_nothing_else(spec, shown):
    assert redact(spec) == shown


@pytest.mark.parametrize("url", URLS)
def test_the_source_name_and_its_errors_hold_no_credentials(url):
    source = OpenCVSource(url)
    assert SECRET not in source.name and source.spec == url  # OpenCV still gets them
    with pytest.raises(CameraUnavailable) as raised:
        source.open()
    assert SECRET not in str(raised.value) and source.name in str(raised.value)


@pytest.mark.parametrize("url", URLS)
def test_grab_once_logs_stores_and_shows_no_credentials(url, tmp_path):
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUCCICAM_")}
    result = subprocess.run(
        [sys.executable, "-m", "puccicam", "grab", "--once", "--source", url,
         "--data-dir", str(data), "--log-level", "DEBUG"],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "could not be opened" in result.stderr  # the start-up line and the error
    assert SECRET not in result.stderr + result.stdout
    status_file = (data / "status.json").read_text()
    assert "***" in json.loads(status_file)["source"] and SECRET not in status_file
    shown = CliRunner().invoke(main, ["status", "--data-dir", str(data)], env={})
    assert "source:" in shown.output and SECRET not in shown.output


def test_status_written_by_an_older_version_is_shown_redacted(app, auth):
    from webapp import state

    with app.app_context():
        path = state().config.status_path
    error = f"video source {URLS[0]} could not be opened: not a format or URL OpenCV can read"
    write_status(path, Status(pid=1, interval=300, source=URLS[1], camera="missing",
                              last_error=error))  # fmt: skip
    status = read_status(path)
    assert SECRET not in status.source + status.last_error
    auth.create()
    auth.login()
    page = auth.client.get("/status").get_data(as_text=True)
    assert "video source rtsp://***@127.0.0.1:9/stream could not" in page and SECRET not in page
    shown = CliRunner().invoke(main, ["status", "--data-dir", str(path.parent)], env={})
    assert SECRET not in shown.output
