"""Unique jobs (``unique_for``): 200 pushes of one job from 4 processes enqueue it once; the lock lives while
the job is queued, running and retrying, and ends when it succeeds, dies or (``unique_until="start"``)
starts; kill -9 of its worker and recovery make no second copy; the lock expires by itself; bad options
are refused naming them."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
import wk_jobs
from polling import wait_for
from process_support import ChildProcess

import workerkit
from workerkit import Job, config, job
from workerkit.keys import Keys

HERE = Path(__file__).parent


def locks(conn: redis.Redis) -> list[bytes]:
    """The unique locks in Redis (``unique:`` and 32 hex digits; the jobs' own keys are ``unique:<word>``)."""
    return sorted(key for key in conn.keys("unique:*") if re.fullmatch(rb"unique:[0-9a-f]{32}", key))


def test_200_pushes_from_4_processes_enqueue_one_job(wk: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    code = textwrap.dedent(f"""
        import sys, threading
        sys.path.insert(0, {str(HERE)!r})
        import wk_jobs
        from workerkit import config
        config.configure(redis_url={redis_url!r})
        start = threading.Barrier(50)
        accepted = []
        def push():
            start.wait()
            accepted.append(wk_jobs.UniqueHold.perform_async("once"))
        threads = [threading.Thread(target=push) for _ in range(50)]
        for thread in threads: thread.start()
        for thread in threads: thread.join()
        print(sum(jid is not None for jid in accepted), len(accepted))
    """)
    started = time.monotonic()
    pushers = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(4)]
    counts = [tuple(map(int, pusher.communicate(timeout=60)[0].split())) for pusher in pushers]
    assert sum(accepted for accepted, _ in counts) == 1 and sum(tried for _, tried in counts) == 200
    assert wk.llen("queue:default") == 1 and wk.get("stat:unique_duplicates") == b"199"
    [lock] = locks(wk)
    assert wk.get(lock) == json.loads(wk.lindex("queue:default", 0))["jid"].encode()  # type: ignore[arg-type]
    elapsed_ms = (time.monotonic() - started) * 1000  # the lock was set after the pushers started
    assert 60_000 - elapsed_ms - 100 < wk.pttl(lock) <= 60_000  # its TTL is the job's lock_ttl, 60 s


def test_the_lock_lives_until_the_job_succeeds(wk: redis.Redis, start_worker: Callable[..., ChildProcess]) -> None:
    first = wk_jobs.UniqueHold.perform_async("a")
    assert first is not None
    assert wk_jobs.UniqueHold.perform_async("a") is None  # queued
    assert wk_jobs.UniqueHold.perform_async("b") is not None  # other arguments: another job
    assert wk_jobs.UniqueHold.set(queue="other").perform_async("a") is not None  # another queue: another job
    worker = start_worker("-c", "2")
    wait_for(lambda: sorted(wk.lrange("unique:started", 0, -1)) == [b"a", b"b"], "both to start", 30, worker.output)
    assert wk_jobs.UniqueHold.perform_async("a") is None  # running
    wk.set("unique:release", 1)
    wait_for(lambda: wk.llen("unique:ran") == 2, "both to finish", 30, worker.output)
    wait_for(lambda: len(locks(wk)) == 1, "their locks released", 10, worker.output)  # left: queue "other"
    assert wk_jobs.UniqueHold.perform_async("a") is not None  # done: pushable again
    assert worker.stop() == 0, worker.output()


def test_unique_until_start_releases_when_the_job_starts(
    wk: redis.Redis, start_worker: Callable[..., ChildProcess]
) -> None:
    assert wk_jobs.UniqueHold.set(unique_until="start").perform_async("s") is not None
    worker = start_worker("-c", "1")
    wait_for(lambda: wk.lrange("unique:started", 0, -1) == [b"s"], "the job to start", 30, worker.output)
    wait_for(lambda: locks(wk) == [], "the lock released at the start", 10, worker.output)
    assert wk_jobs.UniqueHold.perform_async("s") is not None  # while the first still runs
    wk.set("unique:release", 1)
    assert worker.stop() == 0, worker.output()


def test_a_retrying_job_keeps_its_lock_and_a_dead_one_releases_it(
    wk: redis.Redis, start_worker: Callable[..., ChildProcess]
) -> None:
    assert wk_jobs.UniqueFail.perform_async("f") is not None
    assert wk_jobs.UniqueFail.set(unique_while_retrying=False).perform_async("g") is not None
    worker = start_worker("-c", "2", env={"WORKERKIT_POLL_INTERVAL": "0.2"})
    wait_for(lambda: wk.llen("unique:failed") >= 2, "the first runs to fail", 30, worker.output)
    wait_for(lambda: wk.zcard("dead") == 2, "both dead after their one retry", 30, worker.output)
    assert sorted(wk.lrange("unique:failed", 0, -1)) == [b"f", b"f", b"g", b"g"]
    assert locks(wk) == [] and wk_jobs.UniqueFail.perform_async("f") is not None
    assert worker.stop() == 0, worker.output()


def test_while_retrying_the_lock_holds_unless_told_otherwise(wk: redis.Redis) -> None:
    from workerkit.fetch import QueueSpec, ReliableFetch
    from workerkit.runner import Runner

    class Retried(Job):
        unique_for = 60
        retry = 5

        def perform(self, value: str) -> None:
            raise RuntimeError("fails")

    import threading

    Retried.perform_async("kept")
    Retried.set(unique_while_retrying=False).perform_async("freed")
    fetch = ReliableFetch(wk, Keys(), "host:1:abcdef", [QueueSpec("default")])
    runner = Runner(threading.Event())
    for unit in fetch.fetch(2):
        runner.process(unit)
    assert wk.zcard("retry") == 2
    assert Retried.perform_async("kept") is None and Retried.perform_async("freed") is not None


def test_kill_9_and_recovery_make_no_second_copy(
    wk: redis.Redis, start_worker: Callable[..., ChildProcess]
) -> None:
    jid = wk_jobs.UniqueHold.perform_async("k")
    victim = start_worker("-c", "1")
    wait_for(lambda: wk.lrange("unique:started", 0, -1) == [b"k"], "the job to start", 30, victim.output)
    victim.popen.send_signal(signal.SIGKILL)
    victim.popen.wait(10)
    assert wk_jobs.UniqueHold.perform_async("k") is None  # its worker is dead: still held
    wk.set("unique:release", 1)
    rescuer = start_worker("-c", "1")
    wait_for(lambda: wk.lrange("unique:ran", 0, -1) == [b"k"], "the recovered job to run", 30, rescuer.output)
    assert wk.lrange("unique:started", 0, -1) == [b"k", b"k"]  # the same job again, not a second one
    wait_for(lambda: locks(wk) == [], "its lock released when it succeeded", 10, rescuer.output)
    wait_for(lambda: wk.get("stat:processed") == b"1", "the run counted once (acknowledged within 100 ms)", 10,
             rescuer.output)
    assert jid is not None
    assert rescuer.stop() == 0, rescuer.output()


def test_the_lock_expires_by_itself_and_a_scheduled_job_holds_it_until_due_plus_unique_for(wk: redis.Redis) -> None:
    assert wk_jobs.UniqueHold.set(unique_for=0.3).perform_async("e") is not None
    wait_for(lambda: locks(wk) == [], "the lock to expire", 10)
    assert wk_jobs.UniqueHold.perform_async("e") is not None  # the first is still queued: unique_for has passed
    assert wk.llen("queue:default") == 2
    assert wk_jobs.UniqueHold.set(unique_for=5).perform_in(100, "later") is not None
    assert wk_jobs.UniqueHold.perform_at(time.time() + 50, "later") is None
    [lock] = [key for key in locks(wk) if wk.pttl(key) > 60_000]
    assert 104_000 < wk.pttl(lock) <= 105_000


def test_unique_args_choose_what_counts_and_hostile_arguments_hash(wk: redis.Redis) -> None:
    @job(unique_for=60, unique_args=lambda args: args[:1])
    def by_account(account: int, note: str) -> None:
        """Unique per account, whatever the note."""

    assert by_account.delay(1, "first") is not None and by_account.delay(1, "second") is None
    assert by_account.delay(2, "first") is not None
    hostile = [{"deep": [[[[[[[[[[{"x": None, "": "\u2028"}]]]]]]]]]]}, "é" * 100_000, "", 2**63, -1.5e-300]
    assert wk_jobs.UniqueHold.perform_async(hostile) is not None and wk_jobs.UniqueHold.perform_async(hostile) is None
    assert wk_jobs.UniqueHold.perform_async([*hostile[:-1], -1.5e-301]) is not None
    assert wk_jobs.UniqueHold.perform_async([{"b": 1, "a": 2}]) is not None
    assert wk_jobs.UniqueHold.perform_async([{"a": 2, "b": 1}]) is None  # key order does not make another job
    before = locks(wk)
    with pytest.raises(TypeError, match="lone surrogate"):
        wk_jobs.UniqueHold.perform_async("\udcff")
    assert locks(wk) == before  # refused before any lock was taken

    async def pushed_twice() -> list[str | None]:
        try:
            return [await wk_jobs.UniqueHold.aperform_async("async"), await wk_jobs.UniqueHold.aperform_async("async")]
        finally:
            await config.close_async_redis_client()

    first, second = asyncio.run(pushed_twice())
    assert first is not None and second is None


def test_unique_with_wait_replicas_still_says_none_for_a_duplicate(wk: redis.Redis) -> None:
    config.configure(wait_replicas=1, wait_timeout_ms=10)
    with pytest.raises(workerkit.NotReplicated):  # no replica here: the push landed, unconfirmed
        wk_jobs.UniqueHold.perform_async("w")
    assert wk_jobs.UniqueHold.perform_async("w") is None  # a duplicate pushed nothing: nothing to confirm
    assert wk.llen("queue:default") == 1


@pytest.mark.parametrize(("options", "message"), [
    ({"unique_for": 0}, r"^unique_for must be a number of seconds above 0, or None, not 0$"),
    ({"unique_for": "60"}, r"^unique_for must be a number of seconds above 0, or None, not '60'$"),
    ({"unique_for": float("nan")}, r"^unique_for must be a number of seconds above 0, or None, not nan$"),
    ({"unique_for": 60, "unique_until": "end"}, r"^unique_until must be one of success, start, not 'end'$"),
    ({"unique_for": 60, "unique_args": 1}, r"^unique_args must be a function of the job's arguments, not 1$"),
])
def test_bad_unique_options_are_refused_naming_them(options: dict[str, object], message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        wk_jobs.UniqueHold.set(**options)
    with pytest.raises((ValueError, TypeError), match=message.replace("^", r"^Bad\.")):
        type("Bad", (Job,), {"perform": lambda self: None, **options})


def test_bulk_pushes_and_unjsonable_unique_args_are_refused(wk: redis.Redis) -> None:
    with pytest.raises(TypeError, match=r"^wk_jobs\.UniqueHold is a unique job \(unique_for\): push it one job at a "
                                        r"time"):
        workerkit.push_bulk(wk_jobs.UniqueHold, [["a"], ["b"]])
    with pytest.raises(TypeError, match=r"unique job \(unique_for\)"):
        workerkit.push_bulk(wk_jobs.Record, [["k", 1]], unique_for=30)
    with pytest.raises(TypeError, match=r"^unique_args of wk_jobs\.UniqueHold returned \{1\}, which JSON cannot carry"):
        wk_jobs.UniqueHold.set(unique_args=lambda args: {1}).perform_async("x")
    assert wk.dbsize() == 0
