"""Database connections around each job, as Django manages them around each request.

Django closes a connection that is broken or older than ``CONN_MAX_AGE`` when a request starts and when it
finishes (``close_old_connections`` on ``request_started`` and ``request_finished``). A worker thread runs
job after job, so without the same care a connection would live for the whole process: a database restart
or an idle timeout on the server would fail every later job of that thread, and ``CONN_MAX_AGE = 0`` would
mean nothing.

``async def`` jobs get the middleware's async variant (its ``around_async_jobs`` attribute,
``workerkit.invoke.ASYNC_VARIANT``): as Django's ASGI handler does for each request, it runs the job inside
an ``asgiref.sync.ThreadSensitiveContext``, so the job's ORM calls (``aget``, ``acreate``, ``sync_to_async``)
run in a thread of the job's own, which holds the job's connections; they are renewed before the job and
closed after it, with the thread.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.db import close_old_connections, connections

from workerkit.invoke import ASYNC_VARIANT
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

    It is a plain function, so it runs in the job's own thread, where the job's queries run. Around an
    ``async def`` job workerkit uses :func:`around_async_jobs` instead."""
    with fresh_connections():
        call_next()


async def around_async_jobs(job: JobLike, payload: dict[str, Any], call_next: Callable[[], Awaitable[None]]) -> None:
    """The async variant of :func:`close_old_connections_middleware`: run the job in a
    ``ThreadSensitiveContext`` of its own, whose one thread runs the job's thread-sensitive sync code (the
    async ORM's queries); close that thread's old connections before the job, and all of them after it.

    After the job the thread is discarded with its context, so a connection left open there (``CONN_MAX_AGE``
    above 0) would be reused by nothing: each async job has connections of its own, as each request of
    Django's ASGI handler does."""
    async with ThreadSensitiveContext():
        await sync_to_async(close_old_connections)()
        try:
            await call_next()
        finally:
            await sync_to_async(connections.close_all)()


setattr(close_old_connections_middleware, ASYNC_VARIANT, around_async_jobs)
