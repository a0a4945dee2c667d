"""Shared by the job benchmarks: the peers (RQ, Dramatiq, Celery, arq from PyPI into their own venv, Sidekiq 6.4
from Debian's ruby-sidekiq), worker process commands, and small measuring helpers.

Peers are never project dependencies: ``peer_python()`` creates ``build/bench-venv`` (git-ignored) and pip-installs them
there the first time; ``sidekiq_command()`` runs ``apt-get install -y ruby-sidekiq`` when ``sidekiq`` is
missing (root only).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
PEERS = Path(__file__).resolve().parent / "jobs_peers"
VENV = ROOT / "build" / "bench-venv"
PEER_PACKAGES = ["rq", "dramatiq[redis]", "celery[redis]", "hiredis"]
ARQ_VENV = ROOT / "build" / "bench-venv-arq"
"""arq pins redis-py below 6, which the others' pins cannot share: it gets a venv of its own."""


def peer_python(venv: Path = VENV, packages: tuple[str, ...] = tuple(PEER_PACKAGES),
                modules: str = "rq, dramatiq, celery") -> Path | None:
    """The Python of a peers' venv (created and filled on first use), or None if pip failed."""
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    ready = subprocess.run([str(python), "-c", f"import {modules}"], capture_output=True).returncode == 0
    if not ready:
        install = [str(python), "-m", "pip", "install", "-q", *packages]
        result = subprocess.run(install, capture_output=True, text=True)
        if result.returncode != 0:
            print(f"python peers unavailable: {result.stderr.strip()[-300:]}", file=sys.stderr)
            return None
    return python


def arq_python() -> Path | None:
    """The Python of arq's own venv (see :data:`ARQ_VENV`)."""
    return peer_python(ARQ_VENV, ("arq",), "arq")


def peer_versions(python: Path) -> str:
    """The peers in ``python``'s venv with their versions: ``rq 3.0.0, dramatiq 2.2.1, celery 5.7.0``."""
    code = (
        "import importlib.metadata as m\n"
        "installed = {d.metadata['Name'].lower(): d.version for d in m.distributions()}\n"
        "print(', '.join(f'{p} {installed[p]}' for p in ('rq', 'dramatiq', 'celery', 'arq') if p in installed))"
    )
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True).stdout.strip()


def sidekiq_command() -> str | None:
    """Debian's ``sidekiq`` executable (ruby-sidekiq, 6.4 on Debian 12)."""
    if shutil.which("sidekiq") is None and os.geteuid() == 0:
        install = ["apt-get", "install", "-y", "-q", "ruby-sidekiq"]
        if subprocess.run(install, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], capture_output=True)
            subprocess.run(install, capture_output=True)
    return shutil.which("sidekiq")


def sidekiq_version() -> str:
    """Sidekiq's version string."""
    return subprocess.run(["ruby", "-e", 'require "sidekiq"; print Sidekiq::VERSION'], capture_output=True,
                          text=True).stdout


@dataclass
class Peer:
    """How to start one worker process of a runtime against ``url``."""

    name: str
    command: Callable[[str], list[str]]
    env: Callable[[str], dict[str, str]]

    def start(self, url: str, count: int) -> list[subprocess.Popen[bytes]]:
        """Start ``count`` worker processes, output discarded."""
        return [
            subprocess.Popen(self.command(url), env={**os.environ, **self.env(url)}, cwd=PEERS,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            for _ in range(count)
        ]


def stop(processes: list[subprocess.Popen[bytes]], timeout: float = 30.0) -> None:
    """TERM every process group, then KILL what is left after ``timeout``."""
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


QUIET = {"WORKERKIT_LOG_LEVEL": "warning"}
"""workerkit's environment with its per-job log lines off (the ``quiet`` logging configuration)."""


def log_env(logs: str) -> dict[str, str]:
    """workerkit's environment for a logging configuration: ``quiet`` (per-job lines off) or ``default``."""
    return QUIET if logs == "quiet" else {}


def workerkit_peer(concurrency: int = 10, *, name: str = "workerkit", script: Path | None = None,
                   env: dict[str, str] | None = None, options: tuple[str, ...] = ()) -> Peer:
    """``workerkit worker -r noop_workerkit -c N [OPTIONS]``: this installation's, or the ``workerkit``
    executable ``script`` of another (an older commit in its own venv), with ``env`` added (e.g. a log level)."""
    command = script or Path(sys.executable).with_name("workerkit")
    extra = env or {}
    return Peer(
        name,
        lambda url: [str(command), "worker", "-r", "noop_workerkit", "-c", str(concurrency), *options],
        lambda url: {"WORKERKIT_REDIS_URL": url, "PYTHONPATH": str(PEERS), **extra},
    )


def sidekiq_peer(sidekiq: str, concurrency: int = 10, *, log_level: str = "") -> Peer:
    """``sidekiq -r ./noop_sidekiq.rb -c N`` (Ruby's default production settings; ``log_level="warn"``
    turns off its per-job lines)."""
    return Peer(
        "sidekiq",
        lambda url: [sidekiq, "-r", "./noop_sidekiq.rb", "-c", str(concurrency), "-e", "production"],
        lambda url: {"REDIS_URL": url, "BENCH_SIDEKIQ_LOG_LEVEL": log_level},
    )


def process_tree(pid: int) -> list[psutil.Process]:
    """The process ``pid`` and every process it started (forked workers, such as Dramatiq's)."""
    process = psutil.Process(pid)
    return [process, *process.children(recursive=True)]


def load_note() -> str:
    """The machine's load average, to print next to the figures."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


def wait_until(condition: Callable[[], bool], timeout: float, poll: float = 0.005) -> float:
    """Poll until ``condition()``; return the perf_counter time it became true (raise after ``timeout``)."""
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError("benchmark condition not reached")
        time.sleep(poll)
    return time.perf_counter()
