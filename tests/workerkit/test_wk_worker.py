"""Real ``workerkit worker`` processes against a real server: running, ordering, failures, crashes,
shutdown, quiet, heartbeat, and Redis going away. Every wait polls Redis with a deadline."""

from __future__ import annotations

import base64
import json
import signal
import time
from collections.abc import Callable
from typing import Any

import redis
import wk_jobs
from polling import wait_for

import workerkit
from workerkit.server import RunningServer

StartWorker = Callable[..., Any]


def processes(conn: redis.Redis) -> list[str]:
    return sorted(identity.decode() for identity in conn.smembers("processes"))


def test_every_push_form_runs(wk: redis.Redis, start_worker: StartWorker) -> None:
    worker = start_worker("-q", "critical", "-q", "default", "-q", "mailers", "-c", "4")
    wk_jobs.Record.perform_async("ran", "async")
    wk_jobs.Record.perform_in(1, "ran", "in")
    wk_jobs.Record.perform_at(time.time() + 1, "ran", "at")
    wk_jobs.Critical.perform_async("ran", "critical")
    wk_jobs.Record.set(queue="critical").perform_async("ran", "set")
    wk_jobs.send_mail.delay("ran", "delay")
    wk_jobs.send_mail.delay_for(1, "ran", "delay_for")
    workerkit.push("wk_jobs.Record", ["ran", "by-name"])
    workerkit.push("flaky-alias", ["never"], queue="elsewhere")
    workerkit.push_bulk(wk_jobs.Record, [("ran", "bulk1"), ("ran", "bulk2")])
    expected = {b"async", b"in", b"at", b"critical", b"set", b"delay", b"delay_for", b"by-name", b"bulk1", b"bulk2"}
    wait_for(lambda: set(wk.lrange("ran", 0, -1)) == expected, what="every job to run")
    wait_for(lambda: wk.get("stat:processed") == b"10", what="stats flushed")
    assert sorted(wk.lrange("ran", 0, -1)) == sorted(expected)
    assert worker.stop() == 0
    assert "class=wk_jobs.Record jid=" in worker.output() and " INFO: done: " in worker.output()
    assert processes(wk) == [] and wk.hlen("inflight_lists") == 0


def test_strict_queue_order(wk: redis.Redis, start_worker: StartWorker) -> None:
    for n in range(5):
        wk_jobs.Record.set(queue="low").perform_async("order", f"low{n}")
        wk_jobs.Record.set(queue="high").perform_async("order", f"high{n}")
    start_worker("-q", "high", "-q", "low", "-c", "1", "--prefetch", "0")
    wait_for(lambda: wk.llen("order") == 10, what="ten jobs")
    assert wk.lrange("order", 0, -1) == [f"high{n}".encode() for n in range(5)] + [f"low{n}".encode() for n in range(5)]


def test_weighted_queues_favour_the_heavier(wk: redis.Redis, start_worker: StartWorker) -> None:
    workerkit.push_bulk(wk_jobs.Record, [("weighted", "a")] * 150, queue="a")
    workerkit.push_bulk(wk_jobs.Record, [("weighted", "b")] * 150, queue="b")
    start_worker("-q", "a,3", "-q", "b,1", "-c", "1", "--prefetch", "0")
    wait_for(lambda: wk.llen("weighted") >= 100, what="100 jobs")
    first = wk.lrange("weighted", 0, 99)
    assert 55 <= first.count(b"a") <= 95 and first.count(b"b") >= 5


def test_failures_retry_then_die_with_error_fields(wk: redis.Redis, start_worker: StartWorker) -> None:
    start_worker("-c", "2", env={"WORKERKIT_POLL_INTERVAL": "0.2"})
    jid = wk_jobs.Flaky.perform_async("flaky")
    wait_for(lambda: wk.zcard("dead") == 1, what="the job in the dead set")
    [dead] = [json.loads(member) for member in wk.zrange("dead", 0, -1)]
    assert (dead["jid"], dead["retry_count"], dead["error_class"]) == (jid, 2, "RuntimeError")
    assert dead["error_message"] == "attempt failed for flaky"
    assert dead["failed_at"] <= dead["retried_at"]
    assert wk.get("flaky") == b"3" and wk.get("exhausted:flaky") == b"attempt failed for flaky"
    wait_for(lambda: wk.get("stat:failed") == b"3", what="failures counted")


