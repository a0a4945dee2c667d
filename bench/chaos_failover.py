"""A Redis failover in the middle of a drain: kill -9 the primary that holds workerkit's keys while jobs are
pushed and run, let a replica take over, and count what was lost.

    python3 bench/chaos_failover.py [--topology cluster|sentinel] [--jobs 20000] [--workers 2] [--rounds 3]
                                    [--lag SECONDS] [--job-seconds S] [--binary redis-server|valkey-server]

Each round starts a fresh group (Cluster: 3 primaries + 3 replicas; Sentinel: a primary, 2 replicas,
3 sentinels; tests/ha_support.py), then runs it twice on the same kind of group: with plain pushes and with
``wait_replicas=1``. A pusher pushes ``Logged`` jobs in small bulks at a steady pace from the start; the
workers run them, each appending its jid to a file (a record the failover cannot take back); when about a
third is pushed, the namespace's primary is killed -9 without waiting for its replicas to catch up; once a
replica has taken over, the killed server starts again (as an orchestrator would) and rejoins as a replica.
``--lag 1`` first freezes the primary's replicas (SIGSTOP), writes 48 MB (more than the sockets between them
buffer) and lets the pushes go on for a second, as a slow network or a busy replica would: the writes of
that second reach no replica before the kill.

A job counts as **confirmed** when its push returned its jid; **lost** when it was confirmed and never ran,
once the queues have drained. Pushes that raised (Redis away, or ``NotReplicated``) are reported apart, with
how many of them ran anyway. Reported too: repeated runs (at-least-once), the time from the kill until the
first job ran after it, and the pushes that failed meanwhile.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import workerkit
from workerkit import config
from workerkit.client import RedisUnreachable

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.append(str(BENCH.parent / "tests"))  # after workerkit is imported: tests/workerkit would shadow it

import reliability_kit as kit  # noqa: E402
from ha_support import ClusterGroup, Node, SentinelGroup, server_binaries, start_cluster, start_sentinel_group  # noqa: E402
from jobs_common import load_note  # noqa: E402

BULK = 20
"""Jobs per push."""


@dataclass
class FailoverResult:
    """What one run measured."""

    confirmed: set[str] = field(default_factory=set)
    unconfirmed: set[str] = field(default_factory=set)
    """Pushed, but too few replicas confirmed them (``NotReplicated``): queued on the old primary."""
    refused: int = 0
    """Jobs whose push raised because Redis was away: maybe written, maybe not."""
    runs: list[str] = field(default_factory=list)
    kill_at: float = 0.0
    first_run_after_kill: float | None = None
    failover_seconds: float = 0.0
    tracebacks: int = 0
    exit_codes: list[int] = field(default_factory=list)

    @property
    def ran(self) -> set[str]:
        """Every jid that ran at least once."""
        return set(self.runs)

    @property
    def lost(self) -> set[str]:
        """Confirmed pushes that never ran."""
        return self.confirmed - self.ran

    @property
    def repeated(self) -> int:
        """Runs beyond the first of each job."""
        return len(self.runs) - len(self.ran)


class _Target:
    """The group under test as the run needs it: its URL, and how to kill the namespace's primary."""

    def __init__(self, group: ClusterGroup | SentinelGroup) -> None:
        self.group = group

    def kill_primary(self, lag: float) -> Callable[[], Any]:
        """kill -9 the primary of workerkit's keys at once (replicas may lag; with ``lag``, its replicas are
        first frozen that many seconds, so the writes of those seconds never reach them); returns the wait
        for the failover, which then starts the killed server again (it rejoins as a replica)."""
        if isinstance(self.group, ClusterGroup):
            cluster = self.group
            victim = cluster.primary_for(config.keys().queues)
            frozen = _frozen(cluster.replicas_of(victim), lag)
            cluster.kill(victim, catch_up=False)
            _thaw(frozen)

            def cluster_failover() -> None:
                cluster.wait_for_failover(victim, timeout=60)
                cluster.restart(victim)
            return cluster_failover
        sentinel = self.group
        frozen = _frozen(sentinel.replicas, lag)
        old = sentinel.kill_primary(catch_up=False)
        _thaw(frozen)

        def sentinel_failover() -> None:
            sentinel.wait_for_failover(old, timeout=60)
            old.restart()
        return sentinel_failover


BALLAST = 48 * 1024 * 1024
"""Bytes written while the replicas are frozen, before the lag: more than the kernel's socket buffers hold, so
what is pushed after it waits in the primary's own memory (its output buffer for the replica)."""


def _frozen(replicas: Iterable[Node], seconds: float) -> list[Node]:
    """SIGSTOP ``replicas`` (none for 0 ``seconds``), write :data:`BALLAST` bytes, and let the pushes go on for
    ``seconds``: the replicas are that far behind when the primary dies. Returns the replicas stopped."""
    stopped = [replica for replica in replicas if seconds > 0]
    for replica in stopped:
        replica.process.send_signal(signal.SIGSTOP)
    if stopped:
        config.redis_client().set(config.keys().queues.removesuffix("queues") + "ballast", b"b" * BALLAST)
        time.sleep(seconds)
    return stopped


def _thaw(replicas: list[Node]) -> None:
    for replica in replicas:
        replica.process.send_signal(signal.SIGCONT)


