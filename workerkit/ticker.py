"""One loop for every background thread of a worker (heartbeat, orphan sweep, scheduler, watchdog).

A :class:`Ticker` calls its ``tick`` function in its own daemon thread, waits as long as the tick asks
(a fixed interval, or whatever the tick returns), and survives every error through one :class:`Backoff`:
Redis away, or a bug, never ends the thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from workerkit.connection import Backoff


class Ticker:
    """Calls ``tick()`` every ``interval`` seconds (when it returns None), or after the number of seconds it
    returns (the scheduler's next due job). A tick that returns anything else is a programming error."""

    def __init__(
        self, name: str, tick: Callable[[], float | None], interval: float, *, first_delay: float = 0.0,
        stop: threading.Event | None = None,
    ) -> None:
        self.name = name
        self.tick = tick
        self.interval = interval
        self.first_delay = first_delay
        self.stop = stop if stop is not None else threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        """Start ticking in the background."""
        self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop ticking and wait up to ``timeout`` seconds for the thread."""
        self.stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        backoff = Backoff(self.name)
        delay = self.first_delay
        while not self.stop.wait(delay):
            try:
                asked = self.tick()
            except Exception as exc:
                backoff.failed(exc, self.stop)
                delay = 0.0
            else:
                backoff.succeeded()
                delay = self.interval if asked is None else max(0.0, asked)
