"""Recovering the jobs of dead processes: the orphan sweep.

A worker's in-flight lists are listed in the ``inflight_lists`` registry (re-asserted with every heartbeat,
and by every fetch that fills a list). The sweep looks at each listed list whose process has no heartbeat
any more and pushes its jobs back to their queues; a job recovered :data:`POISON_PILL_RECOVERIES` times
goes to the dead set instead (it may be what kills its workers), and bytes that are not a job go there
with their reason. Each move is conditional on the job still being in the list, so a sweep racing another
sweep, or a worker that was only slow, never duplicates a settlement.

Sweeps are exclusive for their whole duration: the lock holds the sweeper's token, is renewed as the sweep
goes, and is left to expire one interval after it ends, so the cluster sweeps about once per interval.
"""

from __future__ import annotations

import json
import logging
import os
import time

import redis

from workerkit.failure import buried, poisoned, unreadable
from workerkit.keys import Keys
from workerkit.lifecycle import Lifecycle
from workerkit.payload import PayloadError, decode, encode

log = logging.getLogger("workerkit")

POISON_PILL_RECOVERIES = 3
"""A job whose worker died under it this many times goes to the dead set instead of back to its queue."""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


LOCK_SECONDS = 5.0
"""How long the sweep lock lives without renewal: a sweep renews it before each job it moves, and a sweeper
killed mid-sweep delays the next sweep by at most this long."""


class LockLost(Exception):
    """The sweep's lock expired or was taken by another sweeper; the sweep stops where it is."""


class Sweeper:
    """The orphan sweep of one worker process (any process may sweep; one at a time does)."""

    def __init__(
        self, conn: redis.Redis, keys: Keys, interval: float, lock_seconds: float = LOCK_SECONDS,
        own_identity: str = "",
    ) -> None:
        self.conn = conn
        self.keys = keys
        self.own_identity = own_identity
        """The sweeping process itself, alive by definition even when its own heartbeat lapsed (an outage)."""
        self.interval = interval
        self.lock_seconds = lock_seconds
        self.lifecycle = Lifecycle(conn, keys)
        self._renew = conn.register_script(_RENEW)
        self._token = ""

    def tick(self) -> None:
        """One sweep, for the worker's sweep ticker (which then waits its interval)."""
        self.sweep()

    def sweep(self) -> int:
        """Recover the jobs of every dead process, if no other sweep runs or ran within the interval;
        returns how many jobs moved."""
        self._token = os.urandom(8).hex()
        if not self.conn.set(self.keys.process_cleanup_lock, self._token, nx=True, px=self._ms(self.lock_seconds)):
            return 0
        try:
            return self._sweep()
        except LockLost:
            log.warning("the orphan sweep lost its lock (it ran longer than %.0f s); another sweep goes on",
                        self.lock_seconds)
            return 0
        finally:
            self._renew(keys=[self.keys.process_cleanup_lock], args=[self._token, self._ms(self.interval)])

    def _hold(self) -> None:
        if not self._renew(keys=[self.keys.process_cleanup_lock], args=[self._token, self._ms(self.lock_seconds)]):
            raise LockLost

    @staticmethod
    def _ms(seconds: float) -> int:
        return max(1, int(seconds * 1000))

    def _sweep(self) -> int:
        for identity in self.conn.smembers(self.keys.processes):
            if not self.conn.exists(self.keys.process(_text(identity))):
                self.conn.srem(self.keys.processes, identity)
        moved = 0
        for inflight, entry in self.conn.hgetall(self.keys.inflight_lists).items():
            owner = _owner(entry)
            if owner is None:
                log.error("in-flight registry entry %r is not {identity, queue}; left alone", entry)
                continue
            identity, queue = owner
            if identity == self.own_identity or self.conn.exists(self.keys.process(identity)):
                continue
            moved += self._recover_list(_text(inflight), identity, queue)
            self.lifecycle.forget_list(_text(inflight), identity)
        return moved

    def _recover_list(self, inflight: str, identity: str, queue: str) -> int:
        moved = 0
        for raw in reversed(self.conn.lrange(inflight, 0, -1)):
            self._hold()
            where = self._recover_one(inflight, queue, raw if isinstance(raw, bytes) else raw.encode())
            if where:
                moved += 1
                log.warning("recovered a job of dead process %r from queue %r into %s", identity, queue, where)
        return moved

    def _recover_one(self, inflight: str, queue: str, raw: bytes) -> str | None:
        """Push one orphaned job back, or bury it; None if it was not there any more."""
        now = time.time()
        try:
            payload = decode(raw)
        except PayloadError as exc:
            settlement = unreadable(raw, queue, exc, now)
        else:
            previous = payload.get("recovered")
            count = (previous if isinstance(previous, int) and not isinstance(previous, bool) and previous > 0
                     else 0) + 1
            payload["recovered"] = count
            if count < POISON_PILL_RECOVERIES:
                moved = self.lifecycle.give_back(inflight, queue, raw, encode(payload))
                return f"the queue (recovery {count})" if moved else None
            settlement = poisoned(payload, count, now)
        if not self.lifecycle.settle(inflight, raw, settlement, now):
            return None
        buried(settlement)
        return "the dead set"


def _owner(entry: bytes | str) -> tuple[str, str] | None:
    try:
        owner = json.loads(entry)
        identity, queue = owner["identity"], owner["queue"]
    except (ValueError, TypeError, KeyError):
        return None
    return (identity, queue) if isinstance(identity, str) and isinstance(queue, str) else None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
