"""Async jobs: N jobs that each ``await asyncio.sleep(S)``, drained by one worker process, side by side in one
run: workerkit (``async def perform`` on its event loop), arq (``max_jobs``) and Dramatiq (an ``async def``
actor under its AsyncIO middleware, which holds one worker thread per running coroutine, so it gets as many
threads as the others get concurrent jobs). Every runtime gets the same concurrency and default logging
(to /dev/null); each job counts its start and its end in Redis with a ``redis.asyncio`` client.

The clock runs from the first job's start to the last job's end (start-up is not counted); the peak thread
count and RSS of the worker process are read while the jobs await. Rounds interleave the runtimes.

    python3 bench/jobs_async.py [--jobs 1000] [--seconds 1] [--concurrency 500] [--rounds 2]
                                [--only workerkit,arq,dramatiq]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psutil
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jobs_common as common

import workerkit
from workerkit.server import running_server


@dataclass(frozen=True)
class Drain:
    """One drain: seconds from the first start to the last end, peak threads and RSS (MiB) of the worker."""

    seconds: float
    threads: int
    rss_mib: float


@dataclass
class Runtime:
    """One runtime: its worker command and how to fill its queue (a command, or None: workerkit's push_bulk)."""

    peer: common.Peer
    fill: list[str] | None

    def drain(self, url: str, conn: redis.Redis, jobs: int, seconds: float) -> Drain:
        conn.flushall()
        if self.fill is None:
            workerkit.configure(redis_url=url)
            workerkit.push_bulk("nap_workerkit.Nap", [[seconds]] * jobs)
        else:
            subprocess.run(self.fill, cwd=common.PEERS, env={"BENCH_REDIS_URL": url, "PATH": "/usr/bin:/bin"},
                           check=True)
        [worker] = self.peer.start(url, 1)
        threads, rss = 0, 0
        try:
            started = common.wait_until(lambda: int(conn.get("bench:started") or 0) > 0, timeout=120)

            def all_done() -> bool:
                nonlocal threads, rss
                for member in common.process_tree(worker.pid):
                    try:
                        threads = max(threads, member.num_threads())
                        rss = max(rss, member.memory_info().rss)
                    except psutil.NoSuchProcess:
                        pass
                return int(conn.get("bench:done") or 0) == jobs

            finished = common.wait_until(all_done, timeout=600, poll=0.02)
        finally:
            common.stop([worker])
        return Drain(finished - started, threads, rss / 2**20)


def runtimes(wanted: set[str], concurrency: int, jobs: int, seconds: float) -> list[Runtime]:
    found: list[Runtime] = []
    if "workerkit" in wanted:
        workerkit_bin = Path(sys.executable).with_name("workerkit")
        found.append(Runtime(common.Peer(
            "workerkit",
            lambda url: [str(workerkit_bin), "worker", "-r", "nap_workerkit", "--async-concurrency", str(concurrency)],
            lambda url: {"WORKERKIT_REDIS_URL": url, "PYTHONPATH": str(common.PEERS)},
        ), None))
    arq = common.arq_python() if "arq" in wanted else None
    if arq is not None:
        found.append(Runtime(common.Peer(
            "arq", lambda url: [str(arq.parent / "arq"), "nap_arq.WorkerSettings"],
            lambda url: {"BENCH_REDIS_URL": url, "BENCH_CONCURRENCY": str(concurrency)},
        ), [str(arq), "nap_arq.py", str(jobs), str(seconds)]))
    python = common.peer_python() if "dramatiq" in wanted else None
    if python is not None:
        bin_dir = python.parent
        if "dramatiq" in wanted:
            found.append(Runtime(common.Peer(
                "dramatiq",
                lambda url: [str(bin_dir / "dramatiq"), "nap_dramatiq", "--processes", "1",
                             "--threads", str(concurrency)],
                lambda url: {"BENCH_REDIS_URL": url},
            ), [str(python), "nap_dramatiq.py", str(jobs), str(seconds)]))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", default="workerkit,arq,dramatiq")
    args = parser.parse_args()
    chosen = runtimes(set(args.only.split(",")), args.concurrency, args.jobs, args.seconds)
    print(f"{args.jobs} jobs x await asyncio.sleep({args.seconds}), one worker process, concurrency "
          f"{args.concurrency}; {common.load_note()}")
    for python in {Path(runtime.fill[0]) for runtime in chosen if runtime.fill}:
        print(common.peer_versions(python))
    results: dict[str, list[Drain]] = {runtime.peer.name: [] for runtime in chosen}
    with tempfile.TemporaryDirectory() as data, running_server(Path(data), kind="auto") as server:
        conn = redis.Redis.from_url(server.url)
        for round_number in range(args.rounds):
            for runtime in chosen:
                drain = runtime.drain(server.url, conn, args.jobs, args.seconds)
                results[runtime.peer.name].append(drain)
                print(f"round {round_number + 1} {runtime.peer.name}: {drain.seconds:.2f} s, "
                      f"{drain.threads} threads, {drain.rss_mib:.1f} MiB", flush=True)
    floor = args.jobs / args.concurrency * args.seconds
    print(f"\nfloor (jobs / concurrency x seconds): {floor:.2f} s")
    print("| runtime | median drain | threads (peak) | RSS (peak) | workerkit is |")
    print("| --- | --- | --- | --- | --- |")
    medians = {name: statistics.median(d.seconds for d in drains) for name, drains in results.items()}
    for name, drains in results.items():
        ratio = "" if name == "workerkit" or "workerkit" not in medians else (
            f"{medians[name] / medians['workerkit']:.2f}x faster")
        print(f"| {name} | {medians[name]:.2f} s | {max(d.threads for d in drains)} | "
              f"{max(d.rss_mib for d in drains):.1f} MiB | {ratio} |")


if __name__ == "__main__":
    main()
