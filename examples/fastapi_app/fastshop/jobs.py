"""The shop's background jobs, and the Redis keys of the shop's own data that they and the app share.

Two kinds of job, as a FastAPI codebase has them:

- plain ``def`` jobs (:class:`ChargeOrder`, :func:`follow_up`) run on the worker's threads: blocking
  client libraries (a payment SDK, a sync ORM) are fine there;
- ``async def`` jobs (:func:`send_receipt`, :func:`warm_cache`) run on the worker's event loop, where an
  awaiting job holds no thread: one process keeps hundreds of slow HTTP calls going.

Every job is idempotent (sets and plain writes): workerkit runs a job at least once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

import httpx

import workerkit
from workerkit import Job, config, job

log = logging.getLogger("fastshop")

REDIS_URL = (
    os.environ.get("WORKERKIT_REDIS_URL")
    or os.environ.get("REDIS_URL")
    or f"redis://127.0.0.1:{os.environ.get('PROCMAN_PORT_REDIS', '6379')}/0"
)
"""Where Redis is: ``WORKERKIT_REDIS_URL`` or ``REDIS_URL`` when set, else the Procfile's ``redis`` entry
(procman tells every process its port in ``PROCMAN_PORT_REDIS``), else the usual 6379."""
workerkit.configure(redis_url=REDIS_URL)

PREFIX = "fastshop:"
ORDER_IDS = PREFIX + "order-ids"
"""Counter handing out order ids."""
CHARGED = PREFIX + "charged"
"""SET of the ids of charged orders."""
FOLLOW_UPS = PREFIX + "follow-ups"
"""SET of the ids of orders whose follow-up email went out."""
WARMED = PREFIX + "warmed"
"""SET of the product ids whose cache entry was warmed."""


def order_key(order_id: int) -> str:
    """HASH of one order: customer, item, quantity, status (``new``, then ``charged``)."""
    return f"{PREFIX}order:{order_id}"


def receipt_key(order_id: int) -> str:
    """STRING: the receipt text sent for one order."""
    return f"{PREFIX}receipt:{order_id}"


def app_url() -> str:
    """The web app's address, for jobs that call it: ``FASTSHOP_APP_URL``, else the Procfile's ``web`` entry
    (``PROCMAN_PORT_WEB``), else uvicorn's default port."""
    return os.environ.get("FASTSHOP_APP_URL") or f"http://127.0.0.1:{os.environ.get('PROCMAN_PORT_WEB', '8000')}"


class ChargeOrder(Job):
    """Charge an order's card: a plain ``def`` job, as a blocking payment SDK would need."""

    retry = 3

    def perform(self, order_id: int) -> None:
        time.sleep(0.05)  # stands in for the payment provider's round trip
        pipe = config.redis_client().pipeline()
        pipe.hset(order_key(order_id), "status", "charged")
        pipe.sadd(CHARGED, order_id)
        pipe.execute()
        log.info("charged order %s", order_id)


@job(queue="mail", retry=5, timeout=10)
async def send_receipt(order_id: int) -> None:
    """Email the receipt: fetch the order from the app's own API over HTTP (awaited), then store the text.

    ``timeout=10`` cancels the task, so an HTTP call that hangs ends the attempt (and it is retried)."""
    async with httpx.AsyncClient(base_url=app_url(), timeout=5) as http:
        response = await http.get(f"/orders/{order_id}")
        response.raise_for_status()
    order = response.json()
    text = f"Receipt for order {order_id}: {order['quantity']} x {order['item']} for {order['customer']}"
    await config.async_redis_client().set(receipt_key(order_id), text)
    log.info("receipt sent for order %s", order_id)


@job
def follow_up(order_id: int) -> None:
    """Ask how the order went, some time after it was placed: a plain ``def`` function job."""
    config.redis_client().sadd(FOLLOW_UPS, order_id)
    log.info("follow-up sent for order %s", order_id)


@job
async def warm_cache(product_id: int, seconds: float) -> None:
    """Warm one product's cache entry from a slow upstream (``seconds`` of awaiting stand in for it)."""
    await asyncio.sleep(seconds)
    await config.async_redis_client().sadd(WARMED, product_id)
