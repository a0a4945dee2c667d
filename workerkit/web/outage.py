"""What the dashboard says when Redis cannot be reached: where it looked (password masked) and what to do."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import redis
import redis.sentinel

from workerkit.connection import CLUSTER_DOWN
from workerkit.slot_owner import SlotOwner

REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError, *CLUSTER_DOWN)
"""The errors that mean "Redis is unreachable" (BusyLoadingError, a server still loading, is a ConnectionError;
so is a Sentinel's "no primary known")."""


def masked_url(conn: redis.Redis) -> str:
    """The URL ``conn`` connects to, with its password replaced by ``***``: one server's, or the addresses a
    Sentinel or Cluster client starts from."""
    pool = conn.connection_pool
    options = pool.connection_kwargs
    credentials = _credentials(options)
    owner = options.get("slot_owner")
    if isinstance(owner, SlotOwner):  # a Cluster: the nodes it starts from
        return f"redis+cluster://{credentials}{','.join(_host_port(host, port) for host, port in owner.known)}"
    database = options.get("db", 0)
    if isinstance(pool, redis.sentinel.SentinelConnectionPool):
        sentinels = ",".join(_host_port(**{name: sentinel.connection_pool.connection_kwargs[name]
                                           for name in ("host", "port")})
                             for sentinel in pool.sentinel_manager.sentinels)
        return f"redis+sentinel://{credentials}{sentinels}/{pool.service_name}/{database}"
    if "path" in options:
        return f"unix://{credentials}{options['path']}?db={database}"
    scheme = "rediss" if issubclass(pool.connection_class, redis.SSLConnection) else "redis"
    address = _host_port(options.get("host", "localhost"), options.get("port", 6379))
    return f"{scheme}://{credentials}{address}/{database}"


def _credentials(options: dict[str, Any]) -> str:
    user = quote(options.get("username") or "", safe="")
    return f"{user}:***@" if options.get("password") else f"{user}@" if user else ""


def _host_port(host: object, port: object) -> str:
    text = str(host)
    return f"[{text}]:{port}" if ":" in text else f"{text}:{port}"
