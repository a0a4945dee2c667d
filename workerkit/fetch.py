"""Reliable fetch: a job moves atomically from its queue to this process's in-flight list and becomes a
:class:`UnitOfWork`, which leaves that list in exactly one way: acknowledged (in batches, with the next
fetch; when the worker is idle, at once, at most one flush per :data:`ACK_FLUSH_SECONDS`), settled (retry,
dead, discarded) or requeued. Each of those is conditional on the job still being in the list (``workerkit.lifecycle``).

When the queues are empty, idle worker threads block in ``BLMOVE`` on them (also queue -> in-flight, so
still reliable) and run what they catch themselves, so a new job starts within a network round trip.
"""

from __future__ import annotations

import functools
import json
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import redis

from workerkit import direct
from workerkit.compat import to_seconds
from workerkit.keys import Keys
from workerkit.lifecycle import Lifecycle, Outcome, Settlement
from workerkit.metrics import FLUSH_SECONDS, MetricsBatch
from workerkit.payload import Payload, PayloadError, decode

ACK_FLUSH_SECONDS = 0.1
"""How long a finished job may wait for its acknowledgement when no fetch comes sooner; and how soon after the
last acknowledgements the next are sent when the worker is idle (the first after a quiet spell go at once)."""


@dataclass(frozen=True)
class QueueSpec:
    """A queue a worker takes jobs from, with its weight (1 when not weighted)."""

    name: str
    weight: int = 1

    @classmethod
    def parse(cls, text: str) -> QueueSpec:
        """Parse ``name`` or ``name,weight``; raise ValueError with a clear message otherwise."""
        name, _, weight = text.partition(",")
        name = name.strip()
        if not name:
            raise ValueError(f"queue {text!r}: empty queue name")
        if not weight:
            return cls(name)
        if not weight.strip().isdigit() or int(weight) < 1:
            raise ValueError(f"queue {text!r}: the weight must be a whole number of at least 1")
        return cls(name, int(weight))


def fetch_order(specs: list[QueueSpec]) -> Callable[[], list[int]]:
    """Strict order (as listed) when no weight exceeds 1, else Sidekiq's weighted random order."""
    indexes = list(range(len(specs)))
    if all(spec.weight == 1 for spec in specs):
        return lambda: indexes
    pool = [index for index, spec in enumerate(specs) for _ in range(spec.weight)]

    def weighted() -> list[int]:
        shuffled = random.sample(pool, len(pool))
        return list(dict.fromkeys(shuffled))

    return weighted


@dataclass(eq=False)
class UnitOfWork:
    """One fetched job: its queue, its in-flight list and its bytes, as fetched. It can only be
    acknowledged, requeued or settled, once; each is a no-op in Redis if the job is no longer held."""

    fetcher: ReliableFetch
    index: int
    raw: bytes
    _payload: Payload | None = field(default=None, repr=False)

    @property
    def queue(self) -> str:
        """The queue the job came from."""
        return self.fetcher.specs[self.index].name

    @property
    def inflight(self) -> str:
        """The in-flight list that holds it."""
        return self.fetcher.inflight_keys[self.index]

    def payload(self) -> Payload:
        """The decoded payload (decoded once; PayloadError when the bytes are not a job)."""
        if self._payload is None:
            self._payload = decode(self.raw)
        return self._payload

    def waited(self, now: float) -> float | None:
        """Seconds from its push (``enqueued_at``, either generation's unit) to ``now`` (epoch seconds), or
        None when the payload has no such time or is not a job."""
        try:
            enqueued = to_seconds(self.payload().get("enqueued_at"))
        except PayloadError:
            return None
        return None if enqueued is None else now - enqueued

    def ack(self, class_name: str = "", seconds: float | None = None) -> None:
        """The job succeeded: acknowledge it with the next fetch (or the idle flush), counted once (a job of
        a batch succeeds in it in the same step); given ``seconds``, its run counts in the metrics of
        ``class_name`` too."""
        self.fetcher.ack(self, class_name, seconds)

    def batch(self) -> str | None:
        """The bid of the batch the job belongs to (``workerkit.batch``), or None."""
        try:
            bid = self.payload().get("bid")
        except PayloadError:
            return None
        return bid if isinstance(bid, str) and bid else None

    def count_failure(self, class_name: str, seconds: float) -> None:
        """Its run failed after ``seconds``: count it in the metrics of ``class_name``."""
        self.fetcher.record(class_name, seconds, True)

    def requeue(self) -> bool:
        """Give the job back to the pop end of its queue (it was never started); False if not held."""
        moved = self.fetcher.lifecycle.give_back(self.inflight, self.queue, self.raw)
        self.fetcher.release(self)
        return moved

    def drop(self, reason: Outcome, jid: str) -> bool:
        """The job expired before it started, or was cancelled: drop it (``stat:expired``,
        ``stat:cancelled``); False if not held any more."""
        dropped = self.fetcher.lifecycle.drop(self.inflight, self.raw, reason, jid, self.batch())
        self.fetcher.release(self)
        return dropped

    def settle(self, settlement: Settlement, now: float) -> bool:
        """Write a failure's decided outcome; False (and nothing written) if the job was not held any more."""
        landed = self.fetcher.lifecycle.settle(self.inflight, self.raw, settlement, now)
        self.fetcher.release(self)
        return landed


