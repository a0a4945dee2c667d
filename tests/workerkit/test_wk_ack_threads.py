"""Acknowledgements and metrics taken without a lock: job threads hand them over while the dispatcher's
fetches take them out, and each job is still acknowledged, counted and measured exactly once."""

from __future__ import annotations

import threading
import time

import redis

from workerkit import config
from workerkit.fetch import ACK_FLUSH_SECONDS, QueueSpec, ReliableFetch, UnitOfWork

THREADS = 8
JOBS_PER_THREAD = 250


def test_concurrent_acks_and_fetches_count_every_job_once(wk: redis.Redis) -> None:
    total = THREADS * JOBS_PER_THREAD
    payloads = [f'{{"class":"Acked","args":[{n}],"jid":"j{n}","queue":"default"}}' for n in range(total)]
    wk.rpush("queue:default", *payloads)
    fetch = ReliableFetch(wk, config.keys(), "host:1:ack", [QueueSpec("default")])
    units = fetch.fetch(total)
    assert len(units) == total and wk.llen("queue:default") == 0
    started = threading.Barrier(THREADS + 1)
    done = threading.Event()

    def ack(mine: list[UnitOfWork]) -> None:
        started.wait()
        for unit in mine:
            fetch.ack(unit, "Acked", 0.001)
        fetch.record("Acked", 0.002, True)  # a failure's run, on the same path

    def flush() -> None:
        started.wait()
        while not done.is_set():
            fetch.fetch(0)

    threads = [threading.Thread(target=ack, args=(units[n::THREADS],)) for n in range(THREADS)]
    flusher = threading.Thread(target=flush)
    for thread in [*threads, flusher]:
        thread.start()
    for thread in threads:
        thread.join(60)
    done.set()
    flusher.join(60)
    fetch.fetch(0)
    assert wk.get("stat:processed") == str(total).encode()
    assert wk.llen("inflight:host:1:ack:default") == 0 and not fetch._held
    runs = wk.hget("metrics:totals", "Acked|n")
    failures = wk.hget("metrics:totals", "Acked|f")
    assert (runs, failures) == (str(total + THREADS).encode(), str(THREADS).encode())


def test_an_idle_worker_acknowledges_at_once_after_a_quiet_spell_then_at_most_every_flush(wk: redis.Redis) -> None:
    wk.rpush("queue:default", *[f'{{"class":"Acked","args":[],"jid":"j{n}","queue":"default"}}' for n in range(2)])
    fetch = ReliableFetch(wk, config.keys(), "host:1:due", [QueueSpec("default")], metrics=False)
    first, second = fetch.fetch(2)
    assert fetch.ack_deadline() is None
    fetch.ack(first)
    deadline = fetch.ack_deadline()
    assert deadline is not None and deadline <= time.monotonic()  # nothing was sent lately: due now
    fetch.fetch(0)
    fetch.ack(second)
    deadline = fetch.ack_deadline()
    assert deadline is not None and 0.0 < deadline - time.monotonic() <= ACK_FLUSH_SECONDS  # one flush per interval
    fetch.fetch(0)
    assert wk.get("stat:processed") == b"2" and fetch.ack_deadline() is None
