"""A running site: the app under a real waitress server, an owner, and the hostile checks.

:func:`serving` and :func:`waitress_thread` put an app under waitress on a free loopback
port; :class:`AuthActions` logs in and out through the real forms; :class:`Site` is what
the hostile tests attack. Every attack is checked three ways: the answer is a 4xx (an
anonymous visitor on an owners' page may instead get the usual redirect to the login
page), no answer carries a photo byte or anything secret, and the data dir (photos,
thumbnails, accounts, secret key) is byte for byte the same afterwards.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import sqlite3
import threading
from pathlib import Path
from urllib.parse import quote, urlencode

from camera.store import PhotoStore
from tests.helpers.rawhttp import FORM, Reply, build, merge_cookies, parse_replies, send_raw

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
ATTACKS = [0]  # hostile requests sent this session, for tests/helpers/soak.py's figures
# Words no answer may hold: a traceback, or the software and its versions. As words:
# cookies and CSRF tokens are random base64, which now and then spells "flask" inside.
SOFTWARE_WORDS = [
    re.compile(rb"(?<![a-z0-9_-])" + re.escape(word) + rb"(?![a-z])", re.IGNORECASE)
    for word in (b"traceback", b'file "', b"werkzeug", b"waitress", b"python", b"flask",
                 b"jinja", b"sqlalchemy", b"sqlite")
]  # fmt: skip


class AuthActions:
    """Create an owner, log in and out through the real forms (with CSRF tokens)."""

    def __init__(self, client, app) -> None:
        self.client = client
        self.app = app

    def create(self, username: str = "owner", password: str = PASSWORD) -> None:
        from webapp import state

        with self.app.app_context():
            state().accounts.add(username, password)

    def token(self, path: str = "/login") -> str:
        match = CSRF.search(self.client.get(path).get_data(as_text=True))
        assert match, f"no CSRF token on {path}"
        return match.group(1)

    def login(self, username: str = "owner", password: str = PASSWORD, next: str | None = None,
              remember: bool = False):  # fmt: skip
        data = {"username": username, "password": password, "csrf_token": self.token()}
        if remember:
            data["remember"] = "y"
        url = "/login" + (f"?next={quote(next)}" if next else "")
        return self.client.post(url, data=data)

    def logout(self):
        return self.client.post("/logout", data={"csrf_token": self.token("/")})


@contextlib.contextmanager
def serving(app):
    """The app under a real waitress server on a free loopback port; yields the server."""
    from webapp import state
    from webapp.server import make_server

    with app.app_context():
        config = state().config
    server = make_server(app, config, host="127.0.0.1", port=0)

    def run() -> None:
        with contextlib.suppress(OSError):  # sockets closed from the test's thread: done
            server.run()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.task_dispatcher.shutdown()  # let workers finish before their wake-up pipe goes
        server.close()
        thread.join(5)


@contextlib.contextmanager
def waitress_thread(app):
    """The app under a real waitress server on a free loopback port; yields its URL."""
    with serving(app) as server:
        yield f"http://127.0.0.1:{server.effective_port}"


class Site:
    """The app under waitress, an owner, twelve photos, and the checks every attack gets."""

    def __init__(self, app, url: str, photos, tmp_path: Path) -> None:
        from webapp import state

        self.app = app
        self.port = int(url.rsplit(":", 1)[1])
        self.photo = photos[-1].name
        with app.app_context():
            config = state().config
        self.data_dir = config.data_dir
        self.database = config.database_path
        self.store = PhotoStore(config.photos_dir, config.thumbs_dir)
        passwd = Path("/etc/passwd")
        self.secrets = [
            app.secret_key.encode(),
            str(tmp_path).encode(),
            str(Path(__file__).resolve().parents[2]).encode(),  # where the code lives
            b"SQLite format 3",  # the accounts file
            b"$2b$",  # a bcrypt hash
            b"def create_app",  # source code
            passwd.read_bytes().splitlines()[0] if passwd.is_file() else b"root:x:0:0:",
        ]

    # -- sending

    def send(self, data: bytes, *, half_close: bool = False) -> bytes:
        return send_raw(self.port, data, half_close=half_close)

    def fetch(self, method: str, target: str | bytes, **kwargs) -> Reply:
        """A well-formed request expecting exactly one reply (controls and set-up)."""
        replies = parse_replies(self.send(build(method, target, **kwargs)))
        assert len(replies) == 1, replies
        return replies[0]

    # -- visitors

    def visitor(self) -> tuple[dict, str]:
        """A fresh visitor's cookies and the CSRF token of its login form."""
        reply = self.fetch("GET", "/login")
        return merge_cookies({}, reply), CSRF.search(reply.text).group(1)

    def login_request(
        self,
        username: str = "owner",
        password: str = PASSWORD,
        target: str | bytes = "/login",
        remember: bool = False,
        cookies: dict | None = None,
    ) -> bytes:
        """A login by a fresh visitor (or, with its ``cookies``, a given one)."""
        fresh, token = self.visitor()
        if cookies is not None:
            cookies.update(fresh)
        form = {"username": username, "password": password, "csrf_token": token}
        if remember:
            form["remember"] = "y"
        body = urlencode(form).encode()
        return build("POST", target, headers=[FORM], body=body, cookies=fresh)

    def owner(self, remember: bool = False) -> tuple[dict, str]:
        """Cookies of a logged-in owner and a CSRF token for its forms."""
        cookies: dict = {}
        replies = parse_replies(self.send(self.login_request(remember=remember, cookies=cookies)))
        assert replies[0].status == 302, replies
        cookies = merge_cookies(cookies, replies[0])
        page = self.fetch("GET", "/", cookies=cookies)
        return merge_cookies(cookies, page), CSRF.search(page.text).group(1)

    def has_access(self, cookies: dict) -> bool:
        """Do these cookies open the gallery (Flask) or a photo (the fast path)?"""
        gallery = self.fetch("GET", "/gallery", cookies=cookies)
        photo = self.fetch("GET", f"/photos/{self.photo}", cookies=cookies)
        return gallery.status == 200 or photo.status == 200

    # -- what must not change

    def snapshot(self) -> dict:
        """Every file in the data dir (by content), the accounts table, the photo list."""
        files = {
            str(path.relative_to(self.data_dir)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(self.data_dir.rglob("*"))
            if path.is_file() and not path.name.endswith(("-journal", "-wal", "-shm"))
        }
        conn = sqlite3.connect(f"file:{self.database}?mode=ro", uri=True)
        try:
            accounts = conn.execute(
                "SELECT id, username, email, password_hash, session_version FROM user ORDER BY id"
            ).fetchall()
        finally:
            conn.close()
        return {"files": files, "accounts": accounts, "photos": list(self.store.photos())}

    # -- the checks

    def no_leak(self, what: str, raw: bytes, sent: bytes = b"") -> None:
        """No secret, and no word naming the software, unless the request said it first
        (every page echoes its own path into the language switcher's form)."""
        for secret in self.secrets:
            assert secret not in raw, f"{what}: the answer leaks {secret[:40]!r}"
        for word in SOFTWARE_WORDS:
            if not word.search(sent):
                assert not word.search(raw), f"{what}: the answer mentions {word.pattern!r}"

    def refused(
        self,
        what: str,
        data: bytes,
        *,
        anonymous: bool,
        half_close: bool = False,
        statuses: tuple[int, ...] | None = None,
    ) -> list[Reply]:
        """Send an attack; assert it was refused, leaked nothing and changed nothing."""
        before = self.snapshot()
        ATTACKS[0] += 1
        raw = self.send(data, half_close=half_close)
        replies = parse_replies(raw)
        assert replies or half_close, f"{what}: no answer at all"
        for reply in replies:
            location = reply.header("Location") or ""
            to_login = reply.status == 302 and location.startswith("/login?next=")
            refused = 400 <= reply.status < 500 or (anonymous and to_login)
            assert refused, f"{what}: answered {reply.status}"
            if statuses is not None:
                assert reply.status in statuses, f"{what}: {reply.status}, not {statuses}"
            assert b"\xff\xd8" not in reply.body, f"{what}: photo bytes in the answer"
        self.no_leak(what, raw, data)
        assert self.snapshot() == before, f"{what}: the data dir changed"
        return replies
