"""A failed job's own last log lines, kept with its payload by real worker processes: bounded, per run (a
retry's lines replace the first run's), hostile lines made storable, async jobs too, and none with
``--no-job-logs``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import redis
import wk_async_jobs
import wk_jobs
from polling import wait_for

from workerkit.job_logs import MAX_LINE, MAX_LINES
from workerkit.keys import Keys

KEYS = Keys()


def entries(conn: redis.Redis, key: str, count: int = 1) -> list[dict[str, Any]]:
    raws = wait_for(lambda: (found := conn.zrange(key, 0, -1)) and len(found) == count and found, f"jobs in {key}")
    return sorted((json.loads(raw) for raw in raws), key=lambda entry: entry["args"])


def test_a_failed_run_keeps_its_last_lines_and_a_retry_replaces_them(
    wk: redis.Redis, start_worker: Callable[..., Any]
) -> None:
    start_worker("-c", "2", env={"WORKERKIT_POLL_INTERVAL": "0.2"})
    wk_jobs.LogsThenFails.perform_async(3)
    wk_jobs.LogsThenFails.perform_async(30)
    few, many = entries(wk, KEYS.dead, 2)  # each failed into the retry set, then into the dead set
    assert [line.split(" ", 1)[1] for line in few["error_log"][:-1]] == [
        "INFO wk_jobs.logs: attempt 2 line 0", "INFO wk_jobs.logs: attempt 2 line 1"]  # the first run's are gone
    lines = many["error_log"]
    assert len(lines) == MAX_LINES
    assert [line.split(" ", 1)[1] for line in lines[:-1]] == [
        f"INFO wk_jobs.logs: attempt 2 line {n}" for n in range(10, 29)]
    last = lines[-1]
    assert len(last) == MAX_LINE and " WARNING wk_jobs.logs: attempt 2: <b>bad</b> ? xxx" in last
    assert many["error_message"] == "attempt 2 failed"


def test_an_async_job_keeps_the_lines_of_its_task(wk: redis.Redis, start_worker: Callable[..., Any]) -> None:
    start_worker("-r", "wk_async_jobs")
    wk_async_jobs.AsyncLogsThenFails.perform_async("k")
    [dead] = entries(wk, KEYS.dead)
    lines = dead["error_log"]
    assert [line.split(" ", 2)[2] for line in lines] == ["wk_async_jobs: before the await k",
                                                         "wk_async_jobs: after the await k"]


def test_no_lines_are_kept_with_no_job_logs(wk: redis.Redis, start_worker: Callable[..., Any]) -> None:
    start_worker("--no-job-logs")
    wk_jobs.LogsThenFails.perform_async(3)
    [dead] = entries(wk, KEYS.dead)  # both runs failed: its retry, due at once, may come and go between two polls
    assert "error_log" not in dead and dead["retry_count"] == 1
