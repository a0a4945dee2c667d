"""Configuration: which Redis, which namespace, and the hooks (middleware, error and death handlers).

The Redis URL comes from ``workerkit.configure(redis_url=...)``, else ``WORKERKIT_REDIS_URL``, else
``REDIS_URL``, else ``redis://127.0.0.1:6379/0``. One server (``redis://``, ``rediss://`` for TLS, ``unix://``),
Sentinel (``redis+sentinel://``) and Cluster (``redis+cluster://``): the URL forms are ``workerkit.topology``'s.
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import threading
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio

from workerkit import compat, topology
from workerkit.keys import Keys
from workerkit.protocols import JobLike
from workerkit.timelimit import check_timeout

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
ASYNC_POOL_SIZE = 50
"""Connections in each event loop's ``redis.asyncio`` pool."""
ASYNC_POOL_WAIT = 30.0
"""Seconds a command waits for a free connection of that pool before it fails."""

ClientMiddleware = Callable[[dict[str, Any]], "dict[str, Any] | None"]
"""Called with each payload before it is pushed; return the payload (possibly changed) or None to drop it."""
ServerMiddleware = (
    Callable[[JobLike, dict[str, Any], Callable[[], None]], None]
    | Callable[[JobLike, dict[str, Any], Callable[[], Awaitable[None]]], Awaitable[None]]
)
"""Wraps each job run: ``mw(job, payload, call_next)``; call ``call_next()`` to run the job. An ``async def``
middleware awaits ``call_next()``; either kind wraps sync and async jobs alike (``workerkit.invoke``)."""
ErrorHandler = Callable[[BaseException, dict[str, Any]], None]
"""Called with every exception a job raises, and its payload (for Sentry and the like)."""
DeathHandler = Callable[[dict[str, Any], "BaseException | None"], None]
"""Called when a job goes to the dead set, with its payload and the last exception."""


def _url_from_env() -> str:
    return os.environ.get("WORKERKIT_REDIS_URL") or os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL


@dataclass
class Config:
    """Everything workerkit is configured with; one instance per process (``workerkit.config.current()``)."""

    redis_url: str = field(default_factory=_url_from_env)
    namespace: str = ""
    client_middleware: list[ClientMiddleware] = field(default_factory=list)
    server_middleware: list[ServerMiddleware] = field(default_factory=list)
    error_handlers: list[ErrorHandler] = field(default_factory=list)
    death_handlers: list[DeathHandler] = field(default_factory=list)
    max_retries: int = 25
    dead_max_jobs: int = 10_000
    dead_timeout: float = 180 * 24 * 3600.0
    payload_format: str = "sidekiq7"
    result_ttl: float | None = None
    """Seconds every job keeps its result unless the job or push sets its own (``workerkit.results``);
    None: only jobs that ask keep one."""
    wait_replicas: int = 0
    """Replicas that must confirm each push before it returns (``WAIT``; 0: don't wait). See docs/deploy.md."""
    wait_timeout_ms: int = 1000
    """How long a push waits for those confirmations before it raises ``workerkit.NotReplicated``."""
    """The job timestamps written: "sidekiq7" (float seconds) or "sidekiq8" (integer ms); see workerkit.compat."""


_config = Config()
_client: redis.Redis | None = None
_lock = threading.Lock()


def current() -> Config:
    """The configuration in effect."""
    return _config


def configure(
    redis_url: str | None = None,
    namespace: str | None = None,
    *,
    client_middleware: list[ClientMiddleware] | None = None,
    server_middleware: list[ServerMiddleware] | None = None,
    error_handlers: list[ErrorHandler] | None = None,
    death_handlers: list[DeathHandler] | None = None,
    max_retries: int | None = None,
    dead_max_jobs: int | None = None,
    dead_timeout: float | None = None,
    payload_format: str | None = None,
    result_ttl: float | None = None,
    wait_replicas: int | None = None,
    wait_timeout_ms: int | None = None,
) -> Config:
    """Change the configuration; arguments left as None keep their value. Returns the configuration."""
    global _client
    if payload_format is not None:
        compat.check_payload_format(payload_format)
    check_timeout(result_ttl, "result_ttl")
    if redis_url is not None:
        topology.parse(redis_url)  # a bad URL is refused here, naming it, not at the first command
    _check_count(wait_replicas, "wait_replicas", 0)
    _check_count(wait_timeout_ms, "wait_timeout_ms", 1)
    with _lock:
        changes: dict[str, Any] = {
            "redis_url": redis_url,
            "namespace": namespace,
            "client_middleware": client_middleware,
            "server_middleware": server_middleware,
            "error_handlers": error_handlers,
            "death_handlers": death_handlers,
            "max_retries": max_retries,
            "dead_max_jobs": dead_max_jobs,
            "dead_timeout": dead_timeout,
            "payload_format": payload_format,
            "result_ttl": result_ttl,
            "wait_replicas": wait_replicas,
            "wait_timeout_ms": wait_timeout_ms,
        }
        for name, value in changes.items():
            if value is not None:
                setattr(_config, name, value)
        if (redis_url is not None or namespace is not None) and _client is not None:
            _client.close()  # on a Cluster the client serves the namespace's hash slot: a new one for a new namespace
            _client = None
    return _config


