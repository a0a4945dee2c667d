"""Regression tests for the lifecycle redesign (issue 9): one test per way a job used to be lost, stalled,
doubled or recovered late. Each drives real worker processes against a real server and asserts Redis state.
"""

from __future__ import annotations

import base64
import json
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lifecycle_jobs
import pytest
import redis
import wk_jobs
from polling import wait_for
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

import workerkit
from workerkit import config
from workerkit.api import Api
from workerkit.keys import Keys
from workerkit.lifecycle import Lifecycle, Move
from workerkit.periodic import PeriodicJob, enqueue_due
from workerkit.server import running_server
from workerkit.sets import JobSet
from workerkit.web import dashboard

StartWorker = Callable[..., Any]
LIFECYCLE = ("-r", "lifecycle_jobs")


def live(conn: redis.Redis) -> list[str]:
    """Identities of processes whose heartbeat exists."""
    return sorted(name.decode() for name in conn.smembers("processes") if conn.exists(name))


def identity_of(conn: redis.Redis, pid: int) -> str:
    return wait_for(lambda: next((name for name in live(conn) if f":{pid}:" in name), None), what=f"pid {pid} beating")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "job"
    path.mkdir()
    return path


def test_1_a_worker_whose_heartbeat_lapsed_is_listed_again_and_recovered_after_kill_9(
    wk: redis.Redis, start_worker: StartWorker, folder: Path
) -> None:
    victim = start_worker(*LIFECYCLE, "-q", "slow")
    victim_id = identity_of(wk, victim.popen.pid)
    victim.popen.send_signal(signal.SIGSTOP)  # a long GC, a partition: the heartbeat lapses
    wk.delete(victim_id)
    sweeper = start_worker("-q", "elsewhere")  # its start-up sweep forgets the lapsed process's empty lists
    listed = f"inflight:{victim_id}:slow"
    assert wk.hexists("inflight_lists", listed)
    wait_for(lambda: not wk.hexists("inflight_lists", listed), what="the lapsed worker's list to be forgotten")
    victim.popen.send_signal(signal.SIGCONT)
    wait_for(lambda: wk.hexists("inflight_lists", listed), what="the list listed again")
    lifecycle_jobs.SleepThenDone.set(queue="slow").perform_async(str(folder), 60)
    wait_for(lambda: (folder / "started").exists(), what="the job to start in the victim")
    victim.popen.kill()
    victim.popen.wait(10)
    wait_for(lambda: wk.llen("queue:slow") == 1, what="the dead victim's job back in its queue", timeout=20,
             detail=sweeper.output)
    assert wk.llen(f"inflight:{victim_id}:slow") == 0


def test_2_jobs_of_a_killed_worker_run_again_within_15_seconds_with_default_settings(
    wk: redis.Redis, start_worker: StartWorker, folder: Path
) -> None:
    defaults = {"WORKERKIT_HEARTBEAT_INTERVAL": ""}
    victim = start_worker(*LIFECYCLE, "-q", "slow", env=defaults)
    survivor = start_worker(*LIFECYCLE, "-q", "slow", env=defaults)
    identity_of(wk, survivor.popen.pid)
    lifecycle_jobs.SleepThenDone.set(queue="slow").perform_async(str(folder), 0.5)
    wait_for(lambda: (folder / "started").exists(), what="the job to start")
    first = (folder / "started").read_text()
    holder = victim if wk.llen(f"inflight:{identity_of(wk, victim.popen.pid)}:slow") else survivor
    other = survivor if holder is victim else victim
    holder.popen.kill()
    holder.popen.wait(10)
    (folder / "started").unlink()
    killed = time.monotonic()
    wait_for(lambda: (folder / "done").exists(), what="the job to run again", timeout=15, detail=other.output)
    assert (folder / "done").read_text() == first and time.monotonic() - killed <= 15


