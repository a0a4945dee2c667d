"""Python jobs registered under the Ruby class names a Sidekiq app pushes (the compatibility tests).

Each records what it ran in Redis (``py:ran``), so the tests assert exactly which job ran with what.
"""

from __future__ import annotations

import json
import time
from typing import Any

from workerkit import Job, config, job


def record(key: str, value: Any) -> None:
    config.redis_client().rpush(key, json.dumps(value))


class HardWorker(Job):
    """A Ruby app's ``HardWorker``, run by Python."""

    name = "HardWorker"
    queue = "py"

    def perform(self, *args: Any) -> None:
        record("py:ran", {"class": "HardWorker", "jid": self.jid, "args": list(args)})


@job(name="EmailWorker", queue="py")
def send_email(address: str, subject: str) -> None:
    """A Ruby app's ``EmailWorker``, as a function."""
    record("py:ran", {"class": "EmailWorker", "args": [address, subject]})


def an_hour(count: int, exc: BaseException) -> float:
    return 3600.0


def at_once(count: int, exc: BaseException) -> float:
    return 0.0


class FlakyWorker(Job):
    """Always fails; its one retry is an hour away, so it waits in the retry set."""

    name = "FlakyWorker"
    queue = "py"
    retry = 5
    backoff = staticmethod(an_hour)

    def perform(self, *args: Any) -> None:
        raise ValueError(f"python says no to {args}")


class DoomedWorker(Job):
    """Always fails; retried once at once, then dead."""

    name = "DoomedWorker"
    queue = "py"
    retry = 1
    backoff = staticmethod(at_once)

    def perform(self, *args: Any) -> None:
        raise RuntimeError(f"doomed {args}")


class SlowWorker(Job):
    """Keeps its thread busy until something is pushed to ``key``."""

    name = "SlowWorker"
    queue = "py"

    def perform(self, key: str) -> None:
        record("py:started", self.jid)
        deadline = time.monotonic() + 60
        while not config.redis_client().blpop([key], timeout=1) and time.monotonic() < deadline:
            continue  # short waits: the worker's client has a socket timeout of a few seconds
