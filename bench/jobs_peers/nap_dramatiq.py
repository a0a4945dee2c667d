"""Dramatiq's napping async actor for bench/jobs_async.py (its AsyncIO middleware), and an enqueuer:
``python nap_dramatiq.py N SECONDS`` (URL from BENCH_REDIS_URL)."""

import asyncio
import os
import sys

import dramatiq
import redis.asyncio
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware.asyncio import AsyncIO

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
broker = RedisBroker(url=URL)
broker.add_middleware(AsyncIO())
dramatiq.set_broker(broker)
_client: redis.asyncio.Redis | None = None


def _redis() -> redis.asyncio.Redis:
    global _client
    if _client is None:  # made on the middleware's one event loop
        _client = redis.asyncio.Redis.from_url(URL, max_connections=1000)
    return _client


@dramatiq.actor(queue_name="default", max_retries=0)
async def nap(seconds: float) -> None:
    """Awaits ``seconds``, counting starts and ends in Redis."""
    await _redis().incr("bench:started")
    await asyncio.sleep(seconds)
    await _redis().incr("bench:done")


if __name__ == "__main__":
    for _ in range(int(sys.argv[1])):
        nap.send(float(sys.argv[2]))
