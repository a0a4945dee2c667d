"""``workerkit scale-hint``: the rule, on observations chosen to hit each branch, and the command against a
real server with heartbeats and queues in Sidekiq's layout (what the workers write)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest
import redis

from workerkit.scale_hint import Observation, desired_processes

COMMAND = [sys.executable, "-c", "import sys; from workerkit.cli import main; sys.exit(main())", "scale-hint"]


@pytest.mark.parametrize(("seen", "desired"), [
    (Observation(processes=0, threads=0, busy=0, latency=0.0, waiting=0), 0),  # nothing to do, nobody to do it
    (Observation(processes=0, threads=0, busy=0, latency=30.0, waiting=5), 1),  # jobs and no process: start one
    (Observation(processes=2, threads=20, busy=20, latency=12.0, waiting=900), 6),  # 12 s over a 4 s target: x3
    (Observation(processes=4, threads=40, busy=40, latency=4.1, waiting=10), 5),  # just over: at least one more
    (Observation(processes=3, threads=30, busy=20, latency=1.0, waiting=3), 3),  # 20 busy of 24 allowed: keep 3
    (Observation(processes=3, threads=30, busy=25, latency=1.0, waiting=0), 4),  # over the ceiling: one more
    (Observation(processes=5, threads=50, busy=3, latency=0.0, waiting=0), 1),  # idling: shrink
    (Observation(processes=5, threads=50, busy=0, latency=0.2, waiting=2), 1),  # jobs waiting: keep one
    (Observation(processes=5, threads=50, busy=0, latency=0.0, waiting=0), 0),
])
def test_the_rule(seen: Observation, desired: int) -> None:
    assert desired_processes(seen, target_latency=4.0) == desired


def test_the_rule_refuses_a_target_of_zero() -> None:
    with pytest.raises(ValueError, match="the target latency must be above 0"):
        desired_processes(Observation(1, 10, 0, 0.0, 0), target_latency=0)


def _beat(conn: redis.Redis, identity: str, queues: list[str], concurrency: int, busy: int,
          quiet: bool = False) -> None:
    conn.sadd("processes", identity)
    conn.hset(identity, mapping={"info": json.dumps({"queues": queues, "concurrency": concurrency}),
                                 "busy": busy, "beat": time.time(), "quiet": str(quiet).lower()})


def _hint(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COMMAND, "--redis-url", url, *args], capture_output=True, text=True, timeout=60,
                          check=False)


def test_the_command_reads_heartbeats_and_queue_ages(wk: redis.Redis, redis_url: str) -> None:
    old = time.time() - 10.5  # over 4 s, and 6 processes asked for until it is 12 s old
    wk.sadd("queues", "default", "mail")
    wk.lpush("queue:default", *[json.dumps({"class": "A", "args": [], "jid": f"{n:024d}", "enqueued_at": old})
                                for n in range(3)])
    done = _hint(redis_url, "--target-latency", "4", "--explain")
    assert (done.returncode, done.stdout) == (0, "1\n")
    assert re.fullmatch(r"0 process\(es\), 0/0 threads busy, 3 job\(s\) waiting, the oldest for 1[012]\.\d s "
                        r"\(target 4 s\): 1\n", done.stderr), done.stderr
    _beat(wk, "host:1:aaaaaa", ["default"], 10, 10)
    _beat(wk, "host:2:bbbbbb", ["default", "mail"], 10, 10)
    _beat(wk, "host:3:cccccc", ["default"], 10, 0, quiet=True)  # quiet: leaving, not counted
    _beat(wk, "host:4:dddddd", ["mail"], 5, 1)
    assert _hint(redis_url, "--target-latency", "4", "-q", "default").stdout == "6\n"  # 2 processes, ~11 s over 4 s
    mail = _hint(redis_url, "--target-latency", "4", "-q", "mail", "--explain")
    assert (mail.stdout, mail.stderr) == ("2\n", "2 process(es), 11/15 threads busy, 0 job(s) waiting, the oldest "
                                                 "for 0.0 s (target 4 s): 2\n")


def test_bad_options_and_an_unreachable_redis(redis_url: str) -> None:
    refused = _hint(redis_url, "--target-latency", "0")
    assert (refused.returncode, refused.stdout, refused.stderr) == (
        2, "", "workerkit scale-hint: --target-latency must be above 0\n")
    ceiling = _hint(redis_url, "--busy-ceiling", "1.5")
    assert (ceiling.returncode, ceiling.stderr) == (
        2, "workerkit scale-hint: --busy-ceiling must be above 0 and at most 1, not 1.5\n")
    away = _hint("redis://127.0.0.1:1/0")
    assert (away.returncode, away.stdout) == (1, "")
    assert away.stderr.startswith("workerkit scale-hint: Redis is unreachable (")
