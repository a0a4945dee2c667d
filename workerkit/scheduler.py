"""Move due jobs from the ``schedule`` and ``retry`` sets to their queues, and fire periodic jobs.

Every worker process polls, without coordinating: each sleeps a random 0.5 to 1.5 times
``average_interval * process count``, so the cluster as a whole polls about once per ``average_interval``
(1 s by default, so ``perform_in(1)`` starts within about a second), and never sooner than the earliest due
job needs. A due job moves in a Lua script that pushes it only if it removed it from the set, so N processes
never enqueue one job twice. Periodic jobs are checked about once a second (``workerkit.periodic``).
"""

from __future__ import annotations

import random
import threading
import time
from importlib import import_module
from types import ModuleType
from typing import Any

import redis

from workerkit.compat import timestamp
from workerkit.connection import REDIS_DOWN, Backoff
from workerkit.guard import ErrorGuard
from workerkit.keys import Keys, script
from workerkit.payload import PayloadError, decode, encode

BATCH = 100
"""Due jobs moved per Lua call."""


class Scheduler:
    """The poller thread of one worker process."""

    def __init__(self, conn: redis.Redis, keys: Keys, average_interval: float = 1.0) -> None:
        self.conn = conn
        self.keys = keys
        self.average_interval = average_interval
        self.stop = threading.Event()
        self._promote = conn.register_script(script("promote"))
        self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
        self._periodic: ModuleType | None = None

    def start(self) -> None:
        """Start polling in the background."""
        self._thread.start()

    def close(self) -> None:
        """Stop polling."""
        self.stop.set()
        self._thread.join(5)

    def promote_due(self, now: float | None = None) -> int:
        """Move every job due by ``now`` from the retry and schedule sets to its queue; return how many moved."""
        now = time.time() if now is None else now
        moved = 0
        for zset in (self.keys.retry, self.keys.schedule):
            while True:
                due = self.conn.zrangebyscore(zset, "-inf", now, start=0, num=BATCH)
                if not due:
                    break
                moved += self._move(zset, due)
                if len(due) < BATCH:
                    break
        return moved

    def _move(self, zset: str, members: list[Any]) -> int:
        keys: list[str] = [zset, self.keys.queues]
        argv: list[Any] = []
        enqueued_at = timestamp(time.time())
        for member in members:
            try:
                payload = decode(member)
                queue = str(payload.get("retry_queue") or payload.get("queue") or "default")
            except PayloadError:
                payload, queue = None, "default"
            if payload is not None:
                payload.pop("at", None)
                payload["enqueued_at"] = enqueued_at
            keys.append(self.keys.queue(queue))
            argv += (member, encode(payload) if payload is not None else member, queue)
        return int(self._promote(keys=keys, args=argv))

    def next_sleep(self) -> float:
        """Seconds until the next poll: random around the cluster-wide average, capped by the earliest due job."""
        processes = max(1, int(self.conn.scard(self.keys.processes)))
        interval = self.average_interval * processes * random.uniform(0.5, 1.5)
        earliest = [
            float(entries[0][1])
            for zset in (self.keys.schedule, self.keys.retry)
            if (entries := self.conn.zrange(zset, 0, 0, withscores=True))
        ]
        if earliest:
            interval = min(interval, max(0.01, min(earliest) - time.time()))
        return min(interval, 1.0) if self._periodic_module() else interval

    def _periodic_module(self) -> ModuleType | None:
        if self._periodic is None:
            try:
                self._periodic = import_module("workerkit.periodic")
            except ImportError:
                return None
        return self._periodic

    def _loop(self) -> None:
        backoff = Backoff("polling scheduled jobs")
        guard = ErrorGuard("scheduler")
        sleep = random.uniform(0.0, self.average_interval)
        while not self.stop.wait(sleep):
            try:
                self.promote_due()
                periodic = self._periodic_module()
                if periodic is not None:
                    periodic.enqueue_due(self.conn, self.keys, time.time())
                sleep = self.next_sleep()
            except REDIS_DOWN as exc:
                backoff.failed(exc, self.stop)
                sleep = 0.0
            except Exception as exc:
                guard.failed(exc, self.stop)
                sleep = 0.0
            else:
                backoff.succeeded()
                guard.succeeded()
