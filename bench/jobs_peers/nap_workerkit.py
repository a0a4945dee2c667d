"""workerkit's napping job for bench/jobs_async.py: marks its start, awaits ``asyncio.sleep``, marks its end."""

import asyncio

from workerkit import Job, config


class Nap(Job):
    async def perform(self, seconds: float) -> None:
        """Awaits ``seconds``, counting starts and ends in Redis."""
        client = config.async_redis_client()
        await client.incr("bench:started")
        await asyncio.sleep(seconds)
        await client.incr("bench:done")
