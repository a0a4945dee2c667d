"""The example's FastAPI app in this process, through httpx's ASGITransport, on a real Redis and no worker:
the awaitable pushes land in Redis as payloads a worker would run, and the dashboard wants the token."""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from types import ModuleType
from typing import Any, TypeVar, cast

import httpx
import pytest
import redis
from fa_support import TOKEN, make_importable

from workerkit import config
from workerkit.keys import Keys

pytest.importorskip("fastapi", minversion="0.110")  # a minversion: tests/fastapi alone imports as a namespace

KEYS = Keys()
T = TypeVar("T")


@pytest.fixture
def shop(wk: redis.Redis, redis_url: str) -> Iterator[ModuleType]:
    """The example's app module, with workerkit pointed at the test's empty database."""
    make_importable()
    import fastshop.app

    config.reset()  # importing fastshop.jobs configured workerkit from the environment; the test's Redis wins
    config.configure(redis_url=redis_url)
    yield fastshop.app
    config.reset()


def call(app: Any, scenario: Callable[[httpx.AsyncClient], Awaitable[T]]) -> T:
    """Run ``scenario`` with a client of ``app`` on a new event loop, closing the loop's Redis pool after."""
    async def session() -> T:
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                return await scenario(client)
        finally:
            await config.close_async_redis_client()

    return asyncio.run(session())


def payloads(conn: redis.Redis, queue: str) -> list[dict[str, Any]]:
    """The jobs in ``queue``, oldest first."""
    return [json.loads(raw) for raw in reversed(conn.lrange(KEYS.queue(queue), 0, -1))]


def test_an_order_pushes_its_three_jobs_with_the_awaitable_api(shop: ModuleType, wk: redis.Redis) -> None:
    async def scenario(client: httpx.AsyncClient) -> tuple[httpx.Response, httpx.Response]:
        placed = await client.post("/orders", json={"customer": "ada", "item": "book", "quantity": 2})
        return placed, await client.get("/orders/1")

    before = time.time()
    placed, order = call(shop.create_app(TOKEN), scenario)
    assert placed.status_code == 201, placed.text
    jids = placed.json()["jids"]
    assert placed.json()["order_id"] == 1
    assert order.json() == {"order_id": 1, "customer": "ada", "item": "book", "quantity": 2, "status": "new",
                            "receipt": None}

    [charge] = payloads(wk, "default")
    assert (charge["class"], charge["args"], charge["jid"]) == ("fastshop.jobs.ChargeOrder", [1], jids["charge"])
    [receipt] = payloads(wk, "mail")
    assert (receipt["class"], receipt["args"], receipt["jid"]) == ("fastshop.jobs.send_receipt", [1], jids["receipt"])
    assert receipt["retry"] == 5 and receipt["timeout"] == 10
    [(raw, due)] = cast("list[tuple[bytes, float]]", wk.zrange(KEYS.schedule, 0, -1, withscores=True))
    follow_up = json.loads(raw)
    assert (follow_up["class"], follow_up["args"], follow_up["jid"]) == (
        "fastshop.jobs.follow_up", [1], jids["follow_up"])
    assert before + shop.FOLLOW_UP_SECONDS <= due <= time.time() + shop.FOLLOW_UP_SECONDS
    assert wk.smembers(KEYS.queues) == {b"default", b"mail"}


def test_a_bad_order_pushes_nothing(shop: ModuleType, wk: redis.Redis) -> None:
    async def scenario(client: httpx.AsyncClient) -> list[int]:
        bad = await client.post("/orders", json={"customer": "ada", "item": "book", "quantity": 0})
        missing = await client.get("/orders/7")
        return [bad.status_code, missing.status_code]

    assert call(shop.create_app(TOKEN), scenario) == [422, 404]
    assert wk.keys("*") == []


def test_warming_pushes_one_job_per_product_in_one_bulk_push(shop: ModuleType, wk: redis.Redis) -> None:
    async def scenario(client: httpx.AsyncClient) -> tuple[httpx.Response, httpx.Response]:
        warming = await client.post("/cache/warm", json={"first": 10, "count": 20, "seconds": 0.25})
        return warming, await client.get("/report")

    warming, report = call(shop.create_app(TOKEN), scenario)
    assert warming.status_code == 202, warming.text
    queued = payloads(wk, "default")
    assert [job["jid"] for job in queued] == warming.json()["jids"]
    assert [job["args"] for job in queued] == [[product, 0.25] for product in range(10, 30)]
    assert {job["class"] for job in queued} == {"fastshop.jobs.warm_cache"}
    assert report.json() == {"orders": 0, "charged": 0, "follow_ups": 0, "warmed": 0}


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (None, 401),
        ("Bearer not the token", 401),
        (_basic("ops", "not the token"), 401),
        ("Basic %%%", 401),
        ("Token " + TOKEN, 401),
        ("Bearer " + TOKEN, 200),
        (_basic("anyone", TOKEN), 200),
    ],
)
def test_the_dashboard_wants_the_token(shop: ModuleType, authorization: str | None, status: int) -> None:
    headers = {"authorization": authorization} if authorization else {}

    async def scenario(client: httpx.AsyncClient) -> tuple[httpx.Response, httpx.Response]:
        return await client.get("/workerkit/", headers=headers), await client.get("/")

    page, home = call(shop.create_app(TOKEN), scenario)
    assert page.status_code == status
    if status == 401:
        assert page.headers["www-authenticate"].startswith("Basic ")
    else:
        assert "<title>Dashboard · workerkit</title>" in page.text
    assert home.json() == {"api": "/docs", "dashboard": "/workerkit/", "report": "/report"}  # the app stays open


def test_the_hook_is_async_and_without_a_configured_token_a_random_one_guards(
    shop: ModuleType, monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert inspect.iscoroutinefunction(shop.token_auth(TOKEN))  # awaited on the loop, not in the thread pool
    monkeypatch.setenv("FASTSHOP_DASHBOARD_TOKEN", TOKEN)
    from_env = shop.create_app()
    monkeypatch.delenv("FASTSHOP_DASHBOARD_TOKEN")
    generated = shop.create_app()

    def statuses(app: Any) -> list[int]:
        async def scenario(client: httpx.AsyncClient) -> list[int]:
            return [(await client.get("/workerkit/", headers=headers)).status_code
                    for headers in ({}, {"authorization": "Bearer"}, {"authorization": "Bearer " + TOKEN})]

        return call(app, scenario)

    assert statuses(from_env) == [401, 401, 200]
    assert statuses(generated) == [401, 401, 401]
