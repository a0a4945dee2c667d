"""Poison jobs against a real worker under procman: garbage, hostile JSON, unknown classes, a job raising
in ``__init__``, and one that never finishes. The worker survives and each bad job lands in the dead set
with a reason; the endless one (no ``timeout`` set: the default) holds its thread until shutdown and then
goes back to its queue. Time limits are tested in tests/workerkit/test_wk_timeout.py; workerkit has no
process isolation, so there is no memory-exhaustion case to test.
"""

from __future__ import annotations

import json
from pathlib import Path

import redis
import reliability_jobs as jobs
import reliability_kit as kit

import workerkit
from workerkit.keys import Keys
from workerkit.server import RunningServer

KEYS = Keys()
GARBAGE = [
    b"{not json",
    b"\xff\xfe\x00",
    b"null",
    b"[" * 100_000,  # nesting deeper than the JSON decoder's recursion limit
    b'{"class": 5, "args": []}',
    b'{"class": "reliability_jobs.Accept", "args": "not a list"}',
    b'{"class": "reliability_jobs.Accept", "args": [NaN], "jid": "nan"}',  # not JSON: Python's json accepts it
    b'{"class": "reliability_jobs.Accept", "args": [1e999], "jid": "overflow"}',
    b'{"class": "reliability_jobs.Accept", "args": ["\\ud800"], "jid": "lone-surrogate"}',  # a json.dumps'd file name
]


def test_poison_jobs_die_with_a_reason_and_the_worker_survives(
    own_server: RunningServer, conn: redis.Redis, tmp_path: Path
) -> None:
    fleet = kit.Fleet(tmp_path, kit.worker_environment(own_server.url), 1, restart=False,
                      worker_args="-c 4 -t 1")
    try:
        fleet.wait_for_workers(1, conn)
        conn.lpush(KEYS.queue("default"), *GARBAGE)
        unknown = workerkit.push("app.jobs.NoSuchJob", [1])
        broken = jobs.BrokenInit.perform_async()
        conn.lpush(KEYS.queue("default"), json.dumps(
            {"class": "reliability_jobs.BrokenInit", "args": [], "jid": "odd-fields", "retry": 0,
             "retry_count": "many", "queue": ["x"]}))
        forever = jobs.Forever.perform_async("forever")
        kit.wait_until(lambda: int(conn.get("forever") or 0) >= 3, 60, "the endless job to run")
        sentinel = jobs.Mark.perform_async(0)
        kit.wait_until(lambda: conn.sismember(jobs.DONE, sentinel), 60, "a good job after the poison")
        expected = len(GARBAGE) + 2
        kit.wait_until(lambda: conn.zcard(KEYS.dead) == expected, 60, f"{expected} dead jobs\n{fleet.output}")
        dead = [json.loads(member) for member in conn.zrange(KEYS.dead, 0, -1)]
        by_jid = {entry["jid"]: entry for entry in dead}
        [retried] = [json.loads(member) for member in conn.zrange(KEYS.retry, 0, -1)]  # unknown: retried, as Sidekiq
        assert retried["jid"] == unknown and "not a registered job" in retried["error_message"]
        assert by_jid[broken]["error_message"] == "BrokenInit cannot be constructed"
        assert by_jid["odd-fields"]["error_message"] == "BrokenInit cannot be constructed"
        invalid = [entry for entry in dead if entry["class"] == "workerkit.InvalidPayload"]
        assert len(invalid) == len(GARBAGE) and all(entry["error_message"] for entry in invalid)
        [identity] = [member.decode() for member in conn.smembers(KEYS.processes)]
        running = lambda: [json.loads(work)["payload"]["jid"] for work in conn.hvals(KEYS.work(identity))]  # noqa: E731
        kit.wait_until(lambda: running() == [forever], 30, "the heartbeat to show the endless job")
        # Finished jobs leave the in-flight list with the worker's next fetch (acknowledged in batches).
        kit.wait_until(lambda: kit.inflight_count(conn, identity) == 1, 30, "only the endless job in flight")
        assert fleet.stop() == 143
        [requeued] = [json.loads(raw) for raw in conn.lrange(KEYS.queue("default"), 0, -1)]
        assert requeued["jid"] == forever
        assert kit.pending(conn) == 1 and "Traceback" not in fleet.output
    finally:
        fleet.kill()
