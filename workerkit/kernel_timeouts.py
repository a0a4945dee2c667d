"""Reply and send timeouts kept by the kernel (``SO_RCVTIMEO``, ``SO_SNDTIMEO``) instead of by Python.

A Python socket with a timeout polls before each send and each receive: for one Redis command, two more
system calls, and each lets go of the GIL. In a worker whose threads all talk to Redis, every release with
other threads waiting hands the GIL over and takes it back: at 10 threads running jobs that send one command
each, about 20 futex calls per job against 7 to 15 without the polls, and 13 to 21% fewer jobs per second
(``docs/benchmarks.md``). A blocking socket with the kernel's timeouts set makes the send and the
receive alone, and a command whose reply does not come within ``socket_timeout`` still fails with
``redis.TimeoutError`` and drops its connection, as before.

TLS connections keep Python's timeouts: a blocking SSL socket retries a read that the kernel timed out
instead of failing it. A ``socket_timeout`` that is not a finite number above 0 (None, 0, a negative one) is
left to redis-py as well.
"""

from __future__ import annotations

import functools
import math
import socket
import struct
from typing import Any

import redis
from redis.connection import AbstractConnection


def timed_by_kernel(pool: redis.ConnectionPool) -> None:
    """Have the connections ``pool`` opens from now on keep their ``socket_timeout`` in the kernel (TCP and
    Unix sockets; a TLS pool is left as it is). Call it before the pool's first connection."""
    pool.connection_class = _kernel_timed(pool.connection_class)


@functools.cache
def _kernel_timed(connection_class: type[AbstractConnection]) -> type[AbstractConnection]:
    if issubclass(connection_class, redis.SSLConnection) or not hasattr(socket, "SO_RCVTIMEO"):
        return connection_class
    return type(f"KernelTimed{connection_class.__name__}", (KernelTimed, connection_class), {})


class KernelTimed(AbstractConnection):
    """Mixed in before a redis-py connection class by :func:`timed_by_kernel`: its socket is blocking, and
    the kernel fails a send or a receive that waits longer than ``socket_timeout``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        timeout = kwargs.get("socket_timeout")
        bounded = (isinstance(timeout, int | float) and not isinstance(timeout, bool)
                   and 0 < timeout < math.inf)  # else redis-py's own handling
        self.kernel_timeout: float | None = timeout if bounded else None
        if self.kernel_timeout is not None:
            kwargs["socket_connect_timeout"] = kwargs.get("socket_connect_timeout") or timeout
            kwargs["socket_timeout"] = None  # Python then polls before nothing
        super().__init__(*args, **kwargs)

    def _connect(self) -> Any:
        sock = super()._connect()  # type: ignore[safe-super,no-untyped-call]  # the concrete class after this mixin has it
        if self.kernel_timeout is not None:
            # at least 1 µs: a timeval of zero would mean no timeout at all
            seconds, micro = divmod(max(1, round(self.kernel_timeout * 1_000_000)), 1_000_000)
            timeval = struct.pack("ll", seconds, micro)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
        return sock

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        """The reply; a receive the kernel timed out raises ``redis.TimeoutError`` (redis-py reports it as a
        ConnectionError), after redis-py dropped the connection."""
        try:
            return super().read_response(*args, **kwargs)
        except redis.ConnectionError as exc:
            if _timed_out(exc):
                raise redis.TimeoutError(f"Timeout reading from {self._host_error()}: no reply in "  # type: ignore[no-untyped-call]
                                         f"{self.kernel_timeout} s") from exc
            raise

    def send_packed_command(self, *args: Any, **kwargs: Any) -> None:
        """Send a packed command; a send the kernel timed out raises ``redis.TimeoutError``."""
        try:
            super().send_packed_command(*args, **kwargs)  # type: ignore[no-untyped-call]
        except redis.ConnectionError as exc:
            if _timed_out(exc):
                raise redis.TimeoutError(f"Timeout writing to {self._host_error()}") from exc  # type: ignore[no-untyped-call]
            raise


def _timed_out(exc: BaseException) -> bool:
    """Whether ``exc`` comes from a socket call the kernel's timeout ended (EAGAIN on a blocking socket)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, BlockingIOError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
