"""Shared by the reliability suite (tests/reliability) and its long versions (bench/chaos_*.py, soak.py,
multihost.py): a fleet of ``workerkit worker`` processes under ``procman start``, pushing ``Mark`` jobs,
and the tally of lost and repeated jobs.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil
import redis

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import reliability_jobs as jobs  # noqa: E402

import workerkit  # noqa: E402
from workerkit.keys import Keys  # noqa: E402


def tool(name: str) -> str:
    """The path of a console script of this installation (``procman``, ``workerkit``)."""
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else (shutil.which(name) or name)


def wait_until(condition: Callable[[], object], timeout: float, what: str, poll: float = 0.05) -> float:
    """Poll ``condition`` until it is truthy; return the monotonic time it was; raise after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(poll)
    return time.monotonic()


def worker_environment(redis_url: str, heartbeat: float | None = 0.5, sweep: float | None = 1.0) -> dict[str, str]:
    """Environment of worker processes: this folder on PYTHONPATH, the server, a fast heartbeat and sweep
    (``None`` for either: the worker's default, 2 s each)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PROCMAN_", "WORKERKIT_"))}
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(BENCH), os.environ.get("PYTHONPATH", "")])),
        WORKERKIT_REDIS_URL=redis_url,
    )
    if heartbeat is not None:
        env["WORKERKIT_HEARTBEAT_INTERVAL"] = str(heartbeat)
    if sweep is not None:
        env["WORKERKIT_SWEEP_INTERVAL"] = str(sweep)
    return env


class Fleet:
    """``procman start -c worker=N [--restart worker]`` running ``workerkit worker -r reliability_jobs``
    (behind ``prefix``, e.g. ``ip netns exec HOST``, which execs procman in place)."""

    def __init__(
        self, folder: Path, env: dict[str, str], workers: int, *, restart: bool = True,
        worker_args: str = "-c 10", procman_args: Iterable[str] = (), prefix: Iterable[str] = (),
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "Procfile").write_text(f"worker: exec {tool('workerkit')} worker -r reliability_jobs {worker_args}\n")
        self.log = folder / "procman.log"
        args = [*prefix, tool("procman"), "start", "--no-color", "-c", f"worker={workers}", *procman_args]
        if restart:
            args += ["--restart", "worker"]
        with self.log.open("wb") as out:
            self.procman = subprocess.Popen(
                args, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    @property
    def output(self) -> str:
        """Everything procman and the workers printed so far."""
        return self.log.read_bytes().decode("utf-8", "replace")

    def workers(self) -> dict[str, psutil.Process]:
        """The live worker processes by instance label (``worker.1``...), from their ``PS`` variable."""
        found: dict[str, psutil.Process] = {}
        try:
            descendants = psutil.Process(self.procman.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return found
        for process in descendants:
            try:
                if process.status() != psutil.STATUS_ZOMBIE and "worker" in process.cmdline()[1:3]:
                    found[process.environ().get("PS", str(process.pid))] = process
            except psutil.Error:
                continue
        return found

    def wait_for_workers(self, count: int, conn: redis.Redis, timeout: float = 60.0) -> None:
        """Wait until ``count`` workers run and each has registered its heartbeat."""
        def ready() -> bool:
            pids = {str(p.pid) for p in self.workers().values()}
            beating = {identity.decode().rsplit(":", 2)[1] for identity in conn.smembers(Keys().processes)}
            return len(pids) == count and pids <= beating

        wait_until(ready, timeout, f"{count} registered workers\n{self.output[-3000:]}")

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 90.0) -> int:
        """Signal procman and wait for it; its exit code."""
        if self.procman.poll() is None:
            self.procman.send_signal(signum)
        return self.procman.wait(timeout)

    def kill(self) -> None:
        """SIGKILL procman if it still runs (its guardian then kills the workers)."""
        if self.procman.poll() is None:
            self.procman.kill()
            self.procman.wait(30)


class WorkerPool:
    """``size`` worker processes (``workerkit worker -r reliability_jobs``) that this script starts, and
    starts again when they die, itself: no supervisor, so no restart budget limits how often they are killed.
    Each slot appends its output to ``worker.N.log`` in ``folder``."""

    def __init__(self, folder: Path, env: dict[str, str], size: int, worker_args: str = "-c 10") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.env = folder, env
        self.argv = [tool("workerkit"), "worker", "-r", "reliability_jobs", *worker_args.split()]
        self.slots = [self._spawn(slot) for slot in range(size)]
        self.spawned = size

    def _spawn(self, slot: int) -> subprocess.Popen[bytes]:
        with (self.folder / f"worker.{slot + 1}.log").open("ab") as out:
            return subprocess.Popen(self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)

    def respawn(self) -> int:
        """Start a new worker in every slot whose process has exited; how many were started."""
        started = 0
        for slot, process in enumerate(self.slots):
            if process.poll() is not None:
                self.slots[slot] = self._spawn(slot)
                started += 1
        self.spawned += started
        return started

    def pids(self) -> list[int]:
        """The pids of the running workers."""
        return [process.pid for process in self.slots if process.poll() is None]

    def wait_for_workers(self, conn: redis.Redis, timeout: float = 60.0) -> None:
        """Wait until every slot's worker runs and has registered its heartbeat."""
        wait_until(lambda: len(self.pids()) == len(self.slots) and all(
            identity_of(conn, pid) for pid in self.pids()), timeout, f"{len(self.slots)} registered workers")

    def busy_worker(self, conn: redis.Redis, timeout: float = 60.0) -> tuple[subprocess.Popen[bytes], str]:
        """The first slot's worker and its identity, once it holds jobs."""
        process = self.slots[0]
        identity = identity_of(conn, process.pid)
        assert identity is not None, "call wait_for_workers first"
        wait_until(lambda: held_by(conn, identity) > 0, timeout, "the first worker to hold jobs")
        return process, identity

    def stop(self, timeout: float = 60.0) -> list[int]:
        """TERM every running worker and wait for it; their exit codes (a slot whose worker was killed and
        not yet replaced is left out: its -9 is the chaos, not the shutdown)."""
        running = [process for process in self.slots if process.poll() is None]
        for process in running:
            process.terminate()
        return [process.wait(timeout) for process in running]

    def kill(self) -> None:
        """SIGKILL whatever still runs."""
        for process in self.slots:
            if process.poll() is None:
                process.kill()
                process.wait(30)

    @property
    def output(self) -> str:
        """Everything the workers printed so far."""
        logs = sorted(self.folder.glob("worker.*.log"))
        return "".join(path.read_bytes().decode("utf-8", "replace") for path in logs)


