"""A backend for Django's Tasks framework that runs tasks as workerkit jobs.

::

    TASKS = {
        "default": {
            "BACKEND": "workerkit.contrib.django.WorkerkitBackend",
            "QUEUES": ["default", "mailers"],                    # the workerkit queues tasks may name
            "OPTIONS": {"RESULT_TTL": 86_400, "RETRY": 0},
        }
    }

``task.enqueue(*args, **kwargs)`` pushes a :class:`RunTask` job (:class:`RunAsyncTask` for an ``async def``
task) whose arguments are the task's dotted path, its arguments and its keyword arguments; a worker imports
the path, refuses anything but a Django ``Task`` there, runs its function and keeps the value it returned as
the job's result for ``RESULT_TTL`` seconds. The result id is the jid. Beside workerkit's result record
(``result:<jid>``) the backend keeps the task's own (``task:<jid>``: its arguments, the workers that ran it,
the errors with their tracebacks), from which ``get_result`` rebuilds the ``TaskResult``.

Uses ``django.tasks`` (Django 6.0 and later), else the ``django-tasks`` backport (Django 5.2).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import logging
import math
import os
import socket
import time
import traceback
from datetime import UTC, datetime
from typing import Any

import redis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from workerkit import config, results
from workerkit.client import apush_payload, build_payload, epoch, push_payload
from workerkit.compat import to_seconds
from workerkit.connection import REDIS_DOWN
from workerkit.failure import retry_limit
from workerkit.job import Job
from workerkit.payload import Payload, check_args

log = logging.getLogger("workerkit")


def _framework_package() -> str:
    """``django.tasks`` when this Django has it, else ``django_tasks``; ImportError naming both otherwise."""
    for package in ("django.tasks", "django_tasks"):
        if importlib.util.find_spec(package) is not None:
            return package
    raise ImportError("workerkit.contrib.django.WorkerkitBackend needs Django's Tasks framework: Django 6.0 or "
                      "later, or on Django 5.2 the django-tasks backport (pip install django-tasks)")


_PACKAGE = _framework_package()
_base: Any = importlib.import_module(f"{_PACKAGE}.base")
_exceptions: Any = importlib.import_module(f"{_PACKAGE}.exceptions")
_signals: Any = importlib.import_module(f"{_PACKAGE}.signals")
BaseTaskBackend: Any = importlib.import_module(f"{_PACKAGE}.backends.base").BaseTaskBackend
normalize_json: Any = importlib.import_module(
    "django.utils.json" if _PACKAGE == "django.tasks" else "django_tasks.utils").normalize_json
Task: Any = _base.Task
TaskContext: Any = _base.TaskContext
TaskError: Any = _base.TaskError
TaskResult: Any = _base.TaskResult
TaskResultStatus: Any = _base.TaskResultStatus
InvalidTask: Any = getattr(_exceptions, "InvalidTask", None) or _exceptions.InvalidTaskError
TaskResultDoesNotExist: Any = _exceptions.TaskResultDoesNotExist

DEFAULT_RESULT_TTL = 86_400.0
"""Seconds a task's result is kept after its run, unless ``OPTIONS["RESULT_TTL"]`` says otherwise: a day."""
RECORD_MARGIN = 60.0
"""Seconds the task's record outlives the result record, so ``get_result`` never finds one without the other."""

STATUSES: dict[str | None, Any] = {
    None: TaskResultStatus.READY,  # no result record: queued, scheduled, or waiting for a free worker
    "running": TaskResultStatus.RUNNING,
    "done": TaskResultStatus.SUCCESSFUL,
    "retrying": TaskResultStatus.READY,  # in the retry set: "ready to be executed again"
    "failed": TaskResultStatus.FAILED,
}
"""The Django status of each workerkit result status (None: no result record yet)."""


