"""Worker crashes for the whole run: Mark jobs run on N worker processes while a chaos loop kill -9s a random
registered worker every few seconds until every job is settled; every job must end up done (or, as a
poison pill, dead).

    python3 bench/chaos_workers.py [--jobs 50000] [--workers 4] [--kill-every 1-2] [--job-seconds 0.02]
                                   [--heartbeat SECONDS] [--expire-heartbeats] [--max-kills N]

The script starts the workers itself and starts a new one in each killed worker's place (no procman: its
restart budget of 5 restarts in 10 minutes would end the chaos after 20 kills), so the kills go on from the
first job to the last. The heartbeat is the worker's default (2 s, expiring after 4 beats; sweep every 2 s)
unless ``--heartbeat`` sets both intervals.

Reported: jobs lost (must be 0), repeated runs with their bound (the jobs in the victims' in-flight lists
when they died, counted by key name, not through the registry), the time from each kill until the
survivors had pushed the victim's in-flight jobs back, and when the kills happened within the run.
``--expire-heartbeats`` deletes a victim's heartbeat at once (recovery then measures the sweep alone).
"""

from __future__ import annotations

import argparse
import random
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

import reliability_kit as kit
from jobs_common import load_note

import workerkit
from workerkit.keys import Keys
from workerkit.server import running_server


@dataclass
class Kill:
    """One kill -9: when (seconds into the run), whom, and how many jobs it left in flight."""

    at: float
    identity: str
    orphaned: int
    recovered_after: float | None = None


@dataclass
class ChaosResult:
    """What a chaos run measured."""

    tally: kit.Tally
    kills: list[Kill] = field(default_factory=list)
    seconds: float = 0.0
    tracebacks: int = 0
    left_in_flight: int = 0
    """Jobs in any in-flight list once everything settled (must be 0)."""
    exit_codes: list[int] = field(default_factory=list)
    processed: int = 0
    """``stat:processed`` at the end: each job counted once, so the jobs pushed."""

    @property
    def orphaned(self) -> int:
        """Jobs left in flight by the kills: at most this many runs can repeat."""
        return sum(kill.orphaned for kill in self.kills)

    @property
    def recovery(self) -> list[float]:
        """Seconds from each kill that left jobs in flight until they were back on the queue."""
        return [kill.recovered_after for kill in self.kills if kill.recovered_after is not None and kill.orphaned]


def kill_one(pool: kit.WorkerPool, conn: redis.Redis, started: float, expire: bool) -> Kill | None:
    """kill -9 a random registered worker of ``pool``; None when none is registered yet."""
    candidates = [(process, identity) for process in pool.slots if process.poll() is None
                  and (identity := kit.identity_of(conn, process.pid))]
    if not candidates:
        return None
    victim, identity = random.choice(candidates)
    victim.send_signal(signal.SIGKILL)
    victim.wait(30)
    kill = Kill(time.monotonic() - started, identity, kit.held_by(conn, identity))
    if expire:
        conn.delete(Keys().process(identity))  # what the heartbeat's expiry does a few beats later
    return kill


def chaos_step(pool: kit.WorkerPool, conn: redis.Redis, started: float, next_kill: float,
               kill_every: tuple[float, float], kills: list[Kill], expire: bool = False,
               max_kills: int | None = None) -> float:
    """One turn of a chaos loop: start a worker in each empty slot, kill -9 one when ``next_kill`` has come
    (noting it in ``kills``, at most ``max_kills``), wait a moment; the time of the next kill."""
    pool.respawn()
    if time.monotonic() >= next_kill and (max_kills is None or len(kills) < max_kills):
        kill = kill_one(pool, conn, started, expire)
        if kill is not None:
            kills.append(kill)
        next_kill = time.monotonic() + random.uniform(*kill_every)
    time.sleep(0.05)
    return next_kill


def note_recoveries(conn: redis.Redis, kills: list[Kill], started: float) -> bool:
    """Record the recovery time of every kill whose victim's lists are empty now; whether all are."""
    for kill in kills:
        if kill.recovered_after is None and kit.held_by(conn, kill.identity) == 0:
            kill.recovered_after = time.monotonic() - started - kill.at
    return all(kill.recovered_after is not None for kill in kills)


