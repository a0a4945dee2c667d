"""Client and start-up latency, workerkit against Sidekiq 6.4, in one run:

- one ``perform_async`` (a round trip): mean microseconds over many calls, each round's calls split into
  ``--slices`` slices that alternate between the two sides (the round's figure is their median);
- bulk enqueue: jobs per second through ``push_bulk`` (Sidekiq: ``Sidekiq::Client.push_bulk``);
- enqueue-to-start latency at 200 and at 2,000 jobs/s with three queues configured (median and p99): the
  same Python pusher sends a stamping job to the ``default`` queue at that pace; each job records when it
  started. Measured in both logging configurations: ``quiet`` (per-job log lines off on both sides:
  Sidekiq's logger at WARN, ``WORKERKIT_LOG_LEVEL=warning``) and ``default`` (each with its defaults).

    python3 bench/jobs_latency.py [--calls 20000] [--slices 4] [--bulk 100000] [--stamps 1000] [--rounds 2]
                                  [--rates 200,2000] [--logs quiet,default] [--push-only | --start-only]
                                  [--other "LABEL=/tmp/venv-before/bin/workerkit" ...]

``--push-only`` measures the two client figures (one ``perform_async``, bulk enqueue) and skips the
enqueue-to-start rounds; ``--start-only`` does the opposite. ``--other LABEL=PATH`` (repeatable) adds the
``workerkit`` executable of another installation (an earlier commit, or a patch, in its own venv) to the
enqueue-to-start rounds, interleaved with the others. Each round prints every runtime's median and p99; the
table gives the percentiles over all the rounds' jobs, and the median of the rounds' p99s (a tail that comes
in bursts makes one slow round weigh on the pooled p99).
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


def start_latency(peer: common.Peer, class_name: str, url: str, conn: redis.Redis, stamps: int,
                  rate: float) -> list[float]:
    """Milliseconds from push to start for ``stamps`` jobs sent at ``rate`` jobs/s."""
    conn.flushall()
    workers = peer.start(url, 1)
    try:
        common.wait_until(lambda: conn.scard("processes") > 0, timeout=60)
        time.sleep(1.0)
        next_send = time.perf_counter()
        for _ in range(stamps):
            next_send += 1 / rate
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


def with_queues(peer: common.Peer) -> common.Peer:
    """``peer`` listening on :data:`QUEUES` (``-q critical -q default -q low``)."""
    command = peer.command
    peer.command = lambda url: [*command(url), *(arg for queue in QUEUES for arg in ("-q", queue))]
    return peer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--slices", type=int, default=4,
                        help="one perform_async: each round's calls in this many alternating slices (median)")
    parser.add_argument("--bulk", type=int, default=100_000)
    parser.add_argument("--stamps", type=int, default=1000, help="jobs per round, rate and runtime")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rates", default="200,2000", help="enqueue-to-start at these jobs/s")
    parser.add_argument("--logs", default="quiet,default", help="quiet, default, or both (quiet,default)")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--push-only", action="store_true", help="only the client figures, no enqueue-to-start")
    only.add_argument("--start-only", action="store_true", help="only enqueue-to-start, no client figures")
    parser.add_argument("--other", action="append", default=[], metavar="LABEL=PATH",
                        help="another installation's workerkit executable, in the enqueue-to-start rounds")
    args = parser.parse_args()
    sidekiq = common.sidekiq_command()
    if sidekiq is None:
        sys.exit("sidekiq is not installed and could not be installed (apt-get install ruby-sidekiq)")
    rates = [float(rate) for rate in args.rates.split(",")]
    logs_modes = [] if args.push_only else args.logs.split(",")
    others = [other.partition("=")[::2] for other in args.other]
    for label, path in others:
        if not label or not Path(path).is_file():
            parser.error(f"--other {label}={path}: expected LABEL=PATH, PATH a workerkit executable")
    peers = {(logs, name): with_queues(peer) for logs in logs_modes for name, peer in (
        ("workerkit", common.workerkit_peer(env=common.log_env(logs))),
        *((label, common.workerkit_peer(name=label, script=Path(path), env=common.log_env(logs)))
          for label, path in others),
        ("sidekiq", common.sidekiq_peer(sidekiq, log_level="warn" if logs == "quiet" else "")))}
    classes = {name: "StampWorker" if name == "sidekiq" else "noop_workerkit.Stamp" for _, name in peers}
    single: dict[str, list[float]] = {"workerkit": [], "sidekiq": []}
    bulk: dict[str, list[float]] = {"workerkit": [], "sidekiq": []}
    start: dict[tuple[str, float, str], list[float]] = {}
    round_p99: dict[tuple[str, float, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as data, running_server(Path(data), kind="auto") as server:
        workerkit.configure(redis_url=server.url)
        conn = redis.Redis.from_url(server.url)
        print(f"# Sidekiq {common.sidekiq_version()}, server {server.binary}, {common.load_note()}")
        for round_number in range(args.rounds):
            if not args.start_only:
                client_round(args, server.url, conn, single, bulk)
                print(f"round {round_number + 1}: single {single['workerkit'][-1]:.1f} vs "
                      f"{single['sidekiq'][-1]:.1f} us, bulk {bulk['workerkit'][-1]:,.0f} vs "
                      f"{bulk['sidekiq'][-1]:,.0f} jobs/s", flush=True)
            for rate in rates:
                for (logs, name), peer in peers.items():
                    latencies = start_latency(peer, classes[name], server.url, conn, args.stamps, rate)
                    start.setdefault((logs, rate, name), []).extend(latencies)
                    round_p99.setdefault((logs, rate, name), []).append(percentile(latencies, 0.99))
                    print(f"round {round_number + 1}: {name} ({logs}) at {rate:,.0f} jobs/s: median "
                          f"{percentile(latencies, 0.5):.2f} ms, p99 {percentile(latencies, 0.99):.2f} ms "
                          f"({common.load_note()})", flush=True)
        print(f"# {common.load_note()}")
    print("\n| measure | workerkit | Sidekiq 6.4 | workerkit is |")
    print("| --- | --- | --- | --- |")
    if not args.start_only:
        ours_single, their_single = statistics.median(single["workerkit"]), statistics.median(single["sidekiq"])
        row("one perform_async", f"{ours_single:.1f} us", f"{their_single:.1f} us", their_single / ours_single)
        ours_bulk, their_bulk = statistics.median(bulk["workerkit"]), statistics.median(bulk["sidekiq"])
        row("bulk enqueue", f"{ours_bulk:,.0f} jobs/s", f"{their_bulk:,.0f} jobs/s", ours_bulk / their_bulk)
    for logs in logs_modes:
        for rate in rates:
            for label, fraction in (("median", 0.5), ("p99", 0.99)):
                a = percentile(start[(logs, rate, "workerkit")], fraction)
                b = percentile(start[(logs, rate, "sidekiq")], fraction)
                row(f"enqueue-to-start {label} at {rate:,.0f} jobs/s, 3 queues, {LOGS[logs]}", f"{a:.2f} ms",
                    f"{b:.2f} ms", b / a)
            a, b = (statistics.median(round_p99[(logs, rate, name)]) for name in ("workerkit", "sidekiq"))
            row(f"enqueue-to-start p99 at {rate:,.0f} jobs/s, median of the rounds, {LOGS[logs]}", f"{a:.2f} ms",
                f"{b:.2f} ms", b / a)
    if others:
        print("\n| build | logs | jobs/s | median | p99 | median of the rounds' p99 |")
        print("| --- | --- | --- | --- | --- | --- |")
        for logs in logs_modes:
            for rate in rates:
                for name in ["workerkit", *(label for label, _ in others), "sidekiq"]:
                    key = (logs, rate, name)
                    print(f"| {name} | {logs} | {rate:,.0f} | {percentile(start[key], 0.5):.2f} ms | "
                          f"{percentile(start[key], 0.99):.2f} ms | {statistics.median(round_p99[key]):.2f} ms |")


def client_round(args: argparse.Namespace, url: str, conn: redis.Redis, single: dict[str, list[float]],
                 bulk: dict[str, list[float]]) -> None:
    """One round of the client figures: one ``perform_async`` in slices alternating between the two sides,
    then a bulk enqueue each."""
    conn.flushall()
    slices: dict[str, list[float]] = {"workerkit": [], "sidekiq": []}
    for _ in range(args.slices):  # alternating, so both sides see the same moments of a shared machine
        slices["workerkit"].append(workerkit_single(args.calls // args.slices))
        slices["sidekiq"].append(ruby(RUBY_SINGLE, url, args.calls // args.slices))
    for side, figures in slices.items():
        single[side].append(statistics.median(figures))
    conn.flushall()
    bulk["workerkit"].append(workerkit_bulk(args.bulk))
    conn.flushall()
    bulk["sidekiq"].append(ruby(RUBY_BULK, url, args.bulk))


LOGS = {"quiet": "per-job logs off on both sides", "default": "both defaults"}
"""The two logging configurations, as the table names them."""


def row(measure: str, ours: str, theirs: str, factor: float) -> None:
    print(f"| {measure} | {ours} | {theirs} | {factor:.2f}x as fast |")


if __name__ == "__main__":
    main()
