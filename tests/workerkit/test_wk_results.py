"""Job results, opt-in: a job with ``result_ttl`` leaves ``running``, then ``done`` with its JSON value or
``failed`` with its error, for ``workerkit.result(jid)`` / ``aresult``, expiring after the TTL. Real worker
processes, real servers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
import redis
import wk_async_jobs
import wk_jobs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polling import wait_for

import workerkit
from workerkit import config, results

StartWorker = Callable[..., Any]


def finished(jid: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return workerkit.result(jid).finished
        except workerkit.ResultNotFound:
            return False
    return check


def test_values_errors_and_states_of_jobs_that_keep_results(wk: redis.Redis, start_worker: StartWorker) -> None:
    worker = start_worker("-r", "wk_async_jobs", "-t", "1")  # the nap is cancelled at the stop
    nap = wk_async_jobs.AsyncNap.set(result_ttl=60).perform_async("nap", 60)
    wait_for(lambda: wk.get("started:nap") == b"1", what="the nap to start")
    assert workerkit.result(nap).status == "running"
    nested: Any = "bottom"
    for depth in range(150):
        nested = {"level": depth, "inner": [nested]}
    pushed = {
        wk_jobs.add.delay(2, 3): 5,
        wk_async_jobs.async_add.delay(a=40, b=2): 42,
        wk_jobs.Echo.perform_async(nested): nested,
        wk_jobs.Echo.perform_async("x" * 1_000_000): "x" * 1_000_000,
        wk_jobs.Echo.perform_async("\u0000 é 🙂"): "\u0000 é 🙂",
    }
    failing = wk_jobs.fails_keeping.delay("no luck")
    unjsonable = wk_jobs.returns_a_set.delay()
    for jid in [*pushed, failing, unjsonable]:
        wait_for(finished(jid), what=f"the result of {jid}")
    for jid, value in pushed.items():
        kept = workerkit.result(jid)
        assert (kept.status, kept.value, kept.error_class) == ("done", value, None)
        assert kept.started_at is not None and kept.finished_at is not None and kept.finished_at >= kept.started_at
        assert 0 < wk.pttl(f"result:{jid}") <= 60_000
    assert (workerkit.result(failing).status, workerkit.result(failing).error_class,
            workerkit.result(failing).error_message) == ("failed", "ValueError", "no luck")
    dead = {json.loads(entry)["jid"]: json.loads(entry) for entry in wk.zrange("dead", 0, -1)}
    assert dead[unjsonable]["error_class"] == "workerkit.results.ResultError"
    assert dead[unjsonable]["error_message"].startswith(
        "wk_jobs.returns_a_set keeps its result, but the result is a set ({1, 2})")
    assert workerkit.result(unjsonable).status == "failed"
    assert worker.stop() == 0


def test_a_missing_or_expired_result_is_a_clear_error(wk: redis.Redis, start_worker: StartWorker) -> None:
    worker = start_worker()
    unkept = wk_jobs.Record.perform_async("plain", 1)
    brief = wk_jobs.add.set(result_ttl=0.3).delay(1, 1)
    wait_for(lambda: wk.llen("plain") == 1 and wk.exists(f"result:{brief}"), what="both jobs to run")
    wait_for(lambda: not wk.exists(f"result:{brief}"), what="the brief result to expire")
    for jid in (unkept, brief, "0" * 24):
        with pytest.raises(workerkit.ResultNotFound, match=rf"^no result for job {jid}: it has not started yet, "
                           r"it does not keep results .* or its result expired after its result_ttl"):
            workerkit.result(jid)
    assert wk.keys("result:*") == []
    assert worker.stop() == 0


def test_aresult_reads_without_blocking_the_loop(wk: redis.Redis, start_worker: StartWorker) -> None:
    worker = start_worker("-r", "wk_async_jobs")

    async def push_and_wait() -> workerkit.JobResult:
        jid = await wk_async_jobs.async_add.adelay(20, 22)
        while True:
            try:
                kept = await workerkit.aresult(jid)
            except workerkit.ResultNotFound:
                kept = None
            if kept is not None and kept.finished:
                return kept
            await asyncio.sleep(0.02)

    kept = asyncio.run(asyncio.wait_for(push_and_wait(), 30))
    assert (kept.status, kept.value) == ("done", 42)
    assert worker.stop() == 0


@pytest.mark.parametrize(("option", "value"), [
    ("result_ttl", 0), ("result_ttl", -1), ("result_ttl", "60"), ("result_ttl", True), ("result_ttl", float("nan")),
])
def test_bad_result_ttls_are_refused_at_the_call_site(wk: redis.Redis, option: str, value: Any) -> None:
    with pytest.raises((TypeError, ValueError), match="result_ttl"):
        wk_jobs.add.set(**{option: value}).delay(1, 2)
    with pytest.raises((TypeError, ValueError), match="result_ttl"):
        config.configure(result_ttl=value)
    assert wk.dbsize() == 0


def test_the_ttl_comes_from_the_push_then_the_class_then_the_configuration(wk: redis.Redis) -> None:
    assert results.ttl_of({"result_ttl": 5}, 60) == 5
    assert results.ttl_of({}, 60) == 60
    assert results.ttl_of({"result_ttl": "junk"}, None) is None
    config.configure(result_ttl=7)
    assert results.ttl_of({}, None) == 7
    assert wk_jobs.add.set().payload((1, 2))["result_ttl"] == 60
    assert "result_ttl" not in wk_jobs.Record.set().payload(("k", 1))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary() | st.tuples(st.integers())
    | st.sets(st.integers(), max_size=2),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text() | st.integers(), inner, max_size=3),
    max_leaves=8))
def test_checked_value_accepts_exactly_what_json_carries(value: Any) -> None:
    try:
        accepted = results.checked_value(value, "app.Job")
    except results.ResultError as exc:
        assert str(exc).startswith("app.Job keeps its result, but the result")
        return
    text = json.dumps(accepted, ensure_ascii=False, allow_nan=False)
    assert json.loads(text) == value
    text.encode("utf-8")  # no lone surrogates
