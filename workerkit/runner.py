"""Run one fetched job: decode its payload, find its registered class, run it through the server middleware,
log ``start`` / ``done: 0.012 sec`` / ``fail``, then acknowledge it or settle its failure.

A failure's outcome is decided once (``workerkit.failure.decide``: error handlers, ``retry_count``, backoff);
only its Redis write is retried through an outage, and it lands only if this worker still holds the job.
Bytes that are not a job go to the dead set with their reason; a class this worker does not know is
retried with backoff (a deploy that forgot a module loses nothing) and logged as an error.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time

from workerkit import config, failure, registry
from workerkit.connection import until_done
from workerkit.fetch import UnitOfWork
from workerkit.heartbeat import RunningJob
from workerkit.lifecycle import Outcome, Settlement
from workerkit.logs import job_context, job_info, set_job_context
from workerkit.payload import Payload, PayloadError
from workerkit.protocols import JobClass, JobLike
from workerkit.timelimit import JobTimeout, Watchdog, job_limit

log = logging.getLogger("workerkit")


class UnknownJobError(Exception):
    """The payload names a class that is not a registered job in this worker."""


class AwaitableResultError(TypeError):
    """A job's ``perform`` returned an awaitable: its work never ran, so the job must not count as done."""


def _perform(instance: JobLike, payload: Payload) -> None:
    """Call ``perform``; an awaitable it returns is closed unawaited and raises AwaitableResultError."""
    result = instance.perform(*payload["args"])
    if result is not None and inspect.isawaitable(result):  # most jobs return None: no check
        if inspect.iscoroutine(result):
            result.close()  # no "never awaited" warning: the error below says it
        raise AwaitableResultError(
            f"{payload['class']}.perform returned {type(result).__name__} {result!r} instead of running: "
            "workerkit does not run async jobs yet; make perform do its work and return a plain value"
        )


def execute(job_class: JobClass, payload: Payload) -> None:
    """Run a job in this thread: new instance, ``jid`` and ``payload`` set, server middleware, ``perform``.

    A ``perform`` that returns an awaitable raises :class:`AwaitableResultError` (the job fails, never a
    silent "done")."""
    instance = job_class()
    instance.jid = payload["jid"]
    instance.payload = payload
    middleware = config.current().server_middleware
    if not middleware:
        _perform(instance, payload)
        return

    def call(position: int) -> None:
        if position == len(middleware):
            _perform(instance, payload)
        else:
            middleware[position](instance, payload, lambda: call(position + 1))

    call(0)


def lookup(payload: Payload) -> JobClass:
    """The registered class the payload names; UnknownJobError when there is none."""
    job_class = registry.get(payload["class"])
    if job_class is None:
        raise UnknownJobError(
            f"job class {payload['class']!r} is not a registered job in this worker "
            "(load the module that defines it with -r); retried with backoff"
        )
    return job_class


class Runner:
    """Runs the jobs of one worker process and records what each thread is running (for the heartbeat)."""

    def __init__(
        self, stop: threading.Event, watchdog: Watchdog | None = None, job_timeout: float | None = None,
    ) -> None:
        self.stop = stop
        self.watchdog = watchdog
        """Enforces the jobs' time limits (None: no limits, as for a Runner outside a worker)."""
        self.job_timeout = job_timeout
        self.running: dict[int, RunningJob] = {}

    def process(self, unit: UnitOfWork) -> Outcome | None:
        """Run one fetched job to its end; return its outcome (None: left in flight, Redis unreachable at
        shutdown, or not held any more). Never raises."""
        now = time.time()
        try:
            payload = unit.payload()
        except PayloadError as exc:
            with job_context("", "workerkit.InvalidPayload"):
                log.error("dead: %s", exc)
            return self._settle(unit, failure.unreadable(unit.raw, unit.queue, exc, now))
        jid = str(payload.get("jid", ""))
        class_name = str(payload["class"])
        try:
            job_class = lookup(payload)
        except UnknownJobError as exc:
            with job_context(jid, class_name):
                log.error("%s", exc)
                return self._settle(unit, failure.decide(unit.raw, payload, exc, None, now))
        tid = threading.get_ident()
        self.running[tid] = RunningJob(unit.queue, unit.raw, now)
        set_job_context(jid, class_name)
        try:
            return self._run(unit, job_class, payload, jid, class_name)
        finally:
            set_job_context(None, None)
            del self.running[tid]

    def _run(
        self, unit: UnitOfWork, job_class: JobClass, payload: Payload, jid: str, class_name: str
    ) -> Outcome | None:
        job_info("start", jid, class_name)
        started = time.perf_counter()
        try:
            if self.watchdog is None:
                execute(job_class, payload)
            else:
                limit = job_limit(payload, job_class.timeout or self.job_timeout)
                self.watchdog.run(lambda: execute(job_class, payload), limit)
        except (Exception, JobTimeout) as exc:
            log.warning("fail: %.3f sec", time.perf_counter() - started)
            settlement = failure.decide(unit.raw, payload, exc, job_class, time.time())
            log.warning("%s: %s (%s)", type(exc).__name__, exc, settlement.outcome.value)
            return self._settle(unit, settlement)
        job_info(f"done: {time.perf_counter() - started:.3f} sec", jid, class_name)
        unit.ack()
        return Outcome.DONE

    def _settle(self, unit: UnitOfWork, settlement: Settlement) -> Outcome | None:
        """Write the decided outcome, retrying only the write through an outage; tell the death handlers
        once it landed. A job this worker no longer holds (recovered meanwhile) is left to its new owner."""
        now = time.time()
        landed = until_done(lambda: unit.settle(settlement, now), "recording a job's outcome", self.stop)
        if landed is None:
            log.warning("Redis unreachable at shutdown: the job stays in flight and will be recovered")
            return None
        if not landed:
            log.warning("the job was no longer held by this worker (recovered after a lapsed heartbeat); "
                        "its outcome is not recorded twice")
            return None
        failure.buried(settlement)
        return settlement.outcome
