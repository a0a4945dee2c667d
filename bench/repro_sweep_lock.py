"""A worker killed in the middle of an orphan sweep: how long the jobs of a dead worker then wait.

The sweep lock lives ``workerkit.recovery.LOCK_SECONDS`` (5 s) without renewal; a sweep renews it before each
job it moves and leaves it to expire one interval after it ends. A sweeper killed mid-sweep (-9, OOM) leaves
it for up to 5 s, so the next sweep may wait that long. (Before the fix the lock lived 30 s and stopped every
recovery that long.) This script leaves in the lock exactly what such a sweeper leaves (its token, 5 s),
kill -9s a worker that holds jobs, and measures how long its jobs take to come back against the bound
``max(4 * heartbeat, LOCK_SECONDS) + sweep interval``. Exit status 1 when the bound is broken.

    python3 bench/repro_sweep_lock.py [--heartbeat 0.5]
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

import reliability_kit as kit

import workerkit
from workerkit.heartbeat import TTL_BEATS
from workerkit.keys import Keys
from workerkit.recovery import LOCK_SECONDS
from workerkit.server import running_server


def recovery_with_a_dead_sweepers_lock(folder: Path, redis_url: str, heartbeat: float) -> tuple[float, float]:
    """(seconds until a killed worker's jobs were back, the promised bound) with a dead sweeper's lock."""
    conn = redis.Redis.from_url(redis_url)
    conn.flushall()
    workerkit.configure(redis_url=redis_url)
    kit.push_marks(200, 0.5)
    pool = kit.WorkerPool(folder, kit.worker_environment(redis_url, heartbeat, heartbeat), 2)
    try:
        pool.wait_for_workers(conn)
        victim, identity = pool.busy_worker(conn)
        conn.set(Keys().process_cleanup_lock, "token-of-a-sweeper-killed-mid-sweep", px=int(LOCK_SECONDS * 1000))
        victim.send_signal(signal.SIGKILL)
        victim.wait(30)
        killed = time.monotonic()
        kit.wait_until(lambda: kit.held_by(conn, identity) == 0, 60, "the killed worker's jobs recovered")
        return time.monotonic() - killed, max(TTL_BEATS * heartbeat, LOCK_SECONDS) + heartbeat
    finally:
        pool.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--heartbeat", type=float, default=0.5, help="heartbeat and sweep interval (seconds)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp) / "redis", kind="auto") as server:
        took, promised = recovery_with_a_dead_sweepers_lock(Path(tmp) / "app", server.url, args.heartbeat)
    print(f"recovered after {took:.1f} s; promised {promised:.1f} s (heartbeat {args.heartbeat:g} s)")
    sys.exit(0 if took <= promised + 2 else 1)


if __name__ == "__main__":
    main()
