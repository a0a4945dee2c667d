"""What uniqueness, rate limiters and batches cost, in one run against one server: a plain
``perform_async``, a unique one that is accepted (new arguments each time), a unique one refused as a
duplicate, one inside a batch's block, one check of each limiter (``with limiter: pass``: a concurrency slot
taken and given back, a window admission, a bucket token), each limiter roomy enough never to refuse; and
the worker's side, fetching, running and acknowledging no-op jobs 100 at a time in this process (the real
fetch and runner), plain jobs against jobs of a batch.

    python3 bench/pro_costs.py [--pushes 5000] [--rounds 3]

Each figure is the median of ``--rounds`` interleaved rounds, in µs per call.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from workerkit import Batch, Job, config, limiter
from workerkit.fetch import QueueSpec, ReliableFetch
from workerkit.keys import Keys
from workerkit.runner import Runner
from workerkit.server import running_server

sys.path.insert(0, str(Path(__file__).resolve().parent))

from jobs_common import load_note


class Plain(Job):
    """A plain job."""

    def perform(self, number: int) -> None:
        """Never run here."""


class Unique(Job):
    """A unique job."""

    unique_for = 3600

    def perform(self, number: int) -> None:
        """Never run here."""


def timed(push: object, pushes: int, same: bool) -> float:
    """µs per push of ``push`` (``perform_async``) with new arguments each time, or the same ones."""
    started = time.perf_counter()
    for number in range(pushes):
        push(0 if same else number)  # type: ignore[operator]
    return (time.perf_counter() - started) / pushes * 1e6


def checked(make: object, calls: int) -> float:
    """µs per ``with make(): pass``."""
    started = time.perf_counter()
    for _ in range(calls):
        with make():  # type: ignore[operator]
            pass
    return (time.perf_counter() - started) / calls * 1e6


def in_batch(pushes: int) -> float:
    """µs per ``perform_async`` inside one batch's block (the block's own two round trips included)."""
    started = time.perf_counter()
    with Batch("bench").jobs():
        for number in range(pushes):
            Plain.perform_async(number)
    return (time.perf_counter() - started) / pushes * 1e6


def drained(jobs: int) -> float:
    """µs per job to fetch, run and acknowledge the ``jobs`` queued, 100 per fetch, in this process."""
    fetch = ReliableFetch(config.redis_client(), Keys(), "bench:1:000000", [QueueSpec("default")], metrics=False)
    runner = Runner(threading.Event())
    started = time.perf_counter()
    ran = 0
    while units := fetch.fetch(100):
        for unit in units:
            runner.process(unit)
        ran += len(units)
    fetch.fetch(0)
    assert ran == jobs, (ran, jobs)
    return (time.perf_counter() - started) / jobs * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pushes", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"# {load_note()}")
    figures: dict[str, list[float]] = {name: [] for name in (
        "plain push", "unique push, accepted", "unique push, refused as a duplicate", "push inside a batch",
        "limiter.concurrent check", "limiter.window check", "limiter.bucket check",
        "worker: fetch, run, acknowledge a plain job", "worker: fetch, run, acknowledge a job of a batch")}
    big = 10**9
    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp), kind="auto") as server:
        config.configure(redis_url=server.url)
        Plain.perform_async(0)
        for _ in range(args.rounds):
            config.redis_client().flushdb()
            figures["plain push"].append(timed(Plain.perform_async, args.pushes, same=False))
            figures["unique push, accepted"].append(timed(Unique.perform_async, args.pushes, same=False))
            figures["unique push, refused as a duplicate"].append(timed(Unique.perform_async, args.pushes, same=True))
            config.redis_client().flushdb()
            figures["push inside a batch"].append(in_batch(args.pushes))
            figures["worker: fetch, run, acknowledge a job of a batch"].append(drained(args.pushes))
            config.redis_client().flushdb()
            timed(Plain.perform_async, args.pushes, same=False)
            figures["worker: fetch, run, acknowledge a plain job"].append(drained(args.pushes))
            figures["limiter.concurrent check"].append(checked(lambda: limiter.concurrent("c", big), args.pushes))
            figures["limiter.window check"].append(checked(lambda: limiter.window("w", big, 1.0), args.pushes))
            figures["limiter.bucket check"].append(checked(lambda: limiter.bucket("b", big, 1.0), args.pushes))
    print(f"# {load_note()}")
    print("| call | µs per call |")
    print("| --- | --- |")
    for name, runs in figures.items():
        print(f"| {name} | {statistics.median(runs):.0f} |")


if __name__ == "__main__":
    main()