def test_garbage_dies_unknown_classes_are_retried_and_the_worker_goes_on(
    wk: redis.Redis, start_worker: StartWorker
) -> None:
    worker = start_worker()
    wk.lpush("queue:default", b"{not json", b"\xff\xfe", b"[1, 2]")
    workerkit.push("os.system", ["rm -rf /"])
    wk_jobs.Record.perform_async("after", "ok")
    wait_for(lambda: wk.lrange("after", 0, -1) == [b"ok"], what="the good job")
    wait_for(lambda: wk.zcard("dead") == 3 and wk.zcard("retry") == 1, what="three dead jobs and one retry")
    dead = [json.loads(member) for member in wk.zrange("dead", 0, -1)]
    assert sorted(entry["raw"] for entry in dead) == ["[1, 2]", "{not json", "\ufffd\ufffd"]
    assert sorted(base64.b64decode(entry["raw_base64"]) for entry in dead) == [b"[1, 2]", b"{not json", b"\xff\xfe"]
    [unknown] = [json.loads(member) for member in wk.zrange("retry", 0, -1)]
    assert unknown["class"] == "os.system" and unknown["retry_count"] == 0
    assert "not a registered job" in unknown["error_message"]
    assert "'os.system' is not a registered job" in worker.output()
    assert worker.popen.poll() is None


def test_kill_9_mid_job_runs_it_again_elsewhere(wk: redis.Redis, start_worker: StartWorker) -> None:
    fast_sweep = {"WORKERKIT_SWEEP_INTERVAL": "0.5"}
    victim = start_worker("-q", "slow", env=fast_sweep)
    wk_jobs.Slow.set(queue="slow").perform_async("crash", 1.5)
    wait_for(lambda: wk.get("started:crash") == b"1", what="the job to start")
    survivor = start_worker("-q", "slow", env=fast_sweep)
    wait_for(lambda: len(processes(wk)) == 2, what="two live processes")
    [victim_identity] = [p for p in processes(wk) if f":{victim.popen.pid}:" in p]
    victim.popen.send_signal(signal.SIGKILL)
    victim.popen.wait(10)
    wk.delete(victim_identity)  # what 60 s without a heartbeat would do
    wait_for(lambda: wk.get("crash") == b"1", what="the job to run to its end in the survivor")
    assert wk.get("started:crash") == b"2"
    assert wk.hkeys("inflight_lists") == [f"inflight:{processes(wk)[0]}:slow".encode()]
    assert "recovered a job of dead process" in survivor.output()
    assert survivor.stop() == 0
    assert wk.llen("queue:slow") == 0 and wk.keys("inflight:*") == []


def test_term_finishes_short_jobs_and_requeues_long_ones(wk: redis.Redis, start_worker: StartWorker) -> None:
    worker = start_worker("-q", "slow", "-c", "2", "-t", "3")
    wk_jobs.Slow.set(queue="slow").perform_async("short", 1)
    wk_jobs.Slow.set(queue="slow").perform_async("long", 60)
    wait_for(lambda: wk.get("started:short") and wk.get("started:long"), what="both jobs to start")
    assert worker.stop(timeout=30) == 0
    assert wk.get("short") == b"1" and wk.get("long") is None
    [requeued] = [json.loads(raw) for raw in wk.lrange("queue:slow", 0, -1)]
    assert requeued["args"] == ["long", 60]
    assert wk.keys("inflight:*") == [] and processes(wk) == []
    assert "1 job(s) pushed back to their queues" in worker.output()


