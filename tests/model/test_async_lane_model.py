"""A model of the async lane (``workerkit.async_lane``), checked after every step: jobs submitted from another
thread, finished in any order, a stop, and the shutdown with its deadline.

Invariants: never more than ``concurrency`` jobs inside ``aprocess`` at once; a job waiting for a place
starts as soon as one frees (no place stays idle while jobs wait); every submitted job is reported done
exactly once, only after it ended or was skipped; after the stop no waiting job starts; ``close`` cancels
exactly the jobs still running at its deadline. The runner stands in for workerkit's: its ``aprocess``
awaits an event the test sets, so the model decides when each job ends.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from typing import Any, cast

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from workerkit.async_lane import AsyncLane


class ScriptedRunner:
    """``aprocess(unit)`` waits until the test lets unit ``unit`` end (or it is cancelled)."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.inside: set[int] = set()
        self.started: list[int] = []
        self.cancelled: set[int] = set()
        self.gates: dict[int, asyncio.Event] = {}

    async def aprocess(self, unit: int) -> None:
        self.inside.add(unit)
        self.started.append(unit)
        gate = self.gates.setdefault(unit, asyncio.Event())
        try:
            await gate.wait()
        except asyncio.CancelledError:
            self.cancelled.add(unit)
            raise
        finally:
            self.inside.discard(unit)


class AsyncLaneModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.runner = ScriptedRunner()
        self.done: Counter[int] = Counter()
        self.concurrency = 3
        self.lane = AsyncLane(cast(Any, self.runner), self.concurrency, lambda unit: self.done.update([unit]))
        self.lane.start()
        self.submitted: list[int] = []
        self.finished: set[int] = set()  # let end by the model
        self.closed = False
        self.expected_cancelled = 0

    def settle(self) -> None:
        """Let the loop run until every ready callback ran (a few passes: a freed place wakes a waiter)."""
        async def passes() -> None:
            for _ in range(10):
                await asyncio.sleep(0)

        asyncio.run_coroutine_threadsafe(passes(), self.lane.loop).result(5)

    @precondition(lambda self: not self.closed)
    @rule(count=st.integers(1, 4))
    def submit(self, count: int) -> None:
        for _ in range(count):
            unit = len(self.submitted)
            self.submitted.append(unit)
            self.lane.submit(cast(Any, unit))
        self.settle()

    @precondition(lambda self: not self.closed and self.runner.inside)
    @rule(data=st.data())
    def finish_one(self, data: st.DataObject) -> None:
        unit = data.draw(st.sampled_from(sorted(self.runner.inside)))
        self.finished.add(unit)
        self.lane.loop.call_soon_threadsafe(self.runner.gates[unit].set)
        self.settle()

    @precondition(lambda self: not self.closed and not self.runner.stop.is_set())
    @rule()
    def stop(self) -> None:
        self.runner.stop.set()
        self.settle()

    @precondition(lambda self: not self.closed)
    @rule()
    def close(self) -> None:
        self.runner.stop.set()
        self.settle()
        self.expected_cancelled = len(self.runner.inside)
        self.cancelled_count = self.lane.close(0.05)
        self.closed = True

    @precondition(lambda self: self.closed)
    @rule()
    def lane_stays_closed(self) -> None:
        """Nothing else can happen once the lane is closed: its loop is gone (the worker submits no more)."""
        assert not self.lane.thread.is_alive()

    @invariant()
    def at_most_concurrency_inside(self) -> None:
        assert len(self.runner.inside) <= self.concurrency

    @invariant()
    def no_idle_place_while_jobs_wait(self) -> None:
        if self.closed or self.runner.stop.is_set():
            return
        waiting = len(self.submitted) - len(self.runner.started)
        assert waiting == 0 or len(self.runner.inside) == self.concurrency

    @invariant()
    def each_job_is_done_once_and_only_when_over(self) -> None:
        assert all(count == 1 for count in self.done.values())
        over = set(self.done)
        assert over.isdisjoint(self.runner.inside)
        if not self.closed:  # a job is over when it was let end, or skipped after the stop without starting
            assert over == self.finished | (set(self.submitted) - set(self.runner.started)) & over
            assert self.finished <= over
        else:
            assert over == set(self.submitted)
            assert self.cancelled_count == self.expected_cancelled == len(self.runner.cancelled)

    @invariant()
    def nothing_starts_after_the_stop(self) -> None:
        if self.runner.stop.is_set() and not self.closed:
            self.settle()
            assert self.runner.inside <= set(self.runner.started)

    def teardown(self) -> None:
        if not self.closed:
            self.runner.stop.set()
            self.lane.close(0.05)


AsyncLaneModel.TestCase.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
test_async_lane_model = AsyncLaneModel.TestCase


def test_close_cancels_and_counts_only_the_jobs_that_started() -> None:
    """Found by the model in CI: a job waiting for a place at the deadline was counted as cancelled."""
    machine = AsyncLaneModel()
    machine.submit(4)  # three take the places, one waits
    machine.close()
    machine.each_job_is_done_once_and_only_when_over()
    assert machine.cancelled_count == 3
