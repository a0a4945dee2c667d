"""A no-op RQ job, one that sends one command to Redis, and a bulk enqueuer: ``python noop_rq.py URL N
[noop|roundtrip]``."""

import os
import sys
from functools import cache

from redis import Redis
from rq import Queue


def noop() -> None:
    """Does nothing."""


@cache
def _client() -> Redis:
    return Redis.from_url(os.environ["BENCH_REDIS_URL"])


def roundtrip() -> None:
    """Sends one RPUSH (``bench/jobs_throughput.py --job roundtrip``)."""
    _client().rpush("bench:roundtrips", "0.0")


if __name__ == "__main__":
    queue = Queue("default", connection=Redis.from_url(sys.argv[1]))
    count = int(sys.argv[2])
    job = roundtrip if sys.argv[3:] == ["roundtrip"] else noop
    for start in range(0, count, 1000):
        queue.enqueue_many([Queue.prepare_data(job) for _ in range(min(1000, count - start))])
