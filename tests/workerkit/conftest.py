"""Fixtures for the workerkit tests: workerkit configured against a real server, real worker processes."""

from __future__ import annotations

import os
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from process_support import ChildProcess, Children

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))


@pytest.fixture
def start_worker(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., ChildProcess]]:
    """Start ``workerkit worker -r wk_jobs ARGS``; every worker still running at the end is killed."""
    children = Children(tmp_path)

    def start(*args: str, env: dict[str, str] | None = None, url: str | None = None) -> ChildProcess:
        environment = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
            "WORKERKIT_REDIS_URL": url or redis_url,
            "WORKERKIT_HEARTBEAT_INTERVAL": "0.5",
            **(env or {}),
        }
        return children.start(["workerkit", "worker", "-r", "wk_jobs", *args], environment, "worker")

    yield start
    children.kill_all()


@pytest.fixture
def commands_via_redis_py(monkeypatch: pytest.MonkeyPatch) -> Callable[[redis.Redis], list[str]]:
    """``watch(client)``: from now on, the name of each command ``client`` sends through redis-py's command
    layer (``execute_command``) is appended to the list it returns."""

    def watch(client: redis.Redis) -> list[str]:
        sent: list[str] = []
        real: Any = client.execute_command

        def counting(*args: Any, **options: Any) -> Any:
            sent.append(args[0])
            return real(*args, **options)

        monkeypatch.setattr(client, "execute_command", counting)
        return sent

    return watch


@pytest.fixture
def silent_peer() -> Iterator[str]:
    """A TCP server that accepts connections and never answers: a half-open Redis after a failover."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    stop.set()
    thread.join(5)
    for peer in accepted:
        peer.close()
    server.close()
