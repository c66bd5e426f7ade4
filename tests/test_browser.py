"""A real Chromium (Debian's, driven by Playwright) uses the gallery as an owner would.

Runs wherever /usr/bin/chromium exists; .ci/run installs it, and under CI a missing
browser is a failure, never a skip. The phone-size screenshot lands in test-artifacts/.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from tests.helpers.site import PASSWORD, waitress_thread

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parents[1] / "test-artifacts"
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        pytest.fail("CI must run the browser test: apt-get install chromium", pytrace=False)
    pytest.skip("Debian's chromium is not installed here", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")
# A real browser: seconds a test, so with --slow (scripts/test, and CI, pass it).
pytestmark = pytest.mark.slow


@pytest.fixture
def site(app, photos, auth):
    auth.create()
    with waitress_thread(app) as url:
        yield url


@pytest.fixture
def page():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        context = browser.new_context(
            viewport={"width": 360, "height": 740}, device_scale_factor=2, locale="en-GB"
        )
        yield context.new_page()
        browser.close()


def test_owner_logs_in_browses_switches_language_and_logs_out(site, page, photos):
    errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.goto(site + "/gallery")
    assert page.url.startswith(site + "/login")
    page.fill("#username", "owner")
    page.fill("#password", PASSWORD)
    page.click("form.login button[type=submit]")
    page.wait_for_url(site + "/gallery")

    hero = page.locator("#hero-img")
    hero.wait_for()
    assert page.evaluate("document.getElementById('hero-img').naturalWidth") == 320
    assert page.locator("#hero").get_attribute("data-latest") == photos[-1].name
    assert page.locator(".thumbs img").count() == len(photos)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "gallery-phone.png"), full_page=True)
    # nothing overflows a 360 px phone screen
    assert page.evaluate("document.documentElement.scrollWidth") <= 360

    page.click("#hero-link")
    page.wait_for_url(f"{site}/photo/{photos[-1].name}")
    assert page.locator("figure.single img").evaluate("img => img.naturalWidth") == 320

    page.click("button[name=lang][value=de]")
    page.wait_for_selector("button[name=lang][value=de].current")
    assert page.locator("header nav a", has_text="Galerie").count() == 1
    assert page.locator(".pager a[rel=next]").inner_text() == "Älter"

    page.click("nav button:has-text('Abmelden')")
    page.wait_for_url(site + "/")
    page.goto(site + f"/photos/{photos[-1].name}")
    assert page.url.startswith(site + "/login")
    assert errors == []  # no CSP violations or script errors on the way


@pytest.fixture
def live_site(make_config):
    """Grabber and server in one process, as ``puccicam demo`` runs them."""
    import tempfile

    from puccicam.demo import start_grabber
    from tests.helpers.frames import FRAMES_DIR
    from webapp import create_app, state

    sockets = Path(tempfile.mkdtemp(prefix="pb-", dir="/tmp"))
    config = make_config(
        web__bcrypt_rounds=4,
        live__socket=str(sockets / "live.sock"),
        camera__source=f"replay:{FRAMES_DIR}",
        camera__warmup_delay=0.2,
        capture__interval=60,
    )
    app = create_app(config)
    with app.app_context():
        state().accounts.add("owner", PASSWORD)
    thread, stop = start_grabber(config)
    try:
        with waitress_thread(app) as url:
            yield url
    finally:
        stop()
        thread.join(5)
        shutil.rmtree(sockets, ignore_errors=True)


def test_the_live_page_shows_the_pet_moving(live_site, page):
    errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.goto(live_site + "/login?next=/gallery")
    page.fill("#username", "owner")
    page.fill("#password", PASSWORD)
    page.click("form.login button[type=submit]")
    page.wait_for_url(live_site + "/gallery")
    page.click("a.button[href='/live']")
    page.wait_for_url(live_site + "/live")
    image = page.locator("#live-img")
    page.wait_for_function("document.getElementById('live-img').naturalWidth > 0", timeout=10000)
    first = image.screenshot()
    page.wait_for_timeout(1000)
    second = image.screenshot()
    assert first != second  # frames that change over time, not a still
    page.wait_for_function("/[1-9]/.test(document.getElementById('live-fps').textContent)")
    assert page.locator(".badge").inner_text().lower() == "live"
    assert page.locator("a[href='/gallery']", has_text="Back to the gallery").count() == 1
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "live-phone.png"), full_page=True)
    page.goto(live_site + "/gallery")  # leaving the page ends the stream
    assert errors == []


def test_owner_plays_the_time_lapse(site, page, app):
    from puccicam.wiring import make_timelapse
    from webapp import state

    with app.app_context():
        current = state()
        make_timelapse(current.config, current.store).update(time.time())
    page.goto(site + "/login?next=/timelapse")
    page.fill("#username", "owner")
    page.fill("#password", PASSWORD)
    page.click("form.login button[type=submit]")
    page.wait_for_url(site + "/timelapse")
    video = page.locator("video")
    video.wait_for()
    page.wait_for_function("() => document.querySelector('video').readyState >= 1")
    # twelve photos at 10 frames per second
    assert abs(video.evaluate("v => v.duration") - 1.2) < 0.15
    video.evaluate("v => v.play()")
    page.wait_for_function(
        "() => document.querySelector('video').currentTime > 0.3", timeout=10_000
    )
    assert video.evaluate("v => v.error") is None
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    page.screenshot(path=str(ARTIFACTS / "timelapse-phone.png"), full_page=True)


def test_owner_keeps_and_downloads_a_photo_on_a_phone(site, page, photos):
    page.goto(f"{site}/login?next=/photo/{photos[0].name}")
    page.fill("#username", "owner")
    page.fill("#password", PASSWORD)
    page.click("form.login button[type=submit]")
    page.wait_for_url(f"{site}/photo/{photos[0].name}")
    page.click("text=Keep")
    page.wait_for_selector("text=Un-keep")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    page.screenshot(path=str(ARTIFACTS / "photo-kept-phone.png"), full_page=True)
    with page.expect_download() as download:
        page.click("text=Download")
    assert download.value.suggested_filename.startswith("Pucci ")
    assert download.value.suggested_filename.endswith(".jpg")
