"""A real child process started by a test (a worker, a Sidekiq process), with its output in a file."""

from __future__ import annotations

import signal
import subprocess
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
