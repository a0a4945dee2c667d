"""Per-class metrics on a real server: what the fetch writes (exact fields, TTLs, the class index), that it
rides on the fetch (one command per fetch), hostile class names, the reader's windows and percentiles,
and real worker processes with metrics on and off."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import redis
import wk_jobs
from polling import wait_for

import workerkit
from workerkit.fetch import QueueSpec, ReliableFetch
from workerkit.keys import Keys
from workerkit.lifecycle import Lifecycle
from workerkit.metrics import BOUNDS_US, BUCKETS, RETENTION_MINUTES, MetricsBatch
from workerkit.metrics_query import ClassMetrics, MetricsReader, current_minute

KEYS = Keys()
HOSTILE = ["", "a|b|n", "x" * 100_000, "日本語.Job", "with space\n|us"]


def fetcher(conn: redis.Redis) -> ReliableFetch:
    return ReliableFetch(conn, KEYS, "host:1:abcdef", [QueueSpec("default")])


def sent_during(url: str, conn: redis.Redis, action: Callable[[], Any]) -> list[str]:
    """The commands clients sent while ``action`` ran, as MONITOR saw them (a script's own calls left out)."""
    watcher = redis.Redis.from_url(url)  # its own connection
    with watcher.monitor() as monitor:
        action()
        conn.echo("end of action")
        seen = []
        while (entry := monitor.next_command())["command"] != "ECHO end of action":
            if entry["client_type"] != "lua":
                seen.append(entry["command"].split()[0].upper())
    watcher.close()
    return seen


def test_a_fetch_writes_the_runs_it_acknowledges_in_the_same_command(wk: redis.Redis, redis_url: str) -> None:
    workerkit.push_bulk("app.Job", [(n,) for n in range(3)])
    fetch = fetcher(wk)
    units = fetch.fetch(3)
    units[0].ack("app.Job", 0.003)  # bucket 4 (<= 4 ms)
    units[1].ack("app.Job", 0.00025)  # bucket 0: a bound is inclusive
    units[2].count_failure("app.Job", 0.0)
    assert sent_during(redis_url, wk, lambda: fetch.fetch(0)) == ["EVALSHA"]  # acks, counts and metrics together

    minute = current_minute()
    assert wk.hgetall(KEYS.metrics_minute(minute)) == {
        b"app.Job|n": b"3", b"app.Job|f": b"1", b"app.Job|us": b"3250", b"app.Job|b0": b"2", b"app.Job|b4": b"1",
    }
    assert wk.hgetall(KEYS.metrics_totals) == wk.hgetall(KEYS.metrics_minute(minute))
    assert wk.hgetall(KEYS.metrics_hour(minute // 60)) == wk.hgetall(KEYS.metrics_minute(minute))
    assert (RETENTION_MINUTES + 60) * 60 < wk.ttl(KEYS.metrics_hour(minute // 60)) <= (RETENTION_MINUTES + 61) * 60
    assert wk.zrange(KEYS.metrics_classes, 0, -1, withscores=True) == [(b"app.Job", float(minute))]
    assert RETENTION_MINUTES * 60 < wk.ttl(KEYS.metrics_minute(minute)) <= (RETENTION_MINUTES + 1) * 60
    assert 0 <= int(wk.hget(KEYS.latency_minute(minute), "default") or -1) < 5_000
    assert 0 < wk.ttl(KEYS.latency_minute(minute)) <= (RETENTION_MINUTES + 1) * 60
    assert int(wk.get(KEYS.stat("processed")) or 0) == 2


def test_metrics_wait_at_most_a_second_without_a_fetch_and_nothing_is_written_when_off(wk: redis.Redis) -> None:
    workerkit.push_bulk("app.Job", [(1,), (2,)])
    on, off = fetcher(wk), ReliableFetch(wk, KEYS, "host:2:abcdef", [QueueSpec("default")], metrics=False)
    [first] = on.fetch(1)
    [second] = off.fetch(1)
    first.count_failure("app.Job", 1.0)
    deadline = on.ack_deadline()
    assert deadline is not None and 0.9 < deadline - time.monotonic() <= 1.0
    second.count_failure("app.Job", 1.0)
    assert off.ack_deadline() is None and off.fetch(0) == []
    assert on.fetch(0) == [] and on.ack_deadline() is None
    assert wk.hgetall(KEYS.metrics_totals) == {b"app.Job|n": b"1", b"app.Job|f": b"1", b"app.Job|us": b"1000000",
                                               b"app.Job|b12": b"1"}  # <= 1.024 s


def test_hostile_class_names_and_huge_times_come_back_as_they_went(wk: redis.Redis) -> None:
    lifecycle = Lifecycle(wk, KEYS)
    batch = MetricsBatch()
    now = time.time()
    for index, name in enumerate(HOSTILE):
        for _ in range(index + 1):
            batch.record(name, 10.0**9, True, now)  # 31 years: past the last bound
    lifecycle.fetch([], [], [], [], 0, [], now, batch.drain())

    found = {metrics.name: metrics for metrics in MetricsReader(wk, KEYS).classes(60, now)}
    assert sorted(found) == sorted(HOSTILE)
    for index, name in enumerate(HOSTILE):
        expected = [0] * BUCKETS
        expected[-1] = index + 1
        assert found[name] == ClassMetrics(name, index + 1, index + 1, (index + 1) * 10**15, expected)
        assert found[name].percentile(0.5) == math.inf
    assert {m.name for m in MetricsReader(wk, KEYS).totals()} == set(HOSTILE)


def test_windows_series_percentiles_and_the_class_index_trim(wk: redis.Redis) -> None:
    lifecycle, reader = Lifecycle(wk, KEYS), MetricsReader(wk, KEYS)
    now = time.time()
    batch = MetricsBatch()
    for millis in range(1, 101):  # 1..100 ms, one run each, in the current minute
        batch.record("app.Timed", millis / 1000, millis > 95, now)
    batch.record("app.Timed", 0.001, False, now - 30 * 60)  # half an hour ago
    batch.record("app.Gone", 0.001, False, now - (RETENTION_MINUTES + 5) * 60)  # older than 72 h
    lifecycle.fetch([], [], [], [], 0, [], now, batch.drain())

    assert wk.zrange(KEYS.metrics_classes, 0, -1) == [b"app.Timed"]  # the old class left the index
    [recent] = reader.classes(10, now)
    assert (recent.name, recent.runs, recent.failures, recent.micros) == ("app.Timed", 100, 5, 5_050_000)
    assert recent.failure_rate == 0.05
    # ranks 50, 95, 99 are 50, 95, 99 ms: buckets <= 64 ms, <= 128 ms, <= 128 ms
    assert [recent.percentile(p) for p in (0.5, 0.95, 0.99)] == [0.064, 0.128, 0.128]
    assert reader.classes(60, now)[0].runs == 101

    series = reader.series("app.Timed", 60, slots=12, now=now)
    assert series.slot_minutes == 5 and len(series.slots) == 12 and series.total.runs == 101
    assert [slot.runs for slot in series.slots][-1] == 100
    assert sum(slot.runs for slot in series.slots) == 101
    assert reader.series("nobody", 60, now=now).total.runs == 0


def test_three_days_read_hours_and_an_hour_without_its_hash_is_read_by_minute(wk: redis.Redis, redis_url: str) -> None:
    lifecycle, reader = Lifecycle(wk, KEYS), MetricsReader(wk, KEYS)
    now = time.time()
    batch = MetricsBatch()
    for minutes_ago in range(0, RETENTION_MINUTES, 7):  # a run every 7 minutes for 72 hours
        batch.record("app.Steady", 0.002, False, now - minutes_ago * 60)
        lifecycle.fetch([], [], [], [], 0, [], now, batch.drain())
    runs = len(range(0, RETENTION_MINUTES, 7))
    commands = sent_during(redis_url, wk, lambda: reader.classes(RETENTION_MINUTES, now))
    assert commands == ["HGETALL"] * len(commands) and len(commands) <= 59 + 73  # not one per minute
    assert reader.classes(RETENTION_MINUTES, now)[0].runs == runs
    series = reader.series("app.Steady", RETENTION_MINUTES, 60, now)
    assert series.slot_minutes == 120 and series.first_minute % 60 == 0 and series.total.runs == runs
    assert sum(slot.runs for slot in series.slots) == runs
    wk.delete(KEYS.metrics_hour(current_minute(now) // 60 - 5))  # as for hours written before hours were kept
    assert reader.classes(RETENTION_MINUTES, now)[0].runs == runs
    assert reader.series("app.Steady", RETENTION_MINUTES, 60, now).total.runs == runs


def test_the_reader_ignores_fields_it_did_not_write(wk: redis.Redis) -> None:
    minute = current_minute()
    wk.hset(KEYS.metrics_minute(minute), mapping={"nobar": 1, "x|n": "NaN", "x|b99": 1, "x|zz": 4, "x|f": 2})
    assert MetricsReader(wk, KEYS).classes(1) == [ClassMetrics("x", 0, 2)]
    assert ClassMetrics("x").percentile(0.5) is None
    assert BOUNDS_US[0] == 250 and BOUNDS_US[-1] == 250 * 2**24


def test_real_workers_record_each_run_once(wk: redis.Redis, start_worker: Callable[..., Any]) -> None:
    start_worker("-c", "3", env={"WORKERKIT_POLL_INTERVAL": "0.2"})
    workerkit.push_bulk("wk_jobs.Record", [("runs", n) for n in range(4)])
    wk_jobs.Flaky.perform_async("flaky")  # fails 3 times: twice retried, then dead
    wait_for(lambda: wk.llen("runs") == 4 and wk.zcard(KEYS.dead) == 1, "the jobs to end")

    def recorded() -> dict[str, tuple[int, int]]:
        found = {m.name: (m.runs, m.failures) for m in MetricsReader(wk, KEYS).classes(60)}
        return found if found.get("wk_jobs.Flaky") == (3, 3) else {}

    assert wait_for(recorded, "the failures' metrics") == {"wk_jobs.Record": (4, 0), "wk_jobs.Flaky": (3, 3)}
    [latency] = MetricsReader(wk, KEYS).latency(["default"], 2).values()
    assert any(value is not None for value in latency)


def test_a_worker_without_metrics_writes_none(wk: redis.Redis, start_worker: Callable[..., Any]) -> None:
    start_worker("--no-metrics")
    workerkit.push_bulk("wk_jobs.Record", [("runs", n) for n in range(3)])
    # the acknowledgements are counted by the same script that would write their metrics
    wait_for(lambda: int(wk.get(KEYS.stat("processed")) or 0) == 3, "the jobs to be acknowledged")
    assert not wk.exists(KEYS.metrics_totals, KEYS.metrics_classes, KEYS.metrics_minute(current_minute()))
