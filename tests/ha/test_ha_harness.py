"""The HA test harness itself, driven with plain redis-py: a cluster spreads keys over its primaries and
survives the loss of one; a sentinel group fails over and ``redis.sentinel`` follows; nothing outlives
a group; TLS groups (and one TLS server) serve TLS only, to plain redis-py trusting their CA, and fail
over alike."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import redis
from ha_support import (
    ClusterGroup,
    Node,
    SentinelGroup,
    make_tls_files,
    start_cluster,
    start_sentinel_group,
    start_tls_server,
)
from polling import wait_for
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode as RedisClusterNode
from redis.cluster import RedisCluster
from redis.retry import Retry
from redis.sentinel import Sentinel

pytestmark = pytest.mark.timeout(60)


def test_cluster_serves_keys_of_every_slot_range(cluster: ClusterGroup, cluster_url: str) -> None:
    hosts = ",".join(f"127.0.0.1:{node.port}" for node in cluster.nodes)
    assert cluster_url == f"redis+cluster://{hosts}"
    assert [node.role for node in cluster.nodes] == ["primary"] * 3 + ["replica"] * 3
    client = cluster.client(decode_responses=True)
    try:
        keys = [f"key:{index}" for index in range(60)]
        for key in keys:
            assert client.set(key, f"value of {key}") is True
        assert {key: client.get(key) for key in keys} == {key: f"value of {key}" for key in keys}
        owners = {key: cluster.primary_for(key) for key in keys}
        assert set(owners.values()) == set(cluster.primaries)
        for key, owner in owners.items():  # primary_for names the node that really holds the key
            assert owner.connection().get(key) == f"value of {key}"
        assert sum(node.connection().dbsize() for node in cluster.primaries) == len(keys)
    finally:
        client.close()


def test_cluster_promotes_the_replica_of_a_killed_primary(fresh_cluster: ClusterGroup) -> None:
    client = fresh_cluster.client(decode_responses=True)
    try:
        assert client.set("survivor", "written before the kill") is True
        old = fresh_cluster.primary_for("survivor")
        replicas = fresh_cluster.replicas_of(old)
        assert len(replicas) == 1
        fresh_cluster.kill(old)
        assert not old.alive
        new = fresh_cluster.wait_for_failover(old, timeout=20)
        assert new is replicas[0]
        assert new.role == "primary"
        assert new.info("replication")["role"] == "master"
        assert fresh_cluster.primary_for("survivor") is new
        assert new.connection().get("survivor") == "written before the kill"
        assert client.get("survivor") == "written before the kill"  # the client created before the kill
        assert client.set("survivor", "written after the failover") is True
        assert new.connection().get("survivor") == "written after the failover"
        assert old.role == "replica"
        assert len(fresh_cluster.primaries) == 3
        assert all(node.alive for node in fresh_cluster.primaries)
    finally:
        client.close()


def test_sentinels_fail_over_and_redis_sentinel_follows(sentinel_group: SentinelGroup) -> None:
    hosts = ",".join(f"127.0.0.1:{node.port}" for node in sentinel_group.sentinels)
    assert sentinel_group.url == f"redis+sentinel://{hosts}/mymaster/0"
    old = sentinel_group.primary
    replica_ports = {node.port for node in sentinel_group.replicas}
    assert len(replica_ports) == 2
    client = sentinel_group.client(decode_responses=True)
    try:
        assert client.set("survivor", "written before the kill") is True
        assert sentinel_group.kill_primary() is old
        host, port = sentinel_group.wait_for_failover(old, timeout=20)
        assert host == "127.0.0.1"
        assert port in replica_ports
        assert sentinel_group.primary.port == port
        assert sentinel_group.sentinel().discover_master("mymaster") == ("127.0.0.1", port)
        for sentinel in sentinel_group.sentinels:
            assert sentinel.connection().sentinel_get_master_addr_by_name("mymaster") == ("127.0.0.1", port)
        assert client.get("survivor") == "written before the kill"  # the client created before the kill
        assert client.set("after", "the failover") is True
        assert sentinel_group.primary.connection().get("after") == "the failover"
    finally:
        client.close()


def test_credentials_are_required_and_no_server_outlives_its_group(ha_binary: str, tmp_path: Path) -> None:
    pids: list[int] = []
    nodes: list[Node] = []
    with pytest.raises(RuntimeError, match="the test failed"), start_sentinel_group(
        tmp_path, binary=ha_binary, replicas=1, sentinels=1, username="wk", password="s3 cret",
    ) as group:
        assert group.url == f"redis+sentinel://wk:s3%20cret@127.0.0.1:{group.sentinels[0].port}/mymaster/0"
        nodes = group.nodes
        pids = [node.process.pid for node in nodes]
        client = group.client(decode_responses=True)
        assert client.set("k", "v") is True
        client.close()
        with pytest.raises(redis.AuthenticationError), redis.Redis(
            port=group.primary.port, retry=Retry(NoBackoff(), 0)
        ) as anonymous:
            anonymous.ping()
        raise RuntimeError("the test failed")
    assert len(pids) == 3
    assert [node.group_alive() for node in nodes] == [False] * 3
    for pid in pids:
        with pytest.raises(ProcessLookupError):  # killed and reaped: no such process any more
            os.kill(pid, 0)


# --- TLS ------------------------------------------------------------------------------------------------


def tls_options(ca_path: Path | None) -> dict[str, object]:
    """Plain redis-py's options for a TLS server signed by ``ca_path`` (host name checked: the SANs match)."""
    assert ca_path is not None and ca_path.is_file()
    return {"ssl": True, "ssl_ca_certs": str(ca_path), "ssl_cert_reqs": "required", "ssl_check_hostname": True}


