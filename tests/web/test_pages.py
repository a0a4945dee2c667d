"""Every dashboard page, read over HTTP through Starlette's test client against a real server."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta

import redis
from dashboard_helpers import KEYS, PREFIX, add_to, enqueue, failed, payload
from starlette.testclient import TestClient

from workerkit.api import Api
from workerkit.sets import JobSet


def seed_process(conn: redis.Redis, identity: str = "web-1:4242:abc123", busy: int = 1) -> str:
    info = {
        "hostname": "web-1",
        "pid": 4242,
        "tag": "shop",
        "concurrency": 5,
        "queues": ["critical", "default"],
        "labels": ["blue"],
        "identity": identity,
        "started_at": time.time() - 600,
        "version": "0.1.0",
    }
    conn.sadd(KEYS.processes, identity)
    conn.hset(
        KEYS.process(identity),
        mapping={"info": json.dumps(info), "busy": busy, "beat": time.time() - 2, "quiet": "false", "rss": 51200},
    )
    running = payload("app.jobs.Thumbnail", [99], queue="critical")
    conn.hset(
        KEYS.work(identity), "t-1", json.dumps({"queue": "critical", "payload": running, "run_at": time.time() - 5})
    )
    return identity


def test_the_dashboard_shows_counts_history_queues_and_server(client: TestClient, redis_client: redis.Redis) -> None:
    redis_client.set(KEYS.stat("processed"), 1234567)
    redis_client.set(KEYS.stat("failed"), 89)
    today = datetime.now(UTC).date()
    redis_client.set(KEYS.stat("processed", today - timedelta(days=1)), 420)
    redis_client.set(KEYS.stat("failed", today - timedelta(days=1)), 7)
    for _ in range(3):
        enqueue(redis_client, payload(queue="critical"))
    add_to(redis_client, KEYS.retry, failed(), time.time() + 60)
    seed_process(redis_client, busy=2)

    page = client.get(PREFIX + "/")

    assert page.status_code == 200
    stat = dict(re.findall(r'data-stat="(\w+)">([^<]*)<', page.text))
    assert stat == {
        "processed": "1,234,567",
        "failed": "89",
        "busy": "2",
        "enqueued": "3",
        "scheduled": "0",
        "retries": "1",
        "dead": "0",
        "processes": "1",
    }
    assert f"{(today - timedelta(days=1)).isoformat()}: 420 processed, 7 failed" in page.text
    assert page.text.count('class="bar-processed"') == 30
    assert f'<a href="{PREFIX}/queues/critical">critical</a>' in page.text
    assert re.search(r"<dd>(Valkey|Redis) \d+\.\d+", page.text)
    assert f'data-poll-url="{PREFIX}/stats.json"' in page.text


def test_the_stats_endpoint_returns_the_live_numbers(client: TestClient, redis_client: redis.Redis) -> None:
    redis_client.set(KEYS.stat("processed"), 10)
    enqueue(redis_client, payload())
    add_to(redis_client, KEYS.dead, failed(), time.time())

    stats = client.get(PREFIX + "/stats.json")

    assert stats.headers["cache-control"] == "no-store"
    body = stats.json()
    assert time.time() - body.pop("time") < 60
    queues = body.pop("queues")
    assert list(queues) == ["default"] and queues["default"]["size"] == 1 and queues["default"]["latency"] < 60
    assert body == {
        "processed": 10,
        "failed": 0,
        "busy": 0,
        "processes": 0,
        "enqueued": 1,
        "scheduled": 0,
        "retries": 0,
        "dead": 1,
    }


def test_the_busy_page_lists_processes_and_their_running_jobs(client: TestClient, redis_client: redis.Redis) -> None:
    identity = seed_process(redis_client)
    redis_client.sadd(KEYS.processes, "gone:1:dead")  # heartbeat expired: not shown

    page = client.get(PREFIX + "/busy")

    assert page.status_code == 200
    assert "web-1:4242" in page.text and "gone:1" not in page.text
    assert '<span class="tag">shop</span>' in page.text and '<span class="tag">blue</span>' in page.text
    assert "1 / 5 busy" in page.text and "critical, default" in page.text and "50.0 MB" in page.text
    assert "app.jobs.Thumbnail" in page.text and '<code class="args">99</code>' in page.text
    assert f'name="identity" value="{identity}"' in page.text


def test_the_queues_page_shows_size_and_latency(client: TestClient, redis_client: redis.Redis) -> None:
    enqueue(redis_client, payload(enqueued_at=time.time() - 90))
    enqueue(redis_client, payload())

    page = client.get(PREFIX + "/queues")

    row = re.search(
        r'queues/default">default</a></td>\s*<td class="num">(\d+)</td>\s*<td class="num">([\d.]+) s', page.text
    )
    assert row and row.group(1) == "2" and 89 < float(row.group(2)) < 150


def test_a_queue_pages_through_its_jobs_newest_first(client: TestClient, redis_client: redis.Redis) -> None:
    for number in range(30):
        enqueue(redis_client, payload("app.jobs.Number", [number]))

    first = client.get(PREFIX + "/queues/default")
    second = client.get(PREFIX + "/queues/default?page=2&per_page=25")

    assert "30 jobs" in first.text and "Page 1 of 2" in first.text
    assert re.findall(r'<code class="args">(\d+)</code>', second.text) == ["4", "3", "2", "1", "0"]
    assert f'href="{PREFIX}/queues/default?per_page=25&amp;page=1"' in second.text


def test_the_sorted_sets_page_sort_and_filter(client: TestClient, redis_client: redis.Redis) -> None:
    now = time.time()
    add_to(redis_client, KEYS.schedule, payload("app.jobs.Bravo", ["b"]), now + 30)
    add_to(redis_client, KEYS.schedule, payload("app.jobs.Alpha", ["a"]), now + 60)
    add_to(redis_client, KEYS.schedule, payload("app.jobs.Charlie", ["needle"]), now + 90)

    def classes(query: str) -> list[str]:
        page = client.get(PREFIX + "/scheduled" + query)
        assert page.status_code == 200
        return re.findall(r">app\.jobs\.(\w+)</a>", page.text)

    assert classes("") == ["Bravo", "Alpha", "Charlie"]
    assert classes("?dir=desc") == ["Charlie", "Alpha", "Bravo"]
    assert classes("?sort=class") == ["Alpha", "Bravo", "Charlie"]
    assert classes("?sort=class&dir=desc") == ["Charlie", "Bravo", "Alpha"]
    assert classes("?q=NEEDLE") == ["Charlie"]
    assert classes("?q=nothing-like-it") == []
    assert classes("?sort=nonsense&page=-3&per_page=9999") == ["Bravo", "Alpha", "Charlie"]


def test_retries_and_dead_show_errors_and_link_to_a_job_page(
    client: TestClient, api: Api, redis_client: redis.Redis
) -> None:
    job = add_to(redis_client, KEYS.retry, failed(args=[{"user": 7}]), time.time() + 120)
    add_to(redis_client, KEYS.dead, failed("app.jobs.Doomed", error_message="gone for good"), time.time() - 5)

    retries = client.get(PREFIX + "/retries")
    dead = client.get(PREFIX + "/dead")

    assert "<strong>RuntimeError</strong>: boom" in retries.text and '<span class="tag">retry 2</span>' in retries.text
    assert "gone for good" in dead.text and ">Kill<" not in dead.text
    assert 'aria-sort="descending"' in dead.text  # newest deaths first
    [entry] = api.sorted_set(JobSet.RETRIES).page().jobs
    detail = client.get(f"{PREFIX}/retries/{entry.key}")
    assert detail.status_code == 200
    assert job["jid"] in detail.text and "{&#34;user&#34;: 7}" in detail.text
    assert "File &#34;app/jobs.py&#34;, line 3, in perform\nRuntimeError: boom" in detail.text


def test_a_job_that_moved_on_gets_a_gone_page(client: TestClient) -> None:
    assert client.get(PREFIX + "/retries/123.5-0123456789abcdef01234567").status_code == 404
    assert client.get(PREFIX + "/retries/not-a-key").status_code == 404
    assert client.get(PREFIX + "/nowhere").status_code == 404


def test_the_periodic_page_lists_schedules_with_next_and_last_run(
    client: TestClient, redis_client: redis.Redis
) -> None:
    record = {
        "name": "cleanup",
        "cron": "*/5 * * * *",
        "class": "app.jobs.Cleanup",
        "args": [3],
        "queue": "default",
        "tz": "Europe/Berlin",
        "last_run": time.time() - 120,
    }
    redis_client.hset(KEYS.periodic, "cleanup", json.dumps(record))

    page = client.get(PREFIX + "/periodic")

    assert "<code>*/5 * * * *</code>" in page.text and "Europe/Berlin" in page.text
    assert "2 min ago" in page.text and re.search(r">in \d+ (s|min)<", page.text)
    assert 'name="name" value="cleanup"' in page.text


def test_links_and_assets_follow_the_mount_prefix(client: TestClient) -> None:
    page = client.get(PREFIX + "/")
    hrefs = re.findall(r'(?:href|src|action)="([^"]+)"', page.text)
    assert hrefs and all(href.startswith(PREFIX + "/") for href in hrefs)
    assert client.get(PREFIX + "/static/dashboard.css").status_code == 200
    assert client.get(PREFIX + "/static/dashboard.js").headers["content-type"].startswith("text/javascript")
