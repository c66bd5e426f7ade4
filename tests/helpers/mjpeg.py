"""Reading a live MJPEG stream as a browser's ``<img>`` does, with control of the socket."""

from __future__ import annotations

import http.client
import re
import socket
import struct
import time

_LENGTH = re.compile(rb"Content-Length: (\d+)", re.IGNORECASE)


class MjpegStream:
    """``GET /live/stream`` on a connection of its own; ``frames()`` yields JPEG parts."""

    def __init__(
        self,
        port: int,
        cookie: str,
        *,
        rcvbuf: int | None = None,
        source: str = "127.0.0.1",
        path: str = "/live/stream",
    ):
        self.conn = http.client.HTTPConnection(
            "127.0.0.1", port, timeout=10, source_address=(source, 0)
        )
        self.conn.connect()
        self.sock = self.conn.sock  # http.client lets go of it once the response starts
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.conn.request("GET", path, headers={"Cookie": cookie})
        self.response = self.conn.getresponse()
        self.status = self.response.status
        self._buffer = b""

    def frames(self, seconds: float = 60.0):
        """JPEG bytes of each part, for up to ``seconds``; ends quietly when the server does."""
        for _headers, jpeg in self.parts(seconds):
            yield jpeg

    def parts(self, seconds: float = 60.0):
        """(part headers, JPEG bytes) of each part, for up to ``seconds``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            start = self._buffer.find(b"\r\n\r\n")
            match = _LENGTH.search(self._buffer, 0, start) if start >= 0 else None
            if match is not None and len(self._buffer) >= start + 4 + int(match.group(1)):
                end = start + 4 + int(match.group(1))
                headers = self._buffer[:start]
                jpeg, self._buffer = self._buffer[start + 4 : end], self._buffer[end:]
                yield headers, jpeg
                continue
            try:
                data = self.response.read1(65536)
            except (OSError, http.client.HTTPException):
                return
            if not data:
                return
            self._buffer += data

    def ended_within(self, seconds: float) -> float | None:
        """Read until the server ends the stream; how long that took, or None if it did not."""
        started = time.monotonic()
        for _ in self.frames(seconds):
            pass
        took = time.monotonic() - started
        return took if took < seconds else None

    def reset(self) -> None:
        """Vanish with a TCP reset, as a phone dropping off the network does."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()

    def close(self) -> None:
        # The response's file object holds the socket too: both go, or no FIN is sent.
        self.response.close()
        self.conn.close()
        self.sock.close()
