"""Autoscaling one process type on a command of your choosing.

With ``-c worker=auto:1..8`` and ``autoscale = "COMMAND"`` on ``worker``, procman runs the command (``/bin/sh
-c``, in the first worker instance's environment) every ``autoscale_interval`` seconds. The last line it
prints is the number of instances wanted; procman keeps the count within the range, adds instances at
once, and removes some only when ``autoscale_cooldown`` seconds have passed since the last change. A
command that fails, prints something else or runs longer than :data:`COMMAND_TIMEOUT` changes nothing
(procman says so, once until the answer changes). The supervisor does the adding and the removing.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Protocol

from procman.formation import AutoRange
from procman.loop import Clock, Timer

COMMAND_TIMEOUT = 30.0


class Captured(Protocol):
    """A running autoscale command."""

    def signal_group(self, signum: int) -> bool:
        """Signal its process group."""
        ...

    def read_output(self) -> bytes:
        """What it wrote (once it has exited)."""
        ...


RunCapture = Callable[[str, Callable[[int], None]], Captured]
"""Start the command; the callback gets its exit code once it is reaped."""


def wanted_count(output: bytes) -> int | None:
    """The number on the last non-empty line of ``output`` (None when it is not a whole number, 0 or more)."""
    lines = [line.strip() for line in output.decode("utf-8", "replace").splitlines() if line.strip()]
    if not lines or not lines[-1].isdigit():
        return None
    return int(lines[-1])


class Autoscaler:
    """Asks the command every ``interval`` seconds and calls ``scale(count, wanted)`` when the count changes."""

    def __init__(
        self, name: str, command: str, scale_range: AutoRange, interval: float, cooldown: float, clock: Clock,
        run: RunCapture, current: Callable[[], int], scale: Callable[[int, int], None], say: Callable[[str], None],
    ) -> None:
        self._name = name
        self._command = command
        self._range = scale_range
        self._interval = interval
        self._cooldown = cooldown
        self._clock = clock
        self._run = run
        self._current = current
        self._scale = scale
        self._say = say
        self._timer: Timer | None = None
        self._running: Captured | None = None
        self._changed_at = float("-inf")
        self._stopped = False
        self._failure: str | None = None

    def start(self) -> None:
        """Ask the command for the first time after one interval."""
        self._timer = self._clock.call_later(self._interval, self._ask)

    def stop(self) -> None:
        """No more asking (procman is stopping); a command still running is killed."""
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._running is not None:
            self._running.signal_group(signal.SIGKILL)
            self._running = None

    def _ask(self) -> None:
        self._timer = None
        running = self._run(self._command, self._answered)
        self._running = running

        def too_slow() -> None:
            if self._running is running:
                self._say(f"autoscale {self._name}: the command ran for {COMMAND_TIMEOUT:g} s; killing it")
                running.signal_group(signal.SIGKILL)

        self._timer = self._clock.call_later(COMMAND_TIMEOUT, too_slow)

    def _answered(self, code: int) -> None:
        running, self._running = self._running, None
        if self._stopped or running is None:
            return
        if self._timer is not None:
            self._timer.cancel()
        output = running.read_output()
        wanted = wanted_count(output) if code == 0 else None
        if wanted is None:
            last = output.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
            failure = (f"autoscale {self._name}: the command exited with code {code} and printed {last[0][:200]!r}, "
                       "not a number of instances; keeping the count")
            if failure != self._failure:
                self._say(failure)
            self._failure = failure
        else:
            self._failure = None
            self._decide(wanted)
        self._timer = self._clock.call_later(self._interval, self._ask)

    def _decide(self, wanted: int) -> None:
        count = min(self._range.high, max(self._range.low, wanted))
        current = self._current()
        now = self._clock.time()
        if count > current or (count < current and now - self._changed_at >= self._cooldown):
            self._changed_at = now
            self._scale(count, wanted)
