"""The request log line: what an operator reads for every request."""

from __future__ import annotations

import logging
import time

import pytest

from webapp.requestlog import log_request


@pytest.mark.parametrize("ahead", [0.0, 0.00004, 0.2])
def test_a_duration_is_never_negative(caplog, ahead):
    """A start reading a hair after the end (clock granularity) logged "-0.0ms"."""
    with caplog.at_level(logging.INFO, logger="webapp.requests"):
        log_request("GET", "/gallery", 200, time.perf_counter() + ahead, 1)
    (line,) = [r.getMessage() for r in caplog.records]
    assert line == "GET /gallery 200 0.0ms user=1"
