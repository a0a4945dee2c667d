"""workerkit's no-op job (and a stamping job for latency) for the job benchmarks."""

import time

from workerkit import Job, config


class Noop(Job):
    def perform(self, *args: object) -> None:
        """Does nothing."""


class Stamp(Job):
    def perform(self, key: str, sent: float) -> None:
        """Records when it was sent and when it started."""
        config.redis_client().rpush(key, f"{sent} {time.time()}")
