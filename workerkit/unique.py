"""Unique jobs: a push that duplicates a job already queued, scheduled, running or retrying is refused.

A job with ``unique_for=SECONDS`` (class option, ``@job(...)`` or ``.set(...)``) takes a lock in the same Lua
script that pushes it (``scripts/push_unique.lua``): the lock's key is a digest of the job's class, queue and
arguments (all of them, or what ``unique_args(args)`` returns), its value the jid. A push that finds the
lock taken pushes nothing, returns None and counts in ``stat:unique_duplicates``.

The lock ends with the job: when it succeeds (``unique_until="success"``, the default) or when it starts
(``"start"``); a job that dies (retries exhausted, or none) releases it too; a failed run waiting in the retry
set keeps it (``unique_while_retrying=False`` releases it then). Released only by the job that holds it
(``scripts/release_unique.lua``). And it expires by itself ``unique_for`` seconds after the push (plus the
wait of a scheduled job), so a lost release (a worker killed -9 that is never recovered, Redis away) never
leaves a job unpushable for longer. A job recovered after its worker died keeps its jid, so its lock still
fits it: recovery never makes a second copy.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import redis

from workerkit.connection import REDIS_DOWN
from workerkit.keys import Keys, script

log = logging.getLogger("workerkit")

UNTIL = ("success", "start")
"""When a unique job's lock is released: when it succeeds (or dies), or when it starts."""
UniqueArgs = Callable[[list[Any]], Any]
"""``unique_args``: the job's arguments -> the JSON value that decides uniqueness (say ``args[:1]``)."""


def check(unique_for: object, unique_until: object, unique_args: object, where: str) -> None:
    """ValueError or TypeError, naming ``where``, for options a unique job cannot have."""
    if unique_for is not None and (isinstance(unique_for, bool) or not isinstance(unique_for, int | float)
                                   or not math.isfinite(unique_for) or unique_for <= 0):
        raise ValueError(f"{where}unique_for must be a number of seconds above 0, or None, not {unique_for!r}")
    if unique_until not in UNTIL:
        raise ValueError(f"{where}unique_until must be one of {', '.join(UNTIL)}, not {unique_until!r}")
    if unique_args is not None and not callable(unique_args):
        raise TypeError(f"{where}unique_args must be a function of the job's arguments, not {unique_args!r}")


def fields(class_name: str, queue: str, args: Sequence[Any], unique_for: float, unique_until: str,
           unique_args: UniqueArgs | None, while_retrying: bool) -> dict[str, Any]:
    """The payload fields of a unique job: its lock's digest, lifetime and release rule."""
    counted = list(args) if unique_args is None else unique_args(list(args))
    try:
        canonical = json.dumps([class_name, queue, counted], sort_keys=True, separators=(",", ":"),
                               ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"unique_args of {class_name} returned {counted!r}, which JSON cannot carry: {exc}") from None
    digest = hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    found = {"unique_for": unique_for, "unique_digest": digest}
    if unique_until != "success":
        found["unique_until"] = unique_until
    if not while_retrying:
        found["unique_while_retrying"] = False
    return found


def lock_ttl_ms(payload: dict[str, Any], at: float | None, now: float) -> int:
    """How long the lock lives: ``unique_for`` from the push, plus the wait of a scheduled job."""
    wait = max(0.0, at - now) if at is not None else 0.0
    return max(1, int((float(payload["unique_for"]) + wait) * 1000))


def push_arguments(keys: Keys, payload: dict[str, Any], encoded: str, at: float | None,
                   now: float) -> tuple[list[str], list[Any]]:
    """The KEYS and ARGV of ``scripts/push_unique.lua`` for one encoded payload."""
    scheduled = at is not None and at > now
    queue = str(payload["queue"])
    target = keys.schedule if scheduled else keys.queue(queue)
    return ([keys.unique(str(payload["unique_digest"])), keys.queues, target, keys.stat("unique_duplicates")],
            [payload["jid"], lock_ttl_ms(payload, at, now), "schedule" if scheduled else "queue", queue, encoded,
             at if scheduled else 0])


class Releaser:
    """Releases the locks of the unique jobs one worker runs (nothing for other jobs)."""

    def __init__(self, conn: redis.Redis, keys: Keys) -> None:
        self.keys = keys
        self._release = conn.register_script(script("release_unique"))

    def started(self, payload: dict[str, Any]) -> None:
        """The job starts: release a ``unique_until="start"`` lock."""
        if "unique_digest" in payload and payload.get("unique_until") == "start":
            self._let_go(payload)

    def ended(self, payload: dict[str, Any], will_run_again: bool) -> None:
        """The job succeeded, died (``will_run_again`` False) or waits for a retry (True): release the lock
        when its rule says so."""
        if "unique_digest" not in payload or payload.get("unique_until") == "start":
            return
        if not will_run_again or payload.get("unique_while_retrying") is False:
            self._let_go(payload)

    def _let_go(self, payload: dict[str, Any]) -> None:
        try:
            self._release(keys=[self.keys.unique(str(payload["unique_digest"]))], args=[payload.get("jid", "")])
        except REDIS_DOWN as exc:
            log.warning("could not release the job's unique lock (%s): it expires by itself within %s s",
                        exc, payload.get("unique_for"))
