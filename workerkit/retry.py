"""Failures: error fields on the payload, Sidekiq's backoff, the retry set, the dead set, death handlers.

A failed job gets ``error_class``, ``error_message``, ``error_backtrace``, ``failed_at`` (first failure) or
``retried_at`` (later ones) and ``retry_count`` (0 on the first failure). It waits in the ``retry`` set for
``count**4 + 15 + rand(10) * (count + 1)`` seconds (or the job's ``backoff``) while ``retry_count`` is below
its retry limit (25 by default, ``retry=N``), then goes to the ``dead`` set, which keeps at most 10,000 jobs
for at most 180 days (trimmed on every insert). ``retry=False`` drops a failed job after the error handlers.
Moving a job out of its in-flight list and counting the failure happen in one MULTI, so nothing is lost.
"""

from __future__ import annotations

import logging
import random
import time
import traceback
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import redis

from workerkit import config
from workerkit.compat import compress_backtrace, timestamp
from workerkit.keys import Keys
from workerkit.payload import Payload, encode

if TYPE_CHECKING:
    from workerkit.job import Job

log = logging.getLogger("workerkit")

MAX_MESSAGE = 10_000
MAX_BACKTRACE_LINES = 30
STATS_TTL = 5 * 365 * 24 * 3600


def error_class_name(exc: BaseException) -> str:
    """``ValueError`` for builtins, ``module.Name`` otherwise."""
    kind = type(exc)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def sidekiq_backoff(count: int) -> float:
    """Sidekiq's delay before retry number ``count + 1``: ``count**4 + 15 + rand(10) * (count + 1)`` seconds."""
    return float(count**4 + 15 + random.randrange(10) * (count + 1))


def retry_limit(payload: Payload) -> int | None:
    """How many retries the payload allows; None means "no retries and no dead set" (``retry: false``)."""
    option = payload.get("retry", True)
    if option is True:
        return config.current().max_retries
    if option is False or option is None:
        return None
    try:
        return max(0, int(option))
    except (TypeError, ValueError):
        return config.current().max_retries


def record_error(payload: Payload, exc: BaseException, now: float) -> None:
    """Write the error fields and bump ``retry_count`` on the payload."""
    payload["error_class"] = error_class_name(exc)
    payload["error_message"] = str(exc)[:MAX_MESSAGE]
    lines = traceback.format_exception(exc)
    payload["error_backtrace"] = compress_backtrace([line.rstrip("\n") for line in lines[-MAX_BACKTRACE_LINES:]])
    previous = payload.get("retry_count")
    if isinstance(previous, int) or (isinstance(previous, str) and previous.isdigit()):
        payload["retry_count"] = int(previous) + 1
        payload["retried_at"] = timestamp(now)
    else:
        payload["retry_count"] = 0
        payload["failed_at"] = timestamp(now)


def _count_failure(pipe: redis.client.Pipeline, keys: Keys, now: float) -> None:
    day = datetime.fromtimestamp(now, UTC).date()
    for name in ("processed", "failed"):
        pipe.incrby(keys.stat(name), 1)
        pipe.incrby(keys.stat(name, day), 1)
        pipe.expire(keys.stat(name, day), STATS_TTL)


def _add_to_dead(pipe: redis.client.Pipeline, keys: Keys, member: str, now: float) -> None:
    settings = config.current()
    pipe.zadd(keys.dead, {member: now})
    pipe.zremrangebyscore(keys.dead, "-inf", now - settings.dead_timeout)
    pipe.zremrangebyrank(keys.dead, 0, -settings.dead_max_jobs - 1)


def run_death_handlers(payload: Payload, exc: BaseException | None) -> None:
    """Call every configured death handler; a handler's own error is logged, never raised."""
    for handler in config.current().death_handlers:
        try:
            handler(payload, exc)
        except Exception:
            log.exception("death handler %r failed", handler)


def run_error_handlers(payload: Payload, exc: BaseException) -> None:
    """Call every configured error handler; a handler's own error is logged, never raised."""
    for handler in config.current().error_handlers:
        try:
            handler(exc, payload)
        except Exception:
            log.exception("error handler %r failed", handler)


def handle_failure(
    conn: redis.Redis, keys: Keys, inflight: str, raw: bytes, payload: Payload, exc: BaseException,
    job_class: type[Job] | None,
) -> str:
    """Retry, kill or drop a job that raised ``exc``; return "retry", "dead" or "discarded"."""
    now = time.time()
    run_error_handlers(payload, exc)
    limit = retry_limit(payload)
    record_error(payload, exc, now)
    count = int(payload["retry_count"])
    if limit is not None and count < limit:
        custom = job_class.backoff if job_class is not None else None
        delay = float(custom(count, exc)) if custom is not None else sidekiq_backoff(count)
        _commit(conn, keys, inflight, raw, lambda pipe: pipe.zadd(keys.retry, {encode(payload): now + delay}), now)
        return "retry"
    if limit is None:
        _commit(conn, keys, inflight, raw, lambda pipe: None, now)
        return "discarded"
    if job_class is not None:
        try:
            job_class.retries_exhausted(payload, exc)
        except Exception:
            log.exception("retries_exhausted hook of %s failed", payload.get("class"))
    return kill(conn, keys, inflight, raw, payload, exc, now=now, record=False)


def kill(
    conn: redis.Redis, keys: Keys, inflight: str, raw: bytes, payload: Payload, exc: BaseException,
    *, now: float | None = None, record: bool = True,
) -> str:
    """Send a job straight to the dead set (bad payload, unknown class, exhausted retries) and tell handlers.

    Returns "dead".
    """
    now = time.time() if now is None else now
    if record:
        record_error(payload, exc, now)
    member = encode(payload)
    _commit(conn, keys, inflight, raw, lambda pipe: _add_to_dead(pipe, keys, member, now), now)
    run_death_handlers(payload, exc)
    return "dead"


def _commit(conn: redis.Redis, keys: Keys, inflight: str, raw: bytes, add: Any, now: float) -> None:
    """In one MULTI: take the job off its in-flight list, do ``add(pipe)``, count the failure."""
    pipe = conn.pipeline(transaction=True)
    pipe.lrem(inflight, -1, raw)  # type: ignore[arg-type]
    add(pipe)
    _count_failure(pipe, keys, now)
    pipe.execute()
