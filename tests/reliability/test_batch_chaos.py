"""Batches under kill -9 (the short run of ``bench/chaos_batch.py``, with its 10,000 jobs): 2 workers killed
again and again while they drain a batch; ``on_success`` is pushed once, after its last job succeeded; a
batch holding a job that dies pushes ``on_death`` and ``on_complete`` once each and never ``on_success``."""

from __future__ import annotations

from pathlib import Path

import chaos_batch
import pytest
import redis

from workerkit.server import RunningServer


@pytest.mark.slow
def test_a_10000_job_batch_under_kill_9_pushes_each_callback_once(
    own_server: RunningServer, conn: redis.Redis, tmp_path: Path
) -> None:
    result = chaos_batch.run(tmp_path / "app", own_server.url, jobs=10_000, workers=2, kill_every=(0.5, 1.0),
                             job_seconds=0.004, heartbeat=0.5, timeout=240)
    print(f"kills {len(result.kills)}, repeated runs {result.tally.duplicates}, callbacks {dict(result.pushed)}")
    assert len(result.kills) >= 2
    assert result.tally.lost == 0 and result.tally.done == 10_099
    assert dict(result.pushed) == {(result.bid, "complete"): 1, (result.bid, "success"): 1,
                                   (result.doomed_bid, "complete"): 1, (result.doomed_bid, "death"): 1}
    success = [entry for entry in result.callbacks if entry["bid"] == result.bid and entry["event"] == "success"]
    assert success and all(entry["missing"] == 0 for entry in success)  # ran after the last job had succeeded
    assert result.tracebacks == 0
