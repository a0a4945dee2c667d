"""Reliable fetch: a job moves atomically from its queue to this process's in-flight list, and leaves it
only when it finished (acknowledged in batches, with the next fetch, in one round trip) or was handed to the
retry or dead set. Jobs of a process whose heartbeat expired are pushed back to their queues by the
survivors (:func:`recover_orphans`, run on a timer); a job recovered :data:`POISON_PILL_RECOVERIES` times
goes to the dead set instead.

When the queues are empty, idle worker threads block in ``BLMOVE`` on them (also queue -> in-flight, so
still reliable) and run what they catch themselves, so a new job starts within a network round trip.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from workerkit.keys import Keys, script
from workerkit.payload import PayloadError, decode, encode
from workerkit.retry import kill

log = logging.getLogger("workerkit")

POISON_PILL_RECOVERIES = 3
"""A job whose worker died under it this many times goes to the dead set instead of back to its queue."""

Unit = tuple[int, bytes]
"""A fetched job: the index of its queue in the worker's queue list, and its raw payload."""


class PoisonPillError(Exception):
    """The job was running in workers that died under it too many times."""


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


class ReliableFetch:
    """Fetch, acknowledge and push back the jobs of one worker process."""

    def __init__(self, conn: redis.Redis, keys: Keys, identity: str, specs: list[QueueSpec]) -> None:
        self.conn = conn
        self.keys = keys
        self.identity = identity
        self.specs = specs
        self.queue_keys = [keys.queue(spec.name) for spec in specs]
        self.inflight_keys = [keys.inflight(identity, spec.name) for spec in specs]
        self._order = fetch_order(specs)
        self._fetch = conn.register_script(script("fetch"))
        self._requeue_all = conn.register_script(script("requeue_all"))
        self._move = conn.register_script(script("move_job"))
        self._acks: list[Unit] = []
        self._held: Counter[Unit] = Counter()
        """Jobs this process moved in flight and has not taken out again: what its in-flight lists should hold."""
        self._ack_lock = threading.Lock()

    def register(self) -> None:
        """Record this process's in-flight lists in the registry, so survivors find them without SCAN."""
        entries: dict[Any, Any] = {
            inflight: json.dumps({"identity": self.identity, "queue": spec.name})
            for inflight, spec in zip(self.inflight_keys, self.specs, strict=True)
        }
        self.conn.hset(self.keys.inflight_lists, mapping=entries)

    def ack(self, unit: Unit) -> None:
        """Mark a job finished; it leaves the in-flight list with the next fetch."""
        with self._ack_lock:
            self._acks.append(unit)

    @property
    def pending_acks(self) -> int:
        """Finished jobs not yet acknowledged in Redis."""
        return len(self._acks)

    def fetch(self, count: int) -> list[Unit]:
        """Acknowledge finished jobs and move up to ``count`` jobs into the in-flight lists, in one round trip."""
        with self._ack_lock:
            acks, self._acks = self._acks, []
        if count <= 0 and not acks:
            return []
        day = datetime.now(UTC).date()
        keys = [self.keys.stat("processed"), self.keys.stat("processed", day), *self.queue_keys, *self.inflight_keys]
        argv: list[Any] = [len(self.specs), max(0, count), len(acks), *[index + 1 for index in self._order()]]
        for index, raw in acks:
            argv += (index + 1, raw)
        try:
            reply = self._fetch(keys=keys, args=argv)
        except BaseException:
            with self._ack_lock:
                self._acks[:0] = acks
            raise
        units = [(int(reply[pos]) - 1, raw) for pos in range(0, len(reply), 2) for raw in reply[pos + 1]]
        with self._ack_lock:
            for unit in acks:
                self._drop(unit)
            self._held.update(units)
        return units

    def wait_for_job(self, index: int, timeout: float) -> Unit | None:
        """Block up to ``timeout`` seconds for a job on queue ``index``, moving it in flight (BLMOVE)."""
        raw = self.conn.blmove(self.queue_keys[index], self.inflight_keys[index], timeout,  # type: ignore[arg-type]
                               "RIGHT", "LEFT")
        if raw is None:
            return None
        unit = (index, _raw(raw))
        with self._ack_lock:
            self._held[unit] += 1
        return unit

    def release(self, unit: Unit) -> None:
        """Forget a job that left the in-flight list another way (retry or dead set, given back)."""
        with self._ack_lock:
            self._drop(unit)

    def _drop(self, unit: Unit) -> None:
        """One copy of ``unit`` is no longer held (call with the lock held; no zero counts are kept)."""
        left = self._held[unit] - 1
        if left > 0:
            self._held[unit] = left
        else:
            del self._held[unit]

    def reconcile(self) -> int:
        """Give back every job in this process's in-flight lists that it does not know it holds.

        After a lost connection a fetch may have moved jobs whose reply never arrived; without this they
        would wait in flight until the process exits. Call it only while nothing else fetches.
        """
        moved = 0
        for index, inflight in enumerate(self.inflight_keys):
            present = Counter((index, _raw(raw)) for raw in self.conn.lrange(inflight, 0, -1))
            with self._ack_lock:
                unknown = present - self._held
            for unit, copies in unknown.items():
                for _ in range(copies):
                    self._give_back_unknown(unit)
                    moved += 1
        return moved

    def give_back(self, unit: Unit) -> None:
        """Push one fetched, not started job back to the pop end of its queue (it runs next)."""
        self._give_back_unknown(unit)
        self.release(unit)

    def _give_back_unknown(self, unit: Unit) -> None:
        index, raw = unit
        self._move(keys=[self.inflight_keys[index], self.queue_keys[index], self.keys.queues],
                   args=[raw, raw, self.specs[index].name])

    def requeue_all(self) -> int:
        """Push every job still in this process's in-flight lists back to its queue and forget the lists."""
        moved = 0
        for queue_key, inflight in zip(self.queue_keys, self.inflight_keys, strict=True):
            moved += int(self._requeue_all(keys=[inflight, queue_key]))
        self.conn.hdel(self.keys.inflight_lists, *self.inflight_keys)
        return moved


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _raw(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def _recover_one(conn: redis.Redis, keys: Keys, inflight: str, queue: str, raw: bytes) -> str | None:
    """Push one orphaned job back to its queue, or kill it as a poison pill; None if another sweep took it."""
    try:
        payload = decode(raw)
    except PayloadError:
        payload = None
    if payload is not None:
        previous = payload.get("recovered")
        count = (previous if isinstance(previous, int) and previous > 0 else 0) + 1
        payload["recovered"] = count
        if count >= POISON_PILL_RECOVERIES:
            exc = PoisonPillError(f"the worker running this job died {count} times (kill -9, OOM, crash); not retried")
            return kill(conn, keys, inflight, raw, payload, exc)
    move = conn.register_script(script("move_job"))
    new = raw if payload is None else encode(payload)
    moved = move(keys=[inflight, keys.queue(queue), keys.queues], args=[raw, new, queue])
    return f"queue (recovery {payload['recovered'] if payload else 1})" if moved else None


def recover_orphans(conn: redis.Redis, keys: Keys, lock_seconds: float) -> int:
    """Push back the in-flight jobs of processes whose heartbeat expired; return how many jobs moved.

    Runs at most once per ``lock_seconds`` across all processes (SET NX EX lock). Also prunes dead
    identities from the ``processes`` set.
    """
    if not conn.set(keys.process_cleanup_lock, "1", nx=True, px=max(1, int(lock_seconds * 1000))):
        return 0
    for identity in conn.smembers(keys.processes):
        if not conn.exists(keys.process(_text(identity))):
            conn.srem(keys.processes, identity)
    moved = 0
    for inflight, entry in conn.hgetall(keys.inflight_lists).items():
        owner = json.loads(entry)
        if conn.exists(keys.process(owner["identity"])):
            continue
        queue = owner["queue"]
        for raw in reversed(conn.lrange(inflight, 0, -1)):
            where = _recover_one(conn, keys, _text(inflight), queue, _raw(raw))
            if where is not None:
                moved += 1
                log.warning("recovered a job of dead process %s from queue %s into the %s", owner["identity"], queue,
                            "dead set (poison pill)" if where == "dead" else where)
        if conn.llen(inflight) == 0:
            conn.hdel(keys.inflight_lists, inflight)
    return moved
