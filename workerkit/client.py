"""Writes jobs to Redis: push one (one round trip), push many (pipelined), schedule for later.

A job for now is ``SADD queues <q>`` + ``LPUSH queue:<q> <payload>`` sent together; a job for later is
``ZADD schedule <epoch> <payload>``. Client middleware sees every payload first and may change or drop it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import redis

from workerkit import config, registry
from workerkit.compat import timestamp
from workerkit.payload import Payload, check_args, encode, new_payload

if TYPE_CHECKING:
    from workerkit.job import Job

BULK_CHUNK = 1000
"""Jobs per LPUSH when pushing in bulk."""

Interceptor = Callable[[Payload], None]
_interceptor: Interceptor | None = None


def set_interceptor(interceptor: Interceptor | None) -> Interceptor | None:
    """Route pushes to ``interceptor`` instead of Redis (``workerkit.testing`` uses this); returns the old one."""
    global _interceptor
    previous, _interceptor = _interceptor, interceptor
    return previous


def epoch(when: float | int | datetime | None) -> float | None:
    """Epoch seconds of ``when`` (a datetime, naive meaning local time, or a number), or None."""
    if when is None:
        return None
    if isinstance(when, datetime):
        return when.timestamp()
    if isinstance(when, (int, float)) and not isinstance(when, bool):
        return float(when)
    raise TypeError(f"'at' must be epoch seconds or a datetime, not {type(when).__name__}")


def seconds(interval: float | int | timedelta) -> float:
    """Seconds in ``interval`` (a number or a timedelta)."""
    if isinstance(interval, timedelta):
        return interval.total_seconds()
    if isinstance(interval, (int, float)) and not isinstance(interval, bool):
        return float(interval)
    raise TypeError(f"interval must be seconds or a timedelta, not {type(interval).__name__}")


def _default_retry(class_name: str, retry: bool | int | None) -> bool | int:
    if retry is not None:
        return retry
    job_class = registry.get(class_name)
    return job_class.retry if job_class is not None else True


def _send(commands: Sequence[tuple[Any, ...]]) -> list[Any]:
    """Send ``commands`` in one write on one pooled connection and read every reply; retry once on a lost link."""
    pool = config.redis_client().connection_pool
    for attempt in (1, 2):
        conn = pool.get_connection()
        try:
            conn.send_packed_command(conn.pack_commands(commands))  # type: ignore[no-untyped-call]
            return [conn.read_response() for _ in commands]
        except (redis.ConnectionError, redis.TimeoutError):
            conn.disconnect()  # type: ignore[no-untyped-call]
            if attempt == 2:
                raise
        finally:
            pool.release(conn)
    raise AssertionError("unreachable")


def _run_client_middleware(payload: Payload) -> Payload | None:
    for middleware in config.current().client_middleware:
        result = middleware(payload)
        if result is None:
            return None
        payload = result
    return payload


def push_payload(payload: Payload, at: float | None = None) -> str | None:
    """Push a built payload (to its queue, or to the schedule set when ``at`` is in the future).

    Returns its jid, or None when a client middleware dropped it.
    """
    if config.current().client_middleware:
        result = _run_client_middleware(payload)
        if result is None:
            return None
        payload = result
    jid: str = payload["jid"]
    if _interceptor is not None:
        if at is not None:
            payload["at"] = at
        _interceptor(payload)
        return jid
    keys = config.keys()
    if at is not None and at > time.time():
        _send([("ZADD", keys.schedule, repr(at), encode(payload))])
    else:
        queue = payload["queue"]
        payload["enqueued_at"] = timestamp(time.time())
        _send([("SADD", keys.queues, queue), ("LPUSH", keys.queue(queue), encode(payload))])
    return jid


def push(
    class_name: str,
    args: list[Any] | tuple[Any, ...] = (),
    *,
    queue: str = "default",
    at: float | datetime | None = None,
    retry: bool | int | None = None,
    **options: Any,
) -> str:
    """Push a job by class name (a registered job or a foreign one) and return its jid.

    ``at`` (epoch seconds or datetime) schedules it; ``retry`` is True, False or a retry count (default: the
    registered class's option, else True); other keyword options become payload fields (``tags=[...]``).
    A client middleware that drops the job still gets its jid returned.
    """
    payload = new_payload(class_name, args, queue, _default_retry(class_name, retry), options)
    push_payload(payload, epoch(at))
    jid: str = payload["jid"]
    return jid


def _class_defaults(job: type[Job] | str) -> tuple[str, str, bool | int]:
    if isinstance(job, str):
        job_class = registry.get(job)
        if job_class is None:
            return job, "default", True
        return job, job_class.queue, job_class.retry
    return job.job_name(), job.queue, job.retry


def push_bulk(
    job: type[Job] | str,
    args_list: Iterable[Sequence[Any]],
    *,
    queue: str | None = None,
    at: float | datetime | None = None,
    retry: bool | int | None = None,
    **options: Any,
) -> list[str]:
    """Push one job per argument list, 1,000 per round trip; return the jids in order.

    Every argument list is checked before anything is pushed, so a bad one pushes nothing.
    """
    class_name, default_queue, default_retry = _class_defaults(job)
    queue = queue or default_queue
    retry = default_retry if retry is None else retry
    when = epoch(at)
    base = new_payload(class_name, (), queue, retry, options)
    del base["class"], base["jid"], base["args"], base["created_at"]
    checked = [check_args(args) for args in args_list]
    now = time.time()
    stamp = timestamp(now)
    randomness = os.urandom(12 * len(checked)).hex()
    jids = [randomness[index : index + 24] for index in range(0, 24 * len(checked), 24)]
    if config.current().client_middleware or _interceptor is not None:
        payloads = [{"class": class_name, "args": args, "jid": jid, **base, "created_at": stamp}
                    for jid, args in zip(jids, checked, strict=True)]
        return [jid for payload in payloads if (jid := push_payload(payload, when)) is not None]
    score = when if when is not None and when > now else None
    scheduled = score is not None
    encoded = _encode_all(class_name, checked, jids, base, stamp, None if scheduled else stamp)
    keys = config.keys()
    client = config.redis_client()
    for start in range(0, len(encoded), BULK_CHUNK):
        chunk = encoded[start : start + BULK_CHUNK]
        pipe = client.pipeline(transaction=False)
        if score is not None:
            pipe.zadd(keys.schedule, dict.fromkeys(chunk, score))
        else:
            pipe.sadd(keys.queues, queue)
            pipe.lpush(keys.queue(queue), *chunk)
        pipe.execute()
    return jids


def _encode_all(
    class_name: str, args_list: list[list[Any]], jids: list[str], base: Payload, created: float,
    enqueued: float | None,
) -> list[str]:
    """Encode payloads that differ only in args and jid, reusing the encoding of the shared fields."""
    head = '{"class":' + encode(class_name) + ',"args":'
    shared = {**base, "created_at": created}
    if enqueued is not None:
        shared["enqueued_at"] = enqueued
    tail = "," + encode(shared)[1:]
    return [f'{head}{encode(args)},"jid":"{jid}"{tail}' for args, jid in zip(args_list, jids, strict=True)]
