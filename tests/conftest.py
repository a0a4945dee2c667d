"""Shared fixtures: real Redis-compatible servers over real sockets.

Every workerkit test runs against the embedded Valkey server that the package ships, and against
Debian's ``redis-server`` too when it is on PATH (CI installs it). ``WORKERKIT_TEST_SERVERS=embedded``
narrows the set.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from workerkit import config
from workerkit.server import RunningServer, ServerKind, running_server


def _server_kinds() -> list[ServerKind]:
    wanted = os.environ.get("WORKERKIT_TEST_SERVERS", "embedded,system").split(",")
    kinds: list[ServerKind] = []
    if "embedded" in wanted:
        kinds.append("embedded")
    if "system" in wanted and shutil.which("redis-server"):
        kinds.append("system")
    return kinds


@pytest.fixture(scope="session", params=_server_kinds())
def redis_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server shared by the session (one per kind); tests get a flushed database from ``redis_url``."""
    data_dir = tmp_path_factory.mktemp(f"redis-{request.param}")
    with running_server(Path(data_dir), kind=request.param) as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RunningServer) -> str:
    """URL of an empty database on a real server."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client of an empty database on a real server."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def wk(redis_url: str, redis_client: redis.Redis) -> Iterator[redis.Redis]:
    """workerkit configured for an empty database; yields a client of it."""
    config.reset()
    config.configure(redis_url=redis_url)
    yield redis_client
    config.reset()
