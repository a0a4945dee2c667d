"""Fixtures for dashboard tests: the API over a real server, and the dashboard mounted at /workerkit."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from dashboard_helpers import KEYS, LOCAL, PREFIX
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from workerkit.api import Api
from workerkit.web import dashboard


@pytest.fixture
def api(redis_client: redis.Redis) -> Api:
    return Api(redis_client, KEYS)


@pytest.fixture
def client(api: Api) -> Iterator[TestClient]:
    app = Starlette(routes=[Mount(PREFIX, dashboard(api, secret="test-secret"))])
    with TestClient(app, base_url=LOCAL, follow_redirects=False) as test_client:
        yield test_client
