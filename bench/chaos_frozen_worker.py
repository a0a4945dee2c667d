"""A worker frozen longer than its heartbeat lives, then thawed, then killed: SIGSTOP one of N workers for
``--freeze`` seconds while the others run, SIGCONT it, push more jobs, and kill -9 it once it holds some of
them.

    python3 bench/chaos_frozen_worker.py [--jobs 20000] [--workers 3] [--freeze 90] [--job-seconds 0.05]
                                         [--heartbeat SECONDS]

While it is frozen its heartbeat expires and the others push its in-flight jobs back (recovery after the
freeze). Thawed, it finishes the jobs it still has in hand but no longer holds: none of their outcomes may
land (one job in five is ``Doomed``: it fails with no retries, so each must be in the dead set exactly once,
and ``stat:processed`` / ``stat:failed`` must count each job once). It must beat again (back after) and be
listed for recovery again, so when it is then killed its NEW in-flight jobs are recovered too (issue 9's
first bug: they used to strand for good). The workers are started by the script; the heartbeat is the
worker's default (2 s, sweep 2 s) unless ``--heartbeat`` sets both.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

import reliability_kit as kit
from jobs_common import load_note

import workerkit
from workerkit.keys import Keys
from workerkit.server import running_server

DOOMED_EVERY = 5
"""One job in this many is Doomed."""


@dataclass
class FrozenResult:
    """What one frozen-then-killed run measured."""

    tally: kit.Tally
    doomed: int
    doomed_entries: int
    """Dead-set entries of Doomed jobs, copies included (must equal ``doomed``)."""
    doomed_distinct: int
    held_when_frozen: int
    doomed_held_when_frozen: int
    """Doomed jobs in the frozen worker's hands: each fails after the thaw, and none of those may land."""
    recovered_after_freeze: float
    back_after_thaw: float
    held_when_killed: int
    listed_when_killed: bool
    """Whether the registry listed the victim's in-flight list when it was killed."""
    recovered_after_kill: float | None
    """None: its in-flight jobs were never recovered (stranded)."""
    processed: int
    failed: int
    refused: int
    """Outcomes the thawed worker did not write because it no longer held the job (its log says so)."""
    left_in_flight: int
    tracebacks: int

    @property
    def bound(self) -> int:
        """At most this many runs can repeat: what the victim held when frozen and when killed."""
        return self.held_when_frozen + self.held_when_killed


