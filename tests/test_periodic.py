"""Periodic jobs against a real server: exactly once per tick across threads and processes, no replay."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import redis

from workerkit import Job, job
from workerkit.keys import Keys
from workerkit.periodic import (
    CATCH_UP_SECONDS,
    PeriodicJob,
    enqueue_due,
    periodic,
    register,
    registered,
    unregister_all,
)

KEYS = Keys()
# 2026-07-01 10:00:00 UTC, a Wednesday: a whole hour, so "*/5" and "0 *" both tick here.
T0 = datetime(2026, 7, 1, 10, 0, tzinfo=ZoneInfo("UTC")).timestamp()


@pytest.fixture(autouse=True)
def empty_registry() -> Iterator[None]:
    unregister_all()
    yield
    unregister_all()


def queued(client: redis.Redis, queue: str = "default") -> list[dict[str, object]]:
    return [json.loads(raw) for raw in reversed(client.lrange(KEYS.queue(queue), 0, -1))]


def test_latest_and_next_tick_follow_the_time_zone() -> None:
    entry = register("0 9 * * *", "app.jobs.Report", tz="Europe/Berlin")
    summer_now = datetime(2026, 7, 1, 8, 30, tzinfo=ZoneInfo("UTC")).timestamp()  # 10:30 in Berlin (CEST)
    winter_now = datetime(2026, 1, 15, 8, 30, tzinfo=ZoneInfo("UTC")).timestamp()  # 09:30 in Berlin (CET)
    assert entry.latest_tick(summer_now) == datetime(2026, 7, 1, 7, 0, tzinfo=ZoneInfo("UTC")).timestamp()
    assert entry.next_tick(summer_now) == datetime(2026, 7, 2, 7, 0, tzinfo=ZoneInfo("UTC")).timestamp()
    assert entry.latest_tick(winter_now) == datetime(2026, 1, 15, 8, 0, tzinfo=ZoneInfo("UTC")).timestamp()


def test_a_tick_exactly_now_is_the_latest_tick() -> None:
    entry = register("*/5 * * * *", "app.jobs.Sweep")
    assert entry.latest_tick(T0) == T0
    assert entry.latest_tick(T0 + 299.9) == T0
    assert entry.latest_tick(T0 - 0.5) == T0 - 300


def test_a_due_tick_is_enqueued_once_with_a_full_payload(redis_client: redis.Redis) -> None:
    register("*/5 * * * *", "app.jobs.Sweep", args=[7, "x"], queue="critical", name="sweep")

    assert enqueue_due(redis_client, KEYS, T0 + 2) == 1
    assert enqueue_due(redis_client, KEYS, T0 + 3) == 0
    assert enqueue_due(redis_client, KEYS, T0 + 299) == 0

    [job] = queued(redis_client, "critical")
    assert (job["class"], job["args"], job["queue"]) == ("app.jobs.Sweep", [7, "x"], "critical")
    assert job["periodic"] == "sweep"
    assert job["enqueued_at"] == T0 + 2 and len(str(job["jid"])) == 24
    assert redis_client.smembers(KEYS.queues) == {b"critical"}
    record = json.loads(redis_client.hget(KEYS.periodic, "sweep") or b"{}")
    assert record == {
        "name": "sweep",
        "cron": "*/5 * * * *",
        "class": "app.jobs.Sweep",
        "args": [7, "x"],
        "queue": "critical",
        "tz": "UTC",
        "retry": True,
        "last_run": T0,
        "last_jid": job["jid"],
    }
    assert redis_client.ttl(KEYS.periodic_tick("sweep", int(T0))) > CATCH_UP_SECONDS

    assert enqueue_due(redis_client, KEYS, T0 + 300) == 1
    assert len(queued(redis_client, "critical")) == 2


def test_a_missed_tick_is_not_replayed_but_the_job_is_listed(redis_client: redis.Redis) -> None:
    register("*/5 * * * *", "app.jobs.Sweep", name="sweep")

    assert enqueue_due(redis_client, KEYS, T0 + CATCH_UP_SECONDS + 1) == 0

    assert queued(redis_client) == []
    record = json.loads(redis_client.hget(KEYS.periodic, "sweep") or b"{}")
    assert record["cron"] == "*/5 * * * *" and "last_run" not in record
    assert enqueue_due(redis_client, KEYS, T0 + 300) == 1


def test_threads_racing_on_every_tick_enqueue_each_tick_once(redis_client: redis.Redis) -> None:
    register("* * * * *", "app.jobs.Minutely", name="minutely")
    register("*/2 * * * *", "app.jobs.EveryOther", name="every-other")
    ticks = [T0 + 60 * minute + 1 for minute in range(10)]
    barrier = threading.Barrier(8)
    pushed: list[int] = []

    def race() -> None:
        client = redis.Redis(connection_pool=redis_client.connection_pool)
        count = 0
        for now in ticks:
            barrier.wait(timeout=30)
            count += enqueue_due(client, KEYS, now)
        pushed.append(count)

    threads = [threading.Thread(target=race) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(pushed) == 8 and sum(pushed) == 15
    classes = [job["class"] for job in queued(redis_client)]
    assert classes.count("app.jobs.Minutely") == 10 and classes.count("app.jobs.EveryOther") == 5


CHILD = """
import sys, redis
from workerkit.keys import Keys
from workerkit.periodic import enqueue_due, register
register("* * * * *", "app.jobs.Minutely", name="minutely")
client = redis.Redis.from_url(sys.argv[1])
start = float(sys.argv[2])
print(sum(enqueue_due(client, Keys(), start + 60 * minute + 1) for minute in range(20)))
"""


def test_processes_racing_on_every_tick_enqueue_each_tick_once(redis_url: str, redis_client: redis.Redis) -> None:
    children = [
        subprocess.Popen([sys.executable, "-c", CHILD, redis_url, str(T0)], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    counts = [int(child.communicate(timeout=60)[0]) for child in children]

    assert [child.returncode for child in children] == [0, 0, 0, 0]
    assert sum(counts) == 20
    assert len({job["jid"] for job in queued(redis_client)}) == 20


def test_the_decorator_registers_the_job_and_returns_it_unchanged() -> None:
    @periodic("0 3 * * *", tz="Europe/Berlin", args=[1])
    @job(queue="low", retry=3)
    def nightly(days: int) -> int:
        return days

    class Cleanup(Job):
        queue = "maintenance"

    periodic("*/10 * * * *", Cleanup)

    assert nightly(5) == 5
    local = f"{__name__}.test_the_decorator_registers_the_job_and_returns_it_unchanged.<locals>"
    assert registered() == [
        PeriodicJob(f"{local}.nightly", "0 3 * * *", f"{local}.nightly", (1,), "low", "Europe/Berlin", 3),
        PeriodicJob(f"{local}.Cleanup", "*/10 * * * *", f"{local}.Cleanup", (), "maintenance", "UTC", True),
    ]


def test_something_that_is_not_a_job_is_refused() -> None:
    with pytest.raises(TypeError, match=r"^periodic: <built-in function print> is not a job class"):
        periodic("* * * * *", print)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cron": "61 * * * *"}, "invalid cron expression '61 * * * *'"),
        ({"tz": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"args": [object()]}, "job argument args[0] is a object"),
    ],
)
def test_bad_declarations_fail_at_once_with_a_clear_message(kwargs: dict[str, object], message: str) -> None:
    declaration: dict[str, object] = {"cron": "* * * * *", "job": "app.jobs.X", **kwargs}
    with pytest.raises(ValueError, match=r"^periodic: ") as failure:
        periodic(**declaration)  # type: ignore[arg-type]
    assert message in str(failure.value)


def test_one_name_cannot_hold_two_schedules() -> None:
    periodic("* * * * *", "app.jobs.X", name="x")
    periodic("* * * * *", "app.jobs.X", name="x")
    with pytest.raises(ValueError, match="'x' is already declared"):
        periodic("*/2 * * * *", "app.jobs.X", name="x")
