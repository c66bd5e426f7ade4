"""Delivers alerts through Apprise from threads of their own, so capture never waits on it.

One Apprise service per configured URL, each with its own bounded queue and thread: a
message is retried, in order, only to the service that has not taken it yet, with capped
exponential backoff, so a phone service that is down for an hour gets its alerts late but
gets them, and one that works is neither held back nor sent duplicates. When a queue is
full the oldest message that is not critical (a motion photo, a summary) makes room,
with a log line. Apprise URLs carry tokens and passwords:
they never reach a log line (Apprise's own lines are kept out of ours, and the failure
reasons taken from them are redacted), and they are shown only as :func:`describe` does.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from urllib.parse import parse_qsl, unquote, urlsplit

from camera.alerts import Message

# Apprise logs the URLs it posts to (a Telegram or ntfy token in the path) at DEBUG, from
# its import on: its records never reach our handlers (the reasons for a failure come from
# its result, redacted); urllib3's request lines (the path again) are kept to warnings.
_apprise_log = logging.getLogger("apprise")
_apprise_log.addHandler(logging.NullHandler())
_apprise_log.propagate = False
logging.getLogger("urllib3").setLevel(logging.WARNING)

import apprise  # noqa: E402 - after its logger is kept out of ours
from apprise.attachment.memory import AttachMemory  # noqa: E402
from apprise.manager_plugins import NotificationManager  # noqa: E402

log = logging.getLogger(__name__)

QUEUE_SIZE = 50
RETRY_FIRST = 5.0  # seconds before the first retry, doubled at each failure ...
RETRY_MAX = 300.0  # ... up to five minutes
STOP_WAIT = 2.0  # seconds ``stop`` waits for a send in flight: well inside systemd's 15


def check_url(url: str) -> str | None:
    """Why Apprise cannot send to ``url``, in words that do not repeat it; None if it can."""
    scheme, sep, _ = url.partition("://")
    if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme):
        return "is not a URL (an Apprise URL starts like ntfy://, tgram:// or json://)"
    if apprise.Apprise.instantiate(url) is None:
        if scheme.lower() in NotificationManager():
            return f"does not fit the {scheme}:// service (a part is missing or malformed)"
        return f"has a scheme Apprise does not know ({scheme}://)"
    return None


def describe(url: str) -> str:
    """``url`` as it may be shown: the service and host, as Apprise's privacy form shows
    them (a Telegram bot token, which sits where a host would, comes out as ``1...z``)."""
    service = apprise.Apprise.instantiate(url)
    if service is None:
        return url.partition("://")[0] + "://?"
    parts = urlsplit(service.url(privacy=True))
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _secrets(url: str) -> list[str]:
    """The parts of ``url`` that could be secret: everything but what :func:`describe`
    shows, longest first so that a part is never left half-redacted."""
    shown = describe(url)
    try:
        parts = urlsplit(url)
    except ValueError:  # a netloc urlsplit refuses ("Invalid IPv6 URL"): every word of it
        words = {w for w in re.split(r"[/:@?&=#\[\]]+", url) if w not in shown}
        return sorted((w for w in words | {url} if len(w) >= 4), key=len, reverse=True)
    found = {url, parts.netloc, parts.username or "", parts.password or ""}
    segments = parts.path.split("/")
    found |= set(segments) | {unquote(p) for p in segments}
    found |= {value for _, value in parse_qsl(parts.query)}
    if parts.hostname and parts.hostname not in shown:
        found.add(parts.hostname)
    # Short parts (a port, "v1") carry no secret; redacting them would garble reasons.
    return sorted((s for s in found if len(s) >= 4 and s not in shown), key=len, reverse=True)


class Service:
    """One configured URL: sends a message to it and says why when it could not."""

    def __init__(self, url: str) -> None:
        self.apprise = apprise.Apprise()
        if not self.apprise.add(url):
            raise ValueError(f"not an Apprise URL: {describe(url)}")
        self.shown = describe(url)
        self.secrets = _secrets(url)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def send(self, message: Message) -> str | None:
        """Deliver ``message``; None if the service took it, else the reason (redacted)."""
        attach = None
        if message.photo is not None:
            attach = AttachMemory(
                content=message.photo, name=message.photo_name, mimetype="image/jpeg"
            )
        try:
            result = self.apprise.notify(body=message.body, title=message.title, attach=attach)
        except Exception as exc:  # a plugin's bug must not end the sender thread
            return self.redact(f"{type(exc).__name__}: {exc}")
        if result:
            return None
        said = [e.message for e in result.logs() if e.level in ("WARNING", "ERROR")]
        return self.redact(said[-1] if said else "the service did not accept it")


class _Worker:
    """One service's bounded queue and the thread that delivers it in order: a service
    that is down or slow holds back only its own messages."""

    def __init__(
        self, service: Service, queue_size: int, retry_first: float, retry_max: float
    ) -> None:
        self.service = service
        self.queue_size = queue_size
        self.retry_first = retry_first
        self.retry_max = retry_max
        self.sent = 0
        self.failed = 0
        self._queue: deque[Message] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._failures = 0
        self._due = 0.0  # monotonic time of the next attempt after a failure
        self._thread = threading.Thread(target=self._run, name="notify-sender", daemon=True)

    def put(self, message: Message) -> None:
        with self._cond:
            if len(self._queue) >= self.queue_size:
                victim = next((m for m in self._queue if not m.critical), self._queue[0])
                self._queue.remove(victim)
                log.warning(
                    "notification queue full (%d): dropped the oldest %s alert, %r",
                    self.queue_size,
                    victim.event,
                    victim.title,
                )
            self._queue.append(message)
            self._cond.notify()

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    def pending(self) -> int:
        with self._cond:
            return len(self._queue)

    def titles(self) -> list[str]:
        with self._cond:
            return [m.title for m in self._queue]

    def request_stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()

    def _next(self) -> Message | None:
        """The oldest message once it may be tried, waiting for it; None once stopping.
        It stays queued while it is sent, so a full queue may still drop it."""
        with self._cond:
            while not self._stopping:
                now = time.monotonic()
                if self._queue and now >= self._due:
                    return self._queue[0]
                self._cond.wait((self._due - now) if self._queue else None)
            return None

    def _run(self) -> None:
        while (message := self._next()) is not None:
            reason = self.service.send(message)
            with self._cond:
                if reason is None:
                    if message in self._queue:
                        self._queue.remove(message)
                    self.sent += 1
                    self._failures = 0
                    self._due = 0.0
                else:
                    self.failed += 1
                    self._failures += 1
                    delay = min(self.retry_max, self.retry_first * 2 ** (self._failures - 1))
                    self._due = time.monotonic() + delay
            if reason is None:
                log.info("%s alert sent to %s", message.event, self.service.shown)
            else:
                log.warning(
                    "%s alert to %s failed (%s); retrying in %g s",
                    message.event,
                    self.service.shown,
                    reason,
                    delay,
                )


class Sender:
    """Delivers each message to every service, each service from a thread of its own."""

    def __init__(
        self,
        services: list[Service],
        *,
        queue_size: int = QUEUE_SIZE,
        retry_first: float = RETRY_FIRST,
        retry_max: float = RETRY_MAX,
    ) -> None:
        self.workers = [_Worker(s, queue_size, retry_first, retry_max) for s in services]

    @classmethod
    def from_urls(cls, urls: tuple[str, ...] | list[str], **kwargs) -> Sender:
        return cls([Service(url) for url in urls], **kwargs)

    @property
    def sent(self) -> int:
        """Deliveries: one per service that took a message."""
        return sum(w.sent for w in self.workers)

    @property
    def failed(self) -> int:
        """Failed attempts, retries included."""
        return sum(w.failed for w in self.workers)

    def start(self) -> None:
        for worker in self.workers:
            worker.start()

    def put(self, message: Message) -> None:
        """Queue ``message`` for every service; never waits on the network."""
        for worker in self.workers:
            worker.put(message)

    def pending(self) -> int:
        return sum(w.pending() for w in self.workers)

    def stop(self, wait: float = STOP_WAIT) -> None:
        """End the threads; sends in flight get ``wait`` seconds in all, then are abandoned
        (the threads are daemons: they never hold the process)."""
        for worker in self.workers:
            worker.request_stop()
        deadline = time.monotonic() + wait
        for worker in self.workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        left = self.pending()
        if left:
            log.warning("%d notification(s) not sent before stopping", left)


def send_test(
    urls: tuple[str, ...] | list[str], title: str, body: str
) -> list[tuple[str, str | None]]:
    """Send one message to each URL now, without retrying: (shown URL, failure or None)."""
    results = []
    for url in urls:
        service = Service(url)
        results.append((service.shown, service.send(Message("test", title, body))))
    return results
