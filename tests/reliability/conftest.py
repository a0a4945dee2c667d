"""Fixtures for the reliability suite: the shared kit in bench/ (the long versions run the same code at
scale), a server of its own per test (tests here kill, restart and pause it), and workerkit configured.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from workerkit import config  # noqa: E402
from workerkit.server import RunningServer, running_server  # noqa: E402


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[RunningServer]:
    """A server for this test alone (redis-server when installed, else the embedded Valkey), AOF on."""
    with running_server(tmp_path / "redis", kind="auto") as server:
        yield server


@pytest.fixture
def conn(own_server: RunningServer) -> Iterator[redis.Redis]:
    """A client of ``own_server``, with workerkit configured for it."""
    config.reset()
    config.configure(redis_url=own_server.url)
    client = redis.Redis.from_url(own_server.url)
    yield client
    client.close()
    config.reset()
