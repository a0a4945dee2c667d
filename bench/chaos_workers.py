"""Worker crashes: Mark jobs run under ``procman start -c worker=N --restart worker`` while a chaos loop
kill -9s a random worker every few seconds; every job must end up done (or, as a poison pill, dead).

    python3 bench/chaos_workers.py [--jobs 200000] [--workers 4] [--kill-every 1-2] [--job-seconds 0.001]
                                   [--expire-heartbeats]

Reported: jobs lost (must be 0), repeated runs with their bound (the jobs sitting in the victims'
in-flight lists when they died), and the time from each kill until the survivors had pushed the
victim's in-flight jobs back. A killed worker's heartbeat lives 60 s, so recovery takes 60 s plus a sweep
interval unless ``--expire-heartbeats`` deletes it at once (what the CI version does, to stay short).
procman gives up on an instance restarted 5 times in 10 minutes, so the loop only kills instances that
have budget left and stops when none has.
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

import psutil
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

import reliability_kit as kit
from jobs_common import load_note

import workerkit
from procman.supervisor import RESTART_LIMIT
from workerkit.keys import Keys
from workerkit.server import running_server


@dataclass
class Kill:
    """One kill -9: when, whom, and how many jobs it left in flight."""

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
    procman_exit: int | None = None

    @property
    def orphaned(self) -> int:
        """Jobs left in flight by the kills: at most this many runs can repeat."""
        return sum(kill.orphaned for kill in self.kills)

    @property
    def recovery(self) -> list[float]:
        """Seconds from each kill until its in-flight jobs were back on the queue."""
        return [kill.recovered_after for kill in self.kills if kill.recovered_after is not None]


def _kill_one(fleet: kit.Fleet, conn: redis.Redis, budget: dict[str, int], expire: bool) -> Kill | None:
    """kill -9 a random registered worker with restart budget left; None when there is none."""
    candidates = [(label, process) for label, process in fleet.workers().items()
                  if budget.get(label, 0) < RESTART_LIMIT and kit.identity_of(conn, process.pid)]
    if not candidates:
        return None
    label, victim = random.choice(candidates)
    identity = kit.identity_of(conn, victim.pid)
    assert identity is not None
    victim.send_signal(signal.SIGKILL)
    try:
        victim.wait(30)
    except psutil.TimeoutExpired:
        return None
    budget[label] = budget.get(label, 0) + 1
    kill = Kill(time.monotonic(), identity, kit.inflight_count(conn, identity))
    if expire:
        conn.delete(Keys().process(identity))  # what 60 s without a heartbeat does
    return kill


def _note_recoveries(conn: redis.Redis, kills: list[Kill]) -> None:
    for kill in kills:
        if kill.recovered_after is None and kit.inflight_count(conn, kill.identity) == 0:
            kill.recovered_after = time.monotonic() - kill.at


def _all_recovered(conn: redis.Redis, kills: list[Kill]) -> bool:
    _note_recoveries(conn, kills)
    return all(kill.recovered_after is not None for kill in kills)


def run(folder: Path, redis_url: str, jobs: int, workers: int, kill_every: tuple[float, float],
        job_seconds: float, expire_heartbeats: bool, max_kills: int | None = None,
        timeout: float = 1800.0) -> ChaosResult:
    """Push ``jobs`` Mark jobs, run them under procman with the chaos loop, wait until all settled."""
    conn = redis.Redis.from_url(redis_url)
    conn.flushall()
    workerkit.configure(redis_url=redis_url)
    pushed = kit.push_marks(jobs, job_seconds)
    started = time.monotonic()
    fleet = kit.Fleet(folder, kit.worker_environment(redis_url), workers, worker_args="-c 10")
    result = ChaosResult(kit.tally(conn, pushed))
    try:
        fleet.wait_for_workers(workers, conn)
        budget: dict[str, int] = {}
        done = kit.settled(conn, pushed)
        next_kill = time.monotonic() + random.uniform(*kill_every)
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"jobs still unsettled after {timeout:g} s: {kit.tally(conn, pushed)}")
            _note_recoveries(conn, result.kills)
            chaos_on = (max_kills is None or len(result.kills) < max_kills) and kit.pending(conn) > 0
            if chaos_on and time.monotonic() >= next_kill:
                kill = _kill_one(fleet, conn, budget, expire_heartbeats)
                if kill is not None:
                    result.kills.append(kill)
                next_kill = time.monotonic() + random.uniform(*kill_every)
            time.sleep(0.05)
        result.seconds = time.monotonic() - started
        kit.wait_until(lambda: _all_recovered(conn, result.kills), 120, "every kill's in-flight jobs recovered")
        result.tally = kit.tally(conn, pushed)
        result.procman_exit = fleet.stop()
    finally:
        fleet.kill()
    result.tracebacks = fleet.output.count("Traceback")
    return result


def _range(text: str) -> tuple[float, float]:
    low, _, high = text.partition("-")
    return float(low), float(high or low)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--kill-every", type=_range, default=(1.0, 2.0), metavar="LOW-HIGH", help="seconds")
    parser.add_argument("--job-seconds", type=float, default=0.001)
    parser.add_argument("--expire-heartbeats", action="store_true",
                        help="delete a killed worker's heartbeat at once instead of waiting 60 s for it to expire")
    args = parser.parse_args()
    print(f"# {load_note()}")
    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp) / "redis", kind="auto") as server:
        result = run(Path(tmp) / "app", server.url, args.jobs, args.workers, args.kill_every, args.job_seconds,
                     args.expire_heartbeats)
    tally, recovery = result.tally, result.recovery
    print("| jobs | kills | lost | dead (poison pill) | repeated runs | bound (orphaned at kills) | "
          "recovery median / max | wall time | tracebacks |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    print(f"| {tally.pushed:,} | {len(result.kills)} | {tally.lost} | {tally.dead} | {tally.duplicates} | "
          f"{result.orphaned} | {statistics.median(recovery) if recovery else 0:.1f} s / "
          f"{max(recovery, default=0):.1f} s | {result.seconds:.0f} s | {result.tracebacks} |")


if __name__ == "__main__":
    main()
