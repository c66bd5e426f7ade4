"""A raw-socket HTTP client: requests sent exactly as written, every reply parsed.

An HTTP client library would tidy most attacks away (dot segments, doubled slashes,
NUL bytes, bad percent-encoding, lying lengths) before they reached the server, so the
hostile tests and the fuzz pass build their requests as bytes and send them over a
socket themselves.
"""

from __future__ import annotations

import http.client
import io
import re
import socket
from dataclasses import dataclass

FORM = ("Content-Type", "application/x-www-form-urlencoded")


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def cookies(self) -> dict[str, str | None]:
        """The cookies this reply sets; None for one it deletes."""
        found: dict[str, str | None] = {}
        for name, value in self.headers:
            if name.lower() != "set-cookie":
                continue
            pair, _sep, attributes = value.partition(";")
            key, _sep, cookie = pair.strip().partition("=")
            gone = not cookie or "Max-Age=0" in attributes or "1970" in attributes
            found[key] = None if gone else cookie
        return found


def merge_cookies(cookies: dict, reply: Reply) -> dict:
    """``cookies`` updated with what ``reply`` sets and deletes, as a browser keeps them."""
    merged = {**cookies, **reply.cookies()}
    return {k: v for k, v in merged.items() if v is not None}


class _Buffer(io.BytesIO):
    def close(self) -> None:
        """Kept open: several replies are read one after another from one buffer."""


class _Socket:
    def __init__(self, buffer: _Buffer) -> None:
        self.buffer = buffer

    def makefile(self, *_args, **_kwargs) -> _Buffer:
        return self.buffer


def parse_replies(raw: bytes, method: str = "GET") -> list[Reply]:
    """Every reply in what the server sent (a HEAD's replies have no body)."""
    buffer = _Buffer(raw)
    replies = []
    while buffer.tell() < len(raw):
        response = http.client.HTTPResponse(_Socket(buffer), method=method)  # type: ignore[arg-type]
        response.begin()
        body = response.read()
        if buffer.tell() < len(raw) and not raw.startswith(b"HTTP/", buffer.tell()):
            # waitress's own error replies carry their body even to a HEAD
            length = response.getheader("Content-Length")
            body = buffer.read(int(length) if length else -1)
        replies.append(Reply(response.status, response.getheaders(), body))
    return replies


def build(
    method: str | bytes,
    target: str | bytes,
    *,
    headers=(),
    body: bytes | None = None,
    cookies: dict | None = None,
    length: bool = True,
    host: str | bytes = "127.0.0.1",
) -> bytes:
    """One request exactly as given; Content-Length is added for a body unless told not."""
    lines = [_bytes(method) + b" " + _bytes(target) + b" HTTP/1.1", b"Host: " + _bytes(host)]
    if cookies:
        lines.append(b"Cookie: " + "; ".join(f"{k}={v}" for k, v in cookies.items()).encode())
    lines += [_bytes(name) + b": " + _bytes(value) for name, value in headers]
    if body is not None and length:
        lines.append(b"Content-Length: %d" % len(body))
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")


def send_raw(port: int, data: bytes, *, half_close: bool = False) -> bytes:
    """Send bytes to the server on loopback; everything it answers until it hangs up."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:  # answered and closed before reading all of an oversized request
            pass
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:  # the same: the answer arrived before the reset
            pass
    return b"".join(chunks)


def is_local(location: str) -> bool:
    """Does a browser following this Location stay on this site?

    Browsers drop tabs and newlines anywhere in a URL, strip leading and trailing spaces
    and control characters, and read a backslash as a slash (WHATWG URL standard). What
    is left must be a path on this host: one slash, then not another. Anything else is
    refused, even relative forms a browser would keep local, because the app only ever
    sends paths."""
    cleaned = re.sub(r"[\t\n\r]", "", location).strip("".join(map(chr, range(0x21))))
    cleaned = cleaned.replace("\\", "/")
    return cleaned.startswith("/") and not cleaned.startswith("//")
