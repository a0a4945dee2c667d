"""A process group number is reused by the kernel once the group is empty: procman and its guardian must then
leave the new owner alone. The tests make the reuse happen for real: once a group that outlived its leader
is empty, a new session leader is started with exactly that pid (``/proc/sys/kernel/ns_last_pid``, root
only), then procman is stopped or SIGKILLed."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from procman_support import wait_for

NS_LAST_PID = Path("/proc/sys/kernel/ns_last_pid")
pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not NS_LAST_PID.exists(),
                                reason="choosing a pid needs root and /proc/sys/kernel/ns_last_pid")


def _occupy(pid: int) -> subprocess.Popen[bytes]:
    """A stranger: ``setsid sleep`` started with exactly ``pid``, so it leads a group of that number."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # other processes on the machine may take the pid first: try again
        if psutil.pid_exists(pid):  # one holds it now (another suite's, side by side): wait until it is gone
            time.sleep(0.01)
            continue
        NS_LAST_PID.write_text(str(pid - 1))
        stranger = subprocess.Popen(["setsid", "sleep", "600"], stdin=subprocess.DEVNULL)
        if stranger.pid == pid:
            wait_for(lambda: _pgid(pid) == pid, what="the stranger to lead its own group")
            return stranger
        stranger.kill()
        stranger.wait()
    if psutil.pid_exists(pid):  # a process forked elsewhere right after ns_last_pid was set took it, for long
        pytest.skip(f"pid {pid} stayed taken by another process of the machine: no reuse to stage")
    pytest.fail(f"could not start a process with pid {pid}")


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _guardian(procman: int, leaders: list[int]) -> psutil.Process:
    """procman's guardian: its child that leads a group of its own and is none of the instances."""
    found = [child for child in psutil.Process(procman).children()
             if child.pid not in leaders and _pgid(child.pid) == child.pid]
    assert len(found) == 1, found
    return found[0]


@pytest.fixture
def strangers() -> Iterator[list[subprocess.Popen[bytes]]]:
    """The strangers a test starts, killed at its end."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for stranger in started:
        stranger.kill()
        stranger.wait()


def _start_with_a_lingering_group(project, strangers):  # type: ignore[no-untyped-def]
    """``leader.1``'s shell exits at once, leaving its group to a ``sleep 1`` that procman reaps later; once the
    group is empty, a stranger takes its number."""
    project.procfile("leader: sleep 1 & echo leader out\nweb: echo web up; sleep 600\n")
    running = project.start("--no-color", "--can-die", "leader")
    running.wait_for("| web up")
    running.wait_for("leader.1 exited with code 0")
    leaders = [int(pid) for pid in re.findall(r"started with pid (\d+)", running.output)]
    leader = leaders[0]
    wait_for(lambda: _pgid(leader) is None and not any(_pgid(p.pid) == leader for p in psutil.process_iter()),
             what="the lingering group to empty")
    strangers.append(_occupy(leader))
    return running, leaders, strangers[-1]


def _left_alone(stranger: subprocess.Popen[bytes]) -> bool:
    """Whether the stranger is still alive (a signal sent to it would show within a second)."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        stranger.wait(1)
    return stranger.poll() is None


def test_shutdown_does_not_signal_a_reused_group_number(project, strangers) -> None:
    running, _, stranger = _start_with_a_lingering_group(project, strangers)
    running.signal(signal.SIGTERM)
    assert running.wait() == 143
    assert _left_alone(stranger), "procman signalled a group that is no longer its own"


def test_guardian_does_not_kill_a_reused_group_number(project, strangers) -> None:
    running, leaders, stranger = _start_with_a_lingering_group(project, strangers)
    guardian = _guardian(running.process.pid, leaders)
    running.signal(signal.SIGKILL)
    running.wait()
    guardian.wait(30)
    assert _left_alone(stranger), "the guardian killed a group that is no longer procman's"
