"""``workerkit redis``: it runs the embedded Valkey unless told otherwise, remembers which server wrote its
folder and says what to do when another cannot load it, needs a password beyond loopback, and outlives its
clients on shutdown (after TERM it keeps serving until the other clients have disconnected, then saves)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
import redis
from polling import wait_for

from workerkit.server import free_port, running_server, wait_for_ping

DEADLINE = 60.0
WORKERKIT = str(Path(sys.executable).with_name("workerkit"))


class Launcher:
    """A ``workerkit redis`` process with its output in a file."""

    started: ClassVar[list[Launcher]] = []

    def __init__(self, data_dir: Path, *options: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.log = data_dir.parent / f"launcher-{self.port}.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [WORKERKIT, "redis", "--port", str(self.port), "--dir", str(data_dir), *options],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            )
        Launcher.started.append(self)
        wait_for_ping(self.port, time.monotonic() + DEADLINE, self.process)

    def client(self, password: str | None = None) -> redis.Redis:
        return redis.Redis(port=self.port, password=password, socket_timeout=10)

    def stop(self) -> str:
        """TERM, wait for the exit (code 0), and return the output."""
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(DEADLINE) == 0
        return self.log.read_text(errors="replace")

    def wait_for_output(self, text: str) -> None:
        deadline = time.monotonic() + DEADLINE
        while text not in self.log.read_text(errors="replace"):
            assert self.process.poll() is None, self.log.read_text(errors="replace")
            assert time.monotonic() < deadline, f"no {text!r} in {self.log.read_text(errors='replace')!r}"
            time.sleep(0.05)


@pytest.fixture
def launcher_dir(tmp_path: Path) -> Iterator[Path]:
    """The data folder; a launcher left running is killed, and its server follows (parent-death signal)."""
    yield tmp_path / "redis"
    for launcher in Launcher.started:
        if launcher.process.poll() is None:
            launcher.process.kill()
            launcher.process.wait(DEADLINE)
    Launcher.started.clear()


def test_term_keeps_serving_until_clients_leave_and_the_data_is_saved(launcher_dir: Path) -> None:
    launcher = Launcher(launcher_dir)
    client = launcher.client()
    client.set("before", "1")
    launcher.process.send_signal(signal.SIGTERM)
    launcher.wait_for_output("waiting for 1 client(s) to disconnect")
    assert client.set("after-term", "written while draining") is True
    client.close()
    assert launcher.process.wait(DEADLINE) == 0
    with running_server(launcher_dir) as restarted:
        again = redis.Redis.from_url(restarted.url)
        assert again.mget("before", "after-term") == [b"1", b"written while draining"]
        again.close()


def test_a_second_signal_stops_at_once(launcher_dir: Path) -> None:
    launcher = Launcher(launcher_dir, "--drain-timeout", "600")
    client = launcher.client()
    client.ping()
    launcher.process.send_signal(signal.SIGINT)
    launcher.wait_for_output("waiting for 1 client(s)")
    launcher.process.send_signal(signal.SIGTERM)
    assert launcher.process.wait(DEADLINE) == 0
    assert "second signal: stopping the server now" in launcher.log.read_text()
    with pytest.raises(redis.ConnectionError):
        client.ping()


def test_the_drain_timeout_bounds_the_wait(launcher_dir: Path) -> None:
    launcher = Launcher(launcher_dir, "--drain-timeout", "0.5")
    client = launcher.client()
    client.ping()
    launcher.process.send_signal(signal.SIGTERM)
    assert launcher.process.wait(DEADLINE) == 0
    assert "0.5 s passed with clients still connected; stopping the server" in launcher.log.read_text()


def test_without_clients_term_stops_at_once(launcher_dir: Path) -> None:
    launcher = Launcher(launcher_dir)
    launcher.process.send_signal(signal.SIGTERM)
    assert launcher.process.wait(DEADLINE) == 0
    assert "waiting for" not in launcher.log.read_text()


def test_a_negative_drain_timeout_is_a_usage_error(tmp_path: Path) -> None:
    result = subprocess.run([WORKERKIT, "redis", "--drain-timeout", "-1", "--dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=DEADLINE)
    assert (result.returncode, result.stderr) == (2, "workerkit redis: --drain-timeout must be 0 or more\n")


def run_launcher(data_dir: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """``workerkit redis`` expected to exit by itself (refused, or its server failed)."""
    return subprocess.run([WORKERKIT, "redis", "--port", str(free_port()), "--dir", str(data_dir), *options],
                          capture_output=True, text=True, timeout=DEADLINE)


def server_of(client: redis.Redis) -> str:
    info = client.info("server")
    return f"Valkey {info['valkey_version']}" if "valkey_version" in info else f"Redis {info['redis_version']}"


needs_redis_server = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server on PATH")


@needs_redis_server
def test_the_embedded_valkey_runs_even_when_redis_server_is_installed(launcher_dir: Path) -> None:
    launcher = Launcher(launcher_dir)
    client = launcher.client()
    assert server_of(client).startswith("Valkey ")
    client.close()
    launcher.stop()
    assert json.loads((launcher_dir / "workerkit-server.json").read_text())["choice"] == "embedded"


@needs_redis_server
def test_redis_refusing_valkeys_data_says_what_to_do_and_keeps_the_data(launcher_dir: Path) -> None:
    """The demo after ``apt-get install redis-server``: Redis 7.0 cannot read Valkey 9's append-only file."""
    launcher = Launcher(launcher_dir)
    client = launcher.client()
    client.set("signup", "kept")
    valkey = server_of(client)
    client.close()
    launcher.stop()
    files = sorted(path.name for path in launcher_dir.rglob("*"))

    result = run_launcher(launcher_dir, "--server", "system")
    assert result.returncode == 1
    advice = result.stderr.strip().splitlines()[-1]
    assert advice.startswith("workerkit redis: Redis 7.")
    assert f"the data in {launcher_dir}, which {valkey} wrote" in advice
    assert "Nothing was deleted, and the files are fine for the server that wrote them" in advice
    assert "Either run the server that wrote it (workerkit redis --server embedded)" in advice
    assert "pass another --dir, or move" in advice
    assert sorted(path.name for path in launcher_dir.rglob("*")) == files

    again = Launcher(launcher_dir)  # the server that wrote it still reads it
    assert again.client().get("signup") == b"kept"
    again.stop()


