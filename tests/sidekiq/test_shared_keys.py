"""Keys Sidekiq and workerkit both touch: neither's bookkeeping gets in the other's way (no Ruby needed)."""

from __future__ import annotations

import json

import redis

from workerkit.keys import Keys
from workerkit.recovery import Sweeper


def test_the_orphan_sweep_runs_while_sidekiq_7_holds_its_process_cleanup_lock(wk: redis.Redis) -> None:
    keys = Keys()
    job = json.dumps({"class": "HardWorker", "args": [1], "jid": "a" * 24, "queue": "py", "retry": True})
    inflight = keys.inflight("host:1:dead00", "py")
    wk.lpush(inflight, job)
    wk.hset(keys.inflight_lists, inflight, json.dumps({"identity": "host:1:dead00", "queue": "py"}))
    wk.set("process_cleanup", "1", ex=60)  # what Sidekiq 7's ProcessSet and poller hold, a minute at a time

    assert Sweeper(wk, keys, 10.0).sweep() == 1

    assert wk.llen(inflight) == 0 and json.loads(wk.lindex("queue:py", 0))["jid"] == "a" * 24  # type: ignore[arg-type]
    assert wk.smembers("queues") == {b"py"}
