"""How long the dashboard's Metrics reads take over 1, 24 and 72 hours of data: the table of classes
(``MetricsReader.classes``) and one class's chart (``series``, 60 slots at most), with 20 classes that each
ran 3 times a minute for 72 hours, written by real fetches. Each is timed twice in the same run: reading the
hour hashes, and with the hour hashes deleted, which makes the reader read every minute as it did before
hours were kept (plus one empty read per hour).

    python3 bench/metrics_windows.py [--classes 20] [--rounds 3]

Figures: the median of ``--rounds`` reads, in ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from jobs_common import load_note

from workerkit.keys import Keys
from workerkit.lifecycle import Lifecycle
from workerkit.metrics import RETENTION_MINUTES, MetricsBatch
from workerkit.metrics_query import MetricsReader, current_minute
from workerkit.server import running_server

WINDOWS = {"1 hour": 60, "24 hours": 1440, "72 hours": RETENTION_MINUTES}


def fill(conn: redis.Redis, classes: int, now: float) -> None:
    """72 hours of runs of ``classes`` classes, three a minute each, written an hour per fetch."""
    lifecycle = Lifecycle(conn, Keys())
    last = current_minute(now)
    for start in range(last - RETENTION_MINUTES + 1, last + 1, 60):
        batch = MetricsBatch()
        for minute in range(start, min(start + 60, last + 1)):
            for number in range(classes):
                for seconds in (0.002, 0.004, 0.008):
                    batch.record(f"app.jobs.Class{number}", seconds, number == 0, minute * 60 + 1)
        lifecycle.fetch([], [], [], [], 0, [], now, batch.drain())


def timed(read: object, rounds: int) -> float:
    """The median ms of ``rounds`` calls of ``read``."""
    runs = []
    for _ in range(rounds):
        started = time.perf_counter()
        read()  # type: ignore[operator]
        runs.append((time.perf_counter() - started) * 1000)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"# {load_note()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp), kind="auto") as server:
        conn = redis.Redis.from_url(server.url)
        now = time.time()
        fill(conn, args.classes, now)
        reader = MetricsReader(conn, Keys())
        for hours_kept in (True, False):
            if not hours_kept:
                conn.delete(*conn.keys("metrics:h:*"))
            for label, minutes in WINDOWS.items():
                table = timed(lambda minutes=minutes: reader.classes(minutes, now), args.rounds)
                chart = timed(lambda minutes=minutes: reader.series("app.jobs.Class3", minutes, 60, now), args.rounds)
                rows.append((label, hours_kept, table, chart))
    print(f"# {load_note()}")
    print("| window | classes table, hours kept | every minute read | class chart, hours kept | every minute read |")
    print("| --- | --- | --- | --- | --- |")
    for label in WINDOWS:
        kept = next(row for row in rows if row[0] == label and row[1])
        minutes = next(row for row in rows if row[0] == label and not row[1])
        print(f"| {label} | {kept[2]:.0f} ms | {minutes[2]:.0f} ms | {kept[3]:.0f} ms | {minutes[3]:.0f} ms |")


if __name__ == "__main__":
    main()
