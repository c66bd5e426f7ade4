"""Login, logout, sessions and rate limits, through the real forms."""

from __future__ import annotations

import logging
import time

import pytest

from tests.helpers.site import PASSWORD


def test_login_page_posts_username_and_password_with_csrf(client):
    page = client.get("/login").get_data(as_text=True)
    assert 'name="username"' in page and 'name="password"' in page and 'name="csrf_token"' in page


def test_login_then_gallery(auth, client):
    auth.create()
    response = auth.login()
    assert response.status_code == 302 and response.headers["Location"] == "/gallery"
    assert client.get("/gallery").status_code == 200


def _body(response) -> str:
    return response.get_data(as_text=True).split('name="csrf_token"')[0]


def test_unknown_user_and_wrong_password_look_the_same(auth):
    auth.create()
    wrong = auth.login(password="not the password")
    unknown = auth.login(username="nobody")
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong username or password." in wrong.get_data(as_text=True)
    assert _body(wrong) == _body(unknown)


def test_unknown_user_costs_a_bcrypt_check_too(app, auth):
    from webapp import state

    auth.create()
    with app.app_context():
        accounts = state().accounts
        known, unknown = [], []
        for _ in range(15):  # interleaved, and the fastest of each: robust to a busy machine
            for name, samples in (("owner", known), ("nobody", unknown)):
                start = time.perf_counter()
                accounts.verify(name, "wrong password")
                samples.append(time.perf_counter() - start)
    assert 0.5 < min(unknown) / min(known) < 2.0


@pytest.mark.parametrize("password", ["x" * 73, "ä" * 40, "p" * 10_000])
def test_overlong_password_at_login_is_an_ordinary_failure(auth, password):
    auth.create()
    assert auth.login(password=password).status_code == 401


@pytest.mark.parametrize("username", ["", "ünïcödé", "x" * 10_000, "owner\0", " owner"])
def test_odd_usernames_are_ordinary_failures(auth, username):
    auth.create()
    response = auth.login(username=username)
    assert response.status_code in (401, 302, 413)
    assert response.status_code != 302 or username.strip() == "owner"


def test_login_without_csrf_token_is_refused(auth, client):
    auth.create()
    response = client.post("/login", data={"username": "owner", "password": PASSWORD})
    assert response.status_code == 400
    assert "The form has expired" in response.get_data(as_text=True)
    assert client.get("/gallery").status_code == 302


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/photo/x", "/photo/x"),
        ("/status?x=1", "/status?x=1"),
        ("//evil.example", "/gallery"),
        ("/\\evil.example", "/gallery"),
        ("https:evil.example", "/gallery"),
        ("https://evil.example/", "/gallery"),
        ("%2F%2Fevil.example", "/gallery"),
        ("javascript:alert(1)", "/gallery"),
        ("/\tevil", "/gallery"),
    ],
)
def test_next_accepts_only_local_paths(auth, target, expected):
    auth.create()
    response = auth.login(next=target)
    assert response.headers["Location"] == expected


def test_session_cookie_flags_and_fresh_session(auth, client):
    auth.create()
    client.get("/login")
    before = client.get_cookie("puccicam_session")
    response = auth.login(remember=True)
    cookies = "\n".join(response.headers.getlist("Set-Cookie"))
    assert "puccicam_session=" in cookies and "HttpOnly" in cookies and "SameSite=Lax" in cookies
    assert "Secure" not in cookies  # plain http on loopback
    assert "puccicam_remember=" in cookies
    assert client.get_cookie("puccicam_session").value != before.value


def test_remember_me_lasts_at_most_30_days(auth):
    auth.create()
    cookies = auth.login(remember=True).headers.getlist("Set-Cookie")
    remember = next(c for c in cookies if c.startswith("puccicam_remember="))
    expires = remember.split("Expires=")[1].split(";")[0]
    from email.utils import parsedate_to_datetime

    days = (parsedate_to_datetime(expires).timestamp() - time.time()) / 86400
    assert 29 < days <= 30.01


