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

    @job
    async def fetch_feed(url: str) -> None: ...     # awaited on the worker's event loop

    await fetch_feed.adelay("https://example.com/feed")   # pushing from async code, without blocking

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

from workerkit import cancellation, registry, unique
from workerkit.batch import Batch
from workerkit.client import apush_payload, build_payload, epoch, push_payload, seconds
from workerkit.payload import Payload
from workerkit.protocols import Backoff
from workerkit.timelimit import check_timeout
from workerkit.unique import UniqueArgs

P = ParamSpec("P")
R = TypeVar("R")

_OPTION_NAMES = ("queue", "retry", "tags", "timeout", "result_ttl", "unique_for", "unique_until", "unique_args",
                 "unique_while_retrying", "expires_in")
_PUSH_ONLY_OPTIONS = ("expires_at",)
"""Options of one push (``.set(...)``), never of a class: a moment, not a duration."""


def _option_fields(options: dict[str, Any]) -> dict[str, Any]:
    known = (*_OPTION_NAMES, *_PUSH_ONLY_OPTIONS)
    unknown = set(options) - set(known)
    if unknown:
        raise TypeError(f"unknown job option(s): {', '.join(sorted(unknown))} (known: {', '.join(known)})")
    check_timeout(options.get("timeout"))
    check_timeout(options.get("result_ttl"), "result_ttl")
    check_timeout(options.get("expires_in"), "expires_in")
    if options.get("expires_at") is not None:
        options = {**options, "expires_at": epoch(options["expires_at"])}
    unique.check(options.get("unique_for"), options.get("unique_until", "success"), options.get("unique_args"), "")
    return options


def refuse_async_generator(function: object, what: str) -> None:
    """TypeError when ``function`` is an async generator: a job's work cannot be a stream of values."""
    if inspect.isasyncgenfunction(function) or inspect.isgeneratorfunction(function):
        raise TypeError(f"{what} is a generator function (it yields): a job's perform must do its work "
                        "and return, as a plain def or an async def")


