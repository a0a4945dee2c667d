"""The job registry: the only classes a worker will run.

A job class registers itself under its dotted path ``module.ClassName`` (and under an alias when it sets
``name``). The worker looks classes up here and nowhere else, so a payload cannot name arbitrary code.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple, cast

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


def classes() -> list[JobClass]:
    """Every registered job class (once each, whatever its names)."""
    return list({id(job_class): job_class for job_class in _jobs.values()}.values())


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


@functools.lru_cache(maxsize=4096)
def _arity_error(job_class: JobClass, count: int) -> str | None:
    """Why ``count`` positional arguments do not fit the job's ``perform`` (None: they do). Binding by
    position depends on the count alone, so each count is tried once: a push checks in a dict lookup."""
    signature = _perform_signature(job_class)
    if signature is None:
        return None
    try:
        signature.bind(None, *([None] * count))
    except TypeError as exc:
        return str(exc)
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
    checked = cast(JobClass, job_class)
    for args in args_lists:
        error = _arity_error(checked, len(args))
        if error is not None:
            name = options(job).name
            shown = _shown(cast(inspect.Signature, _perform_signature(checked)))  # an error means it has one
            raise TypeError(f"{name}{shown} cannot take the arguments {list(args)!r}: {error}") from None


def positional(job_class: JobClass, args: Sequence[Any], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """``args`` and ``kwargs`` as the positional arguments of the job's ``perform`` (payloads carry a list);
    TypeError naming the job when they do not fit, or name a keyword-only parameter."""
    signature = _perform_signature(job_class)
    if signature is None:
        raise TypeError(f"{job_class.job_name()}: keyword arguments need a signature Python can read; "
                        "pass them by position")
    try:
        bound = signature.bind(None, *args, **kwargs)
    except TypeError as exc:
        raise TypeError(f"{job_class.job_name()}{_shown(signature)} cannot take {list(args)!r} {kwargs!r}: "
                        f"{exc}") from None
    if bound.kwargs:
        raise TypeError(f"{job_class.job_name()}: keyword-only parameter(s) {', '.join(bound.kwargs)} cannot be "
                        "sent (a job's arguments are a JSON list)")
    return bound.args[1:]


def _shown(signature: inspect.Signature) -> inspect.Signature:
    """``signature`` as users wrote it: without ``self`` and the return annotation."""
    return signature.replace(parameters=list(signature.parameters.values())[1:],
                             return_annotation=inspect.Signature.empty)


class JobOptions(NamedTuple):
    """The options a push of one job uses when the push does not override them (a named tuple, not a frozen
    dataclass: one is made for every push, and a frozen dataclass takes six times as long to make)."""

    name: str
    """The class name the payload carries."""
    queue: str = "default"
    retry: bool | int = True
    tags: list[str] | None = None
    timeout: float | None = None
    result_ttl: float | None = None
    unique_for: float | None = None
    unique_until: str = "success"
    unique_args: Callable[[list[Any]], Any] | None = None
    unique_while_retrying: bool = True
    expires_in: float | None = None


def _unique_options(job_class: Any) -> tuple[Any, ...]:
    """The options of uniqueness and expiry (a job class written before them lacks the attributes)."""
    return (getattr(job_class, "unique_for", None), getattr(job_class, "unique_until", "success"),
            getattr(job_class, "unique_args", None), getattr(job_class, "unique_while_retrying", True),
            getattr(job_class, "expires_in", None))


def options(job: object) -> JobOptions:
    """The options of a job class, a ``@job`` function, or a class name (a registered job's options; a foreign
    name's defaults): the one place every push (by class, by name, in bulk, periodic) resolves them."""
    job_class = getattr(job, "job_class", job)
    if isinstance(job_class, str):
        if not job_class:
            raise TypeError("a job class name must not be empty")
        found = get(job_class)
        return JobOptions(job_class) if found is None else JobOptions(
            job_class, found.queue, found.retry, found.tags, found.timeout, found.result_ttl, *_unique_options(found))
    if isinstance(job_class, type) and callable(getattr(job_class, "job_name", None)):
        known = cast(JobClass, job_class)
        return JobOptions(known.job_name(), known.queue, known.retry, known.tags, known.timeout, known.result_ttl,
                          *_unique_options(known))
    raise TypeError(f"{job!r} is not a job class, @job function or job class name")
