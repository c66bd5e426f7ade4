"""Delivery through Apprise to a real HTTP receiver on loopback: nothing lost while it is
down, nothing duplicated, never a wait for the caller, and never a secret in a log line."""

from __future__ import annotations

import io
import logging
import time

import pytest

from camera.alerts import Message
from camera.sender import STOP_WAIT, Sender, Service, check_url, describe, send_test
from puccicam.logs import setup_logging
from tests.helpers.receiver import Receiver

SECRET_PATH = "s3cr3t-topic-Kx81"
SECRET_PASSWORD = "hunter2-Pw9"


@pytest.fixture
def receiver():
    service = Receiver()
    yield service
    service.stop()


def sender_for(*urls: str, **kwargs) -> Sender:
    kwargs.setdefault("retry_first", 0.2)
    sender = Sender.from_urls(list(urls), **kwargs)
    sender.start()
    return sender


def put_timed(sender: Sender, message: Message) -> float:
    started = time.monotonic()
    sender.put(message)
    return time.monotonic() - started


def test_every_service_gets_each_message_once_with_its_photo(receiver):
    other = Receiver()
    sender = sender_for(receiver.url("a"), other.url("b"))
    try:
        sender.put(Message("motion", "puccicam: motion", "Motion at 12:00.", photo=b"\xff\xd8x"))
        (payload,) = receiver.wait_for(1, 10)
        other.wait_for(1, 10)
        assert payload["title"] == "puccicam: motion"
        assert payload["attachments"][0]["mimetype"] == "image/jpeg"
        time.sleep(0.5)
        assert (len(receiver.received), len(other.received)) == (1, 1)
        assert (sender.sent, sender.failed) == (2, 0)
    finally:
        sender.stop()
        other.stop()


def test_a_service_down_for_a_while_gets_everything_later_in_order(receiver, caplog):
    up = Receiver()
    receiver.stop()
    sender = sender_for(receiver.url(), up.url())
    try:
        waits = [put_timed(sender, Message("offline", f"alert {i}", "body")) for i in range(5)]
        assert max(waits) < 0.5  # queued, never sent on the caller's time (a send takes seconds)
        up.wait_for(5, 10)  # the working service is not held back by the broken one
        deadline = time.monotonic() + 10  # a few retries against a refused port
        while sender.failed < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sender.failed >= 3  # tried again and again, each wait twice the last
        receiver.start()
        receiver.wait_for(5, 15)
        time.sleep(0.5)
        assert receiver.titles() == [f"alert {i}" for i in range(5)]
        assert up.titles() == [f"alert {i}" for i in range(5)]  # no duplicates on retry
        assert sender.pending() == 0
    finally:
        sender.stop()
        up.stop()
    assert "offline alert to json://127.0.0.1" in caplog.text
    assert "A Connection error occurred" in caplog.text
    assert "retrying in 0.2 s" in caplog.text and "retrying in 0.4 s" in caplog.text


@pytest.mark.parametrize("mode", ["slow", "garbage"])
def test_a_slow_or_garbage_answering_service_holds_nobody_up(mode):
    bad = Receiver(mode=mode, delay=10)
    sender = sender_for(bad.url())
    try:
        waits = [put_timed(sender, Message("offline", f"alert {i}", "body")) for i in range(20)]
        assert max(waits) < 0.5
        deadline = time.monotonic() + 10
        while bad.attempts == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert bad.attempts >= 1
        started = time.monotonic()
        sender.stop()
        assert time.monotonic() - started < STOP_WAIT + 0.5
    finally:
        bad.stop()
    if mode == "garbage":
        assert sender.failed >= 1 and sender.sent == 0


def test_a_full_queue_drops_the_oldest_alert_that_is_not_critical(caplog):
    sender = Sender.from_urls(["json://127.0.0.1:9/hook"], queue_size=3)  # not started
    sender.put(Message("offline", "offline 1", "", critical=True))
    sender.put(Message("motion", "motion 1", ""))
    sender.put(Message("motion", "motion 2", ""))
    sender.put(Message("back", "back 1", "", critical=True))
    assert sender.workers[0].titles() == ["offline 1", "motion 2", "back 1"]
    sender.put(Message("motion", "motion 3", ""))
    assert sender.workers[0].titles() == ["offline 1", "back 1", "motion 3"]
    sender.put(Message("offline", "offline 2", "", critical=True))
    assert sender.workers[0].titles() == ["offline 1", "back 1", "offline 2"]
    sender.put(Message("back", "back 2", "", critical=True))  # all critical: the oldest goes
    assert sender.workers[0].titles() == ["back 1", "offline 2", "back 2"]
    assert "notification queue full (3): dropped the oldest motion alert, 'motion 1'" in caplog.text
    assert "dropped the oldest offline alert, 'offline 1'" in caplog.text


