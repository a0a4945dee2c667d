"""Jobs the HA tests run in real worker processes: ``Record`` appends to a list under the namespace's hash
tag (so it lives beside workerkit's keys, on the same primary), ``Fail`` always fails, ``Hold`` runs until
its key is set."""

from __future__ import annotations

import time
from typing import Any

from workerkit import Job, config

RAN = "ran"
"""The list ``Record`` appends to, under the configured namespace's prefix (see :func:`key`)."""


def key(name: str) -> str:
    """``name`` under the configured namespace's prefix (its hash tag on a Cluster)."""
    return config.keys().queues.removesuffix("queues") + name


class Record(Job):
    """Appends ``value`` to the list ``ran`` (under the namespace's prefix)."""

    def perform(self, value: Any) -> None:
        config.redis_client().rpush(key(RAN), value)


class Fail(Job):
    """Always fails; one retry, then dead."""

    retry = 1

    def perform(self) -> None:
        raise RuntimeError("this job always fails")


class Hold(Job):
    """Marks itself started, then waits (up to 60 s) for the key ``release``."""

    def perform(self, value: str) -> None:
        conn = config.redis_client()
        conn.rpush(key("started"), value)
        deadline = time.monotonic() + 60
        while not conn.exists(key("release")) and time.monotonic() < deadline:
            time.sleep(0.05)
        conn.rpush(key(RAN), value)
