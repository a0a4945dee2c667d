"""Every dashboard action over HTTP, checked in Redis: retry/run now, delete, kill, bulk, queues, processes."""

from __future__ import annotations

import hashlib
import json
import threading
import time

import redis
from dashboard_helpers import KEYS, PREFIX, add_to, enqueue, failed, payload, post, queued
from starlette.testclient import TestClient

from workerkit.api import Api
from workerkit.sets import JobSet


def members(conn: redis.Redis, key: str) -> list[dict[str, object]]:
    return [json.loads(raw) for raw in conn.zrange(key, 0, -1)]


def test_retry_now_moves_the_job_to_its_queue(client: TestClient, api: Api, redis_client: redis.Redis) -> None:
    job = add_to(redis_client, KEYS.retry, failed(queue="critical"), time.time() + 300)
    [entry] = api.sorted_set(JobSet.RETRIES).page().jobs

    response = post(client, f"{PREFIX}/retries/{entry.key}", {"action": "run"})

    assert response.status_code == 303
    assert response.headers["location"] == f"{PREFIX}/retries?done=run&n=1"
    assert redis_client.zcard(KEYS.retry) == 0
    [moved] = queued(redis_client, "critical")
    assert moved["jid"] == job["jid"] and moved["retry_count"] == 1 and moved["enqueued_at"] > job["failed_at"]
    assert "Moved 1 job(s) to their queues." in client.get(response.headers["location"]).text


def test_run_now_and_kill_and_delete_from_the_job_page(client: TestClient, api: Api, redis_client: redis.Redis) -> None:
    now = time.time()
    add_to(redis_client, KEYS.schedule, payload("app.jobs.Later", [1]), now + 60)
    add_to(redis_client, KEYS.schedule, payload("app.jobs.Doomed", [2]), now + 61)
    add_to(redis_client, KEYS.schedule, payload("app.jobs.Unwanted", [3]), now + 62)
    later, doomed, unwanted = api.sorted_set(JobSet.SCHEDULED).page().jobs

    post(client, f"{PREFIX}/scheduled/{later.key}", {"action": "run"})
    post(client, f"{PREFIX}/scheduled/{doomed.key}", {"action": "kill"})
    post(client, f"{PREFIX}/scheduled/{unwanted.key}", {"action": "delete"})

    assert [job["class"] for job in queued(redis_client)] == ["app.jobs.Later"]
    assert [job["class"] for job in members(redis_client, KEYS.dead)] == ["app.jobs.Doomed"]
    assert redis_client.zcard(KEYS.schedule) == 0
    gone = post(client, f"{PREFIX}/scheduled/{later.key}", {"action": "run"})
    assert gone.headers["location"] == f"{PREFIX}/scheduled?done=gone&n=0"


def test_bulk_actions_on_selected_jobs(client: TestClient, api: Api, redis_client: redis.Redis) -> None:
    now = time.time()
    for number in range(5):
        add_to(redis_client, KEYS.dead, failed("app.jobs.Dead", [number]), now - number)
    jobs = api.sorted_set(JobSet.DEAD).page().jobs

    assert [job.args[0] for job in jobs] == [4, 3, 2, 1, 0]  # oldest first in the API
    post(client, f"{PREFIX}/dead", {"action": "run", "key": [jobs[0].key, jobs[1].key]})
    post(client, f"{PREFIX}/dead", {"action": "delete", "key": [jobs[2].key, "1.0-nonexistent"]})

    assert sorted(job["args"][0] for job in queued(redis_client)) == [3, 4]
    assert sorted(job["args"][0] for job in members(redis_client, KEYS.dead)) == [0, 1]


def test_bulk_actions_on_all_jobs_matching_the_filter(client: TestClient, redis_client: redis.Redis) -> None:
    now = time.time()
    for number in range(4):
        add_to(redis_client, KEYS.retry, failed("app.jobs.Mailer", [number]), now + number)
    add_to(redis_client, KEYS.retry, failed("app.jobs.Billing", [9], error_message="card declined"), now)

    killed = post(client, f"{PREFIX}/retries", {"action": "kill", "scope": "all", "q": "mailer"})
    assert killed.headers["location"] == f"{PREFIX}/retries?done=killed&n=4"
    assert [job["class"] for job in members(redis_client, KEYS.retry)] == ["app.jobs.Billing"]
    assert redis_client.zcard(KEYS.dead) == 4

    post(client, f"{PREFIX}/dead", {"action": "run", "scope": "all", "q": ""})
    post(client, f"{PREFIX}/retries", {"action": "delete", "scope": "all", "q": ""})
    assert len(queued(redis_client)) == 4
    assert redis_client.zcard(KEYS.dead) == 0 and redis_client.zcard(KEYS.retry) == 0


