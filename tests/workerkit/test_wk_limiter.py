"""Rate limiters (``workerkit.limiter``): each kind's rule with an injected clock; a concurrency limit of 3
across 3 worker processes of 10 threads never has more than 3 inside; a window of 100 per second never admits
101 in any second (from the admissions' own timestamps); a holder killed -9 frees its slot after
``lock_timeout``; over the limit a job is deferred, not failed, and after ``max_deferrals`` fails as usual."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable

import pytest
import redis
import wk_jobs
from polling import wait_for
from process_support import ChildProcess

import workerkit
from workerkit import config, limiter
from workerkit.limiter import OverLimit


class Clock:
    """An injected clock (epoch seconds) the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_concurrency_limiter_holds_size_slots_until_released_or_lapsed(wk: redis.Redis) -> None:
    clock = Clock()
    first, second, third = (limiter.concurrent("c", 2, lock_timeout=10, clock=clock) for _ in range(3))
    first.__enter__()
    second.__enter__()
    with pytest.raises(OverLimit, match=r"^over the limit of concurrent limiter 'c': room again in about 1\.00 s$"):
        third.__enter__()
    first.__exit__(None, None, None)
    third.__enter__()  # a released slot
    clock.now += 10.001  # second's and third's holds lapse (their holders died)
    with limiter.concurrent("c", 2, lock_timeout=10, clock=clock), limiter.concurrent("c", 2, clock=clock):
        assert wk.zcard("limiter:concurrent:c") == 2


def test_a_window_admits_count_in_any_span_and_says_when_there_is_room(wk: redis.Redis) -> None:
    clock = Clock()
    window = limiter.window("w", 3, 1.0, clock=clock)
    for _ in range(3):
        clock.now += 0.1
        with window:
            assert window.admitted_at == pytest.approx(clock.now)
    assert window.admitted_at is None and window._holds == {}  # nothing kept once the blocks ended
    clock.now += 0.5  # 0.7 s after the first
    with pytest.raises(OverLimit) as full:
        window.__enter__()
    assert full.value.retry_after == pytest.approx(0.3)
    clock.now += 0.3  # exactly one window after the first: it has left
    with window:
        pass


def test_a_bucket_allows_a_burst_then_its_rate(wk: redis.Redis) -> None:
    clock = Clock()
    bucket = limiter.bucket("b", 5, 10.0, clock=clock)  # 5 tokens, one back every 2 s
    for _ in range(5):
        with bucket:
            pass
    with pytest.raises(OverLimit) as empty:
        bucket.__enter__()
    assert empty.value.retry_after == pytest.approx(2.0)
    clock.now += 2.0
    with bucket:
        pass
    with pytest.raises(OverLimit):
        bucket.__enter__()


def test_async_with_limits_async_code(wk: redis.Redis) -> None:
    clock = Clock()

    async def twice() -> None:
        try:
            async with limiter.window("aw", 1, 60.0, clock=clock):
                pass
            with pytest.raises(OverLimit):
                async with limiter.window("aw", 1, 60.0, clock=clock):
                    pass
            async with limiter.concurrent("ac", 1, clock=clock):
                assert await config.async_redis_client().zcard(config.keys().limiter("ac", "concurrent")) == 1
            assert await config.async_redis_client().zcard(config.keys().limiter("ac", "concurrent")) == 0
        finally:
            await config.close_async_redis_client()

    asyncio.run(twice())


@pytest.mark.parametrize(("make", "message"), [
    (lambda: limiter.concurrent("", 3), r"^a limiter needs a name$"),
    (lambda: limiter.concurrent("x", 0), r"^limiter 'x': the count must be a whole number of at least 1, not 0$"),
    (lambda: limiter.window("x", True, 1), r"the count must be a whole number of at least 1, not True$"),
    (lambda: limiter.bucket("x", 5, 0), r"^limiter 'x': the seconds must be a number above 0, not 0$"),
    (lambda: limiter.window("x", 5, float("inf")), r"the seconds must be a number above 0, not inf$"),
])
def test_bad_limiters_are_refused(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_a_holder_killed_9_frees_its_slot_after_lock_timeout(wk: redis.Redis, redis_url: str) -> None:
    code = textwrap.dedent(f"""
        import time
        from workerkit import config, limiter
        config.configure(redis_url={redis_url!r})
        with limiter.concurrent("k", 1, lock_timeout=1.5):
            print("holding", flush=True)
            time.sleep(60)
    """)
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        with pytest.raises(OverLimit):
            limiter.concurrent("k", 1, lock_timeout=1.5).__enter__()

        def free() -> bool:
            try:
                with limiter.concurrent("k", 1, lock_timeout=1.5):
                    return True
            except OverLimit:
                return False

        wait_for(free, "the dead holder's slot to lapse", 10)
    finally:
        holder.kill()
        holder.wait(10)


def test_3_slots_across_3_workers_of_10_threads(wk: redis.Redis, start_worker: Callable[..., ChildProcess]) -> None:
    workerkit.push_bulk(wk_jobs.LimitedConcurrent, [[0.02]] * 60)
    workers = [start_worker("-c", "10", env={"WORKERKIT_POLL_INTERVAL": "0.2"}) for _ in range(3)]
    wait_for(lambda: wk.llen("limited:done") == 60, "every job to run", 60, lambda: workers[0].output())
    inside = [int(count) for count in wk.lrange("limited:inside", 0, -1)]
    assert len(inside) == 60 and max(inside) <= 3
    assert (wk.get("stat:failed"), wk.zcard("retry"), wk.zcard("dead")) == (None, 0, 0)
    for worker in workers:
        assert worker.stop() == 0, worker.output()
    assert any("deferred: over the limit of concurrent limiter 'three'" in w.output() for w in workers)


def test_a_window_of_100_a_second_never_admits_101_in_one_second(
    wk: redis.Redis, start_worker: Callable[..., ChildProcess]
) -> None:
    workerkit.push_bulk(wk_jobs.LimitedWindow, [[]] * 300)
    workers = [start_worker("-c", "10", env={"WORKERKIT_POLL_INTERVAL": "0.2"}) for _ in range(2)]
    wait_for(lambda: wk.llen("limited:admitted") == 300, "every job admitted", 60, lambda: workers[0].output())
    admitted = sorted(float(value) for value in wk.lrange("limited:admitted", 0, -1))
    assert min(admitted[index + 100] - admitted[index] for index in range(200)) >= 1.0
    assert wk.get("stat:failed") is None
    for worker in workers:
        assert worker.stop() == 0, worker.output()


def test_after_max_deferrals_the_job_fails_as_usual(wk: redis.Redis, start_worker: Callable[..., ChildProcess]) -> None:
    blocker = limiter.concurrent("full", 1, lock_timeout=60)
    blocker.__enter__()
    jid = wk_jobs.AlwaysOverLimit.perform_async()
    worker = start_worker("-c", "1", env={"WORKERKIT_POLL_INTERVAL": "0.2"})
    wait_for(lambda: wk.zcard("dead") == 1, "the job to die after its deferrals", 30, worker.output)
    [dead] = [json.loads(raw) for raw in wk.zrange("dead", 0, -1)]
    assert (dead["jid"], dead["limited"], dead["error_class"]) == (jid, 2, "workerkit.limiter.OverLimit")
    assert wk.get("stat:failed") == b"1" and wk.lrange("limited:never", 0, -1) == []
    assert worker.output().count(f"jid={jid} INFO: deferred: over the limit of concurrent limiter 'full'") == 2
    assert worker.stop() == 0, worker.output()
