"""The control socket: ``procman restart/stop/status`` reach a running ``procman start``.

A unix socket (never TCP) named ``.procman.sock`` in the project folder, or ``$PROCMAN_SOCKET``. The
protocol is one JSON object per line each way: ``{"command": "restart", "names": ["worker.*"]}`` gets
``{"ok": true, "message": ...}`` or ``{"ok": false, "error": ...}``. A socket file left behind by a
procman that died is detected (nobody accepts a connection on it) and replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import json
import os
import socket
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from procman.errors import ConfigError

SOCKET_NAME = ".procman.sock"
Handler = Callable[[str, list[str]], dict[str, Any]]
COMMANDS = ("status", "restart", "stop")


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
    return True


async def serve(path: Path, handler: Handler) -> asyncio.Server:
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
        path.unlink()

    async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = json.loads(await reader.readline())
            command, names = request["command"], request.get("names", [])
            if command not in COMMANDS or not isinstance(names, list):
                raise ValueError(command)
            reply = handler(command, [str(name) for name in names])
        except (ValueError, KeyError, TypeError):
            reply = {"ok": False, "error": "bad request"}
        writer.write(json.dumps(reply).encode() + b"\n")
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    old_umask = os.umask(0o077)
    try:
        return await asyncio.start_unix_server(respond, path=str(path))
    except OSError as error:  # e.g. a path longer than the 107 bytes a unix socket address holds
        reason = error.strerror or str(error)
        message = f"cannot listen here: {reason}; set PROCMAN_SOCKET to another path"
        raise SocketUnavailable(message, str(path)) from None
    finally:
        os.umask(old_umask)


async def close(server: asyncio.Server, path: Path | None) -> None:
    """Stop listening and remove the socket file."""
    server.close()
    await server.wait_closed()
    if path is not None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def request(path: Path, command: str, names: list[str], timeout: float = 10.0) -> dict[str, Any]:
    """Send one command to the procman listening on ``path`` and return its reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(timeout)
        try:
            client.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            raise ConfigError("no procman is running here (start one with 'procman start')", str(path)) from None
        client.sendall(json.dumps({"command": command, "names": names}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = client.recv(65536)
            if not chunk:
                break
            data += chunk
    reply: dict[str, Any] = json.loads(data)
    return reply
