"""Queues whose names other clients chose: the empty name has pages and actions like any other."""

from __future__ import annotations

import redis
from dashboard_helpers import KEYS, PREFIX, enqueue, payload, post, queued
from starlette.testclient import TestClient

from workerkit.payload import encode


def push_to_the_unnamed_queue(conn: redis.Redis) -> dict[str, object]:
    """What a client that does not check names (a script, another library) leaves behind."""
    job = payload("app.jobs.Stray")
    job["queue"] = ""
    conn.sadd(KEYS.queues, "")
    conn.lpush(KEYS.queue(""), encode(job))
    return job


def test_a_queue_named_empty_is_listed_shown_and_cleared(client: TestClient, redis_client: redis.Redis) -> None:
    enqueue(redis_client, payload())
    job = push_to_the_unnamed_queue(redis_client)
    for path in ("/", "/queues"):
        page = client.get(PREFIX + path)
        assert page.status_code == 200, path
        assert f'href="{PREFIX}/queues/"' in page.text and f'href="{PREFIX}/queues/default"' in page.text
    shown = client.get(PREFIX + "/queues/")
    assert shown.status_code == 200 and str(job["jid"]) in shown.text
    assert post(client, PREFIX + "/queues//delete", {"jid": job["jid"]}).status_code == 303
    assert redis_client.llen(KEYS.queue("")) == 0
    push_to_the_unnamed_queue(redis_client)
    assert post(client, PREFIX + "/queues//clear", {}).headers["location"] == f"{PREFIX}/queues?done=cleared&n=1"
    assert redis_client.llen(KEYS.queue("")) == 0 and len(queued(redis_client)) == 1
