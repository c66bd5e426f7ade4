"""Serving the app with waitress: the limits from the config, and a clean stop."""

from __future__ import annotations

import gc
import logging
import signal
from collections.abc import Callable

from flask import Flask
from waitress.adjustments import Adjustments
from waitress.server import MultiSocketServer
from waitress.task import ThreadedTaskDispatcher

from puccicam.config import Config
from webapp.guard import GuardedServer

log = logging.getLogger(__name__)


class ListenError(Exception):
    """The server cannot listen on the configured address; the message says which."""


def make_server(app: Flask, config: Config, host: str | None = None, port: int | None = None):
    """A waitress server with the limits and trusted-proxy settings from config.

    :raises ListenError: the address is in use, not ours, or not allowed.
    """
    web = config.web
    # No trusted proxy: waitress believes no X-Forwarded-* header, and leaves them in the
    # request (it would otherwise delete them) so that /metrics can tell a request Caddy
    # passed on from loopback from one made on this machine (webapp/metrics.py).
    proxy: dict = {"clear_untrusted_proxy_headers": False}
    if web.trusted_proxy:
        # Only this address may set X-Forwarded-For/-Proto; from anyone else they are
        # dropped, so rate limits see real client addresses and nobody can fake HTTPS.
        proxy = {
            "trusted_proxy": web.trusted_proxy,
            "trusted_proxy_count": web.trusted_proxy_count,
            "trusted_proxy_headers": {"x-forwarded-for", "x-forwarded-proto"},
            "clear_untrusted_proxy_headers": True,
        }
    host, port = host or web.host, web.port if port is None else port
    try:
        adj = Adjustments(
            host=host,
            port=port,
            # Each live stream holds a thread while it runs: they get their own, so the
            # gallery, photos and login keep ``web.threads`` (webapp/live.py).
            threads=web.threads + (config.live.max_viewers if config.live.enabled else 0),
            channel_timeout=web.channel_timeout,
            max_request_body_size=web.max_body_kb * 1024,
            max_request_header_size=16 * 1024,
            ident="puccicam",
            expose_tracebacks=False,
            **proxy,
        )
    except (OSError, ValueError) as exc:  # waitress resolves the host here (gaierror)
        cause = exc.__context__ if isinstance(exc.__context__, OSError) else exc
        reason = getattr(cause, "strerror", None) or cause
        raise ListenError(f"cannot listen on {host}:{port}: {reason}") from exc
    # waitress counts its own sockets (each listening socket and its wake-up pipe) against
    # the limit; the configured number is client connections.
    adj.connection_limit = web.connection_limit + 2 * len(adj.listen)
    # What waitress.create_server does, with GuardedServer in place of TcpWSGIServer.
    dispatcher = ThreadedTaskDispatcher()
    dispatcher.set_thread_count(adj.threads)
    socket_map: dict = {}
    try:
        servers = [
            GuardedServer(app, socket_map, dispatcher=dispatcher, adj=adj, sockinfo=info)
            for info in adj.listen
        ]
    except OSError as exc:
        dispatcher.shutdown()
        raise ListenError(f"cannot listen on {adj.host}:{adj.port}: {exc.strerror or exc}") from exc
    if len(servers) == 1:
        return servers[0]
    listen = [(server.effective_host, server.effective_port) for server in servers]
    return MultiSocketServer(socket_map, adj, listen, dispatcher)


class _LateApp:
    """The WSGI app, given once the sockets are bound (see :func:`bind_then_build`)."""

    def __init__(self) -> None:
        self.app = None

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


def bind_then_build(config: Config, build: Callable[[], Flask]):
    """Listen first, then ``build()`` the app: a port in use or an unknown host is
    reported before anything (data dir, secret key, demo account) is created.

    :raises ListenError: as :func:`make_server`.
    """
    late = _LateApp()
    server = make_server(late, config)  # type: ignore[arg-type]
    try:
        late.app = build()
    except BaseException:
        server.close()
        raise
    return server


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
