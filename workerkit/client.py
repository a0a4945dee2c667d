"""Writes jobs to Redis: push one (one round trip), push many (pipelined), schedule for later; each also
awaitable (``apush``, ``apush_bulk``, ``apush_payload``) on a ``redis.asyncio`` client of the running loop.

A job for now goes through the lifecycle's enqueue script (``SADD queues`` + ``LPUSH``); a job for later is
``ZADD schedule <epoch> <payload>``. Client middleware sees every payload first and may change or drop it.
When Redis cannot be reached, a push raises :class:`RedisUnreachable`, naming the URL and what to do.
"""

from __future__ import annotations

import inspect
import os
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import redis
from redis.utils import str_if_bytes

from workerkit import batch_scope, config, direct, registry, topology, unique
from workerkit.connection import REDIS_DOWN
from workerkit.keys import Keys
from workerkit.lifecycle import Lifecycle, stamped
from workerkit.payload import Payload, check_args, encode, new_payload

BULK_CHUNK = 1000
"""Jobs per LPUSH when pushing in bulk."""

Interceptor = Callable[[Payload], None]
_interceptor: Interceptor | None = None


def intercepted() -> bool:
    """Whether pushes go to a test interceptor (``workerkit.testing``) instead of Redis."""
    return _interceptor is not None


def set_interceptor(interceptor: Interceptor | None) -> Interceptor | None:
    """Route pushes to ``interceptor`` instead of Redis (``workerkit.testing`` uses this); returns the old one."""
    global _interceptor
    previous, _interceptor = _interceptor, interceptor
    return previous


def epoch(when: float | int | datetime | None) -> float | None:
    """Epoch seconds of ``when`` (a datetime, naive meaning local time, or a number), or None."""
    if when is None:
        return None
    if isinstance(when, datetime):
        return when.timestamp()
    if isinstance(when, (int, float)) and not isinstance(when, bool):
        return float(when)
    raise TypeError(f"'at' must be epoch seconds or a datetime, not {type(when).__name__}")


def seconds(interval: float | int | timedelta) -> float:
    """Seconds in ``interval`` (a number or a timedelta)."""
    if isinstance(interval, timedelta):
        return interval.total_seconds()
    if isinstance(interval, (int, float)) and not isinstance(interval, bool):
        return float(interval)
    raise TypeError(f"interval must be seconds or a timedelta, not {type(interval).__name__}")


def build_payload(job: object, args: Sequence[Any], overrides: dict[str, Any]) -> Payload:
    """A new payload for ``job`` (a job class, ``@job`` function or class name) with its registered options
    (:func:`workerkit.registry.options`) and the push's ``overrides`` (``queue``, ``retry``, ``tags``,
    ``timeout``; any other key becomes a payload field); None values override nothing. Inside a batch's
    ``jobs()`` block the payload carries the batch's ``bid`` (``workerkit.batch``)."""
    defaults = registry.options(job)
    fields = {name: value for name, value in overrides.items() if value is not None}
    bid = batch_scope.filling()
    if bid is not None:
        fields.setdefault("bid", bid)
    chosen = defaults
    if fields:
        chosen = defaults._replace(**{name: fields.pop(name) for name in _OVERRIDABLE if name in fields})
    if chosen.tags:
        fields["tags"] = list(chosen.tags)
    for option in ("timeout", "result_ttl", "expires_in"):
        value = getattr(chosen, option)
        if value is not None:
            fields[option] = value
    if chosen.unique_for is not None:
        if "bid" in fields:
            raise TypeError(f"{defaults.name} is a unique job (unique_for) and cannot join batch {fields['bid']}: "
                            "a refused duplicate would leave the batch waiting for a job that never runs")
        fields.update(unique.fields(defaults.name, chosen.queue, args, chosen.unique_for, chosen.unique_until,
                                    chosen.unique_args, chosen.unique_while_retrying))
    return new_payload(defaults.name, args, chosen.queue, chosen.retry, fields,
                       created_at=config.timestamp(time.time()))


_OVERRIDABLE = tuple(name for name in registry.JobOptions._fields if name != "name")
"""The options a push may override (the class name is the job's own)."""


class RedisUnreachable(redis.ConnectionError):
    """A push could not reach Redis; the message names the URL and what to do."""


