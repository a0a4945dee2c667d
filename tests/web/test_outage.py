"""Redis down: every page answers 503, naming the URL (password masked) and what to do."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from dashboard_helpers import KEYS, LOCAL, PREFIX, csrf_token
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from workerkit import config
from workerkit.api import Api
from workerkit.server import running_server
from workerkit.web import dashboard

PAGES = ["/", "/busy", "/queues", "/queues/default", "/scheduled", "/retries", "/dead", "/periodic",
         "/retries/1700000000.0-abc", "/batches", "/batches/abc"]


@pytest.fixture
def stopped_url(tmp_path: Path) -> str:
    """The URL, with a password, of a real server that was running and is now stopped."""
    with running_server(tmp_path / "redis", kind="embedded") as server:
        redis.Redis.from_url(server.url).ping()
        server.stop()
        return f"redis://:hunter2@127.0.0.1:{server.port}/0"


@pytest.fixture
def down(stopped_url: str) -> Iterator[TestClient]:
    """The dashboard over the configured Redis (``workerkit.configure``), which is down."""
    config.reset()
    config.configure(redis_url=stopped_url)
    app = Starlette(routes=[Mount(PREFIX, dashboard(secret="s"))])
    with TestClient(app, LOCAL, follow_redirects=False) as client:
        yield client
    config.reset()


def test_every_page_says_redis_is_unreachable(down: TestClient, stopped_url: str) -> None:
    masked = stopped_url.replace("hunter2", "***")
    for path in PAGES:
        page = down.get(PREFIX + path)
        assert page.status_code == 503, path
        assert "<h1>Redis is unreachable</h1>" in page.text, path
        assert f"<code>{masked}</code>" in page.text and "hunter2" not in page.text
        assert "<code>workerkit redis</code>" in page.text and "<code>REDIS_URL</code>" in page.text
    live = down.get(PREFIX + "/stats.json")
    assert live.status_code == 503 and live.json()["error"].startswith(f"Redis is unreachable at {masked}: ")
    scrape = down.get(PREFIX + "/metrics")  # what a Prometheus scraper logs: one line of text, no page
    assert scrape.status_code == 503 and scrape.headers["content-type"].startswith("text/plain")
    assert scrape.text.startswith(f"Redis is unreachable at {masked}: ") and "<" not in scrape.text


def test_actions_say_so_too(down: TestClient) -> None:
    token = csrf_token(down, PREFIX + "/queues")
    answer = down.post(PREFIX + "/retries", data={"csrf_token": token, "action": "delete", "scope": "all"})
    assert answer.status_code == 503 and "Redis is unreachable" in answer.text


def test_the_dashboard_recovers_when_redis_is_back(tmp_path: Path) -> None:
    with running_server(tmp_path / "redis", kind="embedded") as server:
        client = TestClient(Starlette(routes=[Mount(PREFIX, dashboard(Api(redis.Redis.from_url(server.url), KEYS)))]),
                            LOCAL)
        assert client.get(PREFIX + "/queues").status_code == 200
        server.stop()
        assert client.get(PREFIX + "/queues").status_code == 503
        server.start()
        assert client.get(PREFIX + "/queues").status_code == 200
