"""Throughput: drain N no-op jobs with one and with two worker processes, side by side in one run.

workerkit against Sidekiq 6.4 (Debian ruby-sidekiq), RQ (SimpleWorker, no fork per job), Dramatiq and
Celery (one process, 10 threads each, everyone's default logging). The jobs are pushed first; the clock runs
from the moment the first job leaves the queue to the moment the last one is done (workerkit: acknowledged;
peers: their queue structure empty), so start-up time is not counted. Rounds interleave the runtimes.

    python3 bench/jobs_throughput.py [--jobs 100000] [--peer-jobs 5000] [--rounds 2] [--only workerkit,sidekiq]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jobs_common as common

import workerkit
from workerkit.server import running_server


class Runtime:
    """One runtime in the comparison: how to fill its queue, start it, and see what is left."""

    def __init__(self, peer: common.Peer, fill: Callable[[str, int], None], left: Callable[[redis.Redis], int],
                 jobs: int) -> None:
        self.peer, self.fill, self.left, self.jobs = peer, fill, left, jobs

    def drain(self, url: str, conn: redis.Redis, processes: int) -> float:
        """Jobs per second to drain ``self.jobs`` jobs with ``processes`` worker processes."""
        conn.flushall()
        self.fill(url, self.jobs)
        workers = self.peer.start(url, processes)
        try:
            started = common.wait_until(lambda: self.left(conn) < self.jobs, timeout=120)
            at_start = self.left(conn)
            finished = common.wait_until(lambda: self.left(conn) == 0, timeout=600)
        finally:
            common.stop(workers)
        return at_start / (finished - started)


def _workerkit_fill(class_name: str) -> Callable[[str, int], None]:
    def fill(url: str, jobs: int) -> None:
        workerkit.configure(redis_url=url)
        workerkit.push_bulk(class_name, [()] * jobs)

    return fill


def _python_fill(python: Path, script: str) -> Callable[[str, int], None]:
    def fill(url: str, jobs: int) -> None:
        subprocess.run([str(python), script, url, str(jobs)], cwd=common.PEERS, check=True,
                       env={"BENCH_REDIS_URL": url, "PATH": "/usr/bin:/bin"})

    return fill


def _int(value: object) -> int:
    return int(value or 0)  # type: ignore[call-overload]


def runtimes(args: argparse.Namespace) -> list[Runtime]:
    """The runtimes asked for and available on this machine."""
    wanted = set(args.only.split(","))
    found: list[Runtime] = []
    if "workerkit" in wanted:
        found.append(Runtime(common.workerkit_peer(), _workerkit_fill("noop_workerkit.Noop"),
                             lambda c: args.jobs - _int(c.get("stat:processed")), args.jobs))
    sidekiq = common.sidekiq_command() if "sidekiq" in wanted else None
    if sidekiq:
        print(f"# Sidekiq {common.sidekiq_version()}")
        found.append(Runtime(common.sidekiq_peer(sidekiq), _workerkit_fill("NoopWorker"),
                             lambda c: c.llen("queue:default"), args.jobs))
    python = common.peer_python() if wanted & {"rq", "dramatiq", "celery"} else None
    if python is not None:
        print(f"# {common.peer_versions(python)}")
        bin_dir = python.parent
        env = lambda url: {"BENCH_REDIS_URL": url, "PYTHONPATH": str(common.PEERS)}  # noqa: E731
        if "rq" in wanted:
            rq = common.Peer("rq", lambda url: [str(bin_dir / "rq"), "worker", "--url", url, "-w",
                                                "rq.worker.SimpleWorker", "default"], env)
            found.append(Runtime(rq, _python_fill(python, "noop_rq.py"), lambda c: c.llen("rq:queue:default"),
                                 args.peer_jobs))
        if "dramatiq" in wanted:
            dramatiq = common.Peer("dramatiq", lambda url: [str(bin_dir / "dramatiq"), "noop_dramatiq",
                                                            "--processes", "1", "--threads", "10"], env)
            found.append(Runtime(dramatiq, _python_fill(python, "noop_dramatiq.py"),
                                 lambda c: c.hlen("dramatiq:default.msgs"), args.peer_jobs))
        if "celery" in wanted:
            celery = common.Peer("celery", lambda url: [str(bin_dir / "celery"), "-A", "noop_celery", "worker",
                                                        "-P", "threads", "-c", "10", "--without-gossip",
                                                        "--without-mingle", "--without-heartbeat"], env)
            found.append(Runtime(celery, _python_fill(python, "noop_celery.py"),
                                 lambda c: c.llen("celery") + c.hlen("unacked"), args.peer_jobs))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=100_000, help="jobs for workerkit and Sidekiq")
    parser.add_argument("--peer-jobs", type=int, default=5_000, help="jobs for RQ, Dramatiq, Celery (slower)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--processes", default="1,2")
    parser.add_argument("--only", default="workerkit,sidekiq,rq,dramatiq,celery")
    args = parser.parse_args()
    counts = [int(n) for n in args.processes.split(",")]
    chosen = runtimes(args)
    results: dict[tuple[str, int], list[float]] = {}
    with tempfile.TemporaryDirectory() as data, running_server(Path(data), kind="auto") as server:
        conn = redis.Redis.from_url(server.url)
        print(f"# server {server.binary}, {common.load_note()}")
        for round_number in range(args.rounds):
            for processes in counts:
                for runtime in chosen:
                    rate = runtime.drain(server.url, conn, processes)
                    results.setdefault((runtime.peer.name, processes), []).append(rate)
                    print(f"round {round_number + 1}: {runtime.peer.name} x{processes}: {rate:,.0f} jobs/s", flush=True)
        print(f"# {common.load_note()}")
    print("\n| runtime | processes | jobs | jobs/s (median) | workerkit / runtime |")
    print("| --- | --- | --- | --- | --- |")
    for processes in counts:
        ours = statistics.median(results[("workerkit", processes)]) if ("workerkit", processes) in results else None
        for runtime in chosen:
            rate = statistics.median(results[(runtime.peer.name, processes)])
            ratio = f"{ours / rate:.2f}x" if ours else "-"
            print(f"| {runtime.peer.name} | {processes} | {runtime.jobs:,} | {rate:,.0f} | {ratio} |")


if __name__ == "__main__":
    main()
