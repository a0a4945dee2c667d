"""The job registry: the only classes a worker will run.

A job class registers itself under its dotted path ``module.ClassName`` (and under an alias when it sets
``name``). The worker looks classes up here and nowhere else, so a payload cannot name arbitrary code.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

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


@functools.lru_cache(maxsize=1024)
def _perform_signature(job_class: JobClass) -> inspect.Signature | None:
    """``perform``'s signature, self included; None when Python cannot tell it (a builtin, say)."""
    try:
        return inspect.signature(job_class.perform)
    except (TypeError, ValueError):
        return None


def bind_arguments(job: object, args_lists: Iterable[Sequence[Any]]) -> None:
    """TypeError naming the job when one of ``args_lists`` does not fit its ``perform`` (a function job: the
    function); the job and its signature are resolved once for all of them.

    ``job`` is a job class, ``@job`` function or class name; a name no job in this process is registered
    under (a job of another service, a Ruby class) is not checked."""
    target = getattr(job, "job_class", job)
    job_class = get(target) if isinstance(target, str) else target
    if not isinstance(job_class, type) or not hasattr(job_class, "perform"):
        return
    signature = _perform_signature(cast(JobClass, job_class))
    if signature is None:
        return
    for args in args_lists:
        try:
            signature.bind(None, *args)
        except TypeError as exc:
            name = options(job).name
            shown = signature.replace(parameters=list(signature.parameters.values())[1:],
                                      return_annotation=inspect.Signature.empty)
            raise TypeError(f"{name}{shown} cannot take the arguments {list(args)!r}: {exc}") from None


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
