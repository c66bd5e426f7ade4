"""Time as the grabber sees it: the one boundary tests replace."""

from __future__ import annotations

import threading
import time


class SystemClock:
    """Wall-clock time, and sleeps that end early when the grabber is asked to stop."""

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float, stop: threading.Event) -> bool:
        """Sleep up to ``seconds``; return True if ``stop`` was set meanwhile."""
        return stop.wait(max(0.0, seconds))
