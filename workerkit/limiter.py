"""Cluster-wide rate limiters, in Redis, each check one Lua script: use them inside ``perform``.

    from workerkit import limiter

    class CallPartner(Job):
        def perform(self, order_id: int) -> None:
            with limiter.concurrent("partner-api", 3, lock_timeout=30):   # at most 3 calls at once
                ...
            with limiter.window("sms", 100, 1.0):                         # at most 100 in any second
                ...
            with limiter.bucket("search", 50, 10.0):                      # bursts of 50, 5 per second after
                ...

``async with`` works the same in ``async def`` jobs. The limiters' clock is the Redis server's, so processes
on several hosts share one limit whatever their own clocks say (``clock=`` injects another, for tests).

Over the limit, ``with`` raises :class:`OverLimit`. The worker does not count that as a failure: the job goes
back to the schedule for a short, jittered wait (the limiter's own estimate of when there is room, growing
with each deferral) and runs again, without ``retry_count``, error handlers or ``stat:failed``. After
``max_deferrals`` deferrals (20 by default) it fails like any other error, into the retry set. Outside a
worker (``workerkit run``, tests) ``OverLimit`` is just raised.

A concurrency slot is held until the ``with`` block ends, or at most ``lock_timeout`` seconds: a holder that
is killed -9 frees its slot then. Keep ``lock_timeout`` above the longest the block can take.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, Literal

from workerkit import config
from workerkit.keys import script

Kind = Literal["concurrent", "window", "bucket"]
MAX_DEFERRALS = 20
"""Deferrals a job may take before an :class:`OverLimit` fails it like any other error."""
CONCURRENT_RETRY_AFTER = 1.0
"""The longest a full concurrency limiter tells a job to wait (its holds may lapse much later)."""


class OverLimit(Exception):
    """The limiter had no room: the worker defers the job (see the module's docstring)."""

    def __init__(self, name: str, kind: Kind, retry_after: float, max_deferrals: int) -> None:
        self.name, self.kind, self.retry_after, self.max_deferrals = name, kind, retry_after, max_deferrals
        super().__init__(f"over the limit of {kind} limiter {name!r}: room again in about {retry_after:.2f} s")


class Limiter:
    """One limiter: ``with`` it (or ``async with``) around the limited work. Safe to share between threads
    and tasks: each ``with`` holds its own token."""

    def __init__(self, kind: Kind, name: str, count: int, period: float, max_deferrals: int,
                 clock: Callable[[], float] | None) -> None:
        if not name:
            raise ValueError("a limiter needs a name")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"limiter {name!r}: the count must be a whole number of at least 1, not {count!r}")
        if isinstance(period, bool) or not isinstance(period, int | float) or not 0 < period < float("inf"):
            raise ValueError(f"limiter {name!r}: the seconds must be a number above 0, not {period!r}")
        self.kind, self.name, self.count, self.period_ms = kind, name, count, float(period) * 1000
        self.max_deferrals = max_deferrals
        self.clock = clock
        self._holds: dict[object, list[tuple[str, float]]] = {}
        """The tokens and admission times of the ``with`` blocks inside this limiter, by thread or task (an
        entry goes when its last block ends: nothing grows with the jobs run)."""
        self._lock = threading.Lock()

    @property
    def admitted_at(self) -> float | None:
        """When the innermost ``with`` block of this thread or task got in, by the limiter's clock (epoch
        seconds); None outside one."""
        with self._lock:
            held = self._holds.get(_runner())
            return held[-1][1] if held else None

    def _call(self) -> tuple[list[str], list[Any], str]:
        token = os.urandom(12).hex()
        now = "" if self.clock is None else repr(self.clock() * 1000)
        return [config.keys().limiter(self.name, self.kind)], [self.count, self.period_ms, token, now], token

    def _admitted(self, reply: list[Any], token: str) -> None:
        taken, value = int(reply[0]), float(reply[1])
        if not taken:
            wait = max(0.0, value) / 1000
            if self.kind == "concurrent":  # slots free when blocks end, usually long before their holds lapse
                wait = min(wait, CONCURRENT_RETRY_AFTER)
            raise OverLimit(self.name, self.kind, wait, self.max_deferrals)
        with self._lock:
            self._holds.setdefault(_runner(), []).append((token, value / 1000))

    def _left(self) -> str | None:
        """Forget the innermost block of this thread or task; its token when a slot must be given back."""
        with self._lock:
            runner = _runner()
            held = self._holds.get(runner)
            if not held:
                return None
            token = held.pop()[0]
            if not held:
                del self._holds[runner]
        return token if self.kind == "concurrent" else None

    def __enter__(self) -> Limiter:
        keys, args, token = self._call()
        conn = config.redis_client()
        self._admitted(conn.register_script(script(f"limit_{self.kind}"))(keys=keys, args=args), token)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        token = self._left()
        if token is not None:
            config.redis_client().zrem(config.keys().limiter(self.name, self.kind), token)

    async def __aenter__(self) -> Limiter:
        keys, args, token = self._call()
        conn = config.async_redis_client()
        self._admitted(await conn.register_script(script(f"limit_{self.kind}"))(keys=keys, args=args), token)
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        token = self._left()
        if token is not None:
            await config.async_redis_client().zrem(config.keys().limiter(self.name, self.kind), token)


def _runner() -> object:
    """What runs this code: the asyncio task, else the thread."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running event loop
        task = None
    return task if task is not None else threading.get_ident()


def concurrent(name: str, size: int, lock_timeout: float = 30.0, *, max_deferrals: int = MAX_DEFERRALS,
               clock: Callable[[], float] | None = None) -> Limiter:
    """At most ``size`` holders at once across every process; a hold lapses after ``lock_timeout`` seconds."""
    return Limiter("concurrent", name, size, lock_timeout, max_deferrals, clock)


def window(name: str, count: int, seconds: float, *, max_deferrals: int = MAX_DEFERRALS,
           clock: Callable[[], float] | None = None) -> Limiter:
    """At most ``count`` entries in any ``seconds`` (a sliding window)."""
    return Limiter("window", name, count, seconds, max_deferrals, clock)


def bucket(name: str, count: int, seconds: float, *, max_deferrals: int = MAX_DEFERRALS,
           clock: Callable[[], float] | None = None) -> Limiter:
    """A token bucket of ``count`` tokens, refilled at ``count`` per ``seconds``: bursts of ``count``, then a
    steady rate."""
    return Limiter("bucket", name, count, seconds, max_deferrals, clock)
