"""A waitress server that makes room for a new client when every connection slot is held.

This module subclasses waitress internals, which is why ``pyproject.toml`` pins
``waitress<3.1`` until ``tests/test_load.py`` and ``tests/test_slots.py`` have shown a
newer release still works. What it relies on, all of waitress 3.0:

- ``HTTPRequestParser.received()`` and its ``error`` attribute (``BadRequest``,
  ``ServerNotImplemented`` from ``waitress.utilities``);
- ``HTTPChannel.check_client_disconnected()`` (what waitress hands the app as
  ``environ["waitress.client_disconnected"]``), ``connected`` and ``last_activity``
  (``time.time()`` of the last read or write), for live streams (webapp/live.py);
- ``HTTPChannel.__init__(server, sock, addr, adj, map)``, ``parser_class``,
  ``received()``, ``_flush_some()`` (every byte sent to a client goes through it; it
  returns whether it sent any), and the attributes ``addr``, ``request`` (the request
  being parsed; ``None`` between requests, also after an empty one), ``requests``
  (parsed, waiting for or in a worker), ``total_outbufs_len``, ``close_when_flushed``
  and ``will_close`` (set, the select loop closes the channel in the same pass);
- ``TcpWSGIServer.channel_class``, ``readable()`` (replaced here: its only other duty,
  the idle timeout, is ``maintenance()`` every ``adj.cleanup_interval`` seconds, tracked
  in ``next_channel_cleanup``), ``accepting``, ``socket`` (the listening socket),
  ``active_channels``, ``_map`` (the shared socket map, which also holds the listening
  socket and the trigger pipe, and lists the listening socket before any channel) and
  ``adj`` (the ``Adjustments``).
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import time
from collections import Counter

from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import TcpWSGIServer
from waitress.utilities import BadRequest, ServerNotImplemented

from webapp.clients import client_key

log = logging.getLogger(__name__)


def _address(channel: HTTPChannel) -> str | None:
    """The client, as limits count it (an IPv6 /64 is one client); None for a Unix socket."""
    return client_key(channel.addr[0]) if channel.addr else None


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
    """waitress's HTTP connection, knowing when it last got an answer.

    Progress is an answer sent: bytes leave only in reply to a whole, non-empty request.
    Anything else a client sends (a header line a second, a bare CRLF pair that waitress
    parses as an empty request and drops) refreshes waitress's ``last_activity`` but
    is no progress here. It also knows when a client has stopped reading what it is
    sent (``check_client_disconnected``)."""

    parser_class = _RequestParser
    began = 0.0  # monotonic: first byte of the request being received, if begun since progress

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
        self.progress = time.monotonic()  # when connected, then when it last sent an answer
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
        """waitress's, noting when the first request since the last answer began."""
        if self.request is None and data and self.began <= self.progress:
            self.began = time.monotonic()
        return super().received(data)

    def _flush_some(self, do_close: bool = True) -> bool:
        """waitress's, counting every byte of an answer sent as progress."""
        sent = super()._flush_some(do_close=do_close)
        if sent:
            self.progress = time.monotonic()
        return sent

    def idle_for(self, now: float) -> float | None:
        """Seconds this connection has held a slot without progress; None while answered.

        A request trickling in since the last answer counts from its first byte, so a
        keep-alive connection idle for a while and then sending a slow upload is judged
        by the upload; everything else from the last answer (or the connection)."""
        if self.requests or self.total_outbufs_len or self.will_close or self.close_when_flushed:
            return None  # being answered, or closing anyway
        if self.request is not None and self.began > self.progress:
            return now - self.began
        return now - self.progress


class GuardedServer(TcpWSGIServer):
    """waitress's TCP server, making room for a waiting client when every slot is held.

    waitress buffers whole requests before a thread sees them, so a slow client costs no
    worker thread; but it holds one of the ``web.connection_limit`` slots, and once every
    slot is held waitress stops accepting, so a hundred slow or idle connections would
    lock every owner out. Here, when every slot is held and a client is waiting to be
    accepted, connections are closed to let it in, never one being answered:

    - every connection without progress (an answer sent) for ``patience`` seconds: slow
      requests, and connections that send nothing, or only empty requests;
    - an address holding more than a quarter of the slots loses its connections beyond
      that share, longest without progress first;
    - if neither closed anything, the one connection longest without progress (a client
      sending a real request every few seconds still makes room for a newcomer).

    The last two spare a connection that made progress (or connected, or began its
    request) within ``grace`` seconds: one in use, or a newcomer just let in. The waiting
    clients are then accepted at once. Below the limit it behaves like waitress. An idle
    keep-alive connection may be closed; its browser reconnects.
    """

    channel_class = _Channel
    patience = 3.0
    grace = 0.5
    _evicted = 0
    _reported = -60.0

    @property
    def slots(self) -> int:
        """Client connections allowed: waitress's limit less its own sockets."""
        return self.adj.connection_limit - 2 * len(self.adj.listen)

    def readable(self) -> bool:
        # waitress's readable(), less its log lines on every entry to and exit from
        # overflow (under attack, two per eviction), plus making room at the limit.
        now = time.time()
        if now >= self.next_channel_cleanup:
            self.next_channel_cleanup = now + self.adj.cleanup_interval
            self.maintenance(now)
        if not self.accepting:
            return False
        if len(self._map) < self.adj.connection_limit:
            return True
        if self._someone_waiting():
            # Marked now, closed in this very pass (the listening socket comes first in the
            # map, so every channel's writable() is asked after this), accepted in the next.
            self._make_room()
        return False

    def _someone_waiting(self) -> bool:
        """A connection is in the listening socket's accept queue."""
        try:
            return bool(select.select([self.socket], [], [], 0)[0])
        except (OSError, ValueError):  # closed under us at shutdown
            return False

    def _make_room(self) -> None:
        now = time.monotonic()
        idle = {c: c.idle_for(now) for c in list(self.active_channels.values())}
        idle = {c: s for c, s in idle.items() if s is not None}
        victims = {c for c, s in idle.items() if s > self.patience}
        held = Counter(_address(c) for c in self.active_channels.values() if c not in victims)
        share = max(1, self.slots // 4)
        settled = [c for c, s in idle.items() if c not in victims and s >= self.grace]
        settled.sort(key=idle.get, reverse=True)
        for channel in settled:
            if held[_address(channel)] > share:
                victims.add(channel)
                held[_address(channel)] -= 1
        if not victims and settled:
            victims = {settled[0]}
        if not victims:
            return  # only newcomers and connections being answered: wait for one
        for channel in victims:
            channel.will_close = True
        self._report(now, len(victims), next(iter(victims)))

    def _report(self, now: float, closed: int, one: _Channel) -> None:
        self._evicted += closed
        if now - self._reported >= 60:  # under attack: once a minute
            self._reported = now
            log.warning(
                "every connection slot (%d) held and clients waiting: closed %d idle, "
                "stalled or surplus connection(s) in the last minute to let them in "
                "(one from %s)",
                self.slots,
                self._evicted,
                _address(one) or "?",
            )
            self._evicted = 0
