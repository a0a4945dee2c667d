"""Kill whatever procman leaves behind, even when procman itself is killed with SIGKILL.

A process cannot run code after SIGKILL, so ``start`` forks a small guardian before it spawns anything.
The guardian ignores terminal signals and blocks reading a pipe whose write end only procman holds.
procman writes each child's process group id into the pipe. When procman exits, however it exits, the
kernel closes the pipe; the guardian reads end-of-file and then SIGKILLs every registered group, and every
process still carrying procman's marker variable (``PROCMAN_SUPERVISOR_ID``, inherited by every
descendant, so it also finds daemons that left their group with ``setsid``). After a normal shutdown there
is nothing left to find and the guardian exits at once.
"""

from __future__ import annotations

import contextlib
import os
import signal

import psutil

MARKER_VARIABLE = "PROCMAN_SUPERVISOR_ID"
_SWEEPS = 3


def marked_processes(marker: str) -> list[psutil.Process]:
    """Every live process whose environment carries ``PROCMAN_SUPERVISOR_ID=marker``."""
    found = []
    me = os.getpid()
    for process in psutil.process_iter():
        try:
            if process.pid != me and process.environ().get(MARKER_VARIABLE) == marker:
                found.append(process)
        except (psutil.Error, OSError):
            continue
    return found


def signal_marked(marker: str, signum: int) -> int:
    """Send ``signum`` to every marked process; returns how many were signalled."""
    count = 0
    for process in marked_processes(marker):
        try:
            process.send_signal(signum)
            count += 1
        except psutil.Error:
            continue
    return count


class Guardian:
    """procman's side of the guardian: start it, then register each child's group."""

    def __init__(self, marker: str) -> None:
        read_fd, self._write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the guardian: never returns
            os.close(self._write_fd)
            _guard(read_fd, marker)
        os.close(read_fd)
        self.pid = pid

    def register(self, pgid: int) -> None:
        """Tell the guardian about a new process group to kill if procman dies."""
        self._send(f"+{pgid}\n")

    def unregister(self, pgid: int) -> None:
        """The group is empty: forget it, so its id can be reused by anyone without risk."""
        self._send(f"-{pgid}\n")

    def _send(self, line: str) -> None:
        with contextlib.suppress(OSError):
            os.write(self._write_fd, line.encode())


def _guard(read_fd: int, marker: str) -> None:
    try:
        os.setpgid(0, 0)  # out of the terminal's foreground group: Ctrl-C is procman's business
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGTSTP):
            signal.signal(signum, signal.SIG_IGN)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.closerange(3, read_fd)
        os.closerange(read_fd + 1, 65536)
        groups: set[int] = set()
        pending = b""
        while chunk := os.read(read_fd, 4096):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line[:1] == b"+":
                    groups.add(int(line[1:]))
                else:
                    groups.discard(int(line[1:]))
        for pgid in groups:
            with contextlib.suppress(OSError):
                os.killpg(pgid, signal.SIGKILL)
        for _ in range(_SWEEPS):
            if not signal_marked(marker, signal.SIGKILL):
                break
    finally:
        os._exit(0)
