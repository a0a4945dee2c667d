"""A no-op Dramatiq actor and an enqueuer: ``python noop_dramatiq.py URL N`` (URL also from BENCH_REDIS_URL)."""

import os
import sys

import dramatiq
from dramatiq.brokers.redis import RedisBroker

dramatiq.set_broker(RedisBroker(url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")))


@dramatiq.actor(queue_name="default", max_retries=0)
def noop() -> None:
    """Does nothing."""


if __name__ == "__main__":
    for _ in range(int(sys.argv[2])):
        noop.send()
