"""Deploys: TERM to ``procman start`` while workers run long jobs. Every job finishes or is back on its
queue, with the worker's timeout expiring or not; and when procman's own timeout is the shorter one, the
SIGKILLed worker's jobs are recovered by the next one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis
import reliability_jobs as jobs
import reliability_kit as kit

import workerkit
from workerkit.keys import Keys
from workerkit.server import RunningServer

KEYS = Keys()
JOBS = 12
THREADS = 4


def _queued(conn: redis.Redis) -> set[str]:
    return {json.loads(raw)["jid"] for raw in conn.lrange(KEYS.queue("default"), 0, -1)}


def _members(conn: redis.Redis, key: str) -> set[str]:
    return {member.decode() for member in conn.smembers(key)}


@pytest.mark.parametrize(("worker_timeout", "seconds"), [(30, 1.5), (1, 30)], ids=["jobs-finish", "timeout-expires"])
def test_term_finishes_or_requeues_every_job(
    own_server: RunningServer, conn: redis.Redis, tmp_path: Path, worker_timeout: int, seconds: float
) -> None:
    fleet = kit.Fleet(tmp_path, kit.worker_environment(own_server.url), 1, restart=False,
                      worker_args=f"-c {THREADS} -t {worker_timeout}", procman_args=["-t", "60"])
    try:
        fleet.wait_for_workers(1, conn)
        pushed = set(workerkit.push_bulk(jobs.SlowMark, [(seconds,)] * JOBS))
        kit.wait_until(lambda: conn.scard(jobs.STARTED) == THREADS, 60, "every thread busy")
        assert fleet.stop() == 143
    finally:
        fleet.kill()
    started, done, queued = _members(conn, jobs.STARTED), _members(conn, jobs.DONE), _queued(conn)
    assert done | queued == pushed and not done & queued
    assert conn.hlen(KEYS.inflight_lists) == 0 and conn.scard(KEYS.processes) == 0
    if worker_timeout > seconds:
        assert started <= done and len(done) >= THREADS
    else:
        assert done == set() and queued == pushed
    assert "job(s) pushed back to their queues" in fleet.output and "Traceback" not in fleet.output


def test_a_worker_killed_at_procmans_deadline_has_its_jobs_recovered(
    own_server: RunningServer, conn: redis.Redis, tmp_path: Path
) -> None:
    env = kit.worker_environment(own_server.url)
    fleet = kit.Fleet(tmp_path / "old", env, 1, restart=False, worker_args=f"-c {THREADS} -t 25",
                      procman_args=["-t", "1"])
    try:
        fleet.wait_for_workers(1, conn)
        [identity] = [member.decode() for member in conn.smembers(KEYS.processes)]
        pushed = set(workerkit.push_bulk(jobs.SlowMark, [(3,)] * THREADS))
        kit.wait_until(lambda: conn.scard(jobs.STARTED) == THREADS, 60, "every thread busy")
        fleet.stop()
    finally:
        fleet.kill()
    assert "sending SIGKILL to worker.1" in fleet.output
    assert kit.inflight_count(conn, identity) == THREADS
    conn.delete(KEYS.process(identity))  # what 60 s without a heartbeat does
    successor = kit.Fleet(tmp_path / "new", env, 1, restart=False, worker_args=f"-c {THREADS}")
    try:
        kit.wait_until(kit.settled(conn, pushed), 90, "the successor to run the recovered jobs")
        assert successor.stop() == 143
    finally:
        successor.kill()
    assert _members(conn, jobs.DONE) == pushed and int(conn.get(jobs.RUNS) or 0) == THREADS
    assert "recovered a job of dead process" in successor.output
