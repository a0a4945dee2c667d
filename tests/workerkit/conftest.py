"""Fixtures for the workerkit tests: workerkit configured against a real server, real worker processes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from process_support import ChildProcess

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))


@pytest.fixture
def start_worker(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., ChildProcess]]:
    """Start ``workerkit worker -r wk_jobs ARGS``; every worker still running at the end is killed."""
    started: list[ChildProcess] = []

    def start(*args: str, env: dict[str, str] | None = None, url: str | None = None) -> ChildProcess:
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
        process = ChildProcess(popen, log)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.popen.poll() is None:
            process.popen.kill()
            process.popen.wait(10)
