"""The job registry: the only classes a worker will run.

A job class registers itself under its dotted path ``module.ClassName`` (and under an alias when it sets
``name``). The worker looks classes up here and nowhere else, so a payload cannot name arbitrary code.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import cast

from workerkit.protocols import JobClass

_jobs: dict[str, JobClass] = {}
_lock = threading.Lock()


def register(name: str, job_class: JobClass) -> None:
    """Register ``job_class`` under ``name`` (re-registering a name replaces it, as a module reload does)."""
    with _lock:
        _jobs[name] = job_class


def get(name: str) -> JobClass | None:
    """The job class registered under ``name``, or None."""
    return _jobs.get(name)


def names() -> list[str]:
    """Every registered name, sorted."""
    return sorted(_jobs)


def unregister(name: str) -> None:
    """Forget ``name`` (tests use this)."""
    with _lock:
        _jobs.pop(name, None)


@dataclass(frozen=True)
class JobOptions:
    """The options a push of one job uses when the push does not override them."""

    name: str
    """The class name the payload carries."""
    queue: str = "default"
    retry: bool | int = True
    tags: list[str] | None = None
    timeout: float | None = None


def options(job: object) -> JobOptions:
    """The options of a job class, a ``@job`` function, or a class name (a registered job's options; a foreign
    name's defaults): the one place every push (by class, by name, in bulk, periodic) resolves them."""
    job_class = getattr(job, "job_class", job)
    if isinstance(job_class, str):
        if not job_class:
            raise TypeError("a job class name must not be empty")
        found = get(job_class)
        return JobOptions(job_class) if found is None else JobOptions(
            job_class, found.queue, found.retry, found.tags, found.timeout)
    if isinstance(job_class, type) and callable(getattr(job_class, "job_name", None)):
        known = cast(JobClass, job_class)
        return JobOptions(known.job_name(), known.queue, known.retry, known.tags, known.timeout)
    raise TypeError(f"{job!r} is not a job class, @job function or job class name")
