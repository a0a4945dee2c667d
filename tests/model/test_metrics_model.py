"""A model of the metrics batch and its flush (hypothesis ``RuleBasedStateMachine``) against a real server.

Rules record runs (hostile class names, times from 0 to centuries, minutes up to an hour apart) and queue
latencies, flush them with a real fetch, or try a flush that never reaches Redis (a closed port) so the
batch takes them back. After every step: Redis holds exactly what the model says was flushed (each
minute's fields, each hour's as the sum of its minutes, the totals, the longest latency per minute and
queue, the class index), the batch is empty exactly when the model has nothing pending, and the reader's
windows (whole hours read from hour hashes, the rest minute by minute) add up to the model's minutes.
"""

from __future__ import annotations

import socket
import time
from collections import Counter

import pytest
import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from redis.backoff import NoBackoff
from redis.retry import Retry

from workerkit.keys import Keys
from workerkit.lifecycle import Lifecycle
from workerkit.metrics import BOUNDS_US, MetricsBatch, field_name
from workerkit.metrics_query import MetricsReader

KEYS = Keys()
NAMES = st.sampled_from(["", "a|b", "|n", "app.Job", "日本", "x" * 2000, "\U0001f600|us"])
NOW = (time.time() // 60) * 60


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MetricsMachine(RuleBasedStateMachine):
    url = ""

    def __init__(self) -> None:
        super().__init__()
        self.conn = redis.Redis.from_url(self.url)
        self.conn.flushdb()
        self.lifecycle = Lifecycle(self.conn, KEYS)
        unreachable = redis.Redis(host="127.0.0.1", port=closed_port(), retry=Retry(NoBackoff(), 0))
        self.lost = Lifecycle(unreachable, KEYS)
        self.batch = MetricsBatch()
        self.pending: Counter[tuple[int, str]] = Counter()
        self.flushed: Counter[tuple[int, str]] = Counter()
        self.latency_pending: dict[tuple[int, str], int] = {}
        self.latency_flushed: dict[tuple[int, str], int] = {}

    def teardown(self) -> None:
        self.conn.close()

    def ints(self, key: str) -> dict[str, int]:
        return {name.decode(): int(value) for name, value in self.conn.hgetall(key).items()}

    @rule(name=NAMES, micros=st.integers(0, 10**16), failed=st.booleans(), minute=st.integers(0, 60))
    def record(self, name: str, micros: int, failed: bool, minute: int) -> None:
        self.batch.record(name, micros / 1e6, failed, NOW + minute * 60)
        at = int(NOW // 60) + minute
        bucket = next((index for index, bound in enumerate(BOUNDS_US) if int(micros / 1e6 * 1e6) <= bound),
                      len(BOUNDS_US))
        self.pending.update({(at, field_name(name, "n")): 1, (at, field_name(name, "f")): int(failed),
                             (at, field_name(name, "us")): int(micros / 1e6 * 1e6),
                             (at, field_name(name, f"b{bucket}")): 1})

    @rule(queue=NAMES, millis=st.integers(0, 10**12), minute=st.integers(0, 60))
    def latency(self, queue: str, millis: int, minute: int) -> None:
        self.batch.latency(queue, millis / 1000, NOW + minute * 60)
        key = (int(NOW // 60) + minute, queue)
        self.latency_pending[key] = max(self.latency_pending.get(key, -1), int(millis / 1000 * 1000))

    @rule()
    def flush(self) -> None:
        self.lifecycle.fetch([], [], [], [], 0, [], NOW, self.batch.drain())
        self.flushed.update(self.pending)
        self.pending.clear()
        for key, millis in self.latency_pending.items():
            self.latency_flushed[key] = max(millis, self.latency_flushed.get(key, -1))
        self.latency_pending.clear()

    @rule()
    def flush_never_arrives(self) -> None:
        flush = self.batch.drain()
        with pytest.raises(redis.ConnectionError):
            self.lost.fetch([], [], [], [], 0, [], NOW, flush)
        self.batch.restore(flush)

    @invariant()
    def redis_holds_what_was_flushed(self) -> None:
        minutes = {minute for minute, _ in self.flushed} | {minute for minute, _ in self.latency_flushed}
        totals: Counter[str] = Counter()
        for minute in minutes:
            stored = self.ints(KEYS.metrics_minute(minute))
            expected = {name: count for (at, name), count in self.flushed.items() if at == minute and count}
            assert stored == expected
            totals.update(expected)
            latencies = {queue: ms for (at, queue), ms in self.latency_flushed.items() if at == minute}
            assert self.ints(KEYS.latency_minute(minute)) == latencies
        assert self.ints(KEYS.metrics_totals) == dict(+totals)
        for hour in {minute // 60 for minute in minutes}:
            in_hour: Counter[str] = Counter()
            for (at, name), count in self.flushed.items():
                if at // 60 == hour:
                    in_hour[name] += count
            assert self.ints(KEYS.metrics_hour(hour)) == dict(+in_hour)
        classes = {name.rpartition("|")[0] for (_, name), count in self.flushed.items() if count}
        assert {member.decode() for member in self.conn.zrange(KEYS.metrics_classes, 0, -1)} == classes

    @invariant()
    def windows_add_up_to_their_minutes(self) -> None:
        now = NOW + 60 * 60 + 30  # in the model's last minute
        last = int(now // 60)
        reader = MetricsReader(self.conn, KEYS)
        for minutes in (1, 7, 45, 61, 100, 130):
            expected: Counter[str] = Counter()
            for (at, name), count in self.flushed.items():
                if last - minutes < at <= last and name.endswith("|n"):
                    expected[name.rpartition("|")[0]] += count
            found = {metrics.name: metrics.runs for metrics in reader.classes(minutes, now) if metrics.runs}
            assert found == dict(+expected), minutes
            for name in list(expected)[:2]:
                for slots in (60, 1):  # 1: one slot of the whole window, in whole hours from 61 minutes on
                    series = reader.series(name, minutes, slots, now)
                    assert series.total.runs == expected[name] == sum(slot.runs for slot in series.slots)

    @invariant()
    def the_batch_is_empty_when_nothing_is_pending(self) -> None:
        assert bool(self.batch) == bool(+self.pending or self.latency_pending)


def test_metrics_reach_redis_exactly_once_each(redis_url: str) -> None:
    MetricsMachine.url = redis_url
    run_state_machine_as_test(MetricsMachine, settings=settings(
        max_examples=60, stateful_step_count=15, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    ))
