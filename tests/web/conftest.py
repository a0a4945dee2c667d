"""Fixtures for dashboard tests: the API over a real server, and the dashboard mounted at /workerkit."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest
import redis
import uvicorn
from dashboard_helpers import KEYS, LOCAL, PREFIX
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient
from starlette.types import ASGIApp

from workerkit.api import Api
from workerkit.web import dashboard


@pytest.fixture
def api(redis_client: redis.Redis) -> Api:
    return Api(redis_client, KEYS)


@pytest.fixture
def client(api: Api) -> Iterator[TestClient]:
    # A budget no action here outlasts, however loaded the machine: each ends in its request, with its notice.
    app = Starlette(routes=[Mount(PREFIX, dashboard(api, secret="test-secret", bulk_budget=30))])
    with TestClient(app, base_url=LOCAL, follow_redirects=False) as test_client:
        yield test_client


@pytest.fixture
def live_server() -> Iterator[Callable[[ASGIApp], str]]:
    """``live_server(app)``: ``app`` on a real uvicorn server in a thread; returns its base URL.

    The listening socket exists before the server thread starts, so a request made at once waits in the
    kernel's backlog until uvicorn accepts it: no polling for readiness.
    """
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app: ASGIApp) -> str:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        servers.append((server, thread))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(30)
