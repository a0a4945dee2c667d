"""``workerkit.cancel(jid)`` and the dashboard's Cancel button: a queued, scheduled or retrying job is taken
out; a running plain job sees ``self.cancelled`` and stops by raising ``workerkit.Cancelled``; a running
``async def`` job's task is cancelled; either ends cancelled (``stat:cancelled``), not failed, not retried;
a job that ignores the request finishes as usual."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
import redis
import wk_async_jobs
import wk_jobs
from polling import wait_for
from process_support import ChildProcess
from starlette.testclient import TestClient

import workerkit
from workerkit.api import Api
from workerkit.web import dashboard


def test_waiting_jobs_are_taken_out(wk: redis.Redis) -> None:
    queued = wk_jobs.Record.perform_async("k", 1)
    kept = wk_jobs.Record.perform_async("k", 2)
    scheduled = wk_jobs.Record.perform_in(60, "k", 3)
    wk.zadd("retry", {json.dumps({"class": "wk_jobs.Record", "args": ["k", 4], "jid": "f" * 24,
                                  "queue": "default", "retry_count": 0}): time.time() + 60})
    assert [workerkit.cancel(jid) for jid in (queued, scheduled, "f" * 24, "0" * 24)] == [  # type: ignore[arg-type]
        "queued", "scheduled", "retrying", "not found"]
    assert [json.loads(raw)["jid"] for raw in wk.lrange("queue:default", 0, -1)] == [kept]
    assert (wk.zcard("schedule"), wk.zcard("retry"), wk.keys("cancel:*")) == (0, 0, [])
    with pytest.raises(ValueError, match="cancel needs a job's jid"):
        workerkit.cancel("")


def test_a_running_job_stops_when_it_sees_the_request(
    wk: redis.Redis, start_worker: Callable[..., ChildProcess]
) -> None:
    jid = wk_jobs.Cancellable.perform_async(False)
    worker = start_worker("-c", "2")
    wait_for(lambda: wk.lrange("cancel:started", 0, -1) == [jid.encode()], "the job to start", 30,  # type: ignore[union-attr]
             worker.output)
    wait_for(lambda: wk.hlen(f"{wk.smembers('processes').pop().decode()}:work") == 1, "the heartbeat to list it",
             30, worker.output)
    app = dashboard(Api(wk), secret="s")
    with TestClient(app, base_url="http://127.0.0.1") as client:
        busy = client.get("/busy")
        assert f'name="jid" value="{jid}"' in busy.text
        token = busy.text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
        answer = client.post("/busy/cancel", data={"csrf_token": token, "jid": jid}, follow_redirects=False)
        assert (answer.status_code, answer.headers["location"]) == (303, "/busy?done=cancelling")
        assert client.post("/busy/cancel", data={"csrf_token": token, "jid": ""}).status_code == 400
    wait_for(lambda: wk.get("stat:cancelled") == b"1", "the job to end cancelled", 30, worker.output)
    assert wk.lrange("cancel:saw", 0, -1) == [jid.encode()]  # type: ignore[union-attr]
    assert (wk.get("stat:failed"), wk.zcard("retry"), wk.zcard("dead"), wk.keys("cancel:[0-9a-f]*")) == (
        None, 0, 0, [])
    assert f"jid={jid} INFO: cancelled: stopped by workerkit.cancel; not retried" in worker.output()
    assert worker.stop() == 0, worker.output()
    assert not wk.keys("inflight:*") or all(wk.llen(key) == 0 for key in wk.keys("inflight:*"))


def test_a_job_that_ignores_the_request_finishes_as_usual(
    wk: redis.Redis, start_worker: Callable[..., ChildProcess]
) -> None:
    jid = wk_jobs.Cancellable.perform_async(True)
    worker = start_worker("-c", "1")
    wait_for(lambda: wk.llen("cancel:started") == 1, "the job to start", 30, worker.output)
    wait_for(lambda: workerkit.cancel(jid) == "running", "the cancel to reach it", 30, worker.output)  # type: ignore[arg-type]
    wk.set("cancel:finish", 1)
    wait_for(lambda: wk.get("stat:processed") == b"1", "the job to finish", 30, worker.output)
    assert (wk.lrange("cancel:finished", 0, -1), wk.get("stat:cancelled")) == ([jid.encode()], None)  # type: ignore[union-attr]
    assert worker.stop() == 0, worker.output()


def test_a_running_async_job_is_cancelled(wk: redis.Redis, start_worker: Callable[..., ChildProcess]) -> None:
    jid = wk_async_jobs.AsyncNap.perform_async("nap", 30)
    worker = start_worker("-r", "wk_async_jobs", "-c", "1")
    wait_for(lambda: wk.exists("started:nap"), "the async job to start", 30, worker.output)
    wait_for(lambda: workerkit.cancel(jid) == "running", "the cancel to find it", 30, worker.output)  # type: ignore[arg-type]
    wait_for(lambda: wk.get("stat:cancelled") == b"1", "the task to be cancelled", 30, worker.output)
    assert (wk.get("nap"), wk.get("stat:failed"), wk.zcard("retry")) == (None, None, 0)
    assert worker.stop() == 0, worker.output()
