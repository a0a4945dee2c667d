"""What uniqueness costs a push, in one run: a plain ``perform_async``, a unique one that is accepted (new
arguments each time), and a unique one refused as a duplicate, against one server.

    python3 bench/push_unique.py [--pushes 5000] [--rounds 3]

Each figure is the median of ``--rounds`` interleaved rounds, in µs per push.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from workerkit import Job, config
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pushes", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"# {load_note()}")
    figures: dict[str, list[float]] = {"plain": [], "unique, accepted": [], "unique, refused as a duplicate": []}
    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp), kind="auto") as server:
        config.configure(redis_url=server.url)
        Plain.perform_async(0)
        for _ in range(args.rounds):
            config.redis_client().flushdb()
            figures["plain"].append(timed(Plain.perform_async, args.pushes, same=False))
            figures["unique, accepted"].append(timed(Unique.perform_async, args.pushes, same=False))
            figures["unique, refused as a duplicate"].append(timed(Unique.perform_async, args.pushes, same=True))
    print(f"# {load_note()}")
    print("| push | µs per push |")
    print("| --- | --- |")
    for name, runs in figures.items():
        print(f"| {name} | {statistics.median(runs):.0f} |")


if __name__ == "__main__":
    main()
