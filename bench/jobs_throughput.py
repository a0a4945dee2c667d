"""Throughput: drain N jobs with 1, 2 and 4 worker processes, side by side in one run.

workerkit against Sidekiq 6.4 (Debian ruby-sidekiq), RQ (SimpleWorker, no fork per job), Dramatiq and
Celery (one process, 10 threads each). The jobs are pushed first; the clock runs from the moment the first
job leaves the queue to the moment the last one is done (workerkit: acknowledged; peers: their queue
structure empty), so start-up time is not counted. Over the same interval it measures the CPU time the
worker processes and the Redis server used, per 1,000 jobs: unlike jobs/s, that hardly moves with the
other load on the machine. Rounds interleave the runtimes.

    python3 bench/jobs_throughput.py [--jobs 100000] [--peer-jobs 5000] [--rounds 2] [--only workerkit,sidekiq]
                                     [--processes 1,2,4] [--logs quiet,default] [--job noop|roundtrip]
                                     [--concurrency 10] [--other "LABEL=/tmp/venv-before/bin/workerkit" ...]

``--job``: ``noop`` (the default) does nothing; ``roundtrip`` sends one command to Redis (an ``RPUSH``),
as most real jobs wait on something: through the runtime's own client where it has one
(``workerkit.config.redis_client()``, ``Sidekiq.redis``, Dramatiq's broker), else through a redis-py client
of the job's module (RQ, Celery). ``--concurrency``: the threads of each workerkit and Sidekiq process
(``-c``; Dramatiq and Celery keep 10).

``--logs`` (both by default, reported as two configurations): ``quiet`` turns off the per-job lines of
workerkit (``WORKERKIT_LOG_LEVEL=warning``) and Sidekiq (its logger at WARN), the fair comparison of the
runtimes themselves; ``default`` runs each with its default logging, to /dev/null (Sidekiq writes two INFO
lines per job through its logger; workerkit buffers its per-job lines and flushes them every 50 ms).
RQ, Dramatiq and Celery run only with their defaults. The table's last column is the scaling curve: each
runtime's jobs/s against its own with one process, same logs. ``--other LABEL=PATH`` (repeatable) adds the
``workerkit`` executable of another installation (an earlier commit, or a patch, in its own venv) as a
runtime of its own, in the same rounds.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jobs_common as common

import workerkit
from workerkit.server import running_server


class Runtime:
    """One runtime in the comparison: how to fill its queue, start it, and see what is left."""

    def __init__(self, peer: common.Peer, fill: Callable[[str, int], None], left: Callable[[redis.Redis], int],
                 jobs: int, logs: str = "default") -> None:
        self.peer, self.fill, self.left, self.jobs, self.logs = peer, fill, left, jobs, logs

    @property
    def key(self) -> tuple[str, str]:
        """(logs, name): what its results are filed under."""
        return self.logs, self.peer.name

    def drain(self, url: str, conn: redis.Redis, processes: int, server_pid: int) -> Drain:
        """Drain ``self.jobs`` jobs with ``processes`` worker processes: jobs per second, and the CPU time
        of the workers and of the server (``server_pid``) per 1,000 jobs, both over the same interval."""
        conn.flushall()
        self.fill(url, self.jobs)
        workers = self.peer.start(url, processes)
        server = psutil.Process(server_pid)
        try:
            started = common.wait_until(lambda: self.left(conn) < self.jobs, timeout=120)
            at_start = self.left(conn)
            watched = [member for worker in workers for member in common.process_tree(worker.pid)]  # forked: up by now
            cpu_at_start = [_cpu(process) for process in watched], _cpu(server)
            finished = common.wait_until(lambda: self.left(conn) == 0, timeout=600)
            worker_cpu = sum(_cpu(p) - before for p, before in zip(watched, cpu_at_start[0], strict=True))
            server_cpu = _cpu(server) - cpu_at_start[1]
        finally:
            common.stop(workers)
        per_thousand = 1e6 / at_start
        return Drain(at_start / (finished - started), worker_cpu * per_thousand, server_cpu * per_thousand)


@dataclass(frozen=True)
class Drain:
    """One drain: jobs per second, and CPU milliseconds per 1,000 jobs in the workers and in Redis."""

    rate: float
    worker_ms: float
    server_ms: float


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


JOBS = {
    "noop": ("noop_workerkit.Noop", "NoopWorker", ()),
    "roundtrip": ("noop_workerkit.Stamp", "StampWorker", ("bench:roundtrips", 0.0)),
}
"""``--job``: workerkit's class, Sidekiq's class, and the job's arguments."""