class Job:
    """Base class of a background job: subclass it, define ``perform`` (a plain ``def``, run in a worker thread,
    or an ``async def``, awaited on the worker's event loop), push with ``perform_async`` (or, from async
    code, ``await aperform_async``).

    Class options: ``queue`` (default "default"), ``retry`` (True = 25 retries, False = none, or a count),
    ``backoff`` (a function ``(retry_count, exc) -> seconds``), ``tags`` (shown in the dashboard),
    ``timeout`` (seconds a run may take before the worker interrupts it with ``workerkit.JobTimeout``;
    None = no limit), ``result_ttl`` (seconds to keep the value ``perform`` returns, for
    ``workerkit.result(jid)``; None = keep none), ``unique_for`` (seconds a push refuses duplicates of the
    job: same class, queue and arguments, or what ``unique_args(args)`` returns; ``unique_until`` "success"
    or "start"; ``unique_while_retrying``: see ``workerkit.unique``) and ``name`` (an alias to register
    besides the dotted path). ``expires_in``: seconds after it is due that a job not yet started is dropped
    unrun (``.set(expires_at=...)`` for one push: a moment).
    """

    queue: ClassVar[str] = "default"
    retry: ClassVar[bool | int] = True
    backoff: ClassVar[Backoff | None] = None
    tags: ClassVar[list[str] | None] = None
    timeout: ClassVar[float | None] = None
    result_ttl: ClassVar[float | None] = None
    unique_for: ClassVar[float | None] = None
    unique_until: ClassVar[str] = "success"
    unique_args: ClassVar[UniqueArgs | None] = None
    unique_while_retrying: ClassVar[bool] = True
    expires_in: ClassVar[float | None] = None
    name: ClassVar[str | None] = None

    jid: str
    """The running job's id (set by the worker before ``perform``)."""
    payload: Payload
    """The running job's payload (set by the worker before ``perform``)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        refuse_async_generator(cls.__dict__.get("perform"), f"{cls.__qualname__}.perform")
        check_timeout(cls.timeout, f"{cls.__qualname__}.timeout")
        check_timeout(cls.result_ttl, f"{cls.__qualname__}.result_ttl")
        unique.check(cls.unique_for, cls.unique_until, cls.unique_args, f"{cls.__qualname__}.")
        check_timeout(cls.expires_in, f"{cls.__qualname__}.expires_in")
        registry.register(cls.job_name(), cls)
        if cls.__dict__.get("name"):
            registry.register(str(cls.name), cls)

    @property
    def cancelled(self) -> bool:
        """Whether ``workerkit.cancel`` asked this running job to stop (seen within a heartbeat, 2 s); raise
        ``workerkit.Cancelled`` to stop: the job then ends cancelled, neither failed nor retried."""
        return cancellation.is_requested(self.jid)

    @property
    def batch(self) -> Batch | None:
        """The batch this running job belongs to (``workerkit.batch``), or None: ``with self.batch.jobs():``
        adds more jobs to it."""
        bid = self.payload.get("bid")
        return Batch.find(bid) if isinstance(bid, str) and bid else None

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
    def perform_async(cls, *args: Any, **kwargs: Any) -> str | None:
        """Push the job to run as soon as a worker is free; return its jid."""
        return JobSetter(cls, {}).perform_async(*args, **kwargs)

    @classmethod
    def perform_in(cls, interval: float | timedelta, /, *args: Any, **kwargs: Any) -> str | None:
        """Schedule the job to run after ``interval`` (seconds or timedelta); return its jid."""
        return JobSetter(cls, {}).perform_in(interval, *args, **kwargs)

    @classmethod
    def perform_at(cls, when: float | datetime, /, *args: Any, **kwargs: Any) -> str | None:
        """Schedule the job to run at ``when`` (epoch seconds or datetime); return its jid."""
        return JobSetter(cls, {}).perform_at(when, *args, **kwargs)

    @classmethod
    async def aperform_async(cls, *args: Any, **kwargs: Any) -> str | None:
        """:meth:`perform_async` without blocking the running event loop."""
        return await JobSetter(cls, {}).aperform_async(*args, **kwargs)

    @classmethod
    async def aperform_in(cls, interval: float | timedelta, /, *args: Any, **kwargs: Any) -> str | None:
        """:meth:`perform_in` without blocking the running event loop."""
        return await JobSetter(cls, {}).aperform_in(interval, *args, **kwargs)

    @classmethod
    async def aperform_at(cls, when: float | datetime, /, *args: Any, **kwargs: Any) -> str | None:
        """:meth:`perform_at` without blocking the running event loop."""
        return await JobSetter(cls, {}).aperform_at(when, *args, **kwargs)

    @classmethod
    def perform_async_on_commit(cls, *args: Any, using: str | None = None, **kwargs: Any) -> str:
        """Push once the current Django transaction (of database ``using``) commits; never if it rolls back;
        at once outside a transaction. The arguments are checked now; returns the jid the job will have."""
        return JobSetter(cls, {}).perform_async_on_commit(*args, using=using, **kwargs)

    delay = perform_async
    delay_for = perform_in
    delay_until = perform_at
    adelay = aperform_async
    adelay_for = aperform_in
    adelay_until = aperform_at
    delay_on_commit = perform_async_on_commit


class JobSetter:
    """A job class with options overridden for the pushes made through it."""

    def __init__(self, job_class: type[Job], options: dict[str, Any]) -> None:
        self.job_class = job_class
        self.options = options

    def payload(self, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None) -> Payload:
        """A new payload for ``args`` and ``kwargs`` (sent as the positions they name: a job's arguments are a
        JSON list) with the class's options and the overrides; TypeError naming the job when they do not fit
        its ``perform``."""
        if kwargs:
            args = registry.positional(self.job_class, args, kwargs)
        payload = build_payload(self.job_class, args, self.options)  # JSON errors first
        registry.bind_arguments(self.job_class, [args])
        return payload

    def perform_async(self, *args: Any, **kwargs: Any) -> str | None:
        """Push now; return the jid (None: not pushed, see :func:`workerkit.client.push_payload`)."""
        return push_payload(self.payload(args, kwargs))

    def perform_in(self, interval: float | timedelta, /, *args: Any, **kwargs: Any) -> str | None:
        """Push to run after ``interval``; return the jid."""
        return self.perform_at(time.time() + seconds(interval), *args, **kwargs)

    def perform_at(self, when: float | datetime, /, *args: Any, **kwargs: Any) -> str | None:
        """Push to run at ``when``; return the jid (None: not pushed)."""
        return push_payload(self.payload(args, kwargs), epoch(when))

    async def aperform_async(self, *args: Any, **kwargs: Any) -> str | None:
        """Push now without blocking the running event loop; return the jid (None: not pushed)."""
        return await apush_payload(self.payload(args, kwargs))

    async def aperform_in(self, interval: float | timedelta, /, *args: Any, **kwargs: Any) -> str | None:
        """Push to run after ``interval`` without blocking the running event loop; return the jid."""
        return await self.aperform_at(time.time() + seconds(interval), *args, **kwargs)

    async def aperform_at(self, when: float | datetime, /, *args: Any, **kwargs: Any) -> str | None:
        """Push to run at ``when`` without blocking the running event loop; return the jid (None: not pushed)."""
        return await apush_payload(self.payload(args, kwargs), epoch(when))

    def perform_async_on_commit(self, *args: Any, using: str | None = None, **kwargs: Any) -> str:
        """Push once the current Django transaction (of database ``using``) commits; never if it rolls back;
        at once outside a transaction. The arguments are checked now; returns the jid the job will have."""
        return self.push_on_commit(args, kwargs, using)

    def push_on_commit(self, args: tuple[Any, ...], kwargs: dict[str, Any], using: str | None) -> str:
        """:meth:`perform_async_on_commit` with the arguments as a tuple and a dict."""
        from workerkit.contrib.django.transactions import on_commit_push

        payload = self.payload(args, kwargs)
        on_commit_push(push_payload, payload, using=using)
        jid: str = payload["jid"]
        return jid

    delay = perform_async
    delay_for = perform_in
    delay_until = perform_at
    adelay = aperform_async
    adelay_for = aperform_in
    adelay_until = aperform_at
    delay_on_commit = perform_async_on_commit


class JobFunction(Generic[P, R]):
    """A function made into a job by :func:`job`: call it to run now, ``delay`` to run in a worker.

    The pushes take the function's own arguments and are checked against its signature, by mypy (they are
    typed with its parameters) and at the call; keyword arguments are sent as the positions they name."""

    def __init__(self, func: Callable[P, R], job_class: type[Job]) -> None:
        self.func = func
        self.job_class = job_class
        functools.update_wrapper(self, func)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.func(*args, **kwargs)

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> str | None:
        """Push to run as soon as a worker is free; return the jid."""
        return self.job_class.perform_async(*args, **kwargs)

    def delay_for(self, interval: float | timedelta, /, *args: P.args, **kwargs: P.kwargs) -> str | None:
        """Push to run after ``interval`` (seconds or timedelta); return the jid."""
        return self.job_class.perform_in(interval, *args, **kwargs)

    def delay_until(self, when: float | datetime, /, *args: P.args, **kwargs: P.kwargs) -> str | None:
        """Push to run at ``when`` (epoch seconds or datetime); return the jid."""
        return self.job_class.perform_at(when, *args, **kwargs)

    async def adelay(self, *args: P.args, **kwargs: P.kwargs) -> str | None:
        """:meth:`delay` without blocking the running event loop."""
        return await self.job_class.aperform_async(*args, **kwargs)

    async def adelay_for(self, interval: float | timedelta, /, *args: P.args, **kwargs: P.kwargs) -> str | None:
        """:meth:`delay_for` without blocking the running event loop."""
        return await self.job_class.aperform_in(interval, *args, **kwargs)

    async def adelay_until(self, when: float | datetime, /, *args: P.args, **kwargs: P.kwargs) -> str | None:
        """:meth:`delay_until` without blocking the running event loop."""
        return await self.job_class.aperform_at(when, *args, **kwargs)

    def delay_on_commit(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """Push once the current Django transaction commits (never if it rolls back; at once outside one);
        for another database than the default, ``fn.set().delay_on_commit(..., using="other")``."""
        return JobSetter(self.job_class, {}).push_on_commit(args, kwargs, None)

    def set(self, **options: Any) -> JobSetter:
        """Override options for one push: ``fn.set(queue="low").perform_async(...)``."""
        return self.job_class.set(**options)

    perform_async = delay
    perform_in = delay_for
    perform_at = delay_until
    aperform_async = adelay
    aperform_in = adelay_for
    aperform_at = adelay_until
    perform_async_on_commit = delay_on_commit


def _job_class_for(func: Callable[..., Any], options: dict[str, Any]) -> type[Job]:
    perform: Callable[..., Any]
    if inspect.iscoroutinefunction(func):
        async def perform(self: Job, *args: Any) -> Any:
            return await func(*args)
    else:
        def perform(self: Job, *args: Any) -> Any:
            return func(*args)  # returned: a plain function handing back an awaitable fails the job

    try:  # pushes bind their arguments to this (registry.bind_arguments)
        own = inspect.signature(func)
    except (TypeError, ValueError):  # Python cannot tell: arguments stay unchecked
        own = None
    if own is not None:
        self_parameter = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
        setattr(perform, "__signature__", own.replace(parameters=[self_parameter, *own.parameters.values()]))  # noqa: B010

    attributes: dict[str, Any] = {
        "__module__": func.__module__,
        "__qualname__": func.__qualname__,
        "__doc__": func.__doc__,
        "perform": perform,
    }
    for option, value in options.items():
        attributes[option] = staticmethod(value) if option in ("backoff", "unique_args") else value
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
    result_ttl: float | None = ...,
    unique_for: float | None = ...,
    unique_until: str = ...,
    unique_args: UniqueArgs | None = ...,
    unique_while_retrying: bool = ...,
    expires_in: float | None = ...,
    name: str | None = ...,
) -> Callable[[Callable[P, R]], JobFunction[P, R]]: ...
def job(
    func: Callable[P, R] | None = None, /, **options: Any
) -> JobFunction[P, R] | Callable[[Callable[P, R]], JobFunction[P, R]]:
    """Make a function a job, registered under its dotted path ``module.function``.

    Use bare (``@job``) or with options
    (``@job(queue="mailers", retry=5, backoff=..., tags=[...], timeout=30, result_ttl=3600, name=...)``).
    """
    unknown = set(options) - {*_OPTION_NAMES, "backoff", "name"}
    if unknown:
        raise TypeError(f"unknown job option(s): {', '.join(sorted(unknown))}")

    def decorate(function: Callable[P, R]) -> JobFunction[P, R]:
        if not (inspect.isfunction(function) and isinstance(getattr(function, "__module__", None), str)):
            raise TypeError(f"@job needs a function written with def or async def in a module (a worker finds it "
                            f"by its dotted path), not {function!r}; wrap it: @job def name(...): return it(...)")
        refuse_async_generator(function, f"@job {function.__module__}.{function.__qualname__}")
        return JobFunction(function, _job_class_for(function, options))

    return decorate(func) if func is not None else decorate