def assert_plain_refused(port: int) -> None:
    """A plain TCP client of the TLS port gets no answer: the server takes its PING for a bad handshake."""
    with pytest.raises(redis.ConnectionError), redis.Redis(
        port=port, socket_timeout=2, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)
    ) as plain:
        plain.ping()


def assert_wrong_ca_refused(port: int, tmp_path: Path) -> None:
    """A client that trusts another CA refuses the server's certificate."""
    other = make_tls_files(tmp_path / "other-ca", name="another")
    with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"), redis.Redis(
        port=port, socket_timeout=2, retry=Retry(NoBackoff(), 0), **tls_options(other.ca_path)
    ) as wrong:
        wrong.ping()


def test_a_tls_server_serves_rediss_only(tls_binary: str, tmp_path: Path) -> None:
    with start_tls_server(tmp_path / "one", binary=tls_binary) as server:
        assert server.url == (f"rediss://127.0.0.1:{server.port}/0?ssl_ca_certs={server.ca_path}"
                              "&ssl_cert_reqs=required")
        with redis.Redis.from_url(server.url) as client:
            assert client.set("k", "v") is True
            assert client.get("k") == b"v"
            assert client.connection_pool.connection_kwargs["ssl_cert_reqs"] == "required"
        assert server.connection().get("k") == "v"
        assert server.connection().config_get("port") == {"port": "0"}
        assert_plain_refused(server.port)
        assert_wrong_ca_refused(server.port, tmp_path)


def test_a_tls_cluster_forms_and_plain_redis_py_uses_it(tls_binary: str, tmp_path: Path) -> None:
    with start_cluster(tmp_path / "cluster", binary=tls_binary, tls=True) as group:
        hosts = ",".join(f"127.0.0.1:{node.port}" for node in group.nodes)
        assert group.ca_path == tmp_path / "cluster" / "tls" / "ca.pem"
        assert group.url == f"rediss+cluster://{hosts}?ssl_ca_certs={group.ca_path}&ssl_cert_reqs=required"
        assert [node.role for node in group.nodes] == ["primary"] * 3 + ["replica"] * 3
        for node in group.nodes:  # TLS only, on the client port, the bus and replication alike
            assert node.connection().config_get("port") == {"port": "0"}
            assert node.connection().config_get("tls-cluster") == {"tls-cluster": "yes"}
            assert node.connection().config_get("tls-replication") == {"tls-replication": "yes"}
        client = RedisCluster(startup_nodes=[RedisClusterNode("127.0.0.1", group.nodes[0].port)],
                              decode_responses=True, **tls_options(group.ca_path))
        try:
            assert {node.port for node in client.get_nodes()} == {node.port for node in group.nodes}
            keys = [f"key:{index}" for index in range(30)]
            for key in keys:
                assert client.set(key, f"value of {key}") is True
            assert {group.primary_for(key) for key in keys} == set(group.primaries)
            for key in keys:
                assert client.get(key) == f"value of {key}"
                assert group.primary_for(key).connection().get(key) == f"value of {key}"
        finally:
            client.close()
        assert_plain_refused(group.nodes[0].port)
        assert_plain_refused(group.nodes[-1].port)
        assert_wrong_ca_refused(group.nodes[0].port, tmp_path)


