"""Read the job metrics back (``workerkit.metrics`` writes them): per class over a window of minutes, one
class's time series, the all-time totals, and queue latency per minute. The dashboard and ``/metrics``
read through here.

Percentiles come from the histogram: the p-th percentile is the upper bound of the bucket that holds
the run of rank ``ceil(p * runs)``, so it is exact to within the buckets' factor of two, and ``math.inf``
when that run took longer than the last bound.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis

from workerkit.keys import Keys
from workerkit.metrics import BOUNDS_US, BUCKETS, RETENTION_MINUTES, field_name
from workerkit.views import as_text

SUFFIXES = ("n", "f", "us", *[f"b{bucket}" for bucket in range(BUCKETS)])
"""A class's fields in a minute hash, in the order :class:`ClassMetrics` reads them."""


@dataclass
class ClassMetrics:
    """One class's runs over some minutes: executions, failures, execution time and its histogram."""

    name: str
    runs: int = 0
    failures: int = 0
    micros: int = 0
    buckets: list[int] = field(default_factory=lambda: [0] * BUCKETS)

    @property
    def seconds(self) -> float:
        """The total execution time."""
        return self.micros / 1e6

    @property
    def failure_rate(self) -> float:
        """Failures per run (0 without runs)."""
        return self.failures / self.runs if self.runs else 0.0

    def percentile(self, p: float) -> float | None:
        """The execution time below which ``p`` (0..1) of the runs fall, in seconds, as a bucket bound (see
        the module); None without runs."""
        total = sum(self.buckets)
        if not total:
            return None
        rank = max(1, math.ceil(p * total))
        seen = 0
        for bucket, count in enumerate(self.buckets):
            seen += count
            if seen >= rank:
                return BOUNDS_US[bucket] / 1e6 if bucket < len(BOUNDS_US) else math.inf
        return math.inf  # not reached: the buckets add up to total

    def add(self, suffix: str, amount: int) -> None:
        """Add ``amount`` to the counter of a field suffix (``n``, ``f``, ``us``, ``b<i>``; others are ignored)."""
        if suffix == "n":
            self.runs += amount
        elif suffix == "f":
            self.failures += amount
        elif suffix == "us":
            self.micros += amount
        elif suffix.startswith("b") and suffix[1:].isdigit() and int(suffix[1:]) < BUCKETS:
            self.buckets[int(suffix[1:])] += amount


@dataclass(frozen=True)
class Series:
    """One class over a window, in slots of ``slot_minutes``: each slot's metrics, and the whole window's."""

    name: str
    first_minute: int
    slot_minutes: int
    slots: list[ClassMetrics]
    total: ClassMetrics


def current_minute(now: float | None = None) -> int:
    """The epoch minute of ``now`` (default: the current time)."""
    return int((time.time() if now is None else now) // 60)


def _int(value: Any) -> int:
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0


def _gather(hashes: Iterable[Mapping[Any, Any]]) -> dict[str, ClassMetrics]:
    """Add up the ``<class>|<suffix>`` fields of several hashes, by class."""
    found: dict[str, ClassMetrics] = {}
    for fields in hashes:
        for raw, value in fields.items():
            name, sep, suffix = as_text(raw).rpartition("|")
            if not sep:
                continue
            metrics = found.get(name)
            if metrics is None:
                metrics = found[name] = ClassMetrics(name)
            metrics.add(suffix, _int(value))
    return found


class MetricsReader:
    """The job metrics in one Redis under one namespace."""

    def __init__(self, conn: redis.Redis, keys: Keys) -> None:
        self.conn = conn
        self.keys = keys

    @staticmethod
    def window_minutes(minutes: int, now: float | None = None) -> range:
        """The epoch minutes of the last ``minutes`` minutes (at most 72 h), the current one included."""
        last = current_minute(now)
        return range(last - max(1, min(minutes, RETENTION_MINUTES)) + 1, last + 1)

    def classes(self, minutes: int, now: float | None = None) -> list[ClassMetrics]:
        """Every class that ran in the last ``minutes`` minutes, the longest total execution time first."""
        pipe = self.conn.pipeline(transaction=False)
        for minute in self.window_minutes(minutes, now):
            pipe.hgetall(self.keys.metrics_minute(minute))
        found = _gather(pipe.execute())
        return sorted(found.values(), key=lambda metrics: (-metrics.micros, metrics.name))

    def series(self, name: str, minutes: int, slots: int = 96, now: float | None = None) -> Series:
        """Class ``name`` over the last ``minutes`` minutes, in at most ``slots`` slots of whole minutes."""
        window = self.window_minutes(minutes, now)
        slot_minutes = max(1, math.ceil(len(window) / max(1, slots)))
        fields = [field_name(name, suffix) for suffix in SUFFIXES]
        pipe = self.conn.pipeline(transaction=False)
        for minute in window:
            pipe.hmget(self.keys.metrics_minute(minute), fields)
        per_slot = [ClassMetrics(name) for _ in range(math.ceil(len(window) / slot_minutes))]
        total = ClassMetrics(name)
        for offset, values in enumerate(pipe.execute()):
            for suffix, value in zip(SUFFIXES, values, strict=True):
                if value is not None:
                    per_slot[offset // slot_minutes].add(suffix, _int(value))
                    total.add(suffix, _int(value))
        return Series(name, window.start, slot_minutes, per_slot, total)

    def totals(self) -> list[ClassMetrics]:
        """Every class's runs since metrics began (never reset), by name."""
        found = _gather([self.conn.hgetall(self.keys.metrics_totals)])
        return sorted(found.values(), key=lambda metrics: metrics.name)

    def latency(self, queues: list[str], minutes: int, now: float | None = None) -> dict[str, list[int | None]]:
        """Per queue, the longest latency (ms) a worker saw in each of the last ``minutes`` minutes (None:
        no job was taken from it that minute), oldest first."""
        if not queues:
            return {}
        pipe = self.conn.pipeline(transaction=False)
        for minute in self.window_minutes(minutes, now):
            pipe.hmget(self.keys.latency_minute(minute), queues)
        replies = pipe.execute()
        return {
            queue: [None if reply[index] is None else _int(reply[index]) for reply in replies]
            for index, queue in enumerate(queues)
        }
