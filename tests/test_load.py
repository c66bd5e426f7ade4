"""Load and slow clients against the real waitress server, from loopback.

The load comes from wrk, a second process, with the owners' mix of ``tests/load_mix.lua``;
the server is ``puccicam serve`` in a process of its own (``tests/helpers/live.py``), so its RSS
is its own. Quick by default; ``scripts/soak`` runs the issue's 100 clients for 60 s.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from puccicam.config import env_name, load_config
from tests.helpers.frames import frame_bytes
from tests.helpers.live import ServerProcess, login, login_form
from tests.helpers.site import serving
from tests.helpers.soak import record, scaled

pytestmark = pytest.mark.slow

PASSWORD = "a long owner password"
MIX = Path(__file__).with_name("load_mix.lua")


def _data_dir(tmp_path: Path, photos: int) -> tuple[Path, list[str]]:
    """An owner (bcrypt at the default cost) and a day of photos, through the real APIs."""
    from webapp import create_app, state

    data_dir = tmp_path / "data"
    app = create_app(load_config(env={}, overrides={"data_dir": data_dir}))
    frame = frame_bytes("good-chelsea.jpg")
    now = time.time()
    with app.app_context():
        state().accounts.add("owner", PASSWORD)
        names = [state().store.save(frame, now - 60 - 300 * i).name for i in range(photos)]
    return data_dir, names


def _wrk(base: str, mix: Path, clients: int, seconds: int) -> dict:
    args = ["wrk", "-t2", f"-c{clients}", f"-d{seconds}s", "--timeout", "10s", "-s", str(MIX),
            base]  # fmt: skip
    out = subprocess.run(
        args,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PCTEST_LOAD_MIX": str(mix)},
        timeout=seconds + 60,
    ).stdout
    result = {
        "errors": {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", out)},
        "latency": {p: float(v) for p, v in re.findall(r"^latency (\S+) ([\d.]+)$", out, re.M)},
        "output": out,
    }
    requests, duration = re.search(r"^requests (\d+) seconds ([\d.]+)$", out, re.M).groups()
    result["requests"], result["rate"] = int(requests), int(requests) / float(duration)
    return result


def test_a_hundred_owners_for_a_minute_get_no_errors_and_no_leak(tmp_path):
    if not shutil.which("wrk"):
        if os.environ.get("CI"):
            pytest.fail("CI must have wrk (.ci/run installs it)")
        pytest.skip("needs wrk (apt-get install wrk)")
    clients, seconds, warmup = 100, scaled(8, 60), scaled(3, 10)
    data_dir, names = _data_dir(tmp_path, 288)
    # The login limiter would answer this one address with 429s; it has its own tests.
    limits = {env_name("web.login_limit_ip"): "1000000 per minute",
              env_name("web.login_limit_user"): "1000000 per minute"}  # fmt: skip
    server = ServerProcess(data_dir, env=limits, log=tmp_path / "serve.log")
    try:
        cold = server.rss_kb()
        cookies = [login(server.base, "owner", PASSWORD) for _ in range(4)]
        form_cookie, form = login_form(server.base, "owner", PASSWORD)
        # What owners' browsers ask for: a gallery view is one page, a hero photo, about
        # fifty thumbnails and a poll of /api/latest every few seconds; logins are rare.
        lines = [f"/200\tPOST\t/login\t{form_cookie}\t{form}", "2\tGET\t/login\t\t"]
        for i, cookie in enumerate(cookies):
            lines.append(f"0.5\tGET\t/gallery\t{cookie}\t")
            lines.append(f"1.5\tGET\t/api/latest\t{cookie}\t")
            for name in names[i::4]:
                lines.append(f"{30 / len(names)}\tGET\t/photos/{name}\t{cookie}\t")
                lines.append(f"{60 / len(names)}\tGET\t/thumbs/{name}\t{cookie}\t")
        mix = tmp_path / "mix.tsv"
        mix.write_text("\n".join(lines) + "\n")

        # Every thumbnail made once (as an owner's first look at the gallery would), then
        # caches and threads warmed: the measured minute is the steady state.
        for name in names:
            thumb = urllib.request.Request(f"{server.base}/thumbs/{name}")
            thumb.add_header("Cookie", cookies[0])
            assert urllib.request.urlopen(thumb, timeout=10).status == 200
        _wrk(server.base, mix, clients, warmup)
        start = server.rss_kb()
        logged_before = (tmp_path / "serve.log").stat().st_size
        samples: list[int] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(1):
                samples.append(server.rss_kb())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        result = _wrk(server.base, mix, clients, seconds)
        stop.set()
        sampler.join(5)
        end = server.rss_kb()
        # A normal owner still gets through right after the load.
        request = urllib.request.Request(server.base + "/gallery", headers={"Cookie": cookies[0]})
        assert urllib.request.urlopen(request, timeout=10).status == 200
    finally:
        assert server.stop() == 0

    errors = result["errors"]
    assert not any(errors.values()), result["output"]  # status=: answers of 400 and up
    # The server's own request log says what each answer was, per route.
    answered = Counter(
        (method, path.split("/")[1], status)
        for method, path, status in re.findall(
            r"webapp\.requests: (\w+) (\S+) (\d{3}) ",
            (tmp_path / "serve.log").read_bytes()[logged_before:].decode(errors="replace"),
        )
    )
    statuses = Counter()
    for (_, _, status), count in answered.items():
        statuses[status] += count
    assert not [s for s in statuses if s.startswith("5")], answered
    # Each route as an owner gets it: logins redirect to the gallery, the rest is a 200
    # (a 302 there would be a lost session, sent to the login page).
    for (method, route, status), _count in answered.items():
        assert status == ("302" if method == "POST" else "200"), (method, route, status)
    assert answered[("POST", "login", "302")] >= 1, answered  # logins ran, and succeeded
    assert sum(statuses.values()) >= result["requests"] * 0.99  # all logged (bar a last few)
    growth = (end - start) / start
    assert growth < 0.10, f"RSS grew {growth:.1%}: {start} -> {end} KiB (samples {samples})"
    record("load", "clients", clients)
    record("load", "seconds", seconds)
    record("load", "requests", result["requests"])
    record("load", "requests/s", round(result["rate"]))
    record("load", "responses by route", {" ".join(k): v for k, v in sorted(answered.items())})
    record("load", "errors (connect/read/write/timeout)", sum(errors.values()))
    record("load", "latency p50/p99/max ms", [result["latency"][p] for p in ("p50", "p99", "max")])
    record("load", "RSS KiB cold/start/end/peak", [cold, start, end, max([*samples, end])])
    record("load", "RSS growth start to end", f"{growth:+.1%}")


# -- slow clients ---------------------------------------------------------------------


@contextlib.contextmanager
def _guarded_server(make_config, **overrides):
    from webapp import create_app

    with serving(create_app(make_config(**overrides))) as server:
        yield server


class Slowloris:
    """``count`` connections that each began a request and add a header line a second.

    With ``reconnect`` it behaves like a real attacker: a connection the server closes
    is opened again at once (within 50 ms), so the slots are never left free for long.
    """

    def __init__(self, port: int, count: int, reconnect: bool = False) -> None:
        self.port, self.reconnect, self.reopened = port, reconnect, 0
        self.conns = [self._open() for _ in range(count)]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _open(self) -> socket.socket:
        conn = socket.create_connection(("127.0.0.1", self.port))
        conn.sendall(b"GET / HTTP/1.1\r\nHost: pet\r\n")
        return conn

    @staticmethod
    def _closed(conn: socket.socket) -> bool:
        try:
            return conn.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def _run(self) -> None:
        ticks = 0
        while not self._stop.wait(0.05):
            ticks += 1
            for i, conn in enumerate(self.conns):
                if self.reconnect and self._closed(conn):
                    conn.close()
                    with contextlib.suppress(OSError):
                        self.conns[i] = self._open()
                        self.reopened += 1
                elif ticks % 20 == 0:
                    with contextlib.suppress(OSError):
                        conn.sendall(b"X-Slow: 1\r\n")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self.conns:
            conn.close()


def _held(server, expected: int, timeout: float = 10) -> int:
    deadline = time.monotonic() + timeout
    while len(server.active_channels) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return len(server.active_channels)


def test_slowloris_up_to_the_connection_limit_does_not_lock_out_an_owner(make_config, caplog):
    limit = 100
    with _guarded_server(make_config, web__connection_limit=limit) as server:
        attack = Slowloris(server.effective_port, limit, reconnect=True)
        try:
            # Every slot is held: the configured limit counts client connections only.
            assert _held(server, limit) == limit
            time.sleep(server.patience + 0.5)  # they have all stalled by now
            url = f"http://127.0.0.1:{server.effective_port}/login"
            waits = []
            for _ in range(5):  # a normal visitor, several times over, while it goes on
                started = time.monotonic()
                assert urllib.request.urlopen(url, timeout=15).status == 200
                waits.append(time.monotonic() - started)
                time.sleep(1)
            reopened = attack.reopened
            assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
        finally:
            attack.close()
    assert reopened >= limit // 2  # the attacker did come back for the slots it lost
    assert max(waits) < server.patience + 2
    record("load", "slowloris: connections held at the limit, reopened when closed", limit)
    record("load", "slowloris: attacker connections reopened", reopened)
    record("load", "slowloris: longest wait of a normal visitor (s)", round(max(waits), 2))


def test_without_the_guard_slowloris_would_lock_everyone_out(make_config, monkeypatch):
    """The check above can fail: waitress alone stops accepting at the limit."""
    from webapp.guard import GuardedServer

    monkeypatch.setattr(GuardedServer, "_make_room", lambda self: None)
    limit = 20
    with _guarded_server(make_config, web__connection_limit=limit) as server:
        attack = Slowloris(server.effective_port, limit)
        try:
            assert _held(server, limit) == limit
            with pytest.raises(OSError, match="timed out"):
                urllib.request.urlopen(f"http://127.0.0.1:{server.effective_port}/", timeout=3)
        finally:
            attack.close()


def test_a_busy_owner_is_never_evicted_as_stalled(make_config, caplog):
    """Only stalled connections go: one that keeps sending whole requests stays open."""
    limit = 10
    with _guarded_server(make_config, web__connection_limit=limit) as server:
        attack = Slowloris(server.effective_port, limit - 1)
        try:
            assert _held(server, limit - 1) == limit - 1
            owner = http.client.HTTPConnection("127.0.0.1", server.effective_port, timeout=10)

            def visit() -> int:
                owner.request("GET", "/login")
                response = owner.getresponse()
                response.read()
                return response.status

            deadline = time.monotonic() + server.patience + 2
            while time.monotonic() < deadline:  # keep-alive requests on one connection
                assert visit() == 200
                time.sleep(0.2)
            # At the limit now: a newcomer is let in by closing a slowloris, not the owner.
            assert urllib.request.urlopen(
                f"http://127.0.0.1:{server.effective_port}/login", timeout=10
            ).status == 200  # fmt: skip
            assert visit() == 200
            owner.close()
            assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
        finally:
            attack.close()
