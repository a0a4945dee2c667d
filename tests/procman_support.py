"""Helpers for procman's integration tests (and the reliability suite): run the real ``procman`` command in a
temporary project. A plain module, not a conftest, so every test directory imports it under one name."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
from polling import DEADLINE, wait_for

_SCRIPT = Path(sys.executable).with_name("procman")
PROCMAN = str(_SCRIPT) if _SCRIPT.exists() else (shutil.which("procman") or "procman")


def clean_env(**extra: str) -> dict[str, str]:
    """procman's environment for a test: no PROCMAN_*/colour settings leaking in from outside."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("PROCMAN_") and key not in ("NO_COLOR", "FORCE_COLOR", "PORT")}
    env.update(extra)
    return env


class Running:
    """A ``procman`` process started in the background, its output captured in a file."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        self.out_path = cwd / f"procman-{time.monotonic_ns()}.out"
        with self.out_path.open("wb") as out:
            self.process = subprocess.Popen(
                [PROCMAN, *args], cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env if env is not None else clean_env(),
            )

    @property
    def output(self) -> str:
        return self.out_path.read_bytes().decode("utf-8", "replace")

    def wait_for(self, text: str, timeout: float = DEADLINE) -> None:
        """Wait until ``text`` appears in the output (or procman has exited without it)."""
        wait_for(lambda: text in self.output or self.process.poll() is not None, repr(text), timeout)
        assert text in self.output, self.output

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = DEADLINE) -> int:
        return self.process.wait(timeout)


class Project:
    """A temporary project folder with a Procfile."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._running: list[Running] = []

    def write(self, name: str, text: str) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def procfile(self, text: str) -> Path:
        return self.write("Procfile", text)

    def start(self, *args: str, env: dict[str, str] | None = None) -> Running:
        running = Running(["start", *args], self.root, env)
        self._running.append(running)
        return running

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = DEADLINE,
            ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PROCMAN, *args], cwd=self.root, capture_output=True, text=True, errors="replace", timeout=timeout,
            env=env if env is not None else clean_env(), stdin=subprocess.DEVNULL,
        )

    def stop_all(self) -> None:
        for running in self._running:
            if running.process.poll() is None:
                running.process.send_signal(signal.SIGKILL)
                running.process.wait(DEADLINE)


def interrupt(process: subprocess.Popen[bytes], timeout: float = 45.0) -> int:
    """Ctrl-C a ``procman start`` run by a test: SIGINT, wait; SIGKILL if it is still there after ``timeout``."""
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(DEADLINE)


def system_lines(output: str) -> list[str]:
    """procman's own lines in a ``--no-color`` output, without the time and the prefix."""
    return [line.split("| ", 1)[1] for line in output.splitlines() if re.match(r"\S+ system +\| ", line)]


def without_pids(lines: list[str]) -> list[str]:
    """Pids and the time since a start (which vary from run to run) as N and T."""
    return [re.sub(r"pid \d+", "pid N", re.sub(r"\d+\.\d s after (its start|it started)", r"T s after \1", line))
            for line in lines]


def free_base_port() -> int:
    """A free port with the ports 100 and 200 above it free too (procman spaces process types by 100)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        if base + 200 < 65536 and all(_free(base + step) for step in (0, 100, 200)):
            return base
    raise AssertionError("no free ports")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def survivors(token: str) -> list[psutil.Process]:
    """Live processes whose command line contains ``token``."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if any(token in part for part in process.info["cmdline"] or []) and process.status() != "zombie":
                found.append(process)
        except psutil.Error:
            continue
    return found
