"""workerkit's clients keep their socket timeouts in the kernel (``workerkit.kernel_timeouts``): no poll before
each send and receive, and a reply or a send that takes too long still fails with ``redis.TimeoutError``,
against a real server and a frozen one (SIGSTOP)."""

from __future__ import annotations

import math
import os
import signal
import socket
import struct
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
import redis
import redis.sentinel

from workerkit import config
from workerkit.kernel_timeouts import KernelTimed
from workerkit.server import running_server
from workerkit.slot_owner import SlotOwnerConnection


def _kernel_timeouts(sock: socket.socket) -> tuple[float, float]:
    """The socket's SO_RCVTIMEO and SO_SNDTIMEO, in seconds."""
    size = struct.calcsize("ll")
    seconds = []
    for option in (socket.SO_RCVTIMEO, socket.SO_SNDTIMEO):
        whole, micro = struct.unpack("ll", sock.getsockopt(socket.SOL_SOCKET, option, size))
        seconds.append(whole + micro / 1_000_000)
    return seconds[0], seconds[1]


def test_a_workerkit_connection_is_blocking_with_the_kernel_keeping_its_timeout(redis_url: str) -> None:
    client = config.new_redis_client(redis_url)
    assert client.rpush("kernel:list", "a") == 1
    connection = client.connection_pool.get_connection()
    try:
        assert connection._sock.gettimeout() is None  # Python polls before nothing
        assert _kernel_timeouts(connection._sock) == (config.SOCKET_TIMEOUT, config.SOCKET_TIMEOUT)
    finally:
        client.connection_pool.release(connection)
    assert client.blmove("kernel:nothing", "kernel:list", 0.2, "RIGHT", "LEFT") is None  # blocks, times out in Redis
    assert client.lrange("kernel:list", 0, -1) == [b"a"]
    client.close()


def test_a_timeout_shorter_than_the_kernels_unit_still_bounds_the_wait(redis_url: str) -> None:
    received, sent = _kernel_timeouts_for(redis_url, 1e-9)  # rounded up to the kernel's tick
    assert 0 < received <= 0.1 and 0 < sent <= 0.1  # a timeval of zero would wait for ever
    assert _kernel_timeouts_for(redis_url, 2.5) == (2.5, 2.5)


def _kernel_timeouts_for(redis_url: str, timeout: float) -> tuple[float, float]:
    """The kernel's timeouts on a socket of a workerkit client with ``socket_timeout=timeout`` (the socket
    alone, before redis-py's handshake, which a timeout of a nanosecond would fail)."""
    connection = config.new_redis_client(redis_url, socket_timeout=timeout).connection_pool.make_connection()
    sock = connection._connect()
    try:
        return _kernel_timeouts(sock)
    finally:
        sock.close()


@pytest.fixture
def frozen(tmp_path: Path) -> Iterator[tuple[redis.Redis, Callable[[], AbstractContextManager[None]]]]:
    """A client (0.5 s timeouts, no retries) connected to a server of its own, and ``freeze()``: a context in
    which the server is stopped (SIGSTOP) with its connections open, as a hung primary."""
    with running_server(tmp_path / "data", kind="auto") as server:
        client = config.new_redis_client(server.url, socket_timeout=0.5, retry=None)
        assert client.ping() is True

        @contextmanager
        def freeze() -> Iterator[None]:
            os.kill(server.process.pid, signal.SIGSTOP)
            try:
                yield
            finally:
                os.kill(server.process.pid, signal.SIGCONT)

        yield client, freeze
        client.close()


def test_a_frozen_server_fails_the_command_with_a_timeout_and_the_next_one_reconnects(
        frozen: tuple[redis.Redis, Callable[[], AbstractContextManager[None]]]) -> None:
    client, freeze = frozen
    with freeze():
        started = time.monotonic()
        with pytest.raises(redis.TimeoutError, match=r"Timeout reading from .*no reply in 0\.5 s"):
            client.ping()
        waited = time.monotonic() - started
    assert 0.4 <= waited < 5  # the kernel's timeout, not forever
    assert client.ping() is True  # the timed-out connection was dropped: a fresh one, no stale reply
    assert client.set("after", "thaw") is True and client.get("after") == b"thaw"


def test_a_send_the_frozen_server_never_reads_fails_with_a_timeout(
        frozen: tuple[redis.Redis, Callable[[], AbstractContextManager[None]]]) -> None:
    client, freeze = frozen
    with freeze():
        started = time.monotonic()
        with pytest.raises(redis.TimeoutError, match="Timeout writing to"):
            client.set("big", b"x" * (64 << 20))  # more than both sides' socket buffers hold
        assert time.monotonic() - started < 10
    assert client.exists("big") == 0  # the half-sent command was dropped with its connection
    assert client.ping() is True


def test_tls_and_a_timeout_that_is_not_a_bound_keep_redis_pys_own_sockets() -> None:
    tls = config.new_redis_client("rediss://127.0.0.1:1/0")
    assert tls.connection_pool.connection_class is redis.SSLConnection  # SSL retries a read the kernel timed out
    for unbounded in (None, 0, -1.0, math.inf, math.nan, True):
        connection = config.new_redis_client("redis://127.0.0.1:1/0", socket_timeout=unbounded).connection_pool
        made = connection.make_connection()
        assert isinstance(made, KernelTimed) and made.kernel_timeout is None
        assert made.socket_timeout is unbounded  # left to redis-py, untouched


def test_every_topology_gets_kernel_timeouts() -> None:
    sentinel = config.new_redis_client("redis+sentinel://127.0.0.1:1/mymaster").connection_pool.connection_class
    assert issubclass(sentinel, KernelTimed) and issubclass(sentinel, redis.sentinel.SentinelManagedConnection)
    cluster = config.new_redis_client("redis+cluster://127.0.0.1:1").connection_pool.connection_class
    assert issubclass(cluster, KernelTimed) and issubclass(cluster, SlotOwnerConnection)
    unix = config.new_redis_client("unix:///nowhere.sock").connection_pool.connection_class
    assert issubclass(unix, KernelTimed) and issubclass(unix, redis.UnixDomainSocketConnection)
