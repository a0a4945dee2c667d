"""``async def`` jobs the async tests push and real ``workerkit worker -r wk_jobs -r wk_async_jobs`` processes
run. Each records what it did in Redis through the loop's ``redis.asyncio`` client."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from workerkit import Job, config, job

log = logging.getLogger("wk_async_jobs")


class AsyncRecord(Job):
    """Appends ``value`` to the list ``key``, awaiting Redis."""

    async def perform(self, key: str, value: Any) -> None:
        await config.async_redis_client().rpush(key, value)


class AsyncNap(Job):
    """Marks ``started:<key>``, awaits ``asyncio.sleep(seconds)``, then increments ``key``."""

    retry = 3

    async def perform(self, key: str, seconds: float) -> None:
        client = config.async_redis_client()
        await client.incr(f"started:{key}")
        await asyncio.sleep(seconds)
        await client.incr(key)


class AsyncNapLimited(AsyncNap):
    """AsyncNap with a time limit, which cancels the await."""

    timeout = 0.5


@job(retry=2, backoff=lambda count, exc: 0.0)
async def async_flaky(key: str) -> None:
    """Fails every time, counting attempts in ``key``."""
    await config.async_redis_client().incr(key)
    raise RuntimeError(f"async attempt failed for {key}")


@job(queue="async")
async def async_logs(key: str) -> None:
    """Logs a line (which carries the jid and class), then records the thread it ran on."""
    log.info("awaiting for %s", key)
    await asyncio.sleep(0)
    await config.async_redis_client().rpush(key, threading.current_thread().name)


@job
async def async_pushes(key: str, count: int) -> None:
    """Pushes ``count`` AsyncRecord jobs with the awaitable API."""
    for number in range(count):
        await AsyncRecord.aperform_async(key, number)


class AsyncGather(Job):
    """Counts itself in ``arrived:<key>``, awaits until ``parties`` jobs arrived, then increments ``key``: it
    ends only if ``parties`` of them await at the same time."""

    async def perform(self, key: str, parties: int) -> None:
        client = config.async_redis_client()
        await client.incr(f"arrived:{key}")
        while int(await client.get(f"arrived:{key}") or 0) < parties:
            await asyncio.sleep(0.01)
        await client.incr(key)


@job(result_ttl=60)
async def async_add(a: int, b: int) -> int:
    """Keeps its result: the sum, after an await."""
    await asyncio.sleep(0)
    return a + b


class AsyncLogsThenFails(Job):
    """Logs two lines between awaits, then fails for good (straight to the dead set)."""

    retry = 0

    async def perform(self, key: str) -> None:
        log.info("before the await %s", key)
        await asyncio.sleep(0)
        log.info("after the await %s", key)
        raise RuntimeError("async failure")
