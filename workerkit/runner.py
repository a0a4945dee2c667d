"""Run one fetched job: decode its payload, find its registered class, run it through the server middleware
(``workerkit.invoke``: in a thread, or awaited for ``async def`` jobs), log ``start`` / ``done: 0.012 sec`` /
``fail``, then acknowledge it or settle its failure.

A failure's outcome is decided once (``workerkit.failure.decide``: error handlers, ``retry_count``, backoff);
only its Redis write is retried through an outage, and it lands only if this worker still holds the job.
Bytes that are not a job go to the dead set with their reason; a class this worker does not know is
retried with backoff (a deploy that forgot a module loses nothing) and logged as an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from workerkit import cancellation, config, failure, job_logs, registry, results, unique
from workerkit.connection import REDIS_DOWN, until_done
from workerkit.fetch import UnitOfWork
from workerkit.heartbeat import RunningJob
from workerkit.invoke import aexecute, execute
from workerkit.lifecycle import Outcome, Settlement
from workerkit.limiter import OverLimit
from workerkit.logs import job_context, job_info, set_job_context
from workerkit.payload import Payload, PayloadError
from workerkit.protocols import JobClass
from workerkit.timelimit import JobTimeout, Watchdog, job_limit, overrun_message

log = logging.getLogger("workerkit")


class UnknownJobError(Exception):
    """The payload names a class that is not a registered job in this worker."""


def lookup(payload: Payload) -> JobClass:
    """The registered class the payload names; UnknownJobError when there is none."""
    job_class = registry.get(payload["class"])
    if job_class is None:
        raise UnknownJobError(
            f"job class {payload['class']!r} is not a registered job in this worker "
            "(load the module that defines it with -r); retried with backoff"
        )
    return job_class


@dataclass(slots=True)
class _Ready:
    """A fetched job that can run: its registered class and decoded payload."""

    unit: UnitOfWork
    job_class: JobClass
    payload: Payload
    jid: str
    class_name: str
    result_ttl: float | None
    """Seconds to keep the job's result record (``workerkit.results``); None: it keeps none."""
    started_at: float


