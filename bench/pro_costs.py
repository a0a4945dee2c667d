"""What uniqueness and rate limiters cost, in one run against one server: a plain ``perform_async``, a
unique one that is accepted (new arguments each time), a unique one refused as a duplicate, and one check
of each limiter (``with limiter: pass``: a concurrency slot taken and given back, a window admission, a
bucket token), each limiter roomy enough never to refuse.

    python3 bench/pro_costs.py [--pushes 5000] [--rounds 3]

Each figure is the median of ``--rounds`` interleaved rounds, in µs per call.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from workerkit import Job, config, limiter
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pushes", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"# {load_note()}")
    figures: dict[str, list[float]] = {name: [] for name in (
        "plain push", "unique push, accepted", "unique push, refused as a duplicate", "limiter.concurrent check",
        "limiter.window check", "limiter.bucket check")}
    big = 10**9
    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp), kind="auto") as server:
        config.configure(redis_url=server.url)
        Plain.perform_async(0)
        for _ in range(args.rounds):
            config.redis_client().flushdb()
            figures["plain push"].append(timed(Plain.perform_async, args.pushes, same=False))
            figures["unique push, accepted"].append(timed(Unique.perform_async, args.pushes, same=False))
            figures["unique push, refused as a duplicate"].append(timed(Unique.perform_async, args.pushes, same=True))
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
