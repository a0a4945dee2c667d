"""A no-op Dramatiq actor, one that sends one command to Redis, and an enqueuer: ``python noop_dramatiq.py URL N
[noop|roundtrip]`` (URL also from BENCH_REDIS_URL)."""

import os
import sys

import dramatiq
from dramatiq.brokers.redis import RedisBroker

broker = RedisBroker(url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name="default", max_retries=0)
def noop() -> None:
    """Does nothing."""


@dramatiq.actor(queue_name="default", max_retries=0)
def roundtrip() -> None:
    """Sends one RPUSH through the broker's client (``bench/jobs_throughput.py --job roundtrip``)."""
    broker.client.rpush("bench:roundtrips", "0.0")


if __name__ == "__main__":
    actor = roundtrip if sys.argv[3:] == ["roundtrip"] else noop
    for _ in range(int(sys.argv[2])):
        actor.send()
