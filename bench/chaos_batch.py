"""Batches under worker crashes: a batch of Mark jobs (and a second batch with one job that dies) drained by
N worker processes while a chaos loop kill -9s a random worker every few seconds, until the first batch
succeeded. Each callback must be pushed exactly once: ``on_success`` after the last job succeeded, never for
the batch with a dead job, whose ``on_death`` and ``on_complete`` come once each.

    python3 bench/chaos_batch.py [--jobs 10000] [--workers 2] [--kill-every 0.5-1] [--job-seconds 0.005]
                                 [--heartbeat 0.5]

Reported: kills, jobs lost (must be 0), repeated runs (at-least-once, from the victims' in-flight jobs),
the callbacks pushed per event and batch, and how many of the big batch's jobs had not recorded themselves
done when its ``on_success`` ran (must be 0).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reliability_kit as kit
from chaos_workers import Kill, chaos_step, seconds_range
from jobs_common import load_note

import workerkit
from workerkit.server import running_server


@dataclass
class BatchChaosResult:
    """What a run measured."""

    tally: kit.Tally
    bid: str
    doomed_bid: str
    kills: list[Kill] = field(default_factory=list)
    callbacks: list[dict[str, object]] = field(default_factory=list)
    """Every run of a callback: event, bid, jid, and how many of the big batch's jobs were not done when it ran."""
    pushed: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Distinct callback jids per (bid, event): pushes, whatever reran."""
    seconds: float = 0.0
    tracebacks: int = 0


def _callbacks(conn: redis.Redis) -> list[dict[str, object]]:
    return [json.loads(raw) for raw in conn.lrange(kit.jobs.BATCH_CALLBACKS, 0, -1)]


def run(folder: Path, redis_url: str, jobs: int, workers: int, kill_every: tuple[float, float],
        job_seconds: float, heartbeat: float | None = 0.5, timeout: float = 600.0) -> BatchChaosResult:
    """Push the batches, run them on ``workers`` processes under kill -9 until the big batch succeeded, wait
    for every callback to have run, and tally."""
    conn = redis.Redis.from_url(redis_url)
    conn.flushall()
    workerkit.configure(redis_url=redis_url)
    signal_job = "reliability_jobs.BatchSignal"
    batch = workerkit.Batch("chaos", on_success=signal_job, on_complete=signal_job, on_death=signal_job)
    pushed: set[str] = set()
    with batch.jobs():
        pushed = kit.push_marks(jobs, job_seconds)
    conn.sadd(kit.jobs.BATCH_MEMBERS, *pushed)
    doomed = workerkit.Batch("doomed", on_success=signal_job, on_complete=signal_job, on_death=signal_job)
    with doomed.jobs():
        pushed |= kit.push_marks(99, job_seconds)
        workerkit.push("reliability_jobs.Doomed", [job_seconds])
    pool = kit.WorkerPool(folder, kit.worker_environment(redis_url, heartbeat, heartbeat), workers)
    result = BatchChaosResult(kit.tally(conn, pushed), batch.bid, doomed.bid)
    try:
        pool.wait_for_workers(conn)
        started = time.monotonic()
        next_kill = started + random.uniform(*kill_every)
        while not batch.status().succeeded:
            if time.monotonic() > started + timeout:
                raise TimeoutError(f"batch not done after {timeout:g} s: {batch.status()}")
            next_kill = chaos_step(pool, conn, started, next_kill, kill_every, result.kills)
        result.seconds = time.monotonic() - started
        pool.respawn()
        expected = {(batch.bid, "complete"), (batch.bid, "success"), (doomed.bid, "complete"), (doomed.bid, "death")}
        kit.wait_until(lambda: {(str(e["bid"]), str(e["event"])) for e in _callbacks(conn)} >= expected, 120,
                       "the callbacks to run")
        kit.wait_until(lambda: kit.pending(conn) == 0, 60, "the queues to drain")
        result.callbacks = _callbacks(conn)
        result.pushed = Counter((str(e["bid"]), str(e["event"])) for e in
                                {str(e["jid"]): e for e in result.callbacks}.values())
        result.tally = kit.tally(conn, pushed)
        pool.wait_for_workers(conn)
        pool.stop()
    finally:
        pool.kill()
    result.tracebacks = pool.output.count("Traceback")
    return result



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kill-every", type=seconds_range, default=(0.5, 1.0), metavar="LOW-HIGH", help="seconds")
    parser.add_argument("--job-seconds", type=float, default=0.005)
    parser.add_argument("--heartbeat", type=float, default=0.5, help="heartbeat and sweep interval in seconds")
    args = parser.parse_args()
    print(f"# {load_note()}")
    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp) / "redis", kind="auto") as server:
        result = run(Path(tmp) / "app", server.url, args.jobs, args.workers, args.kill_every, args.job_seconds,
                     args.heartbeat)
    print(f"# {load_note()}")
    tally = result.tally
    success = [e for e in result.callbacks if e["bid"] == result.bid and e["event"] == "success"]
    print("| jobs | kills | lost | repeated runs | callbacks pushed (big batch) | callbacks pushed (doomed batch) "
          "| jobs not done when on_success ran | wall time | tracebacks |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")

    def events(bid: str) -> str:
        return ", ".join(f"{event} {count}" for (b, event), count in sorted(result.pushed.items()) if b == bid)

    print(f"| {tally.pushed:,} | {len(result.kills)} | {tally.lost} | {tally.duplicates} | {events(result.bid)} | "
          f"{events(result.doomed_bid)} | {', '.join(str(e['missing']) for e in success)} | {result.seconds:.0f} s | "
          f"{result.tracebacks} |")


if __name__ == "__main__":
    main()
