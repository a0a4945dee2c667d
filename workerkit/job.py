"""The user's side: the :class:`Job` base class and the :func:`job` decorator.

::

    class ProjectCleanup(Job):
        queue = "default"
        def perform(self, project_id: int) -> None: ...

    ProjectCleanup.perform_async(42)
    ProjectCleanup.perform_in(600, 42)
    ProjectCleanup.set(queue="critical").perform_at(tomorrow, 42)

    @job(queue="mailers", retry=5)
    def welcome_email(user_id: int) -> None: ...

    welcome_email.delay(7)

A job class registers itself under its dotted path ``module.ClassName`` (and ``name`` when set); workers
run only registered jobs.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, ClassVar, Generic, ParamSpec, TypeVar, overload

from workerkit import registry
from workerkit.client import build_payload, epoch, push_payload, seconds
from workerkit.payload import Payload
from workerkit.protocols import Backoff
from workerkit.timelimit import check_timeout

P = ParamSpec("P")
R = TypeVar("R")

_OPTION_NAMES = ("queue", "retry", "tags", "timeout")


def _option_fields(options: dict[str, Any]) -> dict[str, Any]:
    unknown = set(options) - set(_OPTION_NAMES)
    if unknown:
        raise TypeError(f"unknown job option(s): {', '.join(sorted(unknown))} (known: {', '.join(_OPTION_NAMES)})")
    check_timeout(options.get("timeout"))
    return options


def refuse_async(function: object, what: str) -> None:
    """TypeError when ``function`` is ``async def``: workerkit's worker would never await it."""
    if inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function):
        raise TypeError(f"{what} is async def: workerkit does not run async def jobs yet; "
                        "make it a plain def (call asyncio.run inside it if it must await)")


class Job:
    """Base class of a background job: subclass it, define ``perform``, push with ``perform_async``.

    Class options: ``queue`` (default "default"), ``retry`` (True = 25 retries, False = none, or a count),
    ``backoff`` (a function ``(retry_count, exc) -> seconds``), ``tags`` (shown in the dashboard),
    ``timeout`` (seconds a run may take before the worker interrupts it with ``workerkit.JobTimeout``;
    None = no limit) and ``name`` (an alias to register besides the dotted path).
    """

    queue: ClassVar[str] = "default"
    retry: ClassVar[bool | int] = True
    backoff: ClassVar[Backoff | None] = None
    tags: ClassVar[list[str] | None] = None
    timeout: ClassVar[float | None] = None
    name: ClassVar[str | None] = None

    jid: str
    """The running job's id (set by the worker before ``perform``)."""
    payload: Payload
    """The running job's payload (set by the worker before ``perform``)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        refuse_async(cls.__dict__.get("perform"), f"{cls.__qualname__}.perform")
        check_timeout(cls.timeout, f"{cls.__qualname__}.timeout")
        registry.register(cls.job_name(), cls)
        if cls.__dict__.get("name"):
            registry.register(str(cls.name), cls)

    @classmethod
    def job_name(cls) -> str:
        """The dotted path the payload names this class by."""
        return f"{cls.__module__}.{cls.__qualname__}"

    def perform(self, *args: Any) -> None:
        """The job's work; override it."""
        raise NotImplementedError(f"{type(self).__name__} does not define perform()")

    @classmethod
    def retries_exhausted(cls, payload: Payload, exc: BaseException | None) -> None:
        """Called once the job has failed its last retry, before it goes to the dead set; override it."""

    @classmethod
    def set(cls, **options: Any) -> JobSetter:
        """Override options for one push: ``Job.set(queue="critical").perform_async(...)``."""
        return JobSetter(cls, _option_fields(options))

    @classmethod
    def perform_async(cls, *args: Any) -> str:
        """Push the job to run as soon as a worker is free; return its jid."""
        return JobSetter(cls, {}).perform_async(*args)

    @classmethod
    def perform_in(cls, interval: float | timedelta, *args: Any) -> str:
        """Schedule the job to run after ``interval`` (seconds or timedelta); return its jid."""
        return JobSetter(cls, {}).perform_in(interval, *args)

    @classmethod
    def perform_at(cls, when: float | datetime, *args: Any) -> str:
        """Schedule the job to run at ``when`` (epoch seconds or datetime); return its jid."""
        return JobSetter(cls, {}).perform_at(when, *args)

    delay = perform_async
    delay_for = perform_in
    delay_until = perform_at