class _ReachingRedis:
    """The context manager :func:`reaching_redis` returns (a class: a generator-based one costs a push 0.6 µs)."""

    __slots__ = ("doing",)

    def __init__(self, doing: str) -> None:
        self.doing = doing

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, traceback: object) -> None:
        if isinstance(exc, REDIS_DOWN):
            url = topology.masked_url(config.current().redis_url)
            raise RedisUnreachable(
                f"cannot {self.doing}: Redis at {url} is unreachable ({exc}). Start a server (`workerkit redis` "
                "runs one), or point REDIS_URL (or WORKERKIT_REDIS_URL) at yours."
            ) from exc


def reaching_redis(doing: str = "push the job") -> _ReachingRedis:
    """Turn redis-py's connection errors into :class:`RedisUnreachable` with a message a person can act on
    (``doing``: what could not be done, "push the job" by default)."""
    return _ReachingRedis(doing)


_lifecycles: dict[tuple[int, Keys], Lifecycle] = {}
_async_lifecycles: weakref.WeakKeyDictionary[redis.Redis, Lifecycle] = weakref.WeakKeyDictionary()


def shared_lifecycle() -> Lifecycle:
    """The lifecycle of the shared client and the configured namespace (made once per pair)."""
    client, keys = config.redis_client(), config.keys()
    found = _lifecycles.get((id(client), keys))
    if found is None or found.conn is not client:
        found = _lifecycles[(id(client), keys)] = Lifecycle(client, keys)
    return found


def _async_lifecycle() -> Lifecycle:
    """The push transitions on the running event loop's ``redis.asyncio`` client: ``enqueue`` and
    ``schedule`` return awaitables."""
    client = cast(redis.Redis, config.async_redis_client())  # only the push transitions are used
    keys = config.keys()
    found = _async_lifecycles.get(client)
    if found is None or found.keys != keys:
        found = _async_lifecycles[client] = Lifecycle(client, keys)
    return found


def _run_client_middleware(payload: Payload) -> Payload | None:
    for middleware in config.current().client_middleware:
        result = middleware(payload)
        if result is None:
            return None
        payload = result
    return payload


def _outgoing(payload: Payload, at: float | None) -> tuple[bool, Payload | None]:
    """Whether the push goes on after the client middleware (False: one dropped it), and the payload to write
    to Redis (None when the test interceptor took it)."""
    if config.current().client_middleware:
        result = _run_client_middleware(payload)
        if result is None:
            return False, None
        payload = result
    if _interceptor is not None:
        if at is not None:
            payload["at"] = at
        _interceptor(payload)
        return True, None
    return True, payload


class NotReplicated(redis.RedisError):
    """A push landed on the primary, but fewer replicas than ``wait_replicas`` confirmed it in time: a
    failover now could lose it. ``jids`` are the jobs pushed, ``confirmed`` how many replicas had them."""

    def __init__(self, jids: list[str], confirmed: int) -> None:
        settings = config.current()
        self.jids, self.confirmed = jids, confirmed
        shown = ", ".join(jids[:3]) + (f" and {len(jids) - 3} more" if len(jids) > 3 else "")
        super().__init__(
            f"pushed job {shown} to the Redis primary, but only {confirmed} of {settings.wait_replicas} "
            f"replica(s) confirmed it within {settings.wait_timeout_ms} ms (wait_replicas): it may be lost if the "
            "primary fails before it replicates. Do not push it again (it is queued); check the replicas "
            "(INFO replication), or lower wait_replicas.")


class _Direct:
    """The client a sync push's one command goes through (``client=`` of the lifecycle's push transitions:
    its script's ``EVALSHA``, with ``SCRIPT LOAD`` first when the server lacks the script; ``ZADD`` for a job
    for later). Each is one round trip of :class:`workerkit.direct.DirectConnections` on the client's own pool,
    raising the errors ``redis.Redis.execute_command`` raises; minus the layers that are pure overhead for
    these commands: the pool's checkout and release, redis-py's per-command metrics hooks (which look their
    provider up again on every call while metrics are off), its ``HIMPORT`` check and its reply-callback
    lookup (none of them has one). While redis-py's metrics are on (``redis.observability``), :func:`_direct`
    keeps the client's own path, so every push is still counted."""

    __slots__ = ("connections",)

    def __init__(self, conn: redis.Redis) -> None:
        self.connections = direct.connections(conn)

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        """``EVALSHA sha numkeys keys... args...``."""
        return self.connections.execute("EVALSHA", sha, numkeys, *keys_and_args)

    def script_load(self, script: str) -> str:
        """``SCRIPT LOAD script``: the script's sha."""
        return str_if_bytes(self.connections.execute("SCRIPT", "LOAD", script))

    def zadd(self, name: str, mapping: Mapping[str, float]) -> Any:
        """``ZADD name score member...`` (a job for later): how many members were new."""
        return self.connections.execute("ZADD", name, *(item for member, score in mapping.items()
                                                        for item in (score, member)))


