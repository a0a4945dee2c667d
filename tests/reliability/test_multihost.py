"""Workers on two network namespaces against one Redis; one host is cut off mid-run for longer than its
heartbeat lives, the other recovers its in-flight jobs, and once reconnected it beats and works again (the
short version of ``bench/multihost.py``, with a 0.5 s heartbeat; skipped without ``ip netns``)."""

from __future__ import annotations

from pathlib import Path

import multihost
import pytest

UNAVAILABLE = multihost.netns_available()
JOBS = 2000
AFTER = 6000
"""Jobs pushed after the reconnection: 12 s of work for the other host alone (20 ms jobs, 10 threads), more
than a reconnecting worker's longest back-off (5 s), so the reconnected host gets some if it works again."""


@pytest.mark.slow  # 7 to 15 s: CI runs it on CPython 3.11 only (see .ci/run)
@pytest.mark.skipif(UNAVAILABLE is not None, reason=f"ip netns unavailable: {UNAVAILABLE}")
def test_a_host_cut_off_mid_run_has_its_jobs_recovered_and_comes_back(tmp_path: Path) -> None:
    with multihost.hosts(2) as both, multihost.shared_redis(tmp_path / "redis", [h.root_address for h in both]) as port:
        result = multihost.run(tmp_path, both, port, total=JOBS, workers=1, job_seconds=0.02, cut=3.0,
                               heartbeat=0.5, after=AFTER, timeout=60)
    print(result)
    assert result.recovery_seconds is not None and result.recovery_seconds < 4 * 0.5 + 0.5 + 5
    assert result.beating_after is not None
    assert result.ran_after > 0
    assert result.tally.lost == 0 and result.tally.done == JOBS + AFTER and result.tally.dead == 0
    assert 0 <= result.tally.duplicates <= result.orphaned
