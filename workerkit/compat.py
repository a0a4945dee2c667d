"""Sidekiq wire compatibility: the two generations of job timestamps, read both ways, written one way.

Sidekiq 6 and 7 store a job's ``created_at``, ``enqueued_at``, ``failed_at`` and ``retried_at`` as epoch
seconds (a float); Sidekiq 8 stores them as integer epoch milliseconds. workerkit reads both everywhere
(:func:`to_seconds`), and writes the generation chosen with ``workerkit.configure(payload_format=...)``:

- ``"sidekiq7"`` (the default): float seconds, which Sidekiq 6, 7 and 8 all read;
- ``"sidekiq8"``: integer milliseconds, which only Sidekiq 8 reads correctly (older versions compute
  queue latency from them as if they were seconds).

Sorted-set scores (schedule, retry, dead) and the heartbeat's ``beat`` and ``run_at`` are epoch seconds in
every generation. A failed job's ``error_backtrace`` is stored as Sidekiq 6.3+ stores it (base64 of zlib of
the JSON list of lines), the one form Sidekiq 7+ reads. ``docs/sidekiq.md`` explains how to share one Redis
with a Sidekiq app.
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import Literal, cast, get_args

PayloadFormat = Literal["sidekiq7", "sidekiq8"]
PAYLOAD_FORMATS: tuple[str, ...] = get_args(PayloadFormat)

MILLISECONDS_FROM = 1e11
"""A timestamp at least this large is epoch milliseconds: seconds reach it in the year 5138, milliseconds
passed it in 1973."""


def check_payload_format(name: object) -> PayloadFormat:
    """``name`` if it is a known payload format; ValueError naming the argument otherwise."""
    if name not in PAYLOAD_FORMATS:
        raise ValueError(f"payload_format must be one of {', '.join(PAYLOAD_FORMATS)}, not {name!r}")
    return cast(PayloadFormat, name)


def timestamp(epoch_seconds: float, payload_format: str = "sidekiq7") -> float | int:
    """``epoch_seconds`` as ``payload_format`` stores a job timestamp (``workerkit.config.timestamp`` applies
    the configured one)."""
    if payload_format == "sidekiq8":
        return int(epoch_seconds * 1000)
    return epoch_seconds


def compress_backtrace(lines: list[str]) -> str:
    """``lines`` as Sidekiq stores a backtrace: base64(zlib(JSON)); the dashboard decodes it again."""
    return base64.b64encode(zlib.compress(json.dumps(lines).encode())).decode("ascii")


def to_seconds(value: object) -> float | None:
    """A job timestamp of either generation as epoch seconds; None when it is not a number."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    return value / 1000.0 if value >= MILLISECONDS_FROM else float(value)
