"""Serving the app with waitress, and the demo: grabber and server in one process."""

from __future__ import annotations

import gc
import logging
import secrets
import signal
import threading
import time
from pathlib import Path

from flask import Flask
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import MultiSocketServer, TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher
from waitress.utilities import BadRequest, ServerNotImplemented

from puccicam.config import Config

log = logging.getLogger(__name__)

DEMO_FRAMES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "frames"


class _RequestParser(HTTPRequestParser):
    """waitress's parser, but a Transfer-Encoding other than chunked is a 400, not a 501.

    Browsers and proxies send only chunked bodies, so anything else is the client's bad
    request; a 5xx would count a hostile client as the server's fault in every log and
    monitor (tests/test_hostile.py: every hostile request a 4xx)."""

    def received(self, data: bytes) -> int:
        consumed = super().received(data)
        if isinstance(self.error, ServerNotImplemented):
            self.error = BadRequest(self.error.body)
        return consumed


class _Channel(HTTPChannel):
    """waitress's HTTP connection, knowing when the request it is receiving began."""

    parser_class = _RequestParser
    began = 0.0

    def received(self, data: bytes) -> bool:
        """waitress's, noting when a new request's first bytes arrive."""
        if self.request is None and data:
            self.began = time.monotonic()
        return super().received(data)

    def stalled_for(self, now: float) -> float:
        """Seconds this connection has held a slot without being served; 0 if it is.

        A request trickling in counts from its first byte (a slowloris refreshes its
        last activity with every byte, so that would not do); a silent one, from the
        last thing it sent or was sent."""
        if self.requests or self.total_outbufs_len or self.will_close:
            return 0.0  # being answered, or closing anyway
        if self.request is not None:
            return now - self.began
        return time.time() - self.last_activity


class GuardedServer(TcpWSGIServer):
    """waitress's TCP server, preferring a new client to a connection that has stalled.

    waitress buffers whole requests before a thread sees them, so a slowloris connection
    (headers sent a byte at a time) costs no worker thread; but it holds one of the
    ``web.connection_limit`` slots, and once every slot is held waitress stops accepting,
    so a hundred such connections would lock every owner out. One slot short of the
    limit this server closes every connection stalled for more than ``patience`` seconds
    (a request begun that long ago and still incomplete, or silence that long), and the
    waiting clients are accepted at once. A connection being answered is never closed;
    an idle keep-alive one may be, and its browser reconnects. Below that point it
    behaves exactly like waitress.
    """

    channel_class = _Channel
    patience = 3.0
    _evicted = 0
    _reported = _scanned = 0.0

    def readable(self) -> bool:
        # One slot short of the limit: a slot is freed before waitress stops accepting
        # (and logs that it did, which under attack would be twice per eviction).
        if self.accepting and len(self._map) >= self.adj.connection_limit - 1:
            self._evict_stalled()
        return super().readable()

    def _evict_stalled(self) -> None:
        now = time.monotonic()
        if now - self._scanned < 0.25:  # called on every loop pass: scan a few times a second
            return
        self._scanned = now
        stalled = [c for c in self.active_channels.values() if c.stalled_for(now) > self.patience]
        for channel in stalled:
            # Not closed here: the select loop has already listed its socket. will_close
            # makes it writable, and waitress closes it in this very pass (as its own
            # idle timeout does).
            channel.will_close = True
        self._evicted += len(stalled)
        if stalled and now - self._reported > 60:  # under attack: once a minute
            self._reported = now
            log.warning(
                "near the connection limit (%d): closed %d stalled connection(s) in the "
                "last minute to let new clients in (one from %s)",
                self.adj.connection_limit - 2 * len(self.adj.listen),
                self._evicted,
                stalled[0].addr[0] if stalled[0].addr else "?",
            )
            self._evicted = 0


def make_server(app: Flask, config: Config, host: str | None = None, port: int | None = None):
    """A waitress server with the limits and trusted-proxy settings from config."""
    web = config.web
    proxy = {}
    if web.trusted_proxy:
        # Only this address may set X-Forwarded-For/-Proto; from anyone else they are
        # dropped, so rate limits see real client addresses and nobody can fake HTTPS.
        proxy = {
            "trusted_proxy": web.trusted_proxy,
            "trusted_proxy_count": web.trusted_proxy_count,
            "trusted_proxy_headers": {"x-forwarded-for", "x-forwarded-proto"},
            "clear_untrusted_proxy_headers": True,
        }
    adj = Adjustments(
        host=host or web.host,
        port=web.port if port is None else port,
        threads=web.threads,
        channel_timeout=web.channel_timeout,
        max_request_body_size=web.max_body_kb * 1024,
        max_request_header_size=16 * 1024,
        ident="puccicam",
        expose_tracebacks=False,
        **proxy,
    )
    # waitress counts its own sockets (each listening socket and its wake-up pipe) against
    # the limit; the configured number is client connections.
    adj.connection_limit = web.connection_limit + 2 * len(adj.listen)
    # What waitress.create_server does, with GuardedServer in place of TcpWSGIServer.
    dispatcher = ThreadedTaskDispatcher()
    dispatcher.set_thread_count(adj.threads)
    socket_map: dict = {}
    servers = [
        GuardedServer(app, socket_map, dispatcher=dispatcher, adj=adj, sockinfo=info)
        for info in adj.listen
    ]
    if len(servers) == 1:
        return servers[0]
    listen = [(server.effective_host, server.effective_port) for server in servers]
    return MultiSocketServer(socket_map, adj, listen, dispatcher)


class _Stop(SystemExit):
    """Raised from the signal handler to leave waitress's select loop at once.

    A SystemExit, because waitress's loop re-raises only SystemExit, KeyboardInterrupt
    and its own ExitNow; anything else that lands inside a channel's handler is
    logged and swallowed, and the server would keep running."""


def run_server(server, on_stop=None) -> None:
    """Serve until SIGTERM or Ctrl-C, then close cleanly."""

    def stop(signum: int, _frame: object) -> None:
        log.info("%s received: stopping the web server", signal.Signals(signum).name)
        raise _Stop

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # Everything imported and built so far lives as long as the process: take it out of
    # the garbage collector's full passes, which otherwise walk it again and again.
    gc.collect()
    gc.freeze()
    listen = getattr(server, "effective_listen", None)  # a MultiSocketServer's addresses
    for host, port in listen or [(server.effective_host, server.effective_port)]:
        log.info("serving on http://%s:%s", f"[{host}]" if ":" in host else host, port)
    try:
        server.run()
    except _Stop:
        pass
    finally:
        server.close()
        if on_stop is not None:
            on_stop()


def demo_account(app: Flask) -> tuple[str, str]:
    """Create the demo owner with a random password; return (name, password)."""
    from webapp import state

    password = secrets.token_urlsafe(12)
    with app.app_context():
        state().accounts.add("demo", password)
    return "demo", password


def start_grabber(config: Config) -> tuple[threading.Thread, threading.Event]:
    """Run the grabber on a background thread; set the event to stop it."""
    from camera.grabber import Grabber
    from camera.notify import Notifier
    from camera.source import open_source

    cam, cap = config.camera, config.capture
    source = open_source(cam.source, width=cap.width, height=cap.height, fps=cam.fps)
    grabber = Grabber(config, source, notifier=Notifier({}))
    thread = threading.Thread(target=grabber.run, name="grabber", daemon=True)
    thread.start()
    return thread, grabber.stop
