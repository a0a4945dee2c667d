"""Real child processes started by a test (workers, Sidekiq processes, Django commands), each with its output
in a file; :class:`Children` starts them and kills whatever still runs when the test ends."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path


class ChildProcess:
    """A started child process and the file its stdout and stderr go to."""

    def __init__(self, popen: subprocess.Popen[bytes], log: Path) -> None:
        self.popen = popen
        self.log = log

    def output(self) -> str:
        """Everything the process printed so far."""
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 30.0) -> int:
        """TERM the process and return its exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        return self.popen.wait(timeout)


class Children:
    """The child processes one test starts, their logs in ``folder`` (``<name>-<n>.log``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.started: list[ChildProcess] = []

    def start(self, command: list[str], env: Mapping[str, str], name: str, cwd: Path | None = None) -> ChildProcess:
        """Start ``command`` with exactly ``env``, its stdout and stderr in the next log file."""
        log = self.folder / f"{name}-{len(self.started)}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(command, env=dict(env), stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
        self.started.append(ChildProcess(popen, log))
        return self.started[-1]

    def kill_all(self) -> None:
        """SIGKILL and reap every child still running (a fixture's teardown)."""
        for child in self.started:
            if child.popen.poll() is None:
                child.popen.kill()
                child.popen.wait(10)
