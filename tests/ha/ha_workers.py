"""``start_worker``: real ``workerkit worker -r ha_jobs`` processes against an HA group's URL."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from process_support import ChildProcess

HERE = Path(__file__).parent


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., ChildProcess]]:
    """``start_worker(url, *args, env=None)``: start a worker of ``ha_jobs`` with a 0.5 s heartbeat and a 1 s
    sweep; every worker still running at the end is killed."""
    started: list[ChildProcess] = []

    def start(url: str, *args: str, env: dict[str, str] | None = None) -> ChildProcess:
        log = tmp_path / f"worker-{len(started)}.log"
        environment = {
            **{name: value for name, value in os.environ.items() if not name.startswith("WORKERKIT_")},
            "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
            "WORKERKIT_REDIS_URL": url, "WORKERKIT_HEARTBEAT_INTERVAL": "0.5", "WORKERKIT_SWEEP_INTERVAL": "1",
            **(env or {}),
        }
        with log.open("wb") as out:
            popen = subprocess.Popen(["workerkit", "worker", "-r", "ha_jobs", *args], env=environment, stdout=out,
                                     stderr=subprocess.STDOUT)
        started.append(ChildProcess(popen, log))
        return started[-1]

    yield start
    for process in started:
        if process.popen.poll() is None:
            process.popen.kill()
            process.popen.wait(10)
