"""Client and start-up latency, workerkit against Sidekiq 6.4, in one run:

- one ``perform_async`` (a round trip): mean microseconds over many calls;
- bulk enqueue: jobs per second through ``push_bulk`` (Sidekiq: ``Sidekiq::Client.push_bulk``);
- enqueue-to-start latency at 200 jobs/s with three queues configured (median and p99): the same Python
  pusher sends a stamping job to the ``default`` queue every 5 ms; each job records when it started.

    python3 bench/jobs_latency.py [--calls 20000] [--bulk 100000] [--stamps 1000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "jobs_peers"))

import jobs_common as common
import noop_workerkit

import workerkit
from workerkit.server import running_server

QUEUES = ["critical", "default", "low"]

RUBY_SINGLE = """
n = Integer(ARGV[0]); NoopWorker.perform_async(0)
t = Process.clock_gettime(Process::CLOCK_MONOTONIC); n.times { |i| NoopWorker.perform_async(i) }
puts (Process.clock_gettime(Process::CLOCK_MONOTONIC) - t) / n * 1e6
"""
RUBY_BULK = """
n = Integer(ARGV[0]); args = Array.new(n) { [] }
t = Process.clock_gettime(Process::CLOCK_MONOTONIC)
args.each_slice(1000) { |slice| Sidekiq::Client.push_bulk("class" => NoopWorker, "args" => slice) }
puts n / (Process.clock_gettime(Process::CLOCK_MONOTONIC) - t)
"""


def ruby(script: str, url: str, count: int) -> float:
    out = subprocess.run(["ruby", "-r", "./noop_sidekiq.rb", "-e", script, str(count)], cwd=common.PEERS,
                         env={"REDIS_URL": url, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def workerkit_single(count: int) -> float:
    noop_workerkit.Noop.perform_async(0)
    started = time.perf_counter()
    for n in range(count):
        noop_workerkit.Noop.perform_async(n)
    return (time.perf_counter() - started) / count * 1e6


def workerkit_bulk(count: int) -> float:
    args = [()] * count
    started = time.perf_counter()
    workerkit.push_bulk(noop_workerkit.Noop, args)
    return count / (time.perf_counter() - started)


def start_latency(peer: common.Peer, class_name: str, url: str, conn: redis.Redis, stamps: int) -> list[float]:
    """Milliseconds from push to start for ``stamps`` jobs sent at 200 jobs/s."""
    conn.flushall()
    workers = peer.start(url, 1)
    try:
        common.wait_until(lambda: conn.scard("processes") > 0, timeout=60)
        time.sleep(1.0)
        next_send = time.perf_counter()
        for _ in range(stamps):
            next_send += 0.005
            time.sleep(max(0.0, next_send - time.perf_counter()))
            workerkit.push(class_name, ["stamps", time.time()], queue="default")
        common.wait_until(lambda: conn.llen("stamps") >= stamps, timeout=60)
    finally:
        common.stop(workers)
    pairs = [line.split() for line in conn.lrange("stamps", 0, -1)]
    return [(float(start) - float(sent)) * 1000 for sent, start in pairs]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--bulk", type=int, default=100_000)
    parser.add_argument("--stamps", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    sidekiq = common.sidekiq_command()
    if sidekiq is None:
        sys.exit("sidekiq is not installed and could not be installed (apt-get install ruby-sidekiq)")
    queue_args = [arg for queue in QUEUES for arg in ("-q", queue)]
    ours = common.workerkit_peer()
    ours_command = ours.command
    ours.command = lambda url: [*ours_command(url), *queue_args]
    theirs = common.sidekiq_peer(sidekiq)
    theirs_command = theirs.command
    theirs.command = lambda url: [*theirs_command(url), *queue_args]
    single: dict[str, list[float]] = {"workerkit": [], "sidekiq": []}
    bulk: dict[str, list[float]] = {"workerkit": [], "sidekiq": []}
    start: dict[str, list[float]] = {"workerkit": [], "sidekiq": []}
    with tempfile.TemporaryDirectory() as data, running_server(Path(data), kind="auto") as server:
        workerkit.configure(redis_url=server.url)
        conn = redis.Redis.from_url(server.url)
        print(f"# Sidekiq {common.sidekiq_version()}, server {server.binary}, {common.load_note()}")
        for round_number in range(args.rounds):
            conn.flushall()
            single["workerkit"].append(workerkit_single(args.calls))
            single["sidekiq"].append(ruby(RUBY_SINGLE, server.url, args.calls))
            conn.flushall()
            bulk["workerkit"].append(workerkit_bulk(args.bulk))
            conn.flushall()
            bulk["sidekiq"].append(ruby(RUBY_BULK, server.url, args.bulk))
            start["workerkit"] += start_latency(ours, "noop_workerkit.Stamp", server.url, conn, args.stamps)
            start["sidekiq"] += start_latency(theirs, "StampWorker", server.url, conn, args.stamps)
            print(f"round {round_number + 1}: single {single['workerkit'][-1]:.1f} vs {single['sidekiq'][-1]:.1f} us, "
                  f"bulk {bulk['workerkit'][-1]:,.0f} vs {bulk['sidekiq'][-1]:,.0f} jobs/s", flush=True)
        print(f"# {common.load_note()}")
    print("\n| measure | workerkit | Sidekiq 6.4 | workerkit is |")
    print("| --- | --- | --- | --- |")
    ours_single, their_single = statistics.median(single["workerkit"]), statistics.median(single["sidekiq"])
    row("one perform_async", f"{ours_single:.1f} us", f"{their_single:.1f} us", their_single / ours_single)
    ours_bulk, their_bulk = statistics.median(bulk["workerkit"]), statistics.median(bulk["sidekiq"])
    row("bulk enqueue", f"{ours_bulk:,.0f} jobs/s", f"{their_bulk:,.0f} jobs/s", ours_bulk / their_bulk)
    for label, fraction in (("median", 0.5), ("p99", 0.99)):
        a, b = percentile(start["workerkit"], fraction), percentile(start["sidekiq"], fraction)
        row(f"enqueue-to-start {label} at 200 jobs/s, 3 queues", f"{a:.2f} ms", f"{b:.2f} ms", b / a)


def row(measure: str, ours: str, theirs: str, factor: float) -> None:
    print(f"| {measure} | {ours} | {theirs} | {factor:.2f}x as fast |")

if __name__ == "__main__":
    main()
