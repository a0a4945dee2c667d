"""Run one job: decode its payload, find its registered class, run it through the server middleware,
log ``start`` / ``done: 0.012 sec`` / ``fail``, then acknowledge it or hand it to retry/dead handling.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import redis

from workerkit import config, registry
from workerkit.connection import until_done
from workerkit.fetch import ReliableFetch, Unit
from workerkit.logs import job_context, job_info, set_job_context
from workerkit.payload import Payload, PayloadError, decode, new_jid
from workerkit.retry import handle_failure, kill
from workerkit.timelimit import JobTimeout, Watchdog, job_limit

if TYPE_CHECKING:
    from workerkit.job import Job

log = logging.getLogger("workerkit")


class UnknownJobError(Exception):
    """The payload names a class that is not a registered job in this worker."""


def execute(job_class: type[Job], payload: Payload) -> None:
    """Run a job in this thread: new instance, ``jid`` and ``payload`` set, server middleware, ``perform``."""
    instance = job_class()
    instance.jid = payload["jid"]
    instance.payload = payload
    middleware = config.current().server_middleware
    if not middleware:
        instance.perform(*payload["args"])
        return

    def call(position: int) -> None:
        if position == len(middleware):
            instance.perform(*payload["args"])
        else:
            middleware[position](instance, payload, lambda: call(position + 1))

    call(0)


def lookup(payload: Payload) -> type[Job]:
    """The registered class the payload names; UnknownJobError when there is none."""
    job_class = registry.get(payload["class"])
    if job_class is None:
        raise UnknownJobError(
            f"job class {payload['class']!r} is not a registered job in this worker "
            "(load the module that defines it with -r)"
        )
    return job_class


def invalid_payload(raw: bytes, queue: str) -> Payload:
    """A dead-set entry for a payload that is not a job: the raw text kept under ``raw``."""
    return {
        "class": "workerkit.InvalidPayload",
        "args": [],
        "jid": new_jid(),
        "queue": queue,
        "retry": False,
        "created_at": time.time(),
        "raw": raw.decode("utf-8", "replace"),
    }


class Runner:
    """Runs the jobs of one worker process and records what each thread is running (for the heartbeat)."""

    def __init__(
        self, conn: redis.Redis, fetch: ReliableFetch, stop: threading.Event,
        watchdog: Watchdog | None = None, job_timeout: float | None = None,
    ) -> None:
        self.conn = conn
        self.fetch = fetch
        self.stop = stop
        self.watchdog = watchdog
        """Enforces the jobs' time limits (None: no limits, as for a Runner outside a worker)."""
        self.job_timeout = job_timeout
        self.running: dict[int, tuple[str, Payload, float]] = {}

    def process(self, unit: Unit) -> None:
        """Run one fetched job to its end: acknowledged, retried, or dead. Never raises."""
        index, raw = unit
        queue = self.fetch.specs[index].name
        try:
            payload = decode(raw)
        except PayloadError as exc:
            self._bury(unit, invalid_payload(raw, queue), exc)
            return
        try:
            job_class = lookup(payload)
        except UnknownJobError as exc:
            self._bury(unit, payload, exc)
            return
        jid = str(payload.get("jid", ""))
        tid = threading.get_ident()
        self.running[tid] = (queue, payload, time.time())
        set_job_context(jid, payload["class"])
        try:
            self._run(unit, job_class, payload, jid)
        finally:
            set_job_context(None, None)
            del self.running[tid]

    def _run(self, unit: Unit, job_class: type[Job], payload: Payload, jid: str) -> None:
        class_name = payload["class"]
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
            self._fail(unit, job_class, payload, exc)
        else:
            job_info(f"done: {time.perf_counter() - started:.3f} sec", jid, class_name)
            self.fetch.ack(unit)

    def _fail(self, unit: Unit, job_class: type[Job], payload: Payload, exc: Exception | JobTimeout) -> None:
        inflight = self.fetch.inflight_keys[unit[0]]
        outcome = self._safely(
            lambda: handle_failure(self.conn, self.fetch.keys, inflight, unit[1], payload, exc, job_class)
        )
        if outcome is not None:
            self.fetch.release(unit)
        log.warning("%s: %s (%s)", type(exc).__name__, exc, outcome or "left in flight: Redis unreachable")

    def _bury(self, unit: Unit, payload: Payload, exc: Exception) -> None:
        """Send a job that cannot run (unreadable payload, unknown class) to the dead set."""
        with job_context(str(payload.get("jid", "")), str(payload["class"])):
            log.error("dead: %s", exc)
            inflight = self.fetch.inflight_keys[unit[0]]
            if self._safely(lambda: kill(self.conn, self.fetch.keys, inflight, unit[1], payload, exc)) is not None:
                self.fetch.release(unit)

    def _safely(self, action: Callable[[], Any]) -> Any:
        """Retry a Redis write through an outage; on shutdown give up (the job stays in flight, not lost)."""
        return until_done(action, "recording a job's outcome", self.stop)
