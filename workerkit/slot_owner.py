"""Clients of the one Redis Cluster primary that serves a namespace's hash slot, wherever it moves.

On a Cluster every key of a workerkit namespace carries one hash tag (``workerkit.keys``), so all of them
live in one slot, on one primary. workerkit therefore speaks to that primary through an ordinary
``redis.Redis`` (or ``redis.asyncio.Redis``) whose connections look the primary up when they connect: Lua
scripts, MULTI, pipelines, blocking moves and ``WAIT`` all work as on a single server, which redis-py's
``RedisCluster`` does not allow in pipelines (it refuses EVALSHA there).

The lookup asks any node it knows (those of the URL, and every node named in a redirection since) for a key
of the slot: the primary answers, any other node answers MOVED with the primary's address. A connection
forgets the address (so the next one looks again) when it cannot reach the primary, or when the node it
reaches says the slot moved (MOVED: a failover promoted a replica) or that the cluster is down; the command
then fails as a ConnectionError, which workerkit's loops retry (``workerkit.connection``), as they do on a
single server that restarts.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.connection
import redis.exceptions

from workerkit.connection import single_try

MAX_REDIRECTS = 3
"""Redirections one lookup follows before it gives up (the cluster is still failing over)."""
_SLOT_MOVED = (redis.exceptions.MovedError, redis.exceptions.AskError, redis.exceptions.ClusterDownError)
_PROBE_OPTIONS = ("username", "password", "socket_connect_timeout", "socket_timeout", "ssl", "ssl_ca_certs",
                  "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs", "ssl_check_hostname")


class SlotOwner:
    """Where the primary of the slot of ``key`` is: found by asking the nodes, remembered until forgotten."""

    def __init__(self, nodes: Iterable[tuple[str, int]], key: str, options: dict[str, Any]) -> None:
        self.key = key
        self.known: dict[tuple[str, int], None] = dict.fromkeys(nodes)
        self.probe_options = {name: options[name] for name in _PROBE_OPTIONS if name in options}
        """How the probes connect; each tries a node once (the next node is the retry)."""
        self._address: tuple[str, int] | None = None
        self._lock = threading.Lock()

    def address(self) -> tuple[str, int]:
        """The primary's address (looked up now if forgotten); ConnectionError when no node can say."""
        with self._lock:
            if self._address is None:
                self._address = self._look_up()
            return self._address

    async def aaddress(self) -> tuple[str, int]:
        """:meth:`address` without blocking the running event loop."""
        found = self._address
        if found is None:
            found = self._address = await self._alook_up()
        return found

    def forget(self, moved_to: tuple[str, int] | None = None) -> None:
        """Look the primary up again on the next connection (``moved_to``: a node a redirection named)."""
        self._address = None
        if moved_to is not None:
            self.known[moved_to] = None

    def _look_up(self) -> tuple[str, int]:
        errors: list[str] = []
        for start in list(self.known):
            node = start
            for _ in range(MAX_REDIRECTS):
                try:
                    with redis.Redis(host=node[0], port=node[1], retry=single_try(),
                                     **self.probe_options) as probe:
                        probe.exists(self.key)
                    return node
                except redis.exceptions.MovedError as moved:
                    node = (moved.host, int(moved.port))
                    self.known[node] = None
                except (redis.ConnectionError, redis.TimeoutError, *_SLOT_MOVED) as exc:
                    errors.append(f"{node[0]}:{node[1]}: {exc}")
                    break
        raise redis.ConnectionError(f"no Redis Cluster node serves the slot of {self.key!r} now ({'; '.join(errors)})")

    async def _alook_up(self) -> tuple[str, int]:
        errors: list[str] = []
        for start in list(self.known):
            node = start
            for _ in range(MAX_REDIRECTS):
                probe = redis.asyncio.Redis(host=node[0], port=node[1], retry=single_try(asynchronous=True),
                                            **self.probe_options)
                try:
                    await probe.exists(self.key)
                    return node
                except redis.exceptions.MovedError as moved:
                    node = (moved.host, int(moved.port))
                    self.known[node] = None
                except (TimeoutError, redis.ConnectionError, redis.TimeoutError, *_SLOT_MOVED) as exc:
                    errors.append(f"{node[0]}:{node[1]}: {exc}")
                    break
                finally:
                    await probe.aclose()
        raise redis.ConnectionError(f"no Redis Cluster node serves the slot of {self.key!r} now ({'; '.join(errors)})")


def _moved(owner: SlotOwner, exc: redis.exceptions.ResponseError) -> redis.ConnectionError:
    """Forget the primary after ``exc`` (MOVED, ASK, CLUSTERDOWN) and say why, as a ConnectionError."""
    target = (exc.host, int(exc.port)) if isinstance(exc, redis.exceptions.AskError) else None
    owner.forget(target)
    return redis.ConnectionError(f"the namespace's hash slot is not served here any more ({exc}); looking again")


class SlotOwnerConnection(redis.Connection):
    """A connection to the primary of a :class:`SlotOwner`'s slot (see the module's docstring)."""

    def __init__(self, *, slot_owner: SlotOwner, **kwargs: Any) -> None:
        self.slot_owner = slot_owner
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]  # redis-py's sync connections have no hints

    def _connect(self) -> Any:
        self.host, self.port = self.slot_owner.address()
        try:
            return super()._connect()  # type: ignore[no-untyped-call]
        except OSError:
            self.slot_owner.forget()
            raise

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        """The reply; a redirection or CLUSTERDOWN becomes a ConnectionError after the primary is forgotten."""
        try:
            return super().read_response(*args, **kwargs)
        except _SLOT_MOVED as exc:
            self.disconnect()  # type: ignore[no-untyped-call]
            raise _moved(self.slot_owner, exc) from exc


class SlotOwnerSSLConnection(SlotOwnerConnection, redis.SSLConnection):
    """:class:`SlotOwnerConnection` over TLS."""


class AsyncSlotOwnerConnection(redis.asyncio.Connection):
    """:class:`SlotOwnerConnection` on ``redis.asyncio``."""

    def __init__(self, *, slot_owner: SlotOwner, **kwargs: Any) -> None:
        self.slot_owner = slot_owner
        super().__init__(**kwargs)

    async def _connect(self) -> None:
        self.host, self.port = await self.slot_owner.aaddress()
        try:
            await super()._connect()  # type: ignore[no-untyped-call]
        except OSError:
            self.slot_owner.forget()
            raise

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        """The reply; a redirection or CLUSTERDOWN becomes a ConnectionError after the primary is forgotten."""
        try:
            return await super().read_response(*args, **kwargs)
        except _SLOT_MOVED as exc:
            await self.disconnect(nowait=True)
            raise _moved(self.slot_owner, exc) from exc


class AsyncSlotOwnerSSLConnection(AsyncSlotOwnerConnection, redis.asyncio.connection.SSLConnection):
    """:class:`AsyncSlotOwnerConnection` over TLS."""
