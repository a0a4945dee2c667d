"""``@job`` functions and ``Job`` classes offer the same push methods, and so does what ``set(...)`` returns
(issue 11: a function had no ``perform_async``, ``fn.set(...)`` had no ``delay``)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis
import wk_jobs

import workerkit

PUSHES = ["perform_async", "delay"]
LATER = ["perform_in", "delay_for"]
AT = ["perform_at", "delay_until"]


@pytest.mark.parametrize("job", [wk_jobs.Record, wk_jobs.send_mail], ids=["class", "function"])
@pytest.mark.parametrize("through_set", [False, True], ids=["direct", "set"])
def test_both_kinds_push_through_all_six_methods(wk: redis.Redis, job: Any, through_set: bool) -> None:
    target = job.set(queue="q1") if through_set else job
    queue = "q1" if through_set else ("mailers" if job is wk_jobs.send_mail else "default")
    now = time.time()
    jids = [getattr(target, name)("k", name) for name in PUSHES]
    jids += [getattr(target, name)(600, "k", name) for name in LATER]
    jids += [getattr(target, name)(now + 900, "k", name) for name in AT]
    assert len(set(jids)) == 6
    queued = [json.loads(raw) for raw in wk.lrange(f"queue:{queue}", 0, -1)]
    assert sorted(payload["args"][1] for payload in queued) == sorted(PUSHES)  # LPUSH: newest first
    scheduled = [(json.loads(raw), score) for raw, score in wk.zrange("schedule", 0, -1, withscores=True)]
    offsets = {payload["args"][1]: round(score - now, -1) for payload, score in scheduled}
    assert offsets == {"perform_in": 600, "delay_for": 600, "perform_at": 900, "delay_until": 900}
    assert all(payload["queue"] == queue for payload, _ in scheduled)
    assert {payload["class"] for payload in queued} == {job.job_class.job_name() if hasattr(job, "job_class")
                                                          else job.job_name()}
    assert workerkit.push_bulk(job, [("k", "bulk")], queue=queue)
    assert wk.llen(f"queue:{queue}") == 3