def push_mix(count: int, seconds: float) -> tuple[set[str], set[str]]:
    """Push ``count`` jobs, one in :data:`DOOMED_EVERY` Doomed, interleaved; (Mark jids, Doomed jids)."""
    marks: set[str] = set()
    doomed: set[str] = set()
    for _ in range(0, count, 100):
        marks |= kit.push_marks(100 - 100 // DOOMED_EVERY, seconds)
        doomed |= kit.push_marks(100 // DOOMED_EVERY, seconds, job="reliability_jobs.Doomed")
    return marks, doomed


def held_jids(conn: redis.Redis, identity: str) -> set[str]:
    """The jids in the in-flight lists of ``identity``, found by key name."""
    return {json.loads(raw).get("jid", "") for key in conn.scan_iter(match=Keys().inflight(identity, "*"))
            for raw in conn.lrange(key, 0, -1)}


def listed(conn: redis.Redis, identity: str) -> bool:
    """Whether the ``inflight_lists`` registry lists an in-flight list of ``identity``."""
    prefix = Keys().inflight(identity, "").encode()
    return any(key.startswith(prefix) for key in conn.hkeys(Keys().inflight_lists))


def _since(start: float) -> float:
    return time.monotonic() - start


def run(folder: Path, redis_url: str, jobs_count: int, workers: int, freeze: float, job_seconds: float,
        heartbeat: float | None = None, timeout: float = 600.0) -> FrozenResult:
    """Freeze, thaw and kill one worker as described above; tally once everything settled."""
    conn = redis.Redis.from_url(redis_url)
    conn.flushall()
    workerkit.configure(redis_url=redis_url)
    marks, doomed = push_mix(jobs_count, job_seconds)
    pool = kit.WorkerPool(folder, kit.worker_environment(redis_url, heartbeat, heartbeat), workers)
    try:
        pool.wait_for_workers(conn)
        victim, identity = pool.busy_worker(conn)
        victim.send_signal(signal.SIGSTOP)
        frozen_at = time.monotonic()
        held_when_frozen = kit.held_by(conn, identity)
        doomed_held = len(held_jids(conn, identity) & doomed)
        kit.wait_until(lambda: kit.held_by(conn, identity) == 0, timeout, "the frozen worker's jobs recovered")
        recovered_after_freeze = _since(frozen_at)
        time.sleep(max(0.0, frozen_at + freeze - time.monotonic()))  # the fault itself: frozen this long
        victim.send_signal(signal.SIGCONT)
        thawed_at = time.monotonic()
        kit.wait_until(lambda: conn.exists(Keys().process(identity)), 60, "the thawed worker to beat again")
        back_after_thaw = _since(thawed_at)
        more_marks, more_doomed = push_mix(jobs_count // 4, job_seconds)
        marks |= more_marks
        doomed |= more_doomed
        fresh = more_marks | more_doomed
        kit.wait_until(lambda: held_jids(conn, identity) & fresh, timeout, "the thawed worker to hold new jobs")
        victim.send_signal(signal.SIGKILL)
        victim.wait(30)
        killed_at = time.monotonic()
        held_when_killed = kit.held_by(conn, identity)
        listed_when_killed = listed(conn, identity)
        try:
            kit.wait_until(lambda: kit.held_by(conn, identity) == 0, 120, "the killed worker's jobs recovered")
            recovered_after_kill: float | None = _since(killed_at)
        except TimeoutError:
            recovered_after_kill = None
        if recovered_after_kill is not None:
            kit.wait_until(kit.settled(conn, marks | doomed), timeout, "every job settled")
        tally = kit.tally(conn, marks)
        buried = [json.loads(member).get("jid", "") for member in conn.zrange(Keys().dead, 0, -1)]
        processed, failed = kit.counted(conn, len(marks) + len(doomed))
        left = kit.left_in_flight(conn)
        pool.stop()
    finally:
        pool.kill()
    output = pool.output
    return FrozenResult(
        tally, len(doomed), sum(jid in doomed for jid in buried), len(set(buried) & doomed), held_when_frozen,
        doomed_held, recovered_after_freeze, back_after_thaw, held_when_killed, listed_when_killed,
        recovered_after_kill,
        processed, failed, output.count("no longer held by this worker"), left, output.count("Traceback"),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs before the freeze (a quarter more after)")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--freeze", type=float, default=90.0, help="seconds the worker stays SIGSTOPped")
    parser.add_argument("--job-seconds", type=float, default=0.05)
    parser.add_argument("--heartbeat", type=float, default=None,
                        help="heartbeat and sweep interval in seconds (default: the worker's, 2 s)")
    args = parser.parse_args()
    print(f"# {load_note()}")
    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp) / "redis", kind="auto") as server:
        r = run(Path(tmp) / "app", server.url, args.jobs, args.workers, args.freeze, args.job_seconds, args.heartbeat)
    print(f"# {load_note()}")
    t = r.tally
    kill_recovery = f"{r.recovered_after_kill:.1f} s" if r.recovered_after_kill is not None else "NEVER (stranded)"
    print("| jobs (Mark + Doomed) | lost | repeated runs (bound) | Doomed: dead entries / distinct / pushed | "
          "processed / failed counted (pushed / Doomed) | held when frozen | recovered after freeze | "
          "beats again after thaw | outcomes refused (Doomed held when frozen) | held when killed (listed) | "
          "recovered after kill | "
          "left in flight | tracebacks |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    print(f"| {t.pushed:,} + {r.doomed:,} | {t.lost} | {t.duplicates} ({r.bound}) | "
          f"{r.doomed_entries:,} / {r.doomed_distinct:,} / {r.doomed:,} | {r.processed:,} / {r.failed:,} "
          f"({t.pushed + r.doomed:,} / {r.doomed:,}) | {r.held_when_frozen} | {r.recovered_after_freeze:.1f} s | "
          f"{r.back_after_thaw:.1f} s | {r.refused} ({r.doomed_held_when_frozen}) | "
          f"{r.held_when_killed} ({r.listed_when_killed}) | "
          f"{kill_recovery} | {r.left_in_flight} | {r.tracebacks} |")


if __name__ == "__main__":
    main()
