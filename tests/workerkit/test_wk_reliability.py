"""Retries, the dead set, the scheduler's moves and orphan recovery, driven directly against a real server."""

from __future__ import annotations

import json
import random
import threading
import time

import pytest
import redis
import wk_jobs

from workerkit import config, failure
from workerkit.fetch import QueueSpec, ReliableFetch, UnitOfWork, fetch_order
from workerkit.job import Job
from workerkit.keys import Keys
from workerkit.payload import encode
from workerkit.recovery import POISON_PILL_RECOVERIES, Sweeper
from workerkit.scheduler import Scheduler
from workerkit.views import JobView


def fetched(conn: redis.Redis, queue: str = "default") -> tuple[ReliableFetch, UnitOfWork]:
    fetch = ReliableFetch(conn, Keys(), "host:1:abcdef", [QueueSpec(queue)])
    [unit] = fetch.fetch(1)
    return fetch, unit


def fail(unit: UnitOfWork, exc: Exception, job_class: type[Job] | None) -> str:
    """What the runner does with a failure: decide once, write it, tell the death handlers once it landed."""
    now = time.time()
    settlement = failure.decide(unit.raw, unit.payload(), exc, job_class, now)
    assert unit.settle(settlement, now)
    failure.buried(settlement)
    return settlement.outcome.value


def sweep(conn: redis.Redis) -> int:
    """One orphan sweep, whatever sweep ran before (the lock is cleared first)."""
    conn.delete(Keys().process_cleanup_lock)
    return Sweeper(conn, Keys(), 10.0).sweep()


def test_sidekiq_backoff_formula() -> None:
    random.seed(7)
    for count in (0, 1, 5, 24):
        delays = {failure.sidekiq_backoff(count) for _ in range(300)}
        assert delays == {float(count**4 + 15 + r * (count + 1)) for r in range(10)}


def test_fetch_moves_jobs_in_flight_and_ack_removes_them(wk: redis.Redis) -> None:
    for n in range(3):
        wk_jobs.Record.perform_async("k", n)
    fetch = ReliableFetch(wk, Keys(), "host:1:abcdef", [QueueSpec("default")])
    units = fetch.fetch(2)
    assert [json.loads(unit.raw)["args"][1] for unit in units] == [0, 1]
    assert wk.llen("queue:default") == 1 and wk.llen("inflight:host:1:abcdef:default") == 2
    units[0].ack()
    units[1].ack()
    assert fetch.fetch(0) == []
    assert wk.llen("inflight:host:1:abcdef:default") == 0
    assert int(wk.get("stat:processed")) == 2  # type: ignore[arg-type]


def test_weighted_order_is_random_and_strict_order_is_fixed() -> None:
    strict = fetch_order([QueueSpec("a"), QueueSpec("b")])
    assert {tuple(strict()) for _ in range(50)} == {(0, 1)}
    weighted = fetch_order([QueueSpec("a", 3), QueueSpec("b", 1)])
    firsts = [weighted()[0] for _ in range(2000)]
    assert 0.65 < firsts.count(0) / 2000 < 0.85
    with pytest.raises(ValueError, match="weight"):
        QueueSpec.parse("a,zero")


def test_failure_goes_to_retry_with_error_fields_then_dead(wk: redis.Redis) -> None:
    wk_jobs.Flaky.perform_async("k")
    fetch, unit = fetched(wk)
    before = time.time()
    assert fail(unit, RuntimeError("no"), wk_jobs.Flaky) == "retry"
    [(member, score)] = wk.zrange("retry", 0, -1, withscores=True)
    stored = json.loads(member)
    assert (stored["retry_count"], stored["error_class"], stored["error_message"]) == (0, "RuntimeError", "no")
    assert stored["failed_at"] >= before and "retried_at" not in stored
    assert JobView.parse(member).backtrace[-1] == "RuntimeError: no"  # stored compressed, as Sidekiq does
    assert before <= score <= time.time()  # Flaky's backoff is 0 s
    assert wk.llen(fetch.inflight_keys[0]) == 0
    stored["retry_count"] = 1
    wk.lpush(fetch.inflight_keys[0], encode(stored))
    again = UnitOfWork(fetch, 0, wk.lindex(fetch.inflight_keys[0], 0))  # type: ignore[arg-type]
    assert fail(again, RuntimeError("again"), wk_jobs.Flaky) == "dead"
    [dead] = [json.loads(member) for member in wk.zrange("dead", 0, -1)]
    assert (dead["retry_count"], dead["error_message"]) == (2, "again")
    assert wk.get("exhausted:k") == b"again"
    assert (wk.get("stat:failed"), wk.get("stat:processed")) == (b"2", b"2")