def procman_rss_mib(pid: int) -> float:
    """RSS of procman and its guardian (a fork of it: same command line) in MiB, children not included."""
    procman = psutil.Process(pid)
    own = [procman, *(child for child in procman.children() if child.cmdline() == procman.cmdline())]
    return sum(process.memory_info().rss for process in own) / 2**20


def identity_of(conn: redis.Redis, pid: int) -> str | None:
    """The registered identity (``host:pid:hex``) of the worker process ``pid``."""
    for identity in conn.smembers(Keys().processes):
        text = identity.decode()
        if text.rsplit(":", 2)[1] == str(pid):
            return text
    return None


def inflight_count(conn: redis.Redis, identity: str) -> int:
    """How many jobs sit in the in-flight lists of ``identity``."""
    keys = Keys()
    return sum(int(conn.llen(key)) for key in conn.hkeys(keys.inflight_lists) if key.decode().startswith(
        keys.inflight(identity, "")))


def held_by(conn: redis.Redis, identity: str) -> int:
    """How many jobs sit in the in-flight lists of ``identity``, found by key name (whether or not the
    ``inflight_lists`` registry still lists them: a list it forgot is exactly what must not happen)."""
    return sum(int(conn.llen(key)) for key in conn.scan_iter(match=Keys().inflight(identity, "*"), count=1000))


