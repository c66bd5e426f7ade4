"""Live view's channel: the grabber hands frames to the web app over a Unix socket.

Only the grabber opens the camera (a V4L2 device serves one process). While at least one
client of this socket says it is watching, the grabber keeps the camera streaming and
sends each viewer a frame at ``live.fps``; when the last one leaves, it goes back to
interval mode and closes the device.

The socket is ``SOCK_SEQPACKET``: every frame is one message, delivered whole or not at
all, so a slow reader can never see half a frame, and a send that would block is simply
skipped for that viewer (the grabber never waits for the web side). The file is created
owner-only (0600) in a directory only the service user can enter, and peers whose uid is
not the grabber's are refused: no other local user can read frames. What a client may
send is one fixed word, ``WATCH``, within ``HELLO_TIMEOUT`` seconds; anything else, or
nothing, closes that connection. The web side can make the grabber do nothing but know
that someone is watching.

Messages from the grabber: ``F`` + the time the frame was read (8-byte big-endian
double) + JPEG bytes; ``O`` + time + reason (UTF-8): the camera is offline.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import selectors
import socket
import struct
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

HELLO = b"WATCH"
HELLO_TIMEOUT = 2.0
FRAME, OFFLINE = b"F", b"O"
HEADER = struct.Struct(">cd")
MAX_MESSAGE = 4 * 2**20  # a frame larger than this is not sent (a 1080p MJPEG is ~0.5 MB)
# Unix socket paths are limited to 108 bytes including the terminating NUL.
MAX_PATH = 107


def socket_path(configured: str, data_dir: Path, environ: dict | None = None) -> Path:
    """Where the live socket lives: configured, else systemd's runtime dir, else data_dir."""
    env = os.environ if environ is None else environ
    if configured:
        return Path(configured).expanduser()
    runtime = env.get("RUNTIME_DIRECTORY", "").split(":")[0]
    return Path(runtime or data_dir) / "live.sock"


def encode_frame(jpeg: bytes, taken: float) -> bytes:
    return HEADER.pack(FRAME, taken) + jpeg


def encode_offline(reason: str, taken: float) -> bytes:
    return HEADER.pack(OFFLINE, taken) + reason.encode("utf-8", "replace")[:500]


def decode(message: bytes) -> tuple[bytes, float, bytes]:
    """(kind, time, payload) of a message from the grabber.

    :raises ValueError: not a message this protocol sends.
    """
    if len(message) < HEADER.size:
        raise ValueError("short message")
    kind, taken = HEADER.unpack_from(message)
    if kind not in (FRAME, OFFLINE):
        raise ValueError(f"unknown message kind {kind!r}")
    return kind, taken, message[HEADER.size :]


class _Peer:
    """One connection: pending until it says WATCH, then a viewer."""

    def __init__(self, conn: socket.socket, accepted: float) -> None:
        self.conn = conn
        self.accepted = accepted
        self.watching = False


class LiveServer:
    """The grabber's side of the channel: accepts viewers, sends them frames.

    A thread runs the accept/hello loop; ``publish`` is called from the capture loop and
    never blocks. ``viewers`` is the number of connections that said WATCH.
    """

    def __init__(self, path: Path, max_viewers: int) -> None:
        self.path = Path(path)
        self.max_viewers = max_viewers
        self.changed = threading.Event()  # set when the number of viewers changes
        self._peers: dict[int, _Peer] = {}
        self._lock = threading.Lock()
        self._selector = selectors.DefaultSelector()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._closing = False
        self.sent = self.dropped = 0

    @property
    def viewers(self) -> int:
        return sum(1 for peer in self._peers.values() if peer.watching)

    def start(self) -> None:
        """Create the socket (owner-only) and serve it on a thread.

        :raises OSError: the socket cannot be created; the message names the path.
        """
        if len(os.fsencode(self.path)) > MAX_PATH:
            raise OSError(errno.ENAMETOOLONG, f"live socket path too long: {self.path}")
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # left by a grabber that was killed
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        old = os.umask(0o177)
        try:
            listener.bind(str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        listener.listen(8)
        listener.setblocking(False)
        self._listener = listener
        self._selector.register(listener, selectors.EVENT_READ)
        self._thread = threading.Thread(target=self._serve, name="live", daemon=True)
        self._thread.start()
        log.info("live view: listening on %s", self.path)

    def close(self) -> None:
        """Stop serving and remove the socket; safe to call twice."""
        self._closing = True
        if self._thread is not None:
            self._thread.join(2)
            self._thread = None
        with self._lock:
            for peer in self._peers.values():
                peer.conn.close()
            self._peers.clear()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        self._selector.close()

    # -- the server thread ----------------------------------------------------------

    def _serve(self) -> None:
        while not self._closing:
            for key, _events in self._selector.select(timeout=1.0):
                try:
                    if key.fileobj is self._listener:
                        self._accept()
                    else:
                        self._receive(key.fileobj)  # type: ignore[arg-type]
                except Exception:  # one bad client must never end live view for all
                    log.exception("live view: error serving a client")
            self._expire_hellos()

    def _accept(self) -> None:
        try:
            conn, _ = self._listener.accept()  # type: ignore[union-attr]
        except (BlockingIOError, InterruptedError):
            return
        conn.setblocking(False)
        uid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[1]
        if uid != os.getuid():
            log.warning("live view: refused a client running as uid %d", uid)
            conn.close()
            return
        with self._lock:
            if len(self._peers) >= self.max_viewers + 2:
                log.warning(
                    "live view: refused a client: %d connections already", self.max_viewers + 2
                )
                conn.close()
                return
            self._peers[conn.fileno()] = _Peer(conn, time.monotonic())
        self._selector.register(conn, selectors.EVENT_READ)

    def _receive(self, conn: socket.socket) -> None:
        peer = self._peers.get(conn.fileno())
        if peer is None:
            return
        try:
            message = conn.recv(64)
        except BlockingIOError:
            return
        except OSError:
            message = b""
        if message == HELLO and not peer.watching and self.viewers < self.max_viewers:
            peer.watching = True
            log.info("live view: a viewer joined (%d watching)", self.viewers)
            self.changed.set()
            return
        if message and message != HELLO:
            log.warning("live view: closed a client that sent %d unexpected byte(s)", len(message))
        self._drop(peer, "left" if not message else "refused")

    def _drop(self, peer: _Peer, why: str) -> None:
        with self._lock:
            self._peers.pop(peer.conn.fileno(), None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(peer.conn)
        peer.conn.close()
        if peer.watching:
            log.info("live view: a viewer %s (%d watching)", why, self.viewers)
            self.changed.set()

    def _expire_hellos(self) -> None:
        now = time.monotonic()
        for peer in list(self._peers.values()):
            if not peer.watching and now - peer.accepted > HELLO_TIMEOUT:
                self._drop(peer, "never said hello")

    # -- the capture loop's side ----------------------------------------------------

    def publish(self, message: bytes) -> None:
        """Send one message to every viewer that can take it now; never blocks."""
        if len(message) > MAX_MESSAGE:
            return
        with self._lock:
            watching = [peer for peer in self._peers.values() if peer.watching]
        for peer in watching:
            try:
                peer.conn.send(message, socket.MSG_DONTWAIT)
                self.sent += 1
            except (BlockingIOError, InterruptedError):
                self.dropped += 1  # this viewer is behind: it gets the next frame instead
            except OSError:
                pass  # gone: the server thread sees the hang-up and drops it
