"""A no-op Celery task, one that sends one command to Redis, and an enqueuer: ``python noop_celery.py URL N
[noop|roundtrip]`` (URL also from BENCH_REDIS_URL)."""

import os
import sys
from functools import cache

import redis
from celery import Celery

app = Celery("noop_celery", broker=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
app.conf.task_ignore_result = True


@app.task
def noop() -> None:
    """Does nothing."""


@cache
def _client() -> redis.Redis:
    return redis.Redis.from_url(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))


@app.task
def roundtrip() -> None:
    """Sends one RPUSH (``bench/jobs_throughput.py --job roundtrip``)."""
    _client().rpush("bench:roundtrips", "0.0")


if __name__ == "__main__":
    task = roundtrip if sys.argv[3:] == ["roundtrip"] else noop
    for _ in range(int(sys.argv[2])):
        task.delay()
