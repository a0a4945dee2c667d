"""Helpers for your own test suite: run jobs without Redis or a worker.

::

    from workerkit import testing

    def test_signup_sends_welcome_email():
        with testing.fake() as jobs:
            signup("ada@example.com")
            assert [j["args"] for j in jobs.jobs_for(welcome_email)] == [[1]]
            jobs.drain()              # runs them (and any job they push) in this thread

    def test_signup_inline():
        with testing.inline():        # every push runs the job at once, in this thread
            signup("ada@example.com")

Payloads go through a JSON round trip first, exactly as through Redis, and jobs run through the server
middleware, so what passes here behaves the same in a worker.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from workerkit import client
from workerkit.invoke import execute
from workerkit.job import Job, JobFunction
from workerkit.payload import Payload, encode
from workerkit.runner import lookup


def _class_name(job: type[Job] | JobFunction[Any, Any] | str) -> str:
    if isinstance(job, str):
        return job
    if isinstance(job, JobFunction):
        return job.job_class.job_name()
    return job.job_name()


def run_payload(payload: Payload) -> None:
    """Run one payload in this thread, as a worker would (registered class only, middleware, perform)."""
    faithful: Payload = json.loads(encode(payload))
    execute(lookup(faithful), faithful)


class FakeQueue:
    """The jobs pushed while :func:`fake` is active, in push order."""

    def __init__(self) -> None:
        self.jobs: list[Payload] = []

    def push(self, payload: Payload) -> None:
        """Collect one pushed payload."""
        self.jobs.append(json.loads(encode(payload)))

    def jobs_for(self, job: type[Job] | JobFunction[Any, Any] | str) -> list[Payload]:
        """The collected payloads of one job class (or @job function, or class name)."""
        name = _class_name(job)
        return [payload for payload in self.jobs if payload["class"] == name]

    def clear(self) -> None:
        """Forget every collected job."""
        self.jobs.clear()

    def drain(self) -> int:
        """Run collected jobs in push order (scheduled ones too), including jobs they push; return how many.

        A job's exception propagates to the test, and the jobs after it stay collected.
        """
        ran = 0
        while self.jobs:
            payload = self.jobs.pop(0)
            run_payload(payload)
            ran += 1
        return ran


@contextmanager
def fake() -> Iterator[FakeQueue]:
    """Collect pushed jobs instead of sending them to Redis."""
    queue = FakeQueue()
    previous = client.set_interceptor(queue.push)
    try:
        yield queue
    finally:
        client.set_interceptor(previous)


@contextmanager
def inline() -> Iterator[None]:
    """Run every pushed job at once, in the pushing thread (scheduled ones too, without waiting)."""
    previous = client.set_interceptor(run_payload)
    try:
        yield
    finally:
        client.set_interceptor(previous)
