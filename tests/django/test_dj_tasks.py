"""Django's Tasks framework on ``workerkit.contrib.django.WorkerkitBackend``: tasks enqueued in this process
(sync and async), run by a real worker process of the test project, their results read back with
``get_result`` / ``aget_result``; and what the backend refuses, before anything is pushed."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from polling import wait_for
from process_support import ChildProcess

from workerkit.invoke import run_coroutine
from workerkit.keys import Keys

pytest.importorskip("django", minversion="5.2")
try:
    import django.tasks  # noqa: F401
except ImportError:
    pytest.importorskip("django_tasks", reason="Django before 6.0 needs the django-tasks backport")

KEYS = Keys("djtest")


def finished(result: Any, worker: ChildProcess, what: str) -> Any:
    """Wait until ``result`` (refreshed from Redis) has finished, with the worker's output on a timeout."""
    wait_for(lambda: (result.refresh(), result.is_finished)[1], what, 30, worker.output)
    return result


def test_tasks_run_in_a_worker_and_their_results_come_back(
    site: redis.Redis, start_process: Callable[..., ChildProcess]
) -> None:
    """Sync, async, context-taking, failing and deferred tasks, enqueued before a worker runs: ``READY``
    with nothing run yet; the worker runs each once; ``SUCCESSFUL`` with the value, or ``FAILED`` with the
    exception's path and traceback; the deferred one not before its ``run_after``."""
    from wkdj_app import tasks

    from workerkit.contrib.django.tasks import TaskResultStatus, WorkerkitBackend

    backend = tasks.add.get_backend()
    assert isinstance(backend, WorkerkitBackend)
    summed = tasks.add.enqueue(2, 3, scale=10)
    later = tasks.add_later.enqueue(4, 5)
    context = tasks.which_attempt.enqueue("ctx")
    failing = tasks.fail.enqueue("boom")
    due = datetime.now(UTC) + timedelta(seconds=1.5)
    deferred = tasks.add.using(run_after=due).enqueue(1, 1)
    async_enqueued = run_coroutine(lambda: tasks.add.aenqueue(7, 8))

    assert (site.llen(KEYS.queue("default")), site.llen(KEYS.queue("mailers")), site.zcard(KEYS.schedule)) == (4, 1, 1)
    for result in (summed, later, context, failing, deferred, async_enqueued):
        fresh = backend.get_result(result.id)
        assert (fresh.status, fresh.attempts, fresh.errors, fresh.is_finished) == (TaskResultStatus.READY, 0, [], False)
        assert fresh.enqueued_at is not None and fresh.started_at is None
    assert summed.args == [2, 3] and summed.kwargs == {"scale": 10} and summed.task.name == "add"
    assert abs(backend.get_result(deferred.id).task.run_after - due) < timedelta(milliseconds=1)

    worker = start_process("python", "-m", "django", "workerkit", "worker", "-c", "3", "-q", "default", "-q", "mailers")
    assert finished(summed, worker, "add").status == TaskResultStatus.SUCCESSFUL
    pid = summed.return_value["pid"]
    assert pid == worker.popen.pid and summed.return_value == {"sum": 50, "pid": pid}
    assert (summed.attempts, summed.errors, summed.worker_ids) == (1, [], [summed.worker_ids[0]])
    assert summed.worker_ids[0].endswith(f":{pid}")
    assert summed.enqueued_at <= summed.started_at <= summed.finished_at  # type: ignore[operator]
    assert finished(later, worker, "add_later").return_value == [9, pid]  # a tuple, normalized
    assert finished(context, worker, "which_attempt").return_value == f"ctx: attempt 1 of {context.id}"
    assert finished(async_enqueued, worker, "aenqueued add").return_value == {"sum": 15, "pid": pid}
    from_async = run_coroutine(lambda: tasks.add.aget_result(async_enqueued.id))
    assert (from_async.status, from_async.return_value) == (TaskResultStatus.SUCCESSFUL, {"sum": 15, "pid": pid})

    assert finished(failing, worker, "fail").status == TaskResultStatus.FAILED
    [error] = failing.errors
    assert error.exception_class is ValueError and error.exception_class_path == "builtins.ValueError"
    assert 'raise ValueError(message)' in error.traceback and error.traceback.endswith("ValueError: boom\n")
    with pytest.raises(ValueError, match="Task failed"):
        failing.return_value  # noqa: B018
    assert site.zcard(KEYS.dead) == 1  # RETRY defaults to 0: straight to the dead set, shown in the dashboard

    assert finished(deferred, worker, "the deferred add").return_value["sum"] == 2
    assert deferred.started_at >= due  # type: ignore[operator]
    assert worker.stop() == 0, worker.output()


