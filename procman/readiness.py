"""Readiness checks: when a started instance counts as ready, tried on the supervisor's clock.

A check is one of ``tcp:PORT`` or ``tcp:HOST:PORT`` (a connection is accepted), ``http://HOST:PORT/PATH`` (a
GET answers 2xx), ``log:REGEX`` (a line of the instance's output matches) or ``exec:COMMAND`` (the command,
run with ``/bin/sh -c`` in the instance's environment, exits 0). ``$VAR``, ``${VAR}`` and ``${VAR:-default}``
in the first three expand from the instance's environment (so ``tcp:$PORT`` is its own port); the shell
expands ``exec`` commands itself. A :class:`Probe` tries the check every ``interval`` seconds until it
passes or ``timeout`` seconds have gone; tcp and http tries are non-blocking sockets polled on the clock,
never blocking the loop, and each gets :data:`ATTEMPT_TIMEOUT` seconds.
"""

from __future__ import annotations

import errno
import os
import re
import select
import signal
import socket
from collections.abc import Callable, Mapping
from typing import NamedTuple, Protocol

from procman.loop import Clock, Timer

ATTEMPT_TIMEOUT = 1.0
SOCKET_POLL = 0.02
MAX_LOG_LINE = 1 << 16
_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


class Check(NamedTuple):
    """A parsed check: ``kind`` is tcp, http, log or exec; ``target`` the rest, as written."""

    kind: str
    target: str
    text: str

    @property
    def pattern(self) -> re.Pattern[bytes]:
        """The compiled regex of a ``log:`` check."""
        return re.compile(self.target.encode())


def parse_check(text: str) -> Check:
    """Parse a ``ready`` value; ValueError with the reason when it is not a check."""
    kind, colon, target = text.partition(":")
    if kind == "http" and target.startswith("//"):
        return Check("http", text, text)
    if kind == "https":
        raise ValueError(f"only http:// is checked (https is not supported), got {text!r}")
    if kind not in ("tcp", "log", "exec") or not colon or not target.strip():
        raise ValueError(f"expected \"tcp:PORT\", \"tcp:HOST:PORT\", \"http://HOST:PORT/PATH\", \"log:REGEX\" or "
                         f"\"exec:COMMAND\", got {text!r}")
    check = Check(kind, target, text)
    if kind == "log":
        try:
            check.pattern  # noqa: B018 - compiled to report a bad regex now, not at the start
        except re.error as error:
            raise ValueError(f"invalid regex in {text!r}: {error}") from None
    return check


def expand(text: str, env: Mapping[str, str]) -> str:
    """``$VAR``, ``${VAR}`` and ``${VAR:-default}`` from ``env`` (an unset variable is empty, as in a shell)."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        found = env.get(name, "")
        return found if found or match.group(2) is None else match.group(2)

    return _VARIABLE.sub(value, text)


class Handle(Protocol):
    """A running ``exec:`` check command: its group can be signalled."""

    def signal_group(self, signum: int) -> bool:
        """Signal the command's process group."""
        ...


RunCommand = Callable[[str, dict[str, str], Callable[[int], None]], Handle]
"""Start a check command with an environment; the callback gets its exit code once it is reaped."""


class Watched(Protocol):
    """An instance's output stream, which a ``log:`` check watches."""

    watcher: Callable[[bytes], None] | None


def _address(target: str) -> tuple[str, int]:
    host, _, port = target.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"not a port: {port!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


