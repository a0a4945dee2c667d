"""The pushes of an ``@job`` function are typed with its parameters (``ParamSpec``): mypy, run on a small
program, accepts the right calls and reports the wrong ones, line by line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = '''
import asyncio
from workerkit import job

@job
def welcome_email(user_id: int, template: str = "plain") -> None: ...

@job
async def refresh(feed_id: int) -> None: ...

welcome_email.delay(7)
welcome_email.delay(user_id=7, template="fancy")
welcome_email.delay_for(60, 7)
welcome_email.perform_async("seven")
welcome_email.delay(7, colour="red")
welcome_email.delay_until(0.0)

async def handler() -> None:
    await refresh.adelay(3)
    await refresh.aperform_in(60, feed_id="x")
'''


@pytest.mark.slow
def test_mypy_checks_function_job_pushes_against_the_signature(tmp_path: Path) -> None:
    program = tmp_path / "pushes.py"
    program.write_text(PROGRAM)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--ignore-missing-imports", "--no-error-summary",
         "--cache-dir", str(tmp_path / "cache"), str(program)],
        capture_output=True, text=True, timeout=110, cwd=tmp_path,
        env={**os.environ, "MYPYPATH": str(ROOT)})  # the editable install hides the package from mypy
    errors = sorted({int(line.split(":")[1]) for line in result.stdout.splitlines() if ": error:" in line
                     and line.startswith("pushes.py:")})
    assert errors == [14, 15, 16, 20], result.stdout
    assert 'pushes.py:14: error: Argument 1 has incompatible type "str"; expected "int"' in result.stdout
    assert 'pushes.py:15: error: Unexpected keyword argument "colour" for "delay" of "JobFunction"' in result.stdout
