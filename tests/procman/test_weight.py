"""What ``start`` and ``run`` cost: the modules they import, and a guardian that is a shell, not a Python."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import psutil
from procman_support import DEADLINE, clean_env

HEAVY = ("rich", "asyncio", "psutil", "dataclasses", "subprocess", "logging", "tempfile")


def _imports(project, *args: str) -> set[str]:
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "procman", *args], cwd=project.root,
                            capture_output=True, text=True, timeout=DEADLINE, env=clean_env())
    return {match.group(1).split(".")[0] for match in re.finditer(r"(?m)^import time:.*\| +(\S+)$", result.stderr)}


def test_start_and_run_import_nothing_heavy(project) -> None:
    project.procfile("web: exit 0\n")
    project.write(".env", "A=1\n")  # python-dotenv's package imports logging and tempfile
    for args in (["start"], ["run", "true"], ["run", "web"]):
        imported = _imports(project, *args)
        assert "procman" in imported
        assert imported.isdisjoint(HEAVY), (args, imported & set(HEAVY))


def test_the_guardian_is_a_small_shell(project) -> None:
    project.procfile("web: echo up; sleep 600\n")
    running = project.start("--no-color")
    running.wait_for("| up")
    procman = psutil.Process(running.process.pid)
    guardian = [child for child in procman.children() if child.cmdline()[:1] == ["procman-guardian"]]
    assert len(guardian) == 1
    assert guardian[0].exe() == os.path.realpath("/bin/sh")
    assert guardian[0].memory_info().rss < 4 * 2**20
    running.signal(2)
    assert running.wait() == 130
