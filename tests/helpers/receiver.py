"""A real HTTP receiver on loopback standing in for a phone service (ntfy, a webhook).

Apprise's ``json://127.0.0.1:PORT/PATH`` posts each notification to it as JSON. It can be
taken down (the port refuses connections) and brought back on the same port, answer
slowly, or answer with bytes that are not HTTP, as real services on bad days do.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.helpers.live import free_port


class Receiver:
    """Records every JSON notification posted to it: (monotonic time, path, payload)."""

    def __init__(self, mode: str = "ok", delay: float = 10.0) -> None:
        self.port = free_port()
        self.mode = mode  # "ok", "slow" (answers after ``delay`` s) or "garbage"
        self.delay = delay
        self.received: list[tuple[float, str, dict]] = []
        self.attempts = 0  # requests that reached it, whatever it answered
        self.changed = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self.start()

    def url(self, path: str = "hook") -> str:
        return f"json://127.0.0.1:{self.port}/{path}"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.changed:
                    receiver.attempts += 1
                if receiver.mode == "garbage":
                    self.wfile.write(b"\x00\xff not HTTP at all \xfe\r\n\r\n")
                    return
                if receiver.mode == "slow":
                    time.sleep(receiver.delay)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                with receiver.changed:
                    receiver.received.append((time.monotonic(), self.path, json.loads(body)))
                    receiver.changed.notify_all()

            def log_message(self, *args) -> None:  # quiet: pytest shows what tests print
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Take the service down: connections to its port are refused until ``start``."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def titles(self) -> list[str]:
        with self.changed:
            return [payload["title"] for _, _, payload in self.received]

    def wait_for(self, count: int, timeout: float) -> list[dict]:
        """The payloads once at least ``count`` arrived; fails after ``timeout`` seconds."""
        with self.changed:
            ok = self.changed.wait_for(lambda: len(self.received) >= count, timeout)
            assert ok, f"{len(self.received)} of {count} notifications within {timeout} s"
            return [payload for _, _, payload in self.received]
