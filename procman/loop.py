"""A small event loop: readable file descriptors, timers and signals, on ``selectors``.

procman's supervisor needs only these three, and asyncio costs more to import (about 30 ms) than the rest
of ``procman start`` together. Signals arrive through ``signal.set_wakeup_fd``: their handlers run in the
loop, between other callbacks, never in the middle of one.

:class:`Clock` is what the supervisor and the relay see of time: ``time()`` and ``call_later()``. The loop
is the real one; tests pass a scripted clock and replay histories without sleeping.
"""

from __future__ import annotations

import heapq
import itertools
import os
import selectors
import signal
import time
from collections.abc import Callable
from typing import Protocol

Callback = Callable[[], None]


class Timer:
    """A callback due at ``when`` (the clock's time); ``cancel`` keeps it from running."""

    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callback) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        """Do not run the callback (harmless when it already ran)."""
        self.cancelled = True


class Clock(Protocol):
    """Monotonic time and timers: what the supervisor and the relay need of the loop."""

    def time(self) -> float:
        """Seconds on a monotonic clock."""
        ...

    def call_later(self, delay: float, callback: Callback) -> Timer:
        """Run ``callback`` once, ``delay`` seconds from now."""
        ...


class Loop:
    """The real loop: ``run`` dispatches readable fds, due timers and signals until ``done()`` is true."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._timers: list[tuple[float, int, Timer]] = []
        self._order = itertools.count()
        self._signals: dict[int, Callback] = {}
        self._wakeup, self._wakeup_write = os.pipe()
        os.set_blocking(self._wakeup, False)
        os.set_blocking(self._wakeup_write, False)
        self._selector.register(self._wakeup, selectors.EVENT_READ, self._dispatch_signals)

    def time(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()

    def call_later(self, delay: float, callback: Callback) -> Timer:
        """Run ``callback`` once after ``delay`` seconds."""
        timer = Timer(self.time() + delay, callback)
        heapq.heappush(self._timers, (timer.when, next(self._order), timer))
        return timer

    def add_reader(self, fd: int, callback: Callback) -> None:
        """Call ``callback`` whenever ``fd`` is readable."""
        self._selector.register(fd, selectors.EVENT_READ, callback)

    def remove_reader(self, fd: int) -> None:
        """Stop watching ``fd`` (before closing it)."""
        self._selector.unregister(fd)

    def add_signal_handler(self, signum: int, callback: Callback) -> None:
        """Call ``callback`` in the loop whenever ``signum`` arrives."""
        if not self._signals:
            signal.set_wakeup_fd(self._wakeup_write, warn_on_full_buffer=False)
        self._signals[signum] = callback
        signal.signal(signum, _note_signal)

    def run(self, done: Callable[[], bool]) -> None:
        """Dispatch events until ``done()`` returns true (checked after every round)."""
        while not done():
            self._run_due_timers()
            if done():
                return
            timeout = max(0.0, self._timers[0][0] - self.time()) if self._timers else None
            for key, _ in self._selector.select(timeout):
                key.data()

    def close(self) -> None:
        """Restore the default signal dispositions and release the loop's descriptors."""
        if self._signals:
            signal.set_wakeup_fd(-1)
        for signum in self._signals:
            signal.signal(signum, signal.SIG_DFL)
        self._selector.close()
        os.close(self._wakeup)
        os.close(self._wakeup_write)

    def _run_due_timers(self) -> None:
        now = self.time()
        while self._timers and self._timers[0][0] <= now:
            timer = heapq.heappop(self._timers)[2]
            if not timer.cancelled:
                timer.cancelled = True
                timer.callback()
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)

    def _dispatch_signals(self) -> None:
        try:
            received = os.read(self._wakeup, 4096)
        except BlockingIOError:
            return
        for signum in received:
            handler = self._signals.get(signum)
            if handler is not None:
                handler()


def _note_signal(signum: int, frame: object) -> None:
    """The Python-level handler: nothing to do, the wakeup fd carries the signal into the loop."""
