"""Jobs the workerkit tests push and real ``workerkit worker -r wk_jobs`` processes run.

Each job records what it did in Redis, so tests count runs without looking inside the worker.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from workerkit import Job, config, job


def _redis() -> Any:
    return config.redis_client()


class Record(Job):
    """Appends ``value`` to the list ``key``."""

    def perform(self, key: str, value: Any) -> None:
        _redis().rpush(key, value)


class Critical(Job):
    queue = "critical"

    def perform(self, key: str, value: Any) -> None:
        _redis().rpush(key, value)


class Slow(Job):
    """Marks ``started:<key>``, sleeps, then increments ``key``."""

    def perform(self, key: str, seconds: float) -> None:
        _redis().incr(f"started:{key}")
        time.sleep(seconds)
        _redis().incr(key)


class Flaky(Job):
    """Fails every time, counting attempts in ``key``; retried twice without delay."""

    retry = 2
    name = "flaky-alias"

    @staticmethod
    def backoff(count: int, exc: BaseException) -> float:
        return 0.0

    def perform(self, key: str) -> None:
        _redis().incr(key)
        raise RuntimeError(f"attempt failed for {key}")

    @classmethod
    def retries_exhausted(cls, payload: dict[str, Any], exc: BaseException | None) -> None:
        _redis().set(f"exhausted:{payload['args'][0]}", str(exc))


class Nested(Job):
    """Pushes a Record job (for the testing helpers)."""

    def perform(self, key: str) -> None:
        Record.perform_async(key, "from-nested")


@job(queue="mailers", retry=5)
def send_mail(key: str, address: str) -> None:
    _redis().rpush(key, address)



class Spin(Job):
    """Marks ``started:<key>``, loops in Python for ``seconds`` (short sleeps), then increments ``key``."""

    retry = 3

    def perform(self, key: str, seconds: float = 60.0) -> None:
        _redis().incr(f"started:{key}")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(0.01)
        _redis().incr(key)


class SpinLimited(Spin):
    """Spin with a class-level time limit."""

    timeout = 0.5


@job(timeout=30, retry=0)
def spin_patient(key: str, seconds: float) -> None:
    Spin().perform(key, seconds)


async def _record_later(key: str) -> None:
    _redis().rpush(key, "awaited")


class ReturnsCoroutine(Job):
    """A sync perform that hands back a coroutine instead of doing the work (a forgotten ``await``)."""

    retry = 0

    def perform(self, key: str) -> Any:
        return _record_later(key)


@job(retry=0)
def returns_coroutine(key: str) -> Any:
    return _record_later(key)


@job(result_ttl=60)
def add(a: int, b: int) -> int:
    """Keeps its result: the sum."""
    return a + b


class Echo(Job):
    """Keeps its result: the value it was given, as JSON carried it."""

    result_ttl = 60
    retry = 0

    def perform(self, value: Any) -> Any:
        return value


@job(result_ttl=60, retry=0)
def fails_keeping(message: str) -> None:
    raise ValueError(message)


@job(result_ttl=60, retry=0)
def returns_a_set() -> Any:
    return {1, 2}


class LogsThenFails(Job):
    """Logs ``lines`` lines naming its attempt (the last one hostile), then fails; retried once at once."""

    retry = 1

    @staticmethod
    def backoff(count: int, exc: BaseException) -> float:
        return 0.0

    def perform(self, lines: int) -> None:
        attempt = int(self.payload.get("retry_count", -1)) + 2
        log = logging.getLogger("wk_jobs.logs")
        for number in range(lines - 1):
            log.info("attempt %d line %d", attempt, number)
        log.warning("attempt %d: <b>bad</b> \ud800 %s", attempt, "x" * 10_000)
        raise RuntimeError(f"attempt {attempt} failed")


class UniqueHold(Job):
    """A unique job (60 s) that records its start in ``unique:started``, then waits for the key
    ``unique:release`` (up to 30 s), then appends ``value`` to ``unique:ran``."""

    unique_for = 60

    def perform(self, value: str) -> None:
        conn = _redis()
        conn.rpush("unique:started", value)
        deadline = time.monotonic() + 30
        while not conn.exists("unique:release") and time.monotonic() < deadline:
            time.sleep(0.02)
        conn.rpush("unique:ran", value)


class UniqueFail(Job):
    """A unique job that always fails; one retry after 0.2 s, then dead."""

    unique_for = 60
    retry = 1

    @staticmethod
    def backoff(count: int, exc: BaseException) -> float:
        return 0.2

    def perform(self, value: str) -> None:
        _redis().rpush("unique:failed", value)
        raise RuntimeError("unique and failing")


class LimitedConcurrent(Job):
    """At most 3 inside at once across every worker: records how many were inside when it entered."""

    def perform(self, seconds: float) -> None:
        from workerkit import limiter

        conn = _redis()
        with limiter.concurrent("three", 3, lock_timeout=20):
            conn.rpush("limited:inside", conn.incr("limited:now"))
            time.sleep(seconds)
            conn.decr("limited:now")
        conn.rpush("limited:done", self.jid)


class LimitedWindow(Job):
    """At most 100 admitted in any second: records the limiter's admission time (server clock, seconds)."""

    def perform(self) -> None:
        from workerkit import limiter

        window = limiter.window("hundred", 100, 1.0)
        with window:
            _redis().rpush("limited:admitted", repr(window.admitted_at))


class AlwaysOverLimit(Job):
    """Its limiter is always full (the test holds the only slot): deferred twice, then it fails."""

    retry = 0

    def perform(self) -> None:
        from workerkit import limiter

        with limiter.concurrent("full", 1, lock_timeout=60, max_deferrals=2):
            _redis().rpush("limited:never", self.jid)


class Cancellable(Job):
    """Runs until ``workerkit.cancel`` asks it to stop (up to 30 s), then records that it saw it and raises
    ``workerkit.Cancelled``; with ``stubborn`` it ignores the request and finishes."""

    def perform(self, stubborn: bool) -> None:
        import workerkit

        conn = _redis()
        conn.rpush("cancel:started", self.jid)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.cancelled and not stubborn:
                conn.rpush("cancel:saw", self.jid)
                raise workerkit.Cancelled()
            if stubborn and conn.exists("cancel:finish"):
                break
            time.sleep(0.02)
        conn.rpush("cancel:finished", self.jid)
