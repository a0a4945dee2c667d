"""One command, one round trip, on a connection kept out of its redis-py pool: the hot paths' way to Redis
(a sync push, a worker thread blocked on a queue).

redis-py 8 takes a pool's lock twice per command and records connection metrics on every checkout and
release: a sync push took 91 to 100 µs of CPU here with them, 75 to 90 without (``docs/benchmarks.md``).
:class:`DirectConnections` keeps the connections it took from the pool in a list of its own instead
(``deque`` ``pop``/``append``, atomic under the GIL) and gives each back clean: any exception between the
send and the end of the reply (a broken socket, a ``JobTimeout`` raised in the thread, a KeyboardInterrupt)
disconnects the connection, so none ever holds a reply nobody read. Like the pool, it checks a connection
before each use for a socket the server closed. It keeps a few (:data:`KEPT_AT_MOST`, at most a quarter of
the pool's limit, which they count against) and gives the rest back to the pool. The connection stays the
pool's own kind, so TLS, Sentinel and slot routing, the retry policy, the health check after 10 idle
seconds and the reconnect after a fork all work as on redis-py's path.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import deque
from typing import Any

import redis
from redis.observability.providers import get_observability_instance

KEPT_AT_MOST = 16
"""The most connections one pool's :class:`DirectConnections` keeps (never more than a quarter of the pool's
``max_connections``, 100 by default in redis-py 8); past that, a connection goes back to the pool."""


class DirectConnections:
    """The connections of one pool kept for direct round trips (see the module's docstring)."""

    def __init__(self, pool: redis.ConnectionPool) -> None:
        self._pool = weakref.ref(pool)  # the pool's entry in ``_by_pool`` must not keep it alive
        self._idle: deque[Any] = deque()
        self._pid = os.getpid()
        self._keep = min(KEPT_AT_MOST, pool.max_connections // 4)
        """How many connections to keep: the pool counts them as in use, so they take from its limit."""

    def execute(self, *args: Any) -> Any:
        """Send ``args`` as one command and return its reply (raw: no reply callback), retrying as the
        connection's retry policy says, with a disconnect between tries, as ``redis.Redis.execute_command``
        does. Raises what redis-py raises: ``redis.ResponseError`` for an error reply, ``ConnectionError`` or
        ``TimeoutError`` when Redis cannot be reached."""
        connection = self._take()
        try:
            packed = connection.pack_command(*args)
            return connection.retry.call_with_retry(lambda: _round_trip(connection, packed),
                                                    lambda _: connection.disconnect())
        except redis.ResponseError:
            raise  # an error reply, read in full: the connection is clean
        except BaseException:
            connection.disconnect()  # a reply may be on its way: never reuse the socket it comes on
            raise
        finally:
            self._give_back(connection)

    def _give_back(self, connection: Any) -> None:
        if len(self._idle) < self._keep:  # a race may keep one or two more: harmless
            self._idle.append(connection)
            return
        pool = self._pool()
        if pool is not None:
            pool.release(connection)

    def _take(self) -> Any:
        if self._pid != os.getpid():  # a forked child: the parent's sockets are not this process's to use
            self._idle, self._pid = deque(), os.getpid()
        try:
            connection = self._idle.pop()
        except IndexError:  # none kept is free: take one more from the pool
            pass
        else:
            _reopen_if_closed(connection)
            return connection
        pool = self._pool()
        if pool is None:
            raise redis.ConnectionError("the client of these connections was closed and collected")
        return pool.get_connection()


def _reopen_if_closed(connection: Any) -> None:
    """Disconnect ``connection`` (its next send connects again) when the server closed it meanwhile (a
    restart, a failover, ``CLIENT KILL``, its idle ``timeout``): its socket then reads as ready, at EOF. The
    pool checks each connection it hands out the same way; without it the next command would fail."""
    if connection._sock is None:  # not connected (given back after an error): the send connects, once
        return
    try:
        if connection.can_read():  # nothing else can be there: each is given back with no reply unread
            connection.disconnect()
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        connection.disconnect()


def _round_trip(connection: Any, packed: list[bytes]) -> Any:
    connection.send_packed_command(packed)
    return connection.read_response()


def metered() -> bool:
    """Whether redis-py's own metrics are on (``redis.observability``): the callers then keep redis-py's path,
    so that every command is counted."""
    return get_observability_instance().get_provider_manager() is not None


_by_pool: weakref.WeakKeyDictionary[redis.ConnectionPool, DirectConnections] = weakref.WeakKeyDictionary()
_by_pool_lock = threading.Lock()


def connections(client: redis.Redis) -> DirectConnections:
    """The :class:`DirectConnections` of ``client``'s pool (one per pool, made on first use)."""
    pool = client.connection_pool
    found = _by_pool.get(pool)
    if found is None:
        with _by_pool_lock:
            found = _by_pool.setdefault(pool, DirectConnections(pool))
    return found
