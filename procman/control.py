"""The control socket: ``procman restart/stop/status`` reach a running ``procman start``.

A unix socket (never TCP) named ``.procman.sock`` in the project folder, or ``$PROCMAN_SOCKET``. The
protocol is one JSON object per line each way: ``{"command": "restart", "names": ["worker.*"]}`` (with
``"rolling": true`` for one at a time) gets ``{"ok": true, "message": ...}`` or ``{"ok": false, "error":
...}``. A socket file left behind by a procman that died is detected (nobody accepts a connection on it)
and replaced.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import socket
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from procman.errors import ConfigError

if TYPE_CHECKING:
    from procman.child import Readers

SOCKET_NAME = ".procman.sock"
Handler = Callable[[str, list[str], bool], dict[str, Any]]
"""Answers a command: its name, the names it is about, and whether a restart is rolling."""
COMMANDS = ("status", "restart", "stop")
MAX_REQUEST = 65536
REPLY_TIMEOUT = 2.0


class SocketUnavailable(ConfigError):
    """The socket cannot be created (path too long, read-only folder): procman runs without it."""


def socket_path(root: Path, environ: Mapping[str, str]) -> Path:
    """``$PROCMAN_SOCKET``, else ``.procman.sock`` in the project folder."""
    return Path(environ["PROCMAN_SOCKET"]) if environ.get("PROCMAN_SOCKET") else root / SOCKET_NAME


def select(labels: list[str], patterns: list[str]) -> list[int] | str:
    """Indexes of the labels matched by any pattern (``web``, ``web.2``, ``worker.*``); an error text if none."""
    if not patterns:
        return "name at least one process (wildcards like 'worker.*' work)"
    chosen: list[int] = []
    for pattern in patterns:
        found = [
            index
            for index, label in enumerate(labels)
            if fnmatch.fnmatchcase(label, pattern) or fnmatch.fnmatchcase(label.rpartition(".")[0], pattern)
        ]
        if not found:
            return f"no process matches {pattern!r} (running: {', '.join(labels)})"
        chosen.extend(index for index in found if index not in chosen)
    return chosen


def _is_live(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        except PermissionError:
            raise SocketUnavailable("a control socket here belongs to another user (permission denied), so procman "
                                    "cannot tell whether it is live; remove it or set PROCMAN_SOCKET to another "
                                    "path", str(path)) from None
    return True


class Server:
    """A listening control socket, served by the event loop: one JSON request line, one reply, close."""

    def __init__(self, path: Path, handler: Handler, readers: Readers) -> None:
        self._path = path
        self._handler = handler
        self._readers = readers
        self._pending: dict[socket.socket, bytes] = {}
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o077)
        try:
            self._listener.bind(str(path))
            self._listener.listen(16)
        except OSError as error:  # e.g. a path longer than the 107 bytes a unix socket address holds
            self._listener.close()
            reason = error.strerror or str(error)
            message = f"cannot listen here: {reason}; set PROCMAN_SOCKET to another path"
            raise SocketUnavailable(message, str(path)) from None
        finally:
            os.umask(old_umask)
        self._listener.setblocking(False)
        readers.add_reader(self._listener.fileno(), self._accept)

    def _accept(self) -> None:
        try:
            connection, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        connection.setblocking(False)
        self._pending[connection] = b""
        self._readers.add_reader(connection.fileno(), lambda: self._read(connection))

    def _read(self, connection: socket.socket) -> None:
        try:
            chunk = connection.recv(MAX_REQUEST)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        data = self._pending[connection] + chunk
        if chunk and b"\n" not in data and len(data) < MAX_REQUEST:
            self._pending[connection] = data
            return
        self._readers.remove_reader(connection.fileno())
        del self._pending[connection]
        with connection:
            if not chunk and not data:
                return
            reply = self._respond(data)
            connection.settimeout(REPLY_TIMEOUT)
            with contextlib.suppress(OSError):
                connection.sendall(json.dumps(reply).encode() + b"\n")

    def _respond(self, data: bytes) -> dict[str, Any]:
        try:
            request = json.loads(data)
            command, names, rolling = request["command"], request.get("names", []), request.get("rolling", False)
            if command not in COMMANDS or not isinstance(names, list) or not isinstance(rolling, bool):
                raise ValueError(command)
            return self._handler(command, [str(name) for name in names], rolling)
        except (ValueError, KeyError, TypeError):
            return {"ok": False, "error": "bad request"}

    def close(self) -> None:
        """Stop listening and remove the socket file."""
        for connection in self._pending:
            self._readers.remove_reader(connection.fileno())
            connection.close()
        self._pending.clear()
        self._readers.remove_reader(self._listener.fileno())
        self._listener.close()
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()


def serve(path: Path, handler: Handler, readers: Readers) -> Server:
    """Listen on ``path``, replacing a stale socket; refuse if another procman is listening there."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(mode):
            raise ConfigError("exists and is not a socket; remove it or set PROCMAN_SOCKET", str(path))
        if _is_live(path):
            raise ConfigError("another procman is already running here (its control socket is live)", str(path))
        try:
            path.unlink()
        except PermissionError:
            raise SocketUnavailable("a stale control socket here belongs to someone else and cannot be removed; "
                                    "remove it or set PROCMAN_SOCKET to another path", str(path)) from None
    return Server(path, handler, readers)


def request(path: Path, command: str, names: list[str], timeout: float = 10.0, rolling: bool = False,
            ) -> dict[str, Any]:
    """Send one command to the procman listening on ``path`` and return its reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(timeout)
        try:
            client.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            raise ConfigError("no procman is running here (start one with 'procman start')", str(path)) from None
        message: dict[str, Any] = {"command": command, "names": names}
        if rolling:
            message["rolling"] = True
        client.sendall(json.dumps(message).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = client.recv(65536)
            if not chunk:
                break
            data += chunk
    reply: dict[str, Any] = json.loads(data)
    return reply
