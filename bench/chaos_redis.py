"""Redis faults under a running fleet: SIGKILL of the server and a restart from its append-only file,
CLIENT KILL of every worker connection, a SIGSTOP pause, and an outage (SIGKILL, the server stays down,
then restarts from its AOF); then the loss window of acknowledged writes under ``appendfsync everysec``
(and ``always`` for comparison).

    python3 bench/chaos_redis.py [--jobs 100000] [--workers 2] [--faults kill,client-kill,pause]
                                 [--pause 3] [--down 90] [--heartbeat SECONDS] [--loss-rounds 5]

A pause or an outage longer than the heartbeat's life (4 beats: 8 s by default) expires every worker's
heartbeat: the workers must beat again and nothing may strand. After each fault the script measures how
long until every worker beats again and until jobs get done again. The heartbeat is the worker's default
(2 s, sweep 2 s) unless ``--heartbeat`` sets both.

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

FAULTS = ("kill", "client-kill", "pause", "outage")


@dataclass
class Recovery:
    """One fault and how the fleet came back from it (seconds from the end of the fault)."""

    fault: str
    seconds: float
    """How long the fault lasted (0 for the instant ones)."""
    beating_after: float
    """Until every worker's heartbeat was there again."""
    working_after: float
    """Until the next job was done."""
    in_flight: int
    """Jobs in flight when the fault began: what it may make run twice."""


@dataclass
class FaultsResult:
    """What a fault run measured."""

    tally: kit.Tally
    stuck_in_live_workers: int
    workers_alive_after_faults: bool
    tracebacks: int
    failed_runs: int
    """Runs that failed because Redis went away under the job, and were retried."""
    recoveries: list[Recovery]


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


def inject(fault: str, server: RunningServer, conn: redis.Redis, seconds: float) -> None:
    """One fault: ``kill`` (SIGKILL, restart from the AOF at once), ``client-kill``, ``pause`` (SIGSTOP for
    ``seconds``) or ``outage`` (SIGKILL, down for ``seconds``, restart from the AOF)."""
    if fault in ("kill", "outage"):
        server.stop(kill=True)
        if fault == "outage":
            time.sleep(seconds)  # the fault itself: the server is down this long
        server.start()
    elif fault == "client-kill":
        conn.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    elif fault == "pause":
        server.process.send_signal(signal.SIGSTOP)
        time.sleep(seconds)  # the fault itself: the server is frozen this long
        server.process.send_signal(signal.SIGCONT)
    else:
        raise ValueError(f"unknown fault {fault!r}; choose from {', '.join(FAULTS)}")


def _all_beating(conn: redis.Redis, fleet: kit.Fleet) -> bool:
    identities = [kit.identity_of(conn, process.pid) for process in fleet.workers().values()]
    return all(identity and conn.exists(Keys().process(identity)) for identity in identities)


def _recover(fault: str, seconds: float, in_flight: int, conn: redis.Redis, fleet: kit.Fleet,
             timeout: float) -> Recovery:
    """Measure, from now (the end of the fault), until every worker beats again and a job gets done."""
    ended = time.monotonic()
    done = int(conn.scard(jobs.DONE))
    working = kit.wait_until(lambda: int(conn.scard(jobs.DONE)) > done, timeout, f"a job done after {fault}")
    beating = kit.wait_until(lambda: _all_beating(conn, fleet), timeout, f"every worker beating after {fault}")
    return Recovery(fault, seconds if fault in ("pause", "outage") else 0.0, beating - ended, working - ended,
                    in_flight)


def run(folder: Path, server: RunningServer, jobs_count: int, workers: int, job_seconds: float,
        faults: list[str], pause: float, down: float = 0.0, heartbeat: float | None = 0.5,
        timeout: float = 600.0) -> FaultsResult:
    """Push durable jobs, inject ``faults`` one after another while they run (a pause lasts ``pause``
    seconds, an outage ``down``), drain, tally."""
    conn = redis.Redis.from_url(server.url)
    conn.flushall()
    workerkit.configure(redis_url=server.url)
    pushed = kit.push_marks(jobs_count, job_seconds)
    make_durable(conn)
    env = kit.worker_environment(server.url, heartbeat, heartbeat)
    fleet = kit.Fleet(folder / "fleet", env, workers, restart=False)
    step = max(1, jobs_count // (4 * (len(faults) + 1)))
    stuck = 0
    recoveries = []
    try:
        fleet.wait_for_workers(workers, conn)
        _progress(conn, step, timeout)
        for fault in faults:
            seconds = down if fault == "outage" else pause
            in_flight = kit.held_by(conn, "*")
            inject(fault, server, conn, seconds)
            recoveries.append(_recover(fault, seconds, in_flight, conn, fleet, timeout))
            _progress(conn, step, timeout)
        alive = fleet.procman.poll() is None and len(fleet.workers()) == workers
        kit.wait_until(lambda: conn.llen(Keys().queue("default")) == 0, timeout, "every job fetched")
        stuck = _stuck_in_flight(conn, pushed, quiet=8.0 * (heartbeat or 2.0), timeout=timeout)
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
    return FaultsResult(kit.tally(conn, pushed), stuck, alive, tracebacks, failed, recoveries)


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
    parser.add_argument("--faults", default="kill,client-kill,pause", help=f"any of {', '.join(FAULTS)}")
    parser.add_argument("--pause", type=float, default=3.0, help="SIGSTOP length in seconds")
    parser.add_argument("--down", type=float, default=90.0, help="outage length in seconds")
    parser.add_argument("--heartbeat", type=float, default=None,
                        help="heartbeat and sweep interval in seconds (default: the worker's, 2 s)")
    parser.add_argument("--loss-rounds", type=int, default=5)
    args = parser.parse_args()
    faults = args.faults.split(",")
    print(f"# {load_note()}; pid {os.getpid()}")
    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp) / "redis", kind="auto") as server:
        result = run(Path(tmp), server, args.jobs, args.workers, args.job_seconds, faults, args.pause, args.down,
                     args.heartbeat)
        print(f"# {load_note()}")
        tally = result.tally
        bound = sum(recovery.in_flight for recovery in result.recoveries)
        print("| jobs | faults | lost | repeated runs (bound: in flight at the faults) | runs failed by the faults "
              "(retried) | left in a live worker's in-flight list | workers alive after the faults | tracebacks |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        print(f"| {tally.pushed:,} | {', '.join(faults)} | {tally.lost} | {tally.duplicates} ({bound}) | "
              f"{result.failed_runs} | {result.stuck_in_live_workers} | {result.workers_alive_after_faults} | "
              f"{result.tracebacks} |")
        print("\n| fault | lasted | in flight at its start | every worker beating again after | next job done after |")
        print("| --- | --- | --- | --- | --- |")
        for r in result.recoveries:
            print(f"| {r.fault} | {r.seconds:.0f} s | {r.in_flight} | {r.beating_after:.1f} s | "
                  f"{r.working_after:.1f} s |")
        if args.loss_rounds <= 0:
            return
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
