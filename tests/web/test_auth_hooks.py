"""Auth hooks on a real uvicorn server: a sync hook runs in the thread pool, an async one on the event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from dashboard_helpers import PREFIX
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Mount
from starlette.types import ASGIApp

from workerkit.api import Api
from workerkit.web import Auth, dashboard

DEADLINE = 30.0


@pytest.fixture
def serve(api: Api, live_server: Callable[[ASGIApp], str]) -> Callable[[Auth], str]:
    """``serve(auth)``: the dashboard behind ``auth`` on a real uvicorn server; returns its base URL."""
    return lambda auth: live_server(Starlette(routes=[Mount(PREFIX, dashboard(api, auth=auth))])) + PREFIX


def test_a_blocking_sync_hook_does_not_stall_other_requests(serve: Callable[[Auth], str]) -> None:
    released = threading.Event()
    blocking = threading.Event()

    def slow_session_check(request: Request) -> bool:
        if "x-slow" in request.headers:
            blocking.set()
            released.wait(DEADLINE)  # a slow database, say
        return True

    base = serve(slow_session_check)
    with ThreadPoolExecutor(1) as pool, httpx.Client(timeout=DEADLINE) as client:
        slow = pool.submit(client.get, base + "/stats.json", headers={"x-slow": "1"})
        assert blocking.wait(DEADLINE)
        try:
            fast = httpx.get(base + "/stats.json", timeout=5)  # answered while the slow check still blocks
            assert fast.status_code == 200 and not slow.done()
        finally:
            released.set()
        assert slow.result(DEADLINE).status_code == 200


def test_a_sync_hook_runs_outside_the_event_loop(serve: Callable[[Auth], str]) -> None:
    """What Django's ORM checks before a query (else SynchronousOnlyOperation): no running loop in this thread."""
    def django_like(request: Request) -> bool:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return True
        return False

    base = serve(django_like)
    assert httpx.get(base + "/queues", timeout=DEADLINE).status_code == 200


def test_an_async_hook_is_awaited_on_the_loop(serve: Callable[[Auth], str]) -> None:
    async def on_the_loop(request: Request) -> bool:
        asyncio.get_running_loop()
        return request.headers.get("x-role") == "admin"

    base = serve(on_the_loop)
    assert httpx.get(base + "/queues", timeout=DEADLINE).status_code == 401
    assert httpx.get(base + "/queues", headers={"x-role": "admin"}, timeout=DEADLINE).status_code == 200
