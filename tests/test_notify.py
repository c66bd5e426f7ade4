"""Notifications end to end: the real grabber with a replay camera that goes dark and comes
back, a real HTTP receiver standing in for the phone service (up, down, slow, garbage),
``puccicam notify test``, and the configuration's errors and warnings through the CLI."""

from __future__ import annotations

import base64
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from camera.notify import Notifier
from camera.replay import ReplaySource
from camera.store import Photo, photo_name
from puccicam.wiring import make_grabber
from tests.helpers.frames import GOOD, frame_bytes
from tests.helpers.live import GrabberProcess
from tests.helpers.receiver import Receiver

SECRET = "Tok3n-s3cret-9Qz"
INTERVAL = 0.5


def replay_dir(target: Path) -> Path:
    """A replay camera of good 320x240 frames."""
    target.mkdir()
    for name in GOOD:
        if "640" not in name:
            (target / name).write_bytes(frame_bytes(name))
    return target


def puccicam(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PUCCICAM_")}
    return subprocess.run(
        [sys.executable, "-m", "puccicam", *args],
        capture_output=True, text=True, env={**clean, **(env or {})}, timeout=60, check=False,
    )  # fmt: skip


def wait_until(predicate, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.05)


@pytest.fixture
def receiver():
    service = Receiver()
    yield service
    service.stop()


# -- the grabber ------------------------------------------------------------------------


class RunningGrabber:
    """A grabber from the wiring, alerts included, on a replay camera in a thread."""

    def __init__(self, config, frames: Path) -> None:
        self.frames = frames
        self.grabber = make_grabber(
            config,
            source=ReplaySource(frames, fps=30),
            notifier=Notifier({}),
            stop=threading.Event(),
            alerts=True,
        )
        self.thread = threading.Thread(target=self.grabber.run)
        self.thread.start()

    def photos(self) -> list[Photo]:
        return list(self.grabber.store.photos())

    def go_dark(self) -> None:
        self.frames.rename(self.frames.with_name("unplugged"))

    def come_back(self) -> None:
        self.frames.with_name("unplugged").rename(self.frames)

    def stop(self) -> float:
        started = time.monotonic()
        self.grabber.request_stop()
        self.thread.join(20)
        assert not self.thread.is_alive()
        return time.monotonic() - started


def notify_config(make_config, *urls: str, **settings):
    config = make_config(
        capture__interval=INTERVAL,
        camera__backoff_max=1,
        notify__urls=urls,
        notify__offline_after=0.05,  # 3 s
        notify__daily_at="",
        **settings,
    )
    return replace(config, live=replace(config.live, enabled=False))


def gaps(photos: list[Photo]) -> list[float]:
    return [b.taken_at - a.taken_at for a, b in itertools.pairwise(photos)]


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["down", "garbage"])
def test_alerts_wait_out_a_broken_service_and_never_delay_a_photo(
    make_config, tmp_path, receiver, fault
):
    if fault == "down":
        receiver.stop()
    else:
        receiver.mode = "garbage"
    config = notify_config(make_config, receiver.url())
    running = RunningGrabber(config, replay_dir(tmp_path / "cam"))
    try:
        wait_until(running.photos, 10, "a first photo")
        running.go_dark()
        wait_until(lambda: running.grabber.alerts.offline, 10, "the camera reported offline")
        running.come_back()
        wait_until(lambda: not running.grabber.alerts.offline, 10, "the camera back")
        # The service is still broken: retries run (every 5 s, then 10) while photos go on.
        before = len(running.photos())
        time.sleep(6)
        during = running.photos()[before - 1 :]
        assert running.grabber.alerts.failed >= 2
        if fault == "down":
            receiver.start()
        else:
            receiver.mode = "ok"
        (offline, back) = receiver.wait_for(2, 40)  # at the next retry: 5, 10, 20 s apart
    finally:
        stopped_in = running.stop()
    assert offline["title"] == "puccicam: camera offline"
    assert back["title"] == "puccicam: camera back"
    assert len(receiver.received) == 2  # nothing lost, nothing twice
    # A photo every interval while the service failed: 12 in 6 s, none a whole interval late.
    assert len(during) >= 10
    assert max(gaps(during)) < 2 * INTERVAL
    assert stopped_in < 3


