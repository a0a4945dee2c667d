"""A Redis that stops answering holds a thread of the dashboard, never the event loop of the app it is mounted in."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import redis
from dashboard_helpers import KEYS, PREFIX
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from workerkit.api import Api
from workerkit.server import running_server
from workerkit.web import dashboard

STALL = 8.0
"""The dashboard's socket timeout: how long its page waits on the frozen server."""


def test_a_frozen_redis_does_not_stall_the_host_app(tmp_path: Path, live_server: Callable[[ASGIApp], str]) -> None:
    async def home(request: Request) -> PlainTextResponse:
        return PlainTextResponse("the user's app")

    entered = threading.Event()

    async def note_the_page(request: Request) -> bool:  # runs on the loop just before the page does
        entered.set()
        return True

    with running_server(tmp_path / "redis", kind="embedded") as server:
        conn = redis.Redis.from_url(server.url, socket_timeout=STALL)
        conn.ping()  # connected: the page's next command goes to a server that no longer answers
        app = Starlette(routes=[Route("/", home), Mount(PREFIX, dashboard(Api(conn, KEYS), auth=note_the_page))])
        base = live_server(app)
        os.kill(server.process.pid, signal.SIGSTOP)
        try:
            with ThreadPoolExecutor(1) as pool:
                page = pool.submit(httpx.get, base + PREFIX + "/queues", timeout=3 * STALL)
                assert entered.wait(STALL)
                own = httpx.get(base + "/", timeout=STALL / 2)  # answered while the page waits on Redis
                assert own.text == "the user's app" and not page.done()
                answer = page.result(3 * STALL)
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
        assert answer.status_code == 503 and "Redis is unreachable" in answer.text
