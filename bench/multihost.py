"""Several hosts: workers in two or three network namespaces, each joined to the root namespace by a veth
pair, against one Redis in the root namespace bound to the veths' addresses (10.231.N.1; the host side
is 10.231.N.2; the range exists only on these links). One host is cut off mid-run (its link set down)
for ``--cut`` seconds, then reconnected: its in-flight jobs must be recovered by the others once its
heartbeat expires (4 beats: 8 s by default), and once back it must beat again and take jobs again (a
second batch is pushed after the reconnection). Throughput is measured with 1, 2 and 3 hosts; on a
2-core machine every host shares the same cores, so this shows correctness more than scaling.

    python3 bench/multihost.py [--jobs 30000] [--workers 1] [--job-seconds 0.002] [--cut 90]
                               [--heartbeat SECONDS] [--expire-heartbeats]

Needs root (CAP_SYS_ADMIN) for ``ip netns``. The namespaces are deleted at the end whatever happens.
The heartbeat is the worker's default (2 s, sweep 2 s) unless ``--heartbeat`` sets both;
``--expire-heartbeats`` deletes the cut host's heartbeats at once (recovery then measures the sweep alone).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

import reliability_jobs as jobs
import reliability_kit as kit
from jobs_common import load_note

import workerkit
from workerkit.keys import Keys
from workerkit.server import find_binary, free_port, server_arguments, wait_for_ping

PREFIX = f"wkrel{os.getpid() % 100000}"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def netns_available() -> str | None:
    """None when ``ip netns add`` works here, else why not."""
    probe = f"{PREFIX}probe"
    try:
        _ip("netns", "add", probe)
    except (OSError, subprocess.CalledProcessError) as exc:
        return getattr(exc, "stderr", None) or str(exc)
    _ip("netns", "del", probe)
    return None


@dataclass(frozen=True)
class Host:
    """A network namespace joined to the root namespace by a veth pair."""

    number: int

    @property
    def name(self) -> str:
        return f"{PREFIX}h{self.number}"

    @property
    def root_end(self) -> str:
        """The link's end in the root namespace (deleting it deletes the pair)."""
        return f"{PREFIX}v{self.number}"

    @property
    def root_address(self) -> str:
        return f"10.231.{self.number}.1"

    @property
    def exec(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def cut(self) -> None:
        """Take the host off the network: its end of the link goes down."""
        _ip("-n", self.name, "link", "set", "eth0", "down")

    def reconnect(self) -> None:
        """Put the host back on the network."""
        _ip("-n", self.name, "link", "set", "eth0", "up")


@contextmanager
def hosts(count: int) -> Iterator[list[Host]]:
    """Create ``count`` namespaces with their links; delete them (and so the links) at the end."""
    made: list[Host] = []
    try:
        for number in range(1, count + 1):
            host = Host(number)
            _ip("netns", "add", host.name)
            made.append(host)
            root_end = host.root_end
            _ip("link", "add", root_end, "type", "veth", "peer", "name", "eth0", "netns", host.name)
            _ip("addr", "add", f"{host.root_address}/24", "dev", root_end)
            _ip("link", "set", root_end, "up")
            _ip("-n", host.name, "addr", "add", f"10.231.{number}.2/24", "dev", "eth0")
            _ip("-n", host.name, "link", "set", "eth0", "up")
            _ip("-n", host.name, "link", "set", "lo", "up")
        yield made
    finally:
        for host in made:
            subprocess.run(["ip", "link", "del", host.root_end], capture_output=True)
            subprocess.run(["ip", "netns", "del", host.name], capture_output=True)


@contextmanager
def shared_redis(data_dir: Path, addresses: list[str]) -> Iterator[int]:
    """A server in the root namespace listening on loopback and on each host link; yields its port."""
    port = free_port()
    binary = find_binary("auto")
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [str(binary), *server_arguments(port, data_dir, bind=" ".join(["127.0.0.1", *addresses]))]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_ping(port, time.monotonic() + 15, process)
        yield port
    finally:
        process.kill()
        process.wait(30)


@dataclass
class MultiHostResult:
    """What one run measured."""

    hosts: int
    tally: kit.Tally
    seconds: float
    orphaned: int = 0
    recovery_seconds: float | None = None
    """From the cut until the others had pushed the cut host's in-flight jobs back."""
    beating_after: float | None = None
    """From the reconnection until every worker of the host beat again."""
    ran_after: int = 0
    """Jobs the reconnected host ran after it was back (> 0: it works again)."""

    @property
    def jobs_per_second(self) -> float:
        return self.tally.pushed / self.seconds


def _identities(conn: redis.Redis, host: Host) -> list[str]:
    return [member.decode() for member in conn.smembers(Keys().processes)
            if member.decode().startswith(f"{host.name}:")]


def _cut_and_reconnect(conn: redis.Redis, victim: Host, cut_seconds: float, expire_heartbeats: bool,
                       result: MultiHostResult, timeout: float) -> None:
    """Cut ``victim`` off for ``cut_seconds``, measuring its recovery, then reconnect it and wait until it
    beats again."""
    identities = _identities(conn, victim)
    victim.cut()
    cut_at = time.monotonic()
    result.orphaned = sum(kit.held_by(conn, identity) for identity in identities)
    if expire_heartbeats:
        conn.delete(*[Keys().process(identity) for identity in identities])  # what the expiry does
    kit.wait_until(lambda: sum(kit.held_by(conn, i) for i in identities) == 0, timeout,
                   "the cut-off host's in-flight jobs recovered")
    result.recovery_seconds = time.monotonic() - cut_at
    time.sleep(max(0.0, cut_at + cut_seconds - time.monotonic()))  # the fault itself: cut off this long
    victim.reconnect()
    back_at = time.monotonic()
    kit.wait_until(lambda: all(conn.exists(Keys().process(i)) for i in identities), timeout,
                   "the reconnected host's workers beating again")
    result.beating_after = time.monotonic() - back_at


def run(folder: Path, the_hosts: list[Host], port: int, total: int, workers: int, job_seconds: float,
        cut: float | None, expire_heartbeats: bool = False, heartbeat: float | None = None,
        after: int | None = None, timeout: float = 900.0) -> MultiHostResult:
    """Run ``total`` jobs on ``workers`` processes per host; if ``cut`` is given, cut the last host off at a
    third for that many seconds, reconnect it, and run a second batch of ``after`` jobs (``total // 4``)."""
    conn = redis.Redis.from_url(f"redis://127.0.0.1:{port}/0")
    conn.flushall()
    workerkit.configure(redis_url=f"redis://127.0.0.1:{port}/0")
    fleets = []
    try:
        for host in the_hosts:
            env = kit.worker_environment(f"redis://{host.root_address}:{port}/0", heartbeat, heartbeat)
            env["REL_HOST"] = host.name
            fleets.append(kit.Fleet(folder / host.name, env, workers, restart=False, prefix=host.exec,
                                    worker_args=f"-c 10 --name {host.name}"))
        kit.wait_until(lambda: all(len(_identities(conn, host)) == workers for host in the_hosts), 120,
                       "every host's workers registered")
        started = time.monotonic()
        pushed = kit.push_marks(total, job_seconds)
        result = MultiHostResult(len(the_hosts), kit.tally(conn, pushed), 0.0)
        if cut is not None:
            kit.wait_until(lambda: conn.scard(jobs.DONE) >= total // 3, timeout, "a third of the jobs done")
            ran = jobs.RAN + the_hosts[-1].name
            _cut_and_reconnect(conn, the_hosts[-1], cut, expire_heartbeats, result, timeout)
            ran_before = int(conn.get(ran) or 0)
            pushed |= kit.push_marks(total // 4 if after is None else after, job_seconds)
            kit.wait_until(kit.settled(conn, pushed), timeout, "every job done")
            result.ran_after = int(conn.get(ran) or 0) - ran_before
        kit.wait_until(kit.settled(conn, pushed), timeout, "every job done")
        result.seconds = time.monotonic() - started
        result.tally = kit.tally(conn, pushed)
    finally:
        for fleet in fleets:
            fleet.kill()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=30_000)
    parser.add_argument("--workers", type=int, default=1, help="worker processes per host")
    parser.add_argument("--job-seconds", type=float, default=0.002)
    parser.add_argument("--cut", type=float, default=90.0, help="seconds the last host stays cut off")
    parser.add_argument("--heartbeat", type=float, default=None,
                        help="heartbeat and sweep interval in seconds (default: the worker's, 2 s)")
    parser.add_argument("--expire-heartbeats", action="store_true")
    args = parser.parse_args()
    missing = netns_available()
    if missing:
        print(f"ip netns is not available here ({missing.strip()}); nothing measured")
        return
    print(f"# {load_note()}")
    with (
        tempfile.TemporaryDirectory() as tmp,
        hosts(3) as all_hosts,
        shared_redis(Path(tmp) / "redis", [host.root_address for host in all_hosts]) as port,
    ):
        print("| hosts | jobs | jobs/s | lost | repeated runs | cut off | its in-flight jobs | recovered after | "
              "beating again after reconnection | jobs it ran after |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for count, cut in [(1, None), (2, None), (3, None), (3, args.cut)]:
            result = run(Path(tmp) / f"{count}-{cut}", all_hosts[:count], port, args.jobs, args.workers,
                         args.job_seconds, cut, args.expire_heartbeats, args.heartbeat)
            if cut is None:
                print(f"| {count} | {result.tally.pushed:,} | {result.jobs_per_second:,.0f} | {result.tally.lost} | "
                      f"{result.tally.duplicates} | | | | | |")
            else:
                print(f"| {count} | {result.tally.pushed:,} | | {result.tally.lost} | {result.tally.duplicates} | "
                      f"host 3, {cut:.0f} s | {result.orphaned} | {result.recovery_seconds:.1f} s | "
                      f"{result.beating_after:.1f} s | {result.ran_after:,} |")
        print(f"# {load_note()}")


if __name__ == "__main__":
    main()
