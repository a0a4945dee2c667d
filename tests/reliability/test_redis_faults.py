"""Redis faults under a running fleet (the short version of ``bench/chaos_redis.py``): SIGKILL and restart
from the AOF, CLIENT KILL, a SIGSTOP longer than the heartbeat. Workers reconnect, no durable job is lost,
no process crashes, and no live worker is taken for dead."""

from __future__ import annotations

from pathlib import Path

import chaos_redis
import pytest
import redis

from workerkit.server import RunningServer


def test_workers_ride_out_kill_restart_client_kill_and_pause(
    own_server: RunningServer, conn: redis.Redis, tmp_path: Path
) -> None:
    result = chaos_redis.run(tmp_path, own_server, 6000, 2, 0.01, list(chaos_redis.FAULTS), pause=2.0, timeout=120)
    print(result)
    assert result.workers_alive_after_faults
    assert result.tally.lost == 0 and result.tally.done == 6000 and result.tally.dead == 0
    assert result.tracebacks == 0


@pytest.mark.parametrize("fsync", ["everysec", "always"])
def test_a_server_process_kill_loses_no_acknowledged_write(own_server: RunningServer, fsync: str) -> None:
    """Redis writes the AOF before it replies, so kill -9 of the process alone (not the machine) loses none."""
    loss = chaos_redis.loss_window(own_server, fsync, seconds=0.5)
    assert loss.acknowledged > 10
    assert loss.lost == 0
    assert loss.applied_unacknowledged <= 1