class JobSetter:
    """A job class with options overridden for the pushes made through it."""

    def __init__(self, job_class: type[Job], options: dict[str, Any]) -> None:
        self.job_class = job_class
        self.options = options

    def payload(self, args: tuple[Any, ...]) -> Payload:
        """A new payload for ``args`` with the class's options and the overrides; TypeError naming the job
        when ``args`` do not fit its ``perform``."""
        payload = build_payload(self.job_class, args, self.options)  # JSON errors first
        registry.bind_arguments(self.job_class, [args])
        return payload

    def perform_async(self, *args: Any) -> str:
        """Push now; return the jid."""
        payload = self.payload(args)
        push_payload(payload)
        jid: str = payload["jid"]
        return jid

    def perform_in(self, interval: float | timedelta, *args: Any) -> str:
        """Push to run after ``interval``; return the jid."""
        return self.perform_at(time.time() + seconds(interval), *args)

    def perform_at(self, when: float | datetime, *args: Any) -> str:
        """Push to run at ``when``; return the jid."""
        payload = self.payload(args)
        push_payload(payload, epoch(when))
        jid: str = payload["jid"]
        return jid

    delay = perform_async
    delay_for = perform_in
    delay_until = perform_at


class JobFunction(Generic[P, R]):
    """A function made into a job by :func:`job`: call it to run now, ``delay`` to run in a worker."""

    def __init__(self, func: Callable[P, R], job_class: type[Job]) -> None:
        self.func = func
        self.job_class = job_class
        functools.update_wrapper(self, func)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.func(*args, **kwargs)

    def delay(self, *args: Any) -> str:
        """Push to run as soon as a worker is free; return the jid."""
        return self.job_class.perform_async(*args)

    def delay_for(self, interval: float | timedelta, *args: Any) -> str:
        """Push to run after ``interval`` (seconds or timedelta); return the jid."""
        return self.job_class.perform_in(interval, *args)

    def delay_until(self, when: float | datetime, *args: Any) -> str:
        """Push to run at ``when`` (epoch seconds or datetime); return the jid."""
        return self.job_class.perform_at(when, *args)

    def set(self, **options: Any) -> JobSetter:
        """Override options for one push: ``fn.set(queue="low").perform_async(...)``."""
        return self.job_class.set(**options)

    perform_async = delay
    perform_in = delay_for
    perform_at = delay_until


def _job_class_for(func: Callable[..., Any], options: dict[str, Any]) -> type[Job]:
    def perform(self: Job, *args: Any) -> Any:
        return func(*args)  # returned, so that the runner sees an awaitable and fails the job

    try:  # pushes bind their arguments to this (registry.bind_arguments)
        own = inspect.signature(func)
    except (TypeError, ValueError):  # Python cannot tell: arguments stay unchecked
        own = None
    if own is not None:
        self_parameter = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
        perform.__signature__ = own.replace(  # type: ignore[attr-defined]
            parameters=[self_parameter, *own.parameters.values()])

    attributes: dict[str, Any] = {
        "__module__": func.__module__,
        "__qualname__": func.__qualname__,
        "__doc__": func.__doc__,
        "perform": perform,
    }
    for option, value in options.items():
        attributes[option] = staticmethod(value) if option == "backoff" else value
    return type(func.__name__, (Job,), attributes)


@overload
def job(func: Callable[P, R], /) -> JobFunction[P, R]: ...
@overload
def job(
    *,
    queue: str = ...,
    retry: bool | int = ...,
    backoff: Backoff | None = ...,
    tags: list[str] | None = ...,
    timeout: float | None = ...,
    name: str | None = ...,
) -> Callable[[Callable[P, R]], JobFunction[P, R]]: ...
def job(
    func: Callable[P, R] | None = None, /, **options: Any
) -> JobFunction[P, R] | Callable[[Callable[P, R]], JobFunction[P, R]]:
    """Make a function a job, registered under its dotted path ``module.function``.

    Use bare (``@job``) or with options
    (``@job(queue="mailers", retry=5, backoff=..., tags=[...], timeout=30, name=...)``).
    """
    unknown = set(options) - {"queue", "retry", "backoff", "tags", "timeout", "name"}
    if unknown:
        raise TypeError(f"unknown job option(s): {', '.join(sorted(unknown))}")

    def decorate(function: Callable[P, R]) -> JobFunction[P, R]:
        refuse_async(function, f"@job {function.__module__}.{function.__qualname__}")
        return JobFunction(function, _job_class_for(function, options))

    return decorate(func) if func is not None else decorate