def test_tstp_and_remote_signals(wk: redis.Redis, start_worker: StartWorker) -> None:
    worker = start_worker()
    wait_for(lambda: processes(wk), what="the heartbeat")
    [identity] = processes(wk)
    info = json.loads(wk.hget(identity, "info"))  # type: ignore[arg-type]
    assert (info["pid"], info["concurrency"], info["queues"], info["identity"]) == (
        worker.popen.pid, 10, ["default"], identity)
    worker.popen.send_signal(signal.SIGTSTP)
    wait_for(lambda: wk.hget(identity, "quiet") == b"true", what="quiet in the heartbeat")
    wk_jobs.Record.perform_async("quiet", 1)
    beat = float(wk.hget(identity, "beat"))  # type: ignore[arg-type]
    wait_for(lambda: float(wk.hget(identity, "beat")) > beat + 1, what="two more heartbeats")  # type: ignore[arg-type]
    assert wk.llen("queue:default") == 1 and wk.llen("quiet") == 0
    wk.lpush(f"{identity}-signals", "TERM")
    assert worker.popen.wait(30) == 0
    assert processes(wk) == [] and wk.llen("queue:default") == 1


def test_heartbeat_shows_running_jobs(wk: redis.Redis, start_worker: StartWorker) -> None:
    start_worker("--tag", "billing", "--name", "box7")
    jid = wk_jobs.Slow.perform_async("busy", 3)
    wait_for(lambda: processes(wk) and wk.hlen(f"{processes(wk)[0]}:work"), what="the job in the work hash")
    [identity] = processes(wk)
    assert identity.startswith("box7:")
    assert json.loads(wk.hget(identity, "info"))["tag"] == "billing"  # type: ignore[arg-type]
    [work] = [json.loads(value) for value in wk.hvals(f"{identity}:work")]
    assert (work["queue"], work["payload"]["jid"]) == ("default", jid)
    assert int(wk.hget(identity, "busy")) == 1 and int(wk.hget(identity, "rss")) > 1000  # type: ignore[arg-type]
    assert 0 < wk.ttl(identity) <= 60


def test_redis_restart_mid_run_and_down_at_start(
    wk: redis.Redis, start_worker: StartWorker, redis_server: RunningServer
) -> None:
    worker = start_worker("-c", "4")
    workerkit.push_bulk(wk_jobs.Record, [("restart", n) for n in range(50)])
    wait_for(lambda: wk.llen("restart") == 50, what="the first jobs")
    redis_server.stop()
    try:
        wait_for(lambda: "Redis unavailable" in worker.output(), what="the worker to notice")
        late = start_worker("-c", "2")
        wait_for(lambda: "Redis unavailable while starting" in late.output(), what="the late worker to wait")
    finally:
        redis_server.start()
    conn = redis.Redis.from_url(redis_server.url)
    wait_for(lambda: len(processes(conn)) == 2, what="both workers registered")
    workerkit.push_bulk(wk_jobs.Record, [("restart", n) for n in range(50, 100)])
    wait_for(lambda: conn.llen("restart") >= 100, what="every job after the restart")
    assert sorted(int(v) for v in conn.lrange("restart", 0, -1)) == list(range(100))
    assert worker.popen.poll() is None and late.popen.poll() is None
    assert worker.stop() == 0 and late.stop() == 0
    assert "Redis reachable again (starting the worker)" in late.output()


def test_heartbeat_survives_an_unexpected_error_and_logs_it_once(wk: redis.Redis, start_worker: StartWorker) -> None:
    worker = start_worker()
    wait_for(lambda: processes(wk), what="the heartbeat")
    [identity] = processes(wk)
    wk.set(f"{identity}-signals", "not a list")  # every RPOP of the heartbeat now fails with WRONGTYPE
    wait_for(lambda: "heartbeat failed" in worker.output(), what="the heartbeat's error in the log")
    for _ in range(2):
        beat = float(wk.hget(identity, "beat"))  # type: ignore[arg-type]
        wait_for(lambda: float(wk.hget(identity, "beat")) > beat, what="the heartbeat beating on")  # type: ignore[arg-type]  # noqa: B023
    assert worker.output().count("heartbeat failed") == 1
    assert worker.output().count("Traceback") == 1 and "WRONGTYPE" in worker.output()
    wk.delete(f"{identity}-signals")
    wk.lpush(f"{identity}-signals", b"\xff\xfe", "TERM")  # a signal that is not UTF-8 is ignored, then TERM
    assert worker.popen.wait(30) == 0
    assert processes(wk) == []
