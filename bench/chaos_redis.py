"""Redis faults under a running fleet: SIGKILL of the server and a restart from its append-only file,
CLIENT KILL of every worker connection, and a SIGSTOP pause longer than the heartbeat; then the loss
window of acknowledged writes under ``appendfsync everysec`` (and ``always`` for comparison).

    python3 bench/chaos_redis.py [--jobs 100000] [--workers 2] [--pause 3] [--loss-rounds 5]

The jobs are pushed and made durable first (a completed BGREWRITEAOF fsyncs them), so none of them may
be lost. Writes made in the last second before the kill can be lost with everysec: a lost done mark
always comes with its lost acknowledgement (the AOF is one ordered log), so the job runs again rather
than vanishing, but its entry can stay in a live worker's in-flight list until that worker stops (it no
longer holds the job); the run counts those, stops the fleet with TERM (which pushes them back) and
drains them with a fresh worker.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

import reliability_jobs as jobs
import reliability_kit as kit
from jobs_common import load_note

import workerkit
from workerkit.keys import Keys
from workerkit.server import RunningServer, running_server

FAULTS = ("kill", "client-kill", "pause")


@dataclass
class FaultsResult:
    """What a fault run measured."""

    tally: kit.Tally
    stuck_in_live_workers: int
    workers_alive_after_faults: bool
    tracebacks: int
    failed_runs: int
    """Runs that failed because Redis went away under the job, and were retried."""


def make_durable(conn: redis.Redis, timeout: float = 60.0) -> None:
    """Rewrite the AOF and wait for the rewrite to finish: everything written so far is on disk."""
    def rewrite_idle() -> bool:
        info = conn.info("persistence")
        return not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]

    kit.wait_until(rewrite_idle, timeout, "an earlier AOF rewrite")
    before = conn.info("persistence").get("aof_last_bgrewrite_status")
    conn.bgrewriteaof()
    kit.wait_until(rewrite_idle, timeout, "the AOF rewrite")
    if conn.info("persistence").get("aof_last_bgrewrite_status") != "ok":
        raise RuntimeError(f"AOF rewrite failed (before: {before})")


def _progress(conn: redis.Redis, more: int, timeout: float) -> None:
    """Wait until ``more`` further jobs are done (the workers are working again)."""
    start = int(conn.scard(jobs.DONE))
    kit.wait_until(lambda: int(conn.scard(jobs.DONE)) >= start + more, timeout, f"{more} more jobs done")


def _stuck_in_flight(conn: redis.Redis, pushed: set[str], quiet: float, timeout: float) -> int:
    """Once the queue is empty: 0 when every job gets done, else how many jobs stay in flight with no
    progress for ``quiet`` seconds and none waiting to be retried (held in the in-flight list of a live
    worker that no longer runs them)."""
    deadline = time.monotonic() + timeout
    done = kit.settled(conn, pushed)
    last, since = -1, time.monotonic()
    while not done():
        count = int(conn.scard(jobs.DONE))
        if count != last or conn.zcard(Keys().retry):
            last, since = count, time.monotonic()
        elif time.monotonic() - since > quiet:
            return kit.pending(conn)
        if time.monotonic() > deadline:
            raise TimeoutError("jobs neither done nor stuck")
        time.sleep(0.1)
    return 0


def inject(fault: str, server: RunningServer, conn: redis.Redis, pause: float) -> None:
    """One fault: ``kill`` (SIGKILL, restart from the AOF), ``client-kill`` or ``pause`` (SIGSTOP)."""
    if fault == "kill":
        server.stop(kill=True)
        server.start()
    elif fault == "client-kill":
        conn.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    elif fault == "pause":
        server.process.send_signal(signal.SIGSTOP)
        time.sleep(pause)  # the fault itself: the server is frozen this long
        server.process.send_signal(signal.SIGCONT)
    else:
        raise ValueError(f"unknown fault {fault!r}; choose from {', '.join(FAULTS)}")


def run(folder: Path, server: RunningServer, jobs_count: int, workers: int, job_seconds: float,
        faults: list[str], pause: float, timeout: float = 600.0) -> FaultsResult:
    """Push durable jobs, inject ``faults`` one after another while they run, drain, tally."""
    conn = redis.Redis.from_url(server.url)
    conn.flushall()
    workerkit.configure(redis_url=server.url)
    pushed = kit.push_marks(jobs_count, job_seconds)
    make_durable(conn)
    env = kit.worker_environment(server.url)
    fleet = kit.Fleet(folder / "fleet", env, workers, restart=False)
    step = max(1, jobs_count // (4 * (len(faults) + 1)))
    stuck = 0
    try:
        fleet.wait_for_workers(workers, conn)
        _progress(conn, step, timeout)
        for fault in faults:
            inject(fault, server, conn, pause)
            _progress(conn, step, timeout)
        alive = fleet.procman.poll() is None and len(fleet.workers()) == workers
        kit.wait_until(lambda: conn.llen(Keys().queue("default")) == 0, timeout, "every job fetched")
        stuck = _stuck_in_flight(conn, pushed, quiet=3.0, timeout=timeout)
        fleet.stop()
    finally:
        fleet.kill()
    drain = kit.Fleet(folder / "drain", env, 1, restart=False)
    try:
        kit.wait_until(kit.settled(conn, pushed), timeout, "the drain worker to finish every job")
        drain.stop()
    finally:
        drain.kill()
    tracebacks = fleet.output.count("Traceback") + drain.output.count("Traceback")
    failed = int(conn.get(Keys().stat("failed")) or 0)
    return FaultsResult(kit.tally(conn, pushed), stuck, alive, tracebacks, failed)


@dataclass
class LossRound:
    """One kill -9 of the server under a stream of RPUSHes."""

    acknowledged: int
    lost: int
    """Acknowledged pushes missing after the restart."""
    applied_unacknowledged: int
    """Pushes the client saw fail (connection lost) that the server had applied anyway."""


def loss_window(server: RunningServer, fsync: str, seconds: float = 1.5) -> LossRound:
    """kill -9 the server while a client RPUSHes a counter; count acknowledged pushes lost after the restart."""
    conn = redis.Redis.from_url(server.url)
    conn.config_set("appendfsync", fsync)
    conn.delete("rel:seq")
    acked: list[tuple[int, float]] = []
    stop = threading.Event()

    def pusher() -> None:
        client = redis.Redis.from_url(server.url)
        number = 0
        while not stop.is_set():
            number += 1
            try:
                client.rpush("rel:seq", number)
            except redis.ConnectionError:
                return
            acked.append((number, time.monotonic()))

    thread = threading.Thread(target=pusher)
    thread.start()
    time.sleep(seconds)  # let the pusher run before the crash
    server.stop(kill=True)
    stop.set()
    thread.join(10)
    server.start()
    kept = int(redis.Redis.from_url(server.url).llen("rel:seq"))
    last = acked[-1][0] if acked else 0
    return LossRound(last, max(0, last - kept), max(0, kept - last))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--job-seconds", type=float, default=0.001)
    parser.add_argument("--pause", type=float, default=3.0, help="SIGSTOP length (heartbeat is 0.5 s here)")
    parser.add_argument("--loss-rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"# {load_note()}; pid {os.getpid()}")
    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp) / "redis", kind="auto") as server:
        result = run(Path(tmp), server, args.jobs, args.workers, args.job_seconds, list(FAULTS), args.pause)
        tally = result.tally
        print("| jobs | faults | lost | repeated runs | runs failed by the faults (retried) | "
              "left in a live worker's in-flight list | workers alive after the faults | tracebacks |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        print(f"| {tally.pushed:,} | {', '.join(FAULTS)} | {tally.lost} | {tally.duplicates} | {result.failed_runs} | "
              f"{result.stuck_in_live_workers} | {result.workers_alive_after_faults} | {result.tracebacks} |")
        print(f"\n# server: {server.binary}")
        print("| appendfsync | acknowledged pushes per round | acknowledged pushes lost | applied, not acknowledged |")
        print("| --- | --- | --- | --- |")
        for fsync in ("everysec", "always"):
            rounds = [loss_window(server, fsync) for _ in range(args.loss_rounds)]
            print(f"| {fsync} | {', '.join(f'{r.acknowledged:,}' for r in rounds)} | "
                  f"{', '.join(str(r.lost) for r in rounds)} | "
                  f"{', '.join(str(r.applied_unacknowledged) for r in rounds)} |")


if __name__ == "__main__":
    main()
