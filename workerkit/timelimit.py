"""Per-job time limits: one watchdog thread per worker process raises :class:`JobTimeout` inside a job's
thread once the job runs past its ``timeout`` (the payload's field, else the job class's ``timeout``, else
the worker's ``--job-timeout``).

The exception is raised with ``PyThreadState_SetAsyncExc``, so it arrives when the job's thread next runs
Python bytecode: a thread blocked in a C call (``time.sleep``, a socket read, a lock) gets it only when that
call returns. The job then fails like any other: retry with backoff, then the dead set. (An ``async def`` job
is cancelled at its limit instead, which also interrupts the await it is in: ``workerkit.runner``.)
"""

from __future__ import annotations

import ctypes
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from workerkit.payload import Payload
from workerkit.ticker import Ticker

T = TypeVar("T")

log = logging.getLogger("workerkit")

CHECK_SECONDS = 0.1
"""How often the watchdog looks for jobs past their limit (a job is interrupted at most this late)."""


class JobTimeout(BaseException):
    """A job ran past its ``timeout``. Raised inside the job's thread by the worker's watchdog.

    A BaseException, like KeyboardInterrupt, so a job's own ``except Exception`` does not swallow it.
    """


JobTimeout.__module__ = "workerkit"  # recorded as error_class "workerkit.JobTimeout", the name users import


def check_timeout(value: Any, what: str = "timeout") -> float | None:
    """``value`` as a number of seconds above 0 (or None); TypeError/ValueError naming ``what`` otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number of seconds or None, not {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{what} must be more than 0 seconds, not {value!r}")
    return float(value)


def overrun_message(limit: float) -> str:
    """What a :class:`JobTimeout` says about a job stopped at its time limit."""
    return f"the job ran longer than its timeout of {limit:g} s"


def job_limit(payload: Payload, default: float | None) -> float | None:
    """The payload's ``timeout`` when it is a valid number of seconds, else ``default``."""
    try:
        return check_timeout(payload.get("timeout")) or default
    except (TypeError, ValueError):
        return default


@dataclass
class _Watched:
    thread_id: int
    deadline: float
    fired: bool = False


def _raise_in(thread_id: int, exception: type[BaseException] | None) -> int:
    """Schedule ``exception`` in the thread (None clears a scheduled one); returns how many threads it reached."""
    target = ctypes.py_object(exception) if exception is not None else None
    return int(ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), target))


class Watchdog:
    """The one thread of a worker process that interrupts jobs running past their time limit."""

    def __init__(self, check_seconds: float = CHECK_SECONDS) -> None:
        self._watched: dict[int, _Watched] = {}
        self._lock = threading.Lock()
        self._ticker = Ticker("watchdog", lambda: self._interrupt_overdue(time.monotonic()), check_seconds,
                              first_delay=check_seconds)

    def start(self) -> None:
        """Start watching in the background."""
        self._ticker.start()

    def close(self) -> None:
        """Stop the watchdog thread (jobs still running are no longer interrupted)."""
        self._ticker.close()

    def run(self, action: Callable[[], T], limit: float | None) -> T:
        """Run ``action`` in this thread and return its value; raise JobTimeout (naming the limit) if it runs
        past ``limit`` seconds.

        The interruption never leaks out: once ``action`` ended, a JobTimeout scheduled but not yet delivered
        is either raised here or cancelled.
        """
        if limit is None:
            return action()
        entry = _Watched(threading.get_ident(), time.monotonic() + limit)
        try:
            with self._lock:
                self._watched[entry.thread_id] = entry
            try:
                return action()
            finally:
                with self._lock:
                    self._watched.pop(entry.thread_id, None)
                if entry.fired:
                    _raise_in(entry.thread_id, None)  # not delivered yet (it would have left this block): cancel it
        except JobTimeout as exc:
            if not entry.fired:
                raise  # the job raised one of its own
            exc.args = (overrun_message(limit),)
            raise  # with the traceback of where the job was when it was interrupted

    def _interrupt_overdue(self, now: float) -> None:
        with self._lock:
            for entry in self._watched.values():
                if not entry.fired and now >= entry.deadline:
                    entry.fired = _raise_in(entry.thread_id, JobTimeout) == 1