def test_logout_is_post_only_and_ends_every_session(auth, app):
    auth.create()
    auth.login()
    other = app.test_client()  # the same owner on a second device
    from tests.helpers.site import AuthActions

    AuthActions(other, app).login()
    assert other.get("/gallery").status_code == 200
    assert auth.client.get("/logout").status_code == 405
    assert auth.logout().status_code == 302
    assert auth.client.get("/gallery").status_code == 302
    assert other.get("/gallery").status_code == 302


def test_cookie_replayed_after_logout_is_dead(auth, client, app):
    auth.create()
    auth.login(remember=True)
    session = client.get_cookie("puccicam_session").value
    remember = client.get_cookie("puccicam_remember").value
    auth.logout()
    thief = app.test_client()
    thief.set_cookie("puccicam_session", session)
    thief.set_cookie("puccicam_remember", remember)
    assert thief.get("/gallery").status_code == 302


def test_password_change_ends_sessions(auth, client, app):
    from webapp import state

    auth.create()
    auth.login()
    with app.app_context():
        state().accounts.set_password("owner", "a brand new password")
    assert client.get("/gallery").status_code == 302
    assert auth.login(password="a brand new password").status_code == 302


def test_forged_and_tampered_cookies_are_ignored(auth, client, app):
    auth.create()
    auth.login()
    value = client.get_cookie("puccicam_session").value
    forged = app.test_client()
    forged.set_cookie(
        "puccicam_session", value[:-3] + ("AAA" if not value.endswith("AAA") else "BBB")
    )
    assert forged.get("/gallery").status_code == 302
    forged.set_cookie("puccicam_session", "eyJfdXNlcl9pZCI6IjE6MSJ9.fake.signature")
    assert forged.get("/gallery").status_code == 302
    forged.set_cookie("puccicam_remember", "1:1|" + "0" * 128)
    assert forged.get("/gallery").status_code == 302


def test_login_rate_limit_per_ip_answers_429(auth, client):
    auth.create()
    codes = [auth.login(username=f"guess{i}").status_code for i in range(12)]
    assert codes[:10] == [401] * 10 and codes[10] == 429
    page = auth.login().get_data(as_text=True)
    assert "Too many attempts" in page  # even the right password waits


def _attempt(app, username: str, password: str, address: str, **kwargs) -> int:
    """A login by a fresh visitor from ``address``; the status code."""
    from tests.helpers.site import AuthActions

    client = app.test_client()
    token = AuthActions(client, app).token()
    data = {"username": username, "password": password, "csrf_token": token, **kwargs}
    return client.post("/login", data=data, environ_base={"REMOTE_ADDR": address}).status_code


@pytest.fixture
def waits(monkeypatch) -> list[float]:
    """The slow-down waits the login view asked for (the clock is mocked, not slept)."""
    import webapp.auth

    asked: list[float] = []
    monkeypatch.setattr(webapp.auth, "_wait", lambda seconds: asked.append(seconds) or True)
    return asked


def test_a_stranger_guessing_from_many_addresses_cannot_lock_the_owner_out(auth, app, waits):
    auth.create("alice")
    codes = [_attempt(app, "ALICE", "nope", f"127.0.0.{2 + i % 5}") for i in range(26)]
    assert codes == [401] * 26  # never a 429: each address stays under its own limits
    # After 20 failures (web.login_limit_user) each attempt waits, longer each time, capped.
    assert waits == [0.25, 0.5, 1.0, 2.0, 3.0, 3.0]
    assert _attempt(app, "alice", PASSWORD, "127.0.0.1") == 302  # the owner gets in
    assert waits[-1] == 3.0


