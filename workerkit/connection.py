"""Riding out a Redis outage: retry an action with backoff, logging clearly, until it works or we stop."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

import redis

log = logging.getLogger("workerkit")

T = TypeVar("T")

REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, redis.ReadOnlyError)
"""Errors that mean "Redis is unreachable or not ready": wait and try again."""


class Backoff:
    """Exponential backoff from 0.2 s to 5 s; logs the first failure and each recovery."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.delay = 0.0

    def failed(self, exc: BaseException, stop: threading.Event | None = None) -> None:
        """Log (first time and every 5 s step) and sleep before the next attempt; an early wake on ``stop``."""
        self.delay = min(5.0, self.delay * 2 or 0.2)
        if self.delay in (0.2, 5.0):
            log.warning("Redis unavailable while %s (%s); retrying every %.1f s at most", self.what, exc, self.delay)
        (stop or threading.Event()).wait(self.delay)

    def succeeded(self) -> None:
        """Reset after a success (logging that Redis is back if it was down)."""
        if self.delay:
            log.info("Redis reachable again (%s)", self.what)
        self.delay = 0.0


def until_done(action: Callable[[], T], what: str, stop: threading.Event | None = None) -> T | None:
    """Run ``action`` until Redis lets it succeed; None if ``stop`` is set first."""
    backoff = Backoff(what)
    while True:
        try:
            result = action()
        except REDIS_DOWN as exc:
            if stop is not None and stop.is_set():
                return None
            backoff.failed(exc, stop)
        else:
            backoff.succeeded()
            return result