@pytest.mark.slow
def test_a_service_that_answers_after_10_s_never_delays_a_photo(make_config, tmp_path):
    slow = Receiver(mode="slow", delay=10)
    config = notify_config(make_config, slow.url())
    running = RunningGrabber(config, replay_dir(tmp_path / "cam"))
    try:
        wait_until(running.photos, 10, "a first photo")
        running.go_dark()
        wait_until(lambda: slow.attempts >= 1, 15, "the offline alert posted")
        running.come_back()
        wait_until(lambda: not running.grabber.alerts.offline, 10, "the camera back")
        before = len(running.photos())
        time.sleep(5)  # the sender waits on the slow service all this time
        during = running.photos()[before - 1 :]
    finally:
        stopped_in = running.stop()
        slow.stop()
    # Apprise waits 4 s for an answer: a capture waiting on it would leave a 4 s gap.
    assert len(during) >= 8 and max(gaps(during)) < 2 * INTERVAL
    assert stopped_in < 3  # the send in flight does not hold the stop


def test_the_motion_hook_sends_the_photo_attached_once_per_gap(make_config, tmp_path, receiver):
    config = notify_config(make_config, receiver.url(), notify__motion_gap=10)
    grabber = make_grabber(config, source=ReplaySource(tmp_path), alerts=True)
    jpeg = frame_bytes("good-chelsea.jpg")
    grabber.alerts.start(grabber.status)
    try:
        now = time.time()
        for second in (0, 60, 120):  # three motion photos within the 10 minute gap
            grabber._photo_saved(Photo(now + second, photo_name(now + second)), jpeg, "motion")
        (payload,) = receiver.wait_for(1, 10)
        time.sleep(0.5)
    finally:
        grabber.alerts.stop()
    assert payload["title"] == "puccicam: motion" and len(receiver.received) == 1
    (attached,) = payload["attachments"]
    assert base64.b64decode(attached["base64"]) == jpeg
    assert attached["filename"] == photo_name(now)


@pytest.mark.slow
def test_real_grabber_sends_one_offline_and_one_back_and_keeps_secrets(tmp_path, receiver):
    frames = replay_dir(tmp_path / "cam")
    data = tmp_path / "data"
    env = {
        "PUCCICAM_CAMERA_SOURCE": f"replay:{frames}",
        "PUCCICAM_CAMERA_WARMUP_DELAY": "0",
        "PUCCICAM_CAMERA_WARMUP_FRAMES": "2",
        "PUCCICAM_CAMERA_BACKOFF_MAX": "1",
        "PUCCICAM_CAPTURE_INTERVAL": str(INTERVAL),
        "PUCCICAM_LIVE_ENABLED": "false",
        "PUCCICAM_LOG_LEVEL": "DEBUG",
        "PUCCICAM_NOTIFY_URLS": receiver.url(f"{SECRET}/hook").replace(
            "json://", f"json://owner:{SECRET}@"
        ),
        "PUCCICAM_NOTIFY_OFFLINE_AFTER": "0.05",
    }
    log = tmp_path / "grabber.log"
    grabber = GrabberProcess(data, env, log)
    try:
        wait_until(lambda: list((data / "photos").rglob("*Z.jpg")), 20, "a first photo")
        dark_at = time.monotonic()
        frames.rename(tmp_path / "unplugged")
        receiver.wait_for(1, 15)
        offline_after = receiver.received[0][0] - dark_at
        time.sleep(4)  # still dark: no second offline alert
        assert receiver.titles() == ["puccicam: camera offline"]
        (tmp_path / "unplugged").rename(frames)
        receiver.wait_for(2, 15)
        time.sleep(4)  # photos again: no second back alert
    finally:
        assert grabber.stop() == 0
    assert receiver.titles() == ["puccicam: camera offline", "puccicam: camera back"]
    assert 2.5 < offline_after < 8  # 3 s (0.05 min) after the last photo, checked often
    status = json.loads((data / "status.json").read_text())
    assert (status["notify_sent"], status["notify_failed"]) == (2, 0)
    text = log.read_text()
    assert "offline alert sent to json://127.0.0.1" in text
    assert SECRET not in text and SECRET not in json.dumps(status)


# -- the command line -------------------------------------------------------------------


