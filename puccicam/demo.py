"""The demo: the grabber on the bundled fixture frames and the gallery, in one process.

``puccicam demo`` (and so ``scripts/run``) is how a newcomer sees the product without
a camera: a fresh data dir, a replay camera whose frames include the corrupt ones, and
a ``demo`` owner with a random password.
"""

from __future__ import annotations

import secrets
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask

from camera.notify import Notifier
from puccicam.config import Config
from puccicam.wiring import make_grabber

DEMO_FRAMES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "frames"


def demo_settings(interval: float) -> dict[str, Any]:
    """The dotted keys the demo sets over the defaults."""
    return {
        "camera.source": f"replay:{DEMO_FRAMES}",
        "camera.warmup_delay": 1.0,
        # Check every replayed frame, so the log shows the corrupt ones rejected.
        "camera.warmup_frames": 0,
        "camera.max_attempts": 30,
        "capture.interval": interval,
        "pet.bio": "A demo pet cam: the frames come from the test fixtures, "
        "corrupt ones included, so the log shows them being rejected.",
    }


def demo_account(app: Flask) -> tuple[str, str]:
    """Create the demo owner with a random password; return (name, password)."""
    from webapp import state

    password = secrets.token_urlsafe(12)
    with app.app_context():
        state().accounts.add("demo", password)
    return "demo", password


def start_grabber(config: Config) -> tuple[threading.Thread, Callable[[], None]]:
    """Run the grabber on a background thread; call the function returned to stop it."""
    grabber = make_grabber(config, notifier=Notifier({}))  # not the systemd service
    thread = threading.Thread(target=grabber.run, name="grabber", daemon=True)
    thread.start()
    return thread, grabber.request_stop


def url_for_visitors(host: str, port: int) -> str:
    """The URL to open: for a wildcard address (``0.0.0.0``, ``::``), this machine's
    address on the local network, the one a phone on the same Wi-Fi can reach."""
    if host in ("", "0.0.0.0", "::"):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                # A UDP "connect" sends nothing: it only picks the route's source address.
                probe.connect(("192.0.2.1", 9))  # TEST-NET-1, never a real host
                host = probe.getsockname()[0]
            except OSError:  # no route at all: only this machine can visit
                host = "127.0.0.1"
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/"
