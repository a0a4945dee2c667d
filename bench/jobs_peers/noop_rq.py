"""A no-op RQ job and a bulk enqueuer: ``python noop_rq.py URL N``."""

import sys

from redis import Redis
from rq import Queue


def noop() -> None:
    """Does nothing."""


if __name__ == "__main__":
    queue = Queue("default", connection=Redis.from_url(sys.argv[1]))
    count = int(sys.argv[2])
    for start in range(0, count, 1000):
        queue.enqueue_many([Queue.prepare_data(noop) for _ in range(min(1000, count - start))])