def test_a_running_task_is_running_and_a_retried_one_ready_again(
    site: redis.Redis, start_process: Callable[..., ChildProcess]
) -> None:
    """``RUNNING`` while the function runs; after a failure workerkit will retry (``RETRY`` 1), ``READY`` with
    the error so far, as Django defines READY: ready to be executed again."""
    from wkdj_app import tasks

    from workerkit.contrib.django.tasks import TaskResultStatus

    held = tasks.hold.enqueue()
    retried = tasks.fail_and_retry.enqueue()
    worker = start_process("python", "-m", "django", "workerkit", "worker", "-c", "2")

    def status_of(result: Any) -> Any:
        result.refresh()
        return result.status

    wait_for(lambda: status_of(held) == TaskResultStatus.RUNNING, "the held task running", 30, worker.output)
    assert (held.attempts, held.finished_at, held.is_finished) == (1, None, False)
    wait_for(lambda: site.zcard(KEYS.retry) == 1, "the failed task in the retry set", 30, worker.output)
    retried.refresh()
    assert (retried.status, retried.attempts, retried.is_finished) == (TaskResultStatus.READY, 1, False)
    [error] = retried.errors
    assert error.exception_class is RuntimeError and "RuntimeError: first attempt fails" in error.traceback
    site.rpush(tasks.RELEASE, "go")
    assert finished(held, worker, "the released task").return_value == "released"
    assert worker.stop() == 0, worker.output()


def test_what_workerkit_cannot_honour_is_refused_before_anything_is_pushed(site: redis.Redis) -> None:
    from wkdj_app import tasks

    from workerkit import push
    from workerkit.contrib.django.tasks import InvalidTask, TaskResultDoesNotExist, WorkerkitBackend, load_task

    with pytest.raises(InvalidTask, match=r"^Queue 'nope' is not valid for backend\.$"):
        tasks.add.using(queue_name="nope")
    with pytest.raises(InvalidTask, match=r"workerkit has no task priorities, so wkdj_app\.tasks\.add cannot have "
                                          r"priority=5: leave priority at its default \(0\)"):
        tasks.add.using(priority=5)
    with pytest.raises(InvalidTask, match="run_after must be an aware datetime"):
        tasks.add.using(run_after=datetime.now() + timedelta(hours=1))
    with pytest.raises(TypeError, match=r"^task wkdj_app\.tasks\.add: argument kwargs\['scale'\] is a set"):
        tasks.add.enqueue(1, 2, scale={3})
    with pytest.raises(TypeError, match=r"^task wkdj_app\.tasks\.add: argument args\[1\] is nan, which JSON"):
        tasks.add.enqueue(1, float("nan"))
    assert site.dbsize() == 0

    plain_job = push("wkdj_app.jobs.RecordEntry", ["x"], result_ttl=60)
    for unknown in ("0123456789abcdef01234567", plain_job):
        with pytest.raises(TaskResultDoesNotExist, match=f"^no task result '{unknown}': no task was enqueued"):
            tasks.add.get_result(unknown)
    with pytest.raises(TaskResultDoesNotExist, match="no task result 'nope'"):
        run_coroutine(lambda: tasks.add.aget_result("nope"))
    with pytest.raises(TypeError, match=r"^wkdj_app\.tasks\.not_a_task is a function, not a Django task \(@task\)"):
        load_task("wkdj_app.tasks.not_a_task")

    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match=r"settings.TASKS\['x'\]\['OPTIONS'\] has unknown key\(s\) TTL"):
        WorkerkitBackend("x", {"OPTIONS": {"TTL": 5}})
    with pytest.raises(ImproperlyConfigured, match=r"\['RESULT_TTL'\] must be a number of seconds above 0, not 0"):
        WorkerkitBackend("x", {"OPTIONS": {"RESULT_TTL": 0}})


def test_the_backend_path_imports_no_django_with_workerkit() -> None:
    """``import workerkit.contrib.django`` stays free of Django; the backend path resolves on demand."""
    code = ("import sys, workerkit, workerkit.contrib.django as c; "
            "assert 'django' not in sys.modules and 'workerkit.contrib.django.tasks' not in sys.modules; "
            "print(c.__getattr__.__doc__ is not None)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, "True\n", "")


def test_get_result_reads_a_task_that_waits_in_the_queue_as_ready(site: redis.Redis) -> None:
    """No worker: the record alone says READY, with the arguments and enqueue time."""
    from wkdj_app import tasks

    before = time.time()
    result = tasks.add.enqueue(1, b=2)
    fresh = tasks.add.get_result(result.id)
    assert (fresh.id, fresh.args, fresh.kwargs, fresh.backend, fresh.task.queue_name) == (
        result.id, [1], {"b": 2}, "default", "default")
    assert before <= fresh.enqueued_at.timestamp() <= time.time()
    assert 0 < site.pttl(KEYS.task(result.id)) <= (600 + 60) * 1000


def test_a_run_marked_started_but_not_yet_in_the_record_reads_ready_with_no_attempt(site: redis.Redis) -> None:
    """The worker marks a run started (``result:<jid>`` says running) a moment before it adds itself to the
    task's record: in between, the task reads as before, READY with 0 attempts, never RUNNING with 0; once
    the record counts the run, RUNNING with 1 attempt. (A worker under load showed RUNNING with 0 in CI.)"""
    import json

    from wkdj_app import tasks

    from workerkit import results
    from workerkit.contrib.django.tasks import TaskResultStatus

    result = tasks.add.enqueue(1, 2)
    site.set(KEYS.result(result.id), json.dumps(results.running(result.id, time.time())))
    fresh = tasks.add.get_result(result.id)
    assert (fresh.status, fresh.attempts) == (TaskResultStatus.READY, 0)
    record = json.loads(site.get(KEYS.task(result.id)))
    site.set(KEYS.task(result.id), json.dumps({**record, "worker_ids": ["host:1"]}))
    fresh = tasks.add.get_result(result.id)
    assert (fresh.status, fresh.attempts) == (TaskResultStatus.RUNNING, 1)
