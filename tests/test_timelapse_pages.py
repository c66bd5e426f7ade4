"""/timelapse: owners only, plays the grabber's finished file, downloads it as one file;
and the grabber keeps that file up to date after each photo."""

from __future__ import annotations

import re
import time

import pytest

from camera.timelapse import day_file
from puccicam.wiring import make_grabber, make_timelapse
from tests.helpers.video import frames, level_jpeg


@pytest.fixture
def owner(auth):
    auth.create()
    auth.login()


def _build(app, count: int = 6) -> None:
    from webapp import state

    with app.app_context():
        current = state()
        now = time.time()
        for i in range(count):
            current.store.save(level_jpeg(i), now - 60 * (count - i))
        make_timelapse(current.config, current.store).update(now)


def test_no_time_lapse_yet(client, owner):
    page = client.get("/timelapse").get_data(as_text=True)
    assert "No time-lapse yet" in page and "<video" not in page
    assert client.get("/timelapse.webm").status_code == 404
    assert client.get("/timelapse/download").status_code == 404


def test_the_page_plays_the_file_and_downloads_it(app, client, owner):
    _build(app)
    started = time.perf_counter()
    page = client.get("/timelapse").get_data(as_text=True)
    assert time.perf_counter() - started < 1
    assert '<video src="/timelapse.webm"' in page and 'href="/timelapse/download"' in page
    video = client.get("/timelapse.webm")
    assert video.status_code == 200 and video.mimetype == "video/webm"
    assert video.headers.get("Accept-Ranges") == "bytes"
    assert video.data.startswith(b"\x1a\x45\xdf\xa3")  # EBML
    assert "attachment" not in video.headers.get("Content-Disposition", "")
    part = client.get("/timelapse.webm", headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and len(part.data) == 100
    download = client.get("/timelapse/download")
    assert download.data == video.data
    assert re.fullmatch(
        r'attachment; filename="Pucci \d{4}-\d\d-\d\d \d\d\.\d\d\.webm"',
        download.headers["Content-Disposition"],
    )


def test_the_page_speaks_german(app, client, owner):
    client.set_cookie("lang", "de")
    assert "Noch kein Zeitraffer" in client.get("/timelapse").get_data(as_text=True)
    _build(app)
    page = client.get("/timelapse").get_data(as_text=True)
    assert "Zeitraffer" in page and "Herunterladen" in page and "Bildern pro Sekunde" in page


def test_the_grabber_extends_the_time_lapse_after_each_photo(make_config, camera, clock):
    config = make_config()
    grabber = make_grabber(config, source=camera, clock=clock)
    assert grabber.timelapse is not None
    grabber.timelapse.min_gap = 0  # one update per photo, to count them
    grabber.timelapse.start()
    try:
        for _ in range(3):
            grabber.capture()
            clock.advance(300)
            assert grabber.timelapse.wait_idle(30)
    finally:
        grabber.timelapse.close()
        grabber._close()
    assert len(frames(day_file(config.timelapse_dir))[0]) == 3


def test_the_grabber_builds_nothing_when_turned_off(make_config, camera, clock):
    grabber = make_grabber(make_config(timelapse__enabled=False), source=camera, clock=clock)
    assert grabber.timelapse is None
