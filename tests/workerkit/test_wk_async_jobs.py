"""``async def`` jobs: awaited on the worker's event loop beside the threads, with the lifecycle of every job
(ack, retry, dead set, time limits, graceful TERM, middleware, logs), awaited by ``testing`` and
``workerkit run``, and pushed from async code with the awaitable API. Real worker processes, real servers."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
import redis
import wk_async_jobs
import wk_jobs
from polling import wait_for
from test_wk_testing_and_cli import run_cli

import workerkit
from workerkit import testing

StartWorker = Callable[..., Any]


def members(conn: redis.Redis, key: str) -> list[dict[str, Any]]:
    return [json.loads(member) for member in conn.zrange(key, 0, -1)]


def where_the_jobs_are(conn: redis.Redis) -> dict[str, Any]:
    """Every place a job can be after a stop, and who is connected: what a failed count reports."""
    return {"queued": conn.llen("queue:default"), "retry": members(conn, "retry"), "dead": members(conn, "dead"),
            "inflight": {key: conn.lrange(key, 0, -1) for key in conn.keys("inflight:*")},
            "keys": sorted(conn.keys("*")), "clients": conn.client_list()}


def start_async_worker(start_worker: StartWorker, *args: str) -> Any:
    return start_worker("-r", "wk_async_jobs", *args)


def test_async_jobs_run_on_the_loop_beside_plain_jobs_with_their_logs(
    wk: redis.Redis, start_worker: StartWorker
) -> None:
    worker = start_async_worker(start_worker, "-c", "2", "-q", "default", "-q", "async")
    jid = wk_async_jobs.async_logs.delay("threads")
    for number in range(20):
        wk_async_jobs.AsyncRecord.perform_async("awaited", number)
        wk_jobs.Record.perform_async("plain", number)
    wait_for(lambda: wk.llen("awaited") == 20 and wk.llen("plain") == 20 and wk.llen("threads") == 1,
             what="40 jobs and the logging one")
    assert sorted(int(value) for value in wk.lrange("awaited", 0, -1)) == list(range(20))
    assert wk.lrange("threads", 0, -1) == [b"async-jobs"]
    wait_for(lambda: wk.get("stat:processed") == b"41", what="41 processed")
    assert worker.stop() == 0
    output = worker.output()
    assert f"class=wk_async_jobs.async_logs jid={jid} INFO: awaiting for threads" in output
    assert output.count("class=wk_async_jobs.AsyncRecord") == 40  # start and done of each
    assert output.count("INFO: done:") == 41
    assert wk.keys("inflight:*") == [] and "Traceback" not in output


def test_hundreds_await_at_once_on_one_thread(wk: redis.Redis, start_worker: StartWorker) -> None:
    worker = start_async_worker(start_worker, "-c", "1", "--async-concurrency", "300")
    workerkit.push_bulk(wk_async_jobs.AsyncGather, [["gathered", 300]] * 300)  # ends only if all 300 await together
    wait_for(lambda: wk.get("gathered") == b"300", what="300 jobs that each wait for the other 299", timeout=60)
    info = json.loads(wk.hget(wk.smembers("processes").pop(), "info"))  # type: ignore[arg-type]
    assert info["concurrency"] == 301
    assert worker.stop() == 0


def test_the_async_concurrency_bounds_the_jobs_awaiting(wk: redis.Redis, start_worker: StartWorker) -> None:
    worker = start_async_worker(start_worker, "--async-concurrency", "4", "-t", "1")
    workerkit.push_bulk(wk_async_jobs.AsyncGather, [["capped", 5]] * 5)  # five must meet: four may run
    wait_for(lambda: wk.get("arrived:capped") == b"4", what="four jobs awaiting")
    wk_async_jobs.AsyncRecord.perform_async("probe", "fetched")  # fetched after them: proves the fetch went on
    assert worker.stop(timeout=60) == 0  # the four are cancelled after -t 1, all pushed back
    state = where_the_jobs_are(wk)
    assert wk.get("arrived:capped") == b"4" and wk.get("capped") is None, (state, worker.output())
    assert wk.llen("queue:default") + wk.llen("probe") == 6, (state, worker.output())
    assert wk.keys("inflight:*") == [], (state, worker.output())


def test_time_limits_cancel_the_await_and_failures_retry_then_die(wk: redis.Redis, start_worker: StartWorker) -> None:
    worker = start_async_worker(start_worker, "-c", "1")
    limited = wk_async_jobs.AsyncNapLimited.perform_async("limited", 60)
    flaky = wk_async_jobs.async_flaky.delay("flaky")
    wait_for(lambda: wk.zcard("retry") >= 1 and wk.zcard("dead") == 1, what="the limit hit and the flaky job dead")
    [retried] = [entry for entry in members(wk, "retry") if entry["jid"] == limited]
    assert (retried["error_class"], retried["error_message"]) == (
        "workerkit.JobTimeout", "the job ran longer than its timeout of 0.5 s")
    assert wk.get("started:limited") == b"1" and wk.get("limited") is None
    [dead] = members(wk, "dead")
    assert (dead["jid"], dead["error_class"], dead["error_message"], dead["retry_count"]) == (
        flaky, "RuntimeError", "async attempt failed for flaky", 2)
    assert wk.get("flaky") == b"3"  # first run and two retries
    assert worker.stop() == 0


def test_term_lets_awaiting_jobs_finish_within_the_timeout_and_pushes_the_rest_back(
    wk: redis.Redis, start_worker: StartWorker
) -> None:
    worker = start_async_worker(start_worker, "-t", "2")
    workerkit.push_bulk(wk_async_jobs.AsyncNap, [["short", 0.5]] * 5 + [["long", 60]] * 3)
    wait_for(lambda: wk.get("started:short") == b"5" and wk.get("started:long") == b"3", what="all eight awaiting")
    assert worker.stop(timeout=30) == 0
    assert wk.get("short") == b"5" and wk.get("long") is None
    requeued = [json.loads(raw) for raw in wk.lrange("queue:default", 0, -1)]
    assert [payload["args"] for payload in requeued] == [["long", 60]] * 3
    assert wk.keys("inflight:*") == [] and wk.zcard("retry") == 0 and wk.zcard("dead") == 0
    assert "3 job(s) pushed back to their queues" in worker.output()


def test_async_and_plain_middleware_wrap_both_kinds_of_job(wk: redis.Redis, start_worker: StartWorker) -> None:
    worker = start_async_worker(start_worker, "-r", "wk_async_middleware")
    wk_async_jobs.AsyncRecord.perform_async("async-job", "job")
    wk_jobs.Record.perform_async("plain-job", "job")
    wait_for(lambda: wk.llen("async-job") == 6 and wk.llen("plain-job") == 6, what="both jobs and their middleware")
    assert wk.lrange("async-job", 0, -1) == [
        b"async>", b"plain> on async-jobs-executor", b"async variant", b"job", b"<plain", b"<async"]
    plain = wk.lrange("plain-job", 0, -1)  # on whichever job thread caught or was handed it
    assert re.fullmatch(rb"plain> on processor-\d+", plain[1]), plain
    assert plain[:1] + plain[2:] == [b"async>", b"plain variant", b"job", b"<plain", b"<async"]
    assert worker.stop() == 0


def test_testing_helpers_and_workerkit_run_await_async_jobs(wk: redis.Redis, redis_url: str) -> None:
    with testing.inline():
        wk_async_jobs.AsyncRecord.perform_async("inline", "awaited")
    with testing.fake() as jobs:
        wk_async_jobs.async_pushes.delay("nested", 3)
        assert jobs.drain() == 4
    result = run_cli("run", "wk_async_jobs.AsyncRecord", "run", '"by cli"', url=redis_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "INFO: done" in result.stdout
    assert wk.lrange("inline", 0, -1) == [b"awaited"]
    assert wk.lrange("nested", 0, -1) == [b"0", b"1", b"2"]
    assert wk.lrange("run", 0, -1) == [b"by cli"]


def test_inline_inside_a_running_loop_awaits_the_job_too(wk: redis.Redis) -> None:
    async def handler() -> None:  # an async test or web handler
        with testing.inline():
            await wk_async_jobs.AsyncRecord.aperform_async("in-loop", "awaited")

    asyncio.run(handler())
    assert wk.lrange("in-loop", 0, -1) == [b"awaited"]


def test_every_awaitable_push_writes_to_redis(wk: redis.Redis) -> None:
    async def pushes() -> list[str | None]:
        record = wk_async_jobs.AsyncRecord
        return [
            await record.aperform_async("k", 1),
            await record.set(queue="low").aperform_async("k", 2),
            await record.aperform_in(3600, "k", 3),
            await record.aperform_at(4_000_000_000, "k", 4),
            await wk_jobs.send_mail.adelay("mail", "a@example.com"),
            await wk_jobs.send_mail.adelay_for(60, "mail", "b@example.com"),
            await wk_jobs.send_mail.set(queue="urgent").aperform_async(key="mail", address="c@example.com"),
            await workerkit.apush("wk_jobs.Record", ["k", 5], queue="by-name"),
            *(await workerkit.apush_bulk(wk_jobs.Record, [["bulk", n] for n in range(3)])),
            *(await workerkit.apush_bulk(wk_jobs.send_mail, [["bulk", "later"]], at=4_000_000_000)),
        ]

    jids = asyncio.run(pushes())
    assert len(set(jids)) == 12 and all(isinstance(jid, str) for jid in jids)
    queued = {queue: [json.loads(raw)["args"] for raw in wk.lrange(f"queue:{queue}", 0, -1)]
              for queue in ("default", "low", "mailers", "urgent", "by-name")}
    assert queued == {
        "default": [["bulk", 2], ["bulk", 1], ["bulk", 0], ["k", 1]],
        "low": [["k", 2]], "mailers": [["mail", "a@example.com"]],
        "urgent": [["mail", "c@example.com"]], "by-name": [["k", 5]],
    }
    assert sorted(str(entry["args"][1]) for entry in members(wk, "schedule")) == ["3", "4", "b@example.com", "later"]


@pytest.mark.parametrize("push", [
    lambda: wk_async_jobs.AsyncRecord.aperform_async("only-key"),
    lambda: wk_jobs.send_mail.adelay("key", wrong="x"),
    lambda: workerkit.apush_bulk(wk_jobs.Record, [["k"]]),
])
def test_awaitable_pushes_check_arguments_at_the_call_site(wk: redis.Redis, push: Any) -> None:
    with pytest.raises(TypeError, match=r"^wk_(async_)?jobs\.\w+"):
        asyncio.run(push())
    assert wk.dbsize() == 0
