"""Expiring jobs (``expires_in``, ``.set(expires_at=...)``): a job not started by then is dropped unrun by a
real worker, with a log line and ``stat:expired``, never run late; the expiry counts from when the job is
due; bad values are refused naming the option."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
import redis
import wk_jobs
from polling import wait_for
from process_support import ChildProcess

import workerkit


def test_an_expired_job_is_dropped_unrun_and_counted(
    wk: redis.Redis, start_worker: Callable[..., ChildProcess]
) -> None:
    late = wk_jobs.Record.set(expires_at=time.time() - 1).perform_async("ran", "late")
    wk_jobs.Record.set(expires_in=60).perform_async("ran", "in time")
    unique = wk_jobs.UniqueHold.set(expires_at=time.time() - 1).perform_async("expired unique")
    worker = start_worker("-c", "2")
    wait_for(lambda: wk.get("stat:expired") == b"2", "both expired jobs dropped", 30, worker.output)
    wait_for(lambda: wk.lrange("ran", 0, -1) == [b"in time"], "the other job to run", 30, worker.output)
    wait_for(lambda: wk.get("stat:processed") == b"1", "the run counted", 10, worker.output)
    assert worker.stop() == 0, worker.output()
    assert (wk.llen("queue:default"), wk.get("stat:failed"), wk.zcard("retry"), wk.zcard("dead")) == (0, None, 0, 0)
    assert not wk.keys("inflight:*") and wk.lrange("unique:started", 0, -1) == []
    assert f"class=wk_jobs.Record jid={late} WARNING: expired: not started by its expires_at" in worker.output()
    assert f"jid={unique} WARNING: expired" in worker.output()
    assert wk_jobs.UniqueHold.perform_async("expired unique") is not None  # its unique lock went with it


def test_the_expiry_counts_from_when_the_job_is_due(wk: redis.Redis) -> None:
    before = time.time()
    wk_jobs.Record.set(expires_in=5).perform_in(100, "k", 1)
    [(raw, due)] = wk.zrange("schedule", 0, -1, withscores=True)
    payload = json.loads(raw)
    assert "expires_in" not in payload and payload["expires_at"] == pytest.approx(due + 5)
    assert before + 100 <= due <= time.time() + 100
    workerkit.push_bulk(wk_jobs.Record, [["k", n] for n in range(3)], expires_in=10)
    expiries = {json.loads(raw)["expires_at"] for raw in wk.lrange("queue:default", 0, -1)}
    assert len(expiries) == 1 and before + 10 <= expiries.pop() <= time.time() + 10


def test_a_job_class_can_expire_its_jobs(wk: redis.Redis) -> None:
    class Fresh(workerkit.Job):
        expires_in = 30

        def perform(self) -> None:
            """Nothing."""

    before = time.time()
    Fresh.perform_async()
    expires_at = json.loads(wk.lindex("queue:default", 0))["expires_at"]  # type: ignore[arg-type]
    assert before + 30 <= expires_at <= time.time() + 30


@pytest.mark.parametrize(("options", "error", "message"), [
    ({"expires_in": 0}, ValueError, r"^expires_in must be more than 0 seconds, not 0$"),
    ({"expires_in": "soon"}, TypeError, r"^expires_in must be a number of seconds or None, not 'soon'$"),
    ({"expires_at": "tomorrow"}, TypeError, r"^'at' must be epoch seconds or a datetime, not str$"),
])
def test_bad_expiries_are_refused(options: dict[str, object], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        wk_jobs.Record.set(**options)