def _workerkit_fill(class_name: str, arguments: tuple[object, ...]) -> Callable[[str, int], None]:
    def fill(url: str, jobs: int) -> None:
        workerkit.configure(redis_url=url)
        workerkit.push_bulk(class_name, [arguments] * jobs)

    return fill


def _python_fill(python: Path, script: str, job: str) -> Callable[[str, int], None]:
    def fill(url: str, jobs: int) -> None:
        subprocess.run([str(python), script, url, str(jobs), job], cwd=common.PEERS, check=True,
                       env={"BENCH_REDIS_URL": url, "PATH": "/usr/bin:/bin"})

    return fill


def _int(value: object) -> int:
    return int(value or 0)  # type: ignore[call-overload]


def workerkit_runtimes(args: argparse.Namespace, sidekiq: str | None, logs: str) -> list[Runtime]:
    """workerkit (this installation and every ``--other``) and Sidekiq with ``logs`` ("default" or "quiet")."""
    wanted = set(args.only.split(","))
    found: list[Runtime] = []
    env = common.log_env(logs)
    ours, theirs, arguments = JOBS[args.job]
    fill = _workerkit_fill(ours, arguments)
    processed = lambda c: args.jobs - _int(c.get("stat:processed"))  # noqa: E731
    if "workerkit" in wanted:
        found.append(Runtime(common.workerkit_peer(args.concurrency, env=env), fill, processed, args.jobs, logs))
        for other in args.other:
            label, _, path = other.partition("=")
            peer = common.workerkit_peer(args.concurrency, name=label, script=Path(path), env=env)
            found.append(Runtime(peer, fill, processed, args.jobs, logs))
    if sidekiq:
        peer = common.sidekiq_peer(sidekiq, args.concurrency, log_level="warn" if logs == "quiet" else "")
        found.append(Runtime(peer, _workerkit_fill(theirs, arguments), lambda c: c.llen("queue:default"), args.jobs,
                             logs))
    return found


