"""Calling a job: a new instance with ``jid`` and ``payload`` set, the server middleware around it, then
``perform``. A plain ``def perform`` runs in the calling thread (:func:`execute`); an ``async def perform``
is awaited on the calling event loop (:func:`aexecute`).

A server middleware may be a plain function or an ``async def`` one, and each is adapted to a job of the
other kind, so every middleware sees every job:

- a plain middleware around an async job runs in a thread of the loop's default executor; its
  ``call_next()`` runs the rest of the chain on the loop and waits for it (plain middlewares next to each
  other share that thread), in a copy of the job's context, so context variables set by the middlewares
  before it reach the rest. The job then holds a thread while it runs: write the middleware ``async def``
  (or keep async jobs free of it) where that matters.
- an ``async def`` middleware around a plain job runs on a private event loop in the job's thread.

A plain middleware that needs other work around async jobs carries its ``async def`` variant as its
``around_async_jobs`` attribute (:data:`ASYNC_VARIANT`); async jobs then get the variant, plain jobs the
middleware itself.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import inspect
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from workerkit import batch_scope, config
from workerkit.payload import Payload
from workerkit.protocols import JobClass, JobLike

T = TypeVar("T")
ASYNC_VARIANT = "around_async_jobs"
"""A plain middleware with this attribute (an ``async def`` middleware) has it used around ``async def`` jobs
instead of itself: for work that must happen on the loop's side, such as Django's async ORM connections."""


class AwaitableResultError(TypeError):
    """A plain ``def perform`` returned an awaitable: its work never ran, so the job must not count as done."""


@functools.cache
def is_async_job(job_class: JobClass) -> bool:
    """Whether the job's ``perform`` is ``async def`` (awaited on an event loop, not run in a thread)."""
    return inspect.iscoroutinefunction(job_class.perform)


def _is_async_callable(function: object) -> bool:
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(type(function).__call__)


def _instance(job_class: JobClass, payload: Payload) -> JobLike:
    instance = job_class()
    instance.jid = payload["jid"]
    instance.payload = payload
    return instance


def _perform(instance: JobLike, payload: Payload) -> Any:
    """Call a plain ``perform`` and return its value; an awaitable it returns is closed unawaited and raises
    AwaitableResultError."""
    result = instance.perform(*payload["args"])
    if result is not None and inspect.isawaitable(result):  # most jobs return None: no check
        if inspect.iscoroutine(result):
            result.close()  # no "never awaited" warning: the error below says it
        raise AwaitableResultError(
            f"{payload['class']}.perform returned {type(result).__name__} {result!r} instead of running: "
            "a plain def perform must do its work; make it async def to await"
        )
    return result


def run_coroutine(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run the coroutine ``factory()`` makes to its end on a new event loop and return its result: in this
    thread, or, when this thread already runs a loop (an async test), in a thread of its own. The loop's
    ``config.async_redis_client()``, if the coroutine used it, is closed with the loop."""
    async def main() -> T:
        try:
            return await factory()
        finally:
            await config.close_async_redis_client()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="workerkit-run") as pool:
        return pool.submit(lambda: asyncio.run(main())).result()


def execute(job_class: JobClass, payload: Payload) -> Any:
    """Run a job to its end in this thread (a plain one directly, an ``async def`` one on a private event
    loop) and return what ``perform`` returned.

    A plain ``perform`` that returns an awaitable raises :class:`AwaitableResultError` (the job fails, never a
    silent "done")."""
    if batch_scope.of_payload(payload):  # workerkit.batch.current() and callback() read it
        with batch_scope.run(payload):
            return _execute(job_class, payload)
    return _execute(job_class, payload)


def _execute(job_class: JobClass, payload: Payload) -> Any:
    if is_async_job(job_class):
        return run_coroutine(lambda: aexecute(job_class, payload))
    instance = _instance(job_class, payload)
    middleware = config.current().server_middleware
    if not middleware:
        return _perform(instance, payload)
    returned: list[Any] = [None]

    def call(position: int) -> None:
        if position == len(middleware):
            returned[0] = _perform(instance, payload)
            return
        step: Any = middleware[position]
        if _is_async_callable(step):
            async def rest() -> None:
                call(position + 1)

            run_coroutine(lambda: step(instance, payload, rest))
        else:
            step(instance, payload, lambda: call(position + 1))

    call(0)
    return returned[0]


async def aexecute(job_class: JobClass, payload: Payload) -> Any:
    """Await an ``async def`` job on the running event loop, through the server middleware; return what
    ``perform`` returned."""
    if batch_scope.of_payload(payload):  # workerkit.batch.current() and callback() read it
        with batch_scope.run(payload):
            return await _aexecute(job_class, payload)
    return await _aexecute(job_class, payload)


async def _aexecute(job_class: JobClass, payload: Payload) -> Any:
    instance = _instance(job_class, payload)
    if not config.current().server_middleware:
        return await instance.perform(*payload["args"])
    middleware = [getattr(step, ASYNC_VARIANT, step) for step in config.current().server_middleware]
    loop = asyncio.get_running_loop()
    returned: list[Any] = [None]

    async def call(position: int) -> None:
        if position == len(middleware):
            returned[0] = await instance.perform(*payload["args"])
            return
        step: Any = middleware[position]
        if _is_async_callable(step):
            await step(instance, payload, lambda: call(position + 1))
            return
        # A plain middleware: it and the plain ones after it run in one thread; the rest hops back here.
        hops: list[concurrent.futures.Future[None]] = []
        abandoned = False  # set once the job was cancelled: a middleware still running must not start it
        hopping = threading.Lock()

        def in_thread(index: int) -> None:
            plain: Any = middleware[index] if index < len(middleware) else None
            if plain is not None and not _is_async_callable(plain):
                plain(instance, payload, lambda: in_thread(index + 1))
                return
            with hopping:
                if abandoned:
                    raise concurrent.futures.CancelledError(f"{payload['class']} was cancelled")
                hop = asyncio.run_coroutine_threadsafe(call(index), loop)
                hops.append(hop)
            hop.result()

        try:
            # in the job's context, which the rest of the chain inherits when it hops back (a middleware's
            # context variables, such as asgiref's ThreadSensitiveContext, reach the job)
            await loop.run_in_executor(None, contextvars.copy_context().run, in_thread, position)
        except asyncio.CancelledError:
            with hopping:  # a time limit or shutdown: stop the job itself, not only the wait for it
                abandoned = True
                for hop in hops:
                    hop.cancel()
            raise

    await call(0)
    return returned[0]
