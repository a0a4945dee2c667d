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
import sys
import termios
import time
from collections.abc import Callable
from typing import Protocol

from procman.formation import Instance
from procman.output import LineStream, read_chunk
from procman.procfile import shell_argv

COMMAND_NOT_FOUND = 127
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


def _default_signals() -> None:
    """Back to the default disposition for every signal procman handles, and for SIGPIPE and SIGXFSZ, which
    Python ignores: a pending signal then acts on the child as on any program (as ``subprocess`` does)."""
    for signum in signal.valid_signals():
        if callable(signal.getsignal(signum)) or signum in (signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(signum, signal.SIG_DFL)


def _fork_exec(argv: list[str], env: dict[str, str], cwd: str, stdin: int, output: int, tty: bool) -> int:
    """Fork and exec ``argv`` as the leader of a new session; return its pid without waiting for the exec.

    The child restores default signal dispositions, asks for the parent-death signal (and exits if procman
    died before that took effect), takes the terminal in ``--tty`` mode, and execs. Signals stay blocked
    from before the fork until then, so none reaches procman's handlers in the child. Every other
    descriptor of procman's is close-on-exec. An error before or in ``exec`` is written to the child's
    output and it exits with 127.
    """
    parent = os.getpid()
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        pid = os.fork()
        if pid == 0:  # the child: never returns
            try:
                signal.set_wakeup_fd(-1)
                _default_signals()
                os.setsid()
                if _LIBC is not None:
                    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
                    if os.getppid() != parent:  # procman died before prctl took effect
                        os._exit(1)
                os.dup2(stdin, 0)
                os.dup2(output, 1)
                os.dup2(output, 2)
                if tty:
                    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
                os.chdir(cwd)
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
                os.execve(argv[0], argv, env)
            except OSError as error:
                os.write(2, f"procman: cannot start {argv[0]}: {error.strerror or error}\n".encode())
            finally:
                os._exit(COMMAND_NOT_FOUND)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    return pid


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


class Silent:
    """A command started like an instance whose output is not relayed: discarded (an ``exec:`` readiness
    check), or, with ``capture``, kept in a pipe for :meth:`read_output` once it has exited (an autoscale
    command; it may write up to a pipe's capacity, 64 KiB on Linux)."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: str, capture: bool = False) -> None:
        self.started_at = time.time()
        devnull = os.open(os.devnull, os.O_RDWR)
        self._read_fd: int | None = None
        output = devnull
        if capture:
            self._read_fd, output = os.pipe()
        try:
            self.pid = _fork_exec(argv, env, cwd, devnull, output, tty=False)
        finally:
            os.close(devnull)
            if output != devnull:
                os.close(output)

    @property
    def output_fd(self) -> int | None:
        """The read end of a captured command's output, for a caller that reads it as it comes (and closes it)."""
        return self._read_fd

    def read_output(self) -> bytes:
        """What a captured command wrote (call once, after it exited)."""
        if self._read_fd is None:
            return b""
        os.set_blocking(self._read_fd, False)
        chunks = []
        while (chunk := read_chunk(self._read_fd)):
            chunks.append(chunk)
        os.close(self._read_fd)
        self._read_fd = None
        return b"".join(chunks)

    def signal_group(self, signum: int) -> bool:
        """Signal its process group (while it is unreaped)."""
        return signal_leader(self.pid, signum)

    def drain(self) -> None:
        """Nothing to relay."""

    def close_output(self) -> None:
        """Nothing to close."""


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
            stdin = os.dup(write_fd)
        else:
            read_fd, write_fd = os.pipe()
            stdin = os.open(os.devnull, os.O_RDONLY)
        try:
            self.pid = _fork_exec(shell_argv(instance.command), env, cwd, stdin, write_fd, tty)
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
            os.close(stdin)
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
        """Send ``signum`` to the child's whole process group; False when the group is empty.

        Call it only while the child is unreaped (its pid cannot be reused then): see :func:`signal_leader`."""
        return signal_leader(self.pid, signum)


def signal_leader(pid: int, signum: int) -> bool:
    """Signal the group of ``pid``, an unreaped child spawned by :func:`_fork_exec`; False if nothing is left.

    Right after the fork the child has not yet called ``setsid``, so no group ``pid`` exists: the signal then
    goes to the child itself, where it stays blocked until just before ``exec`` and then acts with its
    default disposition. An unreaped child's pid is never reused, so this cannot reach a stranger.
    """
    for send in (os.killpg, os.kill):
        try:
            send(pid, signum)
        except ProcessLookupError:
            continue
        except PermissionError:
            return False
        return True
    return False
