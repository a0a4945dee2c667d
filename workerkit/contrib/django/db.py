"""Database connections around each job, as Django manages them around each request.

Django closes a connection that is broken or older than ``CONN_MAX_AGE`` when a request starts and when it
finishes (``close_old_connections`` on ``request_started`` and ``request_finished``). A worker thread runs
job after job, so without the same care a connection would live for the whole process: a database restart
or an idle timeout on the server would fail every later job of that thread, and ``CONN_MAX_AGE = 0`` would
mean nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import close_old_connections

from workerkit.protocols import JobLike


@contextmanager
def fresh_connections() -> Iterator[None]:
    """Close this thread's unusable or expired database connections before the block and after it."""
    close_old_connections()
    try:
        yield
    finally:
        close_old_connections()


def close_old_connections_middleware(job: JobLike, payload: dict[str, Any], call_next: Callable[[], None]) -> None:
    """Server middleware: run the job within :func:`fresh_connections`.

    It is a plain function, so it runs in the job's own thread, where the job's queries run. (Around an
    ``async def`` job it runs in an executor thread of the worker's event loop.)"""
    with fresh_connections():
        call_next()
