"""Fixtures for the Sidekiq compatibility tests: workerkit and Debian's Sidekiq 6.4 on one real Redis.

The Ruby side is real: ``ruby/sidekiq_view.rb`` pushes with ``Sidekiq::Client`` and reports what Sidekiq's
API sees, and ``sidekiq -r ruby/worker.rb`` is a real Sidekiq process. Tests that need Ruby skip cleanly
when ``ruby``, the sidekiq gem or the ``sidekiq`` command is missing (CI apt-installs ``ruby-sidekiq``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from process_support import ChildProcess, Children

from workerkit.server import RunningServer, ServerKind, running_server

HERE = Path(__file__).parent
RUBY = HERE / "ruby"
sys.path.insert(0, str(HERE))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One server for these tests (Debian's redis-server when installed, as Sidekiq users run; else the
    embedded Valkey), not one of each kind: the Ruby round trips are the slow part of the suite."""
    wanted = os.environ.get("WORKERKIT_TEST_SERVERS", "embedded,system").split(",")
    kind: ServerKind = "system" if "system" in wanted and shutil.which("redis-server") else "embedded"
    with running_server(Path(tmp_path_factory.mktemp(f"sidekiq-redis-{kind}")), kind=kind) as server:
        yield server


@cache
def sidekiq_gem_missing() -> str | None:
    """Why the Ruby side cannot run here, or None when it can."""
    if shutil.which("ruby") is None:
        return "ruby is not installed"
    probe = subprocess.run(["ruby", "-e", 'require "sidekiq"; require "sidekiq/api"'], capture_output=True, timeout=60)
    if probe.returncode != 0:
        return "the sidekiq gem is not installed (apt-get install ruby-sidekiq)"
    return None


@pytest.fixture
def sidekiq_view(redis_url: str) -> Callable[..., Any]:
    """Run ``ruby/sidekiq_view.rb COMMAND ARGS`` against the test database; return its JSON output."""
    reason = sidekiq_gem_missing()
    if reason:
        pytest.skip(reason)

    def run(command: str, *args: str) -> Any:
        done = subprocess.run(
            ["ruby", str(RUBY / "sidekiq_view.rb"), command, *args],
            env={**os.environ, "REDIS_URL": redis_url}, capture_output=True, text=True, timeout=60,
        )
        assert done.returncode == 0, f"sidekiq_view.rb {command} failed:\n{done.stderr}"
        return json.loads(done.stdout)

    return run


@pytest.fixture
def spawn(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., ChildProcess]]:
    """Start a command with the test database in its environment; whatever still runs at the end is killed."""
    children = Children(tmp_path)

    def start(command: list[str], env: dict[str, str] | None = None) -> ChildProcess:
        environment = {**os.environ, "REDIS_URL": redis_url, "WORKERKIT_REDIS_URL": redis_url, **(env or {})}
        return children.start(command, environment, Path(command[0]).name, cwd=HERE)

    yield start
    children.kill_all()


@pytest.fixture
def start_worker(spawn: Callable[..., ChildProcess]) -> Callable[..., ChildProcess]:
    """Start ``workerkit worker -r sk_jobs ARGS`` with a fast heartbeat and scheduler poll."""

    def start(*args: str) -> ChildProcess:
        env = {
            "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
            "WORKERKIT_HEARTBEAT_INTERVAL": "0.5",
            "WORKERKIT_POLL_INTERVAL": "0.2",
        }
        command = [sys.executable, "-c", "import sys; from workerkit.cli import main; sys.exit(main())"]
        return spawn([*command, "worker", "-r", "sk_jobs", *args], env)

    return start


@pytest.fixture
def start_sidekiq(spawn: Callable[..., ChildProcess], sidekiq_view: Callable[..., Any]) -> Callable[..., ChildProcess]:
    """Start a real ``sidekiq -r ruby/worker.rb -q QUEUE...`` process (2 threads, 5 s shutdown timeout)."""
    sidekiq = shutil.which("sidekiq")
    if sidekiq is None:
        pytest.skip("the sidekiq command is not installed (apt-get install ruby-sidekiq)")

    def start(*queues: str) -> ChildProcess:
        options = [option for queue in queues for option in ("-q", queue)]
        return spawn([sidekiq, "-r", str(RUBY / "worker.rb"), "-c", "2", "-t", "5", *options])

    return start
