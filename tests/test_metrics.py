"""/metrics: Prometheus's text format read back with prometheus_client's own parser,
counters that move with what the grabber and the web app do, and who may read it."""

from __future__ import annotations

import http.client
import time
from dataclasses import replace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from camera.notify import Notifier
from puccicam.wiring import make_grabber
from tests.helpers.fakes import EPOCH, FakeCamera
from tests.helpers.frames import frame_bytes
from tests.helpers.site import PASSWORD, waitress_thread

OUTSIDE = {"REMOTE_ADDR": "192.0.2.7"}


@pytest.fixture
def config(make_config):
    return make_config(metrics__enabled=True, web__bcrypt_rounds=4)


@pytest.fixture
def app(config):
    from webapp import create_app
    from webapp.extensions import limiter

    application = create_app(config, TESTING=True)
    limiter.reset()
    return application


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """Every sample of a scrape by (name, sorted labels), through the official parser."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(client, **kwargs) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", **kwargs)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    return samples(response.get_data(as_text=True))


def grabber_for(config, camera, clock):
    """The real grabber, on a fake camera and clock, writing the real status file."""
    config = replace(config, live=replace(config.live, enabled=False))
    return make_grabber(config, source=camera, clock=clock, notifier=Notifier({}))


# -- who may read it ------------------------------------------------------------------


@pytest.mark.parametrize(
    "environ, local",
    [
        ({"REMOTE_ADDR": "127.0.0.1"}, True),
        ({"REMOTE_ADDR": "127.8.9.10"}, True),
        ({"REMOTE_ADDR": "::1"}, True),
        ({"REMOTE_ADDR": "::ffff:127.0.0.1"}, True),
        ({"REMOTE_ADDR": "192.168.1.20"}, False),
        ({"REMOTE_ADDR": "10.0.0.1"}, False),
        ({"REMOTE_ADDR": "2001:db8::1"}, False),
        ({"REMOTE_ADDR": "::ffff:192.0.2.1"}, False),
        ({"REMOTE_ADDR": ""}, False),
        ({"REMOTE_ADDR": "localhost"}, False),
        ({}, False),
        # Through Caddy on the same machine: the peer is loopback, the client is not.
        ({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "203.0.113.1"}, False),
        ({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "127.0.0.1"}, False),
        ({"REMOTE_ADDR": "127.0.0.1", "HTTP_FORWARDED": "for=203.0.113.1"}, False),
        ({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_REAL_IP": "203.0.113.1"}, False),
        ({"REMOTE_ADDR": "::1", "HTTP_X_FORWARDED_PROTO": "https"}, False),
    ],
)
def test_loopback_means_the_peer_and_no_proxy_in_between(environ, local):
    from webapp.metrics import from_loopback

    assert from_loopback(environ) is local


def test_off_by_default_and_then_a_404_even_from_loopback(make_config):
    from webapp import create_app

    app = create_app(make_config())
    assert app.test_client().get("/metrics").status_code == 404


def test_from_elsewhere_a_metrics_token_is_needed(app, client):
    from webapp import tokens

    with app.app_context():
        photo = tokens.add("home-assistant")
        metrics = tokens.add("prometheus", "metrics")
    assert client.get("/metrics", environ_base=OUTSIDE).status_code == 401
    refused = client.get(
        "/metrics", environ_base=OUTSIDE, headers={"Authorization": f"Bearer {photo}"}
    )
    assert refused.status_code == 401
    for how in [
        {"headers": {"Authorization": f"Bearer {metrics}"}},
        {"query_string": {"token": metrics}},
    ]:
        assert client.get("/metrics", environ_base=OUTSIDE, **how).status_code == 200


def test_through_a_real_server_from_loopback_yes_through_a_proxy_no(app):
    answers = {}
    with waitress_thread(app) as url:
        port = int(url.rsplit(":", 1)[1])
        for proxied, headers in [(False, {}), (True, {"X-Forwarded-For": "203.0.113.1"})]:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/metrics", headers=headers)
            response = conn.getresponse()
            answers[proxied] = (response.status, response.read().decode())
            conn.close()
    assert answers[True][0] == 401
    assert answers[False][0] == 200
    assert ("puccicam_disk_free_bytes", ()) in samples(answers[False][1])


def test_behind_caddy_with_trusted_proxy_the_client_address_decides(make_config):
    """web.trusted_proxy = 127.0.0.1 (as install.sh writes it): waitress takes the client's
    address from X-Forwarded-For, which is not loopback."""
    from webapp import create_app

    app = create_app(make_config(metrics__enabled=True, web__trusted_proxy="127.0.0.1"))
    with waitress_thread(app) as url:
        conn = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=10)
        conn.request("GET", "/metrics", headers={"X-Forwarded-For": "203.0.113.1"})
        response = conn.getresponse()
        response.read()
        assert response.status == 401
        conn.request("GET", "/metrics")  # Prometheus on the Pi itself, not through Caddy
        assert conn.getresponse().status == 200
        conn.close()


# -- what it says ---------------------------------------------------------------------


def test_grabber_counters_move_with_saved_photos_and_rejected_frames(app, client, config, clock):
    frames = [
        frame_bytes("bad-garbled.jpg"),
        frame_bytes("bad-black.jpg"),
        frame_bytes("good-chelsea.jpg"),
    ]
    camera = FakeCamera(frames, clock)
    grabber = grabber_for(
        replace(config, camera=replace(config.camera, warmup_frames=0)), camera, clock
    )
    assert ("puccicam_photos_saved_total", ()) not in scrape(client)  # no grabber yet

    grabber.run_once()
    first = scrape(client)
    assert first[("puccicam_photos_saved_total", ())] == 1
    assert first[("puccicam_frames_rejected_total", (("reason", "garbled"),))] == 1
    assert first[("puccicam_frames_rejected_total", (("reason", "blank"),))] == 1
    assert first[("puccicam_photos_saved_created", ())] == EPOCH  # the grabber's start
    assert first[("puccicam_camera_up", ())] == 1

    grabber.run_once()
    grabber.run_once()
    later = scrape(client)
    assert later[("puccicam_photos_saved_total", ())] == 3
    assert later[("puccicam_frames_rejected_total", (("reason", "garbled"),))] == 3
    assert later[("puccicam_capture_failures_total", ())] == 0
    assert later[("puccicam_disk_free_bytes", ())] > 0
    # The fake clock's photos are from November 2026: their age is whatever it is now.
    age = later[("puccicam_newest_photo_age_seconds", ())]
    assert abs(age - (time.time() - clock.now())) < 5


def test_reconnects_failures_and_retention_deletions_are_counted(
    app, client, config, clock, good_frame
):
    from webapp import state

    with app.app_context():
        state().store.save(good_frame, EPOCH - 2 * 86400)  # past the 24 h window
    camera = FakeCamera([good_frame], clock)
    clock.at(EPOCH + 100, camera.unplug)
    clock.at(EPOCH + 700, camera.plug_in)
    clock.stop_at = EPOCH + 1000
    grabber_for(config, camera, clock).run()
    found = scrape(client)
    assert found[("puccicam_camera_reconnects_total", ())] == 1
    assert found[("puccicam_capture_failures_total", ())] >= 1
    assert found[("puccicam_retention_deleted_total", ())] == 1
    assert found[("puccicam_notifications_sent_total", ())] == 0


def test_a_restarted_grabber_is_a_counter_reset_with_a_new_created_time(app, client, config, clock):
    camera = FakeCamera([frame_bytes("good-chelsea.jpg")], clock)
    first = grabber_for(config, camera, clock)
    first.run_once()
    first.run_once()
    before = scrape(client)
    clock.advance(3600)
    grabber_for(config, camera, clock).run_once()
    after = scrape(client)
    assert after[("puccicam_photos_saved_total", ())] < before[("puccicam_photos_saved_total", ())]
    assert (
        after[("puccicam_photos_saved_created", ())]
        == before[("puccicam_photos_saved_created", ())] + 3600
    )


def test_requests_are_counted_by_route_and_status_not_by_path(app, client, auth, photos):
    auth.create()
    auth.login(password="wrong password")
    auth.login()
    client.get("/gallery")
    client.get(f"/photos/{photos[0].name}")
    for i in range(3):
        client.get(f"/no/such/page/{i}")
    found = scrape(client)
    assert (
        found[("puccicam_http_requests_total", (("endpoint", "gallery.index"), ("status", "200")))]
        == 1
    )
    assert (
        found[("puccicam_http_requests_total", (("endpoint", "auth.login"), ("status", "401")))]
        == 1
    )
    assert (
        found[("puccicam_http_requests_total", (("endpoint", "unmatched"), ("status", "404")))] == 3
    )
    assert found[("puccicam_login_failures_total", ())] == 1
    assert not any("/no/such" in str(labels) for _name, labels in found)


def test_the_photo_fast_path_counts_its_answers_too(app, photos):
    """Photos served by webapp/fastpath.py, not Flask, through a real server."""
    from tests.helpers.live import login
    from webapp import state

    with app.app_context():
        state().accounts.add("owner", PASSWORD)
    with waitress_thread(app) as url:
        cookie = login(url, "owner", PASSWORD)
        port = int(url.rsplit(":", 1)[1])
        for _ in range(4):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", f"/photos/{photos[0].name}", headers={"Cookie": cookie})
            assert conn.getresponse().read()[:2] == b"\xff\xd8"
            conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/metrics")
        found = samples(conn.getresponse().read().decode())
        conn.close()
    photo = (
        "puccicam_http_requests_total",
        (("endpoint", "gallery.photo_bytes"), ("status", "200")),
    )
    assert found[photo] >= 4


def test_rate_limited_requests_are_counted(app, client):
    from webapp.extensions import limiter

    limiter.reset()
    attacker = {"REMOTE_ADDR": "203.0.113.9"}
    for i in range(12):
        client.get(f"/api/latest.json?token=guess{i}", environ_base=attacker)
    found = scrape(client)
    assert found[("puccicam_rate_limited_requests_total", (("endpoint", "api.latest_info"),))] == 2
    assert (
        found[
            ("puccicam_http_requests_total", (("endpoint", "api.latest_info"), ("status", "401")))
        ]
        == 10
    )


@pytest.mark.slow
def test_the_real_grabber_and_server_numbers_agree_across_processes(tmp_path):
    """``puccicam grab`` on a replay camera that sends corrupt frames, ``puccicam serve``
    in its own process: what /metrics says is what the grabber's status file says, and
    it grows as photos are saved."""
    from tests.helpers.frames import flaky_camera
    from tests.helpers.live import LiveSite

    site = LiveSite(
        tmp_path, flaky_camera(tmp_path / "camera"),
        PUCCICAM_CAPTURE_INTERVAL="1", PUCCICAM_METRICS_ENABLED="true",
        PUCCICAM_CAMERA_DRAIN_FRAMES="0",  # every frame read is checked, none dropped unseen
    )  # fmt: skip

    def scraped() -> dict:
        conn = http.client.HTTPConnection("127.0.0.1", site.port, timeout=10)
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        body = response.read().decode()
        conn.close()
        assert response.status == 200, body
        return samples(body)

    try:
        site.wait_for(lambda: site.status().get("saved", 0) >= 2, 30, "two photos")
        first = scraped()
        site.wait_for(
            lambda: site.status()["saved"] >= first[("puccicam_photos_saved_total", ())] + 2,
            30,
            "two photos more",
        )
        later = scraped()
        status = site.status()
    finally:
        site.close()
    saved = ("puccicam_photos_saved_total", ())
    assert 2 <= first[saved] < later[saved] <= status["saved"]
    rejected = {
        labels[0][1]: value
        for (name, labels), value in later.items()
        if name == "puccicam_frames_rejected_total"
    }
    assert rejected and sum(rejected.values()) > 0  # the replay camera's corrupt frames
    assert all(status["rejected"][reason] >= n for reason, n in rejected.items())
    assert later[("puccicam_photos_saved_created", ())] == status["started"]
    assert later[("puccicam_newest_photo_age_seconds", ())] < 30


def test_without_a_trusted_proxy_forwarded_headers_reach_the_app_but_are_not_believed(app, caplog):
    """webapp/server.py leaves X-Forwarded-* in the request when no proxy is trusted, for
    from_loopback to see; the client address and the scheme stay the peer's own."""
    with waitress_thread(app) as url:
        conn = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=10)
        forged = {"X-Forwarded-For": "203.0.113.1", "X-Forwarded-Proto": "https"}
        conn.request("GET", "/api/latest.json", headers=forged)
        conn.getresponse().read()
        conn.request("GET", "/login", headers=forged)
        login_page = conn.getresponse()
        login_page.read()
        conn.close()
    assert "refused from 127.0.0.1" in caplog.text and "203.0.113.1" not in caplog.text
    cookies = login_page.headers.get_all("Set-Cookie") or []
    assert cookies and not any("Secure" in cookie for cookie in cookies)