def test_dead_jobs_cannot_be_killed_again(client: TestClient, api: Api, redis_client: redis.Redis) -> None:
    add_to(redis_client, KEYS.dead, failed(), time.time())
    [entry] = api.sorted_set(JobSet.DEAD).page().jobs
    assert post(client, f"{PREFIX}/dead/{entry.key}", {"action": "kill"}).status_code == 400
    assert redis_client.zcard(KEYS.dead) == 1


def test_delete_one_queued_job_and_clear_a_queue(client: TestClient, redis_client: redis.Redis) -> None:
    keep = enqueue(redis_client, payload("app.jobs.Keep"))
    drop = enqueue(redis_client, payload("app.jobs.Drop"))
    enqueue(redis_client, payload("app.jobs.Other", queue="low"))

    deleted = post(client, f"{PREFIX}/queues/default/delete", {"jid": drop["jid"]}, PREFIX + "/queues/default")
    assert deleted.headers["location"] == f"{PREFIX}/queues/default?done=deleted&n=1"
    assert [job["jid"] for job in queued(redis_client)] == [keep["jid"]]

    cleared = post(client, f"{PREFIX}/queues/low/clear", {})
    assert cleared.headers["location"] == f"{PREFIX}/queues?done=cleared&n=1"
    assert queued(redis_client, "low") == [] and redis_client.smembers(KEYS.queues) == {b"default"}


def test_quiet_and_stop_reach_the_process_through_redis(client: TestClient, redis_client: redis.Redis) -> None:
    identity = "host:1:abc"
    redis_client.sadd(KEYS.processes, identity)
    redis_client.hset(KEYS.process(identity), mapping={"info": "{}", "busy": 0, "beat": time.time()})

    post(client, f"{PREFIX}/busy", {"identity": identity, "action": "quiet"})
    post(client, f"{PREFIX}/busy", {"identity": identity, "action": "stop"})
    missing = post(client, f"{PREFIX}/busy", {"identity": "nobody:2:x", "action": "stop"})

    assert redis_client.lrange(KEYS.signals(identity), 0, -1) == [b"TERM", b"TSTP"]
    assert 0 < redis_client.ttl(KEYS.signals(identity)) <= 60
    assert missing.headers["location"] == f"{PREFIX}/busy?done=gone&n=0"
    assert not redis_client.exists(KEYS.signals("nobody:2:x"))


def test_enqueue_a_periodic_job_now(client: TestClient, redis_client: redis.Redis) -> None:
    record = {
        "name": "cleanup",
        "cron": "0 3 * * *",
        "class": "app.jobs.Cleanup",
        "args": [3],
        "queue": "low",
        "tz": "UTC",
        "retry": 3,
    }
    redis_client.hset(KEYS.periodic, "cleanup", json.dumps(record))

    response = post(client, f"{PREFIX}/periodic", {"name": "cleanup", "action": "enqueue"})

    assert response.headers["location"] == f"{PREFIX}/periodic?done=enqueued"
    [job] = queued(redis_client, "low")
    assert (job["class"], job["args"], job["periodic"], job["retry"]) == ("app.jobs.Cleanup", [3], "cleanup", 3)
    missing = post(client, f"{PREFIX}/periodic", {"name": "nope", "action": "enqueue"})
    assert missing.headers["location"] == f"{PREFIX}/periodic?done=gone&n=0"


def test_forget_a_periodic_job_removed_from_the_code(client: TestClient, redis_client: redis.Redis) -> None:
    redis_client.hset(KEYS.periodic, "old", json.dumps({"name": "old", "cron": "* * * * *", "class": "x.Y"}))

    response = post(client, f"{PREFIX}/periodic", {"name": "old", "action": "forget"})

    assert response.headers["location"] == f"{PREFIX}/periodic?done=forgotten&n=1"
    assert not redis_client.exists(KEYS.periodic)