def test_a_guesser_from_one_address_is_blocked_and_only_there(auth, app, waits, caplog):
    caplog.set_level(logging.INFO)
    auth.create("alice")
    app.config.update(LOGIN_LIMIT_IP="1000 per minute", LOGIN_LIMIT_USER="3 per hour")
    typed = "Alice "
    codes = [_attempt(app, typed, "nope", "10.0.0.9") for _ in range(5)]
    assert codes == [401, 401, 401, 429, 429]
    assert _attempt(app, "someone-else", "nope", "10.0.0.9") == 401  # this name and address
    assert _attempt(app, "alice", PASSWORD, "10.0.0.10") == 302  # another address gets in
    # Flask-Limiter logs the key of a limit it enforces: no typed name in it.
    assert "login-user:" in caplog.text
    assert "Alice" not in caplog.text and "login-user:alice" not in caplog.text


def test_an_address_the_owner_logged_in_from_never_waits(auth, app, waits):
    auth.create("alice")
    assert _attempt(app, "alice", PASSWORD, "192.0.2.7") == 302  # the owner's home
    codes = [_attempt(app, "ALICE", "nope", f"127.0.0.{2 + i % 5}") for i in range(24)]
    assert codes == [401] * 24 and len(waits) == 4  # the name is under attack
    assert _attempt(app, "alice", PASSWORD, "192.0.2.7") == 302
    assert len(waits) == 4  # from home: no wait at all
    assert _attempt(app, "alice", PASSWORD, "198.51.100.1") == 302
    assert len(waits) == 5  # from elsewhere: slowed like anyone


def test_slowed_attempts_never_hold_more_than_half_the_threads(auth, app, monkeypatch):
    import webapp.auth

    auth.create("alice")
    app.config.update(LOGIN_LIMIT_USER="2 per hour", LOGIN_WAITERS=2)
    monkeypatch.setattr(webapp.auth.time, "sleep", lambda seconds: None)
    for i in range(3):
        assert _attempt(app, "alice", "nope", f"127.0.0.{2 + i}") == 401
    monkeypatch.setattr(webapp.auth, "_waiting", [2])  # two attempts are waiting already
    assert _attempt(app, "alice", "nope", "127.0.0.9") == 429  # at once, not a third
    monkeypatch.setattr(webapp.auth, "_waiting", [1])
    assert _attempt(app, "alice", PASSWORD, "127.0.0.9") == 302  # room again


def test_an_ipv6_64_is_one_client_for_the_limits(auth, app):
    auth.create()
    app.config.update(LOGIN_LIMIT_IP="3 per minute")
    codes = [_attempt(app, "owner", "nope", f"2001:db8:1:2::{i:x}") for i in range(1, 5)]
    assert codes == [401, 401, 401, 429]  # four addresses of one /64: one client
    assert _attempt(app, "owner", "nope", "2001:db8:1:3::1") == 401  # another /64


def test_successful_logins_do_not_count(auth, app):
    auth.create()
    app.config.update(LOGIN_LIMIT_IP="3 per minute", LOGIN_LIMIT_USER="3 per hour")
    assert [_attempt(app, "owner", PASSWORD, "10.0.0.1") for _ in range(6)] == [302] * 6
    codes = [_attempt(app, "owner", "nope", "10.0.0.1") for _ in range(4)]
    assert codes == [401, 401, 401, 429]


def test_failed_login_log_holds_no_typed_name_only_a_digest(auth, app, caplog):
    import hashlib

    from webapp.auth import name_digest

    auth.create("alice")
    typed = "my secret password"  # typed into the name field by mistake
    auth.login(username=typed)
    auth.login(username="ALICE", password="nope")
    assert typed not in caplog.text and "secret" not in caplog.text
    with app.test_request_context():
        digest = name_digest(typed)
    assert f"digest {digest})" in caplog.text
    # Keyed with the app's secret: a dictionary of hashed passwords does not find it.
    assert hashlib.sha256(typed.encode()).hexdigest()[:8] != digest
    assert "login failed for alice from" in caplog.text  # a known name, as it was created


def test_login_takes_the_username_in_any_case(auth, client, caplog):
    caplog.set_level(logging.INFO)
    auth.create("Alice")
    assert auth.login(username="alice").status_code == 302
    assert "login ok: Alice" in caplog.text
    assert client.get("/gallery").status_code == 200


