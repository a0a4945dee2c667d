"""Which Redis deployment a URL names, and the redis-py clients that speak to it.

Three topologies, one URL each:

- one server: ``redis://[user:pass@]host:port/db``, ``rediss://`` (TLS), ``unix:///path.sock`` (redis-py's own forms);
- Sentinel: ``redis+sentinel://[user:pass@]h1:26379,h2:26379/SERVICE[/db]`` (``rediss+sentinel://`` for TLS to
  the servers and the sentinels); the credentials are the data servers'; ``sentinel_username`` and
  ``sentinel_password`` in the query are the sentinels' own, when they have any;
- Cluster: ``redis+cluster://[user:pass@]h1:7000,h2:7001`` (``rediss+cluster://`` for TLS); any reachable node
  is enough to find the others; a cluster has database 0 only.

The query may also carry redis-py's TLS options (``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile``,
``ssl_cert_reqs`` = none/optional/required, ``ssl_check_hostname`` = true/false) for all three.

After a failover the Sentinel clients ask the sentinels for the new primary, and the Cluster clients look up
the primary of their slot again (``workerkit.slot_owner``), on the next connection after the command that
failed; workerkit's loops retry that one (``workerkit.connection``). Nothing else in workerkit knows which
topology it talks to, except the key names: on a Cluster every key of a namespace carries one hash tag
(``workerkit.keys``), so it lives in one slot and every script, transaction and pipeline stays atomic.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Literal, cast
from urllib.parse import parse_qsl, unquote, urlsplit

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel

from workerkit.connection import single_try
from workerkit.kernel_timeouts import timed_by_kernel
from workerkit.slot_owner import (
    AsyncSlotOwnerConnection,
    AsyncSlotOwnerSSLConnection,
    SlotOwner,
    SlotOwnerConnection,
    SlotOwnerSSLConnection,
)

Kind = Literal["server", "sentinel", "cluster"]

_SCHEMES: dict[str, tuple[Kind, bool]] = {
    "redis+sentinel": ("sentinel", False),
    "rediss+sentinel": ("sentinel", True),
    "redis+cluster": ("cluster", False),
    "rediss+cluster": ("cluster", True),
}
_TLS_OPTIONS = {"ssl_ca_certs": str, "ssl_certfile": str, "ssl_keyfile": str, "ssl_cert_reqs": str,
                "ssl_check_hostname": bool}
_SENTINEL_OPTIONS = ("sentinel_username", "sentinel_password")
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


@dataclass(frozen=True)
class Topology:
    """A parsed Redis URL: the kind of deployment, the addresses to start from and the connection options."""

    kind: Kind
    url: str
    nodes: tuple[tuple[str, int], ...] = ()
    service: str = ""
    """The Sentinel service name (``mymaster``)."""
    db: int = 0
    credentials: dict[str, str] = field(default_factory=dict)
    """``username`` and ``password`` of the data servers, when the URL has them."""
    tls: dict[str, Any] = field(default_factory=dict)
    """``ssl=True`` and the TLS options of the query, for a ``rediss+`` URL (empty otherwise)."""
    sentinel_credentials: dict[str, str] = field(default_factory=dict)

    @property
    def is_cluster(self) -> bool:
        """Whether keys must share hash slots (see ``workerkit.keys``)."""
        return self.kind == "cluster"


@functools.lru_cache(maxsize=64)
def parse(url: str) -> Topology:
    """The topology a URL names; ValueError naming the URL (password masked) and what is wrong with it."""
    scheme = url.partition("://")[0].lower()
    if scheme not in _SCHEMES:
        return Topology("server", url)
    kind, tls = _SCHEMES[scheme]
    try:
        return _parse_multi(url, kind, tls)
    except ValueError as exc:
        raise ValueError(f"Redis URL {masked_url(url)}: {exc}") from None


def _parse_multi(url: str, kind: Kind, tls: bool) -> Topology:
    parts = urlsplit(url)
    credentials, _, hosts = parts.netloc.rpartition("@")
    nodes = tuple(_address(text, 26379 if kind == "sentinel" else 6379) for text in hosts.split(","))
    path = [segment for segment in parts.path.split("/") if segment]
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    options: dict[str, Any] = {"ssl": True} if tls else {}
    for name, value in list(query.items()):
        if name in _TLS_OPTIONS:
            options[name] = _flag(name, value) if _TLS_OPTIONS[name] is bool else value
            del query[name]
    if options and not tls:
        raise ValueError(f"TLS options ({', '.join(sorted(options))}) need the rediss+{kind}:// scheme")
    sentinel_credentials = {name.removeprefix("sentinel_"): query.pop(name) for name in _SENTINEL_OPTIONS
                            if name in query and kind == "sentinel"}
    if query:
        raise ValueError(f"unknown option {next(iter(query))!r} (known: {', '.join(_known(kind))})")
    if kind == "sentinel":
        if not path:
            raise ValueError("the Sentinel service name is missing: redis+sentinel://host:26379,host:26379/mymaster/0")
        service, db = path[0], _db(path[1:])
    else:
        if path and _db(path) != 0:
            raise ValueError("a Redis Cluster has database 0 only: leave the path out")
        service, db = "", 0
    return Topology(kind, url, nodes, service, db, _credentials(credentials), options, sentinel_credentials)


def _known(kind: Kind) -> list[str]:
    return [*_TLS_OPTIONS, *(_SENTINEL_OPTIONS if kind == "sentinel" else ())]


def _address(text: str, default_port: int) -> tuple[str, int]:
    host, colon, port = text.strip().rpartition(":") if ":" in text else (text.strip(), "", "")
    host = host.strip("[]")
    if not host:
        raise ValueError(f"the address {text!r} has no host")
    if colon and not port.isdigit():
        raise ValueError(f"the port of {text!r} is not a number")
    return host, int(port) if colon else default_port


def _db(path: list[str]) -> int:
    if not path:
        return 0
    if len(path) > 1 or not path[0].isdigit():
        raise ValueError(f"the database must be one number, not {'/'.join(path)!r}")
    return int(path[0])


def _flag(name: str, value: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ValueError(f"{name} must be true or false, not {value!r}")


def _credentials(text: str) -> dict[str, str]:
    if not text:
        return {}
    user, colon, password = text.partition(":")
    found = {"username": unquote(user)} if user else {}
    if colon:
        found["password"] = unquote(password)
    elif user:  # redis://secret@host: a password alone, as redis-py reads it
        found = {"password": unquote(user)}
    return found


def masked_url(url: str) -> str:
    """``url`` with any password masked, for logs and messages."""
    scheme, sep, rest = url.partition("://")
    credentials, at, hosts = rest.rpartition("@")
    if not at:
        return url
    user = credentials.split(":", 1)[0] if ":" in credentials else ""
    return f"{scheme}{sep}{user}:***@{hosts}" if user else f"{scheme}{sep}***@{hosts}"


def sync_client(url: str, options: dict[str, Any], slot_key: str) -> redis.Redis:
    """A client of the deployment ``url`` names, with redis-py connection ``options`` (timeouts, keepalive,
    retry), its ``socket_timeout`` kept by the kernel (``workerkit.kernel_timeouts``). On a Cluster it is the
    client of the primary that serves ``slot_key``'s hash slot (``workerkit.slot_owner``), so it serves every
    key with the same hash tag."""
    client = _sync_client(url, options, slot_key)
    timed_by_kernel(client.connection_pool)
    return client


def _sync_client(url: str, options: dict[str, Any], slot_key: str) -> redis.Redis:
    topology = parse(url)
    if topology.kind == "server":
        return redis.Redis.from_url(url, **options)
    connection = {**options, **topology.credentials, **topology.tls}
    if topology.kind == "sentinel":
        return cast(redis.Redis, _sentinel(topology, options, redis.sentinel.Sentinel).master_for(
            topology.service, db=topology.db, **connection))
    owner = SlotOwner(topology.nodes, slot_key, connection)
    tls = connection.pop("ssl", False)
    pool = redis.ConnectionPool(connection_class=SlotOwnerSSLConnection if tls else SlotOwnerConnection,
                                slot_owner=owner, **connection)
    return redis.Redis(connection_pool=pool)


def async_client(url: str, options: dict[str, Any], pool: dict[str, Any], slot_key: str) -> redis.asyncio.Redis:
    """:func:`sync_client` on ``redis.asyncio``; ``pool`` (``max_connections``, ``timeout``) sizes its
    blocking connection pool (a Sentinel client keeps redis-py's own pool)."""
    topology = parse(url)
    if topology.kind == "server":
        return redis.asyncio.Redis.from_pool(redis.asyncio.BlockingConnectionPool.from_url(url, **pool, **options))
    connection = {**options, **topology.credentials, **topology.tls}
    if topology.kind == "sentinel":
        return cast(redis.asyncio.Redis, _sentinel(topology, options, redis.asyncio.sentinel.Sentinel).master_for(
            topology.service, db=topology.db, **connection))
    owner = SlotOwner(topology.nodes, slot_key, connection)
    tls = connection.pop("ssl", False)
    blocking = redis.asyncio.BlockingConnectionPool(
        connection_class=AsyncSlotOwnerSSLConnection if tls else AsyncSlotOwnerConnection, slot_owner=owner,
        **pool, **connection)
    return redis.asyncio.Redis.from_pool(blocking)


def _sentinel(topology: Topology, options: dict[str, Any], sentinel_class: Any) -> Any:
    """redis-py's (sync or asyncio) ``Sentinel`` of the URL's sentinels, with its own credentials and the
    socket options that apply to the connections to the sentinels themselves."""
    own = {name: options[name] for name in _SENTINEL_SOCKET_OPTIONS if name in options}
    retry = single_try(asynchronous=sentinel_class is redis.asyncio.sentinel.Sentinel)  # the next sentinel retries
    return sentinel_class(topology.nodes, sentinel_kwargs={**own, **topology.tls, **topology.sentinel_credentials,
                                                           "retry": retry})


_SENTINEL_SOCKET_OPTIONS = ("socket_connect_timeout", "socket_timeout", "socket_keepalive", "socket_keepalive_options")
