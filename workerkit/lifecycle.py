"""The job lifecycle: every change of a job's place in Redis, in one module.

::

    push ──► queue ──fetch──► in-flight(process) ──ack──► done (counted)
      │        ▲                 │  │  └──fail──► retry (sorted set) ──due──► queue
      └──in/at─► schedule ──due──┘  │                 └──exhausted / poison / undecodable──► dead
                                    └──process dead (heartbeat lapsed) → recover ──► queue

Each transition that touches more than one key is one Lua script in ``workerkit/scripts/`` (the shared
steps, enqueue, bury with its trim, and counting, are spelled once in ``scripts/lib.lua``). Every move out
of an in-flight list is conditional on the job still being there (its ``LREM`` decides), and every move
out of a sorted set on its ``ZREM``: whoever no longer holds a job cannot settle it, and a transition
retried after a lost reply lands once. ``docs/redis-model.md`` draws the diagram with each script.
"""

from __future__ import annotations

import enum
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import redis

from workerkit import config
from workerkit.keys import Keys, script
from workerkit.metrics import Flush
from workerkit.payload import Payload, PayloadError, decode, encode, quarantined

PROMOTE_BATCH = 100
"""Due jobs read (and moved, in one pipelined round trip) per step of a promotion."""
MOVE_BATCH = 1000
"""Moves one ``move_entries.lua`` call makes (a few ms of the server's time)."""
Move = tuple[bytes | str, str | bytes, str, str | float]
"""One move out of a sorted set: the member, what to write at the destination, ``queue`` or ``dead``, and the
queue's name or the score in the dead set (see :meth:`Lifecycle.move_entry`)."""


class Outcome(enum.Enum):
    """How a job that ran ends."""

    DONE = "done"
    """It succeeded: acknowledged, counted as processed."""
    RETRY = "retry"
    """It failed and waits in the retry set."""
    DEAD = "dead"
    """It failed for good (retries exhausted, poison pill, unreadable): the dead set."""
    DISCARDED = "discarded"
    """It failed and allows no retries (``retry: false``): dropped after the error handlers."""
    DEFERRED = "deferred"
    """A limiter had no room (``workerkit.limiter.OverLimit``): back to the schedule, not a failure."""
    EXPIRED = "expired"
    """It was not started before its ``expires_at``: dropped unrun, counted in ``stat:expired``."""
    CANCELLED = "cancelled"
    """``workerkit.cancel`` stopped it: dropped, counted in ``stat:cancelled``, neither retried nor failed."""


@dataclass(frozen=True, slots=True)
class Settlement:
    """A failure's outcome, decided once: where the job goes, as what, with which score."""

    outcome: Outcome
    member: str = ""
    """The payload stored in the retry or dead set."""
    score: float = 0.0
    """When the retry is due, or when the job died."""
    payload: Payload | None = None
    """The payload with its error fields (for the death handlers)."""
    error: BaseException | None = None


def stamped(payload: Payload, now: float) -> Payload:
    """``payload`` as it enters a queue: ``enqueued_at`` set, a schedule's ``at`` dropped."""
    payload.pop("at", None)
    payload["enqueued_at"] = config.timestamp(now)
    return payload


