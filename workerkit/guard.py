"""Keeping a background thread of the worker (heartbeat, scheduler, dispatcher, watchdog) alive through
errors nobody expected: a thread that died silently would leave a live worker looking dead to the others.
"""

from __future__ import annotations

import logging
import threading
import traceback

log = logging.getLogger("workerkit")

MAX_DELAY = 5.0
"""The longest pause after repeated failures (well below the heartbeat's 60 s expiry)."""
MAX_REMEMBERED = 100


class ErrorGuard:
    """Logs each distinct unexpected error of one thread once, with its traceback, and backs off (0.5 s to 5 s)."""

    def __init__(self, thread_name: str) -> None:
        self.thread_name = thread_name
        self.delay = 0.0
        self._seen: set[tuple[str, str, int | None]] = set()

    def failed(self, exc: Exception, stop: threading.Event) -> None:
        """Record ``exc`` and wait before the next attempt (an early wake on ``stop``)."""
        self.delay = min(MAX_DELAY, self.delay * 2 or 0.5)
        innermost = traceback.extract_tb(exc.__traceback__)[-1:]
        key = (type(exc).__qualname__, *((innermost[0].filename, innermost[0].lineno) if innermost else ("", None)))
        if key in self._seen:
            log.debug("%s thread failed again: %s: %s", self.thread_name, type(exc).__name__, exc)
        else:
            if len(self._seen) < MAX_REMEMBERED:
                self._seen.add(key)
            log.error("%s thread failed (%s: %s); carrying on, retrying within %.1f s (logged once per error)",
                      self.thread_name, type(exc).__name__, exc, MAX_DELAY, exc_info=exc)
        stop.wait(self.delay)

    def succeeded(self) -> None:
        """Reset the backoff after a round that worked."""
        self.delay = 0.0
