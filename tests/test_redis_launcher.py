"""``workerkit redis`` outlives its clients on shutdown: after TERM the server keeps serving until the other
clients have disconnected (workers finishing or pushing jobs back), then saves and exits."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
import redis

from workerkit.server import free_port, running_server, wait_for_ping

DEADLINE = 60.0
WORKERKIT = str(Path(sys.executable).with_name("workerkit"))


class Launcher:
    """A ``workerkit redis`` process with its output in a file."""

    started: ClassVar[list[Launcher]] = []

    def __init__(self, data_dir: Path, *options: str) -> None:
        self.port = free_port()
        self.log = data_dir.parent / f"launcher-{self.port}.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [WORKERKIT, "redis", "--port", str(self.port), "--dir", str(data_dir), *options],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        Launcher.started.append(self)
        wait_for_ping(self.port, time.monotonic() + DEADLINE, self.process)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=10)

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
