"""A real worker formation for procman's tests: ``workerkit redis`` and N ``workerkit worker -r rolling_jobs``
processes under ``procman start``, and a steady load of ``Tick`` jobs pushed while a test acts on it."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from procman_support import Project, Running, clean_env, free_base_port, wait_for

from procman.control import request
from workerkit import config

HERE = Path(__file__).resolve().parent


class WorkerFormation:
    """Started and ready on construction; ``worker_options`` are more lines for ``[processes.worker]``."""

    def __init__(self, project: Project, workers: int, worker_options: str = "") -> None:
        port = free_base_port()
        project.procfile(f"redis: workerkit redis --port {port} --dir redis-data\n"
                         "worker: workerkit worker -r rolling_jobs -c 2\n")
        project.write("procman.toml", '[processes.redis]\nready = "log:Ready to accept connections"\n'
                                      '[processes.worker]\ndepends_on = ["redis"]\nquiet_signal = "TSTP"\n'
                                      f'ready = "log:workerkit .* starting"\n{worker_options}')
        self.url = f"redis://127.0.0.1:{port}/0"
        env = clean_env(PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
                        WORKERKIT_REDIS_URL=self.url)
        self.env = {key: value for key, value in env.items() if key not in ("REDIS_URL", "WORKERKIT_POLL_INTERVAL")}
        self.running: Running = project.start("--no-color", "-c", f"worker={workers}", "-t", "1", "-p",
                                               str(port + 100), env=self.env)
        self._socket = project.root / ".procman.sock"
        wait_for(lambda: self._ready(workers),
                 what="Redis and the workers to be ready", detail=lambda: self.running.output)
        self.pushed = 0

    def _ready(self, workers: int) -> bool:
        return self.running.output.count("is ready") == 1 + workers or self.running.process.poll() is not None

    def workers(self) -> list[dict[str, object]]:
        """The worker instances as ``procman status`` reports them."""
        return [p for p in request(self._socket, "status", [])["processes"] if p["name"] != "redis.1"]

    @contextmanager
    def load(self, sample: Callable[[], None] | None = None) -> Iterator[None]:
        """Push a job every 10 ms (and call ``sample`` every 20 ms) until the block ends; then wait until every
        pushed job has run."""
        config.reset()
        config.configure(redis_url=self.url)
        from rolling_jobs import Tick

        stop = threading.Event()

        def push() -> None:
            while not stop.wait(0.01):
                Tick.perform_async(self.pushed)
                self.pushed += 1

        def sampling() -> None:
            while sample is not None and not stop.wait(0.02):
                sample()

        threads = [threading.Thread(target=push), threading.Thread(target=sampling)]
        for thread in threads:
            thread.start()
        try:
            wait_for(lambda: len(self.runs()) > 20, what="jobs to run")
            yield
        finally:
            stop.set()
            for thread in threads:
                thread.join(10)
            config.reset()
        wait_for(lambda: len(self.runs()) >= self.pushed, what="every job to run",
                 detail=lambda: f"{len(self.runs())} of {self.pushed}")

    def runs(self) -> list[tuple[int, int]]:
        """Every finished run: (job number, worker pid)."""
        client = redis.Redis.from_url(self.url)
        try:
            return [(int(n), int(pid)) for n, pid in (entry.decode().split(":")
                                                      for entry in client.lrange("rolling:runs", 0, -1))]
        finally:
            client.close()