def _remember_cookie(response) -> str:
    return next(
        c for c in response.headers.getlist("Set-Cookie") if c.startswith("puccicam_remember=")
    )


def test_every_login_gets_its_own_remember_token(auth, client, app):
    from tests.helpers.site import AuthActions

    auth.create()
    first = _remember_cookie(auth.login(remember=True))
    second = _remember_cookie(AuthActions(app.test_client(), app).login(remember=True))
    assert first.split(";")[0] != second.split(";")[0]


def test_a_copied_remember_cookie_stops_working_after_remember_days(
    auth, client, app, photos, monkeypatch
):
    import webapp.sessions

    auth.create()
    auth.login(remember=True)
    remember = client.get_cookie("puccicam_remember").value
    session = client.get_cookie("puccicam_session").value
    photo = f"/photos/{photos[-1].name}"

    def thief(**cookies):
        other = app.test_client()
        for name, value in cookies.items():
            other.set_cookie(name, value)
        return other

    assert thief(puccicam_remember=remember).get("/gallery").status_code == 200
    later = time.time() + 30 * 86400 + 60  # web.remember_days (30) and a minute
    monkeypatch.setattr(webapp.sessions, "_now", lambda: later)
    app.wsgi_app.sessions.clear()
    assert thief(puccicam_remember=remember).get("/gallery").status_code == 302
    # The session carries the same token: it ends too, on Flask's path and the fast path.
    assert thief(puccicam_session=session).get("/gallery").status_code == 302
    assert thief(puccicam_session=session).get(photo).status_code == 302


def test_logout_deletes_the_remember_cookie_in_the_browser(auth, client):
    auth.create()
    auth.login(remember=True)
    response = auth.logout()
    cleared = _remember_cookie(response)
    assert cleared.startswith("puccicam_remember=;") and "Expires=Thu, 01 Jan 1970" in cleared
    assert client.get_cookie("puccicam_remember") is None


def test_remember_cookie_is_secure_by_the_session_cookies_rule(auth, app):
    """Served as HTTPS (a proxy said so) with web.https off: both cookies are Secure."""
    from tests.helpers.site import CSRF

    auth.create()
    client = app.test_client()
    https = {"base_url": "https://localhost", "headers": {"Referer": "https://localhost/login"}}
    token = CSRF.search(client.get("/login", **https).get_data(as_text=True)).group(1)
    data = {"username": "owner", "password": PASSWORD, "csrf_token": token, "remember": "y"}
    response = client.post("/login", data=data, **https)
    assert response.status_code == 302
    cookies = response.headers.getlist("Set-Cookie")
    assert all("; Secure" in c for c in cookies), cookies
    assert any(c.startswith("puccicam_remember=") for c in cookies)


@pytest.mark.parametrize("page", ["/gallery", "/photo/{name}", "/status", "/"])
def test_pages_are_never_stored_by_a_cache(auth, client, photos, page):
    auth.create()
    auth.login()
    response = client.get(page.format(name=photos[-1].name))
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert response.headers["Cache-Control"] == "no-store"


def test_a_removed_owners_cookie_never_opens_a_new_account(auth, client, app):
    from webapp import state

    auth.create("alice")
    auth.login("alice")
    with app.app_context():
        state().accounts.remove("alice")
        state().accounts.add("bob", "bobs good password")
    assert client.get("/gallery").status_code == 302


@pytest.mark.parametrize("zone", [":/etc/localtime", "CET-1CEST", "Mars/Olympus_Mons"])
def test_odd_time_zone_settings_fall_back_instead_of_failing(make_config, monkeypatch, zone):
    from webapp import create_app

    monkeypatch.setenv("TZ", zone)
    app = create_app(make_config(web__bcrypt_rounds=4))
    assert app.config["BABEL_DEFAULT_TIMEZONE"]
    assert app.test_client().get("/login").status_code == 200


