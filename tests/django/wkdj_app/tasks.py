"""The test project's Django tasks (``settings.TASKS``: ``workerkit.contrib.django.WorkerkitBackend``)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from workerkit import config
from workerkit.contrib.django.tasks import _PACKAGE

if _PACKAGE == "django.tasks":
    from django.tasks import task
else:
    from django_tasks import task

RELEASE = "wkdj:release"
"""The list :func:`hold` waits on (``BLPOP``) before it returns."""


@task
def add(a: int, b: int, *, scale: int = 1) -> dict[str, int]:
    """The sum, scaled, and the process that computed it."""
    return {"sum": (a + b) * scale, "pid": os.getpid()}


@task(queue_name="mailers")
async def add_later(a: int, b: int) -> list[Any]:
    """An async task: awaited on the worker's event loop; a tuple it returns arrives as a list."""
    await asyncio.sleep(0)
    return (a + b, os.getpid())  # type: ignore[return-value]


@task(takes_context=True)
def which_attempt(context: Any, label: str) -> str:
    """The label and the attempt this run is, from the task's context."""
    return f"{label}: attempt {context.attempt} of {context.task_result.id}"


@task
def hold() -> str:
    """Wait (30 s at most) for an item on :data:`RELEASE`, so a test sees the task running."""
    released = config.redis_client().blpop([RELEASE], timeout=30)
    return "released" if released else "timed out"


@task
def fail(message: str) -> None:
    """Raise ``ValueError(message)``."""
    raise ValueError(message)


@task(backend="retrying")
def fail_and_retry() -> None:
    """Fail on a backend that retries failed tasks once."""
    raise RuntimeError("first attempt fails")


def not_a_task() -> None:
    """A plain function: the worker must refuse to run it when a payload names it."""