class Runner:
    """Runs the jobs of one worker process and records what each is running (for the heartbeat): plain jobs
    in the calling thread (:meth:`process`), ``async def`` ones on the calling event loop (:meth:`aprocess`),
    through the same steps: log ``start``, run within the time limit, then acknowledge or settle."""

    def __init__(
        self, stop: threading.Event, watchdog: Watchdog | None = None, job_timeout: float | None = None,
    ) -> None:
        self.stop = stop
        self.watchdog = watchdog
        """Enforces the plain jobs' time limits (None: no limits, as for a Runner outside a worker)."""
        self.job_timeout = job_timeout
        self.unique = unique.Releaser(config.redis_client(), config.keys())
        """Releases the locks of unique jobs as they start or end (``workerkit.unique``)."""
        self.running: dict[int, RunningJob] = {}
        """What runs, by thread id (plain jobs) or task id (async jobs)."""

    def process(self, unit: UnitOfWork) -> Outcome | None:
        """Run one fetched job to its end in this thread; return its outcome (None: left in flight, Redis
        unreachable at shutdown, or not held any more). Never raises."""
        now = time.time()
        ready = self._prepare(unit, now)
        if not isinstance(ready, _Ready):
            return ready
        key = threading.get_ident()
        self.running[key] = RunningJob(unit.queue, unit.raw, now, ready.jid)
        set_job_context(ready.jid, ready.class_name)
        keeps = ready.result_ttl is not None  # the hot path of most jobs: no result, few calls
        try:
            job_info("start", ready.jid, ready.class_name)
            self.unique.started(ready.payload)
            if keeps:
                self._keep_running(ready)
            started = time.perf_counter()
            try:
                if self.watchdog is None:
                    value = execute(ready.job_class, ready.payload)
                else:
                    value = self.watchdog.run(lambda: execute(ready.job_class, ready.payload), self._limit(ready))
                if keeps and not self._keep_value(ready, value):
                    return None
            except (Exception, JobTimeout) as exc:
                return self._failed(ready, exc, started, job_logs.lines_of_run())
            outcome = self._succeeded(ready, started)
            self.unique.ended(ready.payload, will_run_again=False)
            return outcome
        finally:
            set_job_context(None, None)
            del self.running[key]
            cancellation.forget(ready.jid)

    async def aprocess(self, unit: UnitOfWork) -> Outcome | None:
        """Await one fetched ``async def`` job to its end on the running loop, as :meth:`process` runs a plain
        one. Cancelled from outside (shutdown), the job is left in flight for its queue; settling a failure
        runs in the loop's executor, so an outage retried there blocks no other job."""
        now = time.time()
        ready = self._prepare(unit, now)
        if not isinstance(ready, _Ready):
            return ready
        task = asyncio.current_task()
        key = id(task)
        self.running[key] = RunningJob(unit.queue, unit.raw, now, ready.jid, task)
        set_job_context(ready.jid, ready.class_name)  # this task's own context
        loop = asyncio.get_running_loop()
        try:
            job_info("start", ready.jid, ready.class_name)
            if "unique_digest" in ready.payload:
                await loop.run_in_executor(None, self.unique.started, ready.payload)
            if ready.result_ttl is not None:
                await loop.run_in_executor(None, self._keep_running, ready)
            started = time.perf_counter()
            try:
                value = await self._aexecute(ready)
                kept = True if ready.result_ttl is None else await loop.run_in_executor(
                    None, self._keep_value, ready, value)
            except asyncio.CancelledError as exc:
                if cancellation.is_requested(ready.jid):  # workerkit.cancel: the job ends cancelled
                    return await loop.run_in_executor(None, self._cancelled, ready)
                if task is None or task.cancelling():
                    raise  # stopped from outside: not a failure of the job
                return await loop.run_in_executor(None, self._failed, ready, exc, started,
                                                  job_logs.lines_of_run())
            except (Exception, JobTimeout) as exc:
                return await loop.run_in_executor(None, self._failed, ready, exc, started,
                                                  job_logs.lines_of_run())
            if not kept:
                return None
            outcome = self._succeeded(ready, started)
            if "unique_digest" in ready.payload:
                await loop.run_in_executor(None, self.unique.ended, ready.payload, False)
            return outcome
        finally:
            del self.running[key]
            cancellation.forget(ready.jid)

    def _prepare(self, unit: UnitOfWork, now: float) -> _Ready | Outcome | None:
        """The job to run, or the outcome of settling bytes that are not a job or a class this worker lacks."""
        try:
            payload = unit.payload()
        except PayloadError as exc:
            with job_context("", "workerkit.InvalidPayload"):
                log.error("dead: %s", exc)
            return self._settle(unit, failure.unreadable(unit.raw, unit.queue, exc, now))
        jid = str(payload.get("jid", ""))
        class_name = str(payload["class"])
        expires_at = payload.get("expires_at")
        if isinstance(expires_at, int | float) and not isinstance(expires_at, bool) and now > expires_at:
            return self._expired(unit, payload, jid, class_name, expires_at)
        try:
            job_class = lookup(payload)
        except UnknownJobError as exc:
            with job_context(jid, class_name):
                log.error("%s", exc)
                return self._settle(unit, failure.decide(unit.raw, payload, exc, None, now))
        return _Ready(unit, job_class, payload, jid, class_name, results.ttl_of(payload, job_class.result_ttl), now)

    def _expired(self, unit: UnitOfWork, payload: Payload, jid: str, class_name: str,
                 expires_at: float) -> Outcome | None:
        """Drop a job that was not started before ``expires_at``, unrun, with a log line and a count."""
        with job_context(jid, class_name):
            late = time.time() - expires_at
            if not until_done(lambda: unit.drop(Outcome.EXPIRED, jid), "dropping an expired job", self.stop):
                return None  # recovered by another process meanwhile, or Redis away at shutdown
            log.warning("expired: not started by its expires_at, %.1f s ago; dropped without running", late)
        self.unique.ended(payload, will_run_again=False)
        return Outcome.EXPIRED

    def _cancelled(self, ready: _Ready) -> Outcome | None:
        """End a job that ``workerkit.cancel`` stopped: dropped (``stat:cancelled``), not failed, not retried."""
        with job_context(ready.jid, ready.class_name):
            if not until_done(lambda: ready.unit.drop(Outcome.CANCELLED, ready.jid), "dropping a cancelled job",
                              self.stop):
                return None
            log.info("cancelled: stopped by workerkit.cancel; not retried")
        self.unique.ended(ready.payload, will_run_again=False)
        return Outcome.CANCELLED

    def _limit(self, ready: _Ready) -> float | None:
        if self.watchdog is None:
            return None
        return job_limit(ready.payload, ready.job_class.timeout or self.job_timeout)

    async def _aexecute(self, ready: _Ready) -> Any:
        """Await the job; past its time limit it is cancelled, which interrupts the await it is in."""
        limit = self._limit(ready)
        if limit is None:
            return await aexecute(ready.job_class, ready.payload)
        scope = asyncio.timeout(limit)
        try:
            async with scope:
                return await aexecute(ready.job_class, ready.payload)
        except TimeoutError as exc:
            if scope.expired():
                raise JobTimeout(overrun_message(limit)) from exc
            raise

    def _keep_running(self, ready: _Ready) -> None:
        """Record that a job keeping its result started (best effort: the record of its end is what counts)."""
        if ready.result_ttl is None:
            return
        try:
            results.record(config.redis_client(), ready.jid, ready.result_ttl,
                           results.running(ready.jid, ready.started_at))
        except REDIS_DOWN as exc:
            log.warning("could not record that the job started (%s); its result is recorded when it ends", exc)

    def _keep_value(self, ready: _Ready, value: Any) -> bool:
        """Record the value of a job keeping its result, before it is acknowledged (ResultError when JSON
        cannot carry it); False when Redis stayed away until shutdown: the job is left in flight."""
        if ready.result_ttl is None:
            return True
        fields = results.done(ready.jid, ready.started_at, results.checked_value(value, ready.class_name))
        ttl = ready.result_ttl

        def write() -> bool:
            results.record(config.redis_client(), ready.jid, ttl, fields)
            return True

        return until_done(write, "recording a job's result", self.stop) is not None

    def _keep_failure(self, ready: _Ready, exc: BaseException, outcome: Outcome | None) -> None:
        """Record a failed run of a job keeping its result: ``retrying`` or, when it will not run again,
        ``failed`` (best effort; nothing when the outcome was not recorded)."""
        if ready.result_ttl is None or outcome is None:
            return
        try:
            results.record(config.redis_client(), ready.jid, ready.result_ttl,
                           results.failed(ready.jid, ready.started_at, exc, outcome is not Outcome.RETRY))
        except REDIS_DOWN as error:
            log.warning("could not record the job's failure in its result (%s)", error)

    def _succeeded(self, ready: _Ready, started: float) -> Outcome:
        seconds = time.perf_counter() - started
        job_info(f"done: {seconds:.3f} sec", ready.jid, ready.class_name)
        ready.unit.ack(ready.class_name, seconds)
        return Outcome.DONE

    def _failed(self, ready: _Ready, exc: BaseException, started: float, lines: list[str]) -> Outcome | None:
        """Log the failure, keep the run's last log ``lines`` with the payload (``error_log``; none: the
        field goes), decide its outcome once, write it (logged under the job's context)."""
        if isinstance(exc, cancellation.Cancelled):
            return self._cancelled(ready)
        if isinstance(exc, OverLimit):
            deferred = failure.deferral(ready.payload, exc, time.time())
            if deferred is not None:
                with job_context(ready.jid, ready.class_name):
                    log.info("deferred: %s; runs again in %.1f s (deferral %d of %d)", exc,
                             deferred.score - time.time(), ready.payload["limited"], exc.max_deferrals)
                    return self._settle(ready.unit, deferred)
        with job_context(ready.jid, ready.class_name):
            seconds = time.perf_counter() - started
            if lines:
                ready.payload["error_log"] = lines
            else:
                ready.payload.pop("error_log", None)
            ready.unit.count_failure(ready.class_name, seconds)
            log.warning("fail: %.3f sec", seconds)
            settlement = failure.decide(ready.unit.raw, ready.payload, exc, ready.job_class, time.time())
            log.warning("%s: %s (%s)", type(exc).__name__, exc, settlement.outcome.value)
            outcome = self._settle(ready.unit, settlement)
            self._keep_failure(ready, exc, outcome)
            return outcome

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
        if settlement.outcome is not Outcome.DEFERRED:  # deferred: it still waits to run, holding its lock
            with contextlib.suppress(PayloadError):  # bytes that are not a job hold no lock
                self.unique.ended(unit.payload(), will_run_again=settlement.outcome is Outcome.RETRY)
        return settlement.outcome
