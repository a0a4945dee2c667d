"""``@job`` functions and ``Job`` classes offer the same push methods, and so does what ``set(...)`` returns
(issue 11: a function had no ``perform_async``, ``fn.set(...)`` had no ``delay``)."""

from __future__ import annotations

import functools
import json
import time
from typing import Any

import pytest
import redis
import wk_jobs
from test_wk_testing_and_cli import run_cli

import workerkit
from workerkit import job

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


@pytest.mark.parametrize(("push", "message"), [
    (lambda: wk_jobs.Record.perform_async("k"), r"^wk_jobs\.Record\(key: 'str', value: 'Any'\) .*\['k'\].*missing"),
    (lambda: wk_jobs.Record.set(queue="x").perform_in(5, "k", 1, 2), r"^wk_jobs\.Record\(.*too many"),
    (lambda: wk_jobs.send_mail.delay("k"), r"^wk_jobs\.send_mail\(key: 'str', address: 'str'\).*missing"),
    (lambda: wk_jobs.send_mail.set(queue="x").delay_until(0, 1, 2, 3), r"^wk_jobs\.send_mail\(.*too many"),
    (lambda: workerkit.push("wk_jobs.Record", []), r"^wk_jobs\.Record\(.*missing"),
    (lambda: workerkit.push_bulk(wk_jobs.send_mail, [("k", "a"), ("k",)]), r"^wk_jobs\.send_mail\(.*\['k'\]"),
])
def test_wrong_arguments_raise_at_the_call_site_naming_the_job(wk: redis.Redis, push: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        push()
    assert wk.dbsize() == 0  # nothing pushed, the good bulk entry included


def test_a_name_not_registered_here_is_pushed_unchecked(wk: redis.Redis) -> None:
    assert workerkit.push("OtherService::Mailer", [1, 2, 3])
    assert wk.llen("queue:default") == 1


def test_workerkit_run_with_wrong_arguments_is_a_usage_error(redis_url: str, redis_client: redis.Redis) -> None:
    result = run_cli("run", "wk_jobs.Record", "only-key", url=redis_url)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "wk_jobs.Record(key: 'str', value: 'Any') cannot take the arguments ['only-key']" in result.stderr
    assert redis_client.dbsize() == 0


@pytest.mark.parametrize("target", [dict.fromkeys, len, functools.partial(print, 1), str.upper])
def test_job_refuses_what_a_worker_could_not_find_by_a_dotted_path(target: Any) -> None:
    with pytest.raises(TypeError, match=r"^@job needs a function written with def or async def in a module"):
        job(target)
