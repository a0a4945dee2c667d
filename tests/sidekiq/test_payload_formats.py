"""Both generations of Sidekiq's job timestamps: float seconds (6/7) and integer milliseconds (8).

workerkit reads both everywhere and writes the one configured with ``payload_format`` (no Ruby needed).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

import workerkit
from workerkit import config
from workerkit.api import Api
from workerkit.compat import to_seconds
from workerkit.failure import record_error
from workerkit.keys import Keys
from workerkit.scheduler import Scheduler
from workerkit.sets import JobSet

TIMESTAMPS = ("created_at", "enqueued_at", "failed_at", "retried_at")


@pytest.fixture(params=["sidekiq7", "sidekiq8"])
def payload_format(request: pytest.FixtureRequest, wk: redis.Redis) -> Iterator[str]:
    workerkit.configure(payload_format=request.param)
    yield request.param


def stored(conn: redis.Redis, key: str) -> dict[str, Any]:
    raw = conn.lindex(key, 0) if conn.type(key) == b"list" else conn.zrange(key, 0, 0)[0]
    payload: dict[str, Any] = json.loads(raw)  # type: ignore[arg-type]
    return payload


def assert_written_as(payload_format: str, value: object, near: float) -> None:
    if payload_format == "sidekiq7":
        assert type(value) is float and abs(value - near) < 60
    else:
        assert type(value) is int and abs(value - near * 1000) < 60_000


def test_every_timestamp_is_written_in_the_configured_format(wk: redis.Redis, payload_format: str) -> None:
    now = time.time()
    workerkit.push("RubyWorker", args=[1], queue="rb")
    queued = stored(wk, "queue:rb")
    assert_written_as(payload_format, queued["created_at"], now)
    assert_written_as(payload_format, queued["enqueued_at"], now)

    workerkit.push_bulk("RubyWorker", [[2], [3]], queue="bulk")
    bulk = stored(wk, "queue:bulk")
    assert_written_as(payload_format, bulk["created_at"], now)
    assert_written_as(payload_format, bulk["enqueued_at"], now)

    workerkit.push("RubyWorker", args=[4], queue="later", at=now + 0.05)
    assert "enqueued_at" not in stored(wk, "schedule")
    assert Scheduler(wk, Keys()).promote_due(now + 1) == 1
    assert_written_as(payload_format, stored(wk, "queue:later")["enqueued_at"], now)

    record_error(queued, ValueError("first"), now)
    record_error(queued, ValueError("second"), now + 5)
    assert_written_as(payload_format, queued["failed_at"], now)
    assert_written_as(payload_format, queued["retried_at"], now + 5)


def test_the_default_is_what_sidekiq_7_reads(wk: redis.Redis) -> None:
    assert config.current().payload_format == "sidekiq7"
    workerkit.push("RubyWorker", args=[1], queue="rb")
    assert type(stored(wk, "queue:rb")["created_at"]) is float


def test_an_unknown_format_is_refused_with_its_name(wk: redis.Redis) -> None:
    with pytest.raises(ValueError, match="payload_format must be one of sidekiq7, sidekiq8, not 'sidekiq9'"):
        workerkit.configure(payload_format="sidekiq9")
    assert config.current().payload_format == "sidekiq7"


@pytest.mark.parametrize("generation", ["sidekiq7", "sidekiq8"])
def test_both_generations_are_read_alike(wk: redis.Redis, generation: str) -> None:
    enqueued = time.time() - 30
    stamp: float | int = enqueued if generation == "sidekiq7" else int(enqueued * 1000)
    job = {"class": "HardWorker", "args": [1], "jid": "b" * 24, "queue": "py", "retry": True,
           "created_at": stamp, "enqueued_at": stamp, "failed_at": stamp, "retried_at": stamp, "retry_count": 1,
           "error_class": "RuntimeError", "error_message": "boom"}
    wk.sadd("queues", "py")
    wk.lpush("queue:py", json.dumps(job))
    wk.zadd("retry", {json.dumps(job): enqueued + 3600})
    api = Api()

    [queue] = api.queues()
    assert 29 <= queue.latency < 90
    [entry] = api.sorted_set(JobSet.RETRIES).page().jobs
    for name in TIMESTAMPS:
        assert entry.time(name) == pytest.approx(enqueued, abs=0.001)
    assert entry.score == pytest.approx(enqueued + 3600)  # scores are seconds in every generation


def test_to_seconds_tells_the_generations_apart() -> None:
    assert to_seconds(1_700_000_000.25) == 1_700_000_000.25
    assert to_seconds(1_700_000_000) == 1_700_000_000.0  # Sidekiq's integer run_at
    assert to_seconds(1_700_000_000_250) == 1_700_000_000.25
    assert [to_seconds(value) for value in (None, "1700000000", True)] == [None, None, None]
