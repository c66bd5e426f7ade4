"""A waitress server that keeps a slot free for real visitors when slow clients pile up.

This module subclasses waitress internals, which is why ``pyproject.toml`` pins
``waitress<3.1`` until ``tests/test_load.py`` has shown a newer release still works.
What it relies on, all of waitress 3.0:

- ``HTTPRequestParser.received()`` and its ``error`` attribute (``BadRequest``,
  ``ServerNotImplemented`` from ``waitress.utilities``);
- ``HTTPChannel.__init__(server, sock, addr, adj, map)``, ``check_client_disconnected()``
  (what waitress hands the app as ``environ["waitress.client_disconnected"]``), ``connected``;
- ``HTTPChannel.parser_class``, ``received()``, and the attributes ``request`` (the
  request being parsed), ``requests`` (parsed, waiting for or in a worker),
  ``total_outbufs_len``, ``will_close`` (set, the select loop closes the channel in
  the same pass) and ``last_activity`` (``time.time()`` of the last read or write);
- ``TcpWSGIServer.channel_class``, ``readable()``, ``accepting``, ``active_channels``,
  ``_map`` (the shared socket map, which also holds the listening socket and the
  trigger pipe) and ``adj`` (the ``Adjustments``).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time

from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import TcpWSGIServer
from waitress.utilities import BadRequest, ServerNotImplemented

log = logging.getLogger(__name__)


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
    """waitress's HTTP connection, knowing when the request it is receiving began, and
    when a client has stopped reading what it is sent."""

    parser_class = _RequestParser
    began = 0.0
    # A client that stops reading (a phone locked with live view open) keeps its TCP
    # connection: its answer only piles up, first in the kernel's send buffer, then in
    # waitress's. Capped at 128 KiB (the kernel doubles it), the kernel's part fills in
    # about 2 s of a 15 fps stream instead of 30 s at Linux's autotuned 4 MiB, and a
    # client that has taken nothing for ``stall_timeout`` seconds with data waiting
    # counts as gone: tests/test_live.py, slot freed within 10 s. A photo or a page
    # (at most some 50 KB) still goes out in one write.
    sndbuf = 128 * 1024
    stall_timeout = 4.0

    def __init__(self, server, sock, addr, adj, map=None) -> None:
        super().__init__(server, sock, addr, adj, map)
        with contextlib.suppress(OSError):  # a Unix socket has no such limit to set
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.sndbuf)

    def check_client_disconnected(self) -> bool:
        """waitress's answer for ``environ["waitress.client_disconnected"]`` (the socket
        closed), or a client that has read nothing for ``stall_timeout`` seconds while
        data waited for it."""
        if not self.connected:
            return True
        waiting = self.total_outbufs_len > 0
        return waiting and time.time() - self.last_activity > self.stall_timeout

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
