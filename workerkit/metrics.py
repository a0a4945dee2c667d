"""Per-class, per-minute job metrics, recorded in the worker and written in batches with the fetch.

Each run of a job counts in its class and its minute (UTC epoch minute): one execution, a failure if it
failed, its execution time in microseconds, and one count in the bucket of a fixed log-scale histogram
(:data:`BOUNDS_US`: upper bounds 0.25 ms, 0.5 ms, 1 ms ... doubling up to about 70 minutes, then one
bucket beyond), so p50/p95/p99 can be read for any window by adding the minutes' buckets. The queue
latency (the age of the oldest job, seen when a worker takes it) is kept per queue as the longest of each
minute.

Nothing here talks to Redis: a :class:`MetricsBatch` collects what the worker's threads record, and
:meth:`MetricsBatch.drain` hands it over as a :class:`Flush` that ``fetch.lua`` applies with the next fetch
(``workerkit.lifecycle``), so metrics never cost a round trip per job. Reading them back is
``workerkit.metrics_query``; ``docs/redis-model.md`` lists the keys.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any

from workerkit.keys import Keys

BOUNDS_US: tuple[int, ...] = tuple(250 * 2**k for k in range(25))
"""Upper bounds of the histogram's buckets in microseconds (inclusive, as Prometheus' ``le``): 0.25 ms
doubling up to 4,194 s; bucket ``len(BOUNDS_US)`` holds the longer runs."""
BUCKETS = len(BOUNDS_US) + 1
RETENTION_MINUTES = 72 * 60
"""How long the per-minute metrics are kept: 72 hours."""
FLUSH_SECONDS = 1.0
"""How long recorded metrics may wait for a fetch to carry them when the worker is idle."""


def field_name(class_name: str, suffix: str) -> str:
    """The hash field ``<class>|<suffix>`` (the class name may hold ``|``: readers split at the last one)."""
    return f"{class_name}|{suffix}"


Counts = list[Any]
"""One class in one minute: ``[runs, failures, microseconds, [count per bucket]]`` (a list, not a class:
it is updated once per job on the worker's hot path)."""


def new_counts() -> Counts:
    """Counts of nothing yet."""
    return [0, 0, 0, [0] * BUCKETS]


def add_counts(into: Counts, other: Counts) -> None:
    """Add ``other`` to ``into``."""
    into[0] += other[0]
    into[1] += other[1]
    into[2] += other[2]
    into[3] = [mine + theirs for mine, theirs in zip(into[3], other[3], strict=True)]


@dataclass(frozen=True)
class Flush:
    """Recorded metrics on their way to Redis (``scripts/fetch.lua`` applies them), by minute."""

    runs: dict[tuple[int, str], Counts] = field(default_factory=dict)
    latency: dict[tuple[int, str], int] = field(default_factory=dict)

    def minutes(self) -> list[int]:
        """The minutes it holds, oldest first."""
        return sorted({minute for minute, _ in self.runs} | {minute for minute, _ in self.latency})

    def keys(self, keys: Keys) -> list[str]:
        """The KEYS ``fetch.lua`` writes: the class index, the totals, then each minute's three hashes (its
        runs, its latencies, and its hour's runs)."""
        minutes = self.minutes()
        if not minutes:
            return []
        names = [keys.metrics_classes, keys.metrics_totals]
        for minute in minutes:
            names += (keys.metrics_minute(minute), keys.latency_minute(minute), keys.metrics_hour(minute // 60))
        return names

    def argv(self) -> list[Any]:
        """The ARGV section: m (minutes), then when m > 0 the TTL, the index cutoff, and for each minute (in
        the order of :meth:`keys`) its number, its classes, its increments and its latencies, each list
        preceded by its length."""
        minutes = self.minutes()
        if not minutes:
            return [0]
        argv: list[Any] = [len(minutes), (RETENTION_MINUTES + 1) * 60, minutes[-1] - RETENTION_MINUTES]
        for minute in minutes:
            classes = [(name, counts) for (at, name), counts in self.runs.items() if at == minute]
            argv += (minute, len(classes), *[name for name, _ in classes])
            increments: list[Any] = []
            for name, (runs, failures, micros, buckets) in classes:
                increments += (field_name(name, "n"), runs)
                if micros:
                    increments += (field_name(name, "us"), micros)
                if failures:
                    increments += (field_name(name, "f"), failures)
                for bucket, count in enumerate(buckets):
                    if count:
                        increments += (field_name(name, f"b{bucket}"), count)
            argv += (len(increments) // 2, *increments)
            latencies = [(queue, millis) for (at, queue), millis in self.latency.items() if at == minute]
            argv.append(len(latencies))
            for queue, millis in latencies:
                argv += (queue, millis)
        return argv


class MetricsBatch:
    """Metrics recorded since the last flush. Not thread-safe: its owner (``workerkit.fetch``) locks.

    Runs of the current minute are kept by class alone (no key to build per job); when a run ends in a
    later minute they join the others under their minute.
    """

    def __init__(self) -> None:
        self._pending = Flush()
        self._minute = 0
        self._until = 0.0
        """The end (epoch seconds) of ``_minute``, the minute of ``_current``."""
        self._current: dict[str, Counts] = {}
        self.since = 0.0
        """``time.monotonic()`` of the first record since the last drain (when the batch is not empty)."""

    def __bool__(self) -> bool:
        return bool(self._current or self._pending.runs or self._pending.latency)

    def _touch(self) -> None:
        if not self:
            self.since = time.monotonic()

    def _settle_current(self) -> None:
        """Move the current minute's runs under their minute."""
        for name, counts in self._current.items():
            key = (self._minute, name)
            if key in self._pending.runs:
                add_counts(self._pending.runs[key], counts)
            else:
                self._pending.runs[key] = counts
        self._current = {}

    def record(self, class_name: str, seconds: float, failed: bool, now: float) -> None:
        """One run of ``class_name`` that took ``seconds`` and ended at ``now`` (epoch seconds)."""
        if not self._until - 60 <= now < self._until:
            self._settle_current()
            self._minute = int(now // 60)
            self._until = (self._minute + 1) * 60.0
        counts = self._current.get(class_name)
        if counts is None:
            self._touch()
            counts = self._current[class_name] = new_counts()
        micros = int(seconds * 1e6) if seconds > 0 else 0
        counts[0] += 1
        counts[1] += failed
        counts[2] += micros
        counts[3][bisect_left(BOUNDS_US, micros)] += 1

    def latency(self, queue: str, seconds: float, now: float) -> None:
        """A job taken from ``queue`` at ``now`` had waited ``seconds`` (the minute keeps the longest wait)."""
        key = (int(now // 60), queue)
        millis = max(0, int(seconds * 1000))
        self._touch()
        if millis > self._pending.latency.get(key, -1):
            self._pending.latency[key] = millis

    def drain(self) -> Flush:
        """Everything recorded; the batch is empty afterwards."""
        self._settle_current()
        flush, self._pending = self._pending, Flush()
        return flush

    def restore(self, flush: Flush) -> None:
        """Add back a flush that did not reach Redis (it goes with the next fetch)."""
        self._touch()
        for key, counts in flush.runs.items():
            if key in self._pending.runs:
                add_counts(self._pending.runs[key], counts)
            else:
                self._pending.runs[key] = counts
        for key, millis in flush.latency.items():
            self._pending.latency[key] = max(millis, self._pending.latency.get(key, -1))
