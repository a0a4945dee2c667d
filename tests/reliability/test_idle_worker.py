"""An idle worker sweeps for orphans once per sweep interval, not in a busy loop.

Found by profiling the throughput benchmark (fixed since): ``Ticker`` took what its tick returns as the delay before the
next tick, and ``Sweeper.sweep()`` returns how many jobs it moved (0 when idle), so the sweep ticker runs
again at once: an idle worker sends about 24,000 ``SET NX`` of the sweep lock per second and uses half a
core (measured with ``INFO commandstats``), and after a sweep that moved N jobs it waits N seconds.
"""

from __future__ import annotations

from pathlib import Path

import redis
import reliability_kit as kit

from workerkit.server import RunningServer

INTERVAL = 0.5


def test_an_idle_worker_sweeps_once_per_interval(own_server: RunningServer, conn: redis.Redis, tmp_path: Path) -> None:
    pool = kit.WorkerPool(tmp_path, kit.worker_environment(own_server.url, INTERVAL, INTERVAL), 1)
    try:
        pool.wait_for_workers(conn)
        identity = kit.identity_of(conn, pool.pids()[0])
        assert identity is not None
        conn.config_resetstat()
        first = float(conn.hget(identity, "beat") or 0)
        kit.wait_until(lambda: float(conn.hget(identity, "beat") or 0) >= first + 2 * INTERVAL, 10, "two more beats")
        sets = conn.info("commandstats").get("cmdstat_set", {}).get("calls", 0)
    finally:
        pool.kill()
    assert sets <= 6  # one SET NX of the sweep lock per 0.5 s over 1 to 1.5 s; nothing else SETs when idle