def test_a_tls_sentinel_group_forms_and_plain_redis_sentinel_uses_it(tls_binary: str, tmp_path: Path) -> None:
    with start_sentinel_group(tmp_path / "group", binary=tls_binary, tls=True) as group:
        hosts = ",".join(f"127.0.0.1:{node.port}" for node in group.sentinels)
        assert group.ca_path == tmp_path / "group" / "tls" / "ca.pem"
        assert group.url == (f"rediss+sentinel://{hosts}/mymaster/0?ssl_ca_certs={group.ca_path}"
                             "&ssl_cert_reqs=required")
        for node in group.servers:  # the sentinels listen on their tls-port only too: see assert_plain_refused
            assert node.connection().config_get("port") == {"port": "0"}
        options = tls_options(group.ca_path)
        sentinel = Sentinel([node.address for node in group.sentinels], sentinel_kwargs={**options},
                            socket_timeout=2, **options)
        assert sentinel.discover_master("mymaster") == ("127.0.0.1", group.primary.port)
        assert set(sentinel.discover_slaves("mymaster")) == {node.address for node in group.replicas}
        primary = sentinel.master_for("mymaster", decode_responses=True)
        try:
            assert primary.set("k", "v") is True
            assert primary.get("k") == "v"
            wait_for(lambda: all(node.connection().get("k") == "v" for node in group.replicas),
                     "the replicas to get k over TLS replication", 5)
        finally:
            primary.close()
        for sentinel_node in group.sentinels:
            connection = sentinel_node.connection()
            assert connection.sentinel_master("mymaster")["num-other-sentinels"] == 2
        assert_plain_refused(group.sentinels[0].port)
        assert_plain_refused(group.primary.port)
        assert_wrong_ca_refused(group.sentinels[0].port, tmp_path)


@pytest.mark.slow
def test_a_tls_cluster_fails_over_and_a_killed_node_rejoins(tls_binary: str, tmp_path: Path) -> None:
    with start_cluster(tmp_path / "cluster", binary=tls_binary, tls=True) as group:
        client = group.client(decode_responses=True)
        try:
            assert client.set("survivor", "written before the kill") is True
            old = group.primary_for("survivor")
            (replica,) = group.replicas_of(old)
            group.kill(old)
            assert group.wait_for_failover(old, timeout=20) is replica
            assert client.get("survivor") == "written before the kill"
            assert client.set("survivor", "written after the failover") is True
            group.restart(old)
            group.wait_until_healthy(timeout=20)
            assert old.role == "replica"
            assert old.info("replication")["master_port"] == replica.port
            with redis.Redis(port=old.port, single_connection_client=True, decode_responses=True,
                             **tls_options(group.ca_path)) as reader:
                reader.execute_command("READONLY")  # a cluster replica serves reads on this connection
                wait_for(lambda: reader.get("survivor") == "written after the failover",
                         "the restarted node to replicate its new primary over TLS", 10)
        finally:
            client.close()


@pytest.mark.slow
def test_a_tls_sentinel_group_fails_over(tls_binary: str, tmp_path: Path) -> None:
    with start_sentinel_group(tmp_path / "group", binary=tls_binary, tls=True) as group:
        client = group.client(decode_responses=True)
        try:
            assert client.set("survivor", "written before the kill") is True
            old = group.kill_primary()
            host, port = group.wait_for_failover(old, timeout=20)
            assert (host, port) == group.primary.address != old.address
            assert client.get("survivor") == "written before the kill"
            assert client.set("after", "the failover") is True
            old.restart()
            wait_for(lambda: old.info("replication").get("master_port") == port
                     and old.connection().get("after") == "the failover",
                     "the old primary to rejoin as a replica over TLS", 20, detail=group._logs)
        finally:
            client.close()
