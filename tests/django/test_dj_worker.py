"""Jobs that use the ORM, run by real worker processes of the test project: through ``python -m django
workerkit`` (the management command) and through ``workerkit worker`` with ``DJANGO_SETTINGS_MODULE``."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import redis
from polling import wait_for
from process_support import ChildProcess

from workerkit import push_bulk
from workerkit.keys import Keys

pytest.importorskip("django", minversion="5.2")
if TYPE_CHECKING:
    from wkdj_app.models import Entry

KEYS = Keys("djtest")
WORKERKIT = str(Path(sys.executable).with_name("workerkit"))


def run_jobs(conn: redis.Redis, worker: ChildProcess, count: int) -> list[Entry]:
    """Wait until the worker ran and acknowledged ``count`` jobs; stop it; return the rows, checking that
    Redis holds nothing else (no job queued, retried or dead; each counted once)."""
    from wkdj_app.models import Entry

    wait_for(lambda: Entry.objects.count() >= count or worker.popen.poll() is not None, f"{count} rows", 60,
             worker.output)
    assert worker.popen.poll() is None, f"the worker exited early:\n{worker.output()}"
    wait_for(lambda: int(conn.get(KEYS.stat("processed")) or 0) >= count, f"{count} jobs counted", 10, worker.output)
    assert worker.stop() == 0, worker.output()
    assert int(conn.get(KEYS.stat("processed")) or 0) == count
    assert conn.get(KEYS.stat("failed")) is None, worker.output()
    assert (conn.llen(KEYS.queue("default")), conn.zcard(KEYS.retry), conn.zcard(KEYS.dead)) == (0, 0, 0)
    return list(Entry.objects.order_by("label"))


def test_the_management_command_runs_orm_jobs_on_four_threads(
    site: redis.Redis, start_process: Callable[..., ChildProcess]
) -> None:
    """50 jobs through ``python -m django workerkit worker -c 4`` (what ``manage.py workerkit`` runs): the
    settings' namespace, middleware and job modules are in force in the worker, and with ``CONN_MAX_AGE = 0``
    every job gets a database connection of its own, closed after it (the threads run job after job)."""
    from wkdj_app.jobs import RecordEntry

    labels = [f"job-{number:02}" for number in range(50)]
    push_bulk(RecordEntry, [(label,) for label in labels])
    assert site.llen(KEYS.queue("default")) == 50  # pushed to the settings' namespace
    worker = start_process("python", "-m", "django", "workerkit", "worker", "-c", "4")
    rows = run_jobs(site, worker, 50)
    assert [row.label for row in rows] == labels
    assert {row.stamp for row in rows} == {"stamped by the middleware"}
    assert len({row.thread for row in rows}) > 1, "the jobs ran on one thread only"
    assert len({row.connection for row in rows}) == 50, "a job reused a connection an earlier job left open"


def test_persistent_connections_stay_open_from_job_to_job(
    site: redis.Redis, start_process: Callable[..., ChildProcess]
) -> None:
    """With ``CONN_MAX_AGE = None`` a healthy connection is kept, as between requests: one per thread."""
    from wkdj_app.jobs import RecordEntry

    push_bulk(RecordEntry, [(f"job-{number:02}",) for number in range(12)])
    worker = start_process("python", "-m", "django", "workerkit", "worker", "-c", "2",
                           env={"WKDJ_CONN_MAX_AGE": "none"})
    rows = run_jobs(site, worker, 12)
    threads = {row.thread for row in rows}
    assert len({row.connection for row in rows}) == len(threads) <= 2


def test_async_jobs_get_database_connections_of_their_own(
    site: redis.Redis, start_process: Callable[..., ChildProcess]
) -> None:
    """``async def`` jobs using the async ORM, with ``CONN_MAX_AGE = 0``: the connection middleware's async
    variant runs each in a ``ThreadSensitiveContext`` and closes its connections after it, so 8 jobs on 2
    concurrent slots get 8 connections (without it, all share asgiref's one thread and its one connection)."""
    from wkdj_app.jobs import RecordEntryAsync

    labels = [f"async-{number}" for number in range(8)]
    push_bulk(RecordEntryAsync, [(label,) for label in labels])
    worker = start_process("python", "-m", "django", "workerkit", "worker", "-c", "2")
    rows = run_jobs(site, worker, 8)
    assert [row.label for row in rows] == labels
    assert {row.stamp for row in rows} == {"stamped by the middleware"}
    assert len({row.connection for row in rows}) == 8, [row.connection for row in rows]


def test_workerkit_worker_sets_django_up_from_the_environment(
    site: redis.Redis, start_process: Callable[..., ChildProcess]
) -> None:
    """No ``-r``: the jobs come from ``settings.WORKERKIT['JOB_MODULES']``, the namespace from the settings."""
    from wkdj_app.jobs import RecordEntry

    push_bulk(RecordEntry, [(f"job-{number}",) for number in range(5)])
    worker = start_process(WORKERKIT, "worker", "-c", "2")
    rows = run_jobs(site, worker, 5)
    assert {row.stamp for row in rows} == {"stamped by the middleware"}


def test_workerkit_worker_names_the_variable_when_the_settings_do_not_load(
    start_process: Callable[..., ChildProcess]
) -> None:
    worker = start_process(WORKERKIT, "worker", env={"DJANGO_SETTINGS_MODULE": "nowhere.settings"})
    assert worker.popen.wait(60) == 2
    assert worker.output() == ("workerkit worker: cannot set up Django with DJANGO_SETTINGS_MODULE=nowhere.settings: "
                               "ModuleNotFoundError: No module named 'nowhere'\n")


def test_the_management_command_runs_one_job_and_passes_exit_codes_on(
    site: redis.Redis, start_process: Callable[..., ChildProcess]
) -> None:
    from wkdj_app.models import Entry

    ran = start_process("python", "-m", "django", "workerkit", "run", "wkdj_app.jobs.RecordEntry", "by hand")
    assert ran.popen.wait(60) == 0, ran.output()
    assert [(row.label, row.stamp) for row in Entry.objects.all()] == [("by hand", "stamped by the middleware")]
    refused = start_process("python", "-m", "django", "workerkit", "worker", "-q", "")
    assert refused.popen.wait(60) == 2
    assert "workerkit worker: -q queue '': empty queue name" in refused.output()
    assert site.dbsize() == 0  # `workerkit run` pushes nothing