def runtimes(args: argparse.Namespace) -> list[Runtime]:
    """The runtimes asked for and available on this machine, for every ``--logs`` mode."""
    wanted = set(args.only.split(","))
    sidekiq = common.sidekiq_command() if "sidekiq" in wanted else None
    if sidekiq:
        print(f"# Sidekiq {common.sidekiq_version()}")
    found = [runtime for logs in args.logs.split(",") for runtime in workerkit_runtimes(args, sidekiq, logs)]
    python = common.peer_python() if wanted & {"rq", "dramatiq", "celery"} else None
    if python is not None:
        print(f"# {common.peer_versions(python)}")
        bin_dir = python.parent
        env = lambda url: {"BENCH_REDIS_URL": url, "PYTHONPATH": str(common.PEERS)}  # noqa: E731
        if "rq" in wanted:
            rq = common.Peer("rq", lambda url: [str(bin_dir / "rq"), "worker", "--url", url, "-w",
                                                "rq.worker.SimpleWorker", "default"], env)
            found.append(Runtime(rq, _python_fill(python, "noop_rq.py", args.job), lambda c: c.llen("rq:queue:default"),
                                 args.peer_jobs))
        if "dramatiq" in wanted:
            dramatiq = common.Peer("dramatiq", lambda url: [str(bin_dir / "dramatiq"), "noop_dramatiq",
                                                            "--processes", "1", "--threads", "10"], env)
            found.append(Runtime(dramatiq, _python_fill(python, "noop_dramatiq.py", args.job),
                                 lambda c: c.hlen("dramatiq:default.msgs"), args.peer_jobs))
        if "celery" in wanted:
            celery = common.Peer("celery", lambda url: [str(bin_dir / "celery"), "-A", "noop_celery", "worker",
                                                        "-P", "threads", "-c", "10", "--without-gossip",
                                                        "--without-mingle", "--without-heartbeat"], env)
            found.append(Runtime(celery, _python_fill(python, "noop_celery.py", args.job),
                                 lambda c: c.llen("celery") + c.hlen("unacked"), args.peer_jobs))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=100_000, help="jobs for workerkit and Sidekiq")
    parser.add_argument("--peer-jobs", type=int, default=5_000, help="jobs for RQ, Dramatiq, Celery (slower)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--processes", default="1,2,4")
    parser.add_argument("--only", default="workerkit,sidekiq,rq,dramatiq,celery")
    parser.add_argument("--logs", default="quiet,default", help="quiet, default, or both (quiet,default)")
    parser.add_argument("--other", action="append", default=[], metavar="LABEL=PATH",
                        help="another installation's workerkit executable, under LABEL")
    parser.add_argument("--job", choices=sorted(JOBS), default="noop", help="noop, or roundtrip: one RPUSH per job")
    parser.add_argument("--concurrency", type=int, default=10, help="threads per workerkit and Sidekiq process")
    args = parser.parse_args()
    counts = [int(n) for n in args.processes.split(",")]
    chosen = runtimes(args)
    results: dict[tuple[str, str, int], list[Drain]] = {}
    with tempfile.TemporaryDirectory() as data, running_server(Path(data), kind="auto") as server:
        conn = redis.Redis.from_url(server.url)
        print(f"# server {server.binary}, {args.job} jobs, -c {args.concurrency}, {common.load_note()}")
        for round_number in range(args.rounds):
            for processes in counts:
                for runtime in chosen:
                    drain = runtime.drain(server.url, conn, processes, server.process.pid)
                    results.setdefault((*runtime.key, processes), []).append(drain)
                    print(f"round {round_number + 1}: {runtime.peer.name} ({runtime.logs} logs) x{processes}: "
                          f"{drain.rate:,.0f} jobs/s, CPU per 1,000 jobs {drain.worker_ms:.1f} ms workers, "
                          f"{drain.server_ms:.1f} ms Redis ({common.load_note()})", flush=True)
        print(f"# {common.load_note()}")
    report(chosen, counts, results)


LOGS = {
    "quiet": "per-job logs off (Sidekiq at WARN, WORKERKIT_LOG_LEVEL=warning)",
    "default": "defaults (Sidekiq: INFO lines per job; workerkit: buffered per-job lines)",
}


def report(chosen: list[Runtime], counts: list[int], results: dict[tuple[str, str, int], list[Drain]]) -> None:
    """One table per logging configuration: medians, each runtime against workerkit and against Sidekiq
    with the same logs, the scaling against one process, and the median CPU time per 1,000 jobs."""
    def median(logs: str, name: str, processes: int, field: str = "rate") -> float | None:
        drains = results.get((logs, name, processes))
        return statistics.median(getattr(drain, field) for drain in drains) if drains else None

    for logs in dict.fromkeys(runtime.logs for runtime in chosen):
        print(f"\n{LOGS[logs]}:\n")
        print("| processes | runtime | jobs | jobs/s (median) | rounds | workerkit / runtime | runtime / Sidekiq | "
              "vs 1 process | CPU ms per 1,000 jobs: workers / Redis (medians) |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for processes in counts:
            for runtime in (runtime for runtime in chosen if runtime.logs == logs):
                rate = median(*runtime.key, processes)
                assert rate is not None
                ours, sidekiq = median(logs, "workerkit", processes), median(logs, "sidekiq", processes)
                alone = median(*runtime.key, 1)
                rates = ", ".join(f"{drain.rate:,.0f}" for drain in results[(*runtime.key, processes)])
                workers_ms, server_ms = (median(*runtime.key, processes, field) for field in ("worker_ms", "server_ms"))
                print(f"| {processes} | {runtime.peer.name} | {runtime.jobs:,} | {rate:,.0f} | {rates} | "
                      f"{f'{ours / rate:.2f}x' if ours else '-'} | {f'{rate / sidekiq:.2f}x' if sidekiq else '-'} | "
                      f"{f'{rate / alone:.2f}x' if alone else '-'} | {workers_ms:.1f} / {server_ms:.1f} |")


if __name__ == "__main__":
    main()
