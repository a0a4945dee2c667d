"""Per-job time limits in real ``workerkit worker`` processes: a job past its ``timeout`` is interrupted with
``workerkit.JobTimeout`` and fails through retry and the dead set; jobs under their limit are untouched; the
worker's ``--job-timeout`` applies to jobs that set none; the thread goes on to run the next job."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import redis
import wk_jobs
from polling import wait_for

import workerkit

StartWorker = Callable[..., Any]


def members(conn: redis.Redis, key: str) -> list[dict[str, Any]]:
    return [json.loads(member) for member in conn.zrange(key, 0, -1)]


def test_the_option_is_a_payload_field_and_bad_values_fail_at_the_call_site() -> None:
    assert wk_jobs.SpinLimited.set().payload(("k",))["timeout"] == 0.5
    assert wk_jobs.Spin.set(timeout=30).payload(("k",))["timeout"] == 30
    assert "timeout" not in wk_jobs.Spin.set().payload(("k",))
    assert wk_jobs.spin_patient.set().payload(("k", 1))["timeout"] == 30
    with pytest.raises(ValueError, match="timeout must be more than 0 seconds"):
        wk_jobs.Spin.set(timeout=0)
    with pytest.raises(TypeError, match="timeout must be a number of seconds"):
        wk_jobs.Spin.set(timeout="30")


def test_a_job_past_its_timeout_is_interrupted_retried_or_killed_and_the_thread_runs_the_next_job(
    wk: redis.Redis, start_worker: StartWorker
) -> None:
    worker = start_worker("-c", "1")
    limited = wk_jobs.SpinLimited.perform_async("limited")
    wait_for(lambda: wk.zcard("retry") == 1, what="the job past its class timeout in the retry set")
    doomed = wk_jobs.Spin.set(timeout=0.5, retry=0).perform_async("doomed")
    wait_for(lambda: wk.zcard("dead") == 1, what="the job past its push timeout in the dead set")
    assert workerkit.client.build_payload("wk_jobs.SpinLimited", [], {})["timeout"] == 0.5  # by name: the class's
    foreign = {"class": "wk_jobs.SpinLimited", "args": ["by-name"], "jid": "f" * 24, "queue": "default", "retry": 0}
    wk.lpush("queue:default", json.dumps(foreign))  # from Ruby, no timeout field: the class's applies in the worker
    by_name = foreign["jid"]
    wait_for(lambda: wk.zcard("dead") == 2, what="the job pushed by name in the dead set")
    wk_jobs.Record.perform_async("after", "ok")
    wait_for(lambda: wk.lrange("after", 0, -1) == [b"ok"], what="the next job on the same thread")
    [retried] = members(wk, "retry")
    dead = {entry["jid"]: entry for entry in members(wk, "dead")}
    assert (retried["jid"], retried["retry_count"], retried["error_class"]) == (limited, 0, "workerkit.JobTimeout")
    assert sorted(dead) == sorted([doomed, by_name]) and "timeout" not in dead[by_name]
    for entry in [retried, *dead.values()]:
        assert (entry["error_class"], entry["error_message"]) == (
            "workerkit.JobTimeout", "the job ran longer than its timeout of 0.5 s")
    assert [wk.get(f"started:{key}") for key in ("limited", "doomed", "by-name")] == [b"1"] * 3
    assert [wk.get(key) for key in ("limited", "doomed", "by-name")] == [None] * 3
    wait_for(lambda: wk.get("stat:failed") == b"3" and wk.get("stat:processed") == b"4", what="the stats")
    assert worker.stop() == 0
    assert "Traceback" not in worker.output()


def test_the_worker_default_applies_and_the_job_own_timeout_wins(wk: redis.Redis, start_worker: StartWorker) -> None:
    worker = start_worker("-c", "3", "--job-timeout", "0.5")
    endless = wk_jobs.Spin.set(retry=0).perform_async("endless")
    wk_jobs.Spin.set(timeout=30).perform_async("patient", 1.5)
    wk_jobs.spin_patient.delay("decorated", 1.5)
    wait_for(lambda: wk.get("patient") == b"1" and wk.get("decorated") == b"1", what="both longer limits to hold")
    wait_for(lambda: wk.zcard("dead") == 1, what="the job under the worker default in the dead set")
    [dead] = members(wk, "dead")
    assert (dead["jid"], dead["error_class"]) == (endless, "workerkit.JobTimeout")
    assert dead["error_message"] == "the job ran longer than its timeout of 0.5 s"
    assert wk.zcard("retry") == 0 and wk.get("endless") is None
    assert worker.stop() == 0
