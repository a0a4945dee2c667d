"""Redis faults under a running fleet (the short version of ``bench/chaos_redis.py``, with a 0.5 s
heartbeat that expires in 2 s): SIGKILL and restart from the AOF, CLIENT KILL, a 3 s SIGSTOP and a 3 s
outage (both longer than the heartbeat lives). Workers reconnect and beat again, no durable job is lost,
nothing strands in flight, no process crashes."""

from __future__ import annotations

from pathlib import Path

import chaos_redis
import pytest
import redis

from workerkit.server import RunningServer

JOBS = 6000


@pytest.mark.slow  # 7 to 15 s: CI runs it on CPython 3.11 only (see .ci/run)
def test_workers_ride_out_kill_restart_client_kill_pause_and_outage(
    own_server: RunningServer, conn: redis.Redis, tmp_path: Path
) -> None:
    result = chaos_redis.run(tmp_path, own_server, JOBS, 2, 0.01, list(chaos_redis.FAULTS), pause=3.0, down=3.0,
                             heartbeat=0.5, timeout=60)
    print(result)
    assert [r.fault for r in result.recoveries] == list(chaos_redis.FAULTS)
    assert all(r.beating_after < 10 and r.working_after < 10 for r in result.recoveries)
    assert result.workers_alive_after_faults
    assert result.stuck_in_live_workers == 0
    assert result.tally.lost == 0 and result.tally.done == JOBS and result.tally.dead == 0
    assert result.tally.duplicates <= sum(r.in_flight for r in result.recoveries)
    assert result.tracebacks == 0


@pytest.mark.parametrize("fsync", ["everysec", "always"])
def test_a_server_process_kill_loses_no_acknowledged_write(own_server: RunningServer, fsync: str) -> None:
    """Redis writes the AOF before it replies, so kill -9 of the process alone (not the machine) loses none."""
    loss = chaos_redis.loss_window(own_server, fsync, seconds=0.5)
    assert loss.acknowledged > 10
    assert loss.lost == 0
    assert loss.applied_unacknowledged <= 1
