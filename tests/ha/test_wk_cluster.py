"""workerkit on a real Redis Cluster (3 primaries, 3 replicas): every key of a namespace in one hash slot;
pushes, schedules, retries, the dead set, periodic ticks, batches and their callbacks, dashboard pages and
actions and reliable-fetch recovery after kill -9, through real worker processes; two namespaces side by
side; a failover mid-drain loses no confirmed job (the short version of bench/chaos_failover.py)."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from failover_check import check_a_failover_mid_drain
from ha_jobs import RAN, key
from ha_support import ClusterGroup
from polling import wait_for
from process_support import ChildProcess
from redis.crc import key_slot
from starlette.testclient import TestClient

import workerkit
from workerkit import config
from workerkit.api import Api
from workerkit.periodic import PeriodicJob, enqueue_due
from workerkit.web import dashboard

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def on_cluster(cluster_url: str) -> str:
    """workerkit configured for the shared cluster (emptied); yields its URL."""
    config.reset()
    config.configure(redis_url=cluster_url)
    yield cluster_url  # type: ignore[misc]
    config.reset()


def keys_by_node(cluster: ClusterGroup) -> dict[int, set[str]]:
    """Every key of the cluster, by the port of the primary that holds it."""
    return {node.port: set(node.connection().keys("*")) for node in cluster.primaries}


def test_a_namespace_lives_in_one_slot_and_every_kind_of_job_runs(
    cluster: ClusterGroup, on_cluster: str, start_worker: Callable[..., ChildProcess]
) -> None:
    import ha_jobs

    worker = start_worker(on_cluster, "-c", "4", env={"WORKERKIT_POLL_INTERVAL": "0.2"})
    ha_jobs.Record.perform_async("now")
    ha_jobs.Record.perform_in(0.5, "later")
    workerkit.push_bulk(ha_jobs.Record, [[f"bulk{n}"] for n in range(50)])
    with workerkit.Batch(on_success=(ha_jobs.Record, ["batch succeeded"])).jobs():  # its scripts spell keys
        workerkit.push_bulk(ha_jobs.Record, [[f"batch{n}"] for n in range(3)])    # from the namespace's tag
    with workerkit.Batch(on_death=(ha_jobs.Record, ["batch died"])).jobs():
        ha_jobs.Fail.set(retry=0).perform_async()
    conn = config.redis_client()
    tick = PeriodicJob("tick", "* * * * *", "ha_jobs.Record", ("tick",), "default", "UTC")
    assert enqueue_due(conn, config.keys(), time.time(), [tick]) == 1
    expected = {"now", "later", "tick", *(f"bulk{n}" for n in range(50)), *(f"batch{n}" for n in range(3)),
                "batch succeeded", "batch died"}
    ran = lambda: {value.decode() for value in conn.lrange(key(RAN), 0, -1)}  # noqa: E731

    def state() -> str:  # what a timeout leaves to look at: the jobs missing, and where jobs wait
        sets = {name: conn.zrange(name, 0, -1, withscores=True)
                for name in (config.keys().schedule, config.keys().retry)}
        return (f"missing {sorted(expected - ran())}, at {time.time():.3f}: {sets}, "
                f"queue {conn.lrange(config.keys().queue('default'), 0, -1)}\n{worker.output()}")

    wait_for(lambda: ran() == expected, "every job to run", 30, state)
    wait_for(lambda: conn.zcard(config.keys().dead) == 1, "the failing job in the dead set", 30, worker.output)
    assert worker.stop() == 0, worker.output()
    assert sorted(conn.lrange(key(RAN), 0, -1)) == sorted(value.encode() for value in expected)  # each once
    held = keys_by_node(cluster)
    owner = cluster.primary_for(config.keys().queues)
    assert [port for port, names in held.items() if names] == [owner.port]
    assert all(name.startswith("{workerkit}:") for name in held[owner.port]), held[owner.port]
    assert {key_slot(name.encode()) for name in held[owner.port]} == {key_slot(b"{workerkit}")}
    assert "Traceback" not in worker.output().replace("RuntimeError: this job always fails", "")


def test_retries_and_dashboard_actions_work_across_the_cluster(on_cluster: str) -> None:
    import ha_jobs

    api = Api(config.redis_client(), config.keys())
    conn = config.redis_client()
    for number in range(3):
        conn.zadd(config.keys().retry, {json.dumps({
            "class": "ha_jobs.Record", "args": [f"r{number}"], "jid": f"{number:024d}", "queue": "default",
            "retry": True, "retry_count": 1, "error_class": "RuntimeError", "error_message": "boom",
            "created_at": time.time(), "failed_at": time.time()}): time.time() + 3600})
    ha_jobs.Record.perform_in(3600, "scheduled")
    app = dashboard(api, secret="s", bulk_budget=30)  # the actions on all jobs end in their requests
    with TestClient(app, base_url="http://127.0.0.1") as client:
        for page in ("/", "/queues", "/retries", "/scheduled", "/dead", "/busy", "/periodic"):
            assert client.get(page).status_code == 200, page
        home = client.get("/")
        token = home.text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
        moved = client.post("/retries", data={"csrf_token": token, "action": "run", "scope": "all", "q": ""})
        assert moved.status_code in (200, 303)
        killed = client.post("/scheduled", data={"csrf_token": token, "action": "kill", "scope": "all", "q": ""})
        assert killed.status_code in (200, 303)
    assert (conn.zcard(config.keys().retry), conn.llen(config.keys().queue("default"))) == (0, 3)
    assert (conn.zcard(config.keys().schedule), conn.zcard(config.keys().dead)) == (0, 1)
    assert api.stats().enqueued == 3 and api.stats().dead == 1


def test_two_namespaces_run_side_by_side_in_their_own_slots(
    cluster: ClusterGroup, on_cluster: str, start_worker: Callable[..., ChildProcess]
) -> None:
    import ha_jobs

    workers = {name: start_worker(on_cluster, "-c", "2", "--namespace", name) for name in ("a", "b")}
    for name in ("a", "b"):
        config.configure(namespace=name)
        ha_jobs.Record.perform_async(f"in {name}")
    for name, worker in workers.items():
        config.configure(namespace=name)
        conn, ran = config.redis_client(), [f"in {name}".encode()]
        wait_for(lambda: conn.lrange(key(RAN), 0, -1) == ran, f"namespace {name}'s job", 30,  # noqa: B023
                 worker.output)
        assert worker.stop() == 0, worker.output()
    held = set().union(*keys_by_node(cluster).values())
    assert {name.split(":", 1)[0] for name in held} == {"{a}", "{b}"}


def test_a_worker_killed_mid_job_is_recovered_by_another(
    on_cluster: str, start_worker: Callable[..., ChildProcess]
) -> None:
    import ha_jobs

    conn = config.redis_client()
    victim = start_worker(on_cluster, "-c", "1")
    ha_jobs.Hold.perform_async("held")
    wait_for(lambda: conn.lrange(key("started"), 0, -1) == [b"held"], "the job to start", 30, victim.output)
    victim.popen.send_signal(signal.SIGKILL)
    victim.popen.wait(10)
    conn.set(key("release"), 1)
    rescuer = start_worker(on_cluster, "-c", "1")
    wait_for(lambda: conn.lrange(key(RAN), 0, -1) == [b"held"], "the orphaned job to run again", 30,
             rescuer.output)
    assert rescuer.stop() == 0, rescuer.output()
    assert conn.hlen(config.keys().inflight_lists) == 0


def test_a_namespace_with_braces_is_refused_on_a_cluster(on_cluster: str) -> None:
    config.configure(namespace="a{b}")
    with pytest.raises(ValueError, match=r"namespace 'a\{b\}': on a Redis Cluster the namespace becomes the keys' "
                                         r"hash tag, so it cannot contain '\{' or '\}'"):
        config.keys()


@pytest.mark.slow
def test_a_failover_mid_drain_loses_no_confirmed_job(fresh_cluster: ClusterGroup, tmp_path: Path) -> None:
    check_a_failover_mid_drain(tmp_path, fresh_cluster)
