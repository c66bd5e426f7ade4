"""The live page and stream through the Flask test client (no grabber running here)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("path", ["/live", "/live/stream", "/live/status"])
def test_live_needs_a_login_like_the_photos(client, path):
    response = client.get(path)
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert b"\xff\xd8" not in response.data


def test_a_head_request_does_not_keep_a_viewer_slot(auth, client, app):
    from webapp import state

    auth.create()
    auth.login()
    for _ in range(5):  # more than live.max_viewers (3)
        with client.head("/live/stream") as response:  # closed, as a server closes it
            assert response.status_code == 200
    with app.app_context():
        assert state().live.streams == 0
    assert client.get("/live").status_code == 200


def test_one_over_the_cap_gets_a_clear_page_at_once(auth, client, app):
    from webapp import state

    auth.create()
    auth.login()
    with app.app_context():
        hub = state().live
    for _ in range(hub.max_viewers):
        assert hub.acquire()
    try:
        page = client.get("/live")
        assert page.status_code == 503 and "Try again in a few minutes" in page.get_data(True)
        assert client.get("/live/stream").status_code == 503
    finally:
        for _ in range(hub.max_viewers):
            hub.release()


def test_without_a_grabber_the_stream_shows_the_offline_picture(auth, client, app):
    from webapp.live import offline_jpeg

    auth.create()
    auth.login()
    response = client.get("/live/stream", buffered=False)
    try:
        assert response.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        assert response.headers["Cache-Control"] == "no-store"
        first = next(iter(response.response))
    finally:
        response.close()
    assert offline_jpeg() in first
    status = client.get("/live/status").get_json()
    assert status["online"] is False and status["viewers"] == 0


def test_the_live_page_in_german(auth, client):
    auth.create()
    auth.login()
    page = client.get("/live", headers={"Accept-Language": "de"}).get_data(as_text=True)
    assert "Zurück zur Galerie" in page and "live" in page
