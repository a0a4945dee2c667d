"""How an idle worker waits for jobs: every spare thread blocks on the queues (as each of Sidekiq's
processors blocks in BRPOP), a thread that caught a job watches again by itself once it ran it, the watchers
gather on the queues where jobs arrive, and no job is fetched for a thread that is blocked."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import redis
import wk_jobs
from polling import wait_for

import workerkit
from workerkit.fetch import QueueSpec
from workerkit.worker import Worker, WorkerSettings

StartWorker = Callable[..., Any]


def blocked_in_blmove(conn: redis.Redis) -> int:
    """How many clients of the server are blocked in BLMOVE now."""
    return sum(1 for client in conn.client_list() if client["cmd"] == "blmove" and "b" in client["flags"])


def three_queue_worker(conn: redis.Redis, concurrency: int = 10) -> Worker:
    """A worker (not started) on critical, default and low, of threads only (the ``async def`` jobs other
    tests registered would give it an event loop, whose room adds to what it fetches)."""
    queues = [QueueSpec("critical"), QueueSpec("default"), QueueSpec("low")]
    worker = Worker(WorkerSettings(queues=queues, concurrency=concurrency), conn=conn)
    worker.lane = None
    return worker


def test_every_spare_thread_of_an_idle_worker_blocks_on_the_queues(wk: redis.Redis, start_worker: StartWorker) -> None:
    worker = start_worker("-q", "default", "-c", "4")
    wait_for(lambda: blocked_in_blmove(wk) == 4, what="all four threads blocked in BLMOVE",
             detail=lambda: f"{blocked_in_blmove(wk)} blocked")
    wk_jobs.Slow.perform_async("slow", 1.0)
    wait_for(lambda: wk.get("started:slow") == b"1", what="the job to start")
    assert blocked_in_blmove(wk) == 3  # the other three still watch while it runs
    wait_for(lambda: wk.get("slow") == b"1", what="the job to end")
    wait_for(lambda: blocked_in_blmove(wk) == 4, what="the thread that ran it to watch again")
    wait_for(lambda: wk.get("stat:processed") == b"1", what="the job acknowledged (counted) while the threads watch")
    assert worker.stop() == 0


def test_an_idle_worker_with_more_queues_than_threads_runs_every_queue(
    wk: redis.Redis, start_worker: StartWorker,
) -> None:
    worker = start_worker("-q", "first", "-q", "second", "-q", "third", "-c", "1")
    wait_for(lambda: blocked_in_blmove(wk) == 1, what="the one thread blocked in BLMOVE")
    workerkit.push("wk_jobs.Record", ["ran", "third"], queue="third")
    workerkit.push("wk_jobs.Record", ["ran", "second"], queue="second")
    wait_for(lambda: sorted(wk.lrange("ran", 0, -1)) == [b"second", b"third"], what="the jobs of unwatched queues")
    assert worker.stop() == 0


def test_watchers_spread_over_the_queues_then_gather_where_jobs_arrive(wk: redis.Redis) -> None:
    worker = three_queue_worker(wk)
    for _ in range(10):
        worker.watchers[worker._queue_to_watch()] += 1
    assert worker.watchers == [4, 3, 3]  # every queue first, then in turn, the first queue first
    worker.catches[1] = 50.0  # jobs arrive on default only
    for _ in range(10):  # every WATCH_SECONDS each watcher without a catch picks its queue again
        for index in (0, 2):
            if worker.watchers[index]:
                worker.watchers[index] -= 1
                worker.watchers[worker._queue_to_watch()] += 1
    assert worker.watchers == [1, 8, 1]  # every queue keeps one watcher


def test_no_job_is_fetched_for_a_thread_blocked_on_a_queue(wk: redis.Redis) -> None:
    worker = three_queue_worker(wk)
    assert worker.prefetch() == 10
    assert worker._free_places() == 20  # starting: all ten threads, and ten ahead
    worker.idle_mode, worker.watchers = True, [1, 8, 0]
    assert worker._free_places() == 2  # idle: the one spare thread, and one more to see whether jobs wait
    worker.idle_mode = False
    assert worker._free_places() == 1  # busy again, with threads still blocked: none ahead, nothing for them
    worker.watchers = [0, 0, 0]
    worker.outstanding = 10
    assert worker._free_places() == 10  # every thread runs a job: the prefetch
    worker.idle_mode = True
    assert worker._free_places() == 0  # idle and every thread busy: new jobs wait for the watchers


def test_jobs_are_fetched_ahead_while_threads_run_even_with_threads_still_blocked(wk: redis.Redis) -> None:
    """Out of the idle mode, the threads still blocked on the other queues (up to WATCH_SECONDS) held back
    the prefetch: a backlog drained a few jobs per round trip, one per spare thread, while it grew."""
    worker = three_queue_worker(wk)
    worker.idle_mode, worker.watchers, worker.outstanding = False, [1, 0, 1], 5
    assert worker._free_places() == 3 + 10  # three spare threads, and ten ahead for the five running
    worker.outstanding = 0
    assert worker._free_places() == 8  # nothing runs: none ahead (a job would wait for a blocked thread)


def test_a_job_caught_after_waiting_in_its_queue_ends_the_idle_mode(wk: redis.Redis) -> None:
    worker = three_queue_worker(wk)
    now = time.time()
    wk.lpush("queue:default", *[f'{{"class":"A","args":[],"jid":"j{n}","enqueued_at":{at}}}'
                                for n, at in enumerate([now + 60, now - 0.05, int((now - 0.05) * 1000)])])
    fresh, waited, waited_ms = (worker.fetch.wait_for_job(1, 1.0) for _ in range(3))
    assert fresh is not None and waited is not None and waited_ms is not None
    worker.idle_mode = True
    worker._note_backlog(fresh)
    assert worker.idle_mode  # no wait (a producer's clock ahead of ours): the watchers keep up
    worker._note_backlog(waited)
    assert not worker.idle_mode  # it waited 50 ms: fetch in batches
    worker.idle_mode = True
    worker._note_backlog(waited_ms)  # Sidekiq 7 writes milliseconds
    assert not worker.idle_mode


def test_a_job_end_does_not_wake_a_dispatcher_that_wakes_when_its_acknowledgement_is_due(wk: redis.Redis) -> None:
    """The idle dispatcher waits until the pending acknowledgements are due; each caught job's end compares
    that deadline with the one the dispatcher waits for. They were computed from two clock readings each, so
    the job's was always a hair sooner and every job's end woke the dispatcher (2,400 wake-ups for 4,000
    jobs at 2,000 jobs/s, each taking the lock and the GIL)."""
    worker = three_queue_worker(wk)
    worker.idle_mode, worker.watchers = True, [1, 8, 1]  # every thread watches: the dispatcher only waits
    workerkit.push("wk_jobs.Record", ["ran", "x"], queue="default")
    (unit,) = worker.fetch.fetch(1)
    worker.fetch._acked_at = time.monotonic()  # a flush just went: the next is due in ACK_FLUSH_SECONDS
    unit.ack()
    waiting = threading.Thread(target=worker._wait_for_jobs)
    waiting.start()
    wait_for(lambda: worker.dispatcher_waiting, what="the dispatcher to wait")
    until = worker.dispatcher_until
    worker.outstanding = 1  # a watcher's caught job, now ended
    assert worker._watch_again(True) is not None
    assert worker.dispatcher_until == until  # the same deadline: not moved, no wake-up
    waiting.join(5)
    assert not waiting.is_alive()


def test_a_stop_pushes_back_a_running_job_that_no_watching_thread_takes_again(
    wk: redis.Redis, start_worker: StartWorker,
) -> None:
    worker = start_worker("-q", "default", "-c", "4", "-t", "0")
    wait_for(lambda: blocked_in_blmove(wk) == 4, what="all four threads blocked in BLMOVE")
    wk_jobs.Slow.perform_async("held", 30.0)
    wait_for(lambda: wk.get("started:held") == b"1" and blocked_in_blmove(wk) == 3, what="the job to start")
    assert worker.stop() == 0  # -t 0: no wait for the job; it goes back while three threads still watch
    assert wk.llen("queue:default") == 1 and wk.keys("inflight:*") == []