@needs_redis_server
def test_valkey_takes_over_a_folder_redis_wrote_and_says_so(launcher_dir: Path) -> None:
    env = {**os.environ, "WORKERKIT_REDIS_SERVER": "system"}
    first = Launcher(launcher_dir, env=env)
    assert server_of(first.client()).startswith("Redis ")
    first.client().set("key", "from redis")
    first.stop()
    second = Launcher(launcher_dir)
    client = second.client()
    assert client.get("key") == b"from redis"
    valkey = server_of(client)
    client.close()
    marker = launcher_dir / "workerkit-server.json"
    wait_for(lambda: json.loads(marker.read_text()) == {"name": valkey, "choice": "embedded"},
             "the launcher to mark the folder as Valkey's")
    output = second.stop()
    assert f"workerkit redis: the data in {launcher_dir} was written by Redis 7." in output
    assert f"; starting {valkey} on it" in output


def test_an_unknown_server_is_a_usage_error(tmp_path: Path) -> None:
    result = run_launcher(tmp_path, "--server", "no-such-redis-server")
    assert (result.returncode, result.stderr) == (
        2, "workerkit redis: --server 'no-such-redis-server' is not an executable; choose embedded (the default), "
           "system (redis-server on PATH), or the path or name of a server binary\n")


@pytest.mark.parametrize("bind", ["0.0.0.0", "::", "127.0.0.1 192.0.2.1"])
def test_binding_beyond_loopback_needs_a_password(tmp_path: Path, bind: str) -> None:
    env_free = {key: value for key, value in os.environ.items() if key != "WORKERKIT_REDIS_PASSWORD"}
    result = subprocess.run([WORKERKIT, "redis", "--dir", str(tmp_path), "--bind", bind, "--port", str(free_port())],
                            capture_output=True, text=True, timeout=10, env=env_free)
    assert (result.returncode, result.stderr) == (
        2, f"workerkit redis: --bind {bind} would open Redis, and every job in it, to the network without a "
           "password: pass --password (or set WORKERKIT_REDIS_PASSWORD), or bind 127.0.0.1\n")


def test_with_a_password_every_client_must_authenticate(launcher_dir: Path) -> None:
    password = 's3cr3t "quoted" back\\slash'
    launcher = Launcher(launcher_dir, "--bind", "0.0.0.0", env={**os.environ, "WORKERKIT_REDIS_PASSWORD": password})
    with pytest.raises(redis.AuthenticationError):
        launcher.client().ping()
    client = launcher.client(password)
    assert client.ping() is True
    client.close()
    commands = [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in os.listdir("/proc") if pid.isdigit()
                and Path(f"/proc/{pid}/cmdline").exists()]
    assert not [command for command in commands if b"s3cr3t" in command]  # not on any command line
    assert launcher.stop().count("waiting for") == 0
