"""kill -9 of workers under ``procman start -c worker=2 --restart worker``: no job lost, repeats bounded.

The short version of ``bench/chaos_workers.py`` (same code, 4,000 jobs of 10 ms, 3 kills).
"""

from __future__ import annotations

from pathlib import Path

import chaos_workers
import redis

from workerkit.server import RunningServer


def test_kill_9_workers_mid_run_loses_nothing(own_server: RunningServer, conn: redis.Redis, tmp_path: Path) -> None:
    result = chaos_workers.run(tmp_path / "app", own_server.url, jobs=4000, workers=2, kill_every=(0.3, 0.6),
                               job_seconds=0.01, expire_heartbeats=True, max_kills=3, timeout=150)
    tally = result.tally
    print(f"kills {len(result.kills)}, repeated runs {tally.duplicates} (bound {result.orphaned}), "
          f"dead {tally.dead}, recovery {result.recovery}")
    assert len(result.kills) >= 1 and result.orphaned >= 1
    assert tally.lost == 0
    assert tally.done + tally.dead == 4000
    assert 0 <= tally.duplicates <= result.orphaned
    assert len(result.recovery) == len(result.kills)
    assert result.tracebacks == 0
    assert result.procman_exit == 143
