"""Read-only tokens and the still-image API: what a token opens (the newest photo, in
three ways of sending it) and everything it does not, hashed at rest, refusals logged
and rate limited, and a wrong token costing what a right one costs."""

from __future__ import annotations

import base64
import hashlib
import http.client
import logging
import random
import re
import statistics
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.helpers.site import waitress_thread

OUTSIDE = {"REMOTE_ADDR": "192.0.2.7"}  # not loopback: /metrics asks it for a token
ROUTE_ARGUMENT = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
API = {"api.latest_jpg", "api.latest_info"}
# What anyone gets without a token: the pet's page, its portrait, the login page...
PUBLIC = {"static", "public.home", "public.portrait", "public.healthz", "auth.login"}


def make_token(app, name="home-assistant", scope="photo") -> str:
    from webapp import tokens

    with app.app_context():
        return tokens.add(name, scope)


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def basic(token: str, user: str = "home-assistant") -> dict:
    raw = base64.b64encode(f"{user}:{token}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def newest_bytes(app, photos) -> bytes:
    from webapp import state

    with app.app_context():
        return state().store.path(photos[-1].name).read_bytes()


# -- what a token opens ---------------------------------------------------------------


@pytest.mark.parametrize("form", ["bearer", "basic", "query"])
def test_a_token_opens_the_newest_photo(app, client, photos, form):
    token = make_token(app)
    if form == "query":
        response = client.get(f"/api/latest.jpg?token={token}")
    else:
        response = client.get(
            "/api/latest.jpg", headers=(bearer if form == "bearer" else basic)(token)
        )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "image/jpeg"
    assert response.get_data() == newest_bytes(app, photos)
    assert "Set-Cookie" not in response.headers  # a token starts no session


def test_the_photo_is_revalidated_with_its_etag(app, client, photos):
    token = make_token(app)
    first = client.get("/api/latest.jpg", headers=bearer(token))
    again = client.get(
        "/api/latest.jpg", headers={**bearer(token), "If-None-Match": first.headers["ETag"]}
    )
    assert again.status_code == 304 and again.get_data() == b""
    assert first.headers["Cache-Control"] == "private, no-cache"


def test_latest_json_says_name_time_and_age(app, client, photos):
    token = make_token(app)
    body = client.get("/api/latest.json", headers=bearer(token)).get_json()
    newest = photos[-1]
    assert body["name"] == newest.name
    assert body["taken"].endswith("Z")
    taken = datetime.fromisoformat(body["taken"].replace("Z", "+00:00"))
    assert taken.tzinfo is not None and abs(taken.timestamp() - newest.taken_at) < 0.001
    assert 59 <= body["age_seconds"] < 120  # the fixture's newest photo is a minute old
    assert set(body) == {"name", "taken", "age_seconds"}


@pytest.mark.parametrize("path", ["/api/latest.jpg", "/api/latest.json"])
def test_no_photo_yet_is_a_clear_404(app, client, path):
    token = make_token(app)
    response = client.get(path, headers=bearer(token))
    assert response.status_code == 404
    assert response.get_json() == {"error": "There is no photo yet."}


def test_last_use_is_recorded(app, client, photos):
    from webapp import tokens

    token = make_token(app)
    with app.app_context():
        assert tokens.all_tokens()[0].last_used is None
    before = time.time()
    assert client.get("/api/latest.json", headers=bearer(token)).status_code == 200
    with app.app_context():
        assert tokens.all_tokens()[0].last_used >= before


# -- what a token does not open -------------------------------------------------------


@pytest.mark.parametrize(
    "headers, query",
    [
        ({}, ""),
        (bearer("pcam_" + "A" * 43), ""),
        ({}, "?token=pcam_" + "A" * 43),
        (basic("wrong"), ""),
        ({"Authorization": "Bearer"}, ""),
        ({"Authorization": "Token abc"}, ""),
        (bearer("x" * 100_000), ""),
    ],
    ids=["none", "wrong-bearer", "wrong-query", "wrong-basic", "empty", "other-scheme", "huge"],
)
def test_no_or_a_wrong_token_is_refused(app, client, photos, headers, query):
    make_token(app)
    response = client.get("/api/latest.jpg" + query, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert b"\xff\xd8" not in response.get_data()


def test_an_owners_session_does_not_open_the_api(app, client, auth, photos):
    auth.create()
    auth.login()
    assert client.get("/gallery").status_code == 200
    assert client.get("/api/latest.jpg").status_code == 401


def test_a_metrics_token_does_not_open_the_photo(app, client, photos):
    token = make_token(app, "prometheus", "metrics")
    assert client.get("/api/latest.jpg", headers=bearer(token)).status_code == 401


def _concrete(rule, photo: str) -> str:
    samples = {"name": photo, "filename": "style.css"}
    return ROUTE_ARGUMENT.sub(lambda m: samples[m.group(1)], rule.rule)


def _answers(client, rule, url: str, headers: dict) -> list[tuple[str, int, bytes]]:
    found = []
    for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
        response = client.open(url, method=method, headers=headers, environ_base=OUTSIDE)
        # A live stream runs until the viewer leaves: its first part is enough.
        body = next(iter(response.response), b"") if response.is_streamed else response.data
        response.close()
        found.append((method, response.status_code, body))
    return found


@pytest.mark.parametrize("scope", ["photo", "metrics"])
def test_a_token_opens_nothing_else_on_any_route(make_config, photos, good_frame, scope):
    """Every route of the app, in every form a token can be sent: a token changes
    nothing on any route but its own, and no answer but its own holds a camera photo."""
    from webapp import create_app, state
    from webapp.extensions import limiter

    app = create_app(make_config(metrics__enabled=True, api__limit="100000 per minute"))
    limiter.reset()
    with app.app_context():
        store = state().store
        saved = [store.save(good_frame, time.time() - 60 * i) for i in range(1, 4)]
        photo_bytes = [store.path(p.name).read_bytes() for p in saved]
    token = make_token(app, scope=scope)
    opens = API if scope == "photo" else {"metrics.scrape"}
    client = app.test_client()
    rules = list(app.url_map.iter_rules())
    assert {r.endpoint for r in rules} >= {"gallery.photo_bytes", "live.stream", *API}
    for rule in rules:
        url = _concrete(rule, saved[0].name)
        anonymous = _answers(client, rule, url, {})
        for form, headers, target in [
            ("header", bearer(token), url),
            ("basic", basic(token), url),
            ("query", {}, f"{url}?token={token}"),
        ]:
            answers = _answers(client, rule, target, headers)
            for (method, status, body), (_, status_before, _) in zip(
                answers, anonymous, strict=True
            ):
                what = f"{method} {url} with the token in the {form}"
                if rule.endpoint in opens and method == "GET":
                    assert status == 200, what
                    continue
                assert status == status_before, f"{what}: {status}, without it {status_before}"
                if 200 <= status < 300:
                    assert rule.endpoint in PUBLIC, f"{what}: {status}"
                for photo in photo_bytes:
                    assert photo not in body, f"{what}: a camera photo in the answer"


# -- at rest, and revoked -------------------------------------------------------------


def test_tokens_are_stored_only_as_a_hash(app, make_config):
    from webapp import tokens

    token = make_token(app)
    with app.app_context():
        tokens.all_tokens()
    raw = make_config().database_path.read_bytes()
    assert token.encode() not in raw and token[5:].encode() not in raw
    assert hashlib.sha256(token.encode()).digest() in raw


def test_a_revoked_token_fails_on_the_next_request(app, client, photos):
    from webapp import tokens

    token = make_token(app)
    assert client.get("/api/latest.jpg", headers=bearer(token)).status_code == 200
    with app.app_context():
        tokens.revoke("Home-Assistant")  # any case
    assert client.get("/api/latest.jpg", headers=bearer(token)).status_code == 401


@pytest.mark.parametrize("name", ["", "-x", "a b", "ä", "x" * 65, "a/b", "a\nb"])
def test_bad_token_names_are_refused(app, name):
    from webapp import tokens

    with app.app_context(), pytest.raises(tokens.TokenError, match="token name is 1 to 64"):
        tokens.add(name)


def test_names_are_unique_whatever_their_case(app):
    from webapp import tokens

    make_token(app, "ha")
    with app.app_context(), pytest.raises(tokens.TokenError, match="already exists"):
        tokens.add("HA")


def test_revoking_an_unknown_name_says_so(app):
    from webapp import tokens

    with app.app_context(), pytest.raises(tokens.TokenError, match="no token named 'nope'"):
        tokens.revoke("nope")


# -- refusals: logged, rate limited ---------------------------------------------------


def test_a_refusal_is_logged_with_the_address_never_the_token(app, client, photos, caplog):
    token = make_token(app)
    wrong = token[:-4] + "AAAA"
    with caplog.at_level(logging.INFO):
        client.get(f"/api/latest.jpg?token={wrong}", environ_base={"REMOTE_ADDR": "203.0.113.5"})
        client.get("/api/latest.jpg", headers=bearer(token))
    assert "/api/latest.jpg refused from 203.0.113.5: an unknown or revoked token" in caplog.text
    assert wrong[5:20] not in caplog.text and token[5:20] not in caplog.text


def test_brute_force_is_rate_limited_per_client(app, client, photos, caplog):
    token = make_token(app)
    attacker = {"REMOTE_ADDR": "203.0.113.9"}
    statuses = [
        client.get(f"/api/latest.json?token=pcam_guess{i}", environ_base=attacker).status_code
        for i in range(12)
    ]
    assert statuses == [401] * 10 + [429] * 2  # api.limit: 10 per minute
    # The attacker is blocked even with a right token; everyone else is not.
    right = client.get("/api/latest.json", headers=bearer(token), environ_base=attacker)
    assert right.status_code == 429
    elsewhere = client.get("/api/latest.json", headers=bearer(token))
    assert elsewhere.status_code == 200
    assert "rate limited: GET /api/latest.json from 203.0.113.9" in caplog.text


def test_successes_do_not_count_against_the_limit(app, client, photos):
    token = make_token(app)
    for _ in range(15):
        assert client.get("/api/latest.json", headers=bearer(token)).status_code == 200


# -- constant time --------------------------------------------------------------------


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


@pytest.mark.slow
def test_a_wrong_token_costs_what_a_right_one_costs(app, photos):
    """Through a real server: the time of an answer does not depend on how much of the
    token was right (near miss and far miss alike), and a wrong token is not faster or
    slower than the right one beyond noise."""
    app.config["API_LIMIT"] = "1000000 per minute"
    token = make_token(app)
    near = token[:-1] + ("A" if token[-1] != "A" else "B")  # all but the last character
    far = "pcam_" + "".join("A" if c != "A" else "B" for c in token[5:])
    kinds = {"right": token, "near": near, "far": far}
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    logging.getLogger("webapp.tokens").setLevel(logging.ERROR)  # measure the check, not I/O
    try:
        with waitress_thread(app) as url:
            conn = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=10)
            order = list(kinds)
            for i in range(450):  # interleaved: a busy moment hits every kind alike
                # In a new order each round: in a fixed order, whatever came right after
                # the right token's request measured 0.5 ms slower on a busy machine.
                random.shuffle(order)
                for kind in order:
                    value = kinds[kind]
                    start = time.perf_counter()
                    conn.request("GET", "/api/latest.json", headers=bearer(value))
                    response = conn.getresponse()
                    response.read()
                    if i >= 50:  # after warm-up
                        times[kind].append(time.perf_counter() - start)
                    assert response.status == (200 if kind == "right" else 401)
            conn.close()
    finally:
        logging.getLogger("webapp.tokens").setLevel(logging.NOTSET)
    right, near_ms, far_ms = (_median_ms(times[k]) for k in kinds)
    shown = f"medians: right {right:.2f} ms, near miss {near_ms:.2f} ms, far miss {far_ms:.2f} ms"
    assert abs(near_ms - far_ms) < max(0.3, 0.15 * far_ms), shown
    assert abs(right - far_ms) < max(1.0, 0.5 * far_ms), shown


# -- end to end: the real CLI against a running server --------------------------------


def _get(port: int, target: str, headers: dict | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", target, headers=headers or {})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, body


@pytest.mark.slow
def test_the_cli_makes_lists_and_revokes_tokens_while_the_server_runs(tmp_path):
    """``puccicam token`` in its own process, ``puccicam serve`` and ``grab`` in theirs:
    a revoke is refused on the very next request, and no token reaches the server's log
    (at DEBUG, with the token sent in the query string)."""
    from tests.helpers.frames import flaky_camera
    from tests.helpers.live import LiveSite

    site = LiveSite(
        tmp_path, flaky_camera(tmp_path / "camera"),
        PUCCICAM_CAPTURE_INTERVAL="1", PUCCICAM_LOG_LEVEL="DEBUG",
    )  # fmt: skip
    try:
        made = site.puccicam("token", "add", "home-assistant")
        token = made.stdout.strip()
        assert re.fullmatch(r"pcam_[A-Za-z0-9_-]{43}", token), made.stdout
        assert "not shown again" in made.stderr
        site.wait_for(lambda: site.status().get("saved", 0) >= 1, 30, "a first photo")
        query = f"/api/latest.jpg?token={token}"
        status, body = _get(site.port, query)
        assert status == 200 and body[:2] == b"\xff\xd8"
        assert _get(site.port, "/api/latest.json", bearer(token))[0] == 200
        listed = site.puccicam("token", "list").stdout
        assert token.encode() not in (site.data / "puccicam.sqlite3").read_bytes()
        assert "home-assistant\tphoto\tmade " in listed and "last used" in listed
        assert token not in listed

        site.puccicam("token", "revoke", "home-assistant")
        assert _get(site.port, query)[0] == 401  # at once: no cache outlives a revoke
        assert _get(site.port, "/api/latest.json", bearer(token))[0] == 401
        unknown = subprocess_error(site, "token", "revoke", "home-assistant")
        assert "there is no token named 'home-assistant'" in unknown
    finally:
        site.close()
    log = site.server_log.read_text()
    assert "GET /api/latest.jpg 200" in log  # the request log did see those requests
    assert "refused from 127.0.0.1: an unknown or revoked token" in log
    assert token[5:] not in log and "token=" not in log


def subprocess_error(site, *args: str) -> str:
    """The error a failing ``puccicam`` command prints (its exit code is 1)."""
    import subprocess

    with pytest.raises(subprocess.CalledProcessError) as failed:
        site.puccicam(*args)
    assert failed.value.returncode == 1
    return failed.value.stderr


@pytest.mark.parametrize(
    "env, key",
    [
        ({"PUCCICAM_API_LIMIT": "ten per minute"}, "api.limit"),
        ({"PUCCICAM_API_LIMIT": ""}, "api.limit"),
        ({"PUCCICAM_METRICS_ENABLED": "maybe"}, "metrics.enabled"),
    ],
)
def test_bad_api_and_metrics_settings_stop_start_up_naming_the_key(env, key):
    from puccicam.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=re.escape(f"{key} (from {next(iter(env))})")):
        load_config(env=env)


# -- the command, in-process ----------------------------------------------------------


def _cli(*args: str, data: Path):
    from click.testing import CliRunner

    from puccicam.cli import main

    quick = {"PUCCICAM_WEB_BCRYPT_ROUNDS": "4"}  # the app is built per command
    return CliRunner().invoke(main, [*args, "--data-dir", str(data)], env=quick)


def test_token_commands_say_what_is_wrong_in_one_line(tmp_path):
    data = tmp_path / "data"
    bad = _cli("token", "add", "no spaces please", data=data)
    assert bad.exit_code == 1 and "a token name is 1 to 64" in bad.output
    assert not data.exists()  # refused before anything was made
    data.mkdir()
    assert "no tokens yet" in _cli("token", "list", data=data).output
    unknown = _cli("token", "revoke", "ha", data=data)
    assert unknown.exit_code == 1 and "there is no token named 'ha'" in unknown.output
    made = _cli("token", "add", "ha", "--metrics", data=data)
    assert made.exit_code == 0, made.output
    token = made.stdout.strip().splitlines()[-1]
    assert token.startswith("pcam_") and "opens /metrics and nothing else" in made.output
    listed = _cli("token", "list", data=data).output
    assert "ha\tmetrics\tmade " in listed and "never used" in listed and token not in listed
    again = _cli("token", "add", "HA", data=data)
    assert again.exit_code == 1 and "already exists" in again.output
    assert _cli("token", "revoke", "ha", data=data).output == "token ha revoked\n"
    assert "no tokens yet" in _cli("token", "list", data=data).output