class Lifecycle:
    """The transitions of jobs in one Redis under one key namespace."""

    def __init__(self, conn: redis.Redis, keys: Keys) -> None:
        self.conn = conn
        self.keys = keys
        self._fetch = conn.register_script(script("fetch"))
        self._enqueue = conn.register_script(script("enqueue"))
        self._settle = conn.register_script(script("settle"))
        self._give_back = conn.register_script(script("give_back"))
        self._requeue_all = conn.register_script(script("requeue_all"))
        self._forget_list = conn.register_script(script("forget_list"))
        self._move_entry = conn.register_script(script("move_entry"))
        self._move_entries = conn.register_script(script("move_entries"))
        self._enqueue_tick = conn.register_script(script("periodic_enqueue"))
        self._push_unique = conn.register_script(script("push_unique"))
        self._drop = conn.register_script(script("drop"))
        self._batch_open = conn.register_script(script("batch_open"))
        self._batch_add = conn.register_script(script("batch_add"))
        self._batch_close = conn.register_script(script("batch_close"))

    # Push ---------------------------------------------------------------------------------------
    def enqueue(self, queue: str, payloads: Sequence[str], client: Any = None) -> Any:
        """Push encoded payloads (already stamped) to ``queue``, in order (through ``client``, a pipeline,
        when given). On a ``redis.asyncio`` client it returns the awaitable that does it."""
        return self._enqueue(keys=[self.keys.queues, self.keys.queue(queue)], args=[queue, *payloads], client=client)

    def drop(self, inflight: str, raw: bytes, reason: Outcome, jid: str, bid: str | None = None) -> bool:
        """Drop a job that expired or was cancelled from its in-flight list, counted in ``stat:expired`` or
        ``stat:cancelled`` (and its cancellation flag deleted; in batch ``bid``, it counts as failed); False if
        it was gone."""
        counter = self.keys.stat("expired" if reason is Outcome.EXPIRED else "cancelled")
        args: list[Any] = [raw] if bid is None else [raw, self.keys.prefix, bid, jid]
        return bool(self._drop(keys=[inflight, counter, self.keys.cancel(jid)], args=args))

    # Batches (workerkit.batch) ------------------------------------------------------------------
    def batch_open(self, bid: str, ttl: int, now: float, create: dict[str, str] | None = None,
                   parent: str = "") -> int:
        """Open a block of jobs of batch ``bid`` at ``now``: create it with the hash fields ``create`` (a child
        of ``parent`` when given), or reopen it when ``create`` is None. The reply of ``batch_open.lua``: 1
        open, 0 unknown or expired, -1 succeeded already, -2 exists already."""
        args: list[Any] = [self.keys.prefix, bid, "reopen" if create is None else "create", ttl, repr(now)]
        if create is not None:
            args.append(parent)
            for name, value in create.items():
                args += [name, value]
        return int(self._batch_open(keys=[self.keys.batch(bid), self.keys.batches], args=args))

    def batch_add(self, bid: str, queue: str, entries: Sequence[tuple[str, str]], ttl: int,
                  at: float | None = None, client: Any = None) -> Any:
        """Push encoded ``(jid, payload)`` entries of batch ``bid`` to ``queue`` (or, given ``at``, to the
        schedule), registering each as pending in the same step; how many were pushed (0: the batch is
        unknown, expired or succeeded). Through ``client``, a pipeline, when given; an awaitable on an
        asyncio client."""
        destination = self.keys.queue(queue) if at is None else self.keys.schedule
        args: list[Any] = ["queue" if at is None else "schedule", queue, repr(at or 0.0), ttl]
        for jid, payload in entries:
            args += [jid, payload]
        keys = [self.keys.batch(bid), self.keys.batch_pending(bid), destination, self.keys.queues]
        return self._batch_add(keys=keys, args=args, client=client)

    def batch_close(self, bid: str, error: str = "") -> bool:
        """Close a block of jobs of batch ``bid`` (``error``: what the creating block raised, so the batch
        never succeeds) and fire what it has reached; False when the batch is unknown or expired."""
        return bool(self._batch_close(keys=[self.keys.batch(bid)], args=[self.keys.prefix, bid, error]))

    def push_unique(self, keys: list[str], args: list[Any], client: Any = None) -> Any:
        """Push one unique job with its lock (``scripts/push_unique.lua``; arguments from
        ``workerkit.unique.push_arguments``): 1 if pushed, 0 if a duplicate (an awaitable on an asyncio client)."""
        return self._push_unique(keys=keys, args=args, client=client)

    def schedule(self, entries: Mapping[str, float], client: Any = None) -> Any:
        """Put encoded payloads in the schedule set, each scored by the epoch second it is due (an awaitable
        on a ``redis.asyncio`` client)."""
        return (client or self.conn).zadd(self.keys.schedule, dict(entries))

    # Promotion ----------------------------------------------------------------------------------
    def promote(self, zset: str, now: float) -> int:
        """Move every job due by ``now`` from ``zset`` (retry or schedule) to its queue; returns how many.

        An entry that cannot be read goes to the dead set with its reason, byte for byte: it never blocks
        the jobs behind it.
        """
        moved = 0
        while True:
            due = self.conn.zrangebyscore(zset, "-inf", now, start=0, num=PROMOTE_BATCH)
            if not due:
                return moved
            pipe = self.conn.pipeline(transaction=False)
            for member in due:
                self._promote_one(zset, _raw(cast(bytes, member)), now, pipe)
            moved += sum(int(result) for result in pipe.execute())
            if len(due) < PROMOTE_BATCH:
                return moved

    def _promote_one(self, zset: str, member: bytes, now: float, pipe: Any) -> None:
        try:
            payload = decode(member)
            queue = _queue_of(payload)
            new = encode(stamped(payload, now))
        except (PayloadError, TypeError, ValueError) as exc:
            self.move_entry(zset, member, self.bury_member(member, "default", str(exc), now), "dead", now, pipe)
            return
        self.move_entry(zset, member, new, "queue", queue, pipe)

    def bury_member(self, raw: bytes, queue: str, reason: str, now: float) -> str:
        """The dead-set member for bytes that are not a runnable job (see :func:`workerkit.payload.quarantined`)."""
        return encode(quarantined(raw, queue, reason, now))

    # Dashboard moves and promotion: out of a sorted set -----------------------------------------
    def move_entry(
        self, zset: str, member: bytes | str, new: str | bytes, to: str, where: str | float, client: Any = None
    ) -> Any:
        """Move ``member`` out of ``zset`` if it is still there: ``to="queue"`` pushes ``new`` to queue
        ``where``; ``to="dead"`` buries it with score ``where``. Returns 1 if this call moved it, else 0
        (or, given a pipeline as ``client``, the pipeline, whose reply holds that number)."""
        if to == "queue":
            keys = [zset, self.keys.queue(str(where)), self.keys.queues]
            args: list[Any] = [member, new, "queue", str(where)]
        else:
            settings = config.current()
            score = float(where)
            keys = [zset, self.keys.dead, self.keys.queues]
            args = [member, new, "dead", repr(score), settings.dead_max_jobs, repr(score - settings.dead_timeout)]
        return self._move_entry(keys=keys, args=args, client=client)

    def move_entries(self, zset: str, moves: Iterable[Move]) -> int:
        """Make many :meth:`move_entry` moves out of ``zset``, :data:`MOVE_BATCH` to a script call (each
        still decided by its own ``ZREM``); returns how many entries were still there."""
        settings = config.current()
        head: list[Any] = [self.keys.prefix, settings.dead_max_jobs]
        moved = 0
        pending = iter(moves)
        while chunk := list(itertools.islice(pending, MOVE_BATCH)):
            args: list[Any] = []
            newest = -math.inf
            for member, new, to, where in chunk:
                if to == "queue":
                    args += (member, new, "queue", str(where))
                else:
                    newest = max(newest, float(where))
                    args += (member, new, "dead", repr(float(where)))
            cutoff = repr(newest - settings.dead_timeout) if newest > -math.inf else "0"
            moved += int(self._move_entries(keys=[zset, self.keys.queues, self.keys.dead],
                                            args=[*head, cutoff, *args]))
        return moved

    def delete_entries(self, zset: str, members: Iterable[bytes | str]) -> int:
        """Delete entries of a sorted set; returns how many were still there."""
        raws = list(members)
        return int(self.conn.zrem(zset, *raws)) if raws else 0

    # Fetch, acknowledge, settle, give back --------------------------------------------------------
    def fetch(
        self, queue_keys: Sequence[str], inflight_keys: Sequence[str], owners: Sequence[str], order: Sequence[int],
        count: int, acks: Sequence[tuple[int, bytes]], now: float, metrics: Flush | None = None,
        batch_acks: Sequence[tuple[int, bytes, str, str]] = (),
    ) -> list[Any]:
        """Acknowledge finished jobs (counted once each; ``batch_acks`` of batches, as (queue index, payload,
        bid, jid), succeed in their batch too) and move up to ``count`` jobs in flight, in ``order`` (queue
        indexes); each list filled is registered with its entry in ``owners``; write ``metrics``
        (``workerkit.metrics``) on the way. The reply of ``fetch.lua``."""
        day = datetime.fromtimestamp(now, UTC).date()
        keys = [self.keys.stat("processed"), self.keys.stat("processed", day), self.keys.inflight_lists,
                *queue_keys, *inflight_keys]
        argv: list[Any] = [len(queue_keys), max(0, count), len(acks), *[index + 1 for index in order], *owners]
        for index, raw in acks:
            argv += (index + 1, raw)
        argv.append(len(batch_acks))
        if batch_acks:
            argv.append(self.keys.prefix)
            for index, raw, bid, jid in batch_acks:
                argv += (index + 1, raw, bid, jid)
        if metrics is None:
            argv.append(0)
        else:
            keys += metrics.keys(self.keys)
            argv += metrics.argv()
        reply: list[Any] = self._fetch(keys=keys, args=argv)
        return reply

    def settle(self, inflight: str, raw: bytes, settlement: Settlement, now: float) -> bool:
        """Write a failure's decided outcome, if the job is still in ``inflight`` (a job of a batch fails there
        too, ``workerkit.batch``); False if it was not held."""
        if settlement.outcome is Outcome.DONE:
            raise ValueError("a job that succeeded is acknowledged, not settled")
        day = datetime.fromtimestamp(now, UTC).date()
        destination = {Outcome.RETRY: self.keys.retry, Outcome.DEFERRED: self.keys.schedule}.get(
            settlement.outcome, self.keys.dead)
        mode = {Outcome.RETRY: "retry", Outcome.DEAD: "dead", Outcome.DISCARDED: "discard",
                Outcome.DEFERRED: "defer"}[settlement.outcome]
        settings = config.current()
        keys = [inflight, destination, self.keys.stat("processed"), self.keys.stat("processed", day),
                self.keys.stat("failed"), self.keys.stat("failed", day)]
        args: list[Any] = [raw, mode, settlement.member, repr(settlement.score), settings.dead_max_jobs,
                repr(settlement.score - settings.dead_timeout)]
        payload = settlement.payload or {}
        bid = payload.get("bid")
        if isinstance(bid, str) and bid:  # a job of a batch: it failed there too
            args += [self.keys.prefix, bid, str(payload.get("jid", ""))]
        return bool(self._settle(keys=keys, args=args))

    def give_back(self, inflight: str, queue: str, raw: bytes, new: bytes | str | None = None) -> bool:
        """Move a job from ``inflight`` to the pop end of its queue (as ``new`` if given), if still there."""
        keys = [inflight, self.keys.queue(queue), self.keys.queues]
        return bool(self._give_back(keys=keys, args=[raw, raw if new is None else new, queue]))

    def requeue_all(self, inflight: str, queue: str) -> int:
        """Push every job of ``inflight`` back to its queue and forget the list; returns how many moved."""
        keys = [inflight, self.keys.queue(queue), self.keys.queues, self.keys.inflight_lists]
        return int(self._requeue_all(keys=keys, args=[queue]))

    def forget_list(self, inflight: str, identity: str) -> bool:
        """Drop ``inflight`` from the registry if it is empty and its process has no heartbeat."""
        return bool(self._forget_list(keys=[self.keys.inflight_lists, inflight, self.keys.process(identity)]))

    # Periodic -----------------------------------------------------------------------------------
    def enqueue_tick(
        self, name: str, tick: int, queue: str, payload: str, records: tuple[str, str], fresh: bool,
        lock_seconds: int, client: Any = None,
    ) -> Any:
        """Push one tick of a periodic job exactly once (its lock key decides) and publish its record."""
        keys = [self.keys.periodic_tick(name, tick), self.keys.queues, self.keys.queue(queue), self.keys.periodic]
        args: list[Any] = [lock_seconds, queue, payload, name, records[0], records[1], "1" if fresh else "0"]
        return self._enqueue_tick(keys=keys, args=args, client=client)


def _queue_of(payload: Payload) -> str:
    """The queue a due job returns to (Sidekiq's ``retry_queue`` wins); TypeError when it is not a name."""
    queue = payload.get("retry_queue") or payload.get("queue") or "default"
    if not isinstance(queue, str):
        raise TypeError(f"the payload's queue is {queue!r}, not a name")
    return queue


def _raw(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()
