"""What ``wait_replicas`` costs a push: one ``perform_async`` and a 10,000-job ``push_bulk``, plain and with
``wait_replicas=1`` and ``2``, on one server, through Sentinel (a primary, 2 replicas) and on a Cluster (3
primaries with a replica each), all in one run.

    python3 bench/push_durability.py [--pushes 2000] [--rounds 3] [--binary redis-server|valkey-server]

Each figure is the median of ``--rounds`` rounds, interleaved (plain, then each ``wait_replicas``, then
plain again...). Replicas are on this machine, so ``WAIT`` costs about one replication round trip on
loopback; across hosts it costs the network's.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import workerkit
from workerkit import config
from workerkit.server import running_server

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.append(str(BENCH.parent / "tests"))  # after workerkit is imported: tests/workerkit would shadow it

from ha_support import server_binaries, start_cluster, start_sentinel_group  # noqa: E402
from jobs_common import load_note  # noqa: E402

BULK = 10_000


def one_round(url: str, wait: int, pushes: int) -> tuple[float, float]:
    """µs per ``perform_async``-equivalent push, and jobs/s of one bulk push, with ``wait_replicas=wait``."""
    config.reset()
    config.configure(redis_url=url, wait_replicas=wait, wait_timeout_ms=5000)
    workerkit.push("bench.Noop", [0])  # connect and load the scripts first
    started = time.perf_counter()
    for number in range(pushes):
        workerkit.push("bench.Noop", [number])
    single = (time.perf_counter() - started) / pushes * 1e6
    started = time.perf_counter()
    workerkit.push_bulk("bench.Noop", [[number] for number in range(BULK)])
    bulk = BULK / (time.perf_counter() - started)
    config.redis_client().flushdb()
    config.reset()
    return single, bulk


@contextlib.contextmanager
def topologies(folder: Path, binary: str) -> Iterator[dict[str, tuple[str, list[int]]]]:
    """Each topology's URL and the ``wait_replicas`` values it can honour."""
    with running_server(folder / "single", kind="system" if "redis-server" in binary else "embedded") as single, \
            start_sentinel_group(folder / "sentinel", binary=binary) as sentinel, \
            start_cluster(folder / "cluster", binary=binary) as cluster:
        yield {"one server": (single.url, [0]), "Sentinel, 2 replicas": (sentinel.url, [0, 1, 2]),
               "Cluster, 1 replica per primary": (cluster.url, [0, 1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pushes", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--binary", choices=sorted(server_binaries()), default=sorted(server_binaries())[0])
    args = parser.parse_args()
    print(f"# {load_note()}")
    with tempfile.TemporaryDirectory() as tmp, topologies(Path(tmp), server_binaries()[args.binary]) as found:
        figures: dict[tuple[str, int], list[tuple[float, float]]] = {}
        for _ in range(args.rounds):
            for name, (url, waits) in found.items():
                for wait in waits:
                    figures.setdefault((name, wait), []).append(one_round(url, wait, args.pushes))
    print(f"# {load_note()}")
    print("| topology | wait_replicas | one push | bulk push of 10,000 |")
    print("| --- | --- | --- | --- |")
    for (name, wait), runs in figures.items():
        single = statistics.median(run[0] for run in runs)
        bulk = statistics.median(run[1] for run in runs)
        print(f"| {name} | {wait} | {single:.0f} µs | {bulk:,.0f} jobs/s |")


if __name__ == "__main__":
    main()