def _check_count(value: object, name: str, least: int) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
        raise ValueError(f"{name} must be a whole number of at least {least}, not {value!r}")


def reset() -> None:
    """Forget every setting and the client (tests use this between cases)."""
    global _config, _client
    with _lock:
        if _client is not None:
            _client.close()
        _config, _client = Config(), None


SOCKET_TIMEOUT = 5.0
"""Seconds a command may wait for its reply before the connection counts as broken (every blocking command
workerkit sends blocks for less)."""
CONNECT_TIMEOUT = 2.0


def _keepalive_options() -> dict[int, int]:
    """TCP keepalive probes after 5 s of silence, every 2 s, 3 of them: a half-open connection (a peer gone
    in a failover or a partition) is noticed within about 11 s instead of the kernel's 2 hours."""
    wanted = {"TCP_KEEPIDLE": 5, "TCP_KEEPINTVL": 2, "TCP_KEEPCNT": 3}
    return {getattr(socket, name): value for name, value in wanted.items() if hasattr(socket, name)}


def _client_options(overrides: dict[str, Any]) -> dict[str, Any]:
    return {
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "socket_timeout": SOCKET_TIMEOUT,
        "socket_keepalive": True,
        "socket_keepalive_options": _keepalive_options(),
        "health_check_interval": 10,
        **overrides,
    }


def new_redis_client(url: str | None = None, **kwargs: Any) -> redis.Redis:
    """A new ``redis.Redis`` for ``url`` (default: the configured one), with sane socket settings: connect
    and reply timeouts (:data:`CONNECT_TIMEOUT`, :data:`SOCKET_TIMEOUT`), TCP keepalive, and a health check
    (PING) before a command on a connection that was idle for 10 s."""
    return topology.sync_client(url or _config.redis_url, _client_options(kwargs), keys().queues)


def new_async_redis_client(url: str | None = None, **kwargs: Any) -> redis.asyncio.Redis:
    """A new ``redis.asyncio.Redis`` with the settings of :func:`new_redis_client` (for async jobs and the
    awaitable pushes; it belongs to the event loop it is first used on). Its pool holds at most
    :data:`ASYNC_POOL_SIZE` connections, and a command that finds them all busy waits for one (up to
    :data:`ASYNC_POOL_WAIT` seconds) instead of failing, so hundreds of tasks can share it."""
    return topology.async_client(url or _config.redis_url, _client_options(kwargs),
                                 {"max_connections": ASYNC_POOL_SIZE, "timeout": ASYNC_POOL_WAIT}, keys().queues)


_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[tuple[str, str], redis.asyncio.Redis]] = (
    weakref.WeakKeyDictionary())


def async_redis_client() -> redis.asyncio.Redis:
    """The shared ``redis.asyncio.Redis`` of the running event loop for the configured URL: ``async def`` jobs
    use it as sync jobs use :func:`redis_client` (the awaitable pushes do too). One per loop, made on first use."""
    loop = asyncio.get_running_loop()
    target = (_config.redis_url, _config.namespace)
    found = _async_clients.get(loop)
    if found is None or found[0] != target:
        found = _async_clients[loop] = (target, new_async_redis_client(target[0]))
    return found[1]


async def close_async_redis_client() -> None:
    """Close the running loop's client of :func:`async_redis_client`, if it made one (before the loop ends)."""
    found = _async_clients.pop(asyncio.get_running_loop(), None)
    if found is not None:
        await found[1].aclose()


def redis_client() -> redis.Redis:
    """The shared ``redis.Redis`` for the configured URL (created on first use, thread-safe)."""
    global _client
    client = _client
    if client is None:
        with _lock:
            if _client is None:
                _client = new_redis_client()
            client = _client
    return client


def timestamp(epoch_seconds: float) -> float | int:
    """``epoch_seconds`` as the configured payload format stores a job timestamp (``workerkit.compat``)."""
    return compat.timestamp(epoch_seconds, _config.payload_format)


def keys() -> Keys:
    """The :class:`Keys` of the configured namespace (hash-tagged on a Redis Cluster: ``workerkit.keys``)."""
    return _keys_of(_config.namespace, _config.redis_url)


@functools.lru_cache(maxsize=16)
def _keys_of(namespace: str, url: str) -> Keys:
    return Keys(namespace, hash_tag=topology.parse(url).is_cluster)