def unlisted_inflight(conn: redis.Redis) -> int:
    """Jobs in in-flight lists that the registry does not list: nobody would ever recover them."""
    listed = set(conn.hkeys(Keys().inflight_lists))
    return sum(int(conn.llen(key)) for key in conn.scan_iter(match=Keys().inflight("*", "*"), count=1000)
               if key not in listed)


def counted(conn: redis.Redis, processed: int, timeout: float = 5.0) -> tuple[int, int]:
    """``stat:processed`` and ``stat:failed``, once ``stat:processed`` reached ``processed`` (the last
    acknowledgements land within a fraction of a second) or ``timeout`` passed; each settled job counts
    exactly once, so after a run these are the jobs pushed and the failures that landed."""
    keys = Keys()

    def read() -> tuple[int, int]:
        return int(conn.get(keys.stat("processed")) or 0), int(conn.get(keys.stat("failed")) or 0)

    with contextlib.suppress(TimeoutError):
        wait_until(lambda: read()[0] >= processed, timeout, f"stat:processed to reach {processed}")
    return read()


def left_in_flight(conn: redis.Redis, timeout: float = 10.0) -> int:
    """Jobs still queued or in any in-flight list once ``timeout`` passed or there are none (the last
    acknowledgements land within a fraction of a second after the last job is done): must be 0."""
    def left() -> int:
        return pending(conn) + unlisted_inflight(conn)

    with contextlib.suppress(TimeoutError):
        wait_until(lambda: left() == 0, timeout, "nothing left in flight")
    return left()


def push_marks(count: int, seconds: float = 0.0, job: str = "reliability_jobs.Mark") -> set[str]:
    """Push ``count`` Mark jobs (bulk, 1,000 per round trip); their jids."""
    pushed: set[str] = set()
    for start in range(0, count, 10_000):
        pushed.update(workerkit.push_bulk(job, [(seconds,)] * min(10_000, count - start)))
    return pushed


@dataclass
class Tally:
    """Where every pushed job ended up."""

    pushed: int
    done: int
    runs: int
    dead: int
    lost: int
    dead_entries: int = 0
    """Dead-set entries of pushed jobs, copies included: more than ``dead`` means a job was buried twice."""

    @property
    def duplicates(self) -> int:
        """Runs beyond the first of a job (at-least-once delivery)."""
        return self.runs - self.done


def tally(conn: redis.Redis, pushed: set[str]) -> Tally:
    """Count the pushed jobs that are done, dead, and neither (lost, once the queues drained)."""
    done = {member.decode() for member in conn.smembers(jobs.DONE)} & pushed
    buried = [json.loads(member).get("jid", "") for member in conn.zrange(Keys().dead, 0, -1)]
    dead = set(buried) & pushed
    runs = int(conn.get(jobs.RUNS) or 0)
    return Tally(len(pushed), len(done), runs, len(dead - done), len(pushed - done - dead),
                 sum(jid in pushed for jid in buried))


def settled(conn: redis.Redis, pushed: set[str]) -> Callable[[], bool]:
    """A condition: every pushed job is done or dead."""
    def check() -> bool:
        enough = int(conn.scard(jobs.DONE)) + int(conn.zcard(Keys().dead)) >= len(pushed)
        return enough and tally(conn, pushed).lost == 0
    return check


def pending(conn: redis.Redis) -> int:
    """Jobs still queued or in flight anywhere."""
    keys = Keys()
    queued = sum(int(conn.llen(keys.queue(name.decode()))) for name in conn.smembers(keys.queues))
    return queued + sum(int(conn.llen(key)) for key in conn.hkeys(keys.inflight_lists))