def test_notify_test_reports_each_url_and_fails_if_any_failed(tmp_path, receiver):
    down = Receiver()
    down.stop()
    env = {
        "PUCCICAM_DATA_DIR": str(tmp_path / "data"),
        "PUCCICAM_NOTIFY_URLS": f"{receiver.url(SECRET)}, {down.url(SECRET)}",
    }
    result = puccicam("notify", "test", env=env)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines == [
        f"ok      json://127.0.0.1:{receiver.port}",
        f"failed  json://127.0.0.1:{down.port}: A Connection error occurred sending JSON "
        "notification to 127.0.0.1.",
    ]
    assert "1 of 2 notification URLs failed" in result.stderr
    assert receiver.titles() == ["puccicam: test"]
    assert SECRET not in result.stdout + result.stderr


def test_notify_test_all_ok_exits_0(tmp_path, receiver):
    env = {"PUCCICAM_DATA_DIR": str(tmp_path), "PUCCICAM_NOTIFY_URLS": receiver.url()}
    result = puccicam("notify", "test", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"ok      json://127.0.0.1:{receiver.port}\n"


def test_notify_test_without_urls_says_how_to_set_them(tmp_path):
    result = puccicam("notify", "test", env={"PUCCICAM_DATA_DIR": str(tmp_path)})
    assert result.returncode == 1
    assert "no notification URLs configured: set notify.urls" in result.stderr


@pytest.mark.parametrize(
    ("urls", "message"),
    [
        (f'["ntfys://ntfy.sh/{SECRET}", "nope://{SECRET}"]',
         "notify.urls (from CONFIG): URL 2 of 2 has a scheme Apprise does not know (nope://)"),
        (f'["{SECRET}"]', "notify.urls (from CONFIG): URL 1 of 1 is not a URL (an Apprise URL "
         "starts like ntfy://, tgram:// or json://)"),
        ("{ a = 1 }", "notify.urls (from CONFIG): expected a list of strings"),
        ("[1, 2]", "notify.urls (from CONFIG): expected a list of strings"),
    ],
)  # fmt: skip
def test_bad_urls_stop_start_up_naming_the_key_never_the_url(tmp_path, urls, message):
    config = tmp_path / "puccicam.toml"
    config.write_text(f"[notify]\nurls = {urls}\n")
    config.chmod(0o600)
    env = {"PUCCICAM_DATA_DIR": str(tmp_path / "data"), "PUCCICAM_CONFIG": str(config)}
    for command in (["grab"], ["config"]):
        result = puccicam(*command, env=env)
        assert result.returncode == 1
        assert result.stderr.strip().splitlines()[-1] == (
            "Error: configuration: " + message.replace("CONFIG", str(config))
            + ("; see https://github.com/caronc/apprise/wiki for the forms each service takes"
               if "URL " in message else ", got a value not shown here (it is a secret)")
        )  # fmt: skip
        assert SECRET not in result.stdout + result.stderr
    assert not (tmp_path / "data" / "photos").exists()


def test_urls_from_the_environment_are_checked_too(tmp_path):
    env = {"PUCCICAM_DATA_DIR": str(tmp_path), "PUCCICAM_NOTIFY_URLS": "json://"}
    result = puccicam("config", env=env)
    assert result.returncode == 1
    assert "notify.urls (from PUCCICAM_NOTIFY_URLS): URL 1 of 1 does not fit the json://" in (
        result.stderr
    )


@pytest.mark.parametrize(("mode", "warned"), [(0o644, True), (0o604, True), (0o600, False)])
def test_a_config_file_with_urls_readable_by_others_is_warned_about(tmp_path, mode, warned):
    config = tmp_path / "puccicam.toml"
    config.write_text(f'[notify]\nurls = ["ntfys://ntfy.sh/{SECRET}"]\n')
    config.chmod(mode)
    result = puccicam("config", "--config", str(config), "--data-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert ("holds notify.urls (secrets) but is readable by" in result.stderr) is warned
    assert SECRET not in result.stdout + result.stderr


def test_a_config_file_without_urls_may_be_readable(tmp_path):
    config = tmp_path / "puccicam.toml"
    config.write_text("[notify]\noffline_after = 5\n")
    config.chmod(0o644)
    result = puccicam("config", "--config", str(config), "--data-dir", str(tmp_path))
    assert result.returncode == 0 and "readable" not in result.stderr