def test_3_one_failure_during_a_redis_outage_runs_the_handlers_once_and_counts_one_retry(
    tmp_path: Path, start_worker: StartWorker, folder: Path
) -> None:
    with running_server(tmp_path / "outage", kind="embedded") as server:
        config.reset()
        config.configure(redis_url=server.url)
        conn = redis.Redis.from_url(server.url)
        worker = start_worker(*LIFECYCLE, url=server.url)
        lifecycle_jobs.FailWhenTold.perform_async(str(folder))
        wait_for(lambda: (folder / "started").exists(), what="the job to start")
        conn.bgrewriteaof()  # the in-flight job is on disk before the server goes away
        wait_for(lambda: conn.info("persistence")["aof_rewrite_in_progress"] == 0, what="the AOF rewrite")
        conn.close()
        server.stop(kill=True)
        (folder / "go").touch()  # the job fails while Redis is down
        wait_for(lambda: "Redis unavailable while recording a job's outcome" in worker.output(), what="the outage")
        time.sleep(3)  # several reconnect attempts fail (the point of the test), then Redis comes back
        server.start()
        conn = redis.Redis.from_url(server.url)
        wait_for(lambda: conn.zcard("retry") == 1, what="the job in the retry set", detail=worker.output)
        [member] = conn.zrange("retry", 0, -1)
        assert json.loads(member)["retry_count"] == 0
        assert conn.zcard("dead") == 0
        assert (folder / "errors").read_text() == "RuntimeError\n"
        assert (conn.get("stat:failed"), conn.get("stat:processed")) == (b"1", b"1")
        assert worker.stop() == 0
        conn.close()
        config.reset()


def _surrogate_payload(queue: str) -> bytes:
    # What json.dumps makes of a file name that is not UTF-8: a lone surrogate escape.
    return json.dumps({"class": "wk_jobs.Record", "args": ["k", "name-\udcff"], "jid": "s" * 24, "queue": queue,
                       "retry": True}).encode()


def test_4_a_lone_surrogate_is_quarantined_and_stalls_nothing(wk: redis.Redis, start_worker: StartWorker) -> None:
    bad = _surrogate_payload("default")
    wk.zadd("retry", {bad: time.time() - 10})
    wk.lpush("queue:default", _surrogate_payload("default"))
    worker = start_worker()
    wk_jobs.Record.perform_in(0.2, "after", "scheduled")
    wait_for(lambda: wk.lrange("after", 0, -1) == [b"scheduled"], what="the scheduled job behind the bad one")
    wait_for(lambda: wk.zcard("dead") == 2, what="both bad payloads in the dead set", detail=worker.output)
    kept = sorted(base64.b64decode(json.loads(member)["raw_base64"]) for member in wk.zrange("dead", 0, -1))
    assert kept == [bad, bad]  # byte for byte
    assert wk.zcard("retry") == 0
    wait_for(lambda: not any(wk.llen(key) for key in wk.keys("inflight:*")),  # the good job's ack: within 100 ms
             what="nothing left in flight", detail=worker.output)
    api = Api(wk, Keys())
    [entry] = api.sorted_set(JobSet.DEAD).page(per_page=1).jobs
    assert "lone surrogate" in entry.error_message
    assert api.sorted_set(JobSet.DEAD).retry([entry]) == 1  # "retry now" puts the exact bytes back, for a fixed worker
    wait_for(lambda: wk.zcard("dead") == 2, what="the bad bytes quarantined again by the running worker")
    kept = sorted(base64.b64decode(json.loads(member)["raw_base64"]) for member in wk.zrange("dead", 0, -1))
    assert kept == [bad, bad]


def test_5_a_worker_without_jobs_refuses_to_start(tmp_path: Path, redis_url: str) -> None:
    done = subprocess.run(["workerkit", "worker"], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                          env={"PATH": _path(), "WORKERKIT_REDIS_URL": redis_url}, stdin=subprocess.DEVNULL)
    assert done.returncode == 2
    assert "no job classes are registered" in done.stderr and "-r MODULE" in done.stderr


def _path() -> str:
    import os

    return os.environ["PATH"]


def test_5_an_unknown_class_is_retried_not_killed(wk: redis.Redis, start_worker: StartWorker) -> None:
    worker = start_worker()
    jid = workerkit.push("app.jobs.NotDeployedYet", [1])
    wait_for(lambda: wk.zcard("retry") == 1, what="the unknown job in the retry set", detail=worker.output)
    [member] = wk.zrange("retry", 0, -1)
    assert json.loads(member)["jid"] == jid and wk.zcard("dead") == 0
    assert "'app.jobs.NotDeployedYet' is not a registered job" in worker.output()


