"""What per-class metrics cost: drain N no-op jobs with metrics on and off (``--no-metrics``), side by side
in one run, interleaved rounds, one worker process of 10 threads, per-job logs off (``quiet``) and on
(``default``). Prints jobs/s and the CPU time of the worker and of Redis per 1,000 jobs (the steadier
figure on a shared machine; see ``bench/jobs_throughput.py``, whose drain it uses), and metrics on / off.

Then, since a few per cent drown in a shared machine's noise, the recording itself in one process: the
CPU time of acknowledging 200,000 jobs with and without their metrics, the batch drained and encoded for
the fetch every ``--batch`` jobs as a worker does (the Lua side shows in the drains' Redis column).

    python3 bench/jobs_metrics.py [--jobs 100000] [--rounds 3] [--logs quiet,default] [--batch 50]
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
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jobs_common as common
from jobs_throughput import Drain, Runtime

import workerkit
from workerkit.fetch import QueueSpec, ReliableFetch, UnitOfWork
from workerkit.keys import Keys
from workerkit.server import running_server

MODES = {"metrics on": (), "metrics off": ("--no-metrics",)}


def fill(url: str, jobs: int) -> None:
    workerkit.configure(redis_url=url)
    workerkit.push_bulk("noop_workerkit.Noop", [()] * jobs)


def recording_cost(conn: redis.Redis, batch: int, calls: int = 200_000) -> dict[str, float]:
    """CPU microseconds per job of ``ack`` without metrics, and with them plus the batch's drain and encoding
    every ``batch`` jobs (no Redis call: what the worker adds to a fetch it makes anyway)."""
    costs = {}
    for mode in MODES:
        fetch = ReliableFetch(conn, Keys(), "bench:1:abcdef", [QueueSpec("default")], metrics=mode == "metrics on")
        units = [UnitOfWork(fetch, 0, b'{"class":"noop_workerkit.Noop","args":[],"jid":"%d"}' % n)
                 for n in range(batch)]
        started = time.process_time()
        for step in range(calls // batch):
            for unit in units:
                if fetch.metrics is None:
                    unit.ack()
                else:
                    unit.ack("noop_workerkit.Noop", 0.000_05 * (step % 7))
            fetch._acks.clear()  # what the fetch takes
            if fetch.metrics:
                fetch.metrics.drain().argv()
        costs[mode] = (time.process_time() - started) / calls * 1e6
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--logs", default="quiet,default", help="quiet, default, or both")
    parser.add_argument("--batch", type=int, default=50, help="jobs acknowledged per fetch in the recording cost")
    args = parser.parse_args()
    left = lambda conn: args.jobs - int(conn.get("stat:processed") or 0)  # noqa: E731
    runtimes = [
        Runtime(common.workerkit_peer(name=mode, env=common.log_env(logs), options=options), fill, left,
                args.jobs, logs)
        for logs in args.logs.split(",") for mode, options in MODES.items()
    ]
    results: dict[tuple[str, str], list[Drain]] = {}
    with tempfile.TemporaryDirectory() as data, running_server(Path(data), kind="auto") as server:
        conn = redis.Redis.from_url(server.url)
        print(f"# server {server.binary}, {common.load_note()}")
        for round_number in range(args.rounds):
            for runtime in runtimes:
                drain = runtime.drain(server.url, conn, 1, server.process.pid)
                results.setdefault(runtime.key, []).append(drain)
                print(f"round {round_number + 1}: {runtime.peer.name} ({runtime.logs} logs): {drain.rate:,.0f} jobs/s, "
                      f"CPU per 1,000 jobs {drain.worker_ms:.1f} ms worker, {drain.server_ms:.1f} ms Redis "
                      f"({common.load_note()})", flush=True)
    print("\n| logs | metrics | jobs/s (median) | rounds | worker CPU ms per 1,000 jobs (median) | Redis CPU ms "
          "per 1,000 jobs | on / off: jobs/s | on / off: worker CPU |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for logs in args.logs.split(","):
        medians = {mode: {field: statistics.median(getattr(d, field) for d in results[(logs, mode)])
                          for field in ("rate", "worker_ms", "server_ms")} for mode in MODES}
        on, off = medians["metrics on"], medians["metrics off"]
        for mode, figures in medians.items():
            rates = ", ".join(f"{d.rate:,.0f}" for d in results[(logs, mode)])
            ratios = (f"{on['rate'] / off['rate']:.3f} | {on['worker_ms'] / off['worker_ms']:.3f}"
                      if mode == "metrics on" else "- | -")
            print(f"| {logs} | {mode} | {figures['rate']:,.0f} | {rates} | {figures['worker_ms']:.1f} | "
                  f"{figures['server_ms']:.1f} | {ratios} |")
    costs = recording_cost(conn, args.batch)
    added = costs["metrics on"] - costs["metrics off"]
    print(f"\nrecording: ack {costs['metrics off']:.2f} us per job without metrics, {costs['metrics on']:.2f} us with "
          f"them (batch of {args.batch}): +{added:.2f} us per job", flush=True)


if __name__ == "__main__":
    main()
