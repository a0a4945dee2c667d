"""Job results, opt-in: a job whose ``result_ttl`` is set (on the class, ``@job(result_ttl=...)``, one push's
``.set(result_ttl=...)``, or every job through ``configure(result_ttl=...)``) leaves a record of its run in
Redis for that many seconds: ``running`` when it starts, then ``done`` with the JSON value ``perform``
returned, ``retrying`` or ``failed`` with the error. ``workerkit.result(jid)`` (``await aresult(jid)`` from
async code) reads it.

The record is ``STRING result:<jid>`` (JSON, expiring after the TTL). It is written before the job is
acknowledged, so a result can only say ``done`` for a job that finished; a job run again after a crash
overwrites its record. A value ``perform`` returns that JSON cannot carry fails the job (``ResultError``)
rather than be lost.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Literal

import redis

from workerkit import config
from workerkit.payload import Payload, check_args
from workerkit.timelimit import check_timeout

Status = Literal["running", "done", "retrying", "failed"]
STATUSES: tuple[Status, ...] = ("running", "done", "retrying", "failed")


class ResultError(TypeError):
    """A job that keeps its result returned a value JSON cannot carry (the message names the path)."""


class ResultNotFound(LookupError):
    """No result record for the jid: the job has not started, does not keep results, or its record expired."""


@dataclass(frozen=True)
class JobResult:
    """What a job's run left: its status, the value it returned (``done``), or its error (``retrying``,
    ``failed``), and when each step happened (epoch seconds)."""

    jid: str
    status: Status
    value: Any = None
    error_class: str | None = None
    error_message: str | None = None
    started_at: float | None = None
    finished_at: float | None = None

    @property
    def finished(self) -> bool:
        """Whether the job ended for good (``done`` or ``failed``)."""
        return self.status in ("done", "failed")


def ttl_of(payload: Payload, class_ttl: float | None) -> float | None:
    """Seconds to keep the job's result: the payload's ``result_ttl``, else the class's, else the configured
    default; None: keep none. A payload value that is not a valid number counts as unset."""
    if "result_ttl" not in payload:  # most jobs: no check
        return class_ttl or config.current().result_ttl
    try:
        own = check_timeout(payload.get("result_ttl"), "result_ttl")
    except (TypeError, ValueError):
        own = None
    return own or class_ttl or config.current().result_ttl


def checked_value(value: Any, class_name: str) -> Any:
    """``value`` if JSON can carry it; ResultError naming the job and the path otherwise."""
    try:
        check_args([value])
    except TypeError as exc:
        detail = str(exc).replace("job argument args[0]", "the result", 1)
        raise ResultError(f"{class_name} keeps its result, but {detail}") from None
    return value


def record(conn: redis.Redis, jid: str, ttl: float, fields: dict[str, Any]) -> None:
    """Write the job's result record (JSON ``fields``), expiring after ``ttl`` seconds."""
    conn.set(config.keys().result(jid), json.dumps(fields, ensure_ascii=False), px=max(1, int(ttl * 1000)))


def running(jid: str, started_at: float) -> dict[str, Any]:
    """The record of a job that started."""
    return {"jid": jid, "status": "running", "started_at": started_at}


def done(jid: str, started_at: float, value: Any) -> dict[str, Any]:
    """The record of a job that returned ``value``."""
    return {"jid": jid, "status": "done", "value": value, "started_at": started_at, "finished_at": time.time()}


def failed(jid: str, started_at: float, exc: BaseException, final: bool) -> dict[str, Any]:
    """The record of a failed run: ``failed`` when it will not run again, else ``retrying``."""
    return {"jid": jid, "status": "failed" if final else "retrying", "error_class": _error_class(exc),
            "error_message": str(exc), "started_at": started_at, "finished_at": time.time()}


def _error_class(exc: BaseException) -> str:
    kind = type(exc)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def _parsed(jid: str, raw: bytes | str | None) -> JobResult:
    if raw is None:
        raise ResultNotFound(
            f"no result for job {jid}: it has not started yet, it does not keep results (set result_ttl on the "
            "job, the push or configure), or its result expired after its result_ttl")
    fields = json.loads(raw)
    status = fields.get("status")
    if status not in STATUSES:
        raise ResultNotFound(f"the result record of job {jid} is not one workerkit wrote: {raw!r:.80}")
    return JobResult(jid, status, fields.get("value"), fields.get("error_class"), fields.get("error_message"),
                     fields.get("started_at"), fields.get("finished_at"))


def _key(jid: str) -> str:
    if not isinstance(jid, str) or not jid:
        raise TypeError(f"a jid is a non-empty string, not {jid!r}")
    return config.keys().result(jid)


def result(jid: str) -> JobResult:
    """The result record of job ``jid``; :class:`ResultNotFound` when there is none (not started, no
    ``result_ttl``, or expired)."""
    return _parsed(jid, config.redis_client().get(_key(jid)))


async def aresult(jid: str) -> JobResult:
    """:func:`result` without blocking the running event loop."""
    return _parsed(jid, await config.async_redis_client().get(_key(jid)))
