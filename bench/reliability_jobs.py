"""Jobs the reliability suite runs (tests/reliability and bench/chaos_*.py, soak.py, multihost.py).

``Mark`` records its jid in the set ``rel:done`` and counts every run in ``rel:runs`` in one transaction,
so ``runs - SCARD(done)`` is the number of repeated runs (at-least-once) and a jid missing from the set
after the queues drained is a lost job. A worker started with ``REL_HOST=name`` also counts its runs in
``rel:ran:<name>`` (bench/multihost.py: which host ran jobs). ``BatchSignal`` is the batch callback of
bench/chaos_batch.py.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import workerkit.batch
from workerkit import Job, config

DONE = "rel:done"
RUNS = "rel:runs"
STARTED = "rel:started"
DOOMED_RUNS = "rel:doomed_runs"
RAN = "rel:ran:"


def _redis() -> Any:
    return config.redis_client()


def _sleep_then_mark_done(jid: str, seconds: float) -> None:
    if seconds:
        time.sleep(seconds)
    pipe = _redis().pipeline(transaction=True)
    pipe.sadd(DONE, jid)
    pipe.incr(RUNS)
    host = os.environ.get("REL_HOST")
    if host:
        pipe.incr(RAN + host)
    pipe.execute()


class Mark(Job):
    """Sleeps ``seconds`` (0 for none), then records its jid as done. A run that fails (Redis went away
    under it) is retried after a second rather than Sidekiq's 15 s or more, so fault runs stay short."""

    @staticmethod
    def backoff(count: int, exc: BaseException) -> float:
        return 1.0

    def perform(self, seconds: float) -> None:
        _sleep_then_mark_done(self.jid, seconds)


class SlowMark(Job):
    """Records its jid in ``rel:started``, sleeps ``seconds``, then marks itself done like Mark."""

    def perform(self, seconds: float) -> None:
        _redis().sadd(STARTED, self.jid)
        _sleep_then_mark_done(self.jid, seconds)


class Doomed(Job):
    """Sleeps ``seconds``, counts its run in ``rel:doomed_runs``, then fails; with no retries it goes
    straight to the dead set, so each pushed jid is buried exactly once. A worker that settled a job it no
    longer held (recovered from it while it was frozen) would bury a second copy."""

    retry = 0

    def perform(self, seconds: float) -> None:
        time.sleep(seconds)
        _redis().incr(DOOMED_RUNS)
        raise RuntimeError("doomed: this job always fails")


class BrokenInit(Job):
    """Raises while being constructed, before ``perform`` is reached."""

    retry = 0

    def __init__(self) -> None:
        raise RuntimeError("BrokenInit cannot be constructed")

    def perform(self) -> None:
        """Never reached."""


class Forever(Job):
    """Never finishes on its own (it checks in every 0.1 s so the test can see it is running)."""

    def perform(self, key: str) -> None:
        while True:
            _redis().incr(key)
            time.sleep(0.1)


class Accept(Job):
    """Takes any arguments and does nothing (the fuzz tests feed it odd payloads)."""

    retry = 1

    def perform(self, *args: Any) -> None:
        """Does nothing."""


class Logged(Job):
    """Appends its jid to the file ``REL_RAN_FILE`` names (one line, one ``write`` in append mode, so lines of
    several processes never interleave): a record of every run that no Redis failover can take back
    (bench/chaos_failover.py). Retried after a second, like Mark."""

    @staticmethod
    def backoff(count: int, exc: BaseException) -> float:
        return 1.0

    def perform(self, seconds: float) -> None:
        if seconds:
            time.sleep(seconds)
        with open(os.environ["REL_RAN_FILE"], "a", encoding="ascii") as ran:
            ran.write(self.jid + "\n")


BATCH_CALLBACKS = "rel:batch_callbacks"
BATCH_MEMBERS = "rel:batch_members"


class BatchSignal(Job):
    """A batch callback (bench/chaos_batch.py): records its event, bid and jid, and how many of the jobs in
    ``rel:batch_members`` had not recorded themselves done when it ran, in ``rel:batch_callbacks`` (one JSON
    entry per run)."""

    def perform(self) -> None:
        found = workerkit.batch.callback()
        event, bid = (found[1], found[0].bid) if found is not None else ("?", "?")
        missing = len(_redis().sdiff(BATCH_MEMBERS, DONE))
        _redis().rpush(BATCH_CALLBACKS, json.dumps({"event": event, "bid": bid, "jid": self.jid, "missing": missing}))