def test_stop_reports_what_was_not_sent(caplog):
    sender = sender_for("json://127.0.0.1:9/hook", retry_first=60)
    sender.put(Message("offline", "offline", "", critical=True))
    time.sleep(0.5)
    sender.stop()
    assert "1 notification(s) not sent before stopping" in caplog.text


@pytest.fixture
def debug_log():
    """Everything logged, at DEBUG, through the handler the entry points install (pytest's
    caplog would also see loggers that do not propagate, as Apprise's)."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    setup_logging("DEBUG", stream=stream)
    yield stream
    root.handlers[:], _ = saved
    root.setLevel(saved[1])


def test_no_secret_reaches_a_log_line_even_at_debug(receiver, debug_log):
    secret_url = receiver.url(SECRET_PATH).replace("json://", f"json://owner:{SECRET_PASSWORD}@")
    down = f"json://owner:{SECRET_PASSWORD}@127.0.0.1:9/{SECRET_PATH}"
    sender = sender_for(secret_url, down)
    try:
        sender.put(Message("offline", "offline", "body", critical=True))
        receiver.wait_for(1, 10)
        time.sleep(0.8)  # failures and retries against the second
        results = send_test([secret_url, down], "test", "body")
    finally:
        sender.stop()
    assert sender.failed >= 1
    assert results[0][1] is None and results[1][1]
    shown = debug_log.getvalue() + repr(results)
    assert "offline alert sent to json://127.0.0.1" in shown
    assert SECRET_PATH not in shown and SECRET_PASSWORD not in shown


@pytest.mark.parametrize(
    ("url", "secret", "shown"),
    [
        ("tgram://123456789:ABCdefGhIJKlmnOPqrsTUVwxyz/12315544/", "ABCdefGhIJK", "tgram://"),
        (f"ntfys://ntfy.sh/{SECRET_PATH}", SECRET_PATH, "ntfys://ntfy.sh"),
        (f"json://me:{SECRET_PASSWORD}@example.com:8080/{SECRET_PATH}", SECRET_PASSWORD,
         "json://example.com:8080"),
        ("pover://userkey123abc@tokenabc456def", "tokenabc456def", "pover://"),
    ],
)  # fmt: skip
def test_a_url_is_shown_as_service_and_host_only(url, secret, shown):
    assert describe(url).startswith(shown)
    assert secret not in describe(url) and SECRET_PATH not in describe(url)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ntfy.sh/topic", "is not a URL"),
        ("", "is not a URL"),
        ("foo://bar", "has a scheme Apprise does not know (foo://)"),
        ("json://", "does not fit the json:// service"),
    ],
)
def test_urls_apprise_cannot_use_are_named_without_their_text(url, problem):
    assert problem in check_url(url)


def test_good_urls_pass_the_check(receiver):
    assert check_url(receiver.url()) is None
    assert check_url("ntfys://ntfy.sh/topic") is None


@pytest.mark.parametrize(
    "url",
    [
        "tgram://123456789:ABCdefGhIJKlmnOPqrsTUVwxyz/12315544/",
        f"ntfys://owner:{SECRET_PASSWORD}@ntfy.example.com/{SECRET_PATH}",
        f"json://127.0.0.1:9/{SECRET_PATH}?token={SECRET_PASSWORD}",
    ],
)
def test_a_failure_reason_naming_any_part_of_the_url_is_redacted(url):
    service = Service(url)
    reason = service.redact(f"could not post to {url} (path /{SECRET_PATH}, {SECRET_PASSWORD})")
    for secret in ("ABCdefGhIJKlmnOPqrsTUVwxyz", SECRET_PATH, SECRET_PASSWORD):
        assert secret not in url or secret not in reason
    assert reason.startswith("could not post to ***")
