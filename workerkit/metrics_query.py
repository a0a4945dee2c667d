"""Read the job metrics back (``workerkit.metrics`` writes them): per class over a window of minutes, one
class's time series, the all-time totals, and queue latency per minute. The dashboard and ``/metrics``
read through here.

A window reads the hour hashes (each the sum of its minutes, written with them) for the whole hours inside
it, and minute hashes only for its first, partial hour: a window of 72 hours reads about 130 hashes, not
4,320. An hour whose hash is empty (no runs, or written before hours were kept) is read minute by minute.

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


@dataclass(frozen=True)
class Piece:
    """Minutes of a window read together: a whole hour (its hour hash) or one minute, for slot ``slot``."""

    slot: int
    number: int
    """The epoch hour, or the epoch minute."""
    hour: bool


def cover(window: range, slot: int, now_minute: int) -> list[Piece]:
    """Pieces that cover exactly the minutes of ``window``: each hour whose minutes all lie in it (the
    current hour when the window reaches ``now_minute``, since its later minutes have not come) as one
    piece, every other minute as its own."""
    pieces: list[Piece] = []
    minute = window.start
    while minute < window.stop:
        hour = minute // 60
        hour_end = (hour + 1) * 60
        reaches_now = window.stop - 1 >= now_minute and hour == now_minute // 60
        if minute == hour * 60 and (hour_end <= window.stop or reaches_now):
            pieces.append(Piece(slot, hour, True))
            minute = min(hour_end, window.stop)
        else:
            pieces.append(Piece(slot, minute, False))
            minute += 1
    return pieces


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

    def _key(self, piece: Piece) -> str:
        return self.keys.metrics_hour(piece.number) if piece.hour else self.keys.metrics_minute(piece.number)

    def _read(self, pieces: list[Piece], fields: list[str] | None) -> list[tuple[int, Any]]:
        """(slot, reply) of each piece's hash (``HMGET`` of ``fields``, else ``HGETALL``), in two round trips
        at most: an hour whose hash is empty is read again minute by minute."""
        def fetch(wanted: list[Piece]) -> list[Any]:
            pipe = self.conn.pipeline(transaction=False)
            for piece in wanted:
                if fields is None:
                    pipe.hgetall(self._key(piece))
                else:
                    pipe.hmget(self._key(piece), fields)
            return pipe.execute() if wanted else []

        found: list[tuple[int, Any]] = []
        again: list[Piece] = []
        for piece, reply in zip(pieces, fetch(pieces), strict=True):
            if piece.hour and not (reply if fields is None else any(value is not None for value in reply)):
                first = piece.number * 60
                again += [Piece(piece.slot, minute, False) for minute in range(first, first + 60)]
            else:
                found.append((piece.slot, reply))
        return found + [(piece.slot, reply) for piece, reply in zip(again, fetch(again), strict=True)]

    def classes(self, minutes: int, now: float | None = None) -> list[ClassMetrics]:
        """Every class that ran in the last ``minutes`` minutes, the longest total execution time first."""
        window = self.window_minutes(minutes, now)
        found = _gather(reply for _, reply in self._read(cover(window, 0, window.stop - 1), None))
        return sorted(found.values(), key=lambda metrics: (-metrics.micros, metrics.name))

    def series(self, name: str, minutes: int, slots: int = 96, now: float | None = None) -> Series:
        """Class ``name`` over the last ``minutes`` minutes, in at most ``slots`` slots of whole minutes.

        Slots of an hour or more are whole hours, starting at the hour the window starts in (the first slot
        counts only the window's minutes), so that they read hour hashes."""
        window = self.window_minutes(minutes, now)
        slot_minutes = max(1, math.ceil(len(window) / max(1, slots)))
        first = window.start
        if slot_minutes >= 60:
            slot_minutes = 60 * math.ceil(slot_minutes / 60)
            first = window.start // 60 * 60
        fields = [field_name(name, suffix) for suffix in SUFFIXES]
        per_slot = [ClassMetrics(name) for _ in range(math.ceil((window.stop - first) / slot_minutes))]
        pieces = []
        for slot in range(len(per_slot)):
            start = first + slot * slot_minutes
            inside = range(max(start, window.start), min(start + slot_minutes, window.stop))
            pieces += cover(inside, slot, window.stop - 1)
        total = ClassMetrics(name)
        for slot, values in self._read(pieces, fields):
            for suffix, value in zip(SUFFIXES, values, strict=True):
                if value is not None:
                    per_slot[slot].add(suffix, _int(value))
                    total.add(suffix, _int(value))
        return Series(name, first, slot_minutes, per_slot, total)

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