class _SocketTry:
    """One non-blocking connection: connected (tcp), or connected and answered 2xx (http, when ``request``)."""

    def __init__(self, host: str, port: int, request: bytes | None, now: float) -> None:
        self._request = request
        self._received = b""
        self._connected = False
        self._give_up_at = now + ATTEMPT_TIMEOUT
        self._sock: socket.socket | None = None
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        self._sock = socket.socket(family, kind, proto)
        self._sock.setblocking(False)
        code = self._sock.connect_ex(address)
        if code not in (0, errno.EINPROGRESS):
            self.close()
            raise OSError(code, os.strerror(code))

    def poll(self, now: float) -> str | None:
        """``""`` when the check passed, a reason when it failed, None while undecided."""
        sock = self._sock
        assert sock is not None
        if not self._connected:
            if not select.select([], [sock], [], 0)[1]:
                return None if now < self._give_up_at else f"no connection within {ATTEMPT_TIMEOUT:g} s"
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                return os.strerror(code)
            self._connected = True
            if self._request is None:
                return ""
            sock.sendall(self._request)
        try:
            chunk = sock.recv(4096)
        except BlockingIOError:
            return None if now < self._give_up_at else f"no answer within {ATTEMPT_TIMEOUT:g} s"
        self._received += chunk
        if b"\n" not in self._received:
            return None if chunk else "the connection closed before an answer"
        status = self._received.split(b"\n", 1)[0].split()
        if len(status) < 2 or not status[0].startswith(b"HTTP/") or not status[1].isdigit():
            return "not an HTTP answer"
        return "" if 200 <= int(status[1]) < 300 else f"HTTP {status[1].decode()}"

    def close(self) -> None:
        """Give up, or done: release the socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class Probe:
    """Tries one instance's check until it passes (``on_ready(description)``) or ``timeout`` seconds have
    gone (``on_fail(description, last reason)``)."""

    def __init__(
        self, check: Check, env: dict[str, str], interval: float, timeout: float, clock: Clock, stream: Watched,
        run_command: RunCommand, on_ready: Callable[[str], None], on_fail: Callable[[str, str], None],
    ) -> None:
        self._check = check
        self._env = env
        self._interval = interval
        self._timeout = timeout
        self._clock = clock
        self._stream = stream
        self._run_command = run_command
        self._on_ready = on_ready
        self._on_fail = on_fail
        self.description = check.text if check.kind == "exec" else expand(check.text, env)
        self._http: tuple[str, int, bytes] | None = None
        self._address: tuple[str, int] | None = None
        if check.kind == "tcp":
            self._address = _address(expand(check.target, env))
        elif check.kind == "http":
            self._http = _http_request(self.description)
        self._timer: Timer | None = None
        self._try: _SocketTry | None = None
        self._command: Handle | None = None
        self._reason = "no answer yet"
        self._done = False
        self._tail = b""
        self._pattern = check.pattern if check.kind == "log" else None
        self._give_up_at = 0.0

    def start(self) -> None:
        """Begin: a log check watches the output from now on; the others try at once."""
        self._give_up_at = self._clock.time() + self._timeout
        if self._check.kind == "log":
            self._reason = "no matching line yet"
            self._stream.watcher = self._watch
            self._timer = self._clock.call_later(self._timeout, self._expire)
        else:
            self._attempt()

    def cancel(self) -> None:
        """Stop trying (the instance exited, or procman is stopping)."""
        self._done = True
        self._release()

    def _release(self) -> None:
        if self._stream.watcher is not None and self._check.kind == "log":
            self._stream.watcher = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._try is not None:
            self._try.close()
            self._try = None
        if self._command is not None:
            self._command.signal_group(signal.SIGKILL)
            self._command = None

    def _succeed(self) -> None:
        self._done = True
        self._release()
        self._on_ready(self.description)

    def _expire(self) -> None:
        self._done = True
        self._release()
        self._on_fail(self.description, self._reason)

    def _next(self, reason: str) -> None:
        self._reason = reason
        if self._clock.time() + self._interval >= self._give_up_at:
            self._timer = self._clock.call_later(max(0.0, self._give_up_at - self._clock.time()), self._expire)
        else:
            self._timer = self._clock.call_later(self._interval, self._attempt)

    def _attempt(self) -> None:
        self._timer = None
        if self._check.kind == "exec":
            self._command = self._run_command(self._check.target, dict(self._env), self._command_exited)
            self._timer = self._clock.call_later(max(0.0, self._give_up_at - self._clock.time()), self._expire)
            return
        if self._http is not None:
            host, port, request = self._http
        else:
            assert self._address is not None
            (host, port), request = self._address, None
        try:
            self._try = _SocketTry(host, port, request, self._clock.time())
        except OSError as error:
            self._next(error.strerror or str(error))
            return
        self._poll()

    def _poll(self) -> None:
        self._timer = None
        assert self._try is not None
        try:
            result = self._try.poll(self._clock.time())
        except OSError as error:
            result = error.strerror or str(error)
        if result is None:
            self._timer = self._clock.call_later(SOCKET_POLL, self._poll)
            return
        self._try.close()
        self._try = None
        if result == "":
            self._succeed()
        else:
            self._next(result)

    def _command_exited(self, code: int) -> None:
        if self._done:
            return
        self._command = None
        if self._timer is not None:
            self._timer.cancel()
        if code == 0:
            self._succeed()
        else:
            self._next(f"exit code {code}")

    def _watch(self, chunk: bytes) -> None:
        lines = (self._tail + chunk).split(b"\n")
        self._tail = lines.pop()[-MAX_LOG_LINE:]
        pattern = self._pattern
        assert pattern is not None
        if any(pattern.search(line) for line in lines):
            self._succeed()


def _http_request(url: str) -> tuple[str, int, bytes]:
    """Host, port and the GET request of an ``http://`` check (ValueError for a URL without a usable port)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        port = parts.port or 80
    except ValueError:
        raise ValueError(f"not a port in {url!r}") from None
    host = parts.hostname or "127.0.0.1"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    request = f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUser-Agent: procman\r\nConnection: close\r\n\r\n"
    return host, port, request.encode()

