"""Fixtures for the workerkit tests: workerkit configured against a real server, real worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from workerkit import config

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))


@pytest.fixture
def wk(redis_url: str, redis_client: redis.Redis) -> Iterator[redis.Redis]:
    """workerkit configured for an empty database; yields a client of it."""
    config.reset()
    config.configure(redis_url=redis_url)
    yield redis_client
    config.reset()


class WorkerProcess:
    """A real ``workerkit worker`` child process with its output in a file."""

    def __init__(self, popen: subprocess.Popen[bytes], log: Path) -> None:
        self.popen = popen
        self.log = log

    def output(self) -> str:
        """Everything the worker printed so far."""
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 30.0) -> int:
        """TERM the worker and return its exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        return self.popen.wait(timeout)


@pytest.fixture
def start_worker(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start ``workerkit worker -r wk_jobs ARGS``; every worker still running at the end is killed."""
    started: list[WorkerProcess] = []

    def start(*args: str, env: dict[str, str] | None = None, url: str | None = None) -> WorkerProcess:
        log = tmp_path / f"worker-{len(started)}.log"
        environment = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
            "WORKERKIT_REDIS_URL": url or redis_url,
            "WORKERKIT_HEARTBEAT_INTERVAL": "0.5",
            **(env or {}),
        }
        with log.open("wb") as out:
            popen = subprocess.Popen(
                ["workerkit", "worker", "-r", "wk_jobs", *args], env=environment, stdout=out, stderr=subprocess.STDOUT
            )
        process = WorkerProcess(popen, log)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.popen.poll() is None:
            process.popen.kill()
            process.popen.wait(10)
