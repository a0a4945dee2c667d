"""The event loop of a worker process that runs its ``async def`` jobs: one thread, beside the thread pool,
with up to ``--async-concurrency`` jobs awaiting at once (an awaiting job costs no thread).

Jobs reach it already fetched (reliable fetch, as every job) and leave it through the runner's lifecycle
steps, as plain jobs do. At shutdown, jobs still running at the deadline are cancelled and stay in flight,
so the worker pushes them back to their queues with the rest.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable

from workerkit import config
from workerkit.fetch import UnitOfWork
from workerkit.runner import Runner

log = logging.getLogger("workerkit")

CANCEL_GRACE_SECONDS = 2.0
"""How long jobs cancelled at the shutdown deadline get to unwind (their ``finally`` blocks)."""
EXECUTOR_SPARE_THREADS = 32
"""Executor threads beyond one per job, for the jobs' own ``asyncio.to_thread`` calls and settling failures."""


class AsyncLane:
    """Runs async jobs on an event loop in a thread of its own; ``on_done(unit)`` is called (on the loop)
    after each job, whatever its end."""

    def __init__(self, runner: Runner, concurrency: int, on_done: Callable[[UnitOfWork], None]) -> None:
        self.runner = runner
        self.on_done = on_done
        self.loop = asyncio.new_event_loop()
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=concurrency + EXECUTOR_SPARE_THREADS, thread_name_prefix="async-jobs-executor")
        self.loop.set_default_executor(self.executor)
        self.slots = asyncio.Semaphore(concurrency)
        """At most ``concurrency`` jobs run; a job fetched beyond that (the fetch only estimates the loop's room)
        waits here, in flight, as a prefetched plain job waits for a thread."""
        self.tasks: set[asyncio.Task[None]] = set()
        self.started: set[asyncio.Task[None]] = set()
        """The tasks whose job holds a place and runs (the others wait for a place)."""
        self.thread = threading.Thread(target=self._serve, name="async-jobs", daemon=True)

    def start(self) -> None:
        """Start the loop's thread."""
        self.thread.start()

    def submit(self, unit: UnitOfWork) -> None:
        """Run a fetched async job on the loop (callable from any thread)."""
        self.loop.call_soon_threadsafe(self._begin, unit)

    def close(self, timeout: float) -> int:
        """Let running jobs finish within ``timeout`` seconds, cancel the rest (they stay in flight), stop the
        loop; returns how many were cancelled."""
        if not self.thread.is_alive():
            return 0
        finish = asyncio.run_coroutine_threadsafe(self._finish(timeout), self.loop)
        try:
            cancelled = finish.result(timeout + CANCEL_GRACE_SECONDS + 1)
        except concurrent.futures.TimeoutError:
            cancelled = len(self.tasks)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.executor.shutdown(wait=False, cancel_futures=True)
        return cancelled

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def _begin(self, unit: UnitOfWork) -> None:
        task = self.loop.create_task(self._process(unit))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _process(self, unit: UnitOfWork) -> None:
        try:
            async with self.slots:
                if not self.runner.stop.is_set():  # not started before the stop: pushed back at shutdown
                    task = asyncio.current_task()
                    assert task is not None
                    self.started.add(task)
                    try:
                        await self.runner.aprocess(unit)
                    finally:
                        self.started.discard(task)
        except asyncio.CancelledError:
            pass  # cancelled at the shutdown deadline: left in flight
        except BaseException:
            log.exception("the async job loop failed outside a job; the job stays in flight")
        finally:
            self.on_done(unit)

    async def _finish(self, timeout: float) -> int:
        for waiting in self.tasks - self.started:  # never started: nothing to wait for, pushed back with the rest
            waiting.cancel()
        running = set(self.started)
        pending: set[asyncio.Task[None]] = set()
        if running:
            _, pending = await asyncio.wait(running, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=CANCEL_GRACE_SECONDS)
        await config.close_async_redis_client()
        return len(pending)
