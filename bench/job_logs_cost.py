"""What keeping each job's own log lines (``workerkit.job_logs``) costs a job that succeeds: the CPU time of
one ``logging`` call inside a job, through the worker's real log handler (text lines to /dev/null, as
``workerkit worker`` sets it up), with the capture installed and without, in alternating rounds. A job that
logs nothing pays nothing: the capture runs only when a line is logged, and nothing at a job's end.

    python3 bench/job_logs_cost.py [--calls 200000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workerkit import job_logs, logs


def per_call(calls: int) -> float:
    """CPU microseconds of one ``log.info`` with two arguments inside a job's context."""
    log = logging.getLogger("app.jobs")
    started = time.process_time()
    for number in range(calls):
        if number % 10 == 0:  # a new run every 10 lines, as a job that logs 10 lines
            logs.set_job_context(f"{number:024x}", "app.jobs.Report")
        log.info("sent %d mails to %s", number, "list@example.com")
    return (time.process_time() - started) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - logs.setup writes to sys.stdout.buffer
    logs.setup("text")
    root = logging.getLogger()
    handlers = list(root.handlers)
    results: dict[str, list[float]] = {"capture off": [], "capture on": []}
    for _ in range(args.rounds):
        root.handlers[:] = handlers
        results["capture off"].append(per_call(args.calls))
        job_logs.install()
        results["capture on"].append(per_call(args.calls))
    sys.stdout = sys.__stdout__
    off, on = (statistics.median(results[mode]) for mode in ("capture off", "capture on"))
    for mode, figures in results.items():
        print(f"{mode}: {statistics.median(figures):.2f} us per logged line (rounds: "
              f"{', '.join(f'{figure:.2f}' for figure in figures)})")
    print(f"capture on / off: {on / off:.3f} (+{on - off:.2f} us per line a job logs)")


if __name__ == "__main__":
    main()
