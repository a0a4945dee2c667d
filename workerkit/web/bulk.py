"""The dashboard's bulk actions (run, kill or delete every job of a set matching a filter) within a request's
time: each runs on a thread of its own, step by step, and its request waits for it at most :data:`BUDGET`
seconds; when it has not ended by then, the request answers that it goes on in the background. How far an
action got lives in Redis, so every page of every web process shows it.

One action at a time per set (a ``redis-py`` lock): a second click while one runs is refused with what the
first has done, instead of starting another copy of a large snapshot. Nothing is lost when the web process
stops midway: each step is whole (``SortedJobSet.act_on_matching``), the entries not reached stay in the
set, the lock and the progress lapse within :data:`RUNNING_TTL` seconds, and the action can be started again.
When Redis fails an action midway, its thread frees the lock as soon as Redis is back, if that is before the
lock would lapse.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import redis
from redis.exceptions import LockError
from redis.lock import Lock

from workerkit.connection import REDIS_DOWN, Backoff
from workerkit.keys import Keys
from workerkit.sets import BULK_ACTIONS, JobSet, SortedJobSet, Step
from workerkit.views import as_text

BUDGET = 0.1
"""Seconds a request waits for its bulk action (which runs on a thread of its own) before it answers that
the action goes on in the background."""
RUNNING_TTL = 60
"""Seconds the lock and the progress of a running action live past its last step."""
FINISHED_TTL = 600
"""Seconds the progress of an action that ended stays shown."""
LOCK_MARGIN_SECONDS = 2.0
"""How long before the lock would lapse its release stops being tried (this clock and Redis' may differ)."""

State = Literal["running", "finished", "stopped"]
log = logging.getLogger("workerkit.web")


@dataclass(frozen=True)
class Progress:
    """How far a bulk action on a set got: its ``action`` and filter ``text``, ``looked_at`` of the ``total``
    entries of its snapshot, ``acted`` on this many; ``state`` is ``stopped`` (with ``error``) when Redis
    failed it midway."""

    action: str
    text: str
    state: State
    looked_at: int
    total: int
    acted: int
    started_at: float
    updated_at: float
    error: str = ""

    @property
    def running(self) -> bool:
        return self.state == "running"

    def after(self, step: Step) -> Progress:
        """This progress once ``step`` is done."""
        return replace(self, looked_at=step.looked_at, total=step.total, acted=step.acted, updated_at=time.time())

    def ended(self, state: State, error: str = "") -> Progress:
        """This progress, ended in ``state``."""
        return replace(self, state=state, error=error, updated_at=time.time())


class Busy(RuntimeError):
    """Another bulk action on the same set is running; ``progress`` is how far it got (None: not shown yet)."""

    def __init__(self, progress: Progress | None) -> None:
        super().__init__("a bulk action on this set is running")
        self.progress = progress


class _Run:
    """One bulk action on its thread, and the hand-off between that thread and the request that started it:
    until the request stops waiting, the thread records nothing (an action that ends within the budget is
    reported by the request's notice alone); after it, the thread records every step and the end."""

    def __init__(self, owner: BulkActions, entries: SortedJobSet, progress: Progress, lock: Lock) -> None:
        self.owner, self.which, self.progress, self.lock = owner, entries.which, progress, lock
        self.held_until = time.monotonic() + RUNNING_TTL
        """Until when the lock is surely ours (it was just taken, or taken again, for RUNNING_TTL seconds)."""
        self.steps = entries.act_on_matching(progress.action, progress.text)
        self.guard = threading.Lock()
        self.handed_off = False
        self.ended = False
        self.error: redis.RedisError | None = None

    def work(self) -> None:
        """The thread: every step, then the end, with the lock released however it ends."""
        try:
            for step in self.steps:
                with self.guard:
                    self.progress = self.progress.after(step)
                    if self.handed_off:
                        self.lock.reacquire()
                        self.held_until = time.monotonic() + RUNNING_TTL
                        self.owner.record(self.which, self.progress)
            self._end(self.progress.ended("finished"))
        except redis.RedisError as error:  # what is left stays in the set
            log.warning("bulk %s on %s stopped after %d of %d entries: %s", self.progress.action,
                        self.which.value, self.progress.looked_at, self.progress.total, error)
            self._end(self.progress.ended("stopped", f"{type(error).__name__}: {error}"), error, record=False)
        finally:
            self._let_go()

    def _let_go(self) -> None:
        """Show a stop (when the request handed the action off) and release the lock. While Redis is away, try
        again until it is back (the page then says the action stopped, and the set is free for a new one at
        once, not when the lock lapses), but only while the lock is surely still this action's: once it may
        have lapsed, another action may have started, and its progress must not be overwritten."""
        with self.guard:
            unshown = self.progress if self.handed_off and self.error is not None else None
        give_up = self.held_until - LOCK_MARGIN_SECONDS
        backoff = Backoff(f"ending the bulk {self.progress.action} on {self.which.value}")
        while time.monotonic() < give_up:
            try:
                if unshown is not None:
                    self.owner.record(self.which, unshown)
                    unshown = None
                self.lock.release()
                return
            except LockError:  # lapsed already (held up past RUNNING_TTL), or taken over: not ours to free
                return
            except REDIS_DOWN as exc:
                backoff.failed(exc)
            except redis.RedisError:  # any other answer: the lock lapses by itself
                return

    def _end(self, progress: Progress, error: redis.RedisError | None = None, record: bool = True) -> None:
        with self.guard:
            self.progress, self.error, self.ended = progress, error, True
            if self.handed_off and record:
                self.owner.record(self.which, progress)

    def answer(self, budget: float, thread: threading.Thread) -> Progress:
        """What the request reports after waiting up to ``budget`` seconds: the end, or how far it got (then
        the thread goes on alone). An error that ended it within the budget is raised here."""
        thread.join(budget)
        with self.guard:
            if self.ended:
                if self.error is not None:
                    raise self.error
                return self.progress
            self.handed_off = True
            return self.owner.record(self.which, self.progress)


class BulkActions:
    """Starts the dashboard's bulk actions and reads their progress, for one Redis and namespace."""

    def __init__(self, conn: redis.Redis, keys: Keys, budget: float = BUDGET) -> None:
        self.conn, self.keys, self.budget = conn, keys, budget

    def start(self, entries: SortedJobSet, action: str, text: str) -> Progress:
        """Act on every job of ``entries`` matching ``text`` on a thread of its own, and wait for it up to the
        budget. The progress returned is ``finished`` or ``running`` (it goes on in the background); raises
        :class:`Busy` when an action on this set runs already."""
        if action not in BULK_ACTIONS:
            raise ValueError(f"unknown bulk action {action!r}: one of {', '.join(BULK_ACTIONS)}")
        lock = self.conn.lock(self.keys.bulk_lock(entries.which.value), timeout=RUNNING_TTL, blocking=False,
                              thread_local=False)
        if not lock.acquire():
            raise Busy(self.progress(entries.which))
        run = _Run(self, entries, Progress(action, text, "running", 0, 0, 0, time.time(), time.time()), lock)
        thread = threading.Thread(target=run.work, name=f"workerkit-bulk-{entries.which.value}", daemon=True)
        try:
            thread.start()
        except BaseException:
            lock.release()
            raise
        return run.answer(self.budget, thread)

    def progress(self, which: JobSet) -> Progress | None:
        """The progress of the last bulk action on ``which`` that went on in the background, while it is kept
        (None too when the record is not one this version writes)."""
        raw = self.conn.get(self.keys.bulk_action(which.value))
        if raw is None:
            return None
        try:
            fields: dict[str, Any] = json.loads(as_text(raw))
            return Progress(**fields)
        except (ValueError, TypeError):
            return None

    def record(self, which: JobSet, progress: Progress) -> Progress:
        """Write ``progress`` as the last bulk action on ``which`` (kept a minute while it runs, then ten)."""
        self.conn.set(self.keys.bulk_action(which.value), json.dumps(asdict(progress)),
                      ex=RUNNING_TTL if progress.running else FINISHED_TTL)
        return progress
