"""A sync ``perform`` that returns an awaitable is an error, never a silent "done": it fails in the worker,
``testing.inline``, ``testing.fake().drain`` and ``workerkit run``. (Issue 11 reproduced the "done" with the
coroutine never awaited.)"""

from __future__ import annotations

import json
import warnings
from typing import Any

import pytest
import redis
import wk_jobs
from polling import wait_for
from test_wk_testing_and_cli import run_cli

from workerkit import testing
from workerkit.invoke import AwaitableResultError


@pytest.mark.parametrize("pushed", [wk_jobs.ReturnsCoroutine, wk_jobs.returns_coroutine])
def test_an_awaitable_from_perform_fails_under_testing_without_a_warning(wk: redis.Redis, pushed: Any) -> None:
    push = pushed.perform_async if isinstance(pushed, type) else pushed.delay
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a "coroutine was never awaited" warning would fail the test
        with testing.inline(), pytest.raises(AwaitableResultError, match=r"perform returned coroutine .* instead"):
            push("never")
        with testing.fake() as jobs:
            push("never")
            with pytest.raises(AwaitableResultError):
                jobs.drain()
    assert wk.llen("never") == 0


def test_workerkit_run_exits_1_for_an_awaitable(redis_url: str, redis_client: redis.Redis) -> None:
    result = run_cli("run", "wk_jobs.ReturnsCoroutine", "never", url=redis_url)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "AwaitableResultError" in result.stdout and "INFO: done" not in result.stdout
    assert "never awaited" not in result.stdout + result.stderr
    assert redis_client.llen("never") == 0


def test_the_worker_sends_it_to_the_dead_set_not_done(wk: redis.Redis, start_worker: Any) -> None:
    worker = start_worker("-c", "1")
    jid = wk_jobs.ReturnsCoroutine.perform_async("never")
    wait_for(lambda: wk.zcard("dead") == 1, what="the job in the dead set")
    [dead] = [json.loads(member) for member in wk.zrange("dead", 0, -1)]
    assert (dead["jid"], dead["error_class"]) == (jid, "workerkit.invoke.AwaitableResultError")
    wait_for(lambda: wk.get("stat:failed") == b"1", what="the failure counted")
    assert wk.llen("never") == 0
    assert worker.stop() == 0
    output = worker.output()
    assert "AwaitableResultError" in output and "done:" not in output and "never awaited" not in output
