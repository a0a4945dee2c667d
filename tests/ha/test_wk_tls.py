"""workerkit over TLS, on servers that serve TLS only: a job pushed through a ``rediss://`` URL (one server),
a ``rediss+cluster://`` URL (3 primaries, 3 replicas) and a ``rediss+sentinel://`` URL (TLS to the sentinels
and to the servers) runs in a real worker process, which stops cleanly; a client that trusts another CA
cannot push (``RedisUnreachable``). Skipped for a server binary built without TLS."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ha_jobs import RAN, key
from ha_support import make_tls_files, start_cluster, start_sentinel_group, start_tls_server
from polling import wait_for
from process_support import ChildProcess

import workerkit
from workerkit import config
from workerkit.client import RedisUnreachable

pytestmark = pytest.mark.timeout(60)

TOPOLOGIES: dict[str, Callable[..., contextlib.AbstractContextManager[Any]]] = {
    "server": lambda base_dir, binary: start_tls_server(base_dir, binary=binary),
    "cluster": lambda base_dir, binary: start_cluster(base_dir, binary=binary, tls=True),
    "sentinel": lambda base_dir, binary: start_sentinel_group(base_dir, binary=binary, tls=True),
}


@pytest.fixture
def configured() -> Iterator[Callable[[str], None]]:
    """``configured(url)``: workerkit configured for ``url`` (its clients closed and reset at the end)."""
    def configure(url: str) -> None:
        config.reset()
        config.configure(redis_url=url)

    yield configure
    config.reset()


SCHEMES = {"server": "rediss://", "cluster": "rediss+cluster://", "sentinel": "rediss+sentinel://"}


@pytest.mark.parametrize("topology", sorted(TOPOLOGIES))
def test_a_job_pushed_over_tls_runs_in_a_worker(
    topology: str, tls_binary: str, tmp_path: Path, configured: Callable[[str], None],
    start_worker: Callable[..., ChildProcess],
) -> None:
    with TOPOLOGIES[topology](tmp_path / topology, tls_binary) as group:
        url = group.url
        assert url.startswith(SCHEMES[topology])
        assert url.endswith(f"?ssl_ca_certs={group.ca_path}&ssl_cert_reqs=required")
        configured(url)
        worker = start_worker(url, "-c", "2")
        assert workerkit.push("ha_jobs.Record", ["tls"])
        conn = config.redis_client()
        wait_for(lambda: conn.lrange(key(RAN), 0, -1) == [b"tls"], "the job to run over TLS", 30, worker.output)
        assert worker.stop() == 0, worker.output()
        assert "Traceback" not in worker.output(), worker.output()
        assert conn.lrange(key(RAN), 0, -1) == [b"tls"]  # once


# A client that cannot reach any node gives up only after redis-py's default retries of each node workerkit
# probes (the Cluster's slot lookup, the sentinels): about 4 s a node, TLS or not; hence ``slow``.
@pytest.mark.parametrize(("topology", "reason"), [
    pytest.param("server", "CERTIFICATE_VERIFY_FAILED", id="server"),
    pytest.param("cluster", "CERTIFICATE_VERIFY_FAILED", id="cluster", marks=pytest.mark.slow),
    pytest.param("sentinel", "No master found for 'mymaster'", id="sentinel", marks=pytest.mark.slow),  # no why
])
def test_a_client_that_trusts_another_ca_cannot_push(
    topology: str, reason: str, tls_binary: str, tmp_path: Path, configured: Callable[[str], None],
) -> None:
    with TOPOLOGIES[topology](tmp_path / topology, tls_binary) as group:
        other = make_tls_files(tmp_path / "other-ca", name="another")
        assert other.ca_path != group.ca_path
        configured(group.url.partition("?")[0] + other.query)
        with pytest.raises(RedisUnreachable, match=reason):
            workerkit.push("ha_jobs.Record", ["wrong ca"])
        configured(group.url)  # the right CA: nothing was pushed
        assert config.redis_client().llen(config.keys().queue("default")) == 0
