"""Which batch (``workerkit.batch``) the code running in this context belongs to: the batch a ``with
batch.jobs():`` block fills (every push inside joins it), and the payload of the batch job or callback the
worker runs. Kept apart from ``workerkit.batch`` so the client and the job runner can read it without
importing the batch API.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

from workerkit.payload import Payload

TTL = 30 * 24 * 3600
"""Seconds a batch's keys live after its last block of jobs opened (Sidekiq Pro keeps batches 30 days)."""

_filling: contextvars.ContextVar[str | None] = contextvars.ContextVar("workerkit_batch_filling", default=None)
_running: contextvars.ContextVar[Payload | None] = contextvars.ContextVar("workerkit_batch_running", default=None)


class BatchError(Exception):
    """A batch cannot be opened or added to; the message names it and why."""


def filling() -> str | None:
    """The bid of the batch whose ``jobs()`` block this thread or task is in, or None."""
    return _filling.get()


@contextmanager
def fill(bid: str | None) -> Iterator[None]:
    """Make pushes in this thread or task join batch ``bid`` (None: no batch) while the block runs."""
    token = _filling.set(bid)
    try:
        yield
    finally:
        _filling.reset(token)


def running() -> Payload | None:
    """The payload of the batch job or batch callback this thread or task runs, or None."""
    return _running.get()


@contextmanager
def run(payload: Payload) -> Iterator[None]:
    """Note, while the block runs, that this thread or task runs ``payload`` (a batch job or callback)."""
    token = _running.set(payload)
    try:
        yield
    finally:
        _running.reset(token)


def of_payload(payload: Payload) -> bool:
    """Whether ``payload`` is a batch job or a batch callback (what :func:`run` is for)."""
    return "bid" in payload or "batch_callback" in payload
