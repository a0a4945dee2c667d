"""Polling with a deadline: how every test waits for a condition on real processes and servers."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

DEADLINE = 60.0


def wait_for(
    condition: Callable[[], Any], what: str = "condition", timeout: float = DEADLINE,
    detail: Callable[[], str] | None = None,
) -> Any:
    """Poll ``condition`` until it returns something truthy, and return that; fail the test after ``timeout``
    seconds, naming ``what`` and adding ``detail()`` (a process's output, say) when given."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            message = f"timed out after {timeout:g} s waiting for {what}"
            raise AssertionError(f"{message}\n{detail()}" if detail else message)
        time.sleep(0.05)
    return value
