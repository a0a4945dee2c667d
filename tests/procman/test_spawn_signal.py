"""A child signalled the instant its fork returns, before it has made its own process group: the signal must
still reach it. (Reproduced in CI: an instance exiting at once made procman TERM its sibling while the
sibling was still between ``fork`` and ``setsid``; ``killpg`` found no group, the TERM was lost, and the
sibling ran until the SIGKILL deadline.)"""

from __future__ import annotations

import io
import os
import signal
import time
from collections.abc import Callable

import pytest

from procman.child import Child
from procman.formation import Instance
from procman.loop import Timer
from procman.output import Output, Style
from procman.procfile import ProcfileEntry

TRIES = 25


class _Clock:
    def time(self) -> float:
        return time.monotonic()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        return Timer(time.monotonic() + delay, callback)


class _NoReaders:
    """The event loop's seam: this test reads nothing, it only signals and reaps."""

    def add_reader(self, fd: int, callback: Callable[[], None]) -> None:
        pass

    def remove_reader(self, fd: int) -> None:
        pass


def _wait(pid: int, seconds: float) -> int | None:
    """The child's wait status, or None if it is still running after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        reaped, status = os.waitpid(pid, os.WNOHANG)
        if reaped:
            return status
        time.sleep(0.005)
    return None


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_a_signal_sent_right_after_the_fork_reaches_the_child(signum: int) -> None:
    entry = ProcfileEntry("b", "sleep 600", 0, 1)
    output = Output(io.BytesIO(), Style(color=False, timestamps=False), ["b.1"], _Clock())  # type: ignore[arg-type]
    missed = 0
    for _ in range(TRIES):
        child = Child(Instance(entry, 1, 5000), dict(os.environ), os.getcwd(), False,
                      output.line_stream("b.1", 0), _NoReaders())
        delivered = child.signal_group(signum)
        status = _wait(child.pid, 3.0)
        if status is None:
            missed += 1
            os.kill(child.pid, signal.SIGKILL)
            os.waitpid(child.pid, 0)
        else:
            assert delivered
            assert os.waitstatus_to_exitcode(status) == -signum
        child.close_output()
    assert missed == 0, f"{missed} of {TRIES} children never got the signal"
