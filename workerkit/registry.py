"""The job registry: the only classes a worker will run.

A job class registers itself under its dotted path ``module.ClassName`` (and under an alias when it sets
``name``). The worker looks classes up here and nowhere else, so a payload cannot name arbitrary code.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workerkit.job import Job

_jobs: dict[str, type[Job]] = {}
_lock = threading.Lock()


def register(name: str, job_class: type[Job]) -> None:
    """Register ``job_class`` under ``name`` (re-registering a name replaces it, as a module reload does)."""
    with _lock:
        _jobs[name] = job_class


def get(name: str) -> type[Job] | None:
    """The job class registered under ``name``, or None."""
    return _jobs.get(name)


def names() -> list[str]:
    """Every registered name, sorted."""
    return sorted(_jobs)


def unregister(name: str) -> None:
    """Forget ``name`` (tests use this)."""
    with _lock:
        _jobs.pop(name, None)
