"""The dashboard's bulk actions (run, kill or delete every job of a set matching a filter) within a request's
time: a request acts for at most :data:`BUDGET` seconds, step by step, and when steps remain a background
thread does them. How far an action got lives in Redis, so every page of every web process shows it.

One action at a time per set (a ``redis-py`` lock): a second click while one runs is refused with what the
first has done, instead of starting another copy of a large snapshot. Nothing is lost when the web process
stops midway: each step is whole (``SortedJobSet.act_on_matching``), the entries not reached stay in the
set, the lock and the progress lapse within :data:`RUNNING_TTL` seconds, and the action can be started again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import redis
from redis.lock import Lock

from workerkit.keys import Keys
from workerkit.sets import JobSet, SortedJobSet, Step
from workerkit.views import as_text

BUDGET = 0.15
"""Seconds a request spends on a bulk action before it leaves the remaining steps to a thread (a step takes
about 20 ms, so the answer comes within about 0.2 s)."""
RUNNING_TTL = 60
"""Seconds the lock and the progress of a running action live past its last step."""
FINISHED_TTL = 600
"""Seconds the progress of an action that ended stays shown."""

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


class BulkActions:
    """Starts the dashboard's bulk actions and reads their progress, for one Redis and namespace."""

    def __init__(self, conn: redis.Redis, keys: Keys, budget: float = BUDGET) -> None:
        self.conn, self.keys, self.budget = conn, keys, budget

    def start(self, entries: SortedJobSet, action: str, text: str) -> Progress:
        """Act on every job of ``entries`` matching ``text``: the steps that fit in the budget now, the rest
        in a background thread. The progress returned is ``finished`` or ``running``; raises :class:`Busy`
        when an action on this set runs already."""
        lock = self.conn.lock(self.keys.bulk_lock(entries.which.value), timeout=RUNNING_TTL, blocking=False,
                              thread_local=False)
        if not lock.acquire():
            raise Busy(self.progress(entries.which))
        progress = Progress(action, text, "running", 0, 0, 0, time.time(), time.time())
        steps = entries.act_on_matching(action, text)
        try:
            deadline = time.monotonic() + self.budget
            for step in steps:  # at least one step
                progress = progress.after(step)
                if time.monotonic() >= deadline:
                    break
            else:
                lock.release()
                return progress.ended("finished")
        except BaseException:
            lock.release()
            raise
        self._record(entries.which, progress)
        threading.Thread(target=self._go_on, args=(entries.which, progress, steps, lock),
                         name=f"workerkit-bulk-{entries.which.value}", daemon=True).start()
        return progress

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

    def _go_on(self, which: JobSet, progress: Progress, steps: Iterator[Step], lock: Lock) -> None:
        """The thread's work: the remaining steps, each recorded (which keeps the lock), then the end."""
        try:
            for step in steps:
                lock.reacquire()
                progress = self._record(which, progress.after(step))
            self._record(which, progress.ended("finished"))
        except redis.RedisError as error:  # what is left stays in the set; the lock lapses if it cannot go
            log.warning("bulk %s on %s stopped after %d of %d entries: %s", progress.action, which.value,
                        progress.looked_at, progress.total, error)
            try:
                self._record(which, progress.ended("stopped", f"{type(error).__name__}: {error}"))
            except redis.RedisError:
                return
        with contextlib.suppress(redis.RedisError):  # lapsed (held up past RUNNING_TTL) or unreachable
            lock.release()

    def _record(self, which: JobSet, progress: Progress) -> Progress:
        self.conn.set(self.keys.bulk_action(which.value), json.dumps(asdict(progress)),
                      ex=RUNNING_TTL if progress.running else FINISHED_TTL)
        return progress
