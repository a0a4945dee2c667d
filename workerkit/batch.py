"""Batches: a group of jobs, tracked together, with callbacks when the group is done (Sidekiq Pro's batches).

::

    batch = workerkit.Batch("import of 2026-12", on_success=(ImportDone, [account_id]), on_death=ImportAlert)
    with batch.jobs():                      # or: async with batch.jobs():
        for row in rows:
            ImportRow.perform_async(row)    # each push in the block joins the batch
    print(batch.bid, batch.status().pending)

Every push made in the block's thread or task joins the batch (``perform_async`` and friends,
``push_bulk``, their awaitable forms, scheduled pushes). A running job of the batch adds more jobs to it
with ``with self.batch.jobs():`` (``workerkit.batch.current()`` in a ``@job`` function); the batch cannot
complete while that job runs, since the job itself is still pending. A batch created inside another
batch's block is its child: the parent succeeds only once the child has.

**Events**, each pushed exactly once, by the Redis script of the transition that reaches it (the
acknowledgement of the last job, the failure or death of a job, or the end of the last open block), so a
crash, a lost reply or a job recovered and run again never pushes a callback twice or misses one:

- ``complete``: no block is open and every job ran at least once (the failed ones may still retry);
- ``success``: every job and child batch succeeded (after ``complete``);
- ``death``: the first job below the batch went to the dead set (fires in each parent too).

A callback is a job (class, ``@job`` function or ``.set(...)`` of either), or ``(job, args)``; its payload
names the batch in ``batch_callback`` (``{"bid": ..., "event": ...}``; ``workerkit.batch.callback()``
from the running callback). Callbacks run like any job: at least once.

**Limits**: a job that expires or is cancelled counts as failed (its batch completes, never succeeds); a
job deleted from the retry or dead set by hand stays pending, so its batch never completes (retry it
instead: when it succeeds, the batch does). A block that raises while creating the batch leaves a batch
that can complete but never succeeds (the error is kept in its status). A process killed inside a block
leaves the batch open: it never completes. Unique jobs cannot join a batch. Batches expire 30 days after
their last block opened. With ``workerkit.testing``, pushes carry the batch's bid but
no batch is tracked and no callback runs.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from workerkit import client, config, registry
from workerkit.batch_scope import TTL, BatchError, fill, filling, running
from workerkit.keys import Keys
from workerkit.payload import Payload, encode

Callback = object
"""A callback: a job (class, ``@job`` function, ``.set(...)``), or a ``(job, args)`` pair."""


class BatchNotFound(BatchError):
    """No batch has this bid: never created, or expired (30 days after its last block of jobs opened)."""


@dataclass(frozen=True)
class BatchStatus:
    """What a batch holds and has reached, as read at one moment."""

    bid: str
    description: str
    total: int
    """Jobs and child batches that ever joined."""
    pending: int
    """Members (jobs and child batches) that have not succeeded."""
    failed: int
    """Pending members that failed at least once (some may still retry)."""
    dead: int
    """Pending members that died (one retried from the dead set counts until it succeeds)."""
    children: int
    """Child batches that ever joined."""
    open_blocks: int
    """``jobs()`` blocks open right now (the batch cannot complete while one is)."""
    created_at: float
    completed_at: float | None
    succeeded_at: float | None
    died_at: float | None
    parent: str | None
    error: str | None
    """What the creating block raised (such a batch never succeeds), or None."""

    @property
    def complete(self) -> bool:
        """Every job ran at least once and no block is open."""
        return self.completed_at is not None

    @property
    def succeeded(self) -> bool:
        """Every job and child batch succeeded."""
        return self.succeeded_at is not None


class Batch:
    """A group of jobs with callbacks (see the module's docstring). The batch is created in Redis when its
    first ``jobs()`` block opens; :meth:`find` names an existing one, to add jobs or read its status."""

    def __init__(
        self, description: str = "", *, on_success: Callback | None = None, on_complete: Callback | None = None,
        on_death: Callback | None = None,
    ) -> None:
        if not isinstance(description, str):
            raise TypeError(f"a batch's description is text, not {type(description).__name__}")
        try:
            description.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise TypeError(f"the batch's description holds a lone surrogate at {exc.start}: Redis keeps text as "
                            "UTF-8") from None
        self.bid = secrets.token_hex(8)
        self.description = description
        self.callbacks = {event: _callback_payload(callback, self.bid, event)  # refused here, not at the first block
                          for event, callback in (("success", on_success), ("complete", on_complete),
                                                  ("death", on_death)) if callback is not None}
        """The callbacks' payloads, by event, as Redis will push them (it adds ``enqueued_at``)."""
        self._created = False
        self._creating = threading.Lock()  # two threads opening its first blocks at once create it once

    @classmethod
    def find(cls, bid: str) -> Batch:
        """The batch ``bid``, to open more blocks of jobs in or to read (nothing is read until then)."""
        if not isinstance(bid, str) or not bid:
            raise ValueError(f"a batch's bid is a non-empty string, not {bid!r}")
        found = cls()
        found.bid, found._created = bid, True
        return found

    def __repr__(self) -> str:
        return f"Batch({self.bid!r})"

    def jobs(self) -> _Block:
        """A block (``with`` or ``async with``) whose pushes join this batch."""
        return _Block(self)

    def status(self) -> BatchStatus:
        """The batch's counts and events; :class:`BatchNotFound` when it is unknown or expired."""
        return read_status(config.redis_client(), config.keys(), self.bid)

    async def astatus(self) -> BatchStatus:
        """:meth:`status` without blocking the running event loop."""
        return await asyncio.to_thread(self.status)

    def _fields(self) -> dict[str, str]:
        fields = {"description": self.description, "ms": "1" if isinstance(config.timestamp(0.5), int) else "0"}
        for event, payload in self.callbacks.items():
            fields[f"cb:{event}"], fields[f"cbq:{event}"] = encode(payload), str(payload["queue"])
        return fields

    def _open(self) -> bool:
        """Open a block in Redis (creating the batch the first time); whether this block created it."""
        lifecycle = client.shared_lifecycle()
        with self._creating:
            if not self._created:
                parent = filling() or ""
                reply = lifecycle.batch_open(self.bid, TTL, time.time(), self._fields(), parent)
                _check_open(reply, parent if parent and reply in (0, -1) else self.bid)  # 0, -1: the parent's
                self._created = True
                return True
        _check_open(lifecycle.batch_open(self.bid, TTL, time.time()), self.bid)
        return False

    def _close(self, error: str) -> None:
        if not client.shared_lifecycle().batch_close(self.bid, error):
            raise BatchNotFound(f"batch {self.bid} expired while a block of its jobs was open")


def _check_open(reply: int, bid: str) -> None:
    if reply == 0:
        raise BatchNotFound(f"batch {bid} is unknown or expired (kept 30 days after its last block of jobs "
                            "opened)")
    if reply == -1:
        raise BatchError(f"batch {bid} succeeded already: no more jobs can join it")
    if reply == -2:
        raise BatchError(f"batch {bid} exists already")


class _Block:
    """One ``jobs()`` block of a batch: open in Redis for its duration, its pushes joining the batch."""

    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        self._creating = False
        self._scope: Any = None

    def _enter(self) -> None:
        self._scope = fill(self.batch.bid)
        self._scope.__enter__()

    def _error(self, exc: BaseException | None) -> str:
        return f"{type(exc).__name__}: {exc}" if exc is not None and self._creating else ""

    def _opening(self) -> Any:
        return client.reaching_redis(f"open a block of batch {self.batch.bid}")

    def _closing(self) -> Any:
        return client.reaching_redis(f"close the block of batch {self.batch.bid}, which stays open (it cannot "
                                     "complete)")

    def __enter__(self) -> Batch:
        if not client.intercepted():
            with self._opening():
                self._creating = self.batch._open()
        self._enter()
        return self.batch

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._scope.__exit__(kind, exc, tb)
        if not client.intercepted():
            with self._closing():
                self.batch._close(self._error(exc))

    async def __aenter__(self) -> Batch:
        if not client.intercepted():
            with self._opening():
                self._creating = await asyncio.to_thread(self.batch._open)
        self._enter()
        return self.batch

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self._scope.__exit__(kind, exc, tb)
        if not client.intercepted():
            with self._closing():
                await asyncio.to_thread(self.batch._close, self._error(exc))


def _callback_payload(callback: Callback, bid: str, event: str) -> Payload:
    """The payload of a batch's callback, built when the batch is (JSON and signature errors are raised then)."""
    job: object
    if isinstance(callback, tuple):
        if len(callback) != 2 or not isinstance(callback[1], list | tuple):
            raise TypeError(f"the batch's on_{event} callback is a job or a (job, [args]) pair, not {callback!r}")
        job, args = callback[0], list(callback[1])
    else:
        job, args = callback, []
    options: dict[str, Any] = {}
    setter_options = getattr(job, "options", None)
    if hasattr(job, "job_class") and isinstance(setter_options, dict):  # .set(...) of a job or a JobSetter
        job, options = job.job_class, dict(setter_options)
    elif hasattr(job, "job_class"):  # a @job function
        job = job.job_class
    with fill(None):  # a callback is not a member of any batch
        payload = client.build_payload(job, args, {**options, "batch_callback": {"bid": bid, "event": event}})
    registry.bind_arguments(job, [payload["args"]])
    for field, option in (("unique_digest", "unique_for"), ("expires_in", "expires_in")):
        if field in payload:
            raise TypeError(f"the batch's on_{event} callback {payload['class']} has {option}, which a batch "
                            "callback cannot honour (Redis pushes it, when the event comes)")
    return payload


def current() -> Batch | None:
    """The batch of the job running in this thread or task, or None (``Job.batch`` in a job class)."""
    payload = running()
    bid = payload.get("bid") if payload is not None else None
    return Batch.find(bid) if isinstance(bid, str) and bid else None


def callback() -> tuple[Batch, str] | None:
    """For a batch callback running in this thread or task: its batch and event (``complete``,
    ``success`` or ``death``); None otherwise."""
    payload = running()
    if payload is None or not isinstance(payload.get("batch_callback"), dict):
        return None
    bid, event = payload["batch_callback"].get("bid"), payload["batch_callback"].get("event")
    return (Batch.find(bid), event) if isinstance(bid, str) and bid and isinstance(event, str) else None


def _number(value: bytes | None) -> float | None:
    return float(value) if value is not None else None


def read_status(conn: Any, keys: Keys, bid: str) -> BatchStatus:
    """Batch ``bid``'s status from ``conn`` (one round trip); :class:`BatchNotFound` when it is gone."""
    pipe = conn.pipeline(transaction=False)
    _ask_status(pipe, keys, bid)
    return status_of(bid, *pipe.execute())


def _ask_status(pipe: Any, keys: Keys, bid: str) -> None:
    """Queue on ``pipe`` the four reads of a batch's status, in the order :func:`status_of` takes them."""
    pipe.hgetall(keys.batch(bid))
    for key in (keys.batch_pending(bid), keys.batch_failed(bid), keys.batch_dead(bid)):
        pipe.scard(key)


def status_of(bid: str, fields: dict[bytes, bytes], pending: int, failed: int, dead: int) -> BatchStatus:
    """A :class:`BatchStatus` from the batch's hash and set sizes; :class:`BatchNotFound` on an empty hash."""
    if not fields:
        raise BatchNotFound(f"batch {bid} is unknown or expired (kept 30 days after its last block of jobs "
                            "opened)")

    def text(name: str) -> str | None:
        value = fields.get(name.encode())
        return value.decode("utf-8", "replace") if value is not None else None

    return BatchStatus(
        bid=bid, description=text("description") or "", total=int(text("total") or 0), pending=int(pending),
        failed=int(failed), dead=int(dead), children=int(text("children") or 0), open_blocks=int(text("open") or 0),
        created_at=float(text("created_at") or 0), completed_at=_number(fields.get(b"completed_at")),
        succeeded_at=_number(fields.get(b"succeeded_at")), died_at=_number(fields.get(b"died_at")),
        parent=text("parent"), error=text("error"))


def recent(conn: Any, keys: Keys, start: int = 0, count: int = 25) -> tuple[int, list[BatchStatus]]:
    """How many batches are kept, and ``count`` of them from the ``start``-th newest, in two round trips
    (batches expired since they were listed are left out)."""
    pipe = conn.pipeline(transaction=False)
    pipe.zcard(keys.batches)
    pipe.zrevrange(keys.batches, start, start + count - 1)
    total, bids = pipe.execute()
    names = [bid.decode() if isinstance(bid, bytes) else str(bid) for bid in bids]
    pipe = conn.pipeline(transaction=False)
    for bid in names:
        _ask_status(pipe, keys, bid)
    replies = pipe.execute()
    found = []
    for index, bid in enumerate(names):
        fields, pending, failed, dead = replies[4 * index : 4 * index + 4]
        if fields:
            found.append(status_of(bid, fields, pending, failed, dead))
    return int(total), found


def members(conn: Any, keys: Keys, bid: str, which: str = "pending", limit: int = 100) -> list[str]:
    """Up to ``limit`` members of batch ``bid``'s ``pending``, ``failed`` or ``dead`` set (jids; ``b:<bid>``
    for child batches), sorted (which ones, when there are more, is the set's own order)."""
    key = {"pending": keys.batch_pending, "failed": keys.batch_failed, "dead": keys.batch_dead}[which](bid)
    found: list[str] = []
    for value in conn.sscan_iter(key, count=max(limit, 10)):
        found.append(value.decode() if isinstance(value, bytes) else str(value))
        if len(found) == limit:
            break
    return sorted(found)

