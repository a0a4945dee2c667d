"""The HA test harness itself, driven with plain redis-py: a cluster spreads keys over its primaries and
survives the loss of one; a sentinel group fails over and ``redis.sentinel`` follows; nothing outlives
a group."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import redis
from ha_support import ClusterGroup, Node, SentinelGroup, start_sentinel_group
from redis.backoff import NoBackoff
from redis.retry import Retry

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
