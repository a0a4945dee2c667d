"""Workers on two network namespaces against one Redis; one host is cut off mid-run and the other
recovers its in-flight jobs (the short version of ``bench/multihost.py``; skipped without ``ip netns``)."""

from __future__ import annotations

from pathlib import Path

import multihost
import pytest

UNAVAILABLE = multihost.netns_available()


@pytest.mark.skipif(UNAVAILABLE is not None, reason=f"ip netns unavailable: {UNAVAILABLE}")
def test_a_host_cut_off_mid_run_has_its_jobs_recovered_by_the_other(tmp_path: Path) -> None:
    with multihost.hosts(2) as both, multihost.shared_redis(tmp_path / "redis", [h.root_address for h in both]) as port:
        result = multihost.run(tmp_path, both, port, total=4000, workers=1, job_seconds=0.003, cut=True,
                               expire_heartbeats=True, timeout=120)
    print(result)
    assert result.recovery_seconds is not None
    assert result.tally.lost == 0 and result.tally.done == 4000 and result.tally.dead == 0
    assert 0 <= result.tally.duplicates <= result.orphaned
