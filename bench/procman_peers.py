"""Peers for procman's benchmarks: Honcho from PyPI (into a cache folder) and Foreman from Debian.

Neither is a project dependency: ``honcho_command()`` pip-installs Honcho with ``--target`` the first time,
``foreman_command()`` runs ``apt-get install -y ruby-foreman`` when ``foreman`` is missing (root only).
Each returns the command prefix to run, or None when the peer cannot be had.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

CACHE = Path(os.environ.get("PROCMAN_BENCH_CACHE", "/tmp/procman-bench-peers"))
SCRIPT = Path(sys.executable).with_name("procman")


def procman_command() -> list[str]:
    """The installed ``procman`` console script (the one users run), its bytecode compiled first.

    pip compiles a wheel's modules when it installs them (Honcho's here too), but an editable install
    leaves procman's as source; with ``PYTHONDONTWRITEBYTECODE=1`` (set in some sandboxes) every start
    would compile them again. Compiling them once measures procman as it is installed.
    """
    import compileall

    import procman

    compileall.compile_dir(Path(procman.__file__).parent, quiet=1)
    return [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "procman"]


def honcho_command() -> tuple[list[str], dict[str, str]] | None:
    """``honcho`` and the environment that finds it."""
    target = CACHE / "honcho"
    if not (target / "honcho").is_dir():
        result = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target", str(target), "honcho"],
                                capture_output=True, text=True)
        if result.returncode != 0:
            print(f"honcho unavailable: {result.stderr.strip()[-300:]}", file=sys.stderr)
            return None
    env = {**os.environ, "PYTHONPATH": str(target)}
    return [sys.executable, str(target / "bin" / "honcho")], env


def foreman_command() -> list[str] | None:
    """Debian's ``foreman`` (ruby-foreman)."""
    if shutil.which("foreman") is None and os.geteuid() == 0:
        install = ["apt-get", "install", "-y", "-q", "ruby-foreman"]
        if subprocess.run(install, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], capture_output=True)
            subprocess.run(install, capture_output=True)
    found = shutil.which("foreman")
    return [found] if found else None


Tool = tuple[list[str], dict[str, str] | None]


def all_tools() -> dict[str, Tool]:
    """procman and whichever peers can be had: name -> (command prefix, environment or None)."""
    tools: dict[str, Tool] = {"procman": (procman_command(), None)}
    honcho = honcho_command()
    if honcho:
        tools["honcho"] = honcho
    foreman = foreman_command()
    if foreman:
        tools["foreman"] = (foreman, None)
    return tools


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM a supervisor and wait for it; SIGKILL it after 30 s."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def load_note() -> str:
    """The machine's load average, to print next to the figures."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"