def _direct(lifecycle: Lifecycle) -> Any:
    """The client a sync push's one command goes through: :class:`_Direct` on the lifecycle's client, or the
    client itself while redis-py's metrics are on."""
    if direct.metered():
        return lifecycle.conn
    return _Direct(lifecycle.conn)


def _write(lifecycle: Lifecycle, payload: Payload, at: float | None, client: Any = None) -> Any:
    """Push to the payload's queue, or to the schedule set when ``at`` is in the future (through ``client``,
    a pipeline or :func:`_direct`'s, when given; an awaitable on an asyncio client)."""
    now = time.time()
    scheduled = at is not None and at > now
    expires_in = payload.pop("expires_in", None)
    if expires_in is not None:  # counted from when the job is due
        payload["expires_at"] = (at if at is not None and scheduled else now) + expires_in
    if "unique_digest" in payload:  # with its lock, in one script: the reply says whether it was pushed
        encoded = encode(payload if scheduled else stamped(payload, now))
        return lifecycle.push_unique(*unique.push_arguments(lifecycle.keys, payload, encoded, at, now), client=client)
    if "bid" in payload:  # registered as pending in its batch in the same script
        encoded = encode(payload if scheduled else stamped(payload, now))
        return lifecycle.batch_add(payload["bid"], payload["queue"], [(payload["jid"], encoded)], batch_scope.TTL,
                                   at if scheduled else None, client=client)
    if at is not None and scheduled:
        return lifecycle.schedule({encode(payload): at}, client=client)
    return lifecycle.enqueue(payload["queue"], [encode(stamped(payload, now))], client=client)


def _pushed(payload: Payload, reply: Any) -> bool:
    """Whether the write's ``reply`` means the job went in (only a unique job's push can be refused; a push
    into a batch that is gone raises :class:`workerkit.batch_scope.BatchError`)."""
    if "bid" in payload:
        _batch_took(payload["bid"], reply)
    return "unique_digest" not in payload or bool(int(reply))


def _batch_took(bid: str, reply: Any) -> None:
    """Raise when a push into batch ``bid`` wrote nothing (its script's reply is 0)."""
    if not int(reply):
        raise batch_scope.BatchError(f"batch {bid} is unknown, expired or succeeded already: the job was not pushed")


def _replicated(pipe: Any) -> Any:
    """Queue ``WAIT`` on ``pipe`` after its pushes when ``wait_replicas`` asks for it (same connection, so it
    waits for exactly those writes); the pipeline's last reply is then the replicas that confirmed them."""
    settings = config.current()
    if settings.wait_replicas:
        pipe.wait(settings.wait_replicas, settings.wait_timeout_ms)
    return pipe


@dataclass
class _Confirmations:
    """The replica confirmations of the pipelines of one push: every pipeline is sent, then the jobs that too
    few replicas confirmed are raised together."""

    short: list[str] = field(default_factory=list)
    fewest: int | None = None

    def add(self, replies: list[Any], jids: list[str]) -> _Confirmations:
        """Note the jobs of one pipeline whose ``WAIT`` (its last reply) counted too few replicas."""
        wanted = config.current().wait_replicas
        if wanted and int(replies[-1]) < wanted:
            self.short += jids
            self.fewest = min(int(replies[-1]), self.fewest if self.fewest is not None else wanted)
        return self

    def check(self) -> None:
        """Raise :class:`NotReplicated` for every job noted."""
        if self.fewest is not None:
            raise NotReplicated(self.short, self.fewest)


def push_payload(payload: Payload, at: float | None = None) -> str | None:
    """Push a built payload (to its queue, or to the schedule set when ``at`` is in the future).

    Returns its jid, or None when it was not pushed: a client middleware dropped it, or it duplicates a unique
    job (``workerkit.unique``). With ``wait_replicas`` configured it returns once that many replicas have the
    job, or raises :class:`NotReplicated`.
    """
    jid: str = payload["jid"]
    kept, outgoing = _outgoing(payload, at)
    if outgoing is not None:
        with reaching_redis():
            lifecycle = shared_lifecycle()
            if config.current().wait_replicas:
                pipe = lifecycle.conn.pipeline(transaction=False)
                _write(lifecycle, outgoing, at, pipe)
                replies = _replicated(pipe).execute()
                kept = _pushed(outgoing, replies[0])
                if kept:  # a refused duplicate wrote nothing a replica could miss
                    _Confirmations().add(replies, [jid]).check()
            else:
                kept = _pushed(outgoing, _write(lifecycle, outgoing, at, _direct(lifecycle)))
    return jid if kept else None