def test_6_a_worker_that_lost_its_job_does_not_settle_it(
    wk: redis.Redis, start_worker: StartWorker, folder: Path
) -> None:
    slow = start_worker(*LIFECYCLE)
    slow_id = identity_of(wk, slow.popen.pid)
    lifecycle_jobs.FailWhenTold.perform_async(str(folder))
    wait_for(lambda: (folder / "started").exists(), what="the job to start")
    slow.popen.send_signal(signal.SIGSTOP)
    start_worker("-q", "elsewhere")  # sweeps, but does not take jobs from default
    wait_for(lambda: wk.llen("queue:default") == 1, what="the job recovered from the stopped worker")
    slow.popen.send_signal(signal.SIGCONT)
    (folder / "go").touch()
    wait_for(lambda: "no longer held by this worker" in slow.output(), what="the slow worker to give up the job")
    # The recovered copy ran again (in whichever worker took it) and failed once: one retry, not two.
    wait_for(lambda: wk.get("stat:failed") == b"1", what="the recovered copy's failure")
    [member] = wk.zrange("retry", 0, -1)
    assert json.loads(member)["recovered"] == 1 and wk.llen("queue:default") == 0
    assert slow_id in live(wk)


def test_7_a_payload_holding_a_datetime_does_not_stop_the_heartbeat(
    wk: redis.Redis, start_worker: StartWorker, folder: Path
) -> None:
    worker = start_worker(*LIFECYCLE)
    identity = identity_of(wk, worker.popen.pid)
    lifecycle_jobs.SleepThenDone.perform_async(str(folder), 3)
    wait_for(lambda: (folder / "started").exists(), what="the job to start")
    for _ in range(2):
        beat = float(wk.hget(identity, "beat"))  # type: ignore[arg-type]
        wait_for(lambda: float(wk.hget(identity, "beat") or 0) > beat, what="the heartbeat beating on",  # noqa: B023
                 detail=worker.output)
    [work] = [json.loads(value) for value in wk.hvals(f"{identity}:work")]
    assert work["queue"] == "default" and work["payload"]["class"] == "lifecycle_jobs.SleepThenDone"
    assert "traced_at" not in work["payload"]  # the payload as fetched, not the job's own dict


@pytest.mark.parametrize("job_class", ["BadBackoff", "NoneBackoff", "NanBackoff"])
def test_8_a_bad_backoff_falls_back_to_the_default(
    wk: redis.Redis, start_worker: StartWorker, folder: Path, job_class: str
) -> None:
    worker = start_worker(*LIFECYCLE)
    before = time.time()
    getattr(lifecycle_jobs, job_class).perform_async(str(folder))
    wait_for(lambda: wk.zcard("retry") == 1, what="the job in the retry set", detail=worker.output)
    [(_, due)] = wk.zrange("retry", 0, -1, withscores=True)
    assert before + 15 <= due <= time.time() + 15 + 9  # Sidekiq's first delay: 15 s + rand(10) * 1
    assert "using the default backoff" in worker.output()
    assert not any(wk.llen(key) for key in wk.keys("inflight:*"))


def test_9_a_schedule_that_can_never_fire_is_reported_and_skipped(wk: redis.Redis) -> None:
    now = time.time()
    never = PeriodicJob("never", "0 0 30 2 *", "wk_jobs.Record", ("k", 1), "default", "UTC")
    minutely = PeriodicJob("minutely", "* * * * *", "wk_jobs.Record", ("k", 2), "default", "UTC")
    assert enqueue_due(wk, Keys(), now, [never, minutely]) == 1
    assert json.loads(wk.lindex("queue:default", 0))["args"] == ["k", 2]  # type: ignore[arg-type]
    assert "can never fire" in json.loads(wk.hget("periodic", "never"))["error"]  # type: ignore[arg-type]
    [shown] = [view for view in Api(wk, Keys()).periodic_jobs() if view.name == "never"]
    assert shown.error is not None and "can never fire" in shown.error
    app = Starlette(routes=[Mount("/wk", dashboard(Api(wk, Keys()), secret="s"))])
    with TestClient(app, base_url="http://127.0.0.1") as client:
        page = client.get("/wk/periodic")
    assert page.status_code == 200 and "never: this schedule can never fire" in page.text


def test_10_a_silent_peer_is_noticed_within_seconds(silent_peer: str) -> None:
    client = config.new_redis_client(silent_peer, retry=None)
    options = client.connection_pool.connection_kwargs
    assert options["socket_timeout"] == config.SOCKET_TIMEOUT and options["socket_keepalive_options"]
    with pytest.raises(redis.TimeoutError):  # redis-py's own default waited for ever before version 6
        client.ping()
    client.close()


