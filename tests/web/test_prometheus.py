"""``/metrics`` in Prometheus' text format against a real server: every figure exact (parsed with
prometheus_client's own parser), hostile label values, the dashboard's auth or a hook of its own, and
``workerkit web`` with a scraper's bearer token."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
import redis
from dashboard_helpers import KEYS, LOCAL, PREFIX, enqueue, payload
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient
from test_standalone import CREDENTIALS, clean_env, standalone

from workerkit.api import Api
from workerkit.lifecycle import Lifecycle
from workerkit.metrics import MetricsBatch
from workerkit.web import basic_auth, bearer_auth, dashboard

HOSTILE = 'a"b\\c\nd|n'


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def seed(conn: redis.Redis) -> None:
    enqueue(conn, payload(queue="mail", enqueued_at=time.time() - 30))
    enqueue(conn, payload(queue="mail"))
    conn.zadd(KEYS.retry, {json.dumps(payload("app.R")): time.time() + 60})
    conn.zadd(KEYS.dead, {json.dumps(payload("app.D")): time.time()})
    conn.set(KEYS.stat("processed"), 12)
    conn.set(KEYS.stat("failed"), 2)
    conn.sadd(KEYS.processes, "w:1:abc")
    conn.hset(KEYS.process("w:1:abc"), mapping={"info": "{}", "busy": 3, "beat": time.time()})
    batch, now = MetricsBatch(), time.time()
    for seconds in (0.0002, 0.0002, 0.003):
        batch.record("app.Job", seconds, False, now)
    batch.record(HOSTILE, 5000.0, True, now)
    Lifecycle(conn, KEYS).fetch([], [], [], [], 0, [], now, batch.drain())


@pytest.fixture
def app(api: Api) -> Iterator[TestClient]:
    board = dashboard(api, secret="s", auth=basic_auth("ops", "pw"), metrics_auth=None)
    with TestClient(Starlette(routes=[Mount(PREFIX, board)]), base_url=LOCAL) as client:
        yield client


def test_every_figure_is_read_from_redis(app: TestClient, redis_client: redis.Redis) -> None:
    seed(redis_client)
    response = app.get(f"{PREFIX}/metrics", auth=("ops", "pw"))
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain; version=0.0.4")
    found = samples(response.text)
    assert found[("workerkit_processed_total", ())] == 12 and found[("workerkit_failed_total", ())] == 2
    assert found[("workerkit_queue_size", (("queue", "mail"),))] == 2
    assert 29 < found[("workerkit_queue_latency_seconds", (("queue", "mail"),))] < 60
    assert [found[(f"workerkit_{name}", ())] for name in ("scheduled_jobs", "retry_jobs", "dead_jobs")] == [0, 1, 1]
    assert found[("workerkit_busy_threads", ())] == 3 and found[("workerkit_processes", ())] == 1
    job = (("class", "app.Job"),)
    assert found[("workerkit_job_runs_total", job)] == 3 and found[("workerkit_job_failures_total", job)] == 0
    assert found[("workerkit_job_duration_seconds_bucket", (*job, ("le", "0.00025")))] == 2
    assert found[("workerkit_job_duration_seconds_bucket", (*job, ("le", "0.002")))] == 2
    assert found[("workerkit_job_duration_seconds_bucket", (*job, ("le", "0.004")))] == 3
    assert found[("workerkit_job_duration_seconds_bucket", (*job, ("le", "+Inf")))] == 3
    assert found[("workerkit_job_duration_seconds_count", job)] == 3
    assert found[("workerkit_job_duration_seconds_sum", job)] == pytest.approx(0.0034)
    hostile = (("class", HOSTILE),)
    assert found[("workerkit_job_failures_total", hostile)] == 1
    assert found[("workerkit_job_duration_seconds_bucket", (*hostile, ("le", "4194.304")))] == 0
    assert found[("workerkit_job_duration_seconds_bucket", (*hostile, ("le", "+Inf")))] == 1


def test_an_empty_redis_gives_the_totals_and_no_classes(app: TestClient) -> None:
    found = samples(app.get(f"{PREFIX}/metrics", auth=("ops", "pw")).text)
    assert found == {(f"workerkit_{name}", ()): 0.0 for name in (
        "processed_total", "failed_total", "scheduled_jobs", "retry_jobs", "dead_jobs", "busy_threads", "processes")}


def test_metrics_are_behind_the_dashboards_auth_unless_given_their_own(app: TestClient, api: Api) -> None:
    assert app.get(f"{PREFIX}/metrics").status_code == 401
    assert app.get(f"{PREFIX}/metrics", auth=("ops", "wrong")).status_code == 401
    board = dashboard(api, secret="s", auth=basic_auth("ops", "pw"), metrics_auth=bearer_auth("scrape-me"))
    with TestClient(Starlette(routes=[Mount(PREFIX, board)]), base_url=LOCAL) as client:
        bearer = {"authorization": "Bearer scrape-me"}
        assert client.get(f"{PREFIX}/metrics", headers=bearer).status_code == 200
        assert client.get(f"{PREFIX}/metrics", auth=("ops", "pw")).status_code == 401
        assert client.get(f"{PREFIX}/metrics", headers={"authorization": "Bearer scrape-m"}).status_code == 401
        assert client.get(f"{PREFIX}/", headers=bearer).status_code == 401  # only /metrics takes the token
        assert client.get(f"{PREFIX}/metrics/", headers=bearer).status_code == 401
    with pytest.raises(ValueError, match="empty"):
        bearer_auth("")


def test_workerkit_web_serves_metrics_to_a_bearer_token(redis_url: str) -> None:
    env = clean_env(**CREDENTIALS, WORKERKIT_WEB_METRICS_TOKEN="t0ken")
    with standalone(redis_url, env) as base:
        scraped = httpx.get(base + "/metrics", headers={"authorization": "Bearer t0ken"}, timeout=5)
        refused = httpx.get(base + "/metrics", timeout=5)
        with_password = httpx.get(base + "/", auth=("ops", "hunter2"), timeout=5)
    assert scraped.status_code == 200 and samples(scraped.text)[("workerkit_processes", ())] == 0
    assert refused.status_code == 401 and with_password.status_code == 200