async def apush_payload(payload: Payload, at: float | None = None) -> str | None:
    """:func:`push_payload` without blocking the running event loop (on ``redis.asyncio``)."""
    jid: str = payload["jid"]
    kept, outgoing = _outgoing(payload, at)
    if outgoing is not None:
        with reaching_redis():
            lifecycle = _async_lifecycle()
            if config.current().wait_replicas:
                pipe = lifecycle.conn.pipeline(transaction=False)
                queued = _write(lifecycle, outgoing, at, pipe)
                if inspect.isawaitable(queued):  # a script queued on an asyncio pipeline is awaited to queue it
                    await queued
                replies = await _replicated(pipe).execute()
                kept = _pushed(outgoing, replies[0])
                if kept:  # a refused duplicate wrote nothing a replica could miss
                    _Confirmations().add(replies, [jid]).check()
            else:
                kept = _pushed(outgoing, await _write(lifecycle, outgoing, at))
    return jid if kept else None


def _by_name(
    class_name: str, args: list[Any] | tuple[Any, ...], queue: str | None, at: float | datetime | None,
    retry: bool | int | None, options: dict[str, Any],
) -> tuple[Payload, float | None]:
    payload = build_payload(class_name, args, {"queue": queue, "retry": retry, **options})  # JSON errors first
    registry.bind_arguments(class_name, [args])
    return payload, epoch(at)


def push(
    class_name: str,
    args: list[Any] | tuple[Any, ...] = (),
    *,
    queue: str | None = None,
    at: float | datetime | None = None,
    retry: bool | int | None = None,
    **options: Any,
) -> str | None:
    """Push a job by class name (a registered job or a foreign one) and return its jid.

    ``queue`` and ``retry`` default to the registered class's options (else ``default`` and True); ``at``
    (epoch seconds or datetime) schedules it; other keyword options become payload fields (``tags=[...]``).
    Returns None when the job was not pushed: a client middleware dropped it, or it duplicates a unique job.
    """
    payload, when = _by_name(class_name, args, queue, at, retry, options)
    return push_payload(payload, when)


async def apush(
    class_name: str,
    args: list[Any] | tuple[Any, ...] = (),
    *,
    queue: str | None = None,
    at: float | datetime | None = None,
    retry: bool | int | None = None,
    **options: Any,
) -> str | None:
    """:func:`push`, awaitable: ``await workerkit.apush("app.jobs.Cleanup", [42])``."""
    payload, when = _by_name(class_name, args, queue, at, retry, options)
    return await apush_payload(payload, when)


@dataclass
class _Bulk:
    """A bulk push, checked and encoded: the jids, and either payloads for the one-by-one path (client
    middleware or a test interceptor must see each) or the encoded payloads with their queue or score."""

    jids: list[str]
    when: float | None
    one_by_one: list[Payload]
    encoded: list[str]
    queue: str
    score: float | None
    bid: str | None = None
    """The batch the jobs join (``workerkit.batch``), or None."""


def _bulk(job: object, args_list: Iterable[Sequence[Any]], overrides: dict[str, Any], at: float | None) -> _Bulk:
    defaults = registry.options(job)
    if overrides.get("unique_for") is not None or defaults.unique_for is not None:
        raise TypeError(f"{defaults.name} is a unique job (unique_for): push it one job at a time, with "
                        "perform_async or push, which return None for a duplicate; push_bulk cannot say which were")
    base = build_payload(job, (), overrides)
    class_name, queue = base.pop("class"), base["queue"]
    del base["jid"], base["args"], base["created_at"]
    checked = [check_args(args) for args in args_list]
    registry.bind_arguments(job, checked)
    now = time.time()
    stamp = config.timestamp(now)
    randomness = os.urandom(12 * len(checked)).hex()
    jids = [randomness[index : index + 24] for index in range(0, 24 * len(checked), 24)]
    if config.current().client_middleware or _interceptor is not None:
        payloads = [{"class": class_name, "args": args, "jid": jid, **base, "created_at": stamp}
                    for jid, args in zip(jids, checked, strict=True)]
        return _Bulk(jids, at, payloads, [], queue, None)
    score = at if at is not None and at > now else None
    expires_in = base.pop("expires_in", None)
    if expires_in is not None:  # counted from when the jobs are due, as for one push
        base["expires_at"] = (score if score is not None else now) + expires_in
    encoded = _encode_all(class_name, checked, jids, base, stamp, None if score is not None else stamp)
    return _Bulk(jids, at, [], encoded, queue, score, base.get("bid"))


