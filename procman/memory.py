"""A memory ceiling per process: the resident memory of an instance's whole process tree, checked now and then.

Only a formation with ``max_memory`` on some process imports psutil and arms the check, so without it
``procman start`` costs nothing more. Every :data:`CHECK_INTERVAL` seconds each watched instance's tree
(its leader and every descendant) is measured; :data:`CHECKS_ABOVE` checks in a row above the ceiling
mean it *stays* above, and the supervisor restarts it gracefully.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable
from typing import Any

from procman.loop import Clock, Timer

CHECK_INTERVAL = 1.0
CHECKS_ABOVE = 3
MIB = 1 << 20
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "KB": 1 << 10, "KIB": 1 << 10, "M": MIB, "MB": MIB, "MIB": MIB,
          "G": 1 << 30, "GB": 1 << 30, "GIB": 1 << 30}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*\Z")


def parse_size(value: Any) -> int:
    """``"512MB"``, ``"1.5G"``, ``"800KiB"`` or a number of bytes -> bytes (K, M, G are powers of 1024)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = _SIZE.match(value) if isinstance(value, str) else None
    if match is None or match.group(2).upper() not in _UNITS or float(match.group(1)) <= 0:
        raise ValueError(f"expected a size such as \"512MB\" or \"2GB\" (KB, MB, GB: powers of 1024), got {value!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def describe_size(size: int) -> str:
    """Bytes as ``512 MiB``."""
    return f"{size / MIB:.0f} MiB"


def tree_rss(pid: int) -> int:
    """The resident memory of ``pid`` and all its descendants, in bytes (0 when it is gone)."""
    import psutil

    try:
        root = psutil.Process(pid)
        members = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for member in members:
        try:
            total += member.memory_info().rss
        except psutil.Error:
            continue
    return total


Target = tuple[Hashable, int, int]
"""What to watch: a key the caller knows the instance by, its pid, its ceiling in bytes."""


class MemoryWatch:
    """Measures the targets every :data:`CHECK_INTERVAL` seconds; calls ``over(key, rss)`` for one that stayed
    above its ceiling for :data:`CHECKS_ABOVE` checks in a row (then counts again from zero)."""

    def __init__(self, clock: Clock, targets: Callable[[], Iterable[Target]],
                 over: Callable[[Any, int], None]) -> None:
        self._clock = clock
        self._targets = targets
        self._over = over
        self._above: dict[tuple[Hashable, int], int] = {}
        self._timer: Timer | None = None

    def start(self) -> None:
        """Begin checking."""
        self._timer = self._clock.call_later(CHECK_INTERVAL, self._check)

    def stop(self) -> None:
        """Stop checking."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        above: dict[tuple[Hashable, int], int] = {}
        for key, pid, ceiling in self._targets():
            rss = tree_rss(pid)
            if rss <= ceiling:
                continue
            count = self._above.get((key, pid), 0) + 1
            if count >= CHECKS_ABOVE:
                self._over(key, rss)
            else:
                above[key, pid] = count
        self._above = above
        self.start()