def test_racing_moves_of_one_job_move_it_once(api: Api, redis_client: redis.Redis) -> None:
    add_to(redis_client, KEYS.retry, failed(), time.time())
    [entry] = api.sorted_set(JobSet.RETRIES).page().jobs
    results: list[int] = []
    barrier = threading.Barrier(6)

    def move(action: str) -> None:
        barrier.wait(timeout=30)
        retries = api.sorted_set(JobSet.RETRIES)
        results.append(retries.retry([entry]) if action == "run" else retries.kill([entry]))

    threads = [threading.Thread(target=move, args=("run" if index % 2 else "kill",)) for index in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(results) == [0, 0, 0, 0, 0, 1]
    assert len(queued(redis_client)) + redis_client.zcard(KEYS.dead) == 1


def test_an_entry_that_is_not_a_job_has_a_page_and_can_be_deleted_alone(
    client: TestClient, api: Api, redis_client: redis.Redis
) -> None:
    broken, also_broken = b"\xff not a job", b'{"class": "app.jobs.Half"'
    redis_client.zadd(KEYS.dead, {broken: 1000.0, also_broken: 1000.0})  # the same score: told apart by bytes
    first, second = api.sorted_set(JobSet.DEAD).page().jobs
    assert first.key != second.key and {first.key, second.key} == {
        f"1000.0-raw-{hashlib.sha256(raw).hexdigest()[:24]}" for raw in (broken, also_broken)}

    shown = client.get(f"{PREFIX}/dead/{first.key}")
    deleted = post(client, f"{PREFIX}/dead/{first.key}", {"action": "delete"})
    selected = post(client, f"{PREFIX}/dead", {"action": "delete", "key": [second.key]})

    assert shown.status_code == 200 and "(unreadable payload)" in shown.text
    assert deleted.headers["location"] == f"{PREFIX}/dead?done=deleted&n=1"
    assert selected.headers["location"] == f"{PREFIX}/dead?done=deleted&n=1"
    assert redis_client.zcard(KEYS.dead) == 0


def test_a_job_whose_jid_or_score_holds_a_dash_is_found_by_its_key(
    client: TestClient, api: Api, redis_client: redis.Redis
) -> None:
    job = failed(jid="0b0f5c2e-6d1c-4a55-9c1e-2f2b0f6c8d11")  # a UUID, as some producers write
    add_to(redis_client, KEYS.retry, job, 1e-05)  # repr: '1e-05'
    [entry] = api.sorted_set(JobSet.RETRIES).page().jobs
    assert entry.key == "1e-05-0b0f5c2e-6d1c-4a55-9c1e-2f2b0f6c8d11"

    assert client.get(f"{PREFIX}/retries/{entry.key}").status_code == 200
    ran = post(client, f"{PREFIX}/retries/{entry.key}", {"action": "run"})

    assert ran.headers["location"] == f"{PREFIX}/retries?done=run&n=1"
    assert [moved["jid"] for moved in queued(redis_client)] == [job["jid"]]


NOT_UTF8 = b'{"class":"app.jobs.Mailer","args":["caf\xe9"],"jid":"4b1d5a0e9c3f2a7b6d8e1f00","queue":"critical"}'
"""A job's JSON with one byte that is not UTF-8 (Latin-1's e-acute): the worker finds it is not a job."""


def test_a_killed_entry_that_is_not_utf8_keeps_its_bytes(
    client: TestClient, api: Api, redis_client: redis.Redis
) -> None:
    redis_client.zadd(KEYS.retry, {NOT_UTF8: 1000.0})
    [entry] = api.sorted_set(JobSet.RETRIES).page().jobs
    page = client.get(f"{PREFIX}/retries/{entry.key}")
    killed = post(client, f"{PREFIX}/retries/{entry.key}", {"action": "kill"})

    assert redis_client.zrange(KEYS.dead, 0, -1) == [NOT_UTF8]  # not rewritten with U+FFFD
    assert killed.headers["location"] == f"{PREFIX}/retries?done=killed&n=1"
    assert page.status_code == 200 and "(unreadable payload)" in page.text


def test_an_entry_that_is_not_utf8_run_now_goes_to_the_queue_as_it_was(
    client: TestClient, api: Api, redis_client: redis.Redis
) -> None:
    redis_client.zadd(KEYS.schedule, {NOT_UTF8: time.time() + 60})
    [entry] = api.sorted_set(JobSet.SCHEDULED).page().jobs
    ran = post(client, f"{PREFIX}/scheduled/{entry.key}", {"action": "run"})

    assert ran.headers["location"] == f"{PREFIX}/scheduled?done=run&n=1"
    assert redis_client.lrange(KEYS.queue("default"), 0, -1) == [NOT_UTF8]  # the worker will quarantine it whole
    assert redis_client.zcard(KEYS.schedule) == 0