def test_retry_false_drops_and_retry_zero_kills(wk: redis.Redis) -> None:
    deaths: list[str] = []
    config.configure(death_handlers=[lambda payload, exc: deaths.append(payload["jid"])])
    wk_jobs.Record.set(retry=False).perform_async("k", 1)
    _, unit = fetched(wk)
    assert fail(unit, ValueError(), None) == "discarded"
    jid = wk_jobs.Record.set(retry=0).perform_async("k", 2)
    _, unit = fetched(wk)
    assert fail(unit, ValueError(), None) == "dead"
    assert deaths == [jid]
    assert wk.zcard("dead") == 1 and wk.zcard("retry") == 0


def test_dead_set_is_trimmed_on_insert(wk: redis.Redis) -> None:
    config.configure(dead_max_jobs=3, dead_timeout=100.0)
    wk.zadd("dead", {encode({"class": "Old", "args": [], "jid": "old"}): time.time() - 1000})
    for n in range(5):
        wk_jobs.Record.set(retry=0).perform_async("k", n)
        _, unit = fetched(wk)
        fail(unit, ValueError(str(n)), None)
    assert [json.loads(member)["error_message"] for member in wk.zrange("dead", 0, -1)] == ["2", "3", "4"]


def test_scheduler_moves_due_jobs_once_across_pollers(wk: redis.Redis) -> None:
    past, future = time.time() - 1, time.time() + 3600

    def entry(key: str, n: int) -> str:
        return encode({"class": "wk_jobs.Record", "args": [key, n], "jid": f"{key}{n:023x}", "queue": "q"})

    wk.zadd("schedule", {entry("k", n): past for n in range(250)})
    wk.zadd("retry", {entry("r", 0): past})
    wk.zadd("schedule", {entry("l", 0): future})
    results: list[int] = []
    pollers = [Scheduler(wk, Keys()) for _ in range(4)]
    threads = [threading.Thread(target=lambda s=s: results.append(s.promote_due())) for s in pollers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(results) == 251
    queued = [json.loads(raw) for raw in wk.lrange("queue:q", 0, -1)]
    assert len(queued) == 251 == len({payload["jid"] for payload in queued})
    assert all("enqueued_at" in payload for payload in queued)
    assert wk.zcard("schedule") == 1 and wk.zcard("retry") == 0


def test_orphans_go_back_and_poison_pills_die(wk: redis.Redis) -> None:
    jid = wk_jobs.Record.perform_async("k", 1)
    for recovery in range(1, POISON_PILL_RECOVERIES + 1):
        fetch, _ = fetched(wk)  # fetched by a process that never beats: its heartbeat "expired"
        assert sweep(wk) == 1
        assert wk.hlen("inflight_lists") == 0 and wk.llen(fetch.inflight_keys[0]) == 0
        if recovery < POISON_PILL_RECOVERIES:
            assert json.loads(wk.lindex("queue:default", 0))["recovered"] == recovery  # type: ignore[arg-type]
    assert wk.llen("queue:default") == 0
    [dead] = [json.loads(member) for member in wk.zrange("dead", 0, -1)]
    assert (dead["jid"], dead["error_class"]) == (jid, "workerkit.failure.PoisonPillError")
    assert "died 3 times" in dead["error_message"]


def test_orphan_sweep_spares_live_processes_and_runs_once_per_interval(wk: redis.Redis) -> None:
    wk_jobs.Record.perform_async("k", 1)
    fetched(wk)
    wk.hset(Keys().process("host:1:abcdef"), "beat", time.time())
    sweeper = Sweeper(wk, Keys(), 10.0)
    assert sweeper.sweep() == 0
    wk.delete(Keys().process("host:1:abcdef"))
    assert sweeper.sweep() == 0  # the lock outlives a sweep by one interval: one sweep per interval
    assert 9000 < wk.pttl(Keys().process_cleanup_lock) <= 10000
    assert sweep(wk) == 1




def test_reconcile_gives_back_jobs_whose_fetch_reply_was_lost(wk: redis.Redis) -> None:
    for n in range(3):
        wk_jobs.Record.perform_async("k", n)
    fetch = ReliableFetch(wk, Keys(), "host:1:abcdef", [QueueSpec("default")])
    held = fetch.fetch(2)
    wk.lmove("queue:default", fetch.inflight_keys[0], "RIGHT", "LEFT")  # moved, but the reply never came
    held[0].ack()
    assert fetch.reconcile() == 1
    assert [json.loads(raw)["args"][1] for raw in wk.lrange("queue:default", 0, -1)] == [2]
    assert sorted(wk.lrange(fetch.inflight_keys[0], 0, -1)) == sorted(unit.raw for unit in held)
    assert fetch.reconcile() == 0
