"""Periodic (cron) jobs: declared in code, enqueued exactly once per tick by any worker.

Declare them in a module that workers load with ``-r``::

    workerkit.periodic("*/5 * * * *", ProjectCleanup, args=[7], tz="Europe/Berlin")

    @workerkit.periodic("0 3 * * *")
    @workerkit.job
    def nightly_report() -> None: ...

Every worker process calls :func:`enqueue_due` about once a second. For each periodic job it works out
the latest tick at or before now and runs one Lua script that sets the tick's own lock key with
``SET NX EX`` and, only if that set won, pushes the job, in one atomic step. So each tick is enqueued
exactly once across all processes and hosts, whoever's clock gets there first, and a restart of any
worker changes nothing.

An entry whose schedule can never fire (``0 0 30 2 *``) or fails to compute is reported (a warning in the
log, an ``error`` on its record, shown by the dashboard's periodic page) and skipped; the others run.

A tick missed while no worker ran is *not* replayed: only the latest tick is considered, and only while
it is at most :data:`CATCH_UP_SECONDS` old. A worker that starts at 10:07 does not enqueue the 10:05 tick
of a ``*/5`` job, nor the hundreds of ticks of a job whose workers were down overnight.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, overload
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import redis
from croniter import croniter

from workerkit import registry
from workerkit.client import build_payload
from workerkit.keys import Keys
from workerkit.lifecycle import Lifecycle, stamped
from workerkit.payload import check_args, encode

log = logging.getLogger("workerkit")

CATCH_UP_SECONDS = 60.0
"""How late a tick may still be enqueued; older ticks were missed and are skipped, not replayed."""

_LOCK_TTL_SECONDS = int(CATCH_UP_SECONDS * 3)

JobRef = TypeVar("JobRef")


@dataclass(frozen=True)
class PeriodicJob:
    """One registered periodic job: which job to push, with what, on which schedule."""

    name: str
    cron: str
    class_name: str
    args: tuple[Any, ...]
    queue: str
    tz: str
    retry: bool | int = True

    def latest_tick(self, now: float) -> float:
        """The epoch second of the latest tick at or before ``now``."""
        just_after = datetime.fromtimestamp(math.floor(now) + 1, ZoneInfo(self.tz))
        return float(croniter(self.cron, just_after).get_prev(float))

    def next_tick(self, now: float) -> float:
        """The epoch second of the first tick after ``now``."""
        return next_tick(self.cron, self.tz, now)

    def record(self, last_run: float | None = None, last_jid: str | None = None, error: str | None = None) -> str:
        """The JSON record the dashboard reads from ``keys.periodic`` (with ``error`` when it cannot fire)."""
        fields: dict[str, Any] = {
            "name": self.name,
            "cron": self.cron,
            "class": self.class_name,
            "args": list(self.args),
            "queue": self.queue,
            "tz": self.tz,
            "retry": self.retry,
        }
        if last_run is not None:
            fields["last_run"] = last_run
            fields["last_jid"] = last_jid
        if error is not None:
            fields["error"] = error
        return json.dumps(fields)


def next_tick(cron: str, tz: str, now: float) -> float:
    """The epoch second of the first tick of ``cron`` (in time zone ``tz``) after ``now``."""
    return float(croniter(cron, datetime.fromtimestamp(now, ZoneInfo(tz))).get_next(float))


_registry: dict[str, PeriodicJob] = {}


def registered() -> list[PeriodicJob]:
    """Every periodic job declared in this process, in declaration order."""
    return list(_registry.values())


def unregister_all() -> None:
    """Forget every declared periodic job (for tests)."""
    _registry.clear()


def _validate(cron: str, tz: str, args: Sequence[Any]) -> None:
    if not croniter.is_valid(cron):
        raise ValueError(f"periodic: invalid cron expression {cron!r}")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"periodic: unknown time zone {tz!r}") from exc
    try:
        next_tick(cron, tz, time.time())
    except Exception as exc:  # croniter: CroniterBadDateError for a date that never comes (30 February)
        log.warning("periodic: the schedule %r can never fire (%s); it is skipped", cron, exc)
    try:
        check_args(args)
    except TypeError as exc:
        raise ValueError(f"periodic: {exc}") from exc


def register(
    cron: str,
    job: object,
    args: Iterable[Any] = (),
    *,
    tz: str = "UTC",
    name: str | None = None,
    queue: str | None = None,
) -> PeriodicJob:
    """Declare that ``job`` runs on the ``cron`` schedule; returns the registered entry.

    ``job`` is a job class, a ``@job`` function or a class name. ``name`` (default: the class name)
    identifies the periodic job in Redis; two declarations with one name are an error unless equal.
    """
    arg_tuple = tuple(args)
    _validate(cron, tz, arg_tuple)
    try:
        defaults = registry.options(job)
    except TypeError as exc:
        raise TypeError(f"periodic: {exc}") from None
    entry = PeriodicJob(
        name=name or defaults.name,
        cron=cron,
        class_name=defaults.name,
        args=arg_tuple,
        queue=queue or defaults.queue,
        tz=tz,
        retry=defaults.retry,
    )
    existing = _registry.get(entry.name)
    if existing is not None and existing != entry:
        raise ValueError(f"periodic: the name {entry.name!r} is already declared with another schedule or job")
    _registry[entry.name] = entry
    return entry


@overload
def periodic(
    cron: str,
    job: None = None,
    args: Iterable[Any] = (),
    *,
    tz: str = "UTC",
    name: str | None = None,
    queue: str | None = None,
) -> Callable[[JobRef], JobRef]: ...
@overload
def periodic(
    cron: str,
    job: object,
    args: Iterable[Any] = (),
    *,
    tz: str = "UTC",
    name: str | None = None,
    queue: str | None = None,
) -> PeriodicJob: ...
def periodic(
    cron: str,
    job: object | None = None,
    args: Iterable[Any] = (),
    *,
    tz: str = "UTC",
    name: str | None = None,
    queue: str | None = None,
) -> PeriodicJob | Callable[[JobRef], JobRef]:
    """Declare a periodic job; without ``job``, return a decorator that declares the decorated job.

    ``periodic("*/5 * * * *", Cleanup, args=[1], tz="Europe/Berlin")`` registers and returns the entry;
    ``@periodic("0 * * * *")`` above a job class or ``@job`` function registers it and returns it unchanged.
    """
    if job is not None:
        return register(cron, job, args, tz=tz, name=name, queue=queue)
    arg_list = list(args)
    _validate(cron, tz, tuple(arg_list))

    def decorate(target: JobRef) -> JobRef:
        register(cron, target, arg_list, tz=tz, name=name, queue=queue)
        return target

    return decorate


def _payload(entry: PeriodicJob, now: float) -> tuple[str, str]:
    payload = build_payload(entry.class_name, entry.args, {"queue": entry.queue, "retry": entry.retry,
                                                           "periodic": entry.name})
    return payload["jid"], encode(stamped(payload, now))


def enqueue_due(
    conn: redis.Redis, keys: Keys, now: float | None = None, jobs: Iterable[PeriodicJob] | None = None,
    on_broken: Callable[[PeriodicJob, Exception], None] | None = None,
) -> int:
    """Enqueue every periodic job whose latest tick is due and not yet enqueued; returns how many.

    Safe to call from any number of threads, processes and hosts at once: each tick is pushed by
    exactly one caller. Ticks older than :data:`CATCH_UP_SECONDS` are skipped (never replayed); the
    job's record in ``keys.periodic`` is still published so the dashboard lists it. An entry whose
    schedule cannot be computed is published with its error, passed to ``on_broken``, and skipped.
    """
    current = time.time() if now is None else now
    entries = registered() if jobs is None else list(jobs)
    if not entries:
        return 0
    lifecycle = Lifecycle(conn, keys)
    pipe = conn.pipeline(transaction=False)
    for entry in entries:
        try:
            tick = entry.latest_tick(current)
        except Exception as exc:  # croniter's errors for a schedule that never fires
            conn.hset(keys.periodic, entry.name, entry.record(error=f"this schedule can never fire: {exc}"))
            if on_broken is not None:
                on_broken(entry, exc)
            continue
        jid, payload = _payload(entry, current)
        records = (entry.record(last_run=tick, last_jid=jid), entry.record())
        fresh = current - tick <= CATCH_UP_SECONDS
        lifecycle.enqueue_tick(entry.name, int(tick), entry.queue, payload, records, fresh, _LOCK_TTL_SECONDS,
                               client=pipe)
    return sum(int(result) for result in pipe.execute())


class Ticks:
    """This process's view of its periodic jobs: when the next tick is due, and which are broken.

    The scheduler calls :meth:`enqueue_due` at every poll; it reaches Redis only when a tick is due (and
    once at start, to publish the records), and reports a broken schedule once.
    """

    def __init__(self) -> None:
        self._due = 0.0
        self._count = 0
        self._broken: set[str] = set()

    def next_due(self) -> float:
        """The epoch second of the next tick of any registered periodic job (infinity when there is none)."""
        return self._due

    def enqueue_due(self, conn: redis.Redis, keys: Keys, now: float) -> int:
        """Enqueue the due ticks if any is due; returns how many were enqueued by this call."""
        entries = registered()
        if not entries:
            self._due = math.inf
            return 0
        if now < self._due and len(entries) == self._count:
            return 0
        self._count = len(entries)
        enqueued = enqueue_due(conn, keys, now, entries, self._report)
        upcoming = [self._next(entry, now) for entry in entries]
        self._due = min(upcoming, default=math.inf)
        return enqueued

    def _report(self, entry: PeriodicJob, exc: Exception) -> None:
        if entry.name not in self._broken:
            self._broken.add(entry.name)
            log.error("periodic job %r: the schedule %r can never fire (%s); skipped, the others run",
                      entry.name, entry.cron, exc)

    @staticmethod
    def _next(entry: PeriodicJob, now: float) -> float:
        try:
            return entry.next_tick(now)
        except Exception:  # reported by enqueue_due
            return math.inf
