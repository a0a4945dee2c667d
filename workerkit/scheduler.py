"""Move due jobs from the ``schedule`` and ``retry`` sets to their queues, and fire periodic jobs.

Every worker process polls, without coordinating: each waits a random 0.5 to 1.5 times
``average_interval * process count`` between polls, so the cluster as a whole polls about once per
``average_interval`` (1 s by default, so ``perform_in(1)`` starts within about a second), and never later
than the earliest due job needs. A due job moves in a Lua script that pushes it only if it removed it from
the set, so N processes never enqueue one job twice; an entry that cannot be read goes to the dead set
(``workerkit.lifecycle``). Periodic jobs are checked when one of this process's next ticks is due
(``workerkit.periodic``), not on every poll.
"""

from __future__ import annotations

import random
import time

import redis

from workerkit.keys import Keys
from workerkit.lifecycle import Lifecycle
from workerkit.periodic import Ticks
from workerkit.ticker import Ticker

MAX_SLEEP = 60.0
"""The longest wait between two polls of one process, whatever the process count."""


class Scheduler:
    """The poller thread of one worker process."""

    def __init__(self, conn: redis.Redis, keys: Keys, average_interval: float = 1.0) -> None:
        self.conn = conn
        self.keys = keys
        self.average_interval = average_interval
        self.lifecycle = Lifecycle(conn, keys)
        self.ticks = Ticks()
        self._ticker = Ticker("scheduler", self.poll, average_interval,
                              first_delay=random.uniform(0.0, average_interval))

    def start(self) -> None:
        """Start polling in the background."""
        self._ticker.start()

    def close(self) -> None:
        """Stop polling."""
        self._ticker.close()

    def promote_due(self, now: float | None = None) -> int:
        """Move every job due by ``now`` from the retry and schedule sets to its queue; return how many moved."""
        now = time.time() if now is None else now
        return sum(self.lifecycle.promote(zset, now) for zset in (self.keys.retry, self.keys.schedule))

    def poll(self) -> float:
        """Promote due jobs and fire due periodic ticks; return the seconds until the next poll."""
        now = time.time()
        self.promote_due(now)
        self.ticks.enqueue_due(self.conn, self.keys, now)
        return self.next_sleep(now)

    def next_sleep(self, now: float | None = None) -> float:
        """Seconds until the next poll: random around the cluster-wide average, capped by the earliest due
        job and by this process's next periodic tick."""
        now = time.time() if now is None else now
        processes = max(1, int(self.conn.scard(self.keys.processes)))
        interval = min(MAX_SLEEP, self.average_interval * processes * random.uniform(0.5, 1.5))
        pipe = self.conn.pipeline(transaction=False)
        for zset in (self.keys.schedule, self.keys.retry):
            pipe.zrange(zset, 0, 0, withscores=True)
        due = [float(entries[0][1]) for entries in pipe.execute() if entries]
        due.append(self.ticks.next_due())
        return max(0.01, min(interval, min(due) - now))
