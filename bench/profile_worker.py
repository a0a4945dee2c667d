"""Profile one worker draining no-op jobs with py-spy, and print where its time goes: per frame, the
inclusive share of the samples and the samples per 1,000 jobs acknowledged while sampling (comparable
across versions, whatever the load made the drain's pace).

    python3 bench/profile_worker.py [--workerkit PATH] [--jobs 400000] [--seconds 6] [--log-level warning]

``--workerkit`` is the ``workerkit`` executable to profile (another installation's, e.g. an earlier commit
in its own venv; default: this one's). Needs ``py-spy`` (``pip install py-spy``) and ptrace rights (root).
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jobs_common as common

import workerkit
from workerkit.server import running_server


def inclusive(raw: str) -> tuple[collections.Counter[str], int]:
    """Samples per frame name (each frame counted once per stack) from py-spy's raw (collapsed) output."""
    shares: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        samples = int(count)
        total += samples
        for frame in {frame.split(" (")[0] for frame in stack.split(";")}:
            shares[frame] += samples
    return shares, total


def profile(executable: str, url: str, seconds: float, log_level: str, out: Path) -> int:
    """Run one worker against ``url`` for 2 s, then sample it for ``seconds``; jobs acknowledged while
    sampling."""
    env = {**os.environ, **common.workerkit_peer().env(url)}
    if log_level:
        env["WORKERKIT_LOG_LEVEL"] = log_level
    worker = subprocess.Popen([executable, "worker", "-r", "noop_workerkit", "-c", "10"], cwd=common.PEERS,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    conn = redis.Redis.from_url(url)
    try:
        time.sleep(2.0)  # start-up and the first batches, not profiled
        before = int(conn.get("stat:processed") or 0)
        subprocess.run([shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy")), "record",
                        "--nonblocking", "-r", "200", "-d", str(int(seconds)), "-f", "raw", "-o", str(out),
                        "-p", str(worker.pid)], check=True, capture_output=True)
        return int(conn.get("stat:processed") or 0) - before
    finally:
        worker.terminate()
        worker.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workerkit", default=str(Path(sys.executable).with_name("workerkit")))
    parser.add_argument("--jobs", type=int, default=400_000)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--log-level", default="", help="WORKERKIT_LOG_LEVEL (default: the worker's)")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    print(f"# {common.load_note()}")
    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp) / "redis", kind="auto") as server:
        workerkit.configure(redis_url=server.url)
        workerkit.push_bulk("noop_workerkit.Noop", [()] * args.jobs)
        out = Path(tmp) / "profile.txt"
        acknowledged = profile(args.workerkit, server.url, args.seconds, args.log_level, out)
        shares, total = inclusive(out.read_text())
    print(f"# {args.workerkit}: {acknowledged:,} jobs acknowledged in the {args.seconds:g} s sampled; {total} "
          f"samples; {common.load_note()}")
    print("| share of samples | samples per 1,000 jobs | frame |\n| --- | --- | --- |")
    for frame, samples in shares.most_common(args.top):
        print(f"| {100 * samples / total:.1f}% | {1000 * samples / max(1, acknowledged):.2f} | `{frame}` |")


if __name__ == "__main__":
    main()
