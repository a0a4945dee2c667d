"""Cancelling a job: ``workerkit.cancel(jid)`` and the dashboard's Cancel button.

A job waiting in a queue, the schedule or the retry set is taken out (each removal conditional on the
exact entry, so a job fetched meanwhile is not removed twice). A job a worker holds (running, or fetched
ahead) is flagged: ``cancel:<jid>`` for an hour. Every heartbeat (2 s) a worker asks about the jobs it
runs; a flagged ``async def`` job's task is cancelled (its ``await`` raises ``CancelledError``), and a
plain job's ``self.cancelled`` turns true so it can stop at a point of its choosing by raising
:class:`Cancelled`. Either way the job ends as cancelled: dropped from the in-flight list, neither retried
nor counted as failed (``stat:cancelled``), its unique lock released. A plain job that never looks at
``self.cancelled`` runs to its end as usual.
"""

from __future__ import annotations

import json
import threading
from typing import Literal

import redis

from workerkit import config
from workerkit.keys import Keys

FLAG_SECONDS = 3600
"""How long a cancellation waits for a worker to see it."""
CHUNK = 1000

Found = Literal["queued", "scheduled", "retrying", "running", "not found"]


class Cancelled(Exception):
    """Raised by a job whose ``self.cancelled`` turned true, to stop: it ends cancelled, not failed."""


_requested: set[str] = set()
_lock = threading.Lock()


def request(jids: list[str]) -> None:
    """Note, in this worker process, that these running jobs were asked to stop."""
    with _lock:
        _requested.update(jids)


def is_requested(jid: str) -> bool:
    """Whether the job ``jid``, running in this process, was asked to stop."""
    return jid in _requested


def forget(jid: str) -> None:
    """The job ended: forget its request (most jobs were never asked to stop: then no lock is taken)."""
    if jid in _requested:
        with _lock:
            _requested.discard(jid)


def cancel(jid: str, conn: redis.Redis | None = None, keys: Keys | None = None) -> Found:
    """Cancel the job ``jid`` (see the module's docstring); where it was found."""
    if not jid:
        raise ValueError("cancel needs a job's jid")
    conn = conn if conn is not None else config.redis_client()
    keys = keys if keys is not None else config.keys()
    needle = jid.encode()
    for name in sorted(_text(member) for member in conn.smembers(keys.queues)):
        if _remove_from_list(conn, keys.queue(name), jid, needle):
            return "queued"
    for key, where in ((keys.schedule, "scheduled"), (keys.retry, "retrying")):
        for member, _ in conn.zscan_iter(key, match=f"*{jid}*", count=CHUNK):
            if _is(member, jid, needle) and conn.zrem(key, member):
                return where  # type: ignore[return-value]
    if _held(conn, keys, jid, needle):
        conn.set(keys.cancel(jid), 1, ex=FLAG_SECONDS)
        return "running"
    return "not found"


def _is(raw: bytes | str, jid: str, needle: bytes) -> bool:
    """Whether ``raw`` is the payload of job ``jid`` (or a work entry that holds it)."""
    data = _bytes(raw)
    if needle not in data:
        return False
    try:
        found = json.loads(data)
    except ValueError:
        return False
    if isinstance(found, dict) and isinstance(found.get("payload"), dict):  # a heartbeat's work entry
        found = found["payload"]
    return isinstance(found, dict) and found.get("jid") == jid


def _remove_from_list(conn: redis.Redis, key: str, jid: str, needle: bytes) -> bool:
    start = 0
    while chunk := conn.lrange(key, start, start + CHUNK - 1):
        for raw in chunk:
            if _is(raw, jid, needle) and conn.lrem(key, 1, raw):  # type: ignore[arg-type]
                return True
        start += CHUNK
    return False


def _held(conn: redis.Redis, keys: Keys, jid: str, needle: bytes) -> bool:
    """Whether a worker holds the job: it is in an in-flight list, or a heartbeat reports it running."""
    for inflight in conn.hkeys(keys.inflight_lists):
        if any(_is(raw, jid, needle) for raw in conn.lrange(inflight, 0, -1)):
            return True
    for identity in conn.smembers(keys.processes):
        if any(_is(raw, jid, needle) for raw in conn.hvals(keys.work(_text(identity)))):
            return True
    return False


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()