def _result_ttl(alias: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ImproperlyConfigured(f"settings.TASKS[{alias!r}]['OPTIONS']['RESULT_TTL'] must be a number of "
                                   f"seconds above 0, not {value!r} ({type(value).__name__})")
    return float(value)


def _retry(alias: str, value: object) -> bool | int:
    if isinstance(value, bool) or (isinstance(value, int) and value >= 0):
        return value
    raise ImproperlyConfigured(f"settings.TASKS[{alias!r}]['OPTIONS']['RETRY'] must be True, False or a whole "
                               f"number of retries of 0 or more, not {value!r} ({type(value).__name__})")


OPTIONS = ("RESULT_TTL", "RETRY")
"""The keys of the backend's ``OPTIONS``."""


def _when(seconds: float | None) -> datetime | None:
    """Epoch seconds as Django's ``timezone.now()`` gives times: aware UTC with ``USE_TZ``, else naive local."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC) if settings.USE_TZ else datetime.fromtimestamp(seconds)


def _exception_path(exc_class: str) -> str:
    """A dotted path for workerkit's ``error_class`` (which leaves ``builtins.`` out)."""
    return exc_class if "." in exc_class else f"builtins.{exc_class}"


def worker_id() -> str:
    """This process, as the task's ``worker_ids`` name it: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def load_task(path: str) -> Any:
    """The Django ``Task`` at dotted ``path``; TypeError when the path names anything else (a worker runs
    tasks only, never an arbitrary callable a payload names)."""
    found = import_string(path)
    if not isinstance(found, Task):
        raise TypeError(f"{path} is a {type(found).__name__}, not a Django task (@task): refusing to run it")
    return found


def _check_arguments(task: Any, args: list[Any], kwargs: dict[str, Any]) -> None:
    label = f"task {task.module_path}:"
    try:
        check_args(args)
    except TypeError as exc:
        raise TypeError(str(exc).replace("job argument", f"{label} argument", 1)) from None
    try:
        check_args([kwargs])
    except TypeError as exc:
        raise TypeError(str(exc).replace("job argument args[0]", f"{label} argument kwargs", 1)) from None


def json_arguments(task: Any, args: Any, kwargs: Any) -> tuple[list[Any], dict[str, Any]]:
    """The task's arguments as Django normalizes them (tuples become lists); TypeError naming the argument
    JSON cannot carry."""
    try:
        positional, named = normalize_json(list(args)), normalize_json(dict(kwargs))
    except (TypeError, ValueError):
        _check_arguments(task, list(args), dict(kwargs))  # names the value Django could not normalize
        raise
    _check_arguments(task, positional, named)
    return positional, named


def task_result(task: Any, jid: str, record: dict[str, Any], job: results.JobResult | None) -> Any:
    """The ``TaskResult`` of the task's record and of its workerkit result record (None: none yet)."""
    errors = [TaskError(**error) for error in record.get("errors", [])]
    status = STATUSES[job.status if job is not None else None]
    if status == TaskResultStatus.RUNNING and len(record["worker_ids"]) <= len(errors):
        # the worker has marked the run started but not yet added itself to the record: until it has, the
        # task reads as it did before (READY), so a RUNNING task always counts its attempt
        status = TaskResultStatus.READY
    if job is not None and job.status in ("retrying", "failed") and len(errors) < max(1, len(record["worker_ids"])):
        # the run failed outside the task's function (a middleware, a return value JSON cannot carry)
        errors.append(TaskError(exception_class_path=_exception_path(job.error_class or "Exception"),
                                traceback=f"{job.error_class}: {job.error_message}"))
    finished = job is not None and job.finished
    started = job.started_at if job is not None else None
    result = TaskResult(
        task=task, id=jid, status=status, enqueued_at=_when(record["enqueued_at"]), started_at=_when(started),
        finished_at=_when(job.finished_at) if finished and job is not None else None,
        last_attempted_at=_when(started), args=record["args"], kwargs=record["kwargs"], backend=record["backend"],
        errors=errors, worker_ids=list(record["worker_ids"]),
    )
    if job is not None and job.status == "done":
        object.__setattr__(result, "_return_value", job.value)
    return result


def _record_of(jid: str, raw: bytes | str | None) -> dict[str, Any]:
    if raw is None:
        raise TaskResultDoesNotExist(
            f"no task result {jid!r}: no task was enqueued with that id through workerkit, or its result "
            "expired (OPTIONS['RESULT_TTL'] seconds after its last run)")
    record: dict[str, Any] = json.loads(raw)
    return record


class WorkerkitBackend(BaseTaskBackend):  # type: ignore[misc]  # Django ships no type hints
    """Django's ``TASKS`` backend that pushes each task as a workerkit job (see the module's docstring).

    It supports ``run_after`` (the job is scheduled), ``async def`` tasks (awaited on the worker's event
    loop) and ``get_result`` from any process; not ``priority``: workerkit runs a queue's jobs in order, so
    urgent work takes a queue of its own, weighted higher by the workers."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = False

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        unknown = set(self.options) - set(OPTIONS)
        if unknown:
            raise ImproperlyConfigured(f"settings.TASKS[{alias!r}]['OPTIONS'] has unknown key(s) "
                                       f"{', '.join(sorted(unknown))} (known: {', '.join(OPTIONS)})")
        self.result_ttl = _result_ttl(alias, self.options.get("RESULT_TTL", DEFAULT_RESULT_TTL))
        self.retry = _retry(alias, self.options.get("RETRY", 0))

    def validate_task(self, task: Any) -> None:
        """Django's checks (module-level function, queue in ``QUEUES``, aware ``run_after``...), with the
        priority refused first in words that say what to do instead."""
        if task.priority != _base.DEFAULT_TASK_PRIORITY:
            raise InvalidTask(
                f"workerkit has no task priorities, so {task.module_path} cannot have priority={task.priority}: "
                "leave priority at its default (0) and give urgent tasks a queue of their own, which the "
                "workers weight higher (-q critical,3 -q default)")
        super().validate_task(task)

    def _prepare(self, task: Any, args: Any, kwargs: Any) -> tuple[Payload, float | None, dict[str, Any]]:
        """The job's payload, when to run it (None: now) and the task's record."""
        self.validate_task(task)
        positional, named = json_arguments(task, args, kwargs)
        at = epoch(task.run_after)
        runner = RunAsyncTask if inspect.iscoroutinefunction(task.func) else RunTask
        payload = build_payload(runner, [task.module_path, positional, named], {
            "queue": task.queue_name, "retry": self.retry, "result_ttl": self.result_ttl,
            "django_task": {"backend": self.alias, "run_after": at},
        })
        record = {"task": task.module_path, "args": positional, "kwargs": named, "backend": self.alias,
                  "queue_name": task.queue_name, "run_after": at, "enqueued_at": time.time(), "worker_ids": [],
                  "errors": []}
        return payload, at, record

    def _lifetime_ms(self, at: float | None) -> int:
        """Milliseconds to keep a new task's record: until its run is due, then the result's TTL and a margin."""
        wait = max(0.0, (at or 0.0) - time.time())
        return int((wait + self.result_ttl + RECORD_MARGIN) * 1000)

    def _enqueued(self, task: Any, payload: Payload, record: dict[str, Any]) -> Any:
        result = task_result(task, payload["jid"], record, None)
        _signals.task_enqueued.send(type(self), task_result=result)
        return result

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        """Push the task as a workerkit job (scheduled for ``run_after``) and return its ``READY`` result.

        The task's record is written after the push, unless the worker already wrote it (``SET NX``); a push a
        client middleware drops leaves none, so ``get_result`` says there is no such result."""
        payload, at, record = self._prepare(task, args, kwargs)
        if push_payload(payload, at) is not None:
            config.redis_client().set(config.keys().task(payload["jid"]), json.dumps(record),
                                      px=self._lifetime_ms(at), nx=True)
        return self._enqueued(task, payload, record)

    async def aenqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        """:meth:`enqueue` without blocking the running event loop."""
        payload, at, record = self._prepare(task, args, kwargs)
        if await apush_payload(payload, at) is not None:
            await config.async_redis_client().set(config.keys().task(payload["jid"]), json.dumps(record),
                                                  px=self._lifetime_ms(at), nx=True)
        return self._enqueued(task, payload, record)

    def get_result(self, result_id: str) -> Any:
        """The task's result, read from Redis; ``TaskResultDoesNotExist`` for an id no task of this backend
        has, or whose result expired."""
        record = _record_of(result_id, config.redis_client().get(config.keys().task(result_id)))
        try:
            job: results.JobResult | None = results.result(result_id)
        except results.ResultNotFound:
            job = None
        return self._rebuilt(result_id, record, job)

    async def aget_result(self, result_id: str) -> Any:
        """:meth:`get_result` without blocking the running event loop."""
        record = _record_of(result_id, await config.async_redis_client().get(config.keys().task(result_id)))
        try:
            job: results.JobResult | None = await results.aresult(result_id)
        except results.ResultNotFound:
            job = None
        return self._rebuilt(result_id, record, job)

    def _rebuilt(self, jid: str, record: dict[str, Any], job: results.JobResult | None) -> Any:
        task = load_task(record["task"]).using(queue_name=record["queue_name"], backend=record["backend"],
                                               run_after=_when(record["run_after"]))
        return task_result(task, jid, record, job)


class _Run:
    """One run of a task in a worker: its task, its record (read from Redis, or rebuilt from the payload once
    it expired) with this worker added, and the Redis writes of that record."""

    def __init__(self, job: Job, path: str, args: list[Any], kwargs: dict[str, Any], raw: bytes | str | None) -> None:
        self.task = load_task(path)
        self.key = config.keys().task(job.jid)
        self.payload = job.payload
        extra = self.payload.get("django_task") or {}
        self.record: dict[str, Any] = json.loads(raw) if raw is not None else {
            "task": path, "args": args, "kwargs": kwargs, "backend": extra.get("backend", self.task.backend),
            "queue_name": self.payload.get("queue", self.task.queue_name), "run_after": extra.get("run_after"),
            "enqueued_at": to_seconds(self.payload.get("created_at")) or time.time(), "worker_ids": [],
            "errors": []}
        self.record["worker_ids"].append(worker_id())
        self.lifetime_ms = int(((results.ttl_of(self.payload, None) or DEFAULT_RESULT_TTL) + RECORD_MARGIN) * 1000)
        self.arguments = [self._context(), *args] if self.task.takes_context else list(args)

    def _context(self) -> Any:
        running = results.JobResult(self.payload["jid"], "running", started_at=time.time())
        return TaskContext(task_result=task_result(self.task, self.payload["jid"], self.record, running))

    def encoded(self) -> str:
        """The record as JSON."""
        return json.dumps(self.record)

    def started(self) -> None:
        """Send Django's ``task_started``."""
        self._signal(_signals.task_started, results.JobResult(self.payload["jid"], "running", started_at=time.time()))

    def succeeded(self, value: Any) -> Any:
        """The value as JSON normalizes it (a tuple becomes a list), after Django's ``task_finished``."""
        normal = normalize_json(value)
        self._signal(_signals.task_finished, results.JobResult(self.payload["jid"], "done", normal))
        return normal

    def failed(self, exc: BaseException) -> None:
        """Add the error, with its traceback, to the record; Django's ``task_finished`` when no retry is left."""
        kind = type(exc)
        self.record["errors"].append({"exception_class_path": f"{kind.__module__}.{kind.__qualname__}",
                                      "traceback": "".join(traceback.format_exception(exc))})
        limit, count = retry_limit(self.payload), self.payload.get("retry_count")
        if limit is None or (count + 1 if isinstance(count, int) else 0) >= limit:
            self._signal(_signals.task_finished, results.JobResult(self.payload["jid"], "failed"))

    def _signal(self, signal: Any, job: results.JobResult) -> None:
        signal.send(WorkerkitBackend, task_result=task_result(self.task, self.payload["jid"], self.record, job))

    def warn(self, exc: BaseException) -> None:
        """Log that Redis kept the record from being written."""
        log.warning("could not write the record of task %s (%s); get_result may miss this run", self.key, exc)


class RunTask(Job):
    """The job that runs a plain ``def`` Django task: ``RunTask(path, args, kwargs)``; its result is the
    task's return value."""

    retry = 0

    def perform(self, path: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        conn: redis.Redis = config.redis_client()
        run = _Run(self, path, args, kwargs, conn.get(config.keys().task(self.jid)))
        conn.set(run.key, run.encoded(), px=run.lifetime_ms)
        run.started()
        try:
            return run.succeeded(run.task.func(*run.arguments, **kwargs))
        except BaseException as exc:
            run.failed(exc)
            raise
        finally:
            try:
                conn.set(run.key, run.encoded(), px=run.lifetime_ms)
            except REDIS_DOWN as exc:
                run.warn(exc)


class RunAsyncTask(Job):
    """The job that runs an ``async def`` Django task, on the worker's event loop: ``RunAsyncTask(path, args,
    kwargs)``; its result is the task's return value."""

    retry = 0

    async def perform(self, path: str, args: list[Any], kwargs: dict[str, Any]) -> Any:  # type: ignore[override]
        conn = config.async_redis_client()
        run = _Run(self, path, args, kwargs, await conn.get(config.keys().task(self.jid)))
        await conn.set(run.key, run.encoded(), px=run.lifetime_ms)
        run.started()
        try:
            return run.succeeded(await run.task.func(*run.arguments, **kwargs))
        except BaseException as exc:
            run.failed(exc)
            raise
        finally:
            try:
                await conn.set(run.key, run.encoded(), px=run.lifetime_ms)
            except REDIS_DOWN as exc:
                run.warn(exc)
