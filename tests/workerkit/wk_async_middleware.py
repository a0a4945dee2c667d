"""Imported by a worker (``-r wk_async_middleware``): an ``async def`` and a plain server middleware, each
writing where it ran to the list named by the job's first argument."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import Any

from workerkit import config
from workerkit.protocols import JobLike


async def async_around(job: JobLike, payload: dict[str, Any], call_next: Callable[[], Awaitable[None]]) -> None:
    client = config.async_redis_client()
    await client.rpush(payload["args"][0], "async>")
    await call_next()
    await client.rpush(payload["args"][0], "<async")


def plain_around(job: JobLike, payload: dict[str, Any], call_next: Callable[[], None]) -> None:
    client = config.redis_client()
    client.rpush(payload["args"][0], f"plain> on {threading.current_thread().name.split('_')[0]}")
    call_next()
    client.rpush(payload["args"][0], "<plain")




def plain_with_variant(job: JobLike, payload: dict[str, Any], call_next: Callable[[], None]) -> None:
    config.redis_client().rpush(payload["args"][0], "plain variant")
    call_next()


async def _variant(job: JobLike, payload: dict[str, Any], call_next: Callable[[], Awaitable[None]]) -> None:
    await config.async_redis_client().rpush(payload["args"][0], "async variant")
    await call_next()


plain_with_variant.around_async_jobs = _variant  # type: ignore[attr-defined]


config.configure(server_middleware=[async_around, plain_around, plain_with_variant])