def _push_steadily(result: FailoverResult, jobs: int, pace: float, job_seconds: float, stop: threading.Event) -> None:
    """Push ``jobs`` Logged jobs, ``BULK`` at a time, one bulk every ``pace`` seconds, counting each
    outcome; a refused push is not repeated (its jobs may be in Redis already)."""
    while len(result.confirmed) + len(result.unconfirmed) + result.refused < jobs and not stop.is_set():
        try:
            result.confirmed.update(workerkit.push_bulk("reliability_jobs.Logged", [[job_seconds]] * BULK))
        except workerkit.NotReplicated as exc:
            result.unconfirmed.update(exc.jids)
        except RedisUnreachable:
            result.refused += BULK
            stop.wait(0.05)
        stop.wait(pace)


def _drained() -> bool:
    """Nothing left to run: every queue, in-flight list, the schedule and the retry set empty (after a wait
    of 2 s, so a job given back a moment ago counts)."""
    def empty() -> bool:
        conn, keys = config.redis_client(), config.keys()
        queued = sum(int(conn.llen(keys.queue(name.decode()))) for name in conn.smembers(keys.queues))
        held = sum(int(conn.llen(key)) for key in conn.hkeys(keys.inflight_lists))
        return queued + held + int(conn.zcard(keys.schedule)) + int(conn.zcard(keys.retry)) == 0
    if not empty():
        return False
    time.sleep(2)
    return empty()


def _runs(folder: Path) -> list[str]:
    path = folder / "ran.txt"
    return path.read_text(encoding="ascii").split() if path.exists() else []


def run(folder: Path, group: ClusterGroup | SentinelGroup, jobs: int, workers: int, wait_replicas: int,
        pace: float = 0.005, lag: float = 0.0, job_seconds: float = 0.001, timeout: float = 120.0) -> FailoverResult:
    """One drain with a failover after about a third of ``jobs`` was pushed (see the module's docstring)."""
    folder.mkdir(parents=True, exist_ok=True)
    config.reset()
    config.configure(redis_url=group.url, wait_replicas=wait_replicas, wait_timeout_ms=2000)
    env = {**kit.worker_environment(group.url, 0.5, 1.0), "REL_RAN_FILE": str(folder / "ran.txt")}
    pool = kit.WorkerPool(folder, env, workers, worker_args="-c 5")
    result = FailoverResult()
    stop = threading.Event()
    pusher = threading.Thread(target=_push_steadily, args=(result, jobs, pace, job_seconds, stop), daemon=True)
    try:
        kit.wait_until(lambda: len(config.redis_client().smembers(config.keys().processes)) == workers, 60,
                       "the workers to register")
        pusher.start()
        kit.wait_until(lambda: len(result.confirmed) + len(result.unconfirmed) >= jobs // 3, timeout, "pushes")
        before = len(_runs(folder))
        started = time.monotonic()
        wait_for_failover = _Target(group).kill_primary(lag)
        result.kill_at = started
        wait_for_failover()
        result.failover_seconds = time.monotonic() - started  # the killed server included
        kit.wait_until(lambda: len(_runs(folder)) > before, timeout, "a job to run after the failover")
        result.first_run_after_kill = time.monotonic() - started
        pusher.join(timeout)
        kit.wait_until(lambda: result.confirmed <= set(_runs(folder)) or _drained(), timeout,
                       "every confirmed job to run, or nothing left to run", poll=0.2)
        result.exit_codes = pool.stop()
    except TimeoutError:
        print(f"# timed out; {len(result.confirmed - set(_runs(folder)))} confirmed jobs had not run",
              file=sys.stderr)
    finally:
        stop.set()
        pool.kill()
        result.runs = _runs(folder)
        result.tracebacks = pool.output.count("Traceback")
        config.reset()
    return result


@contextlib.contextmanager
def _group(topology: str, folder: Path, binary: str) -> Iterator[ClusterGroup | SentinelGroup]:
    if topology == "cluster":
        with start_cluster(folder, binary=binary) as cluster:
            yield cluster
    else:
        with start_sentinel_group(folder, binary=binary) as sentinel:
            yield sentinel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--topology", choices=("cluster", "sentinel"), default="cluster")
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lag", type=float, default=0.0,
                        help="freeze the primary's replicas this many seconds before the kill (default 0)")
    parser.add_argument("--job-seconds", type=float, default=0.001,
                        help="each job sleeps this long (0.01: the workers fall behind the pushes)")
    parser.add_argument("--binary", choices=sorted(server_binaries()), default=sorted(server_binaries())[0])
    args = parser.parse_args()
    print(f"# {load_note()}")
    print("| topology | replicas frozen before the kill | wait_replicas | confirmed | lost | unconfirmed (ran) "
          "| refused while away | repeated "
          "| failover | first job after the kill | tracebacks |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for round_number in range(args.rounds):
        for wait_replicas in (0, 1):
            with tempfile.TemporaryDirectory() as tmp, _group(args.topology, Path(tmp) / "group",
                                                              server_binaries()[args.binary]) as group:
                result = run(Path(tmp) / f"run-{round_number}", group, args.jobs, args.workers, wait_replicas,
                             lag=args.lag, job_seconds=args.job_seconds)
            ran = result.ran
            print(f"| {args.topology} | {args.lag:g} s | {wait_replicas} | {len(result.confirmed):,} | "
                  f"{len(result.lost)} | "
                  f"{len(result.unconfirmed)} ({len(result.unconfirmed & ran)}) | {result.refused} | "
                  f"{result.repeated} | {result.failover_seconds:.1f} s | "
                  f"{result.first_run_after_kill or 0:.1f} s | {result.tracebacks} |")
    print(f"# {load_note()}")


if __name__ == "__main__":
    main()