class ReliableFetch:
    """Fetch, acknowledge and push back the jobs of one worker process."""

    def __init__(
        self, conn: redis.Redis, keys: Keys, identity: str, specs: list[QueueSpec], metrics: bool = True,
    ) -> None:
        self.conn = conn
        self.keys = keys
        self.identity = identity
        self.specs = specs
        self.lifecycle = Lifecycle(conn, keys)
        self._blmove: Callable[..., Any] = (
            functools.partial(conn.execute_command, "BLMOVE") if direct.metered()
            else functools.partial(direct.connections(conn).execute, "BLMOVE"))
        """``BLMOVE source destination RIGHT LEFT timeout``: once per job caught, so on a kept connection."""
        self.queue_keys = [keys.queue(spec.name) for spec in specs]
        self.inflight_keys = [keys.inflight(identity, spec.name) for spec in specs]
        self._owners = [json.dumps({"identity": identity, "queue": spec.name}) for spec in specs]
        self._order = fetch_order(specs)
        self._acks: deque[tuple[int, bytes]] = deque()
        """Finished jobs: (queue index, payload). The job threads append without a lock (``deque.append`` is
        atomic), the fetch takes them out; so do the next two."""
        self._batch_acks: deque[tuple[int, bytes, str, str]] = deque()
        """Finished jobs of batches: (queue index, payload, bid, jid)."""
        self._runs: deque[tuple[str, float, bool, float]] = deque()
        """Runs not yet in ``metrics``: (class name, seconds, failed, when)."""
        self._oldest_ack = 0.0
        """When the oldest pending acknowledgement was made (set without a lock: a race can only make it
        older, and the flush come sooner)."""
        self._acked_at = -ACK_FLUSH_SECONDS
        """When the last acknowledgements were sent (``time.monotonic()``)."""
        self._held: Counter[tuple[int, bytes]] = Counter()
        """Jobs this process moved in flight and has not taken out again: what its in-flight lists should hold."""
        self._lock = threading.Lock()
        self.metrics = MetricsBatch() if metrics else None
        """Metrics recorded and not yet written (None: this worker records none)."""

    def registry_entries(self) -> dict[Any, Any]:
        """This process's in-flight lists as entries of the ``inflight_lists`` registry (the heartbeat
        re-asserts them with every beat, so a process whose heartbeat lapsed is listed again)."""
        return dict(zip(self.inflight_keys, self._owners, strict=True))

    def ack(self, unit: UnitOfWork, class_name: str = "", seconds: float | None = None) -> None:
        """Mark a job finished; it leaves the in-flight list with the next fetch. Given ``seconds``, its run
        counts in the metrics of ``class_name``. Takes no lock: every job's end comes here, from every
        thread."""
        bid = unit.batch()
        if not self._acks and not self._batch_acks:
            self._oldest_ack = time.monotonic()
        if bid is None:
            self._acks.append((unit.index, unit.raw))
        else:
            self._batch_acks.append((unit.index, unit.raw, bid, str(unit.payload().get("jid", ""))))
        if seconds is not None and self.metrics is not None:
            self._runs.append((class_name, seconds, False, time.time()))

    def record(self, class_name: str, seconds: float, failed: bool) -> None:
        """Count a run of ``class_name`` that took ``seconds`` in the metrics (nothing when they are off)."""
        if self.metrics is not None:
            self._runs.append((class_name, seconds, failed, time.time()))

    def _fold_runs(self) -> None:
        """Move the runs recorded into ``metrics`` (with the lock held)."""
        if self.metrics is not None:
            for _ in range(len(self._runs)):
                self.metrics.record(*self._runs.popleft())

    def _sample_latency(self, units: list[UnitOfWork], now: float) -> None:
        """Record how long each of ``units``, the oldest job just taken from its queue, had waited (each
        payload decoded here is the one the runner uses)."""
        if self.metrics is None:
            return
        waits = [(unit.queue, waited) for unit in units if (waited := unit.waited(now)) is not None]
        with self._lock:
            for queue, seconds in waits:
                self.metrics.latency(queue, seconds, now)

    def ack_deadline(self) -> float | None:
        """The ``time.monotonic()`` by which pending acknowledgements or metrics must be flushed, or None when
        there are none. The same pending work gives the same deadline, so a waiter can compare it exactly."""
        with self._lock:
            self._fold_runs()
            due = []
            if self._acks or self._batch_acks:  # at once after a quiet spell, else one flush per ACK_FLUSH_SECONDS
                oldest = self._oldest_ack
                due.append(min(oldest + ACK_FLUSH_SECONDS, max(oldest, self._acked_at + ACK_FLUSH_SECONDS)))
            if self.metrics:
                due.append(self.metrics.since + FLUSH_SECONDS)
            return min(due) if due else None

    def fetch(self, count: int) -> list[UnitOfWork]:
        """Acknowledge finished jobs, write the metrics recorded, and move up to ``count`` jobs into the
        in-flight lists, in one round trip."""
        with self._lock:
            acks = _take(self._acks)
            batch_acks = _take(self._batch_acks)
            self._fold_runs()
            flush = self.metrics.drain() if self.metrics else None
        if count <= 0 and not acks and not batch_acks and flush is None:
            return []
        now = time.time()
        try:
            reply = self.lifecycle.fetch(self.queue_keys, self.inflight_keys, self._owners, self._order(), count, acks,
                                         now, flush, batch_acks)
        except BaseException:
            with self._lock:
                self._acks.extendleft(reversed(acks))
                self._batch_acks.extendleft(reversed(batch_acks))
                if flush is not None and self.metrics is not None:
                    self.metrics.restore(flush)
            raise
        oldest: list[UnitOfWork] = []
        units = []
        for pos in range(0, len(reply), 2):
            taken = [UnitOfWork(self, int(reply[pos]) - 1, raw) for raw in reply[pos + 1]]
            oldest.append(taken[0])
            units += taken
        with self._lock:
            if acks or batch_acks:
                self._acked_at = time.monotonic()
            for ack in acks:
                self._drop(ack)
            for index, raw, _, _ in batch_acks:
                self._drop((index, raw))
            self._held.update((unit.index, unit.raw) for unit in units)
        self._sample_latency(oldest, now)
        return units

    def wait_for_job(self, index: int, timeout: float, register: bool = False) -> UnitOfWork | None:
        """Block up to ``timeout`` seconds for a job on queue ``index``, moving it in flight (BLMOVE).

        ``register``: list the in-flight lists again once a job was caught (when the heartbeat may have
        lapsed, a sweep may have forgotten them; a fetch registers what it fills by itself).
        """
        raw = self._blmove(self.queue_keys[index], self.inflight_keys[index], "RIGHT", "LEFT", timeout)
        if raw is None:
            return None
        if register:
            self.conn.hset(self.keys.inflight_lists, mapping=self.registry_entries())
        unit = UnitOfWork(self, index, raw if isinstance(raw, bytes) else raw.encode())
        with self._lock:
            self._held[(index, unit.raw)] += 1
        self._sample_latency([unit], time.time())
        return unit

    def release(self, unit: UnitOfWork) -> None:
        """Forget a job that left the in-flight list another way (settled, given back)."""
        with self._lock:
            self._drop((unit.index, unit.raw))

    def _drop(self, held: tuple[int, bytes]) -> None:
        """One copy of ``held`` is no longer held (call with the lock held; no zero counts are kept)."""
        left = self._held[held] - 1
        if left > 0:
            self._held[held] = left
        else:
            del self._held[held]

    def reconcile(self) -> int:
        """Give back every job in this process's in-flight lists that it does not know it holds.

        After a lost connection a fetch may have moved jobs whose reply never arrived; without this they
        would wait in flight until the process exits. Call it only while nothing else fetches.
        """
        moved = 0
        for index, inflight in enumerate(self.inflight_keys):
            present = Counter((index, _raw(raw)) for raw in self.conn.lrange(inflight, 0, -1))
            with self._lock:
                unknown = present - self._held
            for (_, raw), copies in unknown.items():
                for _ in range(copies):
                    moved += self.lifecycle.give_back(inflight, self.specs[index].name, raw)
        return moved

    def requeue_all(self) -> int:
        """Push every job still in this process's in-flight lists back to its queue and forget the lists."""
        moved = sum(
            self.lifecycle.requeue_all(inflight, spec.name)
            for inflight, spec in zip(self.inflight_keys, self.specs, strict=True)
        )
        with self._lock:
            self._held.clear()
        return moved


_Pending = TypeVar("_Pending")


def _take(pending: deque[_Pending]) -> list[_Pending]:
    """Take out what ``pending`` holds now, oldest first (what threads append meanwhile stays for later)."""
    return [pending.popleft() for _ in range(len(pending))]


def _raw(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()
