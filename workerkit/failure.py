"""Deciding a failure's outcome, once: error fields on the payload, Sidekiq's backoff, retry or dead.

A failed job gets ``error_class``, ``error_message``, ``error_backtrace``, ``failed_at`` (first failure) or
``retried_at`` (later ones) and ``retry_count`` (0 on the first failure). It waits in the ``retry`` set for
``count**4 + 15 + rand(10) * (count + 1)`` seconds (or the job's ``backoff``) while ``retry_count`` is below
its retry limit (25 by default, ``retry=N``), then goes to the ``dead`` set, which keeps at most 10,000 jobs
for at most 180 days (trimmed on every insert). ``retry=False`` drops a failed job after the error handlers.

:func:`decide` runs the error handlers and the job's hooks and returns a :class:`~workerkit.lifecycle.Settlement`;
only the Redis write of that settlement is retried through an outage, so handlers run once per failure and
``retry_count`` grows by exactly one. Death handlers run once the burial has landed (:func:`buried`).
"""

from __future__ import annotations

import logging
import math
import random
import traceback

from workerkit import config
from workerkit.compat import compress_backtrace
from workerkit.lifecycle import Outcome, Settlement
from workerkit.limiter import OverLimit
from workerkit.payload import Payload, decode, encode, quarantined, readable
from workerkit.protocols import JobClass

log = logging.getLogger("workerkit")

MAX_MESSAGE = 10_000
MAX_BACKTRACE_LINES = 30


class PoisonPillError(Exception):
    """The job was running in workers that died under it too many times."""


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
    payload["error_message"] = readable(str(exc)[:MAX_MESSAGE])
    lines = traceback.format_exception(exc)
    trace = [readable(line.rstrip("\n")) for line in lines[-MAX_BACKTRACE_LINES:]]
    payload["error_backtrace"] = compress_backtrace(trace)
    previous = payload.get("retry_count")
    if (isinstance(previous, int) and not isinstance(previous, bool)) or (
        isinstance(previous, str) and previous.isdigit()
    ):
        payload["retry_count"] = int(previous) + 1
        payload["retried_at"] = config.timestamp(now)
    else:
        payload["retry_count"] = 0
        payload["failed_at"] = config.timestamp(now)


def delay_for(job_class: JobClass | None, count: int, exc: BaseException) -> float:
    """Seconds until retry ``count + 1``: the job's ``backoff`` when it gives a finite number of seconds,
    else Sidekiq's formula (a backoff that raises or returns None, NaN or a negative number is logged)."""
    custom = job_class.backoff if job_class is not None else None
    if custom is None:
        return sidekiq_backoff(count)
    try:
        delay = float(custom(count, exc))
    except Exception as error:
        log.warning("the backoff of %s failed (%s: %s); using the default backoff", job_class.__name__,  # type: ignore[union-attr]
                    type(error).__name__, error)
        return sidekiq_backoff(count)
    if not math.isfinite(delay) or delay < 0:
        log.warning("the backoff of %s returned %r, not a number of seconds; using the default backoff",
                    job_class.__name__, delay)  # type: ignore[union-attr]
        return sidekiq_backoff(count)
    return delay


def run_error_handlers(payload: Payload, exc: BaseException) -> None:
    """Call every configured error handler; a handler's own error is logged, never raised."""
    for handler in config.current().error_handlers:
        try:
            handler(exc, payload)
        except Exception:
            log.exception("error handler %r failed", handler)


def run_death_handlers(payload: Payload, exc: BaseException | None) -> None:
    """Call every configured death handler; a handler's own error is logged, never raised."""
    for handler in config.current().death_handlers:
        try:
            handler(payload, exc)
        except Exception:
            log.exception("death handler %r failed", handler)


def decide(raw: bytes, payload: Payload, exc: BaseException, job_class: JobClass | None, now: float) -> Settlement:
    """Decide, once, what happens to a job that raised ``exc``: retry, dead or discarded.

    ``payload`` is the job's payload as the job and middleware left it; if they stored a value in it that
    JSON cannot carry, the payload as fetched (``raw``) is stored instead, with the error fields.
    """
    run_error_handlers(payload, exc)
    limit = retry_limit(payload)
    record_error(payload, exc, now)
    try:
        member = encode(payload)
    except (TypeError, ValueError) as error:
        log.warning("the job's payload holds a value JSON cannot carry (%s); storing it as fetched", error)
        payload = _fetched_with_errors(raw, payload)
        member = encode(payload)
    count = int(payload["retry_count"])
    if limit is None:
        return Settlement(Outcome.DISCARDED, payload=payload, error=exc)
    if count < limit:
        return Settlement(Outcome.RETRY, member, now + delay_for(job_class, count, exc), payload, exc)
    if job_class is not None:
        try:
            job_class.retries_exhausted(payload, exc)
        except Exception:
            log.exception("retries_exhausted hook of %r failed", payload.get("class"))
    return Settlement(Outcome.DEAD, member, now, payload, exc)


def deferral(payload: Payload, exc: OverLimit, now: float) -> Settlement | None:
    """The settlement that puts a job a limiter turned away back in the schedule, after a jittered wait
    that grows with each deferral; None once it used its ``max_deferrals`` (it then fails as usual)."""
    done = payload.get("limited")
    done = done if isinstance(done, int) and not isinstance(done, bool) and done >= 0 else 0
    if done >= exc.max_deferrals:
        return None
    payload["limited"] = done + 1
    wait = min(MAX_DEFERRAL_WAIT, max(exc.retry_after, MIN_DEFERRAL_WAIT) * (1 + 0.25 * done))
    return Settlement(Outcome.DEFERRED, encode(payload), now + wait * random.uniform(1.0, 1.5), payload, exc)


MIN_DEFERRAL_WAIT = 0.5
"""Seconds a deferred job waits at least (the schedule is polled about once a second anyway)."""
MAX_DEFERRAL_WAIT = 300.0


def _fetched_with_errors(raw: bytes, changed: Payload) -> Payload:
    payload = decode(raw)
    for name in ("error_class", "error_message", "error_backtrace", "error_log", "retry_count", "failed_at",
                 "retried_at"):
        if name in changed:
            payload[name] = changed[name]
    return payload


def poisoned(payload: Payload, recoveries: int, now: float) -> Settlement:
    """The settlement of a job whose workers died under it ``recoveries`` times: the dead set."""
    exc = PoisonPillError(f"the worker running this job died {recoveries} times (kill -9, OOM, crash); not retried")
    record_error(payload, exc, now)
    return Settlement(Outcome.DEAD, encode(payload), now, payload, exc)


def unreadable(raw: bytes, queue: str, error: Exception, now: float) -> Settlement:
    """The settlement of bytes that are not a runnable job: the dead set, byte for byte, with the reason."""
    payload = quarantined(raw, queue, str(error), now)
    return Settlement(Outcome.DEAD, encode(payload), now, payload, error)


def buried(settlement: Settlement) -> None:
    """Tell the death handlers about a settlement to the dead set that has landed (call it once)."""
    if settlement.outcome is Outcome.DEAD and settlement.payload is not None:
        run_death_handlers(settlement.payload, settlement.error)