def run(folder: Path, redis_url: str, jobs: int, workers: int, kill_every: tuple[float, float],
        job_seconds: float, expire_heartbeats: bool = False, heartbeat: float | None = None,
        max_kills: int | None = None, timeout: float = 1800.0) -> ChaosResult:
    """Push ``jobs`` Mark jobs and run them on ``workers`` processes, killing one every ``kill_every``
    seconds (at most ``max_kills`` times) until all are settled; then wait for every recovery, tally."""
    conn = redis.Redis.from_url(redis_url)
    conn.flushall()
    workerkit.configure(redis_url=redis_url)
    pushed = kit.push_marks(jobs, job_seconds)
    pool = kit.WorkerPool(folder, kit.worker_environment(redis_url, heartbeat, heartbeat), workers)
    result = ChaosResult(kit.tally(conn, pushed))
    try:
        pool.wait_for_workers(conn)
        started = time.monotonic()
        done = kit.settled(conn, pushed)
        next_kill = started + random.uniform(*kill_every)
        while not done():
            if time.monotonic() > started + timeout:
                raise TimeoutError(f"jobs still unsettled after {timeout:g} s: {kit.tally(conn, pushed)}")
            note_recoveries(conn, result.kills, started)
            next_kill = chaos_step(pool, conn, started, next_kill, kill_every, result.kills, expire_heartbeats,
                                   max_kills)
        result.seconds = time.monotonic() - started
        kit.wait_until(lambda: note_recoveries(conn, result.kills, started), 120,
                       "every kill's in-flight jobs recovered")
        result.tally = kit.tally(conn, pushed)
        result.left_in_flight = kit.left_in_flight(conn)
        result.processed = kit.counted(conn, jobs)[0]
        pool.respawn()
        pool.wait_for_workers(conn)  # a worker respawned a moment ago may not handle TERM yet: still importing
        result.exit_codes = pool.stop()
    finally:
        pool.kill()
    result.tracebacks = pool.output.count("Traceback")
    return result


def seconds_range(text: str) -> tuple[float, float]:
    """``LOW-HIGH`` (or one number) as a range of seconds, for ``--kill-every``."""
    low, _, high = text.partition("-")
    return float(low), float(high or low)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--kill-every", type=seconds_range, default=(1.0, 2.0), metavar="LOW-HIGH", help="seconds")
    parser.add_argument("--job-seconds", type=float, default=0.02)
    parser.add_argument("--heartbeat", type=float, default=None,
                        help="heartbeat and sweep interval in seconds (default: the worker's, 2 s)")
    parser.add_argument("--expire-heartbeats", action="store_true",
                        help="delete a killed worker's heartbeat at once instead of waiting for it to expire")
    parser.add_argument("--max-kills", type=int, default=None)
    args = parser.parse_args()
    print(f"# {load_note()}")
    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp) / "redis", kind="auto") as server:
        result = run(Path(tmp) / "app", server.url, args.jobs, args.workers, args.kill_every, args.job_seconds,
                     args.expire_heartbeats, args.heartbeat, args.max_kills)
    print(f"# {load_note()}")
    tally, recovery = result.tally, result.recovery
    first = min((kill.at for kill in result.kills), default=0.0)
    last = max((kill.at for kill in result.kills), default=0.0)
    print("| jobs | kills | kills from / to | lost | dead (poison pill) | repeated runs | bound (orphaned at kills) "
          "| recovery median / max | left in flight | processed counted | wall time | tracebacks |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    print(f"| {tally.pushed:,} | {len(result.kills)} | {first:.0f} s / {last:.0f} s | {tally.lost} | {tally.dead} | "
          f"{tally.duplicates} | {result.orphaned} | {statistics.median(recovery) if recovery else 0:.1f} s / "
          f"{max(recovery, default=0):.1f} s | {result.left_in_flight} | {result.processed:,} | "
          f"{result.seconds:.0f} s | {result.tracebacks} |")


if __name__ == "__main__":
    main()
