"""Logging for the entry points: the library modules only ever call ``getLogger``.

Under systemd (``JOURNAL_STREAM`` is set) each line starts with a ``<N>`` syslog priority
that journald turns into the entry's level, and carries no timestamp of its own, since
the journal adds one. On a terminal the lines carry a timestamp and the level name.
"""

from __future__ import annotations

import logging
import os
import re
import sys

_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


# C0 and C1 controls, DEL, and the Unicode line and paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape_control(text: str) -> str:
    """``text`` with every control character written as ``\\xNN`` (or ``\\uNNNN``)."""
    return _CONTROL.sub(
        lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}", text
    )


class SafeFormatter(logging.Formatter):
    """A formatter under which client data (a request path, a typed name, a Host header)
    can never start a log line of its own: control characters in a message are escaped,
    wherever the message came from (our modules, Flask-Limiter, waitress), and every line
    of a traceback is indented, so none reads as an entry of its own."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_control(record.message)
        return super().formatMessage(record)

    def formatException(self, ei) -> str:
        lines = super().formatException(ei).splitlines()
        return "\n".join("  " + escape_control(line) for line in lines)

    def formatStack(self, stack_info: str) -> str:
        return "\n".join("  " + escape_control(line) for line in stack_info.splitlines())


class JournalFormatter(SafeFormatter):
    """``<6>camera.grabber: photo saved``: what journald reads as priority and message."""

    def format(self, record: logging.LogRecord) -> str:
        priority = _PRIORITY.get(record.levelno, 6)
        text = super().format(record)
        # Continuation lines (tracebacks) keep the priority so they stay one entry's level.
        return "\n".join(f"<{priority}>{line}" for line in text.splitlines())


def setup_logging(level: str = "INFO", stream=None) -> None:
    """Send every logger's records to stderr in a form that reads well where it ends up."""
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(
            SafeFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
