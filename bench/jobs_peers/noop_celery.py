"""A no-op Celery task and an enqueuer: ``python noop_celery.py URL N`` (URL also from BENCH_REDIS_URL)."""

import os
import sys

from celery import Celery

app = Celery("noop_celery", broker=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
app.conf.task_ignore_result = True


@app.task
def noop() -> None:
    """Does nothing."""


if __name__ == "__main__":
    for _ in range(int(sys.argv[2])):
        noop.delay()
