"""kill -9 of workers, and a worker frozen past its heartbeat then killed: no job lost, repeats bounded,
each job counted once, recovery within the heartbeat's life plus a sweep.

The short versions of ``bench/chaos_workers.py`` and ``bench/chaos_frozen_worker.py`` (same code; a 0.5 s
and a 1 s heartbeat instead of the default 2 s, so the heartbeat expires in 2 s and 4 s).
"""

from __future__ import annotations

from pathlib import Path

import chaos_frozen_worker
import chaos_workers
import pytest
import redis

from workerkit.server import RunningServer

JOBS = 3000


def test_kill_9_workers_mid_run_loses_nothing(own_server: RunningServer, conn: redis.Redis, tmp_path: Path) -> None:
    result = chaos_workers.run(tmp_path / "app", own_server.url, jobs=JOBS, workers=2, kill_every=(0.5, 1.0),
                               job_seconds=0.01, heartbeat=0.5, max_kills=4, timeout=60)
    tally = result.tally
    print(f"kills {len(result.kills)}, repeated runs {tally.duplicates} (bound {result.orphaned}), "
          f"dead {tally.dead}, recovery {result.recovery}")
    assert len(result.kills) >= 1 and result.orphaned >= 1
    assert tally.lost == 0
    assert tally.done + tally.dead == JOBS
    assert 0 <= tally.duplicates <= result.orphaned
    assert len(result.recovery) == sum(1 for kill in result.kills if kill.orphaned)
    assert max(result.recovery) < 4 * 0.5 + 0.5 + 5  # heartbeat expiry + one sweep, with room for load
    assert result.processed == JOBS  # each job counted once, whatever ran twice
    assert result.left_in_flight == 0
    assert result.exit_codes and set(result.exit_codes) == {0}  # every worker still running stops cleanly
    assert result.tracebacks == 0


@pytest.mark.slow  # 7 to 15 s: CI runs it on CPython 3.11 only (see .ci/run)
def test_a_worker_frozen_past_its_heartbeat_then_killed_loses_nothing(
    own_server: RunningServer, conn: redis.Redis, tmp_path: Path
) -> None:
    result = chaos_frozen_worker.run(tmp_path / "app", own_server.url, jobs_count=1000, workers=2, freeze=6.0,
                                     job_seconds=0.02, heartbeat=1.0, timeout=60)
    print(result)
    tally = result.tally
    assert result.held_when_frozen >= 1 and result.held_when_killed >= 1
    assert tally.lost == 0 and tally.done == tally.pushed and tally.dead == 0
    assert 0 <= tally.duplicates <= result.bound
    assert result.doomed_entries == result.doomed_distinct == result.doomed  # buried once each
    assert (result.processed, result.failed) == (tally.pushed + result.doomed, result.doomed)
    assert result.refused == result.doomed_held_when_frozen  # the thawed worker wrote none of them
    assert result.listed_when_killed  # listed for recovery again after its heartbeat lapsed
    assert result.recovered_after_kill is not None and result.recovered_after_kill < 4 * 1.0 + 1.0 + 5
    assert result.left_in_flight == 0
    assert result.tracebacks == 0
