"""Worker memory over many jobs: one ``workerkit worker`` runs 1,000,000 no-op jobs; its RSS is sampled
after every 100,000 (Sidekiq 6.4 alongside with ``--peer``, over the same number of jobs).

    python3 bench/jobs_memory.py [--jobs 1000000] [--step 100000] [--peer] [--workerkit PATH]

``--workerkit`` is the ``workerkit`` executable to measure (another installation's, e.g. a virtualenv with
the project's own dependencies only, without the dev extras: redis-py imports the OpenTelemetry SDK when it
is installed; default: this one's).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jobs_common as common

import workerkit
from workerkit.server import running_server


def rss_series(peer: common.Peer, class_name: str, left: str, url: str, conn: redis.Redis, jobs: int,
               step: int) -> list[float]:
    """RSS in MiB of the worker process tree after each ``step`` jobs."""
    conn.flushall()
    [worker] = peer.start(url, 1)
    series: list[float] = []
    try:
        for _ in range(jobs // step):
            workerkit.push_bulk(class_name, [()] * step)
            common.wait_until(lambda: conn.llen(left) == 0, timeout=600, poll=0.05)
            series.append(sum(p.memory_info().rss for p in common.process_tree(worker.pid)) / 2**20)
    finally:
        common.stop([worker])
    return series


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--step", type=int, default=100_000)
    parser.add_argument("--peer", action="store_true", help="measure Sidekiq 6.4 too")
    parser.add_argument("--workerkit", type=Path, default=None, help="the workerkit executable to measure")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data, running_server(Path(data), kind="auto") as server:
        workerkit.configure(redis_url=server.url)
        conn = redis.Redis.from_url(server.url)
        print(f"# {common.load_note()}")
        ours = common.workerkit_peer(script=args.workerkit)
        runs = {"workerkit": rss_series(ours, "noop_workerkit.Noop", "queue:default", server.url, conn, args.jobs,
                                        args.step)}
        sidekiq = common.sidekiq_command() if args.peer else None
        if sidekiq:
            runs["sidekiq"] = rss_series(common.sidekiq_peer(sidekiq), "NoopWorker", "queue:default", server.url,
                                         conn, args.jobs, args.step)
    print("\n| runtime | " + " | ".join(f"{(n + 1) * args.step // 1000}k" for n in range(args.jobs // args.step))
          + " | growth after the first step |")
    print("| --- " * (args.jobs // args.step + 2) + "|")
    for name, series in runs.items():
        cells = " | ".join(f"{mib:.1f}" for mib in series)
        print(f"| {name} (RSS MiB) | {cells} | {series[-1] - series[0]:+.1f} MiB |")


if __name__ == "__main__":
    main()
