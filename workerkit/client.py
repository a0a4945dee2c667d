"""Writes jobs to Redis: push one (one round trip), push many (pipelined), schedule for later.

A job for now goes through the lifecycle's enqueue script (``SADD queues`` + ``LPUSH``); a job for later is
``ZADD schedule <epoch> <payload>``. Client middleware sees every payload first and may change or drop it.
When Redis cannot be reached, a push raises :class:`RedisUnreachable`, naming the URL and what to do.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import redis

from workerkit import config, registry
from workerkit.connection import REDIS_DOWN
from workerkit.lifecycle import Lifecycle, stamped
from workerkit.payload import Payload, check_args, encode, new_payload

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


def build_payload(job: object, args: Sequence[Any], overrides: dict[str, Any]) -> Payload:
    """A new payload for ``job`` (a job class, ``@job`` function or class name) with its registered options
    (:func:`workerkit.registry.options`) and the push's ``overrides`` (``queue``, ``retry``, ``tags``,
    ``timeout``; any other key becomes a payload field); None values override nothing."""
    defaults = registry.options(job)
    fields = {name: value for name, value in overrides.items() if value is not None}
    queue = fields.pop("queue", defaults.queue)
    retry = fields.pop("retry", defaults.retry)
    tags = fields.pop("tags", defaults.tags)
    if tags:
        fields["tags"] = list(tags)
    timeout = fields.pop("timeout", defaults.timeout)
    if timeout is not None:
        fields["timeout"] = timeout
    return new_payload(defaults.name, args, queue, retry, fields, created_at=config.timestamp(time.time()))


class RedisUnreachable(redis.ConnectionError):
    """A push could not reach Redis; the message names the URL and what to do."""


@contextmanager
def _reaching_redis() -> Iterator[None]:
    """Turn redis-py's connection errors into :class:`RedisUnreachable` with a message a person can act on."""
    try:
        yield
    except REDIS_DOWN as exc:
        url = config.masked_url(config.current().redis_url)
        raise RedisUnreachable(
            f"cannot push the job: Redis at {url} is unreachable ({exc}). Start a server (`workerkit redis` "
            "runs one), or point REDIS_URL (or WORKERKIT_REDIS_URL) at yours."
        ) from exc


_lifecycles: dict[tuple[int, str], Lifecycle] = {}


def _lifecycle() -> Lifecycle:
    """The lifecycle of the shared client and the configured namespace (made once per pair)."""
    client, keys = config.redis_client(), config.keys()
    found = _lifecycles.get((id(client), keys.namespace))
    if found is None or found.conn is not client:
        found = _lifecycles[(id(client), keys.namespace)] = Lifecycle(client, keys)
    return found


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
    lifecycle = _lifecycle()
    now = time.time()
    with _reaching_redis():
        if at is not None and at > now:
            lifecycle.schedule({encode(payload): at})
        else:
            lifecycle.enqueue(payload["queue"], [encode(stamped(payload, now))])
    return jid


def push(
    class_name: str,
    args: list[Any] | tuple[Any, ...] = (),
    *,
    queue: str | None = None,
    at: float | datetime | None = None,
    retry: bool | int | None = None,
    **options: Any,
) -> str:
    """Push a job by class name (a registered job or a foreign one) and return its jid.

    ``queue`` and ``retry`` default to the registered class's options (else ``default`` and True); ``at``
    (epoch seconds or datetime) schedules it; other keyword options become payload fields (``tags=[...]``).
    A client middleware that drops the job still gets its jid returned.
    """
    payload = build_payload(class_name, args, {"queue": queue, "retry": retry, **options})  # JSON errors first
    registry.bind_arguments(class_name, [args])
    push_payload(payload, epoch(at))
    jid: str = payload["jid"]
    return jid



def push_bulk(
    job: object,
    args_list: Iterable[Sequence[Any]],
    *,
    queue: str | None = None,
    at: float | datetime | None = None,
    retry: bool | int | None = None,
    **options: Any,
) -> list[str]:
    """Push one job per argument list of ``job`` (a job class, ``@job`` function or class name), 1,000 per
    round trip; return the jids in order.

    Every argument list is checked before anything is pushed, so a bad one pushes nothing.
    """
    when = epoch(at)
    base = build_payload(job, (), {"queue": queue, "retry": retry, **options})
    class_name, queue = base.pop("class"), base["queue"]
    del base["jid"], base["args"], base["created_at"]
    checked = [check_args(args) for args in args_list]
    registry.bind_arguments(job, checked)
    now = time.time()
    stamp = config.timestamp(now)
    randomness = os.urandom(12 * len(checked)).hex()
    jids = [randomness[index : index + 24] for index in range(0, 24 * len(checked), 24)]
    if config.current().client_middleware or _interceptor is not None:
        payloads = [{"class": class_name, "args": args, "jid": jid, **base, "created_at": stamp}
                    for jid, args in zip(jids, checked, strict=True)]
        return [jid for payload in payloads if (jid := push_payload(payload, when)) is not None]
    score = when if when is not None and when > now else None
    scheduled = score is not None
    encoded = _encode_all(class_name, checked, jids, base, stamp, None if scheduled else stamp)
    lifecycle = _lifecycle()
    with _reaching_redis():
        for start in range(0, len(encoded), BULK_CHUNK * 10):
            pipe = lifecycle.conn.pipeline(transaction=False)
            for chunk_start in range(start, min(len(encoded), start + BULK_CHUNK * 10), BULK_CHUNK):
                chunk = encoded[chunk_start : chunk_start + BULK_CHUNK]
                if score is not None:
                    lifecycle.schedule(dict.fromkeys(chunk, score), client=pipe)
                else:
                    lifecycle.enqueue(queue, chunk, client=pipe)
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
