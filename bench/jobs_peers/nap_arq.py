"""arq's napping job for bench/jobs_async.py and its worker settings (``arq nap_arq.WorkerSettings``), and an
enqueuer: ``python nap_arq.py N SECONDS`` (URL from BENCH_REDIS_URL; MAX_JOBS from BENCH_CONCURRENCY)."""

import asyncio
import os
import sys
from typing import Any, ClassVar

from arq import create_pool
from arq.connections import RedisSettings

REDIS = RedisSettings.from_dsn(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))


async def nap(ctx: dict[str, Any], seconds: float) -> None:
    """Awaits ``seconds``, counting starts and ends in Redis (arq's own redis.asyncio client)."""
    await ctx["redis"].incr("bench:started")
    await asyncio.sleep(seconds)
    await ctx["redis"].incr("bench:done")


class WorkerSettings:
    functions: ClassVar[list[Any]] = [nap]
    redis_settings: ClassVar[RedisSettings] = REDIS
    max_jobs: ClassVar[int] = int(os.environ.get("BENCH_CONCURRENCY", "500"))
    keep_result: ClassVar[int] = 0


async def enqueue(count: int, seconds: float) -> None:
    pool = await create_pool(REDIS)
    for _ in range(count):
        await pool.enqueue_job("nap", seconds)
    await pool.aclose()


if __name__ == "__main__":
    asyncio.run(enqueue(int(sys.argv[1]), float(sys.argv[2])))
