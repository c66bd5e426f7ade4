"""Serving the app with waitress, and the demo: grabber and server in one process."""

from __future__ import annotations

import gc
import logging
import secrets
import signal
import threading
from pathlib import Path

from flask import Flask
from waitress.server import create_server

from puccicam.config import Config

log = logging.getLogger(__name__)

DEMO_FRAMES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "frames"


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
    return create_server(
        app,
        host=host or web.host,
        port=web.port if port is None else port,
        threads=web.threads,
        connection_limit=web.connection_limit,
        channel_timeout=web.channel_timeout,
        max_request_body_size=web.max_body_kb * 1024,
        max_request_header_size=16 * 1024,
        ident="puccicam",
        expose_tracebacks=False,
        **proxy,
    )


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
    log.info("serving on http://%s:%s", server.effective_host, server.effective_port)
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
