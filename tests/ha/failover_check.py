"""The short version of bench/chaos_failover.py that the Cluster and Sentinel tests share: a failover in the
middle of a 1,500-job drain with ``wait_replicas=1``, and what must hold after it."""

from __future__ import annotations

import sys
from pathlib import Path

from ha_support import ClusterGroup, SentinelGroup

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))


def check_a_failover_mid_drain(folder: Path, group: ClusterGroup | SentinelGroup) -> None:
    """Kill the primary mid-drain: no confirmed job lost, every unconfirmed one run anyway, clean exits."""
    import chaos_failover

    result = chaos_failover.run(folder, group, jobs=1500, workers=2, wait_replicas=1)
    print(f"confirmed {len(result.confirmed)}, unconfirmed {len(result.unconfirmed)}, refused {result.refused}, "
          f"repeated {result.repeated}, failover {result.failover_seconds:.1f} s")
    assert len(result.confirmed) >= 500 and result.failover_seconds > 0
    assert result.lost == set()
    assert result.unconfirmed <= result.ran  # pushed while no replica confirmed, and still run
    assert result.exit_codes == [0, 0] and result.tracebacks == 0