@pytest.mark.parametrize(
    ("days", "label"), [(30, "for 30 days"), (1, "for 1 day"), (7, "for 7 days")]
)
def test_the_remember_box_names_web_remember_days(make_config, days, label):
    from webapp import create_app

    app = create_app(make_config(web__bcrypt_rounds=4, web__remember_days=days))
    assert f"Keep me logged in {label}" in app.test_client().get("/login").get_data(as_text=True)


def _login_from(port: int, address: str, username: str, password: str) -> int:
    """A fresh visitor's login over a real socket from ``address``; the status code."""
    import http.client
    import re
    from urllib.parse import urlencode

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(address, 0))
    try:
        conn.request("GET", "/login")
        page = conn.getresponse()
        body = page.read().decode()
        cookie = page.getheader("Set-Cookie").split(";")[0]
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', body).group(1)
        form = urlencode({"username": username, "password": password, "csrf_token": token})
        headers = {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"}
        conn.request("POST", "/login", body=form, headers=headers)
        reply = conn.getresponse()
        reply.read()
        return reply.status
    finally:
        conn.close()


@pytest.mark.slow
def test_a_real_server_lets_the_owner_in_while_a_stranger_guesses_her_name(tmp_path, make_config):
    """Against ``puccicam serve`` with its default limits, over real sockets from several
    loopback addresses: 22 wrong passwords for ALICE, then alice's own from 127.0.0.1."""
    from tests.helpers.live import ServerProcess
    from webapp import create_app, state

    data = tmp_path / "data"
    with create_app(make_config(data_dir=data, web__bcrypt_rounds=4)).app_context():
        state().accounts.add("alice", PASSWORD)
    server = ServerProcess(data, env={"PUCCICAM_WEB_BCRYPT_ROUNDS": "4"})
    try:
        guesses = [_login_from(server.port, f"127.0.0.{2 + i % 4}", "ALICE", "nope")
                   for i in range(22)]  # fmt: skip
        assert guesses == [401] * 22
        started = time.monotonic()
        assert _login_from(server.port, "127.0.0.1", "alice", PASSWORD) == 302
        assert time.monotonic() - started < 3.0 + 2.0  # the slow-down's cap, and a margin
        # One address guessing on is blocked: 10 failures a minute per address.
        from_one = [_login_from(server.port, "127.0.0.9", "bob", "nope") for _ in range(11)]
        assert from_one == [401] * 10 + [429]
    finally:
        server.stop()


@pytest.mark.slow
def test_slowed_logins_never_starve_the_site(tmp_path, make_config):
    """``puccicam serve`` (4 threads): a name under attack, 12 slowed attempts at once from
    12 addresses; the site keeps answering and the surplus gets a 429 at once."""
    import concurrent.futures
    import urllib.request

    from tests.helpers.live import ServerProcess
    from webapp import create_app, state

    data = tmp_path / "data"
    with create_app(make_config(data_dir=data, web__bcrypt_rounds=4)).app_context():
        state().accounts.add("alice", PASSWORD)
    server = ServerProcess(data, env={"PUCCICAM_WEB_BCRYPT_ROUNDS": "4"})
    try:
        for i in range(26):  # past web.login_limit_user: every attempt for alice waits 3 s
            assert _login_from(server.port, f"127.0.1.{1 + i % 8}", "alice", "nope") == 401
        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            attempts = [
                pool.submit(_login_from, server.port, f"127.0.2.{i}", "alice", "nope")
                for i in range(1, 13)
            ]
            time.sleep(0.5)  # they are in, waiting
            started = time.monotonic()
            with urllib.request.urlopen(server.base + "/login", timeout=10) as page:
                assert page.status == 200
            assert time.monotonic() - started < 1.0  # a thread was free for it
            codes = sorted(f.result() for f in attempts)
        assert 401 in codes and 429 in codes  # some waited, the rest were turned away
    finally:
        server.stop()
