"""workerkit through Redis Sentinel (a primary, 2 replicas, 3 sentinels of real servers): jobs pushed
(sync and awaitable) and run by a real worker found through the sentinels, with an ACL user; the
dashboard names where it looked; a failover mid-drain loses no confirmed job (the short version of
bench/chaos_failover.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from failover_check import check_a_failover_mid_drain
from ha_jobs import RAN, key
from ha_support import SentinelGroup, start_sentinel_group
from polling import wait_for
from process_support import ChildProcess

from workerkit import config
from workerkit.web.outage import masked_url

pytestmark = pytest.mark.timeout(120)


def test_jobs_pushed_and_run_through_the_sentinels_with_an_acl_user(
    ha_binary: str, tmp_path: Path, start_worker: Callable[..., ChildProcess]
) -> None:
    import ha_jobs

    with start_sentinel_group(tmp_path / "group", binary=ha_binary, username="app", password="s3cret") as group:
        assert group.url.startswith("redis+sentinel://app:s3cret@127.0.0.1:")
        config.reset()
        config.configure(redis_url=group.url)
        try:
            worker = start_worker(group.url, "-c", "2")
            ha_jobs.Record.perform_async("sync")

            async def push() -> None:
                await ha_jobs.Record.aperform_async("awaited")
                await config.close_async_redis_client()

            asyncio.run(push())
            conn = config.redis_client()
            wait_for(lambda: sorted(conn.lrange(key(RAN), 0, -1)) == [b"awaited", b"sync"], "both jobs to run", 30,
                     worker.output)
            assert worker.stop() == 0, worker.output()
            assert group.primary.connection().llen(key(RAN)) == 2  # on the primary the sentinels name
            sentinels = ",".join(f"127.0.0.1:{node.port}" for node in group.sentinels)
            assert masked_url(conn) == f"redis+sentinel://app:***@{sentinels}/mymaster/0"
            assert "s3cret" not in worker.output()
        finally:
            config.reset()


@pytest.mark.slow
def test_a_failover_mid_drain_loses_no_confirmed_job(sentinel_group: SentinelGroup, tmp_path: Path) -> None:
    check_a_failover_mid_drain(tmp_path, sentinel_group)
