"""The job the rolling-restart test's ``workerkit worker -r rolling_jobs`` processes run."""

from __future__ import annotations

import os
import time

from workerkit import Job, config


class Tick(Job):
    """Takes a moment, then appends ``n:pid`` to ``rolling:runs`` (so a run cut short leaves no record)."""

    def perform(self, n: int) -> None:
        time.sleep(0.05)
        config.redis_client().rpush("rolling:runs", f"{n}:{os.getpid()}")
