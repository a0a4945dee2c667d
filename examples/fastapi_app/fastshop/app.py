"""The shop's FastAPI app: async endpoints that push jobs with the awaitable API, and the dashboard.

Run it with ``uvicorn fastshop.app:app`` (the Procfile beside this package does, on ``$PORT``). The
endpoints never block the event loop: they talk to Redis with ``workerkit.config.async_redis_client()``
and push with ``await Job.aperform_async(...)``, ``await fn.adelay(...)``, ``await fn.adelay_for(...)``
and ``await workerkit.apush_bulk(...)``.

The workerkit dashboard is mounted at ``/workerkit`` behind an ``async def`` auth hook that wants the
token of ``FASTSHOP_DASHBOARD_TOKEN``, sent as ``Authorization: Bearer TOKEN`` or as the password of HTTP
basic auth (any user name: what a browser asks for after the 401). Without the variable the app makes a
random token at start and logs it.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel, Field

import workerkit
from fastshop import jobs
from workerkit import config
from workerkit.web import dashboard

log = logging.getLogger("uvicorn.error")  # uvicorn shows its own logger's lines

FOLLOW_UP_SECONDS = float(os.environ.get("FASTSHOP_FOLLOW_UP_SECONDS", "60"))
"""Seconds between an order and its follow-up email (the end-to-end test shortens it)."""


class OrderIn(BaseModel):
    """What ``POST /orders`` takes."""

    customer: str = Field(min_length=1, max_length=100)
    item: str = Field(min_length=1, max_length=100)
    quantity: int = Field(default=1, ge=1, le=100)


class Order(OrderIn):
    """An order as ``GET /orders/{order_id}`` returns it."""

    order_id: int
    status: str
    receipt: str | None = None


class Placed(BaseModel):
    """What ``POST /orders`` returns: the order's id and the jid of each job it pushed."""

    order_id: int
    jids: dict[str, str]


class WarmIn(BaseModel):
    """What ``POST /cache/warm`` takes: products ``first`` to ``first + count - 1``, ``seconds`` each."""

    first: int = Field(default=0, ge=0)
    count: int = Field(default=20, ge=1, le=10_000)
    seconds: float = Field(default=0.5, ge=0, le=10)


class Warming(BaseModel):
    """What ``POST /cache/warm`` returns: the jids, in product order."""

    jids: list[str]


class Report(BaseModel):
    """``GET /report``: what the jobs have done so far."""

    orders: int
    charged: int
    follow_ups: int
    warmed: int


def token_auth(token: str) -> Callable[[Request], Awaitable[bool]]:
    """An ``async def`` dashboard auth hook accepting ``token`` as a bearer token or basic-auth password.

    It returns False for anything else, so the dashboard answers 401 with a basic-auth challenge and a
    browser asks for the password. A hook that looks a session up (in Redis, in a database) awaits it here.
    """
    expected = token.encode()

    async def check(request: Request) -> bool:
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            given = credentials.strip().encode()
        elif scheme.lower() == "basic":
            try:
                given = base64.b64decode(credentials, validate=True).partition(b":")[2]
            except (binascii.Error, ValueError):
                return False
        else:
            return False
        return hmac.compare_digest(given, expected)

    return check


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def create_app(dashboard_token: str | None = None) -> FastAPI:
    """The app; the dashboard wants ``dashboard_token``, else ``FASTSHOP_DASHBOARD_TOKEN``, else a random token."""
    token = dashboard_token or os.environ.get("FASTSHOP_DASHBOARD_TOKEN") or ""
    generated = not token
    token = token or secrets.token_urlsafe(18)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if generated:
            log.info("workerkit dashboard at /workerkit/: any user name, password %s "
                     "(set FASTSHOP_DASHBOARD_TOKEN to choose it)", token)
        yield
        await config.close_async_redis_client()  # the pushes' pool belongs to this loop

    app = FastAPI(title="fastshop", lifespan=lifespan)

    @app.get("/")
    async def home() -> dict[str, str]:
        """Where to look: the API's interactive docs and the dashboard."""
        return {"api": "/docs", "dashboard": "/workerkit/", "report": "/report"}

    @app.post("/orders", status_code=201)
    async def place_order(order: OrderIn) -> Placed:
        """Store the order, then charge it now, send its receipt now and follow it up later, in workers."""
        conn = config.async_redis_client()
        order_id = int(await conn.incr(jobs.ORDER_IDS))
        await conn.hset(jobs.order_key(order_id), mapping={
            "customer": order.customer, "item": order.item, "quantity": order.quantity, "status": "new"})
        jids = {
            "charge": await jobs.ChargeOrder.aperform_async(order_id),
            "receipt": await jobs.send_receipt.adelay(order_id),
            "follow_up": await jobs.follow_up.adelay_for(FOLLOW_UP_SECONDS, order_id),
        }
        return Placed(order_id=order_id, jids=jids)

    @app.get("/orders/{order_id}")
    async def get_order(order_id: int) -> Order:
        """One order, with its receipt once the job sent it (the receipt job calls this too)."""
        conn = config.async_redis_client()
        fields = await conn.hgetall(jobs.order_key(order_id))
        if not fields:
            raise HTTPException(404, f"no order {order_id}")
        receipt = await conn.get(jobs.receipt_key(order_id))
        found: dict[str, Any] = {_text(key): _text(value) for key, value in fields.items()}
        found.update(order_id=order_id, receipt=None if receipt is None else _text(receipt))
        return Order.model_validate(found)

    @app.post("/cache/warm", status_code=202)
    async def warm(request: WarmIn) -> Warming:
        """Warm many products' cache entries: one ``async def`` job each, pushed in one bulk push."""
        products = range(request.first, request.first + request.count)
        jids = await workerkit.apush_bulk(jobs.warm_cache, [(product, request.seconds) for product in products])
        return Warming(jids=jids)

    @app.get("/report")
    async def report() -> Report:
        """What the jobs have done so far."""
        pipe = config.async_redis_client().pipeline(transaction=False)
        pipe.get(jobs.ORDER_IDS)
        pipe.scard(jobs.CHARGED)
        pipe.scard(jobs.FOLLOW_UPS)
        pipe.scard(jobs.WARMED)
        orders, charged, follow_ups, warmed = await pipe.execute()
        return Report(orders=int(orders or 0), charged=charged, follow_ups=follow_ups, warmed=warmed)

    app.mount("/workerkit", dashboard(auth=token_auth(token)))
    return app


app = create_app()