def _pipelines(bulk: _Bulk, lifecycle: Lifecycle) -> Iterator[tuple[Any, list[Any], list[str]]]:
    """Pipelines of :data:`BULK_CHUNK` payloads per command, ten commands each, with what each command call
    returned (awaitables to await first, on an asyncio client) and the jids it pushes."""
    encoded = bulk.encoded
    for start in range(0, len(encoded), BULK_CHUNK * 10):
        pipe = lifecycle.conn.pipeline(transaction=False)
        queued = []
        for chunk_start in range(start, min(len(encoded), start + BULK_CHUNK * 10), BULK_CHUNK):
            chunk = encoded[chunk_start : chunk_start + BULK_CHUNK]
            if bulk.bid is not None:
                entries = list(zip(bulk.jids[chunk_start : chunk_start + BULK_CHUNK], chunk, strict=True))
                queued.append(lifecycle.batch_add(bulk.bid, bulk.queue, entries, batch_scope.TTL, bulk.score,
                                                  client=pipe))
            elif bulk.score is not None:
                queued.append(lifecycle.schedule(dict.fromkeys(chunk, bulk.score), client=pipe))
            else:
                queued.append(lifecycle.enqueue(bulk.queue, chunk, client=pipe))
        yield pipe, queued, bulk.jids[start : start + BULK_CHUNK * 10]


def push_bulk(
    job: object,
    args_list: Iterable[Sequence[Any]],
    *,
    queue: str | None = None,
    at: float | datetime | None = None,
    retry: bool | int | None = None,
    **options: Any,
) -> list[str]:
    """Push one job per argument list of ``job`` (a job class, ``@job`` function or class name), 1,000 per
    round trip; return the jids in order.

    Every argument list is checked before anything is pushed, so a bad one pushes nothing.
    """
    bulk = _bulk(job, args_list, {"queue": queue, "retry": retry, **options}, epoch(at))
    if bulk.one_by_one:
        return [jid for payload in bulk.one_by_one if (jid := push_payload(payload, bulk.when)) is not None]
    confirmations = _Confirmations()
    with reaching_redis():
        for pipe, _, jids in _pipelines(bulk, shared_lifecycle()):
            confirmations.add(_bulk_replies(bulk, _replicated(pipe).execute()), jids)
    confirmations.check()
    return bulk.jids


async def apush_bulk(
    job: object,
    args_list: Iterable[Sequence[Any]],
    *,
    queue: str | None = None,
    at: float | datetime | None = None,
    retry: bool | int | None = None,
    **options: Any,
) -> list[str]:
    """:func:`push_bulk`, awaitable."""
    bulk = _bulk(job, args_list, {"queue": queue, "retry": retry, **options}, epoch(at))
    if bulk.one_by_one:
        return [jid for payload in bulk.one_by_one if (jid := await apush_payload(payload, bulk.when)) is not None]
    confirmations = _Confirmations()
    with reaching_redis():
        for pipe, queued, jids in _pipelines(bulk, _async_lifecycle()):
            for call in queued:
                if inspect.isawaitable(call):  # a script queued on an asyncio pipeline is awaited to queue it
                    await call
            confirmations.add(_bulk_replies(bulk, await _replicated(pipe).execute()), jids)
    confirmations.check()
    return bulk.jids


def _bulk_replies(bulk: _Bulk, replies: list[Any]) -> list[Any]:
    """A bulk pipeline's ``replies``, once checked that every push into a batch wrote its jobs."""
    if bulk.bid is not None:
        for reply in replies[: len(replies) - (1 if config.current().wait_replicas else 0)]:
            _batch_took(bulk.bid, reply)
    return replies


def _encode_all(
    class_name: str, args_list: list[list[Any]], jids: list[str], base: Payload, created: float,
    enqueued: float | None,
) -> list[str]:
    """Encode payloads that differ only in args and jid, reusing the encoding of the shared fields."""
    head = '{"class":' + encode(class_name) + ',"args":'
    shared = {**base, "created_at": created}
    if enqueued is not None:
        shared["enqueued_at"] = enqueued
    tail = "," + encode(shared)[1:]
    return [f'{head}{encode(args)},"jid":"{jid}"{tail}' for args, jid in zip(args_list, jids, strict=True)]
