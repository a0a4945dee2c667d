"""One running instance: spawned as the leader of its own process group, its output read, its group signalled.

Every child runs ``/bin/sh -c [exec] COMMAND`` (see :func:`procman.procfile.shell_command`) in a new
session (so a new process group), with stdin from /dev/null and stdout+stderr on one pipe, or on a
pseudo-terminal of its own in ``--tty`` mode. On Linux the child asks the kernel for SIGKILL when procman
dies (``PR_SET_PDEATHSIG``), and procman makes itself a subreaper (``PR_SET_CHILD_SUBREAPER``) so
double-forked daemons are reparented to it.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from typing import Protocol

from procman.formation import Instance
from procman.output import LineStream, read_chunk
from procman.procfile import shell_argv

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_IS_LINUX = sys.platform.startswith("linux")
_LIBC = ctypes.CDLL(None, use_errno=True) if _IS_LINUX else None


def become_subreaper() -> bool:
    """Make orphaned descendants reparent to this process instead of init (Linux only)."""
    return _LIBC is not None and _LIBC.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


class Readers(Protocol):
    """Where a child's output descriptor is watched (the event loop)."""

    def add_reader(self, fd: int, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever ``fd`` is readable."""
        ...

    def remove_reader(self, fd: int) -> None:
        """Stop watching ``fd``."""
        ...


def exit_code_of(status: int) -> int:
    """The shell's convention: the exit code, or 128+N for a process killed by signal N."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _child_setup(parent_pid: int, tty: bool) -> Callable[[], None]:
    """The code run in the forked child before ``exec``: parent-death signal and controlling terminal."""

    def setup() -> None:
        if _LIBC is not None:
            _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != parent_pid:  # procman died before prctl took effect
                os._exit(1)
        if tty:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    return setup


def _open_pty() -> tuple[int, int]:
    """A pseudo-terminal pair whose output is not CRLF-translated (lines stay ``\\n``-terminated)."""
    master, slave = os.openpty()
    attributes = termios.tcgetattr(slave)
    attributes[1] &= ~termios.ONLCR
    termios.tcsetattr(slave, termios.TCSANOW, attributes)
    if sys.stdout.isatty():
        size = fcntl.ioctl(sys.stdout.fileno(), termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(slave, termios.TIOCSWINSZ, size)
    return master, slave


class Child:
    """A spawned instance; ``pid`` is also its process group id."""

    def __init__(
        self, instance: Instance, env: dict[str, str], cwd: str, tty: bool, stream: LineStream, readers: Readers
    ) -> None:
        self.instance = instance
        self.stream = stream
        self._readers = readers
        self.started_at = time.time()
        if tty:
            read_fd, write_fd = _open_pty()
            stdin: int = write_fd
        else:
            read_fd, write_fd = os.pipe()
            stdin = subprocess.DEVNULL
        try:
            process = subprocess.Popen(
                shell_argv(instance.command),
                cwd=cwd,
                env=env,
                stdin=stdin,
                stdout=write_fd,
                stderr=write_fd,
                start_new_session=True,
                preexec_fn=_child_setup(os.getpid(), tty),
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        process.returncode = 0  # procman reaps with waitpid(-1); keep Popen from waiting or warning
        self.pid = process.pid
        self._fd: int | None = read_fd
        os.set_blocking(read_fd, False)
        readers.add_reader(read_fd, self._on_readable)

    def _on_readable(self) -> None:
        if self._fd is None:
            return
        chunk = read_chunk(self._fd)
        if chunk:
            self.stream.feed(chunk)
        elif chunk == b"":
            self.close_output()

    def drain(self) -> None:
        """Relay everything the child has written so far (called when it exits, before its exit message)."""
        while self._fd is not None:
            chunk = read_chunk(self._fd)
            if not chunk:
                if chunk == b"":
                    self.close_output()
                break
            self.stream.feed(chunk)
        self.stream.flush()

    def close_output(self) -> None:
        """Stop reading: the output has ended (or procman is done)."""
        if self._fd is None:
            return
        self._readers.remove_reader(self._fd)
        os.close(self._fd)
        self._fd = None
        self.stream.flush()

    def signal_group(self, signum: int) -> bool:
        """Send ``signum`` to the child's whole process group; False when the group is empty."""
        try:
            os.killpg(self.pid, signum)
        except (ProcessLookupError, PermissionError):
            return False
        return True
