"""Riding out failures in the worker's loops: retry with backoff, logging clearly, until it works or we stop.

One :class:`Backoff` serves every loop (heartbeat, scheduler, sweep, watchdog, dispatcher, the settling of a
job's outcome): Redis being away is logged when it starts and when it ends; an error nobody expected is
logged once per distinct error, with its traceback, and the loop carries on, since a thread that died
silently would leave a live worker looking dead to the others.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import redis
import redis.exceptions
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger("workerkit")


def single_try(asynchronous: bool = False) -> Any:
    """A redis-py ``retry=`` that tries a command once (``redis.asyncio``'s kind when ``asynchronous``): for
    callers whose own loop, or the next node, is the retry."""
    return (AsyncRetry if asynchronous else Retry)(NoBackoff(), 0)

T = TypeVar("T")

CLUSTER_DOWN = (redis.exceptions.ClusterError, redis.exceptions.TryAgainError, redis.exceptions.SlotNotCoveredError)
"""Errors a Redis Cluster answers with while it fails over or reshards (CLUSTERDOWN, TRYAGAIN, a slot no live
node serves yet, a command redirected too often): Redis is away for a moment."""
REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, redis.ReadOnlyError, *CLUSTER_DOWN)
"""Errors that mean "Redis is unreachable or not ready": wait and try again. (A Sentinel's "no primary known"
is a ConnectionError; a primary demoted under a client answers READONLY until the client follows the new one.)"""

MAX_DELAY = 5.0
"""The longest pause between attempts (well below the heartbeat's expiry)."""
MAX_REMEMBERED = 100


class Backoff:
    """Exponential backoff from 0.2 s to 5 s for one loop, with the logging described above."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.delay = 0.0
        self._redis_down = False
        self._seen: set[tuple[str, str, int | None]] = set()

    def failed(self, exc: BaseException, stop: threading.Event | None = None) -> None:
        """Log ``exc`` as described, then sleep before the next attempt (an early wake on ``stop``)."""
        self.delay = min(MAX_DELAY, self.delay * 2 or 0.2)
        if not isinstance(exc, REDIS_DOWN):
            self._unexpected(exc)
        elif not self._redis_down:
            self._redis_down = True
            log.warning("Redis unavailable while %s (%s); retrying every %.0f s at most", self.what, exc, MAX_DELAY)
        (stop or threading.Event()).wait(self.delay)

    def _unexpected(self, exc: BaseException) -> None:
        innermost = traceback.extract_tb(exc.__traceback__)[-1:]
        key = (type(exc).__qualname__, *((innermost[0].filename, innermost[0].lineno) if innermost else ("", None)))
        if key in self._seen:
            log.debug("%s failed again: %s: %s", self.what, type(exc).__name__, exc)
            return
        if len(self._seen) < MAX_REMEMBERED:
            self._seen.add(key)
        log.error("%s failed (%s: %s); carrying on, retrying within %.1f s (logged once per error)",
                  self.what, type(exc).__name__, exc, MAX_DELAY, exc_info=exc)

    def succeeded(self) -> None:
        """Reset after a success (logging that Redis is back if it was down)."""
        if self._redis_down:
            log.info("Redis reachable again (%s)", self.what)
        self._redis_down = False
        self.delay = 0.0


def until_done(action: Callable[[], T], what: str, stop: threading.Event | None = None) -> T | None:
    """Run ``action`` until Redis lets it succeed; None if ``stop`` is set first. Other errors propagate."""
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
