"""A rolling restart: the chosen instances restarted one at a time, each only once the one before is ready.

The supervisor does the restarting (quiet signal, stop signal, SIGKILL after the timeouts, then the new
process and its readiness check); this keeps the order and says how it went.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")


class RollingRestart(Generic[Item]):
    """Restarts ``items`` one after the other: ``restart(item)`` begins one, ``ready(item)`` moves on; ``done()``
    is called once it has finished or stopped."""

    def __init__(self, items: Sequence[Item], label: Callable[[Item], str], restart: Callable[[Item], None],
                 say: Callable[[str], None], done: Callable[[], None] = lambda: None) -> None:
        self._waiting = deque(items)
        self._label = label
        self._restart = restart
        self._say = say
        self._on_done = done
        self._done: list[Item] = []
        self.current: Item | None = None

    @property
    def finished(self) -> bool:
        """Whether nothing is left to restart or to wait for."""
        return self.current is None and not self._waiting

    def labels(self) -> str:
        """The instances still to restart, the current one first."""
        items = [self.current, *self._waiting] if self.current is not None else list(self._waiting)
        return ", ".join(self._label(item) for item in items)

    def next(self) -> None:
        """Restart the next instance, or say that all are done."""
        if self.current is not None:
            self._done.append(self.current)
        if not self._waiting:
            self.current = None
            self._say(f"rolling restart done: {', '.join(self._label(item) for item in self._done)}")
            self._on_done()
            return
        self.current = self._waiting.popleft()
        self._restart(self.current)

    def ready(self, item: Item) -> None:
        """``item`` runs again (its new process is ready): go on with the next one."""
        if item is self.current:
            self.next()

    def abort(self, item: Item, why: str) -> None:
        """``item`` failed to come back: stop here, leaving the rest as they are."""
        if item is not self.current:
            return
        rest = ", ".join(self._label(other) for other in self._waiting)
        self._say(f"rolling restart stopped: {why}" + (f"; not restarted: {rest}" if rest else ""))
        self.current = None
        self._waiting.clear()
        self._on_done()