def test_11_an_acknowledgement_sent_twice_counts_once(wk: redis.Redis) -> None:
    from workerkit.fetch import QueueSpec, ReliableFetch

    wk_jobs.Record.perform_async("k", 1)
    fetch = ReliableFetch(wk, Keys(), "host:1:abcdef", [QueueSpec("default")])
    [unit] = fetch.fetch(1)
    acks = [(unit.index, unit.raw)]
    for _ in range(2):  # the first reply was lost: the same acknowledgement is sent again
        fetch.lifecycle.fetch(fetch.queue_keys, fetch.inflight_keys, list(fetch.registry_entries().values()), [0], 0,
                              acks, time.time())
    assert wk.get("stat:processed") == b"1" and wk.llen(fetch.inflight_keys[0]) == 0


def test_the_poll_rate_is_cluster_wide_not_per_process(wk: redis.Redis) -> None:
    from workerkit.periodic import unregister_all
    from workerkit.scheduler import Scheduler

    unregister_all()
    wk.sadd("processes", *[f"host:{n}:000000" for n in range(10)])
    poller = Scheduler(wk, Keys(), average_interval=1.0)
    sleeps = [poller.poll() for _ in range(40)]  # nothing due, no periodic job: 10 processes, 1 poll/s in all
    assert min(sleeps) >= 5.0 and max(sleeps) <= 15.0
    wk.zadd("schedule", {"{}": time.time() + 2})
    assert poller.poll() <= 2.0  # never later than the earliest due job


def test_a_push_without_redis_names_the_url_and_what_to_do() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config.reset()
    config.configure(redis_url=f"redis://:secret@127.0.0.1:{port}/0")
    try:
        with pytest.raises(workerkit.client.RedisUnreachable) as raised:
            wk_jobs.Record.perform_async("k", 1)
    finally:
        config.reset()
    message = str(raised.value)
    assert f"redis://***@127.0.0.1:{port}/0" in message and "secret" not in message
    assert "workerkit redis" in message and "REDIS_URL" in message


def test_a_worker_warns_when_redis_may_evict_jobs(wk: redis.Redis, start_worker: StartWorker) -> None:
    wk.config_set("maxmemory-policy", "allkeys-lru")
    try:
        worker = start_worker()
        identity_of(wk, worker.popen.pid)
        assert "maxmemory-policy is 'allkeys-lru'" in worker.output() and "noeviction" in worker.output()
    finally:
        wk.config_set("maxmemory-policy", "noeviction")


def test_move_entries_moves_each_entry_once_to_its_queue_or_the_dead_set(wk: redis.Redis) -> None:
    """The dashboard's bulk moves: one script call per thousand, each move decided by its own ZREM."""
    workerkit.configure(dead_max_jobs=1_500)
    lifecycle = Lifecycle(wk, config.keys())
    members = [json.dumps({"class": "K", "args": [n], "jid": f"j{n}", "queue": f"q{n % 3}"}) for n in range(2_600)]
    wk.zadd("retry", {member: n for n, member in enumerate(members)})
    wk.zrem("retry", members[5], members[1_500])  # taken meanwhile by another click or the poller
    now = time.time()
    to_queues: list[Move] = [(m, m + " ", "queue", f"q{n % 3}") for n, m in enumerate(members[:2_000])]
    to_dead: list[Move] = [(m, m, "dead", now) for m in members[2_000:]]
    assert lifecycle.move_entries("retry", to_queues) == 1_998
    assert lifecycle.move_entries("retry", to_dead) == 600
    assert lifecycle.move_entries("retry", to_dead) == 0  # gone already: nothing is moved twice
    assert wk.zcard("retry") == 0
    for queue in range(3):
        held = [raw.decode() for raw in reversed(wk.lrange(f"queue:q{queue}", 0, -1))]  # oldest first
        assert held == [m + " " for n, m in enumerate(members[:2_000]) if n % 3 == queue and n not in (5, 1_500)]
    assert wk.smembers("queues") == {b"q0", b"q1", b"q2"}
    assert {raw.decode() for raw in wk.zrange("dead", 0, -1)} == set(members[2_000:])
    wk.zadd("retry", {m: 0 for m in members[:2_000]})
    assert lifecycle.move_entries("retry", [(m, m, "dead", now + 1) for m in members[:2_000]]) == 2_000
    assert wk.zcard("dead") == 1_500  # trimmed to dead_max_jobs, the oldest out first
    assert {score for _, score in wk.zrange("dead", 0, -1, withscores=True)} == {now + 1}
