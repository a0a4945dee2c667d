"""What the dashboard says when Redis cannot be reached: where it looked (password masked) and what to do."""

from __future__ import annotations

from urllib.parse import quote

import redis

REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError)
"""The errors that mean "Redis is unreachable" (BusyLoadingError, a server still loading, is a ConnectionError)."""


def masked_url(conn: redis.Redis) -> str:
    """The URL ``conn`` connects to, with its password replaced by ``***``."""
    pool = conn.connection_pool
    options = pool.connection_kwargs
    user = quote(options.get("username") or "", safe="")
    credentials = f"{user}:***@" if options.get("password") else f"{user}@" if user else ""
    database = options.get("db", 0)
    if "path" in options:
        return f"unix://{credentials}{options['path']}?db={database}"
    scheme = "rediss" if issubclass(pool.connection_class, redis.SSLConnection) else "redis"
    host = str(options.get("host", "localhost"))
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{credentials}{host}:{options.get('port', 6379)}/{database}"
