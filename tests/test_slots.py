"""Connection slots under attack: a normal visitor still gets in (``webapp/guard.py``).

Each attack holds one connection more than ``web.connection_limit`` (20, to keep it
quick; 100, the default, under ``scripts/soak``) and, like a real attacker, opens again
at once every connection the server closes. Meanwhile a visitor from an address of its
own asks for the login page, several times over, and must have it within a few seconds.
Attackers and visitor bind their sockets to loopback addresses of their own (all of
127/8 is loopback on Linux), so "one address" and "many addresses" are what the server
really sees. The server is the real ``puccicam serve`` process (``tests/helpers/live.py``);
the control, waitress alone, runs in-process so that its guard can be switched off.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from pathlib import Path

import pytest

from puccicam.config import env_name
from tests.helpers.live import ServerProcess
from tests.helpers.site import serving
from tests.helpers.soak import record, scaled

pytestmark = pytest.mark.slow

LIMIT = scaled(20, 100)
VISITOR = "127.0.0.2"
BOUND = 5.0  # seconds a visitor may wait: "an answer within a few seconds"

ONE = ["127.0.0.3"] * (LIMIT + 1)
MANY = [f"127.0.0.{10 + i}" for i in range(LIMIT + 1)]

# name: (sent once on connecting, sent every ``every`` seconds after, every)
ATTACKS = {
    # waitress parses a bare CRLF pair as an empty request and drops it: no answer, but
    # the connection never looks silent.
    "empty lines": (b"", b"\r\n\r\n", 2.0),
    # Whole requests, each answered: a busy client as far as any single request shows.
    "small requests": (b"", b"GET /healthz HTTP/1.1\r\nHost: pet\r\n\r\n", 2.0),
    # A request begun and never finished: a header line a second.
    "slowloris": (b"GET / HTTP/1.1\r\nHost: pet\r\n", b"X-Slow: 1\r\n", 1.0),
}


class Attack:
    """A connection from each of ``sources``, sending ``ATTACKS[kind]``; reopens what closes.

    Answers are read and dropped. ``reopened`` counts the connections the server closed
    (each reopened within 50 ms)."""

    def __init__(self, port: int, kind: str, sources: list[str]) -> None:
        self.port, self.sources, self.reopened = port, sources, 0
        self.opening, self.payload, self.every = ATTACKS[kind]
        self.conns: list[socket.socket] = []
        self.due: list[float] = []
        for i in range(len(sources)):
            self.conns.append(self._open(i))
            # Spread over the period, as many independent clients would be.
            self.due.append(time.monotonic() + self.every * i / len(sources))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _open(self, i: int) -> socket.socket:
        conn = socket.socket()
        conn.bind((self.sources[i], 0))
        conn.connect(("127.0.0.1", self.port))  # the kernel completes it, accepted or not
        if self.opening:
            conn.sendall(self.opening)
        conn.setblocking(False)
        return conn

    @staticmethod
    def _open_still(conn: socket.socket) -> bool:
        """Read and drop whatever the server sent; False once it has closed."""
        try:
            while conn.recv(65536):
                pass
            return False
        except BlockingIOError:
            return True
        except OSError:
            return False

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            now = time.monotonic()
            for i, conn in enumerate(self.conns):
                if not self._open_still(conn):
                    conn.close()
                    with contextlib.suppress(OSError):
                        self.conns[i] = self._open(i)
                        self.reopened += 1
                elif now >= self.due[i]:
                    self.due[i] = now + self.every
                    with contextlib.suppress(OSError):
                        conn.send(self.payload)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self.conns:
            conn.close()


def visit(port: int, timeout: float = 10) -> float:
    """A visitor from its own address fetches the login page; the seconds it took."""
    started = time.monotonic()
    conn = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=timeout, source_address=(VISITOR, 0)
    )
    try:
        conn.request("GET", "/login")
        response = conn.getresponse()
        response.read()
        assert response.status == 200
    finally:
        conn.close()
    return time.monotonic() - started


def _visits(port: int, count: int = 4) -> list[float]:
    """``count`` visits a second apart: before and after the attack is ``patience`` old."""
    waits = []
    for _ in range(count):
        waits.append(visit(port))
        time.sleep(1)
    return waits


@pytest.mark.parametrize(
    ("kind", "sources"),
    [
        pytest.param("empty lines", ONE, id="empty-lines-one-address"),
        pytest.param("empty lines", MANY, id="empty-lines-many-addresses"),
        pytest.param("small requests", ONE, id="small-requests-one-address"),
        pytest.param("small requests", MANY, id="small-requests-many-addresses"),
        pytest.param("slowloris", MANY, id="slowloris-many-addresses"),
    ],
)
def test_a_visitor_gets_in_while_an_attack_holds_every_slot(tmp_path: Path, kind, sources):
    log = tmp_path / "serve.log"
    server = ServerProcess(
        tmp_path / "data", env={env_name("web.connection_limit"): str(LIMIT)}, log=log
    )
    try:
        attack = Attack(server.port, kind, sources)
        try:
            time.sleep(1)  # every slot held, one attacker waiting
            waits = _visits(server.port)
            reopened = attack.reopened
        finally:
            attack.close()
    finally:
        assert server.stop() == 0
    logged = log.read_text(errors="replace")
    assert "Traceback" not in logged and " ERROR " not in logged, logged
    assert f"every connection slot ({LIMIT}) held and clients waiting" in logged, logged
    assert reopened >= 1  # the slots were full: the server had to close some to let us in
    assert max(waits) < BOUND, waits
    where = "one address" if len(set(sources)) == 1 else f"{len(set(sources))} addresses"
    name = f"slots: {LIMIT + 1} connections, {kind}, from {where}"
    record("load", f"{name}: longest wait of a visitor (s)", round(max(waits), 2))
    record("load", f"{name}: attacker connections closed by the server in about 5 s", reopened)


@pytest.mark.parametrize("kind", ["empty lines", "small requests"])
def test_without_making_room_these_attacks_lock_the_visitor_out(make_config, monkeypatch, kind):
    """The control: with its guard off, the server (waitress alone) keeps the visitor out."""
    from webapp import create_app
    from webapp.guard import GuardedServer

    monkeypatch.setattr(GuardedServer, "_make_room", lambda self: None)
    with serving(create_app(make_config(web__connection_limit=LIMIT))) as server:
        port = int(server.effective_port)
        attack = Attack(port, kind, MANY)
        try:
            time.sleep(1)
            assert len(server.active_channels) == LIMIT
            with pytest.raises(OSError, match="timed out"):
                visit(port, timeout=3)
        finally:
            attack.close()
